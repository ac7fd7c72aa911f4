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
-- Every optimizer is a table {kind, groups, state} (torch/optim's "function over a state table"
-- idiom, with methods): groups[i] = {params = {...}, names = {...}?, lr = ..., <hyper-parameters>},
-- state[k] = per-parameter state (k = position of the parameter counting through the groups in
-- order), so state_dict()/load_state_dict() are a table copy. Each group's lr is multiplied by the
-- lr_mul given to step() (the schedule's output, proteus.schedule).
-- The update math runs in C (proteus._optim, src/kernels/pt_optim.h has the exact formulas and the
-- bf16 rounding rules of Muon). Parameters and states are f32; params with no .grad are skipped.
-- Tests: tests/lua/test_optim.lua (against PyTorch via tests/reference/optim_ref.py).
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

-- Builds optimizer groups from cfg (cfg.params or cfg.groups) over the defaults; checks each param.
local function make_groups(kind, cfg, defaults)
  if type(cfg) ~= "table" then fail("optim.%s: expected a table of options, got %s", kind, type(cfg)) end
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
    local g = {}
    for k, v in pairs(defaults) do g[k] = v end
    for k, v in pairs(cfg) do
      if k ~= "params" and k ~= "groups" and k ~= "names" then g[k] = v end
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
  return groups
end

-- ---- the optimizer "class" ----
local Optimizer = {}
Optimizer.__index = Optimizer

local function new_optimizer(kind, groups, update)
  return setmetatable({ kind = kind, groups = groups, state = {}, _update = update }, Optimizer)
end

--- Applies one update to every parameter that has a gradient; lr = group.lr * (lr_mul or 1).
function Optimizer:step(lr_mul)
  lr_mul = lr_mul or 1
  if type(lr_mul) ~= "number" or lr_mul ~= lr_mul then
    error("optim." .. self.kind .. ":step: lr_mul must be a number, got " .. tostring(lr_mul), 2)
  end
  local k = 0
  for _, g in ipairs(self.groups) do
    local lr = g.lr * lr_mul
    for i, p in ipairs(g.params) do
      k = k + 1
      local grad = p.grad
      if grad then
        local st = self.state[k]
        if not st then
          st = {}
          self.state[k] = st
        end
        self._update(p, grad, st, g, lr, g.names[i] or ("#" .. k))
      end
    end
  end
end

--- Drops every parameter's gradient (PyTorch set_to_none semantics).
function Optimizer:zero_grad()
  for _, g in ipairs(self.groups) do
    for _, p in ipairs(g.params) do p.grad = nil end
  end
end

--- Sets a hyper-parameter on every group (e.g. opt:set("momentum", 0.95)).
function Optimizer:set(key, value)
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

--- AdamW with PyTorch semantics (decoupled wd: p ← p·(1 − lr·wd) first). Options (per group too):
--- lr, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.01, maximize = false.
function optim.AdamW(cfg)
  local groups = make_groups("AdamW", cfg,
    { lr = cfg and cfg.lr, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0.01, maximize = false })
  return new_optimizer("AdamW", groups, adamw_update)
end

--- Adam = AdamW without weight decay (PyTorch's Adam adds L2 decay to the gradient instead; that
--- variant is not implemented, so weight_decay must be 0 here).
function optim.Adam(cfg)
  local groups = make_groups("Adam", cfg, { lr = cfg and cfg.lr, betas = { 0.9, 0.999 }, eps = 1e-8,
    weight_decay = 0, maximize = false })
  for gi, g in ipairs(groups) do
    if g.weight_decay ~= 0 then
      error(string.format("optim.Adam: group %d has weight_decay = %s; Adam's L2 decay is not implemented, use optim.AdamW",
        gi, tostring(g.weight_decay)), 2)
    end
  end
  return new_optimizer("Adam", groups, adamw_update)
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
--- gradient), nesterov = false, maximize = false.
function optim.SGD(cfg)
  local groups = make_groups("SGD", cfg, { lr = cfg and cfg.lr, momentum = 0, dampening = 0, weight_decay = 0,
    nesterov = false, maximize = false })
  return new_optimizer("SGD", groups, sgd_update)
end

