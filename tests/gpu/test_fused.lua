-- tests/gpu/test_fused.lua — CUDA fused GPT ops (forward and backward) against the CPU oracle.
--
--   build/proteus tests/run.lua tests/gpu/test_fused.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Each op runs on both devices from the same random inputs and upstream gradient; outputs and every
-- input gradient are compared by relative norm (2e-5 f32: the CUDA attention backward adds with
-- atomics; 1e-10 f64). The CE mean is also held to <= 1 ulp (f32) of the f64 row-order sum of the same
-- NLLs. Skips without a device; PROTEUS_GPU_TEST_DEVICE=cpu checks the harness.
local pt = require "proteus"
local F = require "proteus.functional"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)
local TOL = { f32 = 2e-5, f64 = 1e-10 }

local need_device, rel = G.need_device, G.rel

-- runs fn(inputs...) on a device; returns the output and the gradients of the float inputs
local function run_on(dev, fn, inputs, gy)
  local xs = {}
  for i, x in ipairs(inputs) do
    local t = x:to(dev):detach()
    if x:dtype() == "f32" or x:dtype() == "f64" then t.requires_grad = true end
    xs[i] = t
  end
  local y = fn(table.unpack(xs))
  if gy then y:backward(gy:to(dev)) end
  local grads = {}
  for i, x in ipairs(xs) do grads[i] = x.grad end
  return y, grads
end

local function compare(name, dt, fn, inputs, gout)
  local y0 = pt.no_grad(function() return fn(table.unpack(inputs)) end)
  local gy = gout(y0) -- one upstream gradient for both devices
  local y1, g1 = run_on(DEV, fn, inputs, gy)
  local g0
  y0, g0 = run_on("cpu", fn, inputs, gy)
  local r = rel(y1, y0)
  assert(r <= TOL[dt], string.format("%s %s forward (seed %d): rel %.3g", name, dt, SEED, r))
  for i = 1, #inputs do
    if g0[i] then
      local ri = rel(g1[i], g0[i])
      assert(ri <= TOL[dt], string.format("%s %s grad of input %d (seed %d): rel %.3g", name, dt, i, SEED, ri))
    end
  end
end

local function same_shape_randn(y) return pt.randn(y:shape(), y:dtype()) end

local T = {}

