--- proteus.config — a recipe's knobs: defaults, presets, environment variables and key=value
--- arguments resolved into one typed, checked table.
--
--   local config = require "proteus.config"
--   local def = config.define{
--     name = "v9_lora_ttt",
--     defaults = {matrix_lr = 0.025, train_seq_len = 1024, xsa_layers = {7, 8, 9, 10}, gptq_lite = true},
--     presets = {full = {}, demo = {train_seq_len = 128}, smoke = {...}, as_run = {...}},
--     doc = {matrix_lr = "Muon lr of the block matrices (MATRIX_LR)"},
--   }
--   local cfg, info = config.resolve(def, arg, os.getenv)   -- nil when help was asked for
--   print(config.format(def, cfg, info))
--
-- Knobs are named as the submission's environment variables, in lower case (MATRIX_LR -> matrix_lr).
-- Each knob's type is the type of its default: boolean, integer (math.type), number (float), string,
-- or list (a Lua sequence; on the command line "3,4,5", "" for the empty list; elements are strings
-- when the default's first element is a string, else numbers). A knob cannot be nil: use 0, "" or
-- an empty list for "off", and say so in its doc line.
--
-- Resolution, later wins:
--   1. defaults (the submission's own description);
--   2. the preset: preset=NAME among the arguments. Without one, "full" when a CUDA device is
--      available; on a machine without one resolve() raises an error that lists the presets (the
--      full presets are 8×H100 runs: running one by accident on a laptop is never what is meant).
--      def.default_preset names a preset to use instead (eval_artifact: "default"). Presets may
--      inherit: a preset with `_base = "full"` is applied on top of that one;
--   3. environment variables: the knob's name in upper case (MATRIX_LR=0.03); empty values ignored;
--   4. key=value arguments (keys in lower or upper case).
-- An unknown key (argument, preset, doc) is an error naming the nearest known key; a value that
-- does not parse as the knob's type is an error naming the key, where the value came from and the
-- type expected. `help` (or --help, -h) among the arguments makes resolve() return nil after
-- printing config.help(def).
--
-- The resolved config is a plain table (it goes into results.json and the artifact's meta); info
-- holds {preset =, sources = {key = "preset demo" | "env MATRIX_LR" | "arg"}} for the printout.
--
-- Tests: build/proteus tests/run.lua tests/lua/test_config.lua.
local config = {}

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

-- Levenshtein-nearest name (the same rule as proteus.nn's GPT config errors)
local function nearest(name, keys)
  local best, bestd
  for _, k in ipairs(keys) do
    local m, n = #name, #k
    local prev = {}
    for j = 0, n do prev[j] = j end
    for i = 1, m do
      local cur = { [0] = i }
      for j = 1, n do
        local c = (name:sub(i, i) == k:sub(j, j)) and 0 or 1
        cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + c)
      end
      prev = cur
    end
    if not bestd or prev[n] < bestd then best, bestd = k, prev[n] end
  end
  return best
end
config.nearest = nearest

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

--- The type of a knob's default: "boolean" | "integer" | "number" | "string" | "list".
function config.kind(v)
  local t = type(v)
  if t == "boolean" or t == "string" then return t end
  if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
  if t == "table" then return "list" end
  return nil
end

local KIND_HINT = {
  boolean = "a boolean (true/false, 1/0, yes/no, on/off)",
  integer = "an integer",
  number = "a number",
  string = "a string",
  list = "a list (comma-separated, e.g. 3,4,5; empty for none)",
}

local function list_elem_kind(default)
  local first = default[1]
  if type(first) == "string" then return "string" end
  if first ~= nil and math.type(first) == "float" then return "number" end
  return "integer"
end

local function show(v)
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return table.concat(parts, ",")
  end
  if type(v) == "string" then return v == "" and '""' or v end
  return tostring(v)
end
config.show = show

-- A Lua value checked (and normalised: integral floats for integer knobs, integers for number
-- knobs) against the knob's default; where = "preset demo" etc. for the error.
local function check_value(def, key, v, where)
  local d = def.defaults[key]
  local k = config.kind(d)
  local function bad()
    fail("recipe %s: %s=%s (%s) is not %s; %s expects %s, e.g. %s=%s", def.name, key, show(v), where,
      KIND_HINT[k], key, KIND_HINT[k], key, show(d))
  end
  if k == "boolean" then
    if type(v) ~= "boolean" then bad() end
    return v
  elseif k == "integer" then
    if type(v) ~= "number" then bad() end
    local i = math.tointeger(v)
    if not i then bad() end
    return i
  elseif k == "number" then
    if type(v) ~= "number" or v ~= v then bad() end
    return v + 0.0
  elseif k == "string" then
    if type(v) ~= "string" then bad() end
    return v
  else
    if type(v) ~= "table" then bad() end
    local ek = list_elem_kind(d)
    local out = {}
    for i, x in ipairs(v) do
      if ek == "string" then
        if type(x) ~= "string" then bad() end
        out[i] = x
      else
        if type(x) ~= "number" then bad() end
        out[i] = ek == "integer" and (math.tointeger(x) or bad()) or x + 0.0
      end
    end
    return out
  end
end

local TRUE = { ["true"] = true, ["1"] = true, yes = true, on = true }
local FALSE = { ["false"] = true, ["0"] = true, no = true, off = true }

--- Parses the text s as knob `key`'s type; where = "argument", "environment variable X".
function config.parse(def, key, s, where)
  local d = def.defaults[key]
  local k = config.kind(d)
  local function bad()
    fail("recipe %s: %s=%s (%s) is not %s; %s expects %s, e.g. %s=%s", def.name, key, s, where, KIND_HINT[k],
      key, KIND_HINT[k], key, show(d))
  end
  local t = s:match("^%s*(.-)%s*$")
  if k == "boolean" then
    local l = t:lower()
    if TRUE[l] then return true end
    if FALSE[l] then return false end
    bad()
  elseif k == "integer" then
    local n = tonumber(t)
    local i = n and math.tointeger(n)
    if not i then bad() end
    return i
  elseif k == "number" then
    local n = tonumber(t)
    if not n or n ~= n then bad() end
    return n + 0.0
  elseif k == "string" then
    return s
  else
    local ek = list_elem_kind(d)
    local out = {}
    if t == "" then return out end
    for item in (t .. ","):gmatch("([^,]*),") do
      item = item:match("^%s*(.-)%s*$")
      if ek == "string" then
        out[#out + 1] = item
      else
        local n = tonumber(item)
        if not n then bad() end
        if ek == "integer" then
          n = math.tointeger(n)
          if not n then bad() end
        end
        out[#out + 1] = n
      end
    end
    return out
  end
end

local function check_known(def, key, where)
  if def.defaults[key] == nil then
    fail("recipe %s: unknown key '%s' (%s) (did you mean '%s'?)", def.name, tostring(key), where,
      nearest(tostring(key), def.keys))
  end
end

-- environment variables a knob must never shadow (a knob "path" would read $PATH)
local RESERVED_ENV = { PATH = 1, HOME = 1, USER = 1, SHELL = 1, TERM = 1, PWD = 1, LANG = 1, TMPDIR = 1,
  PRESET = 1, HELP = 1 }

--- Declares a recipe's knobs. spec: name (string), defaults (every knob), presets (name -> table of
--- overrides; `_base = NAME` inherits another preset), doc (key -> one line), default_preset
--- (optional). Other fields (legal, model, section, ...) are kept on the returned definition.
--- Presets and docs are checked here: an unknown key fails at definition time.
function config.define(spec)
  if type(spec) ~= "table" then fail("config.define: expected a table {name =, defaults =, presets =, doc =}") end
  if type(spec.name) ~= "string" or spec.name == "" then fail("config.define: name must be a non-empty string") end
  if type(spec.defaults) ~= "table" then fail("config.define: recipe %s: defaults must be a table of knobs", spec.name) end
  local def = {}
  for k, v in pairs(spec) do def[k] = v end
  def.presets = spec.presets or {}
  def.doc = spec.doc or {}
  def.keys = sorted_keys(spec.defaults)
  for _, key in ipairs(def.keys) do
    if type(key) ~= "string" or not key:match("^[a-z][a-z0-9_]*$") then
      fail("config.define: recipe %s: knob name '%s' must be lower case letters, digits and _", spec.name, tostring(key))
    end
    if RESERVED_ENV[key:upper()] then
      fail("config.define: recipe %s: knob '%s' would be overridden by the environment variable %s; rename it",
        spec.name, key, key:upper())
    end
    if not config.kind(spec.defaults[key]) then
      fail("config.define: recipe %s: knob %s has a default of type %s (boolean, number, string or list expected)",
        spec.name, key, type(spec.defaults[key]))
    end
  end
  for pname, p in pairs(def.presets) do
    if type(p) ~= "table" then fail("config.define: recipe %s: preset %s must be a table", spec.name, tostring(pname)) end
    for key, v in pairs(p) do
      if key == "_base" then
        if def.presets[v] == nil or v == pname then
          fail("config.define: recipe %s: preset %s: _base '%s' is not another preset", spec.name, pname, tostring(v))
        end
      else
        check_known(def, key, "in preset " .. pname)
        check_value(def, key, v, "preset " .. pname)
      end
    end
  end
  for key in pairs(def.doc) do check_known(def, key, "in doc") end
  if def.default_preset and not def.presets[def.default_preset] then
    fail("config.define: recipe %s: default_preset '%s' is not a preset", spec.name, tostring(def.default_preset))
  end
  return def
end

local function preset_names(def)
  return table.concat(sorted_keys(def.presets), ", ")
end

local function has_gpu()
  local ok, cuda = pcall(require, "proteus.cuda")
  return ok and cuda.is_available and cuda.is_available() or false
end
config.has_gpu = has_gpu

-- applies preset `name` (its base first) to cfg
local function apply_preset(def, cfg, sources, name, depth)
  local p = def.presets[name]
  if depth > 8 then fail("recipe %s: preset %s: _base chain too deep", def.name, name) end
  if p._base then apply_preset(def, cfg, sources, p._base, depth + 1) end
  for key, v in pairs(p) do
    if key ~= "_base" then
      cfg[key] = check_value(def, key, v, "preset " .. name)
      sources[key] = "preset " .. name
    end
  end
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local r = {}
  for i, x in ipairs(v) do r[i] = x end
  return r
end

--- Resolves the config: defaults < preset < environment < key=value arguments (see the header).
--- args: a list of strings (the script's `arg`); getenv: function(NAME) -> string or nil (os.getenv;
--- false = ignore the environment); opts.has_gpu overrides the device check (tests).
--- Returns cfg, info {preset, sources, gpu} — or nil when the arguments ask for help.
function config.resolve(def, args, getenv, opts)
  opts = opts or {}
  args = args or {}
  local pairs_, preset = {}, nil
  for i, a in ipairs(args) do
    if a == "help" or a == "--help" or a == "-h" then
      print(config.help(def))
      return nil
    end
    local k, v = a:match("^([%w_]+)=(.*)$")
    if not k then
      fail("recipe %s: argument %d '%s' is not key=value (e.g. preset=demo matrix_lr=0.03; `help` lists the knobs)",
        def.name, i, a)
    end
    k = k:lower()
    if k == "preset" then
      preset = v
    else
      check_known(def, k, "argument " .. i)
      pairs_[#pairs_ + 1] = { k, v }
    end
  end
  local gpu = opts.has_gpu
  if gpu == nil then gpu = has_gpu() end
  if preset == nil then
    if def.default_preset then
      preset = def.default_preset
    elseif gpu then
      preset = "full"
    else
      fail("recipe %s: no preset given and no CUDA device here; the `full` preset is the submission's own scale "
        .. "(8×H100, 600 s). Pass preset=NAME, one of: %s (preset=demo runs on this CPU in minutes, "
        .. "preset=smoke in seconds)", def.name, preset_names(def))
    end
  end
  if not def.presets[preset] then
    fail("recipe %s: unknown preset '%s' (did you mean '%s'?); presets: %s", def.name, preset,
      nearest(preset, sorted_keys(def.presets)), preset_names(def))
  end
  local cfg, sources = {}, {}
  for k, v in pairs(def.defaults) do cfg[k] = copy(v) end
  apply_preset(def, cfg, sources, preset, 0)
  if getenv then
    for _, key in ipairs(def.keys) do
      local name = key:upper()
      local s = getenv(name)
      if s ~= nil and s ~= "" then
        cfg[key] = config.parse(def, key, s, "environment variable " .. name)
        sources[key] = "env " .. name
      end
    end
  end
  for _, kv in ipairs(pairs_) do
    cfg[kv[1]] = config.parse(def, kv[1], kv[2], "command line")
    sources[kv[1]] = "arg"
  end
  return cfg, { preset = preset, sources = sources, gpu = gpu }
end

local function equal(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

--- The printout of a resolved config: a header line, then key=value in columns (sorted); a value that
--- differs from the default is marked with * and its source is listed at the end.
function config.format(def, cfg, info)
  info = info or { sources = {} }
  local items, changed = {}, {}
  for _, key in ipairs(def.keys) do
    local mark = equal(cfg[key], def.defaults[key]) and "" or "*"
    items[#items + 1] = string.format("%s=%s%s", key, show(cfg[key]), mark)
    if info.sources[key] and not info.sources[key]:match("^preset") then
      changed[#changed + 1] = key .. " (" .. info.sources[key] .. ")"
    end
  end
  local lines = { string.format("config %s preset=%s (%d knobs; * = not the default)", def.name,
    tostring(info.preset), #def.keys) }
  local line = " "
  for _, it in ipairs(items) do
    if #line + #it + 1 > 110 and line ~= " " then
      lines[#lines + 1] = line
      line = " "
    end
    line = line .. " " .. it
  end
  if line ~= " " then lines[#lines + 1] = line end
  if #changed > 0 then lines[#lines + 1] = "  overridden: " .. table.concat(changed, ", ") end
  return table.concat(lines, "\n")
end

--- Every knob with its default, type and doc line; the presets and what each changes.
function config.help(def)
  local lines = { string.format("recipe %s: knobs (key=value on the command line, or KEY=value in the environment)",
    def.name) }
  for _, key in ipairs(def.keys) do
    local d = def.defaults[key]
    lines[#lines + 1] = string.format("  %-28s %-10s %-12s %s", key, show(d), config.kind(d), def.doc[key] or "")
  end
  lines[#lines + 1] = "presets (preset=NAME; full is the default only where a CUDA device exists):"
  for _, p in ipairs(sorted_keys(def.presets)) do
    local ch = {}
    for _, k in ipairs(sorted_keys(def.presets[p])) do ch[#ch + 1] = k .. "=" .. show(def.presets[p][k]) end
    lines[#lines + 1] = string.format("  %-8s %s", p, #ch > 0 and table.concat(ch, " ") or "(the defaults)")
  end
  return table.concat(lines, "\n")
end

return config
