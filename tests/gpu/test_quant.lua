-- tests/gpu/test_quant.lua — the quantization kernels (src/kernels/cuda/quant.cu) on CUDA against the
-- CPU (src/kernels/cpu/quant.c), through the binding proteus._quant that lua/lib/proteus/quant.lua
-- calls (its policies compute scales with quantile/std on the weight's device; here the scales are
-- computed once on the CPU and handed to both devices, so only the kernels differ).
--
--   build/proteus tests/run.lua tests/gpu/test_quant.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--   PROTEUS_GPU_TEST_DEVICE=cpu build/proteus tests/run.lua tests/gpu/test_quant.lua   (harness self-check)
--
-- Expected agreement: quant_rows and quant_dequant use the CPU's exact f32 operations (correctly
-- rounded division, rintf half-to-even, the same clamps; err summed in double in column order), so q,
-- err and the dequantized values must be IDENTICAL. The GPTQ sweep is identical within one block of
-- columns (same float operations in the same order); across blocks the trailing update is an SGEMM
-- whose summation order differs between cuBLAS and OpenBLAS (a few ulps), and a value lying on a
-- rounding boundary can then flip q by one, which propagates along that row. So for C > block we
-- bound the rows with any difference (at most max(2, R/8)) and the GPTQ objective
-- Σ_r d_r H d_rᵀ (d = w − q·s) to 2% relative; for C <= block q must be identical. Skips without a device.
local pt = require "proteus"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")
local Q = require "proteus._quant"

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)

local need_device = G.need_device

local function maxdiff(a, b)
  local d = (a:to("cpu"):to("f64") - b:to("cpu"):to("f64")):abs()
  return d:numel() > 0 and d:max():item() or 0
end

local function identical(got, want, what)
  assert(got:dtype() == want:dtype(), string.format("%s: dtype %s vs %s", what, got:dtype(), want:dtype()))
  local g, w = table.concat(got:shape(), "x"), table.concat(want:shape(), "x")
  assert(g == w, string.format("%s: shape %s vs %s", what, g, w))
  local m = maxdiff(got, want)
  assert(m == 0, string.format("%s (seed %d): max |difference| %.17g, expected identical", what, SEED, m))
end

-- weights: normal, heavy-tailed (randn³), and a row of exact half-way quotients (x/s = k + 0.5)
local function weights(R, C, kind)
  if kind == "normal" then return pt.randn({ R, C }) * 0.05 end
  if kind == "heavy" then return (pt.randn({ R, C }) ^ 3) * 0.02 end
  local v = {}
  for i = 1, R * C do v[i] = ((i - 1) % 80 - 40 + 0.5) * 0.25 end -- quotients k + 0.5 for s = 0.25
  return pt.tensor(v, "f32"):reshape { R, C }
end

local SHAPES = { { 1, 1 }, { 1, 1000 }, { 7, 33 }, { 64, 257 }, { 300, 5 }, { 3, 4099 } }

local function rows_case(w, opts, what)
  local function run(dev)
    local o = { qmin = opts.qmin, qmax = opts.qmax }
    for _, k in ipairs { "scale", "clip", "err_scale" } do
      if opts[k] then o[k] = opts[k]:to(dev) end
    end
    return Q.rows(w:to(dev), o)
  end
  local qd, ed = run(DEV)
  local qc, ec = run("cpu")
  identical(qd, qc, what .. " q")
  assert((ed == nil) == (ec == nil), what .. ": err returned on one device only")
  if ec then identical(ed, ec, what .. " err") end
  return qc
end

