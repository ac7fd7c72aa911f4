-- tests/gpu/test_optim.lua — the optimizer kernels on CUDA against the CPU: AdamW, SGD (Nesterov, wd),
-- Muon (NS5 in f32 and in the records' bf16 mode, Polar Express with MuonEq-R), gradient clipping.
--
--   build/proteus tests/run.lua tests/gpu/test_optim.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- The elementwise updates use the CPU's float expressions with IEEE roundings (no fused multiply-add),
-- so AdamW/SGD/EMA must agree to 1e-6 relative after 5 steps; Muon's Newton–Schulz goes through cuBLAS
-- GEMMs (different summation order), bound 1e-4 (f32 mode) and 2e-2 (bf16 mode, where one flipped bf16
-- rounding changes a value by 2^-8). Skips without a device.
local pt = require "proteus"
local optim = require "proteus.optim"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)

local need_device, rel = G.need_device, G.rel

-- runs `steps` steps of make_opt on both devices from the same params and gradients
local function both(make_opt, shapes, steps, tol, what)
  local init, grads = {}, {}
  for i, s in ipairs(shapes) do init[i] = pt.randn(s) end
  for k = 1, steps do
    grads[k] = {}
    for i, s in ipairs(shapes) do grads[k][i] = pt.randn(s) end
  end
  local function run(dev)
    local ps = {}
    for i, x in ipairs(init) do
      ps[i] = x:to(dev):clone()
      ps[i].requires_grad = true
    end
    local opt = make_opt(ps)
    for k = 1, steps do
      for i, p in ipairs(ps) do p.grad = grads[k][i]:to(dev) end
      opt:step(1.0)
    end
    return ps
  end
  local a, b = run(DEV), run("cpu")
  for i = 1, #a do
    local r = rel(a[i], b[i])
    assert(r <= tol, string.format("%s param %d (seed %d): rel %.3g > %.3g", what, i, SEED, r, tol))
  end
end

return {
  adamw_sgd_match_cpu = function(T)
    need_device(T)
    local shapes = { { 64, 32 }, { 1000 } }
    both(function(ps) return optim.AdamW { params = ps, lr = 0.01, betas = { 0.9, 0.95 }, eps = 1e-8, weight_decay = 0.04 } end,
      shapes, 5, 1e-6, "AdamW")
    both(function(ps) return optim.SGD { params = ps, lr = 0.01, momentum = 0.9, nesterov = true, weight_decay = 0.01 } end,
      shapes, 5, 1e-6, "SGD")
  end,
  muon_matches_cpu = function(T)
    need_device(T)
    local shapes = { { 48, 32 }, { 32, 96 } }
    both(function(ps) return optim.Muon { params = ps, lr = 0.02, momentum = 0.95, ns_dtype = "f32" } end,
      shapes, 3, 1e-4, "Muon f32")
    both(function(ps) return optim.Muon { params = ps, lr = 0.02, momentum = 0.95, weight_decay = 0.04 } end,
      shapes, 3, 2e-2, "Muon bf16")
    both(function(ps)
      return optim.Muon { params = ps, lr = 0.022, momentum = 0.99, coeffs = "polar_express", row_norm = true,
        round = "unit", ns_dtype = "f32" }
    end, shapes, 3, 1e-4, "Muon Polar Express MuonEq-R")
  end,
  clip_matches_cpu = function(T)
    need_device(T)
    local g = pt.randn({ 300 }) * 5
    local function clip(dev)
      local p = pt.zeros({ 300 }, { device = dev })
      p.grad = g:to(dev):clone() -- clipping is in place: keep g intact for the other device
      local n = optim.clip_grad_norm({ p }, 0.3)
      return n, p.grad
    end
    local n1, g1 = clip(DEV)
    local n0, g0 = clip("cpu")
    assert(math.abs(n1 - n0) <= 1e-9 * n0, string.format("clip norm %.17g vs %.17g", n1, n0))
    assert(rel(g1, g0) <= 1e-6, "clipped gradients differ")
  end,
}
