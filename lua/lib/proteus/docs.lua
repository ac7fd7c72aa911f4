--- proteus.docs — the docstrings of the Lua API, read from the LuaCATS definitions in
--- lua/types/proteus.lua (the file lua-language-server reads), so the editor, the REPL's help() and
--- docs/api.md say the same thing.
--
--   local docs = require "proteus.docs"
--   docs.module("proteus.functional")   -- a __doc table: {summary, rms_norm = "F.rms_norm(x, ...)\n...", ...}
--   docs.attach()                       -- put __doc into every loaded module that has none (help() calls this)
--   docs.parse()                        -- the parsed definitions: a list of modules with their entries
--   docs.markdown()                     -- the text of docs/api.md (scripts/gen_api_docs.lua writes it)
--
-- The layout the parser expects is described at the top of lua/types/proteus.lua. A missing or
-- unreadable definitions file gives empty docs (help() then lists fields only), never an error at
-- the prompt; docs.parse(path) with an explicit path raises instead.
-- Tests: tests/lua/test_docs.lua.
local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)$") or ""
--- The definitions file: lua/types/proteus.lua beside lua/lib.
M.DEFAULT_PATH = (here:gsub("[^/]*$", "")) .. "../../types/proteus.lua"

-- the runtime table of each documented class (modules are found in package.loaded)
local RUNTIME = {
  ["proteus.Tensor"] = function() return require("proteus").Tensor end,
  ["proteus.GPT"] = function() return require("proteus.nn").GPTClass end,
}

-- splits "type rest" where type may hold spaces inside {...}, (...), <...>
local function split_type(s)
  local depth, i = 0, 1
  while i <= #s do
    local c = s:sub(i, i)
    if c == "{" or c == "(" or c == "<" or c == "[" then depth = depth + 1
    elseif c == "}" or c == ")" or c == ">" or c == "]" then depth = depth - 1
    elseif c:match("%s") and depth <= 0 then break end
    i = i + 1
  end
  return s:sub(1, i - 1), (s:sub(i):gsub("^%s+", ""))
end

