--- bench/gpt_step.lua — a step of the PROTEUS v9 model (nn.GPT, the `proteus_v9` config of
-- tests/lua/gpt_configs.lua, 26,829,913 params) in proteus against the PyTorch reference model
-- (tests/reference/gpt_ref.py, run by bench/gpt_step_torch.py) on the same weights and tokens.
-- Prints per-step medians and the ratio proteus / PyTorch.
--
-- CPU (default; bench/run_cpu.sh): forward+backward at T = 256, batch 4, same thread count on both
-- sides, proteus first; ratio of times (< 1 = proteus faster).
--
--   OMP_NUM_THREADS=2 build/proteus bench/gpt_step.lua [reps=5] [warmup=1] [B=4] [T=256] [config=proteus_v9]
--                                                     [torch=1] [profile=0] [step=fwdbwd|train] [json=PATH]
--
-- CPU, small (small=1; bench/gpu_bench.sh --device cpu --small and tests/lua/test_bench_scripts.lua):
-- the v9 architecture shrunk (flops.small_overrides: 2 layers, d = 64), B = 2, T = 64, 2 reps after 1
-- warm-up — seconds, to prove the script, the PyTorch side and the JSON end to end; no speed claim.
--
-- CUDA (bench/run_gpu.sh): a v9 training step at the v9 shapes (T = 1024, 96 sequences) — forward,
-- backward, clip_grad_norm 0.3, AdamW (tied embedding lr 0.03; block scalars lr 0.02), Muon (2-D block
-- matrices, lr 0.02, μ 0.99, wd 0.04), as spec §3.4 at the schedules' plateau — on both sides. proteus
-- keeps f32 weights (`dtype`) and computes in `compute` (bf16 on CUDA: matmuls and attention in bf16,
-- nn.lua compute_dtype); PyTorch runs
-- the records' setup (fp32 weights, bf16 autocast, torch.compile, flash SDPA; see gpt_step_torch.py).
-- PyTorch runs FIRST (so its column exists even if the proteus side is slow or fails) in its own
-- process, which has exited before proteus allocates its activations.
--
--   build-gpu/proteus bench/gpt_step.lua device=cuda [B=96] [T=1024] [reps=5] [warmup=2]
--       [step=train|fwdbwd] [dtype=f32] [compute=bf16|f32] [graph=0|1] [torch=1] [torch_warmup=3] [torch_timeout=300]
--       [amp=bf16|none] [compile=1|0] [attn=flash|ref] [peak_tflops=auto] [json=PATH] [time_limit=0]
--
-- Reported on CUDA: ms/step (median), tokens/s = B·T / step time, model FLOP utilisation = model
-- FLOPs per step / step time / peak (peak_tflops=auto: the bf16 dense datasheet peak of the device
-- named by CUDA, bench/flops.lua's PEAKS — 989 for H100 SXM and H200 —, or the number given; the same
-- peak for both sides, so an f32 proteus shows how far it is from the bf16 ceiling; the output says
-- which peak), and the ratio proteus/PyTorch of tokens/s (> 1 = proteus faster). Model FLOPs per step
-- (bench/flops.lua): 6·W·B·T + 6·L·B·T²·d, W = the weights of every matmul (Q, K, V, O, MLP, bigram
-- projection, LM head) per token, the second term causal attention (QKᵀ and PV, forward and backward,
-- half the square). json=PATH writes the numbers (on the CPU too: bench/gpu_bench.sh's table reads it).
-- time_limit=S (seconds, 0 = none): once the proteus side has run S seconds and has at least one timed
-- step, it stops and reports the steps it has (the header says how many), instead of being killed.
--
-- Weights: the builder's init with every parameter moved by 0.05·N(0,1) (as test_gpt_parity.lua does,
-- so no branch is exactly zero); tokens uniform over the vocabulary (Lua's math.random, seed 1234).
-- The two losses are printed side by side as a sanity check (CPU f32: they agree to ~1e-6; CUDA with
-- PyTorch under bf16 autocast: to ~1e-2). torch=0 skips the PyTorch side.
-- PROTEUS_TEST_PYTHON names the Python that has torch (default /usr/bin/python3).
local pt = require "proteus"
local nn = require "proteus.nn"
local st = require "proteus.safetensors"
local json = require "proteus.json"
local host = require "proteus._host"
local BC = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "bench_common.lua")

local opts = { reps = nil, warmup = nil, B = nil, T = nil, config = "proteus_v9", torch = "1", profile = "0",
  device = "cpu", dtype = "f32", step = nil, torch_warmup = "3", torch_timeout = "0", amp = nil, compile = nil,
  attn = nil, peak_tflops = "auto", json = nil, time_limit = "0", small = "0", compute = nil, graph = "0" }
