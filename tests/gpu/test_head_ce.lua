-- tests/gpu/test_head_ce.lua — F.linear_softcap_cross_entropy on CUDA (cuBLAS GEMMs + the CUDA softcap_ce
-- kernels, composed by src/kernels/head_ce.c) against the CPU oracle, and against the unfused path on the
-- device.
--
--   build/proteus tests/run.lua tests/gpu/test_head_ce.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Loss and the gradients of x and w are compared by relative norm (2e-5 f32: cuBLAS and OpenBLAS sum
-- in other orders; 1e-10 f64). bf16 x and w (f32 CE): the fused op on the device against the CPU's and
-- the device's unfused x·wᵀ:to("f32") path, 2e-2 (logits rounded to bf16 on either side may land an ulp
-- apart; dx, dw are bf16). Skips without a device; PROTEUS_GPU_TEST_DEVICE=cpu checks the harness.
local pt = require "proteus"
local F = require "proteus.functional"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)
local TOL = { f32 = 2e-5, f64 = 1e-10, bf16 = 2e-2 }

local need_device, rel = G.need_device, G.rel

-- loss, dx, dw of the fused op (or the unfused path) on a device, upstream gradient gy (nil for mean)
-- (bf16: f32 leaves cast to bf16 in the graph, as the GPT's compute_dtype = "bf16" does)
local function run(dev, fused, x0, w0, t0, opts, gy, bf16)
  local x, w = x0:to(dev):detach(), w0:to(dev):detach()
  x.requires_grad, w.requires_grad = true, true
  local t = t0:to(dev)
  local xo, wo = x, w
  if bf16 then xo, wo = x:to("bf16"), w:to("bf16") end
  local l
  if fused then
    l = F.linear_softcap_cross_entropy(xo, wo, t, opts)
  else
    local z = xo:matmul(wo:transpose(1, 2))
    if bf16 then z = z:to("f32") end
    l = F.softcap_cross_entropy(z, t, { softcap = opts.softcap, reduction = opts.reduction })
  end
  l:backward(gy and gy:to(dev) or nil)
  return { l, x.grad, w.grad }
end

local function check(what, dt, a, b)
  for i, name in ipairs { "loss", "dx", "dw" } do
    local r = rel(a[i], b[i])
    assert(r <= TOL[dt], string.format("%s %s %s (seed %d): rel %.3g", what, dt, name, SEED, r))
  end
end

local T = {}

function T.matches_cpu_and_unfused(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64" } do
    local N, C, V = 301, 64, 1000
    local x, w, tg = pt.randn({ N, C }, dt), pt.randn({ V, C }, dt) * 0.5, pt.randint(0, V, { N })
    local gy = pt.randn({ N }, dt)
    for _, red in ipairs { "mean", "none" } do
      for _, ck in ipairs { 1, 7, 128, N } do
        local opts = { softcap = 30, reduction = red, chunk = ck }
        local g = red == "none" and gy or nil
        local dev = run(DEV, true, x, w, tg, opts, g)
        local what = string.format("%s chunk=%d", red, ck)
        check(what .. " vs cpu", dt, dev, run("cpu", true, x, w, tg, opts, g))
        check(what .. " vs unfused", dt, dev, run(DEV, false, x, w, tg, opts, g))
      end
    end
  end
end

function T.bf16_operands_match_cpu_and_unfused(t)
  need_device(t)
  local N, C, V = 301, 64, 1000
  local x, w, tg = pt.randn({ N, C }), pt.randn({ V, C }) * 0.5, pt.randint(0, V, { N })
  local gy = pt.randn({ N })
  for _, red in ipairs { "mean", "none" } do
    for _, ck in ipairs { 7, 128, N } do
      local opts = { softcap = 30, reduction = red, chunk = ck }
      local g = red == "none" and gy or nil
      local dev = run(DEV, true, x, w, tg, opts, g, true)
      assert(dev[1]:dtype() == "f32", "the loss of bf16 operands is f32")
      local what = string.format("%s chunk=%d", red, ck)
      check(what .. " vs cpu", "bf16", dev, run("cpu", true, x, w, tg, opts, g, true))
      check(what .. " vs unfused", "bf16", dev, run(DEV, false, x, w, tg, opts, g, true))
    end
  end
end

function T.bad_target_is_an_error_on_the_device(t)
  need_device(t)
  local x, w = pt.randn({ 3, 4 }):to(DEV), pt.randn({ 8, 4 }):to(DEV)
  local ok, msg = pcall(F.linear_softcap_cross_entropy, x, w, pt.tensor({ 1, 9, 2 }, "i64"):to(DEV), { chunk = 2 })
  assert(not ok and tostring(msg):find("target 9 at position 1", 1, true), tostring(msg))
end

return T
