-- tests/lua/test_optim_multi.lua — the multi-tensor ("foreach") path of proteus.optim against the
-- per-tensor one, bit for bit on the CPU: AdamW/Adam, Muon (f32 and bf16 Newton–Schulz, batched banks
-- and per-matrix runs, every rounding mode), EMA, and gradient clipping with the norm kept on the
-- device; step() against explicit prepare()/apply(); more tensors than one launch takes (48); a
-- tensor above the CPU's threading threshold; the errors of prepare/apply; the plan (device scalars)
-- kept across steps; state dicts unchanged in format.
--
--   build/proteus tests/run.lua tests/lua/test_optim_multi.lua
local pt = require "proteus"
local optim = require "proteus.optim"
local C = require "proteus._optim"

-- the same bits element by element, so -0 and +0 or two NaNs are told apart
local same_bits = require("proteus.testing").same_bits

-- initial params and per-step gradients (gradient nil where skip(step, i) says so)
local function data(shapes, steps, seed, skip)
  pt.manual_seed(seed)
  local init, grads = {}, {}
  for i, s in ipairs(shapes) do init[i] = pt.randn(s) end
  for k = 1, steps do
    grads[k] = {}
    for i, s in ipairs(shapes) do
      local g = pt.randn(s) * 0.5
      if not (skip and skip(k, i)) then grads[k][i] = g end
    end
  end
  return init, grads
end

local LR_MUL = { 1, 0.9, 0.8, 1.2, 0.5, 0.7, 0.3, 1, 0.25, 0.1 }

-- Runs `steps` steps: grads in, optional clip, the optimizer (mode "step" or "prepare"), optional EMA.
-- Returns params, optimizer, EMA and the clip norms.
local function run(make_opt, init, grads, o)
  local ps = {}
  for i, x in ipairs(init) do ps[i] = x:clone() end
  local opt = make_opt(ps)
  local ema = o.ema and optim.EMA { params = ps, decay = 0.9, every = o.ema_every or 1, foreach = o.ema_foreach }
  local norms = {}
  for k = 1, #grads do
    for i = 1, #ps do ps[i].grad = grads[k][i] and grads[k][i]:clone() or nil end
    if o.clip then
      if o.clip_device then
        local n = optim.clip_grad_norm(ps, o.clip, { device = true })
        norms[k] = n:item()
      else
        norms[k] = optim.clip_grad_norm(ps, o.clip)
      end
    end
    if o.mode == "prepare" then
      opt:prepare(LR_MUL[k])
      opt:apply()
    else
      opt:step(LR_MUL[k])
    end
    opt:zero_grad()
    if ema then ema:update(k) end
  end
  return ps, opt, ema, norms
end

local function compare_runs(T, what, a, b)
  local pa, oa, ea, na = table.unpack(a)
  local pb, ob, eb, nb = table.unpack(b)
  for i = 1, #pa do same_bits(pa[i], pb[i], what .. " param " .. i) end
  for k, st in pairs(oa.state) do
    local sb = ob.state[k]
    assert(sb, what .. ": no state " .. k .. " in the second run")
    for key, v in pairs(st) do
      if pt.is_tensor(v) then same_bits(v, sb[key], what .. " state " .. k .. "." .. key)
      else T.eq(v, sb[key], what .. " state " .. k .. "." .. key) end
    end
  end
  for k in pairs(ob.state) do assert(oa.state[k], what .. ": state " .. k .. " only in the second run") end
  if ea then
    for i = 1, #ea.shadow do same_bits(ea.shadow[i], eb.shadow[i], what .. " ema " .. i) end
    T.eq(ea.updates, eb.updates, what .. " ema updates")
  end
  for k = 1, #na do
    T.eq(string.pack("<d", na[k]), string.pack("<d", nb[k]), what .. " clip norm at step " .. k)
  end
end

