-- examples/quickstart.lua — the main job until the v9 recipe lands: a small GPT (PROTEUS-style
-- switches: BigramHash, SmearGate, depth scaling, orthogonal init, XSA on the last layer) trained on
-- the bundled sample with Muon + AdamW and a wallclock warmdown, then evaluated in bits per byte
-- through the score-first ledger; results.json and metrics.jsonl go to a run directory.
--
--   build/proteus examples/quickstart.lua [steps=200] [seq_len=128] [batch_seqs=8] [max_seconds=240]
--   (scripts/demo.sh builds and runs this)
local pt = require "proteus"
local nn = require "proteus.nn"
local data = require "proteus.data"
local optim = require "proteus.optim"
local sched = require "proteus.schedule"
local eval = require "proteus.eval"
local run = require "proteus.run"
local host = require "proteus._host"

local cfg = { steps = 200, seq_len = 128, batch_seqs = 8, max_seconds = 240, seed = 1337, eval_seq_len = 256,
  warmdown_iters = 60, matrix_lr = 0.02, scalar_lr = 0.02, embed_lr = 0.03, log_every = 10 }
for _, a in ipairs(arg or {}) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k then error("quickstart: argument '" .. a .. "' is not key=value") end
  if cfg[k] == nil then
    local keys = {}
    for kk in pairs(cfg) do keys[#keys + 1] = kk end
    error(string.format("quickstart: unknown key '%s' (did you mean '%s'?)", k, nn.nearest(k, keys)))
  end
  cfg[k] = tonumber(v) or error(string.format("quickstart: %s=%s is not a number", k, v))
end

pt.manual_seed(cfg.seed)
local model = nn.GPT {
  vocab_size = 1024, num_layers = 4, model_dim = 128, num_heads = 4, num_kv_heads = 2, mlp_mult = 3,
  rope_base = 50000, rope_train_seq_len = 1024, init = "orthogonal", depth_scale = true,
  bigram_vocab_size = 2048, bigram_dim = 32, smear_gate = true, xsa_layers = { 3 },
}
local R = run.open { recipe = "quickstart", preset = "demo" }
local function log(s) R:log(s) end -- prints and mirrors into run.log
log(string.format("quickstart: %d params, seq_len %d, %d seqs/step, up to %d steps or %ds, run dir %s",
  model:num_params(), cfg.seq_len, cfg.batch_seqs, cfg.steps, cfg.max_seconds, R.dir))

-- optimizer groups as PROTEUS splits them (spec §3.4): 2-D block matrices -> Muon, the tied
-- embedding -> AdamW, every other parameter -> AdamW scalar group
local mats, scalars, embed = {}, {}, {}
for name, p in model:named_parameters() do
  if name == "tok_emb.weight" then embed[#embed + 1] = p
  elseif name:match("^blocks%.") and p:dim() == 2 and not name:match("resid_mix") then mats[#mats + 1] = p
  else scalars[#scalars + 1] = p end
end
local muon = optim.Muon { params = mats, lr = cfg.matrix_lr, momentum = 0.95, weight_decay = 0.04 }
local adam = optim.AdamW { groups = { { params = embed, lr = cfg.embed_lr }, { params = scalars, lr = cfg.scalar_lr } },
  betas = { 0.9, 0.95 }, eps = 1e-8, weight_decay = 0.04 }

local paths = data.paths()
local stream = data.stream(paths.train)
local n = cfg.batch_seqs * cfg.seq_len
local t0 = host.clock()
local tokens_seen, step, last_loss = 0, 0, nil
while step < cfg.steps do
  local elapsed_ms = (host.clock() - t0) * 1000
  if elapsed_ms >= cfg.max_seconds * 1000 then break end
  -- the step budget binds before the time cap here, so the warmdown counts iterations (spec §2.4's
  -- no-cap form); max_seconds stays a hard stop
  local lr_mul = sched.wallclock_warmdown { step = step, elapsed_ms = elapsed_ms, max_ms = false,
    warmdown_iters = cfg.warmdown_iters, iterations = cfg.steps }
  local xy = stream:next_batch(n, 0, 1):tensor()
  local x = xy:narrow(1, 1, n):reshape { cfg.batch_seqs, cfg.seq_len }
  local y = xy:narrow(1, 2, n):reshape { cfg.batch_seqs, cfg.seq_len }
  local loss = model:forward(x, y)
  loss:backward()
  last_loss = loss:item()
  if last_loss ~= last_loss or last_loss == math.huge then
    error(string.format("quickstart: loss is %s at step %d; stopping (lower the learning rates)", last_loss, step + 1))
  end
  optim.clip_grad_norm(model:parameters(), 0.3)
  muon:set("momentum", sched.momentum_warmup(step, 0.85, 0.95, 50))
  muon:step(lr_mul)
  adam:step(lr_mul)
  model:zero_grad()
  step = step + 1
  tokens_seen = tokens_seen + n
  local ms = (host.clock() - t0) * 1000
  R:log_metrics { step = step, train_loss = last_loss, lr_mul = lr_mul, train_time_ms = ms }
  if step % cfg.log_every == 0 or step == 1 then
    log(string.format("step:%d/%d train_loss:%.4f train_time:%.0fms step_avg:%.2fms tok/s:%.0f lr_mul:%.3f",
      step, cfg.steps, last_loss, ms, ms / step, tokens_seen / (ms / 1000), lr_mul))
  end
end
local train_ms = (host.clock() - t0) * 1000

local val = data.open_val { vocab = 1024 }
local res = pt.no_grad(function()
  return eval.standard(val, function(tok) return model:logits(tok) end,
    { seq_len = cfg.eval_seq_len, batch_seqs = 8, softcap = 30, log = log })
end)
R:write_results {
  recipe = "quickstart", preset = "demo", seed = cfg.seed, device = "cpu", world_size = 1,
  params = model:num_params(),
  train = { steps = step, train_time_ms = train_ms, step_avg_ms = train_ms / math.max(step, 1), tokens = tokens_seen },
  eval = { pre_quant_bpb = res.bpb, val_loss = res.loss },
  ledger = data.ledger_summary(res.report),
}
log("results: " .. R.dir .. "/results.json")
