--- bench/ttt_eval.lua — PROTEUS v9's LoRA TTT evaluation (spec §3.7; lua/lib/proteus/ttt.lua's
--- ttt.lora_eval, score first then train, one epoch) timed in proteus and in PyTorch
--- (bench/ttt_eval_torch.py: the same algorithm on tests/reference's LoraGPT) on the same documents,
--- weights, LoRA initialisation and settings. Prints ms per round, tokens/s, MFU, the ratio and the losses.
--
--   build-gpu/proteus bench/ttt_eval.lua device=cuda [rounds=5] [warmup=1] [json=PATH] [time_limit=0]
--       [torch=1] [torch_timeout=0] [compile=0] [peak_tflops=auto]
--   build/proteus bench/ttt_eval.lua small=1            # CPU check mode: tiny model and documents, seconds
--   build/proteus bench/ttt_eval.lua                    # CPU: the v9 model and settings but batch_docs=8,
--                                                       # 8 long + 4 short documents per round (minutes)
--
-- Work: `rounds` timed rounds after `warmup` untimed ones; a round is ONE ttt.lora_eval call (fresh
-- ledger) over a token stream of long_docs documents of lengths uniform in [short_doc_len, long_max]
-- and short_docs of lengths uniform in [short_min, short_doc_len) (data.docs lengths, i.e. including
-- the next BOS), tokens uniform over [2, V) — every round the same lengths (so the same work), its own
-- tokens; seed=. Defaults on CUDA: v9's settings — chunk 256, window 1024, batch_docs 64, short
-- documents < 512 tokens on the base model, LoRA rank 8 (head 8), Adam lr 0.01, betas (0.9, 0.95),
-- eps 1e-10 — with 64 long (512..2304 tokens: 2 to 9 chunks) + 32 short documents per round: one full
-- batch of 64. The output prints the settings, the documents, the chunk steps and the token counts
-- of a round; both sides' counts are checked against bench/flops.lua's replay of lora_eval's batching
-- (an error if they differ), so the two sides process the same tokens with the same settings.
--
-- LoRA init: the A matrices are drawn here once (U(±1/√d), [batch_docs, r, d] per adapter) and given to
-- both sides (batch element b of every batch starts from row b), so the two sides' losses can be
-- compared: on the CPU (both f32) they agree to ~1e-5 relative; on CUDA the PyTorch side runs under
-- bf16 autocast (~1e-2). proteus: ttt.lora_state is wrapped to put these A (and B = 0) in the state.
--
-- proteus on CUDA: the model is moved with model:to(device); ttt.lora_eval itself moves its token
-- windows, targets, weights and LoRA to the model's device and copies the scored logits back to the CPU
-- for the ledger (whose NLLs are the BPB), so this script times lora_eval as a recipe runs it.
--
-- Timing: wall clock per round (device synchronised at both ends), median of the timed rounds;
-- tokens/s = scored tokens per round / median. time_limit=S: each side stops starting rounds after S
-- seconds once one is timed (the header says how many ran). torch_timeout=S bounds the PyTorch
-- process. MFU: bench/flops.lua's count (its header has the formula) / time / peak (peak_tflops=auto:
-- by device name). PyTorch runs first, in its own process (on CUDA it has exited before proteus
-- allocates). PROTEUS_TEST_PYTHON names the Python with torch (default /usr/bin/python3).
local pt = require "proteus"
local nn = require "proteus.nn"
local data = require "proteus.data"
local optim = require "proteus.optim"
local ttt = require "proteus.ttt"
local st = require "proteus.safetensors"
local json = require "proteus.json"
local host = require "proteus._host"
local BC = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "bench_common.lua")

local opts = { device = "cpu", small = "0", config = "proteus_v9", rounds = nil, warmup = "1", long_docs = nil,
  short_docs = nil, batch_docs = nil, chunk = nil, window = nil, short_doc_len = nil, long_max = nil, short_min = nil,
  lora_rank = "8", lr = "0.01", torch = "1", torch_timeout = "0", time_limit = "0", json = nil, peak_tflops = "auto",
  compile = "0", amp = nil, attn = nil, seed = "1234", dtype = "f32", compute = nil }