--- Parses a definitions file. Returns a list of modules {name, var, summary, fields = {{name, type,
--- text}}, entries = {{key, kind = "function"|"method"|"constant", sig, text, params, returns}}},
--- and aliases {{name, type}}.
function M.parse(path)
  local explicit = path ~= nil
  path = path or M.DEFAULT_PATH
  local f, err = io.open(path, "r")
  if not f then
    if explicit then error("docs.parse: cannot read " .. tostring(err), 2) end
    return {}, {}
  end
  local modules, by_var, aliases = {}, {}, {}
  local block = { desc = {}, params = {}, returns = {}, fields = {} }
  local pending_class
  local function reset()
    block = { desc = {}, params = {}, returns = {}, fields = {} }
  end
  local lineno = 0
  for line in f:lines() do
    lineno = lineno + 1
    local tag = line:match("^%-%-%-(.*)$")
    if tag then
      local body = tag:gsub("^%s", "")
      local what, rest = body:match("^@(%w+)%s*(.*)$")
      if not what then
        block.desc[#block.desc + 1] = body
      elseif what == "param" then
        local name, r = rest:match("^([%w_%.]+%??)%s+(.*)$")
        if name then
          local ty, desc = split_type(r)
          block.params[#block.params + 1] = { name = name, type = ty, text = desc }
        end
      elseif what == "return" then
        local ty, r = split_type(rest)
        local name, desc = r:match("^([%a_][%w_]*)%s*(.*)$")
        if name and (desc == "" or not name:match("^[A-Z]")) and #r > 0 then
          block.returns[#block.returns + 1] = { type = ty, name = name, text = desc }
        else
          block.returns[#block.returns + 1] = { type = ty, text = r }
        end
      elseif what == "field" then
        local name, r = rest:match("^([%w_]+)%s+(.*)$")
        if name then
          local ty, desc = split_type(r)
          block.fields[#block.fields + 1] = { name = name, type = ty, text = desc }
        end
      elseif what == "class" then
        pending_class = { name = (rest:match("^([%w_%.]+)")), summary = table.concat(block.desc, " "),
          fields = block.fields }
        block.desc = {}
      elseif what == "alias" then
        local name, r = rest:match("^([%w_%.]+)%s+(.*)$")
        if name then
          local ty, desc = split_type(r)
          aliases[#aliases + 1] = { name = name, type = ty, text = desc }
        end
      end
    else
      local var = line:match("^local%s+([%w_]+)%s*=%s*{}%s*$")
      local mvar, sep, key, args = line:match("^function%s+([%w_]+)([%.:])([%w_]+)%s*(%b())")
      local cvar, ckey, cval = line:match("^([%w_]+)%.([%w_]+)%s*=%s*(.-)%s*$")
      if var and pending_class then
        pending_class.var = var
        pending_class.fields = #block.fields > 0 and block.fields or pending_class.fields
        pending_class.entries = {}
        modules[#modules + 1] = pending_class
        by_var[var] = pending_class
        pending_class = nil
      elseif mvar and by_var[mvar] then
        local mod = by_var[mvar]
        local names = {}
        for a in args:sub(2, -2):gmatch("[^,%s]+") do names[#names + 1] = a end
        local optional = {}
        for _, p in ipairs(block.params) do
          if p.name:sub(-1) == "?" then optional[p.name:sub(1, -2)] = true end
        end
        for i, a in ipairs(names) do if optional[a] then names[i] = a .. "?" end end
        local rets = {}
        for _, r in ipairs(block.returns) do rets[#rets + 1] = r.type end
        local sig = mvar .. sep .. key .. "(" .. table.concat(names, ", ") .. ")"
        if #rets > 0 then sig = sig .. " -> " .. table.concat(rets, ", ") end
        mod.entries[#mod.entries + 1] = { key = key, kind = sep == ":" and "method" or "function", sig = sig,
          text = table.concat(block.desc, " "), params = block.params, returns = block.returns, line = lineno }
      elseif cvar and by_var[cvar] then
        by_var[cvar].entries[#by_var[cvar].entries + 1] = { key = ckey, kind = "constant",
          sig = cvar .. "." .. ckey .. " = " .. cval, text = table.concat(block.desc, " "), params = {}, returns = {},
          line = lineno }
      end
      reset()
    end
  end
  f:close()
  return modules, aliases
end

local cache
local function parsed()
  if not cache then cache = { M.parse() } end
  return cache[1], cache[2]
end

-- the help text of one entry: the signature, the description, the parameters
local function entry_text(e)
  local lines = { e.sig }
  if e.text ~= "" then lines[#lines + 1] = "  " .. e.text end
  for _, p in ipairs(e.params) do
    lines[#lines + 1] = string.format("  %-10s %s%s", p.name, p.type, p.text ~= "" and ("  " .. p.text) or "")
  end
  for _, r in ipairs(e.returns) do
    local d = ((r.name and (r.name .. " ") or "") .. (r.text or "")):gsub("%s+$", "")
    if d ~= "" then lines[#lines + 1] = string.format("  returns %s  %s", r.type, d) end
  end
  return table.concat(lines, "\n")
end

--- The __doc table of a module or class name ("proteus.functional", "proteus.Tensor"), or nil.
function M.module(name)
  for _, m in ipairs((parsed())) do
    if m.name == name then
      local doc = { m.summary }
      for _, e in ipairs(m.entries) do doc[e.key] = entry_text(e) end
      for _, fld in ipairs(m.fields) do
        if doc[fld.name] == nil then doc[fld.name] = fld.name .. ": " .. fld.type .. "  " .. fld.text end
      end
      return doc
    end
  end
  return nil
end

--- The names of the documented modules and classes, in file order.
function M.names()
  local out = {}
  for i, m in ipairs((parsed())) do out[i] = m.name end
  return out
end

--- Puts a __doc table into every loaded module (and class table) that has none; the REPL's help()
--- calls this before looking for docstrings. Class tables (proteus.Tensor, proteus.GPT) are also
--- entered in package.loaded under their names, so help(t.sum) finds its docstring.
function M.attach()
  for _, m in ipairs((parsed())) do
    local t = package.loaded[m.name]
    if t == nil and RUNTIME[m.name] and package.loaded[m.name == "proteus.GPT" and "proteus.nn" or "proteus"] then
      local ok, v = pcall(RUNTIME[m.name])
      if ok and type(v) == "table" then
        t = v
        package.loaded[m.name] = v
      end
    end
    if type(t) == "table" and rawget(t, "__doc") == nil then rawset(t, "__doc", M.module(m.name)) end
  end
end

local function md_escape(s)
  return (s:gsub("|", "\\|"))
end

--- The Markdown API reference (docs/api.md) generated from the definitions.
function M.markdown(path)
  local modules, aliases = M.parse(path or M.DEFAULT_PATH)
  local out = {}
  local function add(s) out[#out + 1] = s end
  add("# Lua API reference")
  add("")
  add("<!-- Generated by scripts/gen_api_docs.lua from lua/types/proteus.lua; do not edit by hand:")
  add("     edit the definitions and run `build/proteus scripts/gen_api_docs.lua`. -->")
  add("")
  add("Every public function of the modules below, with its parameters. The same text is what")
  add("`help(x)` prints at the REPL, and what lua-language-server shows (add `lua/types` to")
  add("`workspace.library`, see the top of `lua/types/proteus.lua`). Conventions: dims and positions are")
  add("1-based (dim 1 first, -1 last); values in tensors keep their meaning (token ids are 0-based).")
  add("A parameter written `name?` is optional. Modules not listed here (`proteus.quant`,")
  add("`proteus.train`, `proteus.ttt`, `proteus.dist`, `proteus.checkpoint`, `proteus.cuda`, ...) are")
  add("documented in the header comment of their file in `lua/lib/proteus/`.")
  add("")
  add("| module | require |")
  add("|---|---|")
  local anchors = {}
  for _, m in ipairs(modules) do -- GitHub's heading anchors: lower case, punctuation dropped, -1 on repeats
    local anchor = m.name:lower():gsub("[^%w]", "")
    if anchors[anchor] then anchor = anchor .. "-" .. anchors[anchor] end
    anchors[m.name:lower():gsub("[^%w]", "")] = (anchors[m.name:lower():gsub("[^%w]", "")] or 0) + 1
    local req = m.name:match("^proteus%.[A-Z]") and "(a class)" or ("`require \"" .. m.name .. "\"`")
    add(string.format("| [%s](#%s) | %s |", m.name, anchor, req))
  end
  add("")
  if #aliases > 0 then
    add("## Types")
    add("")
    add("| name | type | meaning |")
    add("|---|---|---|")
    for _, a in ipairs(aliases) do
      add(string.format("| `%s` | `%s` | %s |", a.name, md_escape(a.type), md_escape(a.text)))
    end
    add("")
  end
  for _, m in ipairs(modules) do
    add("## " .. m.name)
    add("")
    if m.summary ~= "" then add(m.summary); add("") end
    if #m.fields > 0 then
      add("| field | type | meaning |")
      add("|---|---|---|")
      for _, fld in ipairs(m.fields) do
        add(string.format("| `%s` | `%s` | %s |", fld.name, md_escape(fld.type), md_escape(fld.text)))
      end
      add("")
    end
    for _, e in ipairs(m.entries) do
      add("### `" .. e.sig .. "`")
      add("")
      if e.text ~= "" then add(e.text); add("") end
      for _, p in ipairs(e.params) do
        add(string.format("* `%s` `%s`%s", p.name, p.type, p.text ~= "" and (" — " .. p.text) or ""))
      end
      for _, r in ipairs(e.returns) do
        local d = ((r.name and (r.name .. " ") or "") .. (r.text or "")):gsub("%s+$", "")
        add(string.format("* returns `%s`%s", r.type, d ~= "" and (" — " .. d) or ""))
      end
      if #e.params > 0 or #e.returns > 0 then add("") end
    end
  end
  return table.concat(out, "\n")
end

M.__doc = {
  "Docstrings of the Lua API from lua/types/proteus.lua (help(), docs/api.md).",
  parse = "parse([path]) -> modules, aliases: the parsed LuaCATS definitions",
  module = "module(name) -> __doc table of a documented module or class",
  names = "names() -> {string}: the documented modules and classes",
  attach = "attach(): put __doc into every loaded module that has none",
  markdown = "markdown([path]) -> string: the text of docs/api.md",
}

return M
