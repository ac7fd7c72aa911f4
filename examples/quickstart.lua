-- examples/quickstart.lua — the main job until the v9 recipe lands: a small GPT (PROTEUS-style
-- switches: BigramHash, SmearGate, depth scaling, orthogonal init, XSA on the last layer) trained on
-- the bundled sample with Muon + AdamW and a wallclock warmdown, then evaluated in bits per byte
-- through the score-first ledger; results.json and metrics.jsonl go to a run directory.
--
--   build/proteus examples/quickstart.lua [steps=200] [seq_len=128] [batch_seqs=8] [max_seconds=240]
--   build/proteus examples/quickstart.lua resume=runs/<dir>/checkpoint.safetensors   (after Ctrl-C)
--   (scripts/demo.sh builds and runs this)
local pt = require "proteus"
local nn = require "proteus.nn"
local data = require "proteus.data"
local optim = require "proteus.optim"
local eval = require "proteus.eval"
local run = require "proteus.run"
local train = require "proteus.train"

local cfg = { steps = 200, seq_len = 128, batch_seqs = 8, max_seconds = 240, seed = 1337, eval_seq_len = 256,
  warmdown_iters = 60, matrix_lr = 0.02, scalar_lr = 0.02, embed_lr = 0.03, log_every = 10, resume = "" }
for _, a in ipairs(arg or {}) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k then error("quickstart: argument '" .. a .. "' is not key=value") end
  if cfg[k] == nil then
    local keys = {}
    for kk in pairs(cfg) do keys[#keys + 1] = kk end
    error(string.format("quickstart: unknown key '%s' (did you mean '%s'?)", k, nn.nearest(k, keys)))
  end
  if type(cfg[k]) == "string" then cfg[k] = v
  else cfg[k] = tonumber(v) or error(string.format("quickstart: %s=%s is not a number", k, v)) end
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

-- the training loop of the records (proteus.train): the step budget binds before the time cap
-- here, so the warmdown counts iterations (spec §2.4's no-cap form); max_seconds is the §2.4 stop
-- rule's cap. Ctrl-C writes a checkpoint into the run directory and prints how to resume.
local paths = data.paths()
local tr = train.run {
  model = model, optimizers = { muon, adam }, stream = data.stream(paths.train),
  seq_len = cfg.seq_len, batch_seqs = cfg.batch_seqs, max_steps = cfg.steps,
  max_wallclock_ms = cfg.max_seconds * 1000, lr_schedule = train.iteration_lr(cfg.warmdown_iters),
  momentum_schedule = train.momentum_warmup(0.85, 0.95, 50), clip = 0.3, log_every = cfg.log_every,
  run = R, resume = cfg.resume ~= "" and cfg.resume or nil,
}
if tr.interrupted then return end
local step, train_ms, tokens_seen = tr.steps, tr.train_time_ms, tr.tokens

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