local known = { "device", "small", "config", "rounds", "warmup", "long_docs", "short_docs", "batch_docs", "chunk", "window",
  "short_doc_len", "long_max", "short_min", "lora_rank", "lr", "torch", "torch_timeout", "time_limit", "json",
  "peak_tflops", "compile", "amp", "attn", "seed", "dtype", "compute" }
BC.parse_args("ttt_eval", opts, known)
local dev = opts.device
local on_gpu = dev ~= "cpu"
local small = opts.small == "1"
if small and on_gpu then error("ttt_eval: small=1 is the CPU check mode; use it with device=cpu") end
local function int(k, gpu, cpu, sm)
  local v = opts[k] or (on_gpu and gpu or small and sm or cpu)
  return math.tointeger(tonumber(v)) or error("ttt_eval: " .. k .. "=" .. tostring(v) .. " is not an integer")
end
local S = {
  chunk_size = int("chunk", 256, 256, 32), eval_seq_len = int("window", 1024, 1024, 64),
  batch_docs = int("batch_docs", 64, 8, 4), short_doc_len = int("short_doc_len", 512, 512, 64), min_doc_len = 2,
  lora_rank = int("lora_rank", 8, 8, 8), lr = tonumber(opts.lr), betas = { 0.9, 0.95 }, eps = 1e-10, epochs = 1,
}
S.head_rank = S.lora_rank
local rounds, warmup = int("rounds", 5, 2, 2), int("warmup", 1, 1, 1)
local long_docs, short_docs = int("long_docs", 64, 8, 6), int("short_docs", 32, 4, 4)
local long_max, short_min = int("long_max", 2304, 2304, 200), int("short_min", 32, 32, 8)
if long_max < S.short_doc_len then error("ttt_eval: long_max must be >= short_doc_len") end
if rounds < 1 or warmup < 0 then error("ttt_eval: rounds must be >= 1 and warmup >= 0") end

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local root = here .. "../"
local G = dofile(root .. "tests/lua/gpt_configs.lua")
local flops_m = dofile(root .. "bench/flops.lua")
local base_cfg = G.configs[opts.config] or error("ttt_eval: unknown config '" .. opts.config .. "'")
local overrides = small and flops_m.small_overrides or {}
local PY = os.getenv("PROTEUS_TEST_PYTHON") or "/usr/bin/python3"
local threads = tonumber(os.getenv("OMP_NUM_THREADS") or "") or 2

local cuda
if on_gpu then cuda = BC.need_cuda("ttt_eval", dev) end
local function sync() if on_gpu then cuda.synchronize() end end

