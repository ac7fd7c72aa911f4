-- proteus.repl — helpers of the interactive prompt: reload, help, Tab completion.
--
-- The REPL (src/host/repl.c) calls require("proteus.repl").install(_G), which defines the globals
-- `reload` and `help`; scripts get no globals from this module. Tab completion calls complete().
--
--   reload "proteus.nn"     -- drop package.loaded["proteus.nn"] and require it again
--   help(pt)                -- the module's __doc, or its fields
--   help(pt.zeros)          -- the docstring of a documented function
--   help "proteus.codec"    -- help of a module by name (required if needed)
--
-- Docstrings: a module table may carry `__doc`, either a string (the module summary) or a table
-- whose [1] is the summary and whose other keys document the module's fields:
--   M.__doc = { "Codecs for artifacts.", compress = "compress(s, name) -> string: ..." }
--
-- Tested by tests/lua/test_host.lua (build/proteus tests/run.lua tests/lua/test_host.lua).

local M = {}

local function is_ident(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

-- Drops package.loaded[name] and requires the module again; returns what require returns.
function M.reload(name)
  if type(name) ~= "string" then
    error("reload: expected a module name such as \"proteus.nn\", got " .. type(name), 2)
  end
  package.loaded[name] = nil
  return require(name)
end

local function first_line(s)
  return (tostring(s):match("^[^\n]*"))
end

-- The keys of a table (string keys only), sorted.
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end

-- The fields visible through a value: its own (tables) and those of its metatable's __index
-- tables, followed to a depth of 8. Returns name -> value.
local function visible_fields(v)
  local out, seen = {}, {}
  local depth = 0
  while v ~= nil and depth < 8 and not seen[v] do
    if type(v) == "table" then
      seen[v] = true
      for k, x in next, v do
        if type(k) == "string" and out[k] == nil then out[k] = x end
      end
    end
    local mt = getmetatable(v)
    if type(mt) ~= "table" then break end
    local idx = rawget(mt, "__index")
    if type(idx) == "function" then
      -- an __index function: methods live in the metatable itself or in its __methods table
      -- (the tensor binding's convention)
      for k, x in next, mt do
        if type(k) == "string" and k:sub(1, 2) ~= "__" and out[k] == nil then out[k] = x end
      end
      local methods = rawget(mt, "__methods")
      if type(methods) == "table" then
        for k, x in next, methods do
          if type(k) == "string" and out[k] == nil then out[k] = x end
        end
      end
    end
    if type(idx) ~= "table" then break end
    v, depth = idx, depth + 1
  end
  return out
end

-- Finds the module and key under which function f is documented.
local function find_doc(f)
  local names = sorted_keys(package.loaded)
  for _, modname in ipairs(names) do
    local mod = package.loaded[modname]
    if type(mod) == "table" then
      for k, v in pairs(mod) do
        if rawequal(v, f) and type(k) == "string" then
          local doc = rawget(mod, "__doc")
          if type(doc) == "table" and doc[k] then return modname .. "." .. k, doc[k] end
        end
      end
    end
  end
  return nil
end

local function doc_table(x)
  local doc = type(x) == "table" and rawget(x, "__doc") or nil
  local mt = getmetatable(x)
  if doc == nil and type(mt) == "table" then
    local methods = rawget(mt, "__index")
    if type(methods) ~= "table" then methods = rawget(mt, "__methods") end
    if type(methods) == "table" then doc = rawget(methods, "__doc") end
  end
  return doc
end

-- The help text for x (a string). help(x) prints it.
function M.doc(x)
  do local ok, d = pcall(require, "proteus.docs"); if ok then pcall(d.attach) end end -- __doc from lua/types (proteus.docs)
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  if x == nil then
    add("proteus REPL: type an expression (printed) or a statement; incomplete input continues")
    add("on the next line. Tab completes fields (pt.ze<Tab>, t:sh<Tab>); Ctrl-C interrupts the")
    add("running chunk, Ctrl-D exits. History: $PROTEUS_HISTORY or ~/.proteus_history.")
    add("  help(x)            docstring of a module or function, else the fields of x")
    add("  reload \"name\"      re-require an edited module without leaving the REPL")
    return table.concat(lines, "\n")
  end
  if type(x) == "string" then
    local mod = package.loaded[x]
    if mod == nil then
      local ok, res = pcall(require, x)
      if not ok then return "help: no module named '" .. x .. "': " .. first_line(res) end
      mod = res
    end
    if type(mod) ~= "table" then return x .. ": a " .. type(mod) .. " module" end
    x = mod
  end
  if type(x) == "function" then
    local name, d = find_doc(x)
    if name then return name .. ": " .. d end
    local info = debug.getinfo(x, "S")
    if info.what == "C" then return "a C function (no docstring)" end
    return "a Lua function defined at " .. info.short_src .. ":" .. info.linedefined .. " (no docstring)"
  end
  if type(x) == "table" or type(x) == "userdata" then
    local doc = doc_table(x)
    if type(doc) == "string" then add(doc) elseif type(doc) == "table" and doc[1] then add(doc[1]) end
    local fields = visible_fields(x)
    local documented, plain = {}, {}
    for _, k in ipairs(sorted_keys(fields)) do
      if k ~= "__doc" then
        if type(doc) == "table" and doc[k] then
          documented[#documented + 1] = "  " .. k .. ": " .. first_line(doc[k])
        else
          plain[#plain + 1] = k
        end
      end
    end
    for _, l in ipairs(documented) do add(l) end
    if #plain > 0 then
      add((#documented > 0 and "other fields: " or "fields: ") .. table.concat(plain, " "))
    end
    if #lines == 0 then add("a " .. type(x) .. " with no fields") end
    return table.concat(lines, "\n")
  end
  return (math.type(x) or type(x)) .. ": " .. tostring(x)
end

function M.help(x)
  print(M.doc(x))
end

local keywords = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
  "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
}

-- Tab completion: text is the word under the cursor ("pt.ze", "t:sh", "pri"); returns the sorted
-- list of full words that complete it. Field access goes through metatables (__index tables)
-- but never calls a function; a path it cannot follow completes to nothing.
function M.complete(text, env)
  env = env or _G
  local out = {}
  local path, sep, partial = text:match("^(.-)([.:])([%w_]*)$")
  local candidates
  if not path then
    if not text:match("^[%a_]?[%w_]*$") then return out end
    path, sep, partial = nil, "", text
    candidates = visible_fields(env)
    for _, k in ipairs(keywords) do candidates[k] = candidates[k] or true end
  else
    local v = env
    for name in (path .. "."):gmatch("(.-)%.") do
      if not is_ident(name) then return out end
      local fields = visible_fields(v)
      v = fields[name]
      if v == nil then return out end
    end
    candidates = visible_fields(v)
  end
  for k, v in pairs(candidates) do
    if is_ident(k) and k:sub(1, #partial) == partial and k ~= "__doc"
        and (sep ~= ":" or type(v) == "function") then
      out[#out + 1] = (path and path .. sep or "") .. k
    end
  end
  table.sort(out)
  return out
end

-- Defines the REPL globals reload and help in env (the global table). Returns M.
function M.install(env)
  env.reload = M.reload
  env.help = M.help
  return M
end

M.__doc = {
  "REPL helpers: reload, help, Tab completion (installed as globals only at the prompt).",
  reload = "reload(name) -> module: drop package.loaded[name] and require it again",
  help = "help(x): print the docstring of a module or function, else the fields of x",
  doc = "doc(x) -> string: the text help(x) prints",
  complete = "complete(text [, env]) -> {words}: Tab completion of globals and fields",
  install = "install(env): define the globals reload and help in env",
}

return M