-- foreach off (per tensor, host clip), foreach on through step(), and prepare()/apply() with the
-- device clip: all three the same bits
local function three_ways(T, what, make, shapes, o)
  local init, grads = data(shapes, #LR_MUL, o.seed or 11, o.skip)
  local function with(foreach, extra)
    local oo = {}
    for k, v in pairs(o) do oo[k] = v end
    for k, v in pairs(extra) do oo[k] = v end
    return { run(function(ps) return make(ps, foreach) end, init, grads, oo) }
  end
  local ref = with(false, { mode = "step", ema_foreach = false, clip_device = false })
  compare_runs(T, what .. " (step, foreach)", ref, with(true, { mode = "step", ema_foreach = true, clip_device = false }))
  compare_runs(T, what .. " (prepare/apply, device clip)", ref,
    with(true, { mode = "prepare", ema_foreach = true, clip_device = true }))
end

-- 52 tensors (more than one launch of 48), mixed shapes, one over the CPU threading threshold
local MANY = {}
for i = 1, 52 do
  local r = i % 4
  MANY[i] = r == 0 and { 3, 5 } or r == 1 and { 7 } or r == 2 and { 2, 3, 4 } or { 1001 }
end
MANY[17] = { 200, 201 } -- 40200 elements: the threaded loops and the sliced sum of squares

local tests = {}

tests.adamw_foreach_is_bitwise_the_per_tensor_path = function(T)
  three_ways(T, "AdamW", function(ps, foreach)
    local a, b = {}, {}
    for i, p in ipairs(ps) do
      if i % 3 == 0 then b[#b + 1] = p else a[#a + 1] = p end
    end
    return optim.AdamW { groups = { { params = a, lr = 0.01 }, { params = b, lr = 0.03, weight_decay = 0, betas = { 0.8, 0.99 } } },
      betas = { 0.9, 0.95 }, eps = 1e-8, weight_decay = 0.04, foreach = foreach }
  end, MANY, { clip = 5.0, ema = true, skip = function(k, i) return i == 5 and k % 3 == 0 end })
end

tests.adam_maximize_foreach = function(T)
  three_ways(T, "Adam maximize", function(ps, foreach)
    return optim.Adam { params = ps, lr = 0.003, betas = { 0.8, 0.99 }, eps = 1e-6, maximize = true, foreach = foreach }
  end, { { 6, 4 }, { 9 }, { 2, 2, 2 } }, { clip = 0 })
end

local MATS = { { 6, 4 }, { 4, 8 }, { 6, 4 }, { 3, 6, 4 }, { 4, 8 }, { 5, 5 }, { 6, 4 } }

tests.muon_foreach_batched_bf16_scaled = function(T)
  three_ways(T, "Muon bf16 scaled", function(ps, foreach)
    return optim.Muon { params = ps, lr = 0.02, momentum = 0.95, weight_decay = 0.04, foreach = foreach }
  end, MATS, { clip = 3.0, ema = true, ema_every = 3, skip = function(k, i) return i == 3 and k == 4 end })
end

tests.muon_foreach_f32_polar_rownorm_unit = function(T)
  three_ways(T, "Muon f32 polar unit", function(ps, foreach)
    return optim.Muon { groups = { { params = { ps[1], ps[2], ps[3], ps[4] }, lr = 0.02 },
      { params = { ps[5], ps[6], ps[7] }, lr = 0.05, factor = 2, nesterov = false } },
      momentum = 0.99, weight_decay = 0.095, coeffs = "polar_express", row_norm = true, round = "unit",
      ns_dtype = "f32", foreach = foreach }
  end, MATS, { clip = 0.5 })
end

tests.muon_foreach_bf16_none_rounding = function(T)
  three_ways(T, "Muon bf16 none", function(ps, foreach)
    return optim.Muon { params = ps, lr = 0.01, momentum = 0.9, round = "none", coeffs = { { 3, -3.2, 1.2 } },
      ns_steps = 3, foreach = foreach }
  end, MATS, { clip = 0 })
end

-- batched = false (one Newton–Schulz run per param) is the same bits as the banks on the CPU
tests.muon_batched_and_per_matrix_agree = function(T)
  for _, dt in ipairs { "bf16", "f32" } do
    local init, grads = data(MATS, 4, 5)
    local function with(batched)
      return { run(function(ps)
        return optim.Muon { params = ps, lr = 0.02, momentum = 0.95, ns_dtype = dt, weight_decay = 0.01, batched = batched }
      end, init, grads, { mode = "step" }) }
    end
    compare_runs(T, "Muon " .. dt .. " batched vs per matrix", with(false), with(true))
  end
end

-- the C entry point of Muon over a list equals muon_step per tensor, banks included
tests.muon_multi_equals_muon_step = function(T)
  pt.manual_seed(3)
  local shapes = { { 6, 4 }, { 2, 6, 4 }, { 4, 6 }, { 6, 4 } }
  local p1, p2, g, b1, b2 = {}, {}, {}, {}, {}
  for i, s in ipairs(shapes) do
    p1[i] = pt.randn(s)
    p2[i] = p1[i]:clone()
    g[i] = pt.randn(s)
    b1[i], b2[i] = pt.zeros(s), pt.zeros(s)
  end
  local o = { lr = 0.02, momentum = 0.9, weight_decay = 0.1, steps = 5, ns_dtype = "bf16", round = "scaled" }
  local rows = pt.zeros({ #shapes * 4 }, { dtype = "f64" })
  for i, s in ipairs(shapes) do
    C.muon_step(p1[i], g[i], b1[i], o)
    C.muon_scalars(rows, i, { lr = 0.02, momentum = 0.9, weight_decay = 0.1, rows = s[#s - 1], cols = s[#s] })
  end
  C.muon_multi(p2, g, b2, rows, { steps = 5, ns_dtype = "bf16", round = "scaled", batched = true })
  for i = 1, #shapes do
    same_bits(p2[i], p1[i], "muon_multi param " .. i)
    same_bits(b2[i], b1[i], "muon_multi buffer " .. i)
  end
end

tests.clip_on_the_device_matches_the_host = function(T)
  local function grads_of(vals)
    local ps = {}
    for i, v in ipairs(vals) do
      ps[i] = pt.zeros({ #v })
      ps[i].grad = pt.tensor(v)
    end
    return ps
  end
  -- over the threshold: same norm bits and same scaled gradients
  local a, b = grads_of { { 3, 0, 1 }, { 0, 4 } }, grads_of { { 3, 0, 1 }, { 0, 4 } }
  local host = optim.clip_grad_norm(a, 1.0)
  local dev = optim.clip_grad_norm(b, 1.0, { device = true })
  T.eq(dev:dim(), 0)
  T.eq(dev:dtype(), "f64")
  T.eq(string.pack("<d", dev:item()), string.pack("<d", host))
  for i = 1, 2 do same_bits(b[i].grad, a[i].grad, "clipped grad " .. i) end
  -- under the threshold and max_norm 0: untouched; out = a given tensor is written and returned
  local out = pt.zeros({ 1 }, { dtype = "f64" })
  local c = grads_of { { 0.3, 0.4 } }
  T.eq(rawequal(optim.clip_grad_norm(c, 1.0, { device = true, out = out }), out), true)
  T.eq(out:item(), math.sqrt(string.unpack("<f", string.pack("<f", 0.3)) ^ 2 + string.unpack("<f", string.pack("<f", 0.4)) ^ 2))
  T.eq(c[1].grad:flat_get(1), string.unpack("<f", string.pack("<f", 0.3)))
  local d = grads_of { { 30, 40 } }
  T.eq(optim.clip_grad_norm(d, 0, { device = true }):item(), 50.0)
  T.eq(d[1].grad:flat_get(2), 40.0)
  -- a non-finite norm scales nothing (the caller decides), as on the host
  local e = grads_of { { 1 / 0, 1 } }
  T.eq(optim.clip_grad_norm(e, 1.0, { device = true }):item(), 1 / 0)
  T.eq(e[1].grad:flat_get(2), 1.0)
  -- no gradients at all: norm 0
  T.eq(optim.clip_grad_norm({ pt.zeros({ 2 }) }, 1.0, { device = true }):item(), 0.0)
  -- f64 gradients, and one dtype per call
  local f = { pt.zeros({ 2 }, { dtype = "f64" }) }
  f[1].grad = pt.tensor({ 6, 8 }, { dtype = "f64" })
  T.eq(optim.clip_grad_norm(f, 5, { device = true }):item(), 10.0)
  T.eq(f[1].grad:flat_get(1), 6 * (5 / (10 + 1e-6)))
  local g = grads_of { { 1, 2 } }
  g[2] = pt.zeros({ 1 }, { dtype = "f64" })
  g[2].grad = pt.tensor({ 1 }, { dtype = "f64" })
  T.raises(function() optim.clip_grad_norm(g, 1, { device = true }) end, "gradient #2 has dtype f64 but the first gradient has f32")
  T.raises(function() C.clip_grad_norm_dev({ g[1].grad }, 1, pt.zeros({ 2 }, { dtype = "f64" })) end,
    "an f64 tensor of one element")
  T.raises(function() optim.clip_grad_norm(g, 1, 5) end, "opts must be a table")
end

tests.prepare_apply_protocol_and_errors = function(T)
  local w, b = pt.zeros({ 3, 2 }), pt.zeros({ 4 })
  local opt = optim.AdamW { params = { { "w", w }, { "b", b } }, lr = 0.1 }
  T.raises(function() opt:apply() end, "no prepared step; call prepare(lr_mul) first")
  w.grad, b.grad = pt.ones({ 3, 2 }), pt.ones({ 4 })
  opt:prepare(1.0)
  opt:apply()
  T.raises(function() opt:apply() end, "no prepared step")
  -- the plan (and so the device scalar tensor a graph would read) is kept while the live set is the same
  local scal = opt._plan.launches[1].scal
  opt:prepare(0.5)
  T.eq(rawequal(opt._plan.launches[1].scal, scal), true)
  b.grad = nil -- a grad that vanished after prepare counted it
  T.raises(function() opt:apply() end, "param b has no grad; prepare() counted it")
  -- a grad prepare did not see
  opt:zero_grad()
  w.grad = pt.ones({ 3, 2 })
  opt:prepare(1.0)
  b.grad = pt.ones({ 4 })
  T.raises(function() opt:apply() end, "param b has a grad but prepare() saw none")
  -- all = true: prepared before the backward (the graph order), applied after it
  opt:zero_grad()
  opt:prepare(1.0, { all = true }) -- every prepare counts a step, applied or not (w: 4, b: 3)
  T.eq(opt.state[1].step, 4)
  T.eq(opt.state[2].step, 3)
  w.grad, b.grad = pt.ones({ 3, 2 }), pt.ones({ 4 })
  opt:apply()
  -- the per-tensor path has no prepare/apply; SGD has no multi-tensor path
  local o2 = optim.AdamW { params = { w }, lr = 0.1, foreach = false }
  T.raises(function() o2:prepare(1) end, "made with foreach = false")
  local sgd = optim.SGD { params = { w }, lr = 0.1 }
  T.raises(function() sgd:prepare(1) end, "SGD has no multi-tensor path; use step()")
  w.grad = pt.ones({ 3, 2 })
  sgd:step(1) -- still steps per tensor
  T.raises(function() optim.AdamW { params = { w }, lr = 0.1, foreach = 1 } end, "foreach must be a boolean")
  -- load_state_dict drops a prepared step
  opt:prepare(1.0, { all = true })
  opt:load_state_dict(opt:state_dict())
  T.raises(function() opt:apply() end, "no prepared step")
  -- Muon's dims check happens in prepare, before anything is updated
  local v = pt.zeros({ 4 })
  v.grad = pt.zeros({ 4 })
  local mu = optim.Muon { params = { { "blocks.0.attn_scale", v } }, lr = 0.02 }
  T.raises(function() mu:prepare(1) end, "param blocks.0.attn_scale has 1 dims")
  -- EMA: prepare says whether an update is due; launch needs a prepare
  local ema = optim.EMA { params = { w }, decay = 0.5, every = 2 }
  T.eq(ema:prepare(1), false)
  T.raises(function() ema:launch() end, "no prepared update")
  T.eq(ema:prepare(2), true)
  ema:launch()
  T.eq(ema.updates, 1)
end

tests.state_dict_format_is_unchanged = function(T)
  for _, make in ipairs {
    function(ps, fe) return optim.AdamW { params = ps, lr = 0.01, foreach = fe } end,
    function(ps, fe) return optim.Muon { params = ps, lr = 0.02, foreach = fe, batched = fe } end,
  } do
    local init, grads = data({ { 4, 3 }, { 3, 4 } }, 2, 9)
    local _, a = run(function(ps) return make(ps, false) end, init, grads, { mode = "step" })
    local _, b = run(function(ps) return make(ps, true) end, init, grads, { mode = "step" })
    local sa, sb = a:state_dict(), b:state_dict()
    local function keys(t)
      local r = {}
      for k in pairs(t) do r[#r + 1] = tostring(k) end
      table.sort(r)
      return r
    end
    T.eq(keys(sb.groups[1]), keys(sa.groups[1]), a.kind .. " group keys")
    T.eq(keys(sb.state), keys(sa.state), a.kind .. " state keys")
    T.eq(keys(sb.state[1]), keys(sa.state[1]), a.kind .. " state entry keys")
    for _, g in ipairs(b.groups) do T.eq(g.foreach, nil) end
  end
end

tests.multi_errors_name_the_entry = function(T)
  local p = { pt.zeros({ 2, 3 }), pt.zeros({ 4 }) }
  local g = { pt.zeros({ 2, 3 }), pt.zeros({ 5 }) }
  local m = { pt.zeros({ 2, 3 }), pt.zeros({ 4 }) }
  local v = { pt.zeros({ 2, 3 }), pt.zeros({ 4 }) }
  local rows = pt.zeros({ 2 * 7 }, { dtype = "f64" })
  T.raises(function() C.adamw_multi(p, g, m, v, rows) end, "grad #2 has shape [5] but param #2 has shape [4]")
  g[2] = pt.zeros({ 4 })
  T.raises(function() C.adamw_multi(p, g, { m[1], pt.zeros({ 4 }, { dtype = "f64" }) }, v, rows) end,
    "exp_avg #2 has dtype f64")
  T.raises(function() C.adamw_multi(p, g, m, v, pt.zeros({ 5 }, { dtype = "f64" })) end,
    "the step scalars have 5 values; expected 7 (one row for every tensor) or 2 x 7")
  T.raises(function() C.adamw_multi(p, g, m, v, pt.zeros({ 14 })) end, "the step scalars have dtype f32")
  T.raises(function() C.adamw_multi(p, { g[1] }, m, v, rows) end, "1 grads for 2 params")
  T.raises(function() C.adamw_scalars(rows, 3, { step = 1, lr = 0.1 }) end, "row 3 does not fit")
  T.raises(function() C.adamw_scalars(rows, 1, { step = 1, lr = 0.1, beta1 = 1 }) end, "beta1 = 1")
  T.raises(function() C.muon_scalars(rows, 1, { lr = 0.1, momentum = 1, rows = 2, cols = 3 }) end, "momentum = 1 is not in [0, 1)")
  T.raises(function() C.muon_multi({ p[2] }, { g[2] }, { v[2] }, pt.zeros({ 4 }, { dtype = "f64" }), {}) end,
    "param #1 has shape [4]; Muon updates matrices")
  T.raises(function() C.ema_multi({ p[1], p[2] }, { g[1], pt.zeros({ 3 }) }, pt.zeros({ 1 }, { dtype = "f64" })) end,
    "weights #2 has shape [3] but param #2 has shape [4]")
end

return tests
