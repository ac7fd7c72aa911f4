-- tests/lua/test_graph_api.lua — CUDA graphs from Lua without a GPU: the errors of proteus.cuda's
-- cuda.graph (no CUDA in the build / no device, bad arguments) and of train.run's cuda_graph option
-- (a model on the CPU, unknown or bad options, grad accumulation, late QAT, optimizers without the
-- launch-only prepare/apply API), and the runner's step code itself on the CPU: with the one check
-- that refuses a CPU model removed, its eager steps (the code a GPU captures: zero_grad, forward,
-- backward, device-side clip into a fixed tensor, prepare(lr_mul, {all = true}) + apply()) give the
-- plain loop's losses bit for bit, and a NaN stops the run saying the update was applied. The
-- captures themselves are tests/gpu/test_graph.lua.
--
--   build/proteus tests/run.lua tests/lua/test_graph_api.lua
local pt = require "proteus"
local nn = require "proteus.nn"
local optim = require "proteus.optim"
local testing = require "proteus.testing"
local cuda = require "proteus.cuda"
local train = require "proteus.train"

local tests = {}

-- proteus.train with the CPU-model check removed (the runner's steps then run eagerly on the CPU)
local function train_on_cpu()
  local path = package.searchpath("proteus.train", package.path)
  local f = assert(io.open(assert(path, "proteus.train not found on package.path"), "r"))
  local src = f:read("a")
  f:close()
  local n
  src, n = src:gsub('if not dev:match%("%^cuda"%) then', "if false then")
  assert(n == 1, "proteus/train.lua: the CPU-model check of cuda_graph was not found (" .. n .. " matches)")
  return assert(load(src, "=proteus/train.lua (CPU check removed)"))()
end

local function gpt_run(tr, graph, extra)
  local data = require "proteus.data"
  pt.manual_seed(1337)
  local model = nn.GPT { vocab_size = 1024, num_layers = 2, model_dim = 32, num_heads = 2, num_kv_heads = 1,
    mlp_mult = 2, bigram_vocab_size = 64, bigram_dim = 16, smear_gate = true }
  local opts = testing.proteus_optimizers(model)
  local o = { model = model, optimizers = opts, stream = data.stream(data.paths().train), seq_len = 32,
    batch_seqs = 2, max_steps = 6, clip = 0.3, quiet = true, checkpoint = false, lr_schedule = train.iteration_lr(4),
    momentum_schedule = train.momentum_warmup(0.85, 0.95, 4), cuda_graph = graph,
    cuda_graph_warmup = graph and 100 or nil }
  for k, v in pairs(extra or {}) do o[k] = v end
  return tr.run(o), model
end

local function tiny()
  pt.manual_seed(3)
  return nn.GPT { vocab_size = 64, num_layers = 1, model_dim = 16, num_heads = 2, num_kv_heads = 1, mlp_mult = 2 }
end

-- an optimizer with the launch-only API (the run stops before any step uses it)
local function api_opt() return { kind = "Fake", prepare = function() end, apply = function() end } end

local function run_opts(extra)
  local o = { model = tiny(), optimizers = { api_opt() }, stream = {}, seq_len = 8, batch_seqs = 2, max_steps = 2,
    quiet = true, checkpoint = false, cuda_graph = true }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

tests.graph_without_a_device_raises_the_module_error = function(T)
  if cuda.is_available() then T.skip("a CUDA device is present: tests/gpu/test_graph.lua covers it") end
  local called = false
  local want = cuda.built() and "cuda:0: no CUDA device is usable" or "CUDA not built into this proteus"
  local msg = T.raises(function() cuda.graph(function() called = true end) end, want)
  if cuda.built() then assert(msg:find(cuda.unavailable_reason(), 1, true), msg) end
  T.eq(called, false, "fn must not run when the capture cannot start")
  T.eq(cuda.capturing(), nil)
  -- nothing was left half-started: the same error again, and abort is harmless
  T.raises(function() cuda.graph(function() end, { device = "cuda:0" }) end, want)
  T.eq(cuda.capturing(), nil)
end

tests.graph_argument_errors = function(T)
  T.raises(function() cuda.graph(42) end, "cuda.graph: expected the function to capture, got number")
  T.raises(function() cuda.graph(function() end, "cuda") end, "cuda.graph: opts must be a table")
  T.raises(function() cuda.graph(function() end, { devcie = 0 }) end, "cuda.graph: unknown option devcie")
end

tests.train_cuda_graph_on_a_cpu_model = function(T)
  T.raises(function() train.run(run_opts()) end,
    "train.run: cuda_graph = true needs the model on a CUDA device, but its parameters are on cpu")
end

tests.train_cuda_graph_option_errors = function(T)
  T.raises(function() train.run(run_opts { cuda_grpah = true }) end,
    "train.run: unknown option cuda_grpah (did you mean cuda_graph?)")
  T.raises(function() train.run(run_opts { cuda_graph_warmpu = 2 }) end,
    "unknown option cuda_graph_warmpu (did you mean cuda_graph_warmup?)")
  T.raises(function() train.run(run_opts { cuda_graph = "yes" }) end, "cuda_graph must be true or false, got yes")
  T.raises(function() train.run(run_opts { cuda_graph_warmup = 0 }) end,
    "cuda_graph_warmup must be an integer >= 1 (eager steps before the capture), got 0")
  T.raises(function() train.run(run_opts { cuda_graph_warmup = 1.5 }) end, "cuda_graph_warmup must be an integer")
end

tests.train_cuda_graph_what_stays_eager = function(T)
  T.raises(function() train.run(run_opts { qat = { threshold = 0.15, names = { "%.weight$" } } }) end,
    "cuda_graph = true cannot be combined with qat")
end

tests.train_cuda_graph_needs_the_multi_tensor_optimizers = function(T)
  local p = pt.zeros({ 2, 2 }, { requires_grad = true })
  T.raises(function() train.run(run_opts { optimizers = { optim.AdamW { params = { p }, lr = 0.1, foreach = false } } }) end,
    "optimizer 1 (AdamW) was made with foreach = false")
  T.raises(function() train.run(run_opts { optimizers = { optim.SGD { params = { p }, lr = 0.1 } } }) end,
    "optimizer 1 (SGD) has none (AdamW, Adam and Muon have it)")
end

tests.train_cuda_graph_names_the_missing_optimizer_function = function(T)
  local no_prepare = { kind = "Fake", apply = function() end }
  T.raises(function() train.run(run_opts { optimizers = { api_opt(), no_prepare } }) end,
    "optimizer 2 (Fake) has no prepare(lr_mul)")
  local no_apply = { kind = "Fake", prepare = function() end }
  T.raises(function() train.run(run_opts { optimizers = { no_apply } }) end, "optimizer 1 (Fake) has no apply()")
  -- the real optimizers: either they have the API (then the CPU model is the error) or the message
  -- names what proteus.optim lacks
  local m = tiny()
  local adam = optim.AdamW { params = m:parameters(), lr = 0.01 }
  local msg = T.raises(function() train.run(run_opts { model = m, optimizers = { adam } }) end, "train.run: cuda_graph")
  if type(adam.prepare) ~= "function" then
    assert(msg:find("optimizer 1 (AdamW) has no prepare(lr_mul)", 1, true), msg)
  elseif type(adam.apply) ~= "function" then
    assert(msg:find("optimizer 1 (AdamW) has no apply()", 1, true), msg)
  else
    assert(msg:find("needs the model on a CUDA device", 1, true), msg)
  end
end

tests.graph_step_code_matches_the_plain_loop_on_the_cpu = function(T)
  local tr = train_on_cpu()
  local a, ma = gpt_run(tr, false)
  local b, mb = gpt_run(tr, true)
  T.eq(b.losses, a.losses)
  T.eq(b.cuda_graph, nil, "no capture happens within cuda_graph_warmup steps")
  local wa = {}
  for n, p in ma:named_parameters() do wa[n] = p end
  for n, p in mb:named_parameters() do T.eq((p - wa[n]):abs():max():item(), 0, n) end
  -- clip_when = "before" takes the same path
  local c = gpt_run(tr, true, { clip_when = "before", max_steps = 2 })
  local d = gpt_run(tr, false, { clip_when = "before", max_steps = 2 })
  T.eq(c.losses, d.losses)
  -- grad_accum micro-steps are part of the captured step: same weights bit for bit; the step's loss
  -- is their mean on the device (f32) instead of on the host (f64), so within f32 rounding
  local e, me = gpt_run(tr, true, { grad_accum = 2, max_steps = 3 })
  local f, mf = gpt_run(tr, false, { grad_accum = 2, max_steps = 3 })
  for k = 1, 3 do T.near(e.losses[k], f.losses[k], 1e-6 * math.abs(f.losses[k]), "accum loss " .. k) end
  local wf = {}
  for n, p in mf:named_parameters() do wf[n] = p end
  for n, p in me:named_parameters() do T.eq((p - wf[n]):abs():max():item(), 0, "accum " .. n) end
end

tests.graph_step_nan_stops_after_the_update = function(T)
  local tr = train_on_cpu()
  local calls = 0
  local msg = T.raises(function()
    gpt_run(tr, true, { on_step = function() calls = calls + 1 end,
      lr_schedule = function(ctx) return ctx.step >= 2 and 1e30 or 1 end })
  end, "at step 4/6; stopped after the optimizer step (cuda_graph = true reads it after the replayed step)")
  assert(msg:find("is nan", 1, true) or msg:find("is inf", 1, true) or msg:find("is -inf", 1, true), msg)
  T.eq(calls, 3)
end

tests.cuda_graph_false_is_the_default_path = function(T)
  -- cuda_graph = false is accepted and changes nothing (the run fails later, on the empty stream)
  local sgd = optim.SGD { params = { pt.zeros({ 1 }, { requires_grad = true }) }, lr = 0.1 }
  local o = run_opts { cuda_graph = false, optimizers = { sgd } }
  local msg = T.raises(function() train.run(o) end, "")
  assert(not msg:find("cuda_graph", 1, true), msg)
end

return tests
