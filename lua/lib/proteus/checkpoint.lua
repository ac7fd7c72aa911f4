--- proteus.checkpoint — everything a training run needs to continue exactly where it stopped:
--- weights, optimizer states, EMA/SWA state, the RNG state, the data stream's position, the step,
--- the accumulated training time and the run's config. In memory (capture/restore, used by the
--- compile warmup of proteus.train) or in one file (save/load).
--
--   local ckpt = require "proteus.checkpoint"
--   local parts = {model = model, optimizers = {adam, muon}, ema = ema, swa = swa, stream = stream}
--   ckpt.save("run/ckpt.safetensors", parts, {step = 100, elapsed_ms = 8600.5, config = {seq_len = 1024}})
--   local c = ckpt.load("run/ckpt.safetensors")        -- {step, elapsed_ms, config, extra, ...}
--   ckpt.restore(c, parts)                             -- weights, states, RNG and stream position back
--   local snap = ckpt.capture(parts, {step = 0})       -- the same, in memory (tensors cloned)
--
-- File format: ONE safetensors file (src/host/pt_safetensors.h), so PyTorch can read the weights.
--   tensors   "model.<param name>"          the model's parameters (model:named_parameters())
--             "optim.<i>.<k>.<key>"         tensor <key> of optimizer i's state of its k-th parameter
--                                           (optimizer i = position in parts.optimizers, k counts the
--                                           parameters through its groups, as optim.lua does)
--             "ema.<i>"                     EMA shadow of parameter i (f32)
--             "swa.<i>"                     SWA running sum of parameter i (the parameter's dtype)
--   metadata  "proteus.checkpoint"          a JSON object:
--               format = "proteus.checkpoint", version = 1, step, elapsed_ms,
--               rng = {seed, offset} (pt.get_rng_state), data = {shard, offset} (stream:pos()),
--               params = [names in order], tensors = {name: [shape]} (every tensor of the file: a
--               file whose tensors disagree is refused), optimizers = [{kind, groups = [{n, lr,
--               momentum, ...}], state = {"k": {numbers}}}], ema = {decay, every, updates, n} or
--               absent, swa = {count, every, threshold, min_count, n, sums} or absent,
--               config = {...} (the caller's), extra = {...} (the caller's)
-- JSON keeps integers as integers and floats with 17 significant digits, so every number comes back
-- bit for bit and a resumed run continues with the same losses.
--
-- Atomic write: proteus.safetensors writes PATH.tmp.<pid>, fsyncs it, renames it over PATH and fsyncs
-- the directory (pt_file_write_atomic, src/host/pt_fileio.h). Until the rename the previous checkpoint
-- at PATH is untouched, so killing the process at any moment leaves either the old or the new file,
-- never a partial one (a kill -9 during the write may leave a stale PATH.tmp.<pid>, which nothing
-- reads; delete it at leisure). A truncated or corrupt file raises an error that names the file.
--
-- Tests: tests/lua/test_checkpoint.lua, tests/cli/test_kill_checkpoint.sh.
local pt = require "proteus"
local st = require "proteus.safetensors"
local json = require "proteus.json"

local ckpt = {}

ckpt.FORMAT = "proteus.checkpoint"
ckpt.VERSION = 1
ckpt.META_KEY = "proteus.checkpoint"

local function shape_of(t) return t:shape() end

local function clone_maybe(t, clone)
  if clone then return t:detach():clone() end
  return t
end

-- Named parameters of a model as a list of {name, tensor} (model:named_parameters() is an iterator
-- in nn.GPT; a map or a list of pairs is accepted too).
local function named_params(model)
  if type(model) ~= "table" or type(model.named_parameters) ~= "function" then
    error("checkpoint: parts.model must be a model with named_parameters(), got " .. type(model), 3)
  end
  local out = {}
  local r = model:named_parameters()
  if type(r) == "function" then
    for name, p in model:named_parameters() do out[#out + 1] = { name, p } end
  elseif type(r) == "table" then
    if #r > 0 then
      for _, e in ipairs(r) do out[#out + 1] = { e[1], e[2] } end
    else
      local keys = {}
      for k in pairs(r) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do out[#out + 1] = { k, r[k] } end
    end
  end
  return out
end

local function is_plain(v)
  local tv = type(v)
  return tv == "number" or tv == "string" or tv == "boolean"
end

local function copy_plain(v)
  if type(v) ~= "table" then return v end
  local r = {}
  for k, x in pairs(v) do
    if is_plain(x) or type(x) == "table" then r[k] = copy_plain(x) end
  end
  return r
end

--- A snapshot of parts = {model, optimizers = {...}, ema, swa, stream, rng = true (default)} plus
--- info = {step, elapsed_ms, config, extra}. opts.clone = true (default) copies every tensor (an
--- in-memory snapshot); clone = false references the live tensors (for an immediate save).
--- Returns {meta = <the JSON table>, tensors = {name -> tensor}}.
function ckpt.capture(parts, info, opts)
  parts, info, opts = parts or {}, info or {}, opts or {}
  local clone = opts.clone ~= false
  local tensors = {}
  local meta = { format = ckpt.FORMAT, version = ckpt.VERSION, step = info.step or 0,
    elapsed_ms = info.elapsed_ms or 0.0, config = copy_plain(info.config), extra = copy_plain(info.extra) }
  local shapes = {}
  local function put(name, t)
    tensors[name] = clone_maybe(t, clone)
    shapes[name] = shape_of(t)
  end
  if parts.model then
    local names = {}
    for i, e in ipairs(named_params(parts.model)) do
      names[i] = e[1]
      put("model." .. e[1], e[2])
    end
    meta.params = names
  end
  if parts.optimizers then
    meta.optimizers = {}
    for i, opt in ipairs(parts.optimizers) do
      if type(opt) ~= "table" or type(opt.groups) ~= "table" or type(opt.state) ~= "table" then
        error(string.format("checkpoint: optimizers[%d] is not a proteus.optim optimizer", i), 2)
      end
      local groups = {}
      for gi, g in ipairs(opt.groups) do
        local hg = { n = #g.params }
        for k, v in pairs(g) do
          if k ~= "params" and k ~= "names" and (is_plain(v) or type(v) == "table") then hg[k] = copy_plain(v) end
        end
        groups[gi] = hg
      end
      local state = {}
      for k, s in pairs(opt.state) do
        local scalars = {}
        for key, v in pairs(s) do
          if pt.is_tensor(v) then put(string.format("optim.%d.%d.%s", i, k, key), v)
          elseif is_plain(v) then scalars[key] = v end
        end
        state[tostring(k)] = scalars
      end
      meta.optimizers[i] = { kind = opt.kind, groups = groups, state = state }
    end
  end
  if parts.ema then
    local e = parts.ema
    meta.ema = { decay = e.decay, every = e.every, updates = e.updates, n = #e.shadow }
    for i, t in ipairs(e.shadow) do put("ema." .. i, t) end
  end
  if parts.swa then
    local s = parts.swa
    meta.swa = { count = s.count, every = s.every, threshold = s.threshold, min_count = s.min_count,
      n = #s.params, sums = s.sums ~= nil }
    if s.sums then
      for i, t in ipairs(s.sums) do put("swa." .. i, t) end
    end
  end
  if parts.stream then
    local shard, offset = parts.stream:pos()
    meta.data = { shard = shard, offset = offset }
  end
  if parts.rng ~= false then meta.rng = pt.get_rng_state() end
  meta.tensors = shapes
  return { meta = meta, tensors = tensors }
end

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] then return false end
  end
  return true
end

local function shape_str(s) return "[" .. table.concat(s, ", ") .. "]" end

--- Puts a snapshot (ckpt.capture or ckpt.load) back into parts: parameter values, optimizer states,
--- EMA/SWA state, the stream position and the RNG state. Everything is checked before anything is
--- changed; a mismatch raises an error naming the tensor (and the file for a loaded checkpoint).
function ckpt.restore(snap, parts)
  parts = parts or {}
  local meta, tensors = snap.meta, snap.tensors
  local where = snap.path and (" (" .. snap.path .. ")") or ""
  local function bad(fmt, ...) error("checkpoint.restore" .. where .. ": " .. string.format(fmt, ...), 3) end
  local function need(name, want_shape)
    local t = tensors[name]
    if not t then bad("the checkpoint has no tensor %s", name) end
    if want_shape and not same_shape(t:shape(), want_shape) then
      bad("%s has shape %s in the checkpoint, %s in the run", name, shape_str(t:shape()), shape_str(want_shape))
    end
    return t
  end
  -- check first
  local named = parts.model and named_params(parts.model)
  if named then
    if not meta.params then bad("the checkpoint holds no model weights") end
    if #meta.params ~= #named then
      bad("the checkpoint has %d parameters, the model %d", #meta.params, #named)
    end
    for i, e in ipairs(named) do
      if meta.params[i] ~= e[1] then
        bad("parameter %d is %s in the checkpoint, %s in the model", i, tostring(meta.params[i]), e[1])
      end
      need("model." .. e[1], e[2]:shape())
    end
  end
  if parts.optimizers then
    local mo = meta.optimizers or {}
    if #mo ~= #parts.optimizers then
      bad("the checkpoint has %d optimizers, the run %d", #mo, #parts.optimizers)
    end
    for i, opt in ipairs(parts.optimizers) do
      if mo[i].kind ~= opt.kind then bad("optimizer %d is %s in the checkpoint, %s in the run", i, mo[i].kind, opt.kind) end
    end
  end
  if parts.ema then
    if not meta.ema then bad("the checkpoint has no EMA state") end
    if meta.ema.n ~= #parts.ema.shadow then bad("EMA over %d tensors in the checkpoint, %d in the run", meta.ema.n, #parts.ema.shadow) end
    for i, t in ipairs(parts.ema.shadow) do need("ema." .. i, t:shape()) end
  end
  if parts.swa then
    if not meta.swa then bad("the checkpoint has no SWA state") end
    if meta.swa.n ~= #parts.swa.params then bad("SWA over %d tensors in the checkpoint, %d in the run", meta.swa.n, #parts.swa.params) end
    if meta.swa.sums then
      for i, p in ipairs(parts.swa.params) do need("swa." .. i, p:shape()) end
    end
  end
  if parts.stream and not meta.data then bad("the checkpoint has no data position") end
  -- then apply
  if named then
    pt.no_grad(function()
      for _, e in ipairs(named) do e[2]:copy_(tensors["model." .. e[1]]) end
    end)
  end
  if parts.optimizers then
    for i, opt in ipairs(parts.optimizers) do
      local mo = meta.optimizers[i]
      local params = opt:parameters()
      local state = {}
      for ks, scalars in pairs(mo.state) do
        local k = math.tointeger(tonumber(ks))
        if not k or not params[k] then bad("optimizer %d has state for parameter %s, which does not exist", i, ks) end
        local s = {}
        for key, v in pairs(scalars) do s[key] = v end
        state[k] = s
      end
      local prefix = string.format("optim.%d.", i)
      for name, t in pairs(tensors) do
        if name:sub(1, #prefix) == prefix then
          local ks, key = name:sub(#prefix + 1):match("^(%d+)%.(.+)$")
          local k = ks and math.tointeger(tonumber(ks))
          if not k or not state[k] then bad("tensor %s belongs to no optimizer state", name) end
          local dev = params[k]:device()
          state[k][key] = dev ~= t:device() and t:to(dev) or t
        end
      end
      local ok, err = pcall(opt.load_state_dict, opt, { kind = mo.kind, groups = mo.groups, state = state })
      if not ok then bad("optimizer %d: %s", i, tostring(err)) end
    end
  end
  if parts.ema then
    local e = parts.ema
    e.decay, e.every, e.updates = meta.ema.decay, meta.ema.every, meta.ema.updates
    pt.no_grad(function()
      for i, t in ipairs(e.shadow) do t:copy_(tensors["ema." .. i]) end
    end)
  end
  if parts.swa then
    local s, m = parts.swa, meta.swa
    s.count, s.every, s.threshold, s.min_count = m.count, m.every, m.threshold, m.min_count
    if m.sums then
      s.sums = {}
      for i, p in ipairs(s.params) do
        local src = tensors["swa." .. i]
        local t = pt.zeros(p:shape(), { dtype = src:dtype(), device = p:device() })
        pt.no_grad(function() t:copy_(src) end)
        s.sums[i] = t
      end
    else
      s.sums = nil
    end
  end
  if parts.stream then parts.stream:set_pos(meta.data.shard, meta.data.offset) end
  if parts.rng ~= false and meta.rng then pt.set_rng_state(meta.rng) end
  return snap
end

--- Writes parts (see ckpt.capture) and info = {step, elapsed_ms, config, extra} to path, atomically.
--- Returns path.
function ckpt.save(path, parts, info)
  if type(path) ~= "string" or path == "" then error("checkpoint.save: path must be a file name, got " .. tostring(path), 2) end
  local snap = ckpt.capture(parts, info, { clone = false })
  local ok, text = pcall(json.encode, snap.meta)
  if not ok then error("checkpoint.save " .. path .. ": the state cannot be written as JSON: " .. tostring(text), 2) end
  local ok2, err = pcall(st.save, path, snap.tensors, { [ckpt.META_KEY] = text })
  if not ok2 then error("checkpoint.save " .. path .. ": " .. tostring(err), 2) end
  return path
end

--- Reads a checkpoint written by ckpt.save. Returns a snapshot for ckpt.restore with the fields of
--- its JSON at the top level too: c.step, c.elapsed_ms, c.config, c.extra, c.path.
--- A missing, truncated or corrupt file raises an error naming the file.
function ckpt.load(path)
  if type(path) ~= "string" or path == "" then error("checkpoint.load: path must be a file name, got " .. tostring(path), 2) end
  local function bad(fmt, ...)
    error(string.format("checkpoint.load %s: " .. fmt, path, ...), 3)
  end
  local f = io.open(path, "rb")
  if not f then bad("no such file (or it cannot be read)") end
  f:close()
  local ok, tensors, md = pcall(st.load, path)
  if not ok then bad("not a readable checkpoint (truncated or corrupt?): %s", tostring(tensors)) end
  local text = md and md[ckpt.META_KEY]
  if not text then bad("not a proteus checkpoint (no %q metadata)", ckpt.META_KEY) end
  local ok2, meta = pcall(json.decode, text)
  if not ok2 or type(meta) ~= "table" then bad("its %s metadata is not valid JSON: %s", ckpt.META_KEY, tostring(meta)) end
  if meta.format ~= ckpt.FORMAT then bad("format is %s, expected %s", tostring(meta.format), ckpt.FORMAT) end
  if meta.version ~= ckpt.VERSION then
    bad("version %s; this proteus reads version %d", tostring(meta.version), ckpt.VERSION)
  end
  if type(meta.tensors) ~= "table" then bad("the metadata lists no tensors") end
  local n = 0
  for name, shape in pairs(meta.tensors) do
    n = n + 1
    local t = tensors[name]
    if not t then bad("tensor %s is listed in the metadata but missing from the file", name) end
    if not same_shape(t:shape(), shape) then
      bad("tensor %s has shape %s, the metadata says %s", name, shape_str(t:shape()), shape_str(shape))
    end
  end
  for name in pairs(tensors) do
    if not meta.tensors[name] then bad("tensor %s is in the file but not in the metadata", name) end
  end
  local json_null = json.null
  local function clean(v) -- JSON null -> nil
    if v == json_null then return nil end
    if type(v) == "table" then
      for k, x in pairs(v) do v[k] = clean(x) end
    end
    return v
  end
  meta = clean(meta)
  return { meta = meta, tensors = tensors, path = path, step = meta.step, elapsed_ms = meta.elapsed_ms,
    config = meta.config, extra = meta.extra, n_tensors = n }
end

return ckpt
