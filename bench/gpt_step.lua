--- bench/gpt_step.lua — forward+backward of the PROTEUS v9 model (nn.GPT, the `proteus_v9` config of
-- tests/lua/gpt_configs.lua, 26,829,913 params) at T = 256, batch 4 on the CPU, against the PyTorch
-- reference model (tests/reference/gpt_ref.py, run by bench/gpt_step_torch.py) on the same weights
-- and tokens, same thread count. Prints per-step medians and the ratio proteus / PyTorch (< 1 = faster).
--
--   OMP_NUM_THREADS=2 build/proteus bench/gpt_step.lua [reps=5] [warmup=1] [B=4] [T=256] [config=proteus_v9]
--                                                     [torch=1] [profile=0]
--   (bench/run_cpu.sh runs it with the thread count set for both sides; results: bench/RESULTS.md)
--
-- Weights: the builder's init with every parameter moved by 0.05·N(0,1) (as test_gpt_parity.lua does,
-- so no branch is exactly zero); tokens uniform over the vocabulary (Lua's math.random, seed 1234).
-- The two losses are printed side by side as a sanity check (same model, f32: they agree to ~1e-6).
-- torch=0 skips the PyTorch side (for profiling proteus alone, e.g. under `perf record`).
local pt = require "proteus"
local nn = require "proteus.nn"
local st = require "proteus.safetensors"
local json = require "proteus.json"
local host = require "proteus._host"

local opts = { reps = "5", warmup = "1", B = "4", T = "256", config = "proteus_v9", torch = "1", profile = "0" }
for _, a in ipairs(arg or {}) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k or opts[k] == nil then
    error("gpt_step: unknown argument '" .. a .. "' (reps=, warmup=, B=, T=, config=, torch=, profile=)")
  end
  opts[k] = v
end
local reps, warmup = assert(tonumber(opts.reps)), assert(tonumber(opts.warmup))
local B, T = assert(math.tointeger(tonumber(opts.B))), assert(math.tointeger(tonumber(opts.T)))

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local root = here .. "../"
local G = dofile(root .. "tests/lua/gpt_configs.lua")
local cfg = G.configs[opts.config] or error("gpt_step: unknown config '" .. opts.config .. "'")
local PY = os.getenv("PROTEUS_TEST_PYTHON") or "/usr/bin/python3"
local threads = tonumber(os.getenv("OMP_NUM_THREADS") or "") or 2

local function median(xs)
  local s = {}
  for i, v in ipairs(xs) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return 0.5 * (s[n // 2] + s[n // 2 + 1])
end

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

local times, loss = {}, nil
for i = 1, warmup + reps do
  model:zero_grad()
  local t0 = host.clock()
  local l = model:forward(x, y)
  l:backward()
  local dt = host.clock() - t0
  loss = l:item()
  if i > warmup then times[#times + 1] = dt end
  collectgarbage()
end
local med = median(times)
print(string.format("gpt_step: %s, %d params, B=%d T=%d, %d threads, %d reps after %d warm-up",
  opts.config, model:num_params(), B, T, threads, reps, warmup))
local function list(ts)
  local p = {}
  for i, v in ipairs(ts) do p[i] = string.format("%.3f", v) end
  return table.concat(p, " ")
end
print(string.format("  proteus  loss %.7f  median %.3f s  (runs: %s)", loss, med, list(times)))

if opts.torch ~= "0" then
  local base = os.tmpname()
  os.remove(base)
  local wpath, tpath = base .. "-w.safetensors", base .. "-t.safetensors"
  local weights = {}
  for n, p in model:named_parameters() do weights[n] = p:detach() end
  st.save(wpath, weights)
  st.save(tpath, { x = x, y = y })
  local cmd = string.format("%s %sbench/gpt_step_torch.py --config %s --weights %s --tokens %s --threads %d --reps %d --warmup %d 2>&1",
    PY, root, opts.config, wpath, tpath, threads, reps, warmup)
  local f = io.popen(cmd)
  local out = f:read("a")
  local ok = f:close()
  os.remove(wpath)
  os.remove(tpath)
  if not ok then
    print("  pytorch  not run: " .. out:gsub("%s+$", ""):match("([^\n]*)$"))
  else
    local r = json.decode(out:match("(%b{})%s*$"))
    print(string.format("  pytorch  loss %.7f  median %.3f s  (runs: %s)", r.loss, r.median, list(r.times)))
    print(string.format("  ratio proteus/pytorch = %.2f  (%s)", med / r.median,
      med < r.median and "proteus faster" or "pytorch faster"))
  end
end