-- ---- Muon ----
local function muon_update(p, grad, st, g, lr, name)
  local nd = p:dim()
  if nd ~= 2 and nd ~= 3 then
    error(string.format("optim.Muon: param %s has %d dims; Muon updates matrices [rows, cols] or banks [n, rows, cols]",
      name, nd), 3)
  end
  if not st.momentum_buffer then st.momentum_buffer = zeros_like(p) end
  C.muon_step(p, grad, st.momentum_buffer, {
    lr = lr, momentum = g.momentum, nesterov = g.nesterov, weight_decay = g.weight_decay, factor = g.factor,
    steps = g.ns_steps, coeffs = g.coeffs, ns_dtype = g.ns_dtype, row_norm = g.row_norm, round = g.round,
  })
end

--- Muon (spec §2.3/§3.4/§4.3). Options (per group too):
---   lr = 0.02, momentum = 0.95, nesterov = true, weight_decay = 0 (decoupled: p ← p·(1 − lr·wd)),
---   ns_steps = 5, coeffs = "ns5" | "polar_express" | {{a,b,c}, ...}, ns_dtype = "bf16" | "f32",
---   row_norm = false (MuonEq-R), factor = nil (√max(1, rows/cols)) or a number (e.g. 2 for mlp_up),
---   round = "scaled" (bf16(f·u), §2.3) | "unit" (bf16(u)·f, §4.3) | "none".
--- The #1539 setup: {coeffs = "polar_express", ns_steps = 4, row_norm = true, round = "unit"}.
--- Momentum warmup: opt:set("momentum", schedule.momentum_warmup(step, 0.92, 0.99, 1500)).
function optim.Muon(cfg)
  local groups = make_groups("Muon", cfg, { lr = (cfg and cfg.lr) or 0.02, momentum = 0.95, nesterov = true,
    weight_decay = 0, ns_steps = nil, coeffs = "ns5", ns_dtype = "bf16", row_norm = false, factor = nil,
    round = "scaled" })
  for _, g in ipairs(groups) do
    if g.ns_steps == nil then g.ns_steps = g.coeffs == "polar_express" and 4 or 5 end
  end
  return new_optimizer("Muon", groups, muon_update)
end

-- ---- gradient clipping ----
--- Global L2 norm over the gradients of params (a list of tensors or {name, tensor} pairs, or a map);
--- when above max_norm every gradient is scaled by max_norm/(norm + 1e-6) (PyTorch clip_grad_norm_).
--- max_norm <= 0 only measures. Returns the norm before clipping (f64 accumulation).
function optim.clip_grad_norm(params, max_norm)
  local ts = tensor_list("optim.clip_grad_norm", params)
  local grads = {}
  for _, p in ipairs(ts) do
    local g = p.grad
    if g then grads[#grads + 1] = g end
  end
  return C.clip_grad_norm(grads, max_norm or 0)
end

-- ---- EMA ----
local EMA = {}
EMA.__index = EMA

--- EMA{params, decay = 0.999, every = 1}: an f32 shadow of each parameter. ema:update(step) applies
--- ema ← ema + (1 − d)(w − ema) with d = decay^every when every == 1, or when step > 0 and
--- step % every == 0 (PROTEUS: decay 0.999, every 10; #1539: 0.9965 every step; #598: 0.997).
function optim.EMA(cfg)
  if type(cfg) ~= "table" then error("optim.EMA: expected a table of options", 2) end
  local ts, names = tensor_list("optim.EMA", cfg.params)
  local decay, every = cfg.decay or 0.999, cfg.every or 1
  if type(decay) ~= "number" or decay < 0 or decay > 1 then error("optim.EMA: decay must be in [0, 1], got " .. tostring(decay), 2) end
  if math.type(every) ~= "integer" or every < 1 then error("optim.EMA: every must be an integer >= 1, got " .. tostring(every), 2) end
  local shadow = {}
  for i, p in ipairs(ts) do shadow[i] = clone_f32(p) end
  return setmetatable({ params = ts, names = names, shadow = shadow, decay = decay, every = every, updates = 0 }, EMA)
end

--- Returns true when the shadow was updated at this step.
function EMA:update(step)
  if self.every > 1 and (step == nil or step <= 0 or step % self.every ~= 0) then return false end
  local d = self.decay ^ self.every
  for i, p in ipairs(self.params) do C.ema_update(self.shadow[i], p, d) end
  self.updates = self.updates + 1
  return true
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