-- ---- model (the builder's init moved by 0.05·N(0,1), as bench/gpt_step.lua), documents, LoRA init ----
pt.manual_seed(tonumber(opts.seed))
-- compute=bf16|f32: the model's compute_dtype (default bf16 on CUDA, f32 on the CPU), as bench/gpt_step.lua
local model = nn.GPT(G.with(G.with(base_cfg, overrides), { compute_dtype = opts.compute or (on_gpu and "bf16" or "f32") }))
pt.no_grad(function()
  for _, p in model:named_parameters() do p:add_(pt.randn(p:shape()) * 0.05) end
end)
local c = model.cfg
local V, d, L = c.vocab_size, c.model_dim, c.num_layers
local kvd = c.num_kv_heads * c.head_dim
local nparams = model:num_params()

math.randomseed(tonumber(opts.seed))
local lens = {}
for _ = 1, long_docs do lens[#lens + 1] = math.random(S.short_doc_len, long_max) end
for _ = 1, short_docs do lens[#lens + 1] = math.random(math.max(short_min, 2), S.short_doc_len - 1) end
for i = #lens, 2, -1 do -- shuffled: short and long documents interleave as in a real stream
  local j = math.random(1, i)
  lens[i], lens[j] = lens[j], lens[i]
end
local streams = {} -- round k (0-based): token ids, BOS + len-2 tokens per document, a BOS at the end
for k = 0, warmup + rounds - 1 do
  local ids = {}
  for _, n in ipairs(lens) do
    ids[#ids + 1] = data.BOS
    for _ = 1, n - 2 do ids[#ids + 1] = math.random(2, V - 1) end
  end
  ids[#ids + 1] = data.BOS
  streams[k] = ids
end
local plan = flops_m.ttt_plan(lens, S)
local flops = flops_m.ttt_eval(c, plan, S)
local tokens_per_round = plan.scored

local bound = 1 / math.sqrt(d)
local A = { q = {}, v = {} }
local function draw(r) return pt.rand({ S.batch_docs, r, d }) * (2 * bound) - bound end
for i = 0, L - 1 do A.q[i], A.v[i] = draw(S.lora_rank), draw(S.lora_rank) end
A.head = draw(S.head_rank)

local function settings_line()
  return string.format("chunk %d, window %d, batch_docs %d, short_doc_len %d, LoRA rank %d (head %d), Adam lr %g "
    .. "betas (%g, %g) eps %g, %d epoch", S.chunk_size, S.eval_seq_len, S.batch_docs, S.short_doc_len, S.lora_rank,
    S.head_rank, S.lr, S.betas[1], S.betas[2], S.eps, S.epochs)
end
local function plan_line(p)
  return string.format("%d long (%d..%d tokens) + %d short documents: %d scored tokens, %d batches, %d chunk steps "
    .. "(%d train), %d trained targets", p.long_docs, S.short_doc_len, long_max, p.short_docs, p.scored, p.batches,
    #p.steps, p.train_steps, p.trained)
end
print(string.format("ttt_eval: %s%s, %d params, device %s; %s", opts.config, small and " (small)" or "", nparams,
  on_gpu and cuda.device_name() or "cpu", settings_line()))
print(string.format("ttt_eval: a round = %s; %d timed rounds after %d warm-up; FLOPs/round %.4g", plan_line(plan),
  rounds, warmup, flops))
io.stdout:flush()

local median = BC.median

-- the counts a round must have (both sides)
local function check_counts(side, r)
  local want = { steps = plan.train_steps, scored = plan.scored, trained = plan.trained, short_docs = plan.short_docs,
    long_docs = plan.long_docs, batches = plan.batches }
  for k, v in pairs(want) do
    if r[k] ~= v then
      error(string.format("ttt_eval: %s's round has %s = %s but lora_eval's batching gives %d: the two sides do not "
        .. "run the same work (bench/flops.lua ttt_plan vs %s)", side, k, tostring(r[k]), v, side))
    end
  end
end

-- ---- the JSON result: written after each side, so a proteus side that is killed leaves PyTorch's ----
local dev_name = on_gpu and cuda.device_name() or "cpu"
local peak_t, peak_note = flops_m.peak(dev_name, opts.peak_tflops)
local peak = peak_t and peak_t * 1e12
local function mfu(sec) return peak and flops / sec / peak or nil end
local p_line = string.format("proteus %s weights, %s compute (ttt.lora_eval)", opts.dtype, model.cfg.compute_dtype)
local result = { device = dev_name, config = opts.config, small = small, params = nparams, settings = S,
  plan = { long_docs = plan.long_docs, short_docs = plan.short_docs, steps = #plan.steps, train_steps = plan.train_steps,
    batches = plan.batches, scored = plan.scored, trained = plan.trained, doc_lens = lens },
  tokens_per_round = tokens_per_round, flops_per_round = flops, flops_formula = flops_m.TTT_FORMULA,
  peak_tflops = peak_t, peak_note = peak_note,
  proteus = { error = "did not finish (killed, timed out or failed: see its log)" } }
local function write_json() BC.write_json(opts.json, result) end

-- ---- PyTorch side ----
local q_sh = BC.shell_quote
local function run_torch()
  local base = os.tmpname()
  os.remove(base)
  local wpath, dpath = base .. "-w.safetensors", base .. "-d.safetensors"
  local weights = {}
  for n, p in model:named_parameters() do weights[n] = p:detach() end
  st.save(wpath, weights)
  local D = { ["head.A"] = A.head }
  for i = 0, L - 1 do D["q." .. i .. ".A"], D["v." .. i .. ".A"] = A.q[i], A.v[i] end
  for k = 0, warmup + rounds - 1 do D["round" .. k] = pt.tensor(streams[k], "i64") end
  st.save(dpath, D)
  local extra = string.format(" --device %s --warmup %d --rounds %d --threads %d --compile %s", on_gpu and "cuda" or "cpu",
    warmup, rounds, threads, opts.compile)
  if next(overrides) then extra = extra .. " --cfg " .. q_sh(json.encode(overrides)) end
  if opts.amp then extra = extra .. " --amp " .. opts.amp end
  if opts.attn then extra = extra .. " --attn " .. opts.attn end
  if tonumber(opts.time_limit) > 0 then extra = extra .. " --time-limit " .. opts.time_limit end
  local cmd = string.format("%s %sbench/ttt_eval_torch.py --config %s --weights %s --data %s --settings %s%s", PY,
    root, opts.config, wpath, dpath, q_sh(json.encode(S)), extra)
  local r, why, out = BC.run_json(cmd, opts.torch_timeout)
  os.remove(wpath)
  os.remove(dpath)
  return r, why, out
end

local torch_res, torch_err
if opts.torch ~= "0" then
  print(string.format("ttt_eval: running the PyTorch side first (%s)", PY))
  io.stdout:flush()
  local out
  torch_res, torch_err, out = run_torch()
  if torch_res then
    for k, r in ipairs(torch_res.rounds) do
      print(string.format("  pytorch  round %d%s: %.3f s  loss %.7f  steps %d", k - 1, r.warmup and " (warm-up)" or "",
        r.seconds, r.loss, r.steps))
      check_counts("PyTorch", r)
    end
  else
    print("  pytorch  not run: " .. torch_err)
    if out and #out > 0 then io.stderr:write(out) end
  end
  io.stdout:flush()
else
  torch_err = "torch=0"
end
if torch_res then
  result.pytorch = torch_res
  result.pytorch.tokens_per_s = tokens_per_round / torch_res.median
  result.pytorch.mfu = mfu(torch_res.median)
else
  result.pytorch = { error = torch_err }
end
write_json()

-- ---- proteus side ----
if on_gpu then
  pt.no_grad(function() model:to(dev, opts.dtype ~= "f32" and opts.dtype or nil) end)
end
local tables = data.tokenizer(data.paths().tokenizer):byte_tables(V)

-- ttt.lora_state: the state lora_eval builds, with this bench's A (rows 1..B), B = 0, on `dev`, and
-- its Adam rebuilt over those leaves (the same groups and options as ttt.lora_state's)
local orig_state = ttt.lora_state
ttt.lora_state = function(m, B, o)
  local s = orig_state(m, B, o)
  local function leaf(t)
    local u = pt.no_grad(function() return t:to(dev):detach():clone() end)
    u.requires_grad = true
    return u
  end
  local groups = { q = {}, v = {}, head = {}, bias = {} }
  for i = 0, L - 1 do
    s.q[i] = { leaf(A.q[i]:narrow(1, 1, B)), leaf(pt.zeros({ B, d, S.lora_rank })) }
    s.v[i] = { leaf(A.v[i]:narrow(1, 1, B)), leaf(pt.zeros({ B, kvd, S.lora_rank })) }
    table.move(s.q[i], 1, 2, #groups.q + 1, groups.q)
    table.move(s.v[i], 1, 2, #groups.v + 1, groups.v)
  end
  s.head = { leaf(A.head:narrow(1, 1, B)), leaf(pt.zeros({ B, V, S.head_rank })) }
  groups.head = { s.head[1], s.head[2] }
  for i, b in pairs(s.bias) do
    s.bias[i] = leaf(b)
    groups.bias[#groups.bias + 1] = s.bias[i]
  end
  local lrs, spec = o.lrs or {}, {}
  for _, g in ipairs { "q", "v", "head", "bias" } do
    if #groups[g] > 0 then spec[#spec + 1] = { params = groups[g], lr = lrs[g] or o.lr } end
  end
  s.opt = optim.Adam { groups = spec, lr = o.lr, betas = o.betas, eps = o.eps }
  return s
end

local ttt_opts = { chunk_size = S.chunk_size, eval_seq_len = S.eval_seq_len, batch_docs = S.batch_docs,
  short_doc_len = S.short_doc_len, min_doc_len = S.min_doc_len, lora_rank = S.lora_rank, head_rank = S.head_rank,
  lr = S.lr, betas = S.betas, eps = S.eps, epochs = S.epochs, log = false, label = "ttt_eval" }

local p_rounds, p_times = {}, {}
local time_limit, t_begin = tonumber(opts.time_limit), host.clock()
for k = 0, warmup + rounds - 1 do
  if time_limit > 0 and #p_times >= 1 and host.clock() - t_begin > time_limit then
    print(string.format("  proteus  stopped after %d timed rounds: time_limit=%s s reached", #p_times, opts.time_limit))
    break
  end
  local tokens = data.tokens(streams[k])
  local lg = data.ledger(tokens, tables, { legal = true, name = "ttt_eval round " .. k })
  local val = { tokens = tokens, tables = tables, ledger = lg }
  collectgarbage()
  sync()
  local t0 = host.clock()
  local res = ttt.lora_eval(model, val, ttt_opts)
  sync()
  local dt = host.clock() - t0
  local rep = lg:report()
  local r = { seconds = dt, loss = res.loss, nll_sum = rep.nll_sum, steps = res.steps, trained = res.trained_targets,
    scored = rep.scored_once, short_docs = res.docs.short, long_docs = res.docs.long, batches = res.phases.long.batches,
    verdict = rep.verdict, warmup = k < warmup }
  if res.docs.fallback ~= 0 then error("ttt_eval: proteus scored " .. res.docs.fallback .. " documents on the fallback path") end
  if rep.verdict ~= "legal" then error("ttt_eval: the ledger's verdict is " .. tostring(rep.verdict)) end
  check_counts("proteus", r)
  p_rounds[#p_rounds + 1] = r
  if k >= warmup then p_times[#p_times + 1] = dt end
  print(string.format("  proteus  round %d%s: %.3f s  loss %.7f  steps %d", k, k < warmup and " (warm-up)" or "", dt,
    res.loss, res.steps))
  io.stdout:flush()
end

-- ---- results ----
local med = median(p_times)
result.proteus = { median_s = med, times = p_times, rounds = p_rounds, tokens_per_s = tokens_per_round / med,
  mfu = mfu(med), setup_line = (p_line:gsub("^proteus ", "")) }
local function row(name, sec, loss)
  local m = mfu(sec)
  return string.format("| %s | %.1f | %.0f | %s | %.7f |", name, sec * 1e3, tokens_per_round / sec,
    m and string.format("%.2f%%", 100 * m) or "n/a", loss)
end
print(string.format("\nttt_eval (%s): %s, %d params; %s", dev_name, opts.config, nparams, settings_line()))
print(string.format("round: %s; FLOPs/round %.4g (%s); MFU against %s", plan_line(plan), flops, flops_m.TTT_FORMULA,
  peak and peak_note or ("nothing: " .. peak_note)))
print("")
print("| side | ms/round | tokens/s | MFU | loss (round 0) |")
print("|---|---|---|---|---|")
print(row(p_line, med, p_rounds[1].loss))
if torch_res then
  result.ratio_tokens_per_s = torch_res.median / med
  print(row(torch_res.setup_line, torch_res.median, torch_res.rounds[1].loss))
  print(string.format("\nratio proteus/PyTorch tokens/s = %.3f  (%s); timed rounds: proteus %d, PyTorch %d",
    torch_res.median / med, med < torch_res.median and "proteus faster" or "PyTorch faster", #p_times,
    #torch_res.times))
  local worst = 0
  for k = 1, math.min(#p_rounds, #torch_res.rounds) do
    local a, b = p_rounds[k].loss, torch_res.rounds[k].loss
    worst = math.max(worst, math.abs(a - b) / math.abs(b))
  end
  result.loss_rel_diff = worst
  print(string.format("losses per round (same documents, weights and LoRA init): worst relative difference %.2g%s",
    worst, on_gpu and " (bf16 autocast on the PyTorch side)" or ""))
else
  print(string.format("| PyTorch | not run: %s | | | |", torch_err))
end
write_json()
