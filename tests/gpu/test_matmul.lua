-- tests/gpu/test_matmul.lua — cuBLAS matmul (2-D, batched, broadcast batch dims, transposed views, bf16)
-- and its backward against the CPU (OpenBLAS).
--
--   build/proteus tests/run.lua tests/gpu/test_matmul.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Relative-norm bounds: 1e-5 f32 (no TF32), 1e-12 f64, 1e-2 bf16 (inputs rounded to bf16, fp32
-- accumulation; the oracle is the f32 product of the same rounded inputs). Skips without a device.
local pt = require "proteus"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)
local TOL = { f32 = 1e-5, f64 = 1e-12, bf16 = 1e-2 }

local need_device, rel = G.need_device, G.rel

local CASES = {
  { { 64, 33 }, { 33, 17 } },
  { { 3, 5, 7 }, { 3, 7, 9 } },
  { { 4, 3, 5, 7 }, { 7, 2 } },
  { { 2, 1, 6, 4 }, { 3, 4, 5 } },
}

return {
  products_match_cpu = function(T)
    need_device(T)
    for _, dt in ipairs { "f32", "f64" } do
      for _, c in ipairs(CASES) do
        local a, b = pt.randn(c[1], dt), pt.randn(c[2], dt)
        local r = rel(a:to(DEV):matmul(b:to(DEV)), a:matmul(b))
        assert(r <= TOL[dt], string.format("matmul %s (seed %d): rel %.3g", dt, SEED, r))
      end
      -- transposed views go to cuBLAS without copies
      local w = pt.randn({ 40, 24 }, dt)
      local x = pt.randn({ 5, 24 }, dt)
      local r = rel(x:to(DEV):matmul(w:to(DEV):transpose(1, 2)), x:matmul(w:transpose(1, 2)))
      assert(r <= TOL[dt], string.format("x·wᵀ %s: rel %.3g", dt, r))
    end
  end,
  bf16_accumulates_in_fp32 = function(T)
    need_device(T)
    if DEV == "cpu" then T.skip("bf16 matmul exists only on the GPU") end
    local a = pt.randn({ 128, 256 }):to("bf16")
    local b = pt.randn({ 256, 64 }):to("bf16")
    local got = a:to(DEV):matmul(b:to(DEV))
    local want = a:to("f32"):matmul(b:to("f32"))
    local r = rel(got, want)
    assert(r <= TOL.bf16, string.format("bf16 matmul: rel %.3g", r))
  end,
  backward_matches_cpu = function(T)
    need_device(T)
    local a0, b0 = pt.randn({ 3, 6, 5 }), pt.randn({ 5, 4 })
    local g = pt.randn({ 3, 6, 4 })
    local function grads(dev)
      local a, b = a0:to(dev):detach(), b0:to(dev):detach()
      a.requires_grad, b.requires_grad = true, true
      a:matmul(b):backward(g:to(dev))
      return a.grad, b.grad
    end
    local ga1, gb1 = grads(DEV)
    local ga0, gb0 = grads("cpu")
    assert(rel(ga1, ga0) <= TOL.f32 and rel(gb1, gb0) <= TOL.f32, "matmul backward differs from the CPU")
  end,
}