return {
  rows_int6_int8_match_cpu = function(T)
    need_device(T)
    for _, sh in ipairs(SHAPES) do
      local R, C = sh[1], sh[2]
      for _, kind in ipairs { "normal", "heavy", "halves" } do
        local w = weights(R, C, kind)
        local what = string.format("%s %dx%d", kind, R, C)
        if kind == "halves" then
          local s = pt.full({ R }, 0.25)
          rows_case(w, { scale = s, err_scale = s:to("f16"), qmin = -127, qmax = 127 }, what .. " half-even int8")
          rows_case(w, { scale = s, qmin = -32, qmax = 31 }, what .. " half-even int6 (clamped)")
        else
          -- int6 per-row percentile clip (quant.int_row_clip), f32 scale, f16 err scale
          local clip = w:abs():quantile(0.9999, 2)
          local s32 = (clip / 31):clamp(1 / 31)
          rows_case(w, { clip = clip, scale = s32, err_scale = s32:to("f16"), qmin = -31, qmax = 31 },
            what .. " int6 row clip")
          -- int6 without clip over [-32, 31] (quant.int6_gptq_lite_tensor), scales small enough to clamp
          local sl = (clip / 62):clamp(1e-6)
          rows_case(w, { scale = sl, err_scale = sl:to("f16"), qmin = -32, qmax = 31 }, what .. " int6 clamped")
          -- int8 SDClip-like f16 scales (quant.sdclip) and int8 per tensor (quant.int8_tensor: one row)
          local s16 = C > 1 and ((w:std(2) * 20) / 127):clamp(1 / 127):to("f16") or pt.full({ R }, 0.01):to("f16")
          rows_case(w, { scale = s16, err_scale = s16, qmin = -127, qmax = 127 }, what .. " int8 sdclip")
          local flat = w:reshape { 1, -1 }
          local amax = flat:abs():max():item()
          local st = pt.tensor({ amax > 0 and amax / 127 or 1.0 }, "f64"):to("f32")
          rows_case(flat, { scale = st, qmin = -127, qmax = 127 }, what .. " int8 per tensor")
        end
      end
    end
  end,

  dequant_matches_cpu = function(T)
    need_device(T)
    for _, sh in ipairs(SHAPES) do
      local R, C = sh[1], sh[2]
      local w = (pt.randn({ R, C }) ^ 3) * 0.02
      local s16 = ((w:abs():max(2) / 31):clamp(1e-4)):to("f16")
      local q = Q.rows(w, { scale = s16, qmin = -31, qmax = 31 })
      local what = string.format("dequant %dx%d", R, C)
      identical(Q.dequant(q:to(DEV), s16:to(DEV)), Q.dequant(q, s16), what .. " per row")
      local st = pt.tensor({ 0.0123 }, "f32")
      identical(Q.dequant(q:to(DEV), st:to(DEV)), Q.dequant(q, st), what .. " per tensor")
    end
    -- a 3-D value tensor: everything after dim 0 is the row
    local q3 = Q.rows(pt.randn({ 5, 42 }), { scale = pt.full({ 5 }, 0.02), qmin = -127, qmax = 127 })
    q3 = q3:reshape { 5, 6, 7 }
    local s3 = pt.randn({ 5 }):abs():to("f16")
    identical(Q.dequant(q3:to(DEV), s3:to(DEV)), Q.dequant(q3, s3), "dequant 5x6x7 per row")
  end,

  gptq_sweep_close_to_cpu = function(T)
    need_device(T)
    local cases = { { 48, 200, 64 }, { 1, 130, 128 }, { 33, 127, 128 }, { 16, 300, 128 }, { 40, 96, 32 } }
    for ci, cs in ipairs(cases) do
      local R, C, K = cs[1], cs[2], cs[3]
      local x = pt.randn({ 4 * C, C })
      local H = x:transpose(1, 2):matmul(x) / (4 * C)
      local w = ci % 2 == 1 and pt.randn({ R, C }) * 0.05 or (pt.randn({ R, C }) ^ 3) * 0.02
      local s16 = C > 1 and ((w:std(2) * 12.85) / 31):clamp(1 / 31 / 64):to("f16") or pt.full({ R }, 0.01):to("f16")
      local opts = { qmin = -31, qmax = 31, damp = 0.01, block = K }
      local ok, qd = pcall(Q.gptq, w:to(DEV), H:to(DEV), s16:to(DEV), opts)
      assert(ok, qd)
      local qc = Q.gptq(w, H, s16, opts)
      local what = string.format("gptq %dx%d block %d", R, C, K)
      if C <= K then
        identical(qd, qc, what .. " (one block: same operations, same order)")
      else
        local rowdiff = (qd:to("cpu"):to("f64") - qc:to("f64")):abs():max(2)
        local nbad = rowdiff:gt(0):to("f32"):sum():item()
        assert(nbad <= math.max(2, R // 8),
          string.format("%s (seed %d): %d of %d rows differ from the CPU", what, SEED, nbad, R))
        assert(rowdiff:max():item() <= 62, what .. ": q out of range")
        local function objective(q)
          local d = w:to("f64") - q:to("cpu"):to("f64") * s16:to("f64"):reshape { R, 1 }
          return (d:matmul(H:to("f64")) * d):sum():item()
        end
        local od, oc = objective(qd), objective(qc)
        assert(math.abs(od - oc) <= 2e-2 * oc,
          string.format("%s (seed %d): GPTQ objective %.6g vs CPU %.6g", what, SEED, od, oc))
      end
    end
  end,
}