function T.norms_rotary_activations(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64" } do
    local x = pt.randn({ 2, 9, 4, 32 }, dt)
    compare("rms_norm", dt, function(a) return F.rms_norm(a, nil, 0.7) end, { x }, same_shape_randn)
    compare("rotary full", dt, function(a) return F.rotary(a, { base = 50000 }) end, { x }, same_shape_randn)
    compare("rotary partial ntk", dt, function(a) return F.rotary(a, { dims = 16, base = 10000, train_len = 4 }) end,
      { x }, same_shape_randn)
    local h = pt.randn({ 6, 40 }, dt)
    compare("relu2", dt, F.relu2, { h }, same_shape_randn)
    compare("leaky_relu2", dt, function(a) return F.leaky_relu2(a, 0.5) end, { h }, same_shape_randn)
    compare("star_relu", dt, F.star_relu, { h, pt.randn({ 40 }, dt), pt.randn({ 40 }, dt) }, same_shape_randn)
    compare("smear_gate", dt, F.smear_gate, { pt.randn({ 2, 7, 16 }, dt), pt.randn({ 16 }, dt) }, same_shape_randn)
  end
end

function T.attention_and_xsa(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64" } do
    for _, T_ in ipairs { 1, 17, 70 } do
      local q = pt.randn({ 2, T_, 8, 64 }, dt)
      local k = pt.randn({ 2, T_, 4, 64 }, dt)
      local v = pt.randn({ 2, T_, 4, 64 }, dt)
      compare("attention T=" .. T_, dt, F.attention, { q, k, v }, same_shape_randn)
      compare("xsa T=" .. T_, dt, F.xsa, { q, v }, same_shape_randn)
    end
  end
end

function T.softcap_cross_entropy(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64" } do
    local logits = pt.randn({ 37, 1024 }, dt) * 20
    local tg = pt.randint(0, 1024, { 37 })
    compare("softcap_ce mean", dt, function(z) return F.softcap_cross_entropy(z, tg:to(z:device())) end,
      { logits }, function() return pt.ones({}, dt) end)
    compare("softcap_ce none", dt,
      function(z) return F.softcap_cross_entropy(z, tg:to(z:device()), { reduction = "none" }) end,
      { logits }, same_shape_randn)
    compare("ce no cap", dt,
      function(z) return F.softcap_cross_entropy(z, tg:to(z:device()), { softcap = 0, reduction = "none" }) end,
      { logits }, same_shape_randn)
  end
end

-- The CE ops' reduction "mean" on the device (the "ce_mean" kernel: strided f64 partial sums, then a fixed
-- tree) against its CPU definition: an f64 sum of the same per-row NLLs (the device's own, from
-- reduction "none") in row order, divided by n, rounded once. The two f64 sums differ only in order
-- (each within (n-1)·2^-53·Σ|nll| of the exact sum), so in f32 the results agree to <= 1 ulp; in f64
-- there is no rounding to absorb the order, so the bound is twice that ordering error plus 2 ulps.
local function ordered_bits(x, fmt) -- the float's bits as an integer that counts ulps across zero too
  local i = string.unpack(fmt == "f" and "<i4" or "<i8", string.pack("<" .. fmt, x))
  local sign = fmt == "f" and -2147483648 or math.mininteger
  return i < 0 and sign - i or i
end

function T.ce_mean_matches_the_row_order_sum(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64" } do
    for _, n in ipairs { 1, 7, 1024, 1025, 100003 } do
      local what = string.format("ce_mean %s n=%d (seed %d)", dt, n, SEED)
      local z = (pt.randn({ n, 64 }, dt) * 4):to(DEV)
      local tg = pt.randint(0, 64, { n }):to(DEV)
      local got = F.softcap_cross_entropy(z, tg, { softcap = 30, reduction = "mean" })
      t.eq(got:shape(), {}, what .. " shape")
      t.eq(got:dtype(), dt, what .. " dtype")
      got = got:item()
      local nll = G.flat(F.softcap_cross_entropy(z, tg, { softcap = 30, reduction = "none" }))
      local sum = 0
      for i = 1, n do sum = sum + nll[i] end -- row order, f64 (NLLs are >= 0: Σ|nll| = sum)
      local fmt = dt == "f32" and "f" or "d"
      local want = string.unpack("<" .. fmt, string.pack("<" .. fmt, sum / n)) -- one rounding to dt
      local ulps = math.abs(ordered_bits(got, fmt) - ordered_bits(want, fmt))
      if dt == "f32" then
        assert(ulps <= 1, string.format("%s: %.9g on %s, %.9g as the row-order sum: %d ulps apart", what, got, DEV,
          want, ulps))
      else
        local bound = 2 * (n - 1) * 2 ^ -53 * want
        local ulp = want * 2 ^ -52
        assert(math.abs(got - want) <= bound + 2 * ulp, string.format(
          "%s: %.17g on %s, %.17g as the row-order sum: %d ulps apart (bound %.3g)", what, got, DEV, want, ulps,
          bound + 2 * ulp))
      end
    end
  end
end

function T.bad_target_is_an_error_on_the_device(t)
  need_device(t)
  local z = pt.randn({ 3, 8 }):to(DEV)
  local ok, msg = pcall(F.softcap_cross_entropy, z, pt.tensor({ 1, 9, 2 }, "i64"):to(DEV))
  assert(not ok and tostring(msg):find("target 9 at position 1", 1, true), tostring(msg))
end

function T.bigram_hash_is_exact(t)
  need_device(t)
  local tok = pt.randint(0, 100000, { 3, 50 })
  local a = F.bigram_hash(tok:to(DEV), 2048):to("cpu")
  t.eq(a:totable(), F.bigram_hash(tok, 2048):totable())
end

return T
