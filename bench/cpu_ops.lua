--- bench/cpu_ops.lua — a small GPT-shaped CPU workload, op by op, forward+backward, in proteus and in
-- PyTorch (bench/cpu_ops_torch.py, Debian's torch on the CPU) with the same thread count, side by side.
--
--   OMP_NUM_THREADS=2 build/proteus bench/cpu_ops.lua [reps=7] [iters=5] [torch=1] [only=name,name]
--   (bench/run_cpu.sh sets the thread count for both sides and runs this and bench/gpt_step.lua)
--
-- Shapes are the PROTEUS v9 model's at T = 256, batch 4: B=4 T=256 C=512 H=8 query / Hkv=4 kv heads of
-- D=64, MLP 1536, vocab V=1024. Each case builds its inputs once (requires_grad where the model has
-- gradients), then one timed run = `iters` × (forward, backward with a fixed upstream gradient, grads
-- cleared); the table shows the median over `reps` runs, per iteration, and the ratio proteus/PyTorch
-- (< 1: proteus faster). The PyTorch side writes each op the way tests/reference/gpt_ref.py does
-- (torch 1.13 has no rms_norm or SDPA-GQA: RMS written out, kv heads repeated, causal mask + softmax).
--
-- cases (same names in cpu_ops_torch.py):
--   linear      x[1024,512] · Wᵀ, W[1536,512]               (matmul fwd; 2 GEMMs bwd)
--   lm_head     x[1024,512] · Eᵀ, E[1024,512]
--   rms_norm    F.rms_norm on [4,256,512]
--   softmax     softmax(-1) on [4,8,256,256]
--   attention   causal GQA attention, q[4,256,8,64], k/v[4,256,4,64]
--   softcap_ce  softcapped (30) cross-entropy, logits [1024,1024], mean
--   relu2       relu(x)² on [4,256,1536]
--   bcast_mul_add  x·s + y, x,y[4,256,512], s[512]   (elementwise + broadcast-reduce of s's gradient)
--   permute_copy   x[4,256,8,64]:permute(1,3,2,4):contiguous()   (strided copy fwd and bwd)
local pt = require "proteus"
local F = require "proteus.functional"
local json = require "proteus.json"
local host = require "proteus._host"
local BC = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "bench_common.lua")

local opts = { reps = "7", iters = "5", torch = "1", only = "" }
for _, a in ipairs(arg or {}) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k or opts[k] == nil then error("cpu_ops: unknown argument '" .. a .. "' (reps=, iters=, torch=, only=)") end
  opts[k] = v
end
local reps, iters = assert(math.tointeger(tonumber(opts.reps))), assert(math.tointeger(tonumber(opts.iters)))
local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local PY = os.getenv("PROTEUS_TEST_PYTHON") or "/usr/bin/python3"
local threads = tonumber(os.getenv("OMP_NUM_THREADS") or "") or 2

local B, T, C, H, HKV, D, M, V = 4, 256, 512, 8, 4, 64, 1536, 1024
pt.manual_seed(1)
local function leaf(shape, scale)
  local t = pt.randn(shape) * (scale or 1)
  t.requires_grad = true
  return t
end

-- each case: { name, setup() -> state, step(state) } ; step does forward + backward
local cases = {
  { "linear", function()
      return { x = leaf({ B * T, C }), w = leaf({ M, C }, 0.04), g = pt.randn({ B * T, M }) }
    end, function(s)
      pt.matmul(s.x, s.w:transpose(1, 2)):backward(s.g)
      s.x:zero_grad(); s.w:zero_grad()
    end },
  { "lm_head", function()
      return { x = leaf({ B * T, C }), w = leaf({ V, C }, 0.04), g = pt.randn({ B * T, V }) }
    end, function(s)
      pt.matmul(s.x, s.w:transpose(1, 2)):backward(s.g)
      s.x:zero_grad(); s.w:zero_grad()
    end },
  { "rms_norm", function()
      return { x = leaf({ B, T, C }), g = pt.randn({ B, T, C }) }
    end, function(s)
      F.rms_norm(s.x):backward(s.g)
      s.x:zero_grad()
    end },
  { "softmax", function()
      return { x = leaf({ B, H, T, T }), g = pt.randn({ B, H, T, T }) }
    end, function(s)
      s.x:softmax(-1):backward(s.g)
      s.x:zero_grad()
    end },
  { "attention", function()
      return { q = leaf({ B, T, H, D }), k = leaf({ B, T, HKV, D }), v = leaf({ B, T, HKV, D }), g = pt.randn({ B, T, H, D }) }
    end, function(s)
      F.attention(s.q, s.k, s.v):backward(s.g)
      s.q:zero_grad(); s.k:zero_grad(); s.v:zero_grad()
    end },
  { "softcap_ce", function()
      return { z = leaf({ B * T, V }, 3), y = pt.randint(0, V, { B * T }) }
    end, function(s)
      F.softcap_cross_entropy(s.z, s.y, { softcap = 30 }):backward()
      s.z:zero_grad()
    end },
  { "relu2", function()
      return { x = leaf({ B, T, M }), g = pt.randn({ B, T, M }) }
    end, function(s)
      F.relu2(s.x):backward(s.g)
      s.x:zero_grad()
    end },
  { "bcast_mul_add", function()
      return { x = leaf({ B, T, C }), s = leaf({ C }), y = leaf({ B, T, C }), g = pt.randn({ B, T, C }) }
    end, function(s)
      (s.x * s.s + s.y):backward(s.g)
      s.x:zero_grad(); s.s:zero_grad(); s.y:zero_grad()
    end },
  { "permute_copy", function()
      return { x = leaf({ B, T, H, D }), g = pt.randn({ B, H, T, D }) }
    end, function(s)
      s.x:permute(1, 3, 2, 4):contiguous():backward(s.g)
      s.x:zero_grad()
    end },
}

local median = BC.median

local wanted = {}
for n in opts.only:gmatch("[^,]+") do wanted[n] = true end
local names, ours = {}, {}
for _, c in ipairs(cases) do
  local name, setup, step = c[1], c[2], c[3]
  if next(wanted) == nil or wanted[name] then
    local s = setup()
    step(s) -- warm-up
    local ts = {}
    for r = 1, reps do
      local t0 = host.clock()
      for _ = 1, iters do step(s) end
      ts[r] = (host.clock() - t0) / iters
      collectgarbage()
    end
    names[#names + 1] = name
    ours[name] = median(ts)
  end
end

local theirs, why = {}, nil
if opts.torch ~= "0" then
  local cmd = string.format("%s %scpu_ops_torch.py --threads %d --reps %d --iters %d --only '%s' 2>&1",
    PY, here, threads, reps, iters, table.concat(names, ","))
  local f = io.popen(cmd)
  local out = f:read("a")
  if f:close() then
    theirs = json.decode(out:match("(%b{})%s*$")).median
  else
    why = out:gsub("%s+$", ""):match("([^\n]*)$")
  end
end

print(string.format("cpu_ops: B=%d T=%d C=%d H=%d/%d D=%d MLP=%d V=%d, %d threads; median of %d runs x %d iters, fwd+bwd per iter",
  B, T, C, H, HKV, D, M, V, threads, reps, iters))
print(string.format("%-15s %12s %12s %8s", "op", "proteus ms", "pytorch ms", "ratio"))
local sp, st_ = 0, 0
for _, n in ipairs(names) do
  local a, b = ours[n] * 1e3, theirs[n] and theirs[n] * 1e3
  sp = sp + a
  if b then st_ = st_ + b end
  print(string.format("%-15s %12.2f %12s %8s", n, a, b and string.format("%.2f", b) or "-",
    b and string.format("%.2f", a / b) or "-"))
end
if next(theirs) then print(string.format("%-15s %12.2f %12.2f %8.2f", "total", sp, st_, sp / st_)) end
if why then print("pytorch side not run: " .. why) end