local known = { "reps", "warmup", "B", "T", "config", "torch", "profile", "device", "dtype", "step", "torch_warmup",
  "torch_timeout", "amp", "compile", "attn", "peak_tflops", "json", "time_limit", "small", "compute", "graph" }
BC.parse_args("gpt_step", opts, known)
local on_gpu = opts.device ~= "cpu"
local small = opts.small == "1"
if small and on_gpu then error("gpt_step: small=1 is the CPU check mode; use it with device=cpu") end
opts.reps = opts.reps or (small and "2" or "5")
opts.warmup = opts.warmup or (on_gpu and "2" or "1")
opts.B = opts.B or (on_gpu and "96" or small and "2" or "4")
opts.T = opts.T or (on_gpu and "1024" or small and "64" or "256")
opts.step = opts.step or (on_gpu and "train" or "fwdbwd")
if opts.step ~= "train" and opts.step ~= "fwdbwd" then
  error("gpt_step: step must be 'train' or 'fwdbwd', got '" .. opts.step .. "'")
end
local reps, warmup = assert(tonumber(opts.reps)), assert(tonumber(opts.warmup))
local B, T = assert(math.tointeger(tonumber(opts.B))), assert(math.tointeger(tonumber(opts.T)))

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local root = here .. "../"
local G = dofile(root .. "tests/lua/gpt_configs.lua")
local flops_m = dofile(root .. "bench/flops.lua")
local cfg = G.configs[opts.config] or error("gpt_step: unknown config '" .. opts.config .. "'")
local overrides = small and flops_m.small_overrides or {}
cfg = G.with(cfg, overrides)
local PY = os.getenv("PROTEUS_TEST_PYTHON") or "/usr/bin/python3"
local threads = tonumber(os.getenv("OMP_NUM_THREADS") or "") or 2

local cuda
if on_gpu then cuda = BC.need_cuda("gpt_step", opts.device) end

local median = BC.median
local function list(ts)
  local p = {}
  for i, v in ipairs(ts) do p[i] = string.format("%.3f", v) end
  return table.concat(p, " ")
end

-- compute=bf16|f32: the model's compute_dtype (nn.lua; default bf16 on CUDA — the records' autocast
-- counterpart, tensor cores and flash attention —, f32 on the CPU)
cfg.compute_dtype = opts.compute or (opts.device ~= "cpu" and "bf16" or "f32")
pt.manual_seed(1234)
local model = nn.GPT(cfg)
pt.no_grad(function()
  for _, p in model:named_parameters() do p:add_(pt.randn(p:shape()) * 0.05) end
end)
local V = model.cfg.vocab_size
math.randomseed(1234)
local xs, ys = {}, {}
for b = 1, B do
  local row = {}
  for t = 1, T + 1 do row[t] = math.random(0, V - 1) end
  xs[b], ys[b] = {}, {}
  for t = 1, T do xs[b][t], ys[b][t] = row[t], row[t + 1] end
end
local x, y = pt.tensor(xs, "i64"), pt.tensor(ys, "i64")
local nparams = model:num_params()

-- The weights and tokens for the PyTorch side, written now, before any proteus step (step=train
-- changes the weights).
local wpath, tpath
if opts.torch ~= "0" then
  local base = os.tmpname()
  os.remove(base)
  wpath, tpath = base .. "-w.safetensors", base .. "-t.safetensors"
  local weights = {}
  for n, p in model:named_parameters() do weights[n] = p:detach() end
  st.save(wpath, weights)
  st.save(tpath, { x = x, y = y })
end
-- Runs bench/gpt_step_torch.py on those weights and tokens. Returns the decoded result, or nil and
-- the reason (its last output line) when it failed or torch is missing.
local function run_torch()
  local extra = string.format(" --step %s", opts.step)
  if next(overrides) then extra = extra .. " --cfg " .. "'" .. json.encode(overrides) .. "'" end
  if on_gpu then
    extra = extra .. string.format(" --device %s --warmup %s", opts.device, opts.torch_warmup)
    if opts.amp then extra = extra .. " --amp " .. opts.amp end
    if opts.compile then extra = extra .. " --compile " .. opts.compile end
    if opts.attn then extra = extra .. " --attn " .. opts.attn end
  else
    extra = extra .. string.format(" --warmup %d", warmup)
  end
  local cmd = string.format("%s %sbench/gpt_step_torch.py --config %s --weights %s --tokens %s --threads %d --reps %d%s",
    PY, root, opts.config, wpath, tpath, threads, reps, extra)
  local r, why, out = BC.run_json(cmd, opts.torch_timeout)
  os.remove(wpath)
  os.remove(tpath)
  return r, why, out
end

