-- tests/gpu/test_fused_norm.lua — CUDA fused norm prologues (src/kernels/cuda/fused_norm.cu) against the
-- CPU oracle: F.mix_rms_norm (y and h, gradients of x, x0, wx, w0) and F.rms_norm_rotary (q with gain,
-- k without; gradients of x and gain), forward and backward.
--
--   build/proteus tests/run.lua tests/gpu/test_fused_norm.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- f32 and f64: both devices run the same inputs and upstream gradients; every output and gradient is
-- compared by relative norm (f32 1e-5: the long sums run in another order; f64 1e-12). bf16: the device
-- runs bf16 copies, the CPU runs f32 copies of the same bf16-rounded values; relative norm 2e-2 (bf16
-- storage, fp32 math). Shapes take the vectorised (C a multiple of 16 bytes) and scalar paths, several
-- row chunks of the weight sums, partial rotary with pass-through dims and NTK scaling. Skips without a
-- device; PROTEUS_GPU_TEST_DEVICE=cpu checks the harness (bf16 left out).
local pt = require "proteus"
local F = require "proteus.functional"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)
local TOL = { f32 = 1e-5, f64 = 1e-12, bf16 = 2e-2 }

-- runs fn on dev with inputs (nil allowed) cast to dt; outputs {..} get upstream gradients gys (f32 or
-- f64 on the CPU, cast here); returns the outputs and the gradients of the inputs, all on the CPU in f64
local function run_on(dev, dt, fn, inputs, n_in, gys)
  local xs = {}
  for i = 1, n_in do
    if inputs[i] then
      local t = inputs[i]:to(dt):to(dev):detach()
      t.requires_grad = true
      xs[i] = t
    end
  end
  local outs = { fn(table.unpack(xs, 1, n_in)) }
  local total
  for k, o in ipairs(outs) do
    local term = o * gys[k]:to(dt):to(dev)
    total = total and total + term or term
  end
  total:backward(pt.ones(total:shape(), dt):to(dev))
  local r_out, r_grad = {}, {}
  for k, o in ipairs(outs) do r_out[k] = o:detach():to("cpu"):to("f64") end
  for i = 1, n_in do
    if xs[i] then r_grad[i] = assert(xs[i].grad, "no gradient for input " .. i):to("cpu"):to("f64") end
  end
  return r_out, r_grad
end

-- the device in dt against the CPU (in dt, or in f32 on bf16-rounded values for bf16)
local function compare(name, dt, fn, inputs, n_in, out_shapes)
  local ref_dt = dt == "bf16" and "f32" or dt
  local base = {}
  for i = 1, n_in do
    -- bf16: both sides start from the same bf16 values
    if inputs[i] then base[i] = dt == "bf16" and inputs[i]:to("bf16"):to("f32") or inputs[i]:to(ref_dt) end
  end
  local gys = {}
  for k, s in ipairs(out_shapes) do
    gys[k] = pt.randn(s, ref_dt)
    if dt == "bf16" then gys[k] = gys[k]:to("bf16"):to("f32") end
  end
  local o1, g1 = run_on(DEV, dt, fn, base, n_in, gys)
  local o0, g0 = run_on("cpu", ref_dt, fn, base, n_in, gys)
  for k = 1, #o0 do
    local r = G.rel(o1[k], o0[k])
    assert(r <= TOL[dt], string.format("%s %s output %d (seed %d): rel %.3g > %g", name, dt, k, SEED, r, TOL[dt]))
  end
  for i = 1, n_in do
    if g0[i] then
      local r = G.rel(g1[i], g0[i])
      assert(r <= TOL[dt], string.format("%s %s grad of input %d (seed %d): rel %.3g > %g", name, dt, i, SEED, r,
        TOL[dt]))
    end
  end
end

local function dtypes()
  if G.SELF then return { "f32", "f64" } end
  return { "f32", "f64", "bf16" }
end

local T = {}

function T.mix_rms_norm_matches_cpu(t)
  G.need_device(t)
  for _, dt in ipairs(dtypes()) do
    for _, shape in ipairs { { 4, 33, 512 }, { 3, 7, 40 }, { 2, 5, 37 } } do
      local C = shape[3]
      local x, x0 = pt.randn(shape) * 2, pt.randn(shape)
      local wx, w0 = pt.randn({ C }), pt.randn({ C })
      local tag = table.concat(shape, "x")
      compare("mix_rms_norm " .. tag, dt, function(a, b, c, d) return F.mix_rms_norm(a, b, c, d) end,
        { x, x0, wx, w0 }, 4, { shape, shape })
      compare("mix_rms_norm ln-scale " .. tag, dt,
        function(a, b, c, d) return F.mix_rms_norm(a, b, c, d, F.RMS_EPS, 1 / math.sqrt(3)) end,
        { x, x0, wx, w0 }, 4, { shape, shape })
      compare("mix_rms_norm wx=nil x0_scale " .. tag, dt,
        function(a, b, _, d) return F.mix_rms_norm(a, b, nil, d, F.RMS_EPS, 0.5, 0.70703125) end,
        { x, x0, nil, w0 }, 4, { shape, shape })
    end
  end
end

function T.rms_norm_rotary_matches_cpu(t)
  G.need_device(t)
  for _, dt in ipairs(dtypes()) do
    for _, c in ipairs {
      { shape = { 2, 70, 8, 64 }, rope = { dims = 16, base = 10000, train_len = 64 } }, -- partial, NTK
      { shape = { 2, 9, 3, 36 }, rope = { base = 50000, train_len = false, offset = 5 } },
      { shape = { 1, 4, 2, 130 }, rope = { dims = 128 } },                           -- > 32 pairs per row
    } do
      local x, gain = pt.randn(c.shape) * 2, pt.randn({ c.shape[3] }) * 1.5
      local tag = table.concat(c.shape, "x")
      compare("rms_norm_rotary q " .. tag, dt, function(a, g) return F.rms_norm_rotary(a, c.rope, g) end,
        { x, gain }, 2, { c.shape })
      compare("rms_norm_rotary k " .. tag, dt, function(a) return F.rms_norm_rotary(a, c.rope) end,
        { x }, 1, { c.shape })
    end
  end
end

function T.mix_rms_norm_is_deterministic(t)
  -- the weight gradients are ordered sums (no atomics): two runs give the same bits
  G.need_device(t)
  local shape = { 8, 64, 256 }
  local x, x0, w = pt.randn(shape), pt.randn(shape), pt.randn({ 256 })
  local gy = pt.randn(shape)
  local function once()
    local a, b, c = x:to(DEV):detach(), x0:to(DEV):detach(), w:to(DEV):detach()
    c.requires_grad = true
    a.requires_grad = true
    local _, h = F.mix_rms_norm(a, b, c, c)
    h:backward(gy:to(DEV))
    return c.grad:to("cpu"), a.grad:to("cpu")
  end
  local w1, x1 = once()
  local w2, x2 = once()
  G.same(t, "mix_rms_norm dw, run 2 vs run 1", w2, w1)
  G.same(t, "mix_rms_norm dx, run 2 vs run 1", x2, x1)
end

return T
