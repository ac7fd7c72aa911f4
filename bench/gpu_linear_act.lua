--- bench/gpu_linear_act.lua — the MLP's up projection + relu² on the GPU: cuBLAS + the activation kernel
-- against the fused bf16 GEMM kernel (src/kernels/cuda/linear_act.cu), forward and forward+backward, at
-- the MLP shapes of the reference runs: rows 98,304 (96·1024: one GPU's share of v9's 786,432-token
-- batch) and 8,192 (8·1024: a TTT / eval batch), in = 512, out = 1,536 (v9: mlp_mult 3) and 2,048
-- (#1539: 4×).
--
--   build-gpu/proteus bench/gpu_linear_act.lua [rows=98304,8192] [out=1536,2048] [in=512] [reps=20]
--       [warmup=5] [act=relu2|leaky_relu2]
--
-- Each mode runs in its own child process (PROTEUS_LINEAR_ACT=cublas / fused: the kernel reads the
-- switch at every call), same inputs (bf16 x ~ N(0,1), W ~ N(0, 1/in)); times are CUDA-event medians
-- of `reps` runs after `warmup` (cuda.time). The cublas child also times the bare GEMM x·Wᵀ (matmul,
-- no activation) as the floor the fused forward is trying to reach. Prints one row per (rows, out,
-- pass): ms of each, the ratio cublas / fused (> 1: fused faster) and TFLOP/s of both. FLOPs: forward
-- 2·rows·in·out; forward+backward 3× that (dx and dW; the backward is the same code in both modes,
-- only h comes from a different kernel). The result decides PROTEUS_LINEAR_ACT's "auto" (cuBLAS until
-- fused wins at these shapes); record it in bench/RESULTS.md. Without a CUDA device it says so and
-- exits 1.
local pt = require "proteus"
local F = require "proteus.functional"
local cuda = require "proteus.cuda"
local BC = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "bench_common.lua")

local opts = { rows = "98304,8192", out = "1536,2048", ["in"] = "512", reps = "20", warmup = "5", act = "relu2",
  child = nil }
local known = { "rows", "out", "in", "reps", "warmup", "act", "child" }
BC.parse_args("gpu_linear_act", opts, known)
assert(opts.act == "relu2" or opts.act == "leaky_relu2", "gpu_linear_act: act must be relu2 or leaky_relu2")

if not cuda.is_available() then
  io.stderr:write("gpu_linear_act: needs a CUDA device: " .. cuda.unavailable_reason() .. "\n")
  os.exit(1)
end

local function list(s, what)
  local r = {}
  for v in s:gmatch("[^,]+") do r[#r + 1] = assert(math.tointeger(tonumber(v)), "gpu_linear_act: " .. what .. " must be integers, got " .. v) end
  return r
end
local ROWS, OUTS, K = list(opts.rows, "rows"), list(opts.out, "out"), list(opts["in"], "in")[1]
local reps, warmup = tonumber(opts.reps), tonumber(opts.warmup)

local function act(x, w)
  if opts.act == "relu2" then return F.linear_relu2(x, w) end
  return F.linear_leaky_relu2(x, w, 0.5)
end

-- child: time forward and forward+backward for every shape in this process's PROTEUS_LINEAR_ACT mode
if opts.child then
  for _, M in ipairs(ROWS) do
    for _, N in ipairs(OUTS) do
      local key = M .. "x" .. N
      pt.manual_seed(M + N)
      local x = pt.randn({ M, K }):to("cuda", "bf16")
      local w = (pt.randn({ N, K }) * (1 / math.sqrt(K))):to("cuda", "bf16")
      local g = pt.randn({ M, N }):to("cuda", "bf16")
      local fwd = cuda.time(function() pt.no_grad(function() return act(x, w) end) end,
        { warmup = warmup, repeats = reps })
      local xg, wg = x:detach(), w:detach()
      xg.requires_grad, wg.requires_grad = true, true
      local both = cuda.time(function()
        xg.grad, wg.grad = nil, nil
        act(xg, wg):backward(g)
      end, { warmup = warmup, repeats = reps })
      io.write(string.format("RESULT %s fwd %.6f\nRESULT %s fwdbwd %.6f\n", key, fwd, key, both))
      if opts.child == "cublas" then
        local wt = w:transpose(1, 2)
        local mm = cuda.time(function() pt.no_grad(function() return x:matmul(wt) end) end,
          { warmup = warmup, repeats = reps })
        io.write(string.format("RESULT %s gemm %.6f\n", key, mm))
      end
      x, w, g, xg, wg = nil, nil, nil, nil, nil
      collectgarbage()
    end
  end
  os.exit(0)
end

local script = debug.getinfo(1, "S").source:sub(2)
local function run(mode)
  local q = BC.shell_quote
  return BC.child_results("gpu_linear_act", mode, script, "PROTEUS_LINEAR_ACT=" .. mode,
    string.format("child=%s rows=%s out=%s in=%d reps=%d warmup=%d act=%s", mode, q(opts.rows), q(opts.out), K, reps,
      warmup, opts.act))
end

local cublas = run("cublas")
local fused = run("fused")

print(string.format("linear + %s, bf16, in=%d, %s, median of %d (warmup %d)", opts.act, K, cuda.device_name(), reps,
  warmup))
print(string.format("%7s %5s  %-7s %10s %10s %7s %12s %12s", "rows", "out", "pass", "cublas ms", "fused ms", "ratio",
  "cublas TF/s", "fused TF/s"))
local function tf(flops, ms) return ms and string.format("%.1f", flops / (ms * 1e-3) / 1e12) or "-" end
for _, M in ipairs(ROWS) do
  for _, N in ipairs(OUTS) do
    local key = M .. "x" .. N
    for _, pass in ipairs { "gemm", "fwd", "fwdbwd" } do
      local c, f = cublas[key .. pass], fused[key .. pass]
      local flops = 2 * M * K * N * (pass == "fwdbwd" and 3 or 1)
      print(string.format("%7d %5d  %-7s %10s %10s %7s %12s %12s", M, N, pass == "gemm" and "matmul" or pass,
        c and string.format("%.3f", c) or "-", f and string.format("%.3f", f) or "-",
        (c and f) and string.format("%.2f", c / f) or "-", tf(flops, c), tf(flops, f)))
    end
  end
end