-- The proteus step (gradients cleared before it, untimed, as on the PyTorch side): forward+backward,
-- and with step=train the v9 optimizers.
local function make_step()
  if opts.step == "fwdbwd" then
    return function()
      local l = model:forward(x, y)
      l:backward()
      return l
    end
  end
  local optim = require "proteus.optim"
  local emb, mats, scal, all = {}, {}, {}, {}
  for name, p in model:named_parameters() do
    all[#all + 1] = p
    if name == "tok_emb.weight" then emb[#emb + 1] = p
    elseif name:match("^blocks%.") and p:dim() == 2 and not name:match("resid_mix") then mats[#mats + 1] = p
    elseif name:match("^blocks%.") or name == "skip_weights" then scal[#scal + 1] = p end
  end
  local a1 = optim.AdamW { params = emb, lr = 0.03, betas = { 0.9, 0.95 }, eps = 1e-8, weight_decay = 0.04 }
  local mu = optim.Muon { params = mats, lr = 0.02, momentum = 0.99, weight_decay = 0.04 }
  local a2 = optim.AdamW { params = scal, lr = 0.02, betas = { 0.9, 0.95 }, eps = 1e-8, weight_decay = 0.04 }
  if opts.graph ~= "1" then
    return function()
      local l = model:forward(x, y)
      l:backward()
      optim.clip_grad_norm(all, 0.3)
      a1:step(1.0)
      mu:step(1.0)
      a2:step(1.0)
      return l
    end
  end
  -- graph=1 (CUDA): the same step captured once into a CUDA graph (after 2 eager steps) and replayed, as
  -- train.run{cuda_graph = true} does: the optimizers' scalars written outside (prepare), the clip on
  -- the device, apply() launches only
  if not on_gpu then error("gpt_step: graph=1 needs device=cuda (it captures a CUDA graph)") end
  local norm = pt.zeros({}, { dtype = "f64", device = opts.device })
  local function device_step()
    model:zero_grad()
    local l = model:forward(x, y)
    l:backward()
    optim.clip_grad_norm(all, 0.3, { device = true, out = norm })
    a1:apply()
    mu:apply()
    a2:apply()
    return l:detach()
  end
  local eager, graph, loss_out = 2, nil, nil
  return function()
    for _, o in ipairs { a1, mu, a2 } do o:prepare(1.0, { all = true }) end
    if eager > 0 then
      eager = eager - 1
      return device_step()
    end
    if not graph then graph, loss_out = cuda.graph(device_step) end
    graph:replay()
    return loss_out
  end
end

local flops = flops_m.train_step(model.cfg, B, T)
local tokens = B * T
local dev_name = on_gpu and cuda.device_name() or "cpu"
local peak_t, peak_note = flops_m.peak(dev_name, opts.peak_tflops)
local peak = peak_t and peak_t * 1e12
local function torch_setup_line(r)
  local s = r.setup or {}
  if not on_gpu then
    return string.format("PyTorch %s (CPU f32, %d threads)", r.torch or "", r.threads or threads)
  end
  return string.format("PyTorch %s (%s autocast, compile=%s, %s)", r.torch or "?", s.amp or "?", tostring(s.compile),
    s.attention or s.attn or "?")
end
-- the JSON result; written after each side, so a proteus side that is killed leaves PyTorch's numbers
local result = { device = dev_name, config = opts.config, small = small, params = nparams, B = B, T = T,
  step = opts.step, flops_per_step = flops, flops_formula = flops_m.TRAIN_FORMULA, peak_tflops = peak_t,
  peak_note = peak_note, proteus = { error = "did not finish (killed, timed out or failed: see its log)" } }
local function write_json() BC.write_json(opts.json, result) end
local function set_torch(torch_r, torch_why)
  if torch_r then
    result.pytorch = torch_r
    result.pytorch.setup_line = torch_setup_line(torch_r)
    result.pytorch.tokens_per_s = tokens / torch_r.median
    result.pytorch.mfu = peak and flops / torch_r.median / peak or nil
  else
    result.pytorch = { error = torch_why }
  end
end

local torch_res, torch_err
if on_gpu and opts.torch ~= "0" then
  print(string.format("gpt_step: running the PyTorch side first (%s)", PY))
  io.stdout:flush()
  local out
  torch_res, torch_err, out = run_torch()
  if torch_res then
    print(string.format("  pytorch  loss %.7f  median %.3f s  (runs: %s; first step incl. compile %.1f s)", torch_res.loss,
      torch_res.median, list(torch_res.times), torch_res.first_step_s or 0))
  else
    print("  pytorch  not run: " .. torch_err)
    if out and #out > 0 then io.stderr:write(out) end
  end
  io.stdout:flush()
  set_torch(torch_res, torch_err)
  write_json()
end

if on_gpu then
  pt.no_grad(function() model:to(opts.device, opts.dtype ~= "f32" and opts.dtype or nil) end)
  x, y = x:to(opts.device), y:to(opts.device)
end
local step = make_step()
local times, loss, first_loss = {}, nil, nil
local time_limit, t_begin = tonumber(opts.time_limit), host.clock()
for i = 1, warmup + reps do
  if time_limit > 0 and #times >= 1 and host.clock() - t_begin > time_limit then
    print(string.format("  proteus  stopped after %d timed steps: time_limit=%s s reached", #times, opts.time_limit))
    reps = #times
    break
  end
  model:zero_grad()
  if on_gpu then cuda.synchronize() end
  local t0 = host.clock()
  local l = step()
  if on_gpu then cuda.synchronize() end
  local dt = host.clock() - t0
  loss = l:item()
  first_loss = first_loss or loss
  if i > warmup then times[#times + 1] = dt end
  if on_gpu then
    print(string.format("  proteus  step %d%s: %.3f s  loss %.7f", i, i <= warmup and " (warm-up)" or "", dt, loss))
    io.stdout:flush()
  end
  collectgarbage()
end
local med = median(times)
result.proteus = { dtype = opts.dtype, compute = cfg.compute_dtype, median_s = med, times = times, loss = loss, tokens_per_s = tokens / med,
  mfu = peak and flops / med / peak or nil, first_loss = first_loss }

local function finish(torch_r, torch_why)
  set_torch(torch_r, torch_why)
  if torch_r then result.ratio_tokens_per_s = torch_r.median / med end
  write_json()
end

if not on_gpu then
  print(string.format("gpt_step: %s%s, %d params, B=%d T=%d, step=%s, %d threads, %d reps after %d warm-up",
    opts.config, small and " (small)" or "", nparams, B, T, opts.step, threads, reps, warmup))
  print(string.format("  proteus  loss %.7f  median %.3f s  (runs: %s)", loss, med, list(times)))
  local r, err
  if opts.torch ~= "0" then
    r, err = run_torch()
    if not r then
      print("  pytorch  not run: " .. err)
    else
      print(string.format("  pytorch  loss %.7f  median %.3f s  (runs: %s)", r.loss, r.median, list(r.times)))
      if r.first_loss then
        print(string.format("  first-step losses (same weights and tokens): proteus %.7f, pytorch %.7f", first_loss,
          r.first_loss))
      end
      print(string.format("  ratio proteus/pytorch = %.2f  (%s)", med / r.median,
        med < r.median and "proteus faster" or "pytorch faster"))
    end
  else
    err = "torch=0"
  end
  print(string.format("  model FLOPs/step %.4g (%s); tokens/s proteus %.0f%s", flops, flops_m.TRAIN_FORMULA,
    tokens / med, r and string.format(", pytorch %.0f", tokens / r.median) or ""))
  finish(r, err)
  return
end

-- CUDA: the side-by-side table
local ms = cuda.memory_stats()
local function row(name, sec, l)
  local mfu = peak and string.format("%.1f%%", 100 * flops / sec / peak) or "n/a"
  return string.format("| %s | %.1f | %.0f | %s | %.5f |", name, sec * 1e3, tokens / sec, mfu, l)
end
print(string.format("\ngpt_step (%s): %s, %d params, B=%d T=%d (%d tokens/step), step=%s, %d reps after %d warm-up (proteus)",
  dev_name, opts.config, nparams, B, T, tokens, opts.step, reps, warmup))
print(string.format("model FLOPs/step %.3e (%s); MFU against %s; proteus peak allocated %s", flops,
  flops_m.TRAIN_FORMULA, peak and peak_note or ("nothing: " .. peak_note), cuda.fmt_bytes(ms.peak_allocated_bytes)))
result.proteus.peak_allocated_bytes = ms.peak_allocated_bytes
print("")
print("| side | ms/step | tokens/s | MFU | loss |")
print("|---|---|---|---|---|")
print(row(string.format("proteus (%s, %s compute)", opts.dtype, cfg.compute_dtype), med, loss))
if torch_res then
  print(row(torch_setup_line(torch_res), torch_res.median, torch_res.loss))
  print(string.format("\nratio proteus/PyTorch tokens/s = %.3f  (%s)", torch_res.median / med,
    med < torch_res.median and "proteus faster" or "PyTorch faster"))
  if torch_res.first_loss then
    print(string.format("first-step losses (same weights and tokens): proteus %.6f, PyTorch %.6f (rel %.2g; bf16 "
      .. "autocast on the PyTorch side)", first_loss, torch_res.first_loss,
      math.abs(first_loss - torch_res.first_loss) / math.abs(torch_res.first_loss)))
  end
  finish(torch_res)
else
  local why = opts.torch == "0" and "torch=0" or torch_err
  print(string.format("| PyTorch | not run: %s | | | |", why))
  finish(nil, why)
end
