--- proteus.optim — optimizers (AdamW/Adam, SGD, Muon), gradient clipping, EMA and SWA, and the
--- name rules that split a model's parameters into optimizer groups.
--
--   local optim = require "proteus.optim"
--   local opt = optim.AdamW{params = {w, b}, lr = 0.03, betas = {0.9, 0.95}, eps = 1e-8, weight_decay = 0.04}
--   local muon = optim.Muon{groups = {{params = enc, lr = 0.025}, {params = dec, lr = 0.05}},
--                           momentum = 0.99, weight_decay = 0.04}
--   ... loss:backward() ...
--   optim.clip_grad_norm(all_params, 0.3)
--   opt:step(lr_mul); muon:set("momentum", sched.momentum_warmup(step, 0.92, 0.99, 1500)); muon:step(lr_mul)
--   opt:zero_grad()
--   local ckpt = opt:state_dict()   -- numbers and tensor copies; opt:load_state_dict(ckpt) restores
--
-- Multi-tensor ("foreach") path, the default for AdamW/Adam/Muon/EMA (foreach = false keeps one C call
-- per parameter; the bits are the same either way): step(lr_mul) = prepare(lr_mul) + apply(). prepare computes every live
-- parameter's step scalars on the host exactly as the per-tensor path does, counts the step, and
-- copies them into a small f64 tensor on the parameters' device (an ordinary copy); apply only
-- launches kernels that read those scalars there (one launch per up to 48 tensors; Muon: momentum,
-- one Newton–Schulz per bank of same-shaped matrices when batched = true, apply), nothing that waits
-- for the host. So apply can be captured in a CUDA graph once and replayed after each prepare:
--   opt:prepare(lr_mul, {all = true})   -- outside the capture; all: every param will have a grad
--   opt:apply()                         -- inside it (needs each param's .grad at that point)
--   local norm = optim.clip_grad_norm(params, 0.3, {device = true, out = norm_t})  -- no host sync
-- EMA has the same pair: ema:prepare(step) (returns whether it is due) and ema:launch().
--
-- Every optimizer is a table {kind, groups, state} (torch/optim's "function over a state table"
-- idiom, with methods): groups[i] = {params = {...}, names = {...}?, lr = ..., <hyper-parameters>},
-- state[k] = per-parameter state (k = position of the parameter counting through the groups in
-- order), so state_dict()/load_state_dict() are a table copy. Each group's lr is multiplied by the
-- lr_mul given to step() (the schedule's output, proteus.schedule).
-- Option names are checked: a key that is not a hyper-parameter of that optimizer (at the top level, in
-- a group, or in opt:set) is an error naming the nearest one; foreach is refused by SGD (it has no
-- multi-tensor path) and batched by everything but Muon.
-- The update math runs in C (proteus._optim, src/kernels/pt_optim.h has the exact formulas and the
-- bf16 rounding rules of Muon). Parameters and states are f32; params with no .grad are skipped.
-- Tests: tests/lua/test_optim.lua (against PyTorch via tests/reference/optim_ref.py),
-- tests/lua/test_optim_multi.lua (foreach against per tensor, bitwise), tests/gpu/test_optim.lua.
local C = require "proteus._optim"
local pt = require "proteus"

local optim = {}

optim.ns5 = C.ns5                     -- {{3.4445, -4.7750, 2.0315}}
optim.polar_express = C.polar_express -- the 5 per-step tuples of §4.3 (the records use 4 steps)
optim.newton_schulz = C.newton_schulz -- X = optim.newton_schulz(G, {steps=, coeffs=, dtype=, row_norm=})

local function fail(fmt, ...) error(string.format(fmt, ...), 3) end

-- A list of tensors from: a list of tensors, a list of {name, tensor} pairs, or a map name -> tensor
-- (sorted by name). Returns tensors, names (names may be nil entries).
local function tensor_list(what, xs)
  if type(xs) ~= "table" then fail("%s: params must be a table of tensors, got %s", what, type(xs)) end
  local ts, names = {}, {}
  if #xs > 0 then
    for i, x in ipairs(xs) do
      if pt.is_tensor(x) then
        ts[i] = x
      elseif type(x) == "table" and type(x[1]) == "string" and pt.is_tensor(x[2]) then
        ts[i], names[i] = x[2], x[1]
      else
        fail("%s: params entry %d is a %s, expected a tensor or {name, tensor}", what, i, type(x))
      end
    end
  else
    local keys = {}
    for k, v in pairs(xs) do
      if type(k) ~= "string" or not pt.is_tensor(v) then
        fail("%s: params entry %s is not name = tensor", what, tostring(k))
      end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for i, k in ipairs(keys) do ts[i], names[i] = xs[k], k end
  end
  return ts, names
end

local function copy_table(t)
  local r = {}
  for k, v in pairs(t) do r[k] = type(v) == "table" and copy_table(v) or v end
  return r
end

local function zeros_like(p) return pt.zeros(p:shape(), { dtype = "f32", device = p:device() }) end

local function clone_f32(p)
  local t = zeros_like(p)
  pt.no_grad(function() t:copy_(p) end)
  return t
end

-- options of the optimizer itself, never copied into groups (so state dicts keep their format)
local OPTIMIZER_LEVEL = { foreach = true, batched = true }
local nearest = require("proteus.config").nearest

-- the option names a group takes: lr, the defaults' keys and `also` (options whose default is nil)
local function group_keys(defaults, also)
  local set, keys = { lr = true }, {}
  for k in pairs(defaults) do set[k] = true end
  for _, k in ipairs(also or {}) do set[k] = true end
  for k in pairs(set) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local function check_key(kind, where, k, keys, extra)
  for _, n in ipairs(keys) do if n == k then return end end
  for _, n in ipairs(extra) do if n == k then return end end
  local all = {}
  for _, n in ipairs(keys) do all[#all + 1] = n end
  for _, n in ipairs(extra) do all[#all + 1] = n end
  error(string.format("optim.%s: unknown option '%s'%s (did you mean '%s'?); the options are: %s", kind,
    tostring(k), where, nearest(tostring(k), all), table.concat(all, ", ")), 4)
end

-- Builds optimizer groups from cfg (cfg.params or cfg.groups) over the defaults; checks each param and
-- every option name (a misspelt hyper-parameter is an error, not a silently kept default). `also` names
-- group options whose default is nil.
local function make_groups(kind, cfg, defaults, also)
  if type(cfg) ~= "table" then fail("optim.%s: expected a table of options, got %s", kind, type(cfg)) end
  local keys = group_keys(defaults, also)
  for k in pairs(cfg) do check_key(kind, "", k, keys, { "params", "groups", "names", "foreach", "batched" }) end
  local specs
  if cfg.groups then
    if cfg.params then fail("optim.%s: give either params or groups, not both", kind) end
    specs = cfg.groups
  elseif cfg.params then
    specs = { { params = cfg.params, names = cfg.names } }
  else
    fail("optim.%s: no params (pass params = {...} or groups = {{params = ...}, ...})", kind)
  end
  local groups = {}
  for gi, spec in ipairs(specs) do
    if type(spec) ~= "table" then fail("optim.%s: group %d is a %s, expected a table {params = ...}", kind, gi, type(spec)) end
    for k in pairs(spec) do
      if OPTIMIZER_LEVEL[k] then
        fail("optim.%s: group %d sets %s, an option of the whole optimizer; pass it next to groups", kind, gi, k)
      end
      check_key(kind, " in group " .. gi, k, keys, { "params", "names" })
    end
    local g = {}
    for k, v in pairs(defaults) do g[k] = v end
    for k, v in pairs(cfg) do
      if k ~= "params" and k ~= "groups" and k ~= "names" and not OPTIMIZER_LEVEL[k] then g[k] = v end
    end
    for k, v in pairs(spec) do
      if k ~= "params" then g[k] = v end
    end
    local ps, names = tensor_list("optim." .. kind .. " group " .. gi, spec.params)
    if spec.names then names = spec.names end
    g.params, g.names = ps, names
    for i, p in ipairs(ps) do
      if p:dtype() ~= "f32" then
        fail("optim.%s: param %s of group %d has dtype %s; optimizers update f32 params", kind,
          names[i] or tostring(i), gi, p:dtype())
      end
    end
    if type(g.lr) ~= "number" then fail("optim.%s: group %d has no lr (a number)", kind, gi) end
    groups[gi] = g
  end
  return groups, keys
end

-- the state table of parameter k (position counting through the groups), made on first use
local function state_of(self, k)
  local st = self.state[k]
  if not st then
    st = {}
    self.state[k] = st
  end
  return st
end

-- ---- the optimizer "class" ----
local Optimizer = {}
Optimizer.__index = Optimizer

-- multi: {prepare = fn(self, lr_mul, all), apply = fn(self, plan)} or nil (no multi-tensor path)
local function new_optimizer(kind, groups, keys, update, cfg, multi)
  local foreach = multi ~= nil
  if cfg.foreach ~= nil then foreach = cfg.foreach end
  if type(foreach) ~= "boolean" then fail("optim.%s: foreach must be a boolean, got %s", kind, type(foreach)) end
  if foreach and not multi then
    fail("optim.%s: foreach = true, but %s has no multi-tensor path (one C call per parameter); drop foreach",
      kind, kind)
  end
  local batched = kind == "Muon"
  if cfg.batched ~= nil then
    if kind ~= "Muon" then
      fail("optim.%s: batched (one Newton–Schulz per bank of same-shaped matrices) is a Muon option; drop it", kind)
    end
    batched = cfg.batched
  end
  if type(batched) ~= "boolean" then fail("optim.%s: batched must be a boolean, got %s", kind, type(batched)) end
  return setmetatable({ kind = kind, groups = groups, state = {}, foreach = foreach, batched = batched,
    _update = update, _multi = multi, _keys = keys }, Optimizer)
end

local function check_lr_mul(self, what, lr_mul)
  lr_mul = lr_mul or 1
  if type(lr_mul) ~= "number" or lr_mul ~= lr_mul then
    error("optim." .. self.kind .. ":" .. what .. ": lr_mul must be a number, got " .. tostring(lr_mul), 3)
  end
  return lr_mul
end

--- Applies one update to every parameter that has a gradient; lr = group.lr * (lr_mul or 1).
--- With foreach (the default for AdamW, Adam and Muon) this is prepare(lr_mul) then apply().
function Optimizer:step(lr_mul)
  lr_mul = check_lr_mul(self, "step", lr_mul)
  if self.foreach and self._multi then
    self:prepare(lr_mul)
    return self:apply()
  end
  local k = 0
  for _, g in ipairs(self.groups) do
    local lr = g.lr * lr_mul
    for i, p in ipairs(g.params) do
      k = k + 1
      local grad = p.grad
      if grad then
        local st = state_of(self, k)
        self._update(p, grad, st, g, lr, g.names[i] or ("#" .. k))
      end
    end
  end
end

-- ---- the multi-tensor plan ----
-- live parameters in state order: {k, p, g (group), gi, name}; all: every parameter, else those with
-- a grad now
local function live_params(self, all)
  local live, k = {}, 0
  for gi, g in ipairs(self.groups) do
    for i, p in ipairs(g.params) do
      k = k + 1
      if all or p.grad then live[#live + 1] = { k = k, p = p, g = g, gi = gi, name = g.names[i] or ("#" .. k) } end
    end
  end
  return live
end

-- The launches of a step: live params split by launch_key(item) (first appearance order), each with
-- a host row tensor and a device scalar tensor of K doubles per param. The previous plan is kept when
-- the live set is the same (same params, same keys), so the device scalar tensors keep their addresses
-- from one prepare to the next (a captured graph reads them there).
local function make_plan(self, live, K, launch_key)
  local old = self._plan
  local keys = {}
  for i, it in ipairs(live) do keys[i] = launch_key(it) end
  if old and #old.live == #live then
    local same = true
    for i, it in ipairs(live) do
      local o = old.live[i]
      if o.k ~= it.k or not rawequal(o.p, it.p) or old.keys[i] ~= keys[i] then
        same = false
        break
      end
    end
    if same then return old end
  end
  local launches, by = {}, {}
  for i, it in ipairs(live) do
    local L = by[keys[i]]
    if not L then
      L = { items = {}, device = it.p:device(), g = it.g }
      by[keys[i]] = L
      launches[#launches + 1] = L
    end
    L.items[#L.items + 1] = it
  end
  -- one host and one device buffer per device (one upload per prepare), each launch a slice
  local buffers, bydev = {}, {}
  for _, L in ipairs(launches) do
    local b = bydev[L.device]
    if not b then
      b = { device = L.device, n = 0 }
      bydev[L.device] = b
      buffers[#buffers + 1] = b
    end
    L.buffer, L.off = b, b.n
    b.n = b.n + #L.items * K
  end
  for _, b in ipairs(buffers) do
    b.host = pt.zeros({ b.n }, { dtype = "f64" })
    b.scal = pt.zeros({ b.n }, { dtype = "f64", device = b.device })
  end
  for _, L in ipairs(launches) do
    L.host = L.buffer.host:narrow(1, L.off + 1, #L.items * K)
    L.scal = L.buffer.scal:narrow(1, L.off + 1, #L.items * K)
  end
  return { live = live, keys = keys, launches = launches, buffers = buffers }
end

local function upload(plan)
  pt.no_grad(function()
    for _, b in ipairs(plan.buffers) do b.scal:copy_(b.host) end
  end)
end

--- Multi-tensor path, part 1: computes the step scalars of every parameter that has a gradient (of
--- every parameter with opts.all = true), counts the step in the state and copies the scalars into
--- a small f64 tensor on the parameters' device. Do it outside any CUDA graph capture; then apply().
function Optimizer:prepare(lr_mul, opts)
  lr_mul = check_lr_mul(self, "prepare", lr_mul)
  if not self._multi then
    error("optim." .. self.kind .. ":prepare: " .. self.kind .. " has no multi-tensor path; use step()", 2)
  end
  if not self.foreach then
    error("optim." .. self.kind .. ":prepare: this optimizer was made with foreach = false; prepare/apply need "
      .. "the multi-tensor path (the per-tensor path takes its scalars by value)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("optim." .. self.kind .. ":prepare: opts must be a table ({all = true}), got " .. type(opts), 2)
  end
  local plan = self._multi.prepare(self, lr_mul, opts and opts.all == true)
  upload(plan)
  plan.pending = true
  self._plan = plan
end

--- Multi-tensor path, part 2: the update kernels with the scalars of the last prepare(), reading
--- each parameter's .grad now. Launches only (capturable in a CUDA graph); one apply per prepare.
function Optimizer:apply()
  local plan = self._plan
  if not (plan and plan.pending) then
    error("optim." .. self.kind .. ":apply: no prepared step; call prepare(lr_mul) first (once per apply)", 2)
  end
  local planned, k = {}, 0
  for _, it in ipairs(plan.live) do planned[it.k] = true end
  for _, g in ipairs(self.groups) do
    for i, p in ipairs(g.params) do
      k = k + 1
      local name = g.names[i] or ("#" .. k)
      if planned[k] and not p.grad then
        error(string.format("optim.%s:apply: param %s has no grad; prepare() counted it (run the backward first)",
          self.kind, name), 2)
      elseif p.grad and not planned[k] then
        error(string.format("optim.%s:apply: param %s has a grad but prepare() saw none; prepare after the "
          .. "backward, or with {all = true}", self.kind, name), 2)
      end
    end
  end
  plan.pending = false
  pt.no_grad(function() self._multi.apply(self, plan) end)
end

--- Drops every parameter's gradient (PyTorch set_to_none semantics).
function Optimizer:zero_grad()
  for _, g in ipairs(self.groups) do
    for _, p in ipairs(g.params) do p.grad = nil end
  end
end

--- Sets a hyper-parameter on every group (e.g. opt:set("momentum", 0.95)).
function Optimizer:set(key, value)
  local known = false
  for _, k in ipairs(self._keys) do known = known or k == key end
  if not known then
    error(string.format("optim.%s:set: no option '%s' (did you mean '%s'?); the options are: %s", self.kind,
      tostring(key), nearest(tostring(key), self._keys), table.concat(self._keys, ", ")), 2)
  end
  for _, g in ipairs(self.groups) do g[key] = value end
end

--- All parameters in group order (the order of the state keys).
function Optimizer:parameters()
  local r = {}
  for _, g in ipairs(self.groups) do
    for _, p in ipairs(g.params) do r[#r + 1] = p end
  end
  return r
end

--- A checkpointable copy: {kind, groups = {{n = #params, lr = ..., ...}}, state = {[k] = {...}}};
--- numbers and strings are copied, tensors cloned.
function Optimizer:state_dict()
  local groups = {}
  for gi, g in ipairs(self.groups) do
    local hg = { n = #g.params }
    for k, v in pairs(g) do
      local tv = type(v)
      if k ~= "params" and k ~= "names" then
        if tv == "number" or tv == "string" or tv == "boolean" then hg[k] = v end
        if tv == "table" then hg[k] = copy_table(v) end -- betas, custom coeffs
      end
    end
    groups[gi] = hg
  end
  local state = {}
  for k, st in pairs(self.state) do
    local s = {}
    for key, v in pairs(st) do s[key] = pt.is_tensor(v) and v:clone() or v end
    state[k] = s
  end
  return { kind = self.kind, groups = groups, state = state }
end

--- Restores a state_dict() of an optimizer of the same kind over parameters of the same shapes.
function Optimizer:load_state_dict(sd)
  local kind = self.kind
  if type(sd) ~= "table" or sd.kind ~= kind then
    error(string.format("optim.%s:load_state_dict: the state is for %s", kind,
      type(sd) == "table" and tostring(sd.kind) or type(sd)), 2)
  end
  if #sd.groups ~= #self.groups then
    error(string.format("optim.%s:load_state_dict: %d groups in the state, %d in the optimizer", kind,
      #sd.groups, #self.groups), 2)
  end
  local params = self:parameters()
  for gi, hg in ipairs(sd.groups) do
    if hg.n ~= #self.groups[gi].params then
      error(string.format("optim.%s:load_state_dict: group %d has %d params in the state, %d in the optimizer",
        kind, gi, hg.n, #self.groups[gi].params), 2)
    end
  end
  for k, st in pairs(sd.state) do
    local p = params[k]
    if not p then error(string.format("optim.%s:load_state_dict: state for param %s, which does not exist", kind, tostring(k)), 2) end
    for key, v in pairs(st) do
      if pt.is_tensor(v) then
        local want, got = table.concat(p:shape(), "x"), table.concat(v:shape(), "x")
        if want ~= got then
          error(string.format("optim.%s:load_state_dict: %s of param %d has shape %s, the param is %s", kind,
            key, k, got, want), 2)
        end
      end
    end
  end
  for gi, hg in ipairs(sd.groups) do
    local g = self.groups[gi]
    for key, v in pairs(hg) do
      if key ~= "n" then g[key] = type(v) == "table" and copy_table(v) or v end
    end
  end
  self._plan = nil -- a prepared step refers to the old state
  self.state = {}
  for k, st in pairs(sd.state) do
    local s = {}
    for key, v in pairs(st) do s[key] = pt.is_tensor(v) and v:clone() or v end
    self.state[k] = s
  end
end

-- ---- AdamW / Adam ----
local function adamw_update(p, grad, st, g, lr)
  if not st.exp_avg then
    st.step, st.exp_avg, st.exp_avg_sq = 0, zeros_like(p), zeros_like(p)
  end
  st.step = st.step + 1
  C.adamw_step(p, grad, st.exp_avg, st.exp_avg_sq, {
    step = st.step, lr = lr, beta1 = g.betas[1], beta2 = g.betas[2], eps = g.eps,
    weight_decay = g.weight_decay, maximize = g.maximize,
  })
end

local ADAMW_NSCAL = 7 -- pt_optim.h PT_ADAMW_NSCAL

local function device_key(it) return it.p:device() end

local adamw_multi = {
  prepare = function(self, lr_mul, all)
    local plan = make_plan(self, live_params(self, all), ADAMW_NSCAL, device_key)
    for _, L in ipairs(plan.launches) do
      for i, it in ipairs(L.items) do
        local st = state_of(self, it.k)
        if not st.exp_avg then st.step, st.exp_avg, st.exp_avg_sq = 0, zeros_like(it.p), zeros_like(it.p) end
        local g = it.g
        C.adamw_scalars(L.host, i, { step = st.step + 1, lr = g.lr * lr_mul, beta1 = g.betas[1], beta2 = g.betas[2],
          eps = g.eps, weight_decay = g.weight_decay, maximize = g.maximize })
      end
    end
    for _, it in ipairs(plan.live) do
      local st = self.state[it.k]
      st.step = st.step + 1
    end
    return plan
  end,
  apply = function(self, plan)
    for _, L in ipairs(plan.launches) do
      local ps, gs, ms, vs = {}, {}, {}, {}
      for i, it in ipairs(L.items) do
        local st = self.state[it.k]
        ps[i], gs[i], ms[i], vs[i] = it.p, it.p.grad, st.exp_avg, st.exp_avg_sq
      end
      C.adamw_multi(ps, gs, ms, vs, L.scal)
    end
  end,
}

--- AdamW with PyTorch semantics (decoupled wd: p ← p·(1 − lr·wd) first). Options (per group too):
--- lr, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.01, maximize = false; for the optimizer:
--- foreach = true (the multi-tensor path; false: one C call per parameter, same bits).
function optim.AdamW(cfg)
  local groups, keys = make_groups("AdamW", cfg,
    { lr = cfg and cfg.lr, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.01, maximize = false })
  return new_optimizer("AdamW", groups, keys, adamw_update, cfg, adamw_multi)
end

--- Adam = AdamW without weight decay (PyTorch's Adam adds L2 decay to the gradient instead; that
--- variant is not implemented, so weight_decay must be 0 here).
function optim.Adam(cfg)
  local groups, keys = make_groups("Adam", cfg, { lr = cfg and cfg.lr, betas = { 0.9, 0.999 }, eps = 1e-8,
    weight_decay = 0, maximize = false })
  for gi, g in ipairs(groups) do
    if g.weight_decay ~= 0 then
      error(string.format("optim.Adam: group %d has weight_decay = %s; Adam's L2 decay is not implemented, use optim.AdamW",
        gi, tostring(g.weight_decay)), 2)
    end
  end
  return new_optimizer("Adam", groups, keys, adamw_update, cfg, adamw_multi)
end

-- ---- SGD ----
local function sgd_update(p, grad, st, g, lr)
  local first = false
  if g.momentum ~= 0 and not st.momentum_buffer then
    st.momentum_buffer = zeros_like(p)
    first = true
  end
  C.sgd_step(p, grad, g.momentum ~= 0 and st.momentum_buffer or nil, {
    first = first, lr = lr, momentum = g.momentum, dampening = g.dampening, weight_decay = g.weight_decay,
    nesterov = g.nesterov, maximize = g.maximize,
  })
end

--- SGD with PyTorch semantics: lr, momentum = 0, dampening = 0, weight_decay = 0 (L2, added to the
--- gradient), nesterov = false, maximize = false. One C call per parameter (no multi-tensor path, so
--- no foreach option and no cuda_graph = true in train.run).
function optim.SGD(cfg)
  local groups, keys = make_groups("SGD", cfg, { lr = cfg and cfg.lr, momentum = 0, dampening = 0, weight_decay = 0,
    nesterov = false, maximize = false })
  return new_optimizer("SGD", groups, keys, sgd_update, cfg, nil)
end

-- ---- Muon ----
local function muon_check_dims(p, name, level)
  local nd = p:dim()
  if nd ~= 2 and nd ~= 3 then
    error(string.format("optim.Muon: param %s has %d dims; Muon updates matrices [rows, cols] or banks [n, rows, cols]",
      name, nd), level + 1)
  end
end

local function muon_update(p, grad, st, g, lr, name)
  muon_check_dims(p, name, 3)
  if not st.momentum_buffer then st.momentum_buffer = zeros_like(p) end
  C.muon_step(p, grad, st.momentum_buffer, {
    lr = lr, momentum = g.momentum, nesterov = g.nesterov, weight_decay = g.weight_decay, factor = g.factor,
    steps = g.ns_steps, coeffs = g.coeffs, ns_dtype = g.ns_dtype, row_norm = g.row_norm, round = g.round,
  })
end

local MUON_NSCAL = 4 -- pt_optim.h PT_MUON_NSCAL

local muon_multi = {
  prepare = function(self, lr_mul, all)
    local live = live_params(self, all)
    for _, it in ipairs(live) do muon_check_dims(it.p, it.name, 4) end
    -- a launch per group and device (the Newton–Schulz options are per group)
    local plan = make_plan(self, live, MUON_NSCAL, function(it) return it.gi .. "|" .. it.p:device() end)
    for _, L in ipairs(plan.launches) do
      local g = L.g
      for i, it in ipairs(L.items) do
        local st = state_of(self, it.k)
        if not st.momentum_buffer then st.momentum_buffer = zeros_like(it.p) end
        local s = it.p:shape()
        C.muon_scalars(L.host, i, { lr = g.lr * lr_mul, momentum = g.momentum, weight_decay = g.weight_decay,
          factor = g.factor, rows = s[#s - 1], cols = s[#s] })
      end
      L.opts = { nesterov = g.nesterov, steps = g.ns_steps, coeffs = g.coeffs, ns_dtype = g.ns_dtype,
        row_norm = g.row_norm, round = g.round, batched = self.batched }
    end
    return plan
  end,
  apply = function(self, plan)
    for _, L in ipairs(plan.launches) do
      local ps, gs, bs = {}, {}, {}
      for i, it in ipairs(L.items) do
        ps[i], gs[i], bs[i] = it.p, it.p.grad, self.state[it.k].momentum_buffer
      end
      C.muon_multi(ps, gs, bs, L.scal, L.opts)
    end
  end,
}

--- Muon (spec §2.3/§3.4/§4.3). Options (per group too):
---   lr = 0.02, momentum = 0.95, nesterov = true, weight_decay = 0 (decoupled: p ← p·(1 − lr·wd)),
---   ns_steps = 5, coeffs = "ns5" | "polar_express" | {{a,b,c}, ...}, ns_dtype = "bf16" | "f32",
---   row_norm = false (MuonEq-R), factor = nil (√max(1, rows/cols)) or a number (e.g. 2 for mlp_up),
---   round = "scaled" (bf16(f·u), §2.3) | "unit" (bf16(u)·f, §4.3) | "none".
--- The #1539 setup: {coeffs = "polar_express", ns_steps = 4, row_norm = true, round = "unit"}.
--- Momentum warmup: opt:set("momentum", schedule.momentum_warmup(step, 0.92, 0.99, 1500)).
--- For the optimizer: foreach = true (multi-tensor path), batched = true (same-shaped matrices of a
--- group share one Newton–Schulz run over a bank [k, rows, cols]; the same bits on the CPU).
function optim.Muon(cfg)
  local groups, keys = make_groups("Muon", cfg, { lr = (cfg and cfg.lr) or 0.02, momentum = 0.95, nesterov = true,
    weight_decay = 0, ns_steps = nil, coeffs = "ns5", ns_dtype = "bf16", row_norm = false, factor = nil,
    round = "scaled" }, { "ns_steps", "factor" })
  for _, g in ipairs(groups) do
    if g.ns_steps == nil then g.ns_steps = g.coeffs == "polar_express" and 4 or 5 end
  end
  return new_optimizer("Muon", groups, keys, muon_update, cfg, muon_multi)
end

-- ---- gradient clipping ----
--- Global L2 norm over the gradients of params (a list of tensors or {name, tensor} pairs, or a map);
--- when above max_norm every gradient is scaled by max_norm/(norm + 1e-6) (PyTorch clip_grad_norm_).
--- max_norm <= 0 only measures. Returns the norm before clipping (f64 accumulation). Gradients on one
--- GPU take the device path below and one read of the norm (not a synchronisation per tensor).
--- opts.device = true: the same on the gradients' device without a host round trip (the norm, the
--- coefficient and the scaling stay there; a non-finite norm scales nothing); returns the norm as a
--- 0-d f64 tensor on that device (opts.out: an f64 tensor of one element to write it to, e.g. one
--- that a captured graph keeps), to be read when convenient. Same bits as the host path.
function optim.clip_grad_norm(params, max_norm, opts)
  local ts = tensor_list("optim.clip_grad_norm", params)
  local grads = {}
  for _, p in ipairs(ts) do
    local g = p.grad
    if g then grads[#grads + 1] = g end
  end
  if opts ~= nil then
    if type(opts) ~= "table" then fail("optim.clip_grad_norm: opts must be a table ({device = true}), got %s", type(opts)) end
    if opts.device then
      local out = opts.out
      if out == nil then
        out = pt.zeros({}, { dtype = "f64", device = #grads > 0 and grads[1]:device() or "cpu" })
      elseif not pt.is_tensor(out) then
        fail("optim.clip_grad_norm: opts.out must be a tensor, got %s", type(out))
      end
      C.clip_grad_norm_dev(grads, max_norm or 0, out)
      return out
    end
  end
  -- gradients on one GPU: the device path (one multi-tensor Σg² launch per 48 tensors, the clip on the
  -- device) and one read of the norm, instead of the host path's synchronisation per tensor; the same
  -- bits (the same partial sums, tree and scale)
  local dev = #grads > 0 and grads[1]:device() or "cpu"
  if dev ~= "cpu" then
    for _, g in ipairs(grads) do
      if g:device() ~= dev then return C.clip_grad_norm(grads, max_norm or 0) end
    end
    local out = pt.zeros({}, { dtype = "f64", device = dev })
    C.clip_grad_norm_dev(grads, max_norm or 0, out)
    return out:item()
  end
  return C.clip_grad_norm(grads, max_norm or 0)
end

-- ---- EMA ----
local EMA = {}
EMA.__index = EMA

--- EMA{params, decay = 0.999, every = 1, foreach = true}: an f32 shadow of each parameter.
--- ema:update(step) applies ema ← ema + (1 − d)(w − ema) with d = decay^every when every == 1, or
--- when step > 0 and step % every == 0 (PROTEUS: decay 0.999, every 10; #1539: 0.9965 every step;
--- #598: 0.997). foreach: one multi-tensor launch per device (false: a C call per tensor; same bits);
--- update(step) is then prepare(step) + launch(), which a CUDA graph can split as the optimizers do.
function optim.EMA(cfg)
  if type(cfg) ~= "table" then error("optim.EMA: expected a table of options", 2) end
  local ts, names = tensor_list("optim.EMA", cfg.params)
  local decay, every = cfg.decay or 0.999, cfg.every or 1
  if type(decay) ~= "number" or decay < 0 or decay > 1 then error("optim.EMA: decay must be in [0, 1], got " .. tostring(decay), 2) end
  if math.type(every) ~= "integer" or every < 1 then error("optim.EMA: every must be an integer >= 1, got " .. tostring(every), 2) end
  local foreach = true
  if cfg.foreach ~= nil then foreach = cfg.foreach end
  if type(foreach) ~= "boolean" then error("optim.EMA: foreach must be a boolean, got " .. type(foreach), 2) end
  local shadow = {}
  for i, p in ipairs(ts) do shadow[i] = clone_f32(p) end
  return setmetatable({ params = ts, names = names, shadow = shadow, decay = decay, every = every, updates = 0,
    foreach = foreach }, EMA)
end

local function ema_due(self, step)
  return not (self.every > 1 and (step == nil or step <= 0 or step % self.every ~= 0))
end

--- Returns true when the shadow was updated at this step.
function EMA:update(step)
  if self.foreach then
    if not self:prepare(step) then return false end
    self:launch()
    return true
  end
  if not ema_due(self, step) then return false end
  local d = self.decay ^ self.every
  for i, p in ipairs(self.params) do C.ema_update(self.shadow[i], p, d) end
  self.updates = self.updates + 1
  return true
end

--- Multi-tensor path, part 1: when an update is due at this step, writes d = decay^every into the
--- device scalar (an ordinary copy, outside any graph capture), counts the update and returns true;
--- else returns false. Then launch().
function EMA:prepare(step)
  if not self.foreach then error("optim.EMA:prepare: this EMA was made with foreach = false", 2) end
  if not ema_due(self, step) then return false end
  if not self._plan then
    local launches, by = {}, {}
    for i, p in ipairs(self.params) do
      local dev = p:device()
      local L = by[dev]
      if not L then
        L = { idx = {}, host = pt.zeros({ 1 }, { dtype = "f64" }), scal = pt.zeros({ 1 }, { dtype = "f64", device = dev }) }
        by[dev] = L
        launches[#launches + 1] = L
      end
      L.idx[#L.idx + 1] = i
    end
    self._plan = { launches = launches }
  end
  local d = self.decay ^ self.every
  pt.no_grad(function()
    for _, L in ipairs(self._plan.launches) do
      C.ema_scalars(L.host, 1, d)
      L.scal:copy_(L.host)
    end
  end)
  self.updates = self.updates + 1
  self._plan.pending = true
  return true
end

--- Multi-tensor path, part 2: the EMA kernels with the decay of the last prepare (launches only;
--- named launch because ema:apply() copies the shadow into the parameters).
function EMA:launch()
  local plan = self._plan
  if not (plan and plan.pending) then error("optim.EMA:launch: no prepared update; call prepare(step) first", 2) end
  plan.pending = false
  for _, L in ipairs(plan.launches) do
    local sh, ws = {}, {}
    for j, i in ipairs(L.idx) do sh[j], ws[j] = self.shadow[i], self.params[i] end
    C.ema_multi(sh, ws, L.scal)
  end
end

--- Copies the shadow into the parameters (cast to each parameter's dtype).
function EMA:apply()
  pt.no_grad(function()
    for i, p in ipairs(self.params) do p:copy_(self.shadow[i]) end
  end)
end

function EMA:state_dict()
  local s = {}
  for i, t in ipairs(self.shadow) do s[i] = t:clone() end
  return { kind = "EMA", decay = self.decay, every = self.every, updates = self.updates, shadow = s }
end

function EMA:load_state_dict(sd)
  if type(sd) ~= "table" or sd.kind ~= "EMA" or #sd.shadow ~= #self.shadow then
    error("optim.EMA:load_state_dict: not an EMA state over " .. #self.shadow .. " tensors", 2)
  end
  self.decay, self.every, self.updates = sd.decay, sd.every, sd.updates
  for i, t in ipairs(sd.shadow) do self.shadow[i]:copy_(t) end
end

-- ---- SWA ----
local SWA = {}
SWA.__index = SWA

--- SWA{params, every = 50, threshold = 0.2, min_count = 2}: running sums in each parameter's own
--- dtype (f32, or bf16 summed in bf16 as the PROTEUS record does). swa:maybe_add(step, lr_mul)
--- snapshots when lr_mul < threshold and step % every == 0; swa:apply() replaces the parameters by
--- sum/count when count >= min_count and returns true.
function optim.SWA(cfg)
  if type(cfg) ~= "table" then error("optim.SWA: expected a table of options", 2) end
  local ts, names = tensor_list("optim.SWA", cfg.params)
  for i, p in ipairs(ts) do
    if p:dtype() ~= "f32" and p:dtype() ~= "bf16" then
      error(string.format("optim.SWA: param %s has dtype %s; SWA sums f32 or bf16", names[i] or tostring(i), p:dtype()), 2)
    end
  end
  return setmetatable({ params = ts, names = names, every = cfg.every or 50, threshold = cfg.threshold or 0.2,
    min_count = cfg.min_count or 2, count = 0, sums = nil }, SWA)
end

function SWA:add()
  if not self.sums then
    self.sums = {}
    for i, p in ipairs(self.params) do
      self.sums[i] = pt.zeros(p:shape(), { dtype = p:dtype(), device = p:device() })
    end
  end
  for i, p in ipairs(self.params) do C.swa_add(self.sums[i], p) end
  self.count = self.count + 1
end

--- Adds a snapshot when due (schedule.swa_due); returns true when it did.
function SWA:maybe_add(step, lr_mul)
  if lr_mul < self.threshold and step % self.every == 0 then
    self:add()
    return true
  end
  return false
end

function SWA:apply()
  if self.count < self.min_count then return false end
  for i, p in ipairs(self.params) do C.swa_average(p, self.sums[i], self.count) end
  return true
end

function SWA:state_dict()
  local s = nil
  if self.sums then
    s = {}
    for i, t in ipairs(self.sums) do s[i] = t:clone() end
  end
  return { kind = "SWA", count = self.count, every = self.every, threshold = self.threshold,
    min_count = self.min_count, sums = s }
end

function SWA:load_state_dict(sd)
  if type(sd) ~= "table" or sd.kind ~= "SWA" then error("optim.SWA:load_state_dict: not an SWA state", 2) end
  self.count, self.every, self.threshold, self.min_count = sd.count, sd.every, sd.threshold, sd.min_count
  if sd.sums then
    self.sums = {}
    for i, t in ipairs(sd.sums) do self.sums[i] = t:clone() end
  else
    self.sums = nil
  end
end

-- ---- parameter groups by name ----

--- Control-tensor names of the baseline and records (§2.1, §3.6): kept f32, optimised by AdamW.
optim.control_names = { "attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight" }

--- Rule sets for optim.split_params. A rule: {group = NAME, match = pattern or {patterns} (Lua
--- patterns on the parameter name; any one matching), ndim = n or {n, ...} (optional), exclude =
--- pattern(s) (optional)}. The first matching rule wins.
optim.rules = {
  -- PROTEUS §3.4 (and the baseline §2.3): tok_emb -> embed; control names -> scalar; other 2-D block
  -- params -> muon; remaining block params (1-D) -> scalar.
  proteus = {
    { group = "embed", match = "^tok_emb%." },
    { group = "scalar", match = { "attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weight" } },
    { group = "muon", match = "^blocks%.", ndim = 2 },
    { group = "scalar", match = "^blocks%." },
  },
}

local function as_list(x)
  if x == nil then return nil end
  if type(x) == "string" then return { x } end
  return x
end

local function any_match(name, pats)
  for _, pat in ipairs(pats) do
    if name:find(pat) then return true end
  end
  return false
end

--- Splits named parameters by rules. named: a list of {name, tensor} or a map name -> tensor.
--- opts.unmatched: "error" (default), "ignore", or a group name that takes the rest.
--- Returns groups (group name -> {names = {...}, params = {...}}) and the group names in rule order.
function optim.split_params(named, rules, opts)
  opts = opts or {}
  if type(rules) == "string" then
    rules = optim.rules[rules] or error("optim.split_params: no rule set named '" .. rules .. "'", 2)
  end
  local ts, names = tensor_list("optim.split_params", named)
  local groups, order = {}, {}
  local function put(gname, name, t)
    local g = groups[gname]
    if not g then
      g = { names = {}, params = {} }
      groups[gname] = g
      order[#order + 1] = gname
    end
    g.names[#g.names + 1] = name
    g.params[#g.params + 1] = t
  end
  for i, t in ipairs(ts) do
    local name = names[i]
    if not name then error("optim.split_params: parameter " .. i .. " has no name; pass {name, tensor} pairs", 2) end
    local hit = nil
    for _, r in ipairs(rules) do
      local ok = any_match(name, as_list(r.match) or { "" })
      if ok and r.ndim then
        local nds = type(r.ndim) == "table" and r.ndim or { r.ndim }
        local found = false
        for _, n in ipairs(nds) do
          if t:dim() == n then found = true end
        end
        ok = found
      end
      if ok and r.exclude and any_match(name, as_list(r.exclude)) then ok = false end
      if ok then
        hit = r.group
        break
      end
    end
    if hit then
      put(hit, name, t)
    elseif (opts.unmatched or "error") == "error" then
      error("optim.split_params: parameter '" .. name .. "' matches no rule (pass {unmatched = 'ignore'} or a group name)", 2)
    elseif opts.unmatched ~= "ignore" then
      put(opts.unmatched, name, t)
    end
  end
  return groups, order
end

return optim
