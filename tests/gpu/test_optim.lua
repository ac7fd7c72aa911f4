-- tests/gpu/test_optim.lua — the optimizer kernels on CUDA against the CPU: AdamW, SGD (Nesterov, wd),
-- Muon (NS5 in f32 and in the records' bf16 mode, Polar Express with MuonEq-R), gradient clipping; the
-- multi-tensor path (one launch per 48 tensors, device-resident step scalars, device-side clip, Muon
-- banks through strided-batched GEMMs) against the per-tensor path on the device (bitwise) and the CPU.
--
--   build/proteus tests/run.lua tests/gpu/test_optim.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- The elementwise updates use the CPU's float expressions with IEEE roundings (no fused multiply-add),
-- so AdamW/SGD/EMA must agree to 1e-6 relative after 5 steps; Muon's Newton–Schulz goes through cuBLAS
-- GEMMs (different summation order), bound 1e-4 (f32 mode) and 2e-2 (bf16 mode, where one flipped bf16
-- rounding changes a value by 2^-8). Skips without a device.
local pt = require "proteus"
local optim = require "proteus.optim"
local C = require "proteus._optim"
local testing = require "proteus.testing"
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

-- ---- the multi-tensor ("foreach") path ----
-- shapes: more tensors than one launch takes (48), sizes off the float4 and chunk (4096) grids, and
-- one param that is an unaligned view (offset 1 element: the scalar path of the multi kernels)
local MT_SHAPES = {}
for i = 1, 50 do MT_SHAPES[i] = ({ { 3, 5 }, { 1001 }, { 2, 3, 4 }, { 64, 33 } })[i % 4 + 1] end
MT_SHAPES[9] = { 10001 }

-- runs `steps` steps on dev: clip (host or device), the optimizer (step, or prepare/apply), EMA;
-- returns the params, the optimizer, the EMA and the clip norms (numbers)
local function mt_run(dev, make_opt, init, grads, o)
  local ps = {}
  for i, x in ipairs(init) do
    if i == 2 then -- an unaligned contiguous view: element 2.. of a bigger tensor
      local base = pt.zeros({ x:numel() + 1 }, { device = dev })
      ps[i] = base:narrow(1, 2, x:numel()):reshape(x:shape())
      ps[i]:copy_(x:to(dev))
    else
      ps[i] = x:to(dev):clone()
    end
  end
  local opt = make_opt(ps)
  local ema = optim.EMA { params = ps, decay = 0.99, foreach = o.foreach }
  local norms = {}
  for k = 1, #grads do
    for i, p in ipairs(ps) do p.grad = grads[k][i]:to(dev):clone():reshape(p:shape()) end -- clip scales in place
    if o.device_clip then norms[k] = optim.clip_grad_norm(ps, 2.0, { device = true }):item()
    else -- the per-tensor C path itself (optim.clip_grad_norm takes the device path for one GPU's grads)
      local gs = {}
      for i, p in ipairs(ps) do gs[i] = p.grad end
      norms[k] = C.clip_grad_norm(gs, 2.0)
    end
    if o.prepare then
      opt:prepare(1 - 0.1 * k)
      opt:apply()
    else
      opt:step(1 - 0.1 * k)
    end
    opt:zero_grad()
    ema:update(k)
  end
  return ps, opt, ema, norms
end

local function mt_data(shapes, steps)
  local init, grads = {}, {}
  for i, s in ipairs(shapes) do init[i] = pt.randn(s) end
  for k = 1, steps do
    grads[k] = {}
    for i, s in ipairs(shapes) do grads[k][i] = pt.randn(s) * 0.3 end
  end
  return init, grads
end

-- a against b: exact (tol 0) or relative norm error <= tol, params, states and EMA shadows
local function mt_compare(T, what, a, b, tol)
  local pa, oa, ea, na = table.unpack(a)
  local pb, ob, eb, nb = table.unpack(b)
  local function cmp(label, x, y, t)
    if t == 0 then G.same(T, what .. " " .. label, x, y, 0)
    else
      local r = rel(x, y)
      assert(r <= t, string.format("%s %s (seed %d): rel %.3g > %.3g", what, label, SEED, r, t))
    end
  end
  for i = 1, #pa do cmp("param " .. i, pa[i], pb[i], tol) end
  for k, st in pairs(oa.state) do
    for key, v in pairs(st) do
      if pt.is_tensor(v) then cmp("state " .. k .. "." .. key, v, ob.state[k][key], tol) end
    end
  end
  for i = 1, #ea.shadow do cmp("ema " .. i, ea.shadow[i], eb.shadow[i], tol) end
  for k = 1, #na do
    if tol == 0 then T.eq(na[k], nb[k], what .. " clip norm " .. k)
    else assert(math.abs(na[k] - nb[k]) <= 1e-9 * nb[k], string.format("%s clip norm %d: %.17g vs %.17g", what, k, na[k], nb[k])) end
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
  -- on the device, foreach (prepare/apply, device clip, multi EMA) is the same bits as the per-tensor
  -- path there; and within the per-tensor bounds of the CPU's per-tensor path
  adamw_foreach_matches_per_tensor = function(T)
    need_device(T)
    local init, grads = mt_data(MT_SHAPES, 4)
    local function make(fe)
      return function(ps)
        return optim.AdamW { params = ps, lr = 0.01, betas = { 0.9, 0.95 }, weight_decay = 0.04, foreach = fe }
      end
    end
    local ref = { mt_run(DEV, make(false), init, grads, { foreach = false }) }
    mt_compare(T, "AdamW foreach step", { mt_run(DEV, make(true), init, grads, { foreach = true }) }, ref, 0)
    mt_compare(T, "AdamW prepare/apply + device clip",
      { mt_run(DEV, make(true), init, grads, { foreach = true, prepare = true, device_clip = true }) }, ref, 0)
    mt_compare(T, "AdamW foreach vs cpu",
      { mt_run(DEV, make(true), init, grads, { foreach = true, prepare = true, device_clip = true }) },
      { mt_run("cpu", make(false), init, grads, { foreach = false }) }, 1e-6)
  end,
  muon_foreach_matches_per_tensor = function(T)
    need_device(T)
    local shapes = { { 48, 32 }, { 3, 48, 32 }, { 32, 96 }, { 48, 32 }, { 20, 20 } }
    local init, grads = mt_data(shapes, 3)
    for _, case in ipairs { { ns = "f32", tol = 1e-4 }, { ns = "bf16", tol = 2e-2 } } do
      local function make(fe, batched)
        return function(ps)
          return optim.Muon { params = ps, lr = 0.02, momentum = 0.95, weight_decay = 0.04, ns_dtype = case.ns,
            foreach = fe, batched = batched }
        end
      end
      local ref = { mt_run(DEV, make(false), init, grads, { foreach = false }) }
      -- per-param Newton–Schulz runs: the same cuBLAS calls, so the same bits
      mt_compare(T, "Muon " .. case.ns .. " foreach unbatched",
        { mt_run(DEV, make(true, false), init, grads, { foreach = true, prepare = true }) }, ref, 0)
      -- banks through strided-batched GEMMs: another summation order, the NS bounds against the CPU
      mt_compare(T, "Muon " .. case.ns .. " batched vs cpu",
        { mt_run(DEV, make(true, true), init, grads, { foreach = true, prepare = true, device_clip = true }) },
        { mt_run("cpu", make(false), init, grads, { foreach = false }) }, case.tol)
    end
  end,
  multi_lists_take_one_device = function(T)
    G.need_cuda(T)
    if G.SELF then T.skip("needs a second device type") end
    local C = require "proteus._optim"
    local p = { pt.zeros({ 4 }, { device = DEV }) }
    local rows = pt.zeros({ 7 }, { dtype = "f64", device = DEV })
    T.raises(function() C.adamw_multi(p, { pt.zeros({ 4 }) }, { pt.zeros({ 4 }, { device = DEV }) },
      { pt.zeros({ 4 }, { device = DEV }) }, rows) end, "grad #1 is on cpu but param #1 is on")
    T.raises(function() C.adamw_multi(p, p, p, p, pt.zeros({ 7 }, { dtype = "f64" })) end,
      "the step scalars are on cpu but param #1 is on")
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

  -- optim.clip_grad_norm of one GPU's gradients goes through the device path (one read of the norm):
  -- the same bits as the per-tensor C path, norm and clipped gradients, over several tensors
  clip_on_one_gpu_is_the_per_tensor_bits = function(T)
    need_device(T)
    local gs = {}
    for i, n in ipairs { 300, 7, 4096 * 3 + 5, 1 } do gs[i] = pt.randn({ n }) * i end
    local function clip(via_c)
      local ps, grads = {}, {}
      for i, g in ipairs(gs) do
        ps[i] = pt.zeros(g:shape(), { device = DEV })
        ps[i].grad = g:to(DEV):clone()
        grads[i] = ps[i].grad
      end
      local n = via_c and C.clip_grad_norm(grads, 0.3) or optim.clip_grad_norm(ps, 0.3)
      return n, grads
    end
    local n1, g1 = clip(false)
    local n0, g0 = clip(true)
    T.eq(n1, n0, "norm")
    for i = 1, #gs do testing.same_bits(g1[i], g0[i], "clipped gradient " .. i) end
  end,
}
