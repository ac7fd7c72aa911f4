--- bench/gpu_attention.lua — causal GQA attention on the GPU: the simple CUDA kernel (fused.cu) against
-- the flash kernels (src/kernels/cuda/attention.cu), forward and forward+backward, bf16, at the v9
-- shapes (H = 8 query heads on Hkv = 4 kv heads, head dim 64).
--
--   build-gpu/proteus bench/gpu_attention.lua [B=8] [T=1024,2048] [reps=10] [warmup=3] [simple=1]
--
-- Each mode runs in its own child process (PROTEUS_ATTN=simple / flash: the kernel reads the switch),
-- same inputs; times are CUDA-event medians of `reps` runs after `warmup` (cuda.time). Prints one row
-- per (T, pass): ms of each mode, the ratio simple / flash (> 1: flash faster) and flash's TFLOP/s.
-- FLOPs: forward 4·B·H·T²·D / 2 (Q·Kᵀ and P·V over the causal half); forward+backward 3.5× that (the
-- backward's five products, FlashAttention-2's convention; this backward recomputes S and dP in both
-- of its passes, seven products, which the count does not credit). simple=0 skips the simple kernel
-- (slow at T = 2048). Without a CUDA device it says so and exits 1.
local pt = require "proteus"
local F = require "proteus.functional"
local cuda = require "proteus.cuda"
local BC = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "bench_common.lua")

local opts = { B = "8", T = "1024,2048", reps = "10", warmup = "3", simple = "1", child = nil }
local known = { "B", "T", "reps", "warmup", "simple", "child" }
BC.parse_args("gpu_attention", opts, known)

if not cuda.is_available() then
  io.stderr:write("gpu_attention: needs a CUDA device: " .. cuda.unavailable_reason() .. "\n")
  os.exit(1)
end

local B, H, HKV, D = tonumber(opts.B), 8, 4, 64
local reps, warmup = tonumber(opts.reps), tonumber(opts.warmup)
local Ts = {}
for s in opts.T:gmatch("[^,]+") do Ts[#Ts + 1] = assert(tonumber(s), "gpu_attention: T must be numbers, got " .. s) end

-- child: time both passes for every T in this process's PROTEUS_ATTN mode; one line per result
if opts.child then
  for _, T in ipairs(Ts) do
    pt.manual_seed(T)
    local q = pt.randn({ B, T, H, D }):to("cuda", "bf16")
    local k = pt.randn({ B, T, HKV, D }):to("cuda", "bf16")
    local v = pt.randn({ B, T, HKV, D }):to("cuda", "bf16")
    local gy = pt.randn({ B, T, H, D }):to("cuda", "bf16")
    local fwd = cuda.time(function() pt.no_grad(function() return F.attention(q, k, v) end) end,
      { warmup = warmup, repeats = reps })
    local qg, kg, vg = q:detach(), k:detach(), v:detach()
    qg.requires_grad, kg.requires_grad, vg.requires_grad = true, true, true
    local both = cuda.time(function()
      qg.grad, kg.grad, vg.grad = nil, nil, nil
      F.attention(qg, kg, vg):backward(gy)
    end, { warmup = warmup, repeats = reps })
    io.write(string.format("RESULT %d fwd %.6f\nRESULT %d fwdbwd %.6f\n", T, fwd, T, both))
  end
  os.exit(0)
end

local script = debug.getinfo(1, "S").source:sub(2)
local function run(mode)
  return BC.child_results("gpu_attention", mode, script, "PROTEUS_ATTN=" .. mode,
    string.format("child=1 B=%d T=%s reps=%d warmup=%d", B, BC.shell_quote(opts.T), reps, warmup))
end

local flash = run("flash")
local simple = opts.simple ~= "0" and run("simple") or {}

print(string.format("attention bf16, B=%d H=%d Hkv=%d D=%d, %s, median of %d (warmup %d)", B, H, HKV, D,
  cuda.device_name(), reps, warmup))
print(string.format("%6s  %-7s  %12s  %12s  %8s  %12s", "T", "pass", "simple ms", "flash ms", "ratio", "flash TFLOP/s"))
for _, T in ipairs(Ts) do
  for _, pass in ipairs { "fwd", "fwdbwd" } do
    local f, s = flash[T .. pass], simple[T .. pass]
    local flops = 2 * B * H * T * T * D * (pass == "fwd" and 1 or 3.5)
    print(string.format("%6d  %-7s  %12s  %12.3f  %8s  %12.1f", T, pass, s and string.format("%.3f", s) or "-", f,
      s and string.format("%.2f", s / f) or "-", flops / (f * 1e-3) / 1e12))
  end
end
