-- tests/lua/test_optim.lua — proteus.optim against PyTorch, plus the Lua-side machinery (groups,
-- state dicts, clipping, EMA, SWA, name rules).
--
--   build/proteus tests/run.lua tests/lua/test_optim.lua
--
-- The *_matches_torch tests write a case file (initial params, 10 steps of gradients, lr multipliers;
-- format in tests/reference/optim_ref.py), run /usr/bin/python3 tests/reference/optim_ref.py on it
-- and compare the final params and states: max|ours − torch| / max|torch| < 1e-6 in f32 for every
-- tensor. They skip when /usr/bin/python3 has no torch.
local pt = require "proteus"
local optim = require "proteus.optim"
local C = require "proteus._optim"

local PY = "/usr/bin/python3"
local REF = "tests/reference/optim_ref.py"

local function f32(x) return (string.unpack("<f", string.pack("<f", x))) end

-- deterministic f32 normals (Box–Muller over Lua's seeded xoshiro)
local function randn_list(n, scale)
  local r = {}
  for i = 1, n do
    local u1, u2 = math.random(), math.random()
    if u1 < 1e-12 then u1 = 1e-12 end
    r[i] = f32(math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2) * (scale or 1))
  end
  return r
end

local function numel(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  return n
end

local function tensor_of(shape, vals)
  return pt.tensor(vals):reshape(shape)
end

local function flat(t)
  local r, n = {}, t:numel()
  local c = t:contiguous()
  for i = 1, n do r[i] = c:flat_get(i) end
  return r
end

local function hexlist(vals)
  local r = {}
  for i, v in ipairs(vals) do r[i] = string.format("%a", v) end
  return table.concat(r, " ")
end

local torch_ok = nil
local function need_torch(T)
  if torch_ok == nil then
    local p = io.popen(PY .. " -c 'import torch' 2>/dev/null && echo yes")
    torch_ok = p and p:read("a"):find("yes") ~= nil
    if p then p:close() end
  end
  if not torch_ok then T.skip(PY .. " with torch is not available") end
end

local function tmpname()
  local p = assert(io.popen("mktemp /tmp/proteus_optim_XXXXXX"))
  local n = p:read("l")
  p:close()
  return n
end

-- Runs `steps` steps of make_opt(params) on random data here and in PyTorch; returns the worst
-- relative errors (params, states) and the worst relative error of the total change p − p0.
local function compare(T, cfg, shapes, make_opt, steps)
  need_torch(T)
  math.randomseed(1234)
  steps = steps or 10
  local names, p0, params = {}, {}, {}
  for i, shape in ipairs(shapes) do
    names[i] = "p" .. i
    p0[i] = randn_list(numel(shape))
    params[i] = tensor_of(shape, p0[i])
  end
  local grads = {}
  for s = 1, steps do
    grads[s] = {}
    for i, shape in ipairs(shapes) do grads[s][i] = randn_list(numel(shape), 0.5) end
  end
  local lr_mul = {}
  for s = 1, steps do lr_mul[s] = f32(1.0 - 0.05 * (s - 1)) end

  local case, result = tmpname(), tmpname()
  local f = assert(io.open(case, "w"))
  local kv = { "kind=" .. cfg.kind, "steps=" .. steps }
  for k, v in pairs(cfg) do
    if k ~= "kind" then kv[#kv + 1] = k .. "=" .. (type(v) == "number" and string.format("%a", v) or tostring(v)) end
  end
  f:write("config ", table.concat(kv, " "), "\n")
  f:write("lr_mul ", hexlist(lr_mul), "\n")
  for i, shape in ipairs(shapes) do
    f:write("param ", names[i], " ", table.concat(shape, ","), " ", hexlist(p0[i]), "\n")
  end
  for s = 1, steps do
    for i, shape in ipairs(shapes) do
      f:write("grad ", s, " ", names[i], " ", table.concat(shape, ","), " ", hexlist(grads[s][i]), "\n")
    end
  end
  f:close()
  local ok = os.execute(PY .. " " .. REF .. " " .. case .. " " .. result)
  assert(ok, "optim_ref.py failed on " .. case)

  local opt = make_opt(params)
  for s = 1, steps do
    for i, shape in ipairs(shapes) do params[i].grad = tensor_of(shape, grads[s][i]) end
    opt:step(lr_mul[s])
  end

  local ref = {}
  for line in io.lines(result) do
    local tag, name, _, rest = line:match("^(%S+) (%S+) (%S+) ?(.*)$")
    local vals = {}
    for x in rest:gmatch("%S+") do vals[#vals + 1] = tonumber(x) end
    ref[tag .. ":" .. name] = vals
  end
  os.remove(case)
  os.remove(result)

  local function relerr(got, want)
    local num, den = 0, 0
    assert(#got == #want, "length " .. #got .. " vs " .. #want)
    for i = 1, #want do
      num = math.max(num, math.abs(got[i] - want[i]))
      den = math.max(den, math.abs(want[i]))
    end
    return den > 0 and num / den or num
  end
  local worst_p, worst_s, worst_d = 0, 0, 0
  local statekey = { AdamW = { "exp_avg", "exp_avg_sq" }, Adam = { "exp_avg", "exp_avg_sq" },
    SGD = { "momentum_buffer" }, Muon = { "momentum_buffer" } }
  for i = 1, #shapes do
    local got = flat(params[i])
    local want = assert(ref["param:" .. names[i]], "no reference for " .. names[i])
    worst_p = math.max(worst_p, relerr(got, want))
    local dg, dw = {}, {}
    for j = 1, #want do dg[j], dw[j] = got[j] - p0[i][j], want[j] - p0[i][j] end
    worst_d = math.max(worst_d, relerr(dg, dw))
    for _, key in ipairs(statekey[opt.kind]) do
      local w = ref["state:" .. names[i] .. "." .. key]
      if w then worst_s = math.max(worst_s, relerr(flat(opt.state[i][key]), w)) end
    end
  end
  return worst_p, worst_s, worst_d
end

local function check(T, what, p, s, d, tol_p, tol_d)
  print(string.format("    %s: param rel %.3g, state rel %.3g, update rel %.3g", what, p, s, d))
  assert(p < tol_p, what .. ": param relative error " .. p)
  assert(s < tol_p, what .. ": state relative error " .. s)
  assert(d < tol_d, what .. ": update relative error " .. d)
end

local SHAPES = { { 5, 7 }, { 11 }, { 3, 4, 2 } }
local MATS = { { 6, 4 }, { 4, 8 }, { 3, 5, 4 } }

local tests = {}

tests.adamw_matches_torch = function(T)
  local p, s, d = compare(T, { kind = "adamw", lr = 0.01, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1 },
    SHAPES, function(ps)
      return optim.AdamW { params = ps, lr = 0.01, betas = { 0.9, 0.95 }, eps = 1e-8, weight_decay = 0.1 }
    end)
  check(T, "adamw", p, s, d, 1e-6, 1e-5)
end

tests.adamw_maximize_matches_torch = function(T)
  local p, s, d = compare(T, { kind = "adamw", lr = 0.003, beta1 = 0.8, beta2 = 0.99, eps = 1e-6, weight_decay = 0.04,
    maximize = "true" }, SHAPES, function(ps)
      return optim.AdamW { params = ps, lr = 0.003, betas = { 0.8, 0.99 }, eps = 1e-6, weight_decay = 0.04, maximize = true }
    end)
  check(T, "adamw maximize", p, s, d, 1e-6, 1e-5)
end

tests.adam_matches_torch = function(T)
  local p, s, d = compare(T, { kind = "adam", lr = 0.05, beta1 = 0.9, beta2 = 0.95, eps = 1e-8 }, SHAPES, function(ps)
    return optim.Adam { params = ps, lr = 0.05, betas = { 0.9, 0.95 }, eps = 1e-8 }
  end)
  check(T, "adam", p, s, d, 1e-6, 1e-5)
end

tests.sgd_nesterov_matches_torch = function(T)
  local p, s, d = compare(T, { kind = "sgd", lr = 0.1, momentum = 0.9, dampening = 0, weight_decay = 0.01,
    nesterov = "true" }, SHAPES, function(ps)
      return optim.SGD { params = ps, lr = 0.1, momentum = 0.9, weight_decay = 0.01, nesterov = true }
    end)
  check(T, "sgd nesterov", p, s, d, 1e-6, 1e-5)
end

tests.sgd_dampening_matches_torch = function(T)
  local p, s, d = compare(T, { kind = "sgd", lr = 0.05, momentum = 0.8, dampening = 0.1, weight_decay = 0,
    nesterov = "false" }, SHAPES, function(ps)
      return optim.SGD { params = ps, lr = 0.05, momentum = 0.8, dampening = 0.1 }
    end)
  check(T, "sgd dampening", p, s, d, 1e-6, 1e-5)
end

tests.sgd_plain_matches_torch = function(T)
  local p, s, d = compare(T, { kind = "sgd", lr = 0.2, momentum = 0, dampening = 0, weight_decay = 0.1,
    nesterov = "false" }, SHAPES, function(ps)
      return optim.SGD { params = ps, lr = 0.2, weight_decay = 0.1 }
    end)
  check(T, "sgd", p, s, d, 1e-6, 1e-5)
end

local function muon_cfg(extra)
  local c = { kind = "muon", lr = 0.02, momentum = 0.95, nesterov = "true", weight_decay = 0.04, factor = 0,
    coeffs = "ns5", ns_steps = 5, ns_dtype = "f32", row_norm = "false", round = "none" }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

tests.muon_ns5_f32_matches_torch = function(T)
  local p, s, d = compare(T, muon_cfg(), MATS, function(ps)
    return optim.Muon { params = ps, lr = 0.02, momentum = 0.95, weight_decay = 0.04, ns_dtype = "f32", round = "none" }
  end)
  check(T, "muon ns5 f32", p, s, d, 1e-6, 1e-5)
end

tests.muon_polar_express_rownorm_f32_matches_torch = function(T)
  local p, s, d = compare(T, muon_cfg { coeffs = "polar_express", ns_steps = 4, row_norm = "true", factor = 2,
    nesterov = "false", momentum = 0.99 }, MATS, function(ps)
      return optim.Muon { params = ps, lr = 0.02, momentum = 0.99, nesterov = false, weight_decay = 0.04,
        coeffs = "polar_express", row_norm = true, factor = 2, ns_dtype = "f32", round = "none" }
    end)
  check(T, "muon polar express f32", p, s, d, 1e-6, 1e-5)
end

-- bf16 mode: the records' numerics (every intermediate rounded to bf16, f32 arithmetic; the reference
-- emulates CUDA's bf16 semantics, see optim_ref.py). A summation-order difference can still flip a
-- bf16 rounding, so the update gets a looser bound than the params.
tests.muon_bf16_scaled_matches_torch = function(T)
  local p, s, d = compare(T, muon_cfg { ns_dtype = "bf16", round = "scaled" }, MATS, function(ps)
    return optim.Muon { params = ps, lr = 0.02, momentum = 0.95, weight_decay = 0.04 }
  end)
  check(T, "muon ns5 bf16 scaled", p, s, d, 1e-6, 1e-3)
end

tests.muon_bf16_polar_unit_matches_torch = function(T)
  local p, s, d = compare(T, muon_cfg { ns_dtype = "bf16", round = "unit", coeffs = "polar_express", ns_steps = 4,
    row_norm = "true", momentum = 0.99, weight_decay = 0.095 }, MATS, function(ps)
      return optim.Muon { params = ps, lr = 0.02, momentum = 0.99, weight_decay = 0.095, coeffs = "polar_express",
        row_norm = true, round = "unit" }
    end)
  check(T, "muon polar bf16 unit", p, s, d, 1e-6, 1e-3)
end

-- ---- machinery without torch ----

local function rand_tensor(shape, scale) return tensor_of(shape, randn_list(numel(shape), scale)) end

local function same_bits(a, b)
  local fa, fb = flat(a), flat(b)
  for i = 1, #fa do
    if fa[i] ~= fb[i] then return false end
  end
  return true
end

tests.groups_match_separate_optimizers = function(T)
  math.randomseed(7)
  local a1, a2 = rand_tensor({ 4, 3 }), rand_tensor({ 5 })
  local b1, b2 = a1:clone(), a2:clone()
  local opt = optim.AdamW { groups = { { params = { a1 }, lr = 0.01 }, { params = { a2 }, lr = 0.05, weight_decay = 0 } },
    betas = { 0.9, 0.95 }, weight_decay = 0.1 }
  local o1 = optim.AdamW { params = { b1 }, lr = 0.01, betas = { 0.9, 0.95 }, weight_decay = 0.1 }
  local o2 = optim.AdamW { params = { b2 }, lr = 0.05, betas = { 0.9, 0.95 }, weight_decay = 0 }
  for _ = 1, 3 do
    local g1, g2 = rand_tensor({ 4, 3 }), rand_tensor({ 5 })
    a1.grad, a2.grad, b1.grad, b2.grad = g1, g2, g1:clone(), g2:clone()
    opt:step(0.5)
    o1:step(0.5)
    o2:step(0.5)
  end
  assert(same_bits(a1, b1) and same_bits(a2, b2), "grouped AdamW differs from separate optimizers")
  opt:zero_grad()
  T.eq(a1.grad, nil)
  T.eq(opt.state[2].step, 3)
end

tests.state_dict_resume_is_bit_identical = function(T)
  for _, make in ipairs {
    function(ps) return optim.AdamW { params = ps, lr = 0.01, betas = { 0.9, 0.95 }, weight_decay = 0.04 } end,
    function(ps) return optim.Muon { params = ps, lr = 0.02, momentum = 0.95, weight_decay = 0.04 } end,
    function(ps) return optim.SGD { params = ps, lr = 0.02, momentum = 0.9, nesterov = true } end,
  } do
    math.randomseed(99)
    local p = { rand_tensor({ 6, 4 }), rand_tensor({ 4, 8 }) }
    local gs = {}
    for s = 1, 8 do gs[s] = { rand_tensor({ 6, 4 }), rand_tensor({ 4, 8 }) } end
    local opt = make(p)
    local function run(o, ps, from, to)
      for s = from, to do
        ps[1].grad, ps[2].grad = gs[s][1]:clone(), gs[s][2]:clone()
        o:step(1 - s / 10)
      end
    end
    run(opt, p, 1, 4)
    local sd = opt:state_dict()
    local saved = { p[1]:clone(), p[2]:clone() }
    run(opt, p, 5, 8)
    -- a fresh optimizer over fresh tensors, restored from the checkpoint
    local q = { saved[1]:clone(), saved[2]:clone() }
    local opt2 = make(q)
    opt2:load_state_dict(sd)
    run(opt2, q, 5, 8)
    assert(same_bits(p[1], q[1]) and same_bits(p[2], q[2]), opt.kind .. ": resumed run differs")
  end
  local o = optim.AdamW { params = { pt.zeros({ 2 }) }, lr = 0.1 }
  T.raises(function() o:load_state_dict({ kind = "Muon", groups = {}, state = {} }) end, "the state is for Muon")
end

tests.clip_grad_norm_exact = function(T)
  local a, b = pt.zeros({ 2 }), pt.zeros({ 1, 2 })
  a.grad = pt.tensor({ 3, 0 })
  b.grad = pt.tensor({ { 0, 4 } })
  -- norm 5 > 1: scaled by 1/(5 + 1e-6)
  local n = optim.clip_grad_norm({ a, b }, 1.0)
  T.eq(n, 5.0)
  local k = 1.0 / (5.0 + 1e-6)
  T.eq(a.grad:flat_get(1), f32(3 * f32(k)))
  T.eq(b.grad:flat_get(2), f32(4 * f32(k)))
  -- below the threshold: untouched
  a.grad = pt.tensor({ 0.3, 0.4 })
  b.grad = nil
  T.eq(optim.clip_grad_norm({ a, b }, 1.0), math.sqrt(f32(0.3) ^ 2 + f32(0.4) ^ 2))
  T.eq(a.grad:flat_get(1), f32(0.3))
  -- max_norm 0 only measures; named params work too
  a.grad = pt.tensor({ 30, 40 })
  T.eq(optim.clip_grad_norm({ { "a", a } }, 0), 50.0)
  T.eq(a.grad:flat_get(2), 40.0)
  T.raises(function() C.clip_grad_norm({ a.grad, 5 }, 1) end, "entry 2 is a number")
end

tests.ema_every_k_and_state = function(T)
  local w = pt.tensor({ 1, 2 })
  local ema = optim.EMA { params = { w }, decay = 0.5, every = 2 }
  w:copy_(pt.tensor({ 3, 6 }))
  T.eq(ema:update(1), false)
  T.eq(ema:update(0), false)
  T.eq(ema:update(2), true) -- d = 0.25: e = 1 + 0.75 (3 − 1) = 2.5, 2 + 0.75·4 = 5
  T.eq(flat(ema.shadow[1]), { 2.5, 5 })
  local sd = ema:state_dict()
  ema:update(4)
  ema:load_state_dict(sd)
  T.eq(flat(ema.shadow[1]), { 2.5, 5 })
  ema:apply()
  T.eq(flat(w), { 2.5, 5 })
  T.raises(function() optim.EMA { params = { w }, decay = 1.5 } end, "decay must be in [0, 1]")
end

tests.swa_average_f32_and_bf16 = function(T)
  local w = pt.tensor({ 1, 2, 3 })
  local wb = pt.tensor({ 1, 2, 3 }):to("bf16")
  local swa = optim.SWA { params = { w, wb }, every = 50, threshold = 0.2 }
  T.eq(swa:maybe_add(50, 0.5), false)
  T.eq(swa:maybe_add(49, 0.1), false)
  T.eq(swa:maybe_add(100, 0.1), true)
  w:copy_(pt.tensor({ 2, 2, 2 }))
  wb:copy_(pt.tensor({ 2, 2, 2 }))
  T.eq(swa:apply(), false) -- one snapshot
  swa:add()
  T.eq(swa.count, 2)
  T.eq(swa:apply(), true)
  T.eq(flat(w), { 1.5, 2, 2.5 })
  T.eq(flat(wb), { 1.5, 2, 2.5 })
  -- bf16 sums round per add: 256 + 1 = 257 is not a bf16, rounds to 256 (ties to even)
  local s = pt.tensor({ 256 }):to("bf16")
  C.swa_add(s, pt.tensor({ 1 }):to("bf16"))
  T.eq(s:flat_get(1), 256.0)
  T.raises(function() C.swa_average(w, s, 0) end, "count = 0")
end

tests.split_params_proteus_rules = function(T)
  local named = {
    { "tok_emb.weight", pt.zeros({ 8, 4 }) },
    { "blocks.0.attn.c_q.weight", pt.zeros({ 4, 4 }) },
    { "blocks.0.mlp.fc.weight", pt.zeros({ 12, 4 }) },
    { "blocks.0.attn_scale", pt.zeros({ 4 }) },
    { "blocks.0.resid_mix", pt.zeros({ 2, 4 }) },
    { "blocks.0.attn.q_gain", pt.zeros({ 2 }) },
    { "skip_weights", pt.zeros({ 2, 4 }) },
    { "blocks.0.norm.bias", pt.zeros({ 4 }) },
  }
  local groups, order = optim.split_params(named, "proteus")
  T.eq(order, { "embed", "muon", "scalar" })
  T.eq(groups.embed.names, { "tok_emb.weight" })
  T.eq(groups.muon.names, { "blocks.0.attn.c_q.weight", "blocks.0.mlp.fc.weight" })
  T.eq(groups.scalar.names, { "blocks.0.attn_scale", "blocks.0.resid_mix", "blocks.0.attn.q_gain", "skip_weights",
    "blocks.0.norm.bias" })
  -- the groups plug straight into optimizers
  local muon = optim.Muon { params = groups.muon.params, names = groups.muon.names, lr = 0.02 }
  T.eq(#muon.groups[1].params, 2)
  T.eq(muon.groups[1].names, groups.muon.names)
  local sc = optim.Muon { params = groups.scalar.params, names = groups.scalar.names, lr = 0.02 }
  groups.scalar.params[1].grad = pt.zeros({ 4 })
  T.raises(function() sc:step() end, "param blocks.0.attn_scale has 1 dims")
  local bad = { { "bigram.table", pt.zeros({ 3, 3 }) } }
  T.raises(function() optim.split_params(bad, "proteus") end, "'bigram.table' matches no rule")
  local g2 = optim.split_params(bad, "proteus", { unmatched = "other" })
  T.eq(g2.other.names, { "bigram.table" })
end

tests.muon_rejects_vectors_and_bad_options = function(T)
  local v = pt.zeros({ 4 })
  v.grad = pt.zeros({ 4 })
  local o = optim.Muon { params = { { "blocks.0.attn_scale", v } }, lr = 0.02 }
  T.raises(function() o:step() end, "param blocks.0.attn_scale has 1 dims")
  local p, g, b = pt.zeros({ 2, 3 }), pt.zeros({ 2, 3 }), pt.zeros({ 2, 3 })
  T.raises(function() C.muon_step(p, g, b, { lr = 0.1, momentum = 0.9, round = "half" }) end, "got \"half\"")
  T.raises(function() C.muon_step(p, g, pt.zeros({ 3, 2 }), { lr = 0.1, momentum = 0.9 }) end,
    "momentum_buffer has shape [3, 2] but the param has shape [2, 3]")
  T.raises(function() C.muon_step(p, g, b, { lr = 0.1, momentum = 1.5 }) end, "momentum = 1.5")
  T.raises(function() C.newton_schulz(p, { coeffs = { { 1, 2, 3 }, { 1, 2, 3 } }, steps = 5 }) end,
    "2 coefficient tuples for 5 steps")
  T.raises(function() C.adamw_step(p, g, b, pt.zeros({ 2, 3 }, "f64"), { step = 1, lr = 0.1 }) end,
    "exp_avg_sq has dtype f64")
  T.raises(function() optim.AdamW { params = { pt.zeros({ 2 }, "f64") }, lr = 0.1 } end, "has dtype f64")
  T.raises(function() optim.Adam { params = { p }, lr = 0.1, weight_decay = 0.1 } end, "use optim.AdamW")
end

-- a misspelt hyper-parameter, an optimizer-level option inside a group, foreach on SGD (no multi-tensor
-- path) and batched on a non-Muon optimizer are errors that name the key; opt:set checks its key too
tests.option_names_are_checked = function(T)
  local p = pt.zeros({ 2, 3 })
  T.raises(function() optim.AdamW { params = { p }, lr = 0.1, weight_decy = 0.1 } end,
    "optim.AdamW: unknown option 'weight_decy' (did you mean 'weight_decay'?)")
  T.raises(function() optim.Muon { groups = { { params = { p }, lr = 0.1, nsteps = 4 } } } end,
    "unknown option 'nsteps' in group 1 (did you mean 'ns_steps'?)")
  T.raises(function() optim.AdamW { groups = { { params = { p }, lr = 0.1, foreach = false } } } end,
    "group 1 sets foreach, an option of the whole optimizer")
  T.raises(function() optim.AdamW { groups = { p } } end, "group 1 is a userdata")
  T.raises(function() optim.SGD { params = { p }, lr = 0.1, foreach = true } end,
    "SGD has no multi-tensor path")
  T.raises(function() optim.AdamW { params = { p }, lr = 0.1, batched = false } end, "batched")
  T.eq(optim.SGD { params = { p }, lr = 0.1 }.foreach, false)
  T.eq(optim.Muon { params = { p }, lr = 0.1, batched = false }.batched, false)
  -- a group may give lr alone (no top-level lr), and Muon's nil-default options are known
  local m = optim.Muon { groups = { { params = { p }, lr = 0.1, factor = 2, ns_steps = 3 } } }
  T.eq(m.groups[1].factor, 2)
  m:set("momentum", 0.5)
  T.eq(m.groups[1].momentum, 0.5)
  m:set("factor", 1.5)
  T.eq(m.groups[1].factor, 1.5)
  T.raises(function() m:set("momentun", 0.9) end, "optim.Muon:set: no option 'momentun' (did you mean 'momentum'?)")
end

return tests
