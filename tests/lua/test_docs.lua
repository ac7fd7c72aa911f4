-- tests/lua/test_docs.lua — the documentation runs and stays true: every ```lua runnable block of
-- docs/*.md runs without error (each as its own script, in a temporary directory), docs/api.md is
-- what scripts/gen_api_docs.lua generates from lua/types/proteus.lua, every public function of the
-- documented modules is in those definitions and every definition names something that exists,
-- and the REPL's help() shows the docstrings.
--
--   build/proteus tests/run.lua tests/lua/test_docs.lua
--
-- Child processes use $PROTEUS_BIN, else the interpreter running this test (arg[-1]).
local pt = require "proteus"
local docs = require "proteus.docs"

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local root = here .. "../../"

local testing = require "proteus.testing"
local q = testing.shell_quote
local function proteus_bin() return testing.proteus_bin("test_docs") end
local function abs(p)
  if p:sub(1, 1) == "/" then return p end
  local h = io.popen("pwd")
  local cwd = h:read("l")
  h:close()
  return cwd .. "/" .. p
end

local function read(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

-- the runnable blocks of one markdown file: list of {line, code}
local function runnable_blocks(path)
  local blocks, cur, n = {}, nil, 0
  for line in (read(path) .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if cur then
      if line:match("^```%s*$") then
        blocks[#blocks + 1] = cur
        cur = nil
      else
        cur.code[#cur.code + 1] = line
      end
    elseif line:match("^```lua%s+runnable%s*$") then
      cur = { line = n, code = {} }
    end
  end
  assert(cur == nil, path .. ": a ```lua runnable block is not closed")
  return blocks
end

local function doc_files()
  local p = io.popen("ls " .. q(root .. "docs") .. "/*.md 2>/dev/null")
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local tests = {}

tests.runnable_blocks_run = function(T)
  local bin = abs(proteus_bin())
  local tmp = io.popen("mktemp -d /tmp/proteus_test_docs_XXXXXX"):read("l")
  local total, failures = 0, {}
  for _, path in ipairs(doc_files()) do
    for _, b in ipairs(runnable_blocks(path)) do
      total = total + 1
      local script = tmp .. "/block.lua"
      local f = assert(io.open(script, "w"))
      f:write(table.concat(b.code, "\n"), "\n")
      f:close()
      local p = io.popen("cd " .. q(tmp) .. " && TMPDIR=" .. q(tmp) .. " " .. q(bin) .. " block.lua 2>&1")
      local out = p:read("a")
      if not p:close() then
        failures[#failures + 1] = string.format("%s:%d: the runnable block fails:\n%s", path:gsub("^.*/docs/", "docs/"),
          b.line, out)
      end
    end
  end
  os.execute("rm -rf " .. q(tmp))
  assert(#failures == 0, table.concat(failures, "\n"))
  assert(total >= 5, "expected the runnable blocks of docs/tour.md, guide.md and interop.md, found " .. total)
end

tests.block_extraction = function(T)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "w"))
  f:write("text\n```lua runnable\nlocal a = 1\nprint(a)\n```\n```lua\nnot run\n```\n```sh\nls\n```\n")
  f:close()
  local b = runnable_blocks(tmp)
  os.remove(tmp)
  T.eq(#b, 1)
  T.eq(b[1].line, 2)
  T.eq(b[1].code, { "local a = 1", "print(a)" })
end

tests.api_md_is_generated = function(T)
  local want = docs.markdown() .. "\n"
  local got = read(root .. "docs/api.md")
  if got ~= want then
    error("docs/api.md differs from what scripts/gen_api_docs.lua generates from lua/types/proteus.lua; "
      .. "run build/proteus scripts/gen_api_docs.lua")
  end
end

-- the runtime table of each documented module or class
local function runtime(name)
  if name == "proteus.Tensor" then return pt.Tensor end
  if name == "proteus.GPT" then return require("proteus.nn").GPTClass end
  if name == "proteus.Optimizer" then
    local p = pt.zeros({ 1 }, { requires_grad = true })
    return getmetatable(require("proteus.optim").SGD { params = { p }, lr = 0.1 }).__index
  end
  if name == "proteus.Run" then
    local tmp = io.popen("mktemp -d /tmp/proteus_test_docs_XXXXXX"):read("l")
    local r = require("proteus.run").open { recipe = "t", preset = "t", run_dir = tmp, quiet = true }
    local mt = getmetatable(r).__index
    r:close()
    os.execute("rm -rf " .. q(tmp))
    return mt
  end
  return require(name)
end

tests.definitions_cover_the_api = function(T)
  local mods = docs.parse(root .. "lua/types/proteus.lua")
  assert(#mods >= 15, "parsed " .. #mods .. " modules from lua/types/proteus.lua")
  local missing, stale = {}, {}
  for _, m in ipairs(mods) do
    local t = runtime(m.name)
    assert(type(t) == "table", m.name .. ": no runtime table")
    local documented = {}
    for _, e in ipairs(m.entries) do
      documented[e.key] = true
      local v = t[e.key]
      if v == nil then stale[#stale + 1] = m.name .. "." .. e.key
      elseif (e.kind == "constant") == (type(v) == "function") then
        stale[#stale + 1] = m.name .. "." .. e.key .. " (documented as a " .. e.kind .. ", is a " .. type(v) .. ")"
      end
    end
    for _, fld in ipairs(m.fields) do
      documented[fld.name] = true
      -- a class's fields live on its instances (model.cfg), a module's on the module table
      local is_class = m.name:match("%.[A-Z][%w_]*$") ~= nil
      if not is_class and t[fld.name] == nil then stale[#stale + 1] = m.name .. "." .. fld.name .. " (field)" end
    end
    for k, v in pairs(t) do
      if type(k) == "string" and not k:match("^_") and type(v) == "function" and not documented[k] then
        missing[#missing + 1] = m.name .. "." .. k
      end
    end
  end
  table.sort(missing)
  table.sort(stale)
  assert(#missing == 0, "public functions with no entry in lua/types/proteus.lua: " .. table.concat(missing, ", "))
  assert(#stale == 0, "entries in lua/types/proteus.lua naming nothing: " .. table.concat(stale, ", "))
end

tests.signatures_match_optional_params = function(T)
  local mods = docs.parse(root .. "lua/types/proteus.lua")
  local bad = {}
  for _, m in ipairs(mods) do
    for _, e in ipairs(m.entries) do
      if e.kind ~= "constant" then
        local args = e.sig:match("%((.-)%)") or ""
        local n = 0
        for _ in args:gmatch("[^,%s]+") do n = n + 1 end
        local np = 0
        for _, p in ipairs(e.params) do if p.name ~= "..." then np = np + 1 end end
        local has_vararg = args:find("...", 1, true) ~= nil
        if np ~= n - (has_vararg and 1 or 0) then bad[#bad + 1] = e.sig .. " (" .. np .. " @param)" end
      end
    end
  end
  assert(#bad == 0, "entries whose ---@param lines do not match the arguments: " .. table.concat(bad, "; "))
end

tests.help_shows_docstrings = function(T)
  local repl = require "proteus.repl"
  local F = require "proteus.functional"
  local s = repl.doc(F.rms_norm)
  T.eq(s:match("^[^\n]*"), "proteus.functional.rms_norm: F.rms_norm(x, eps?, scale?) -> proteus.Tensor")
  assert(s:find("eps?       number  default F.RMS_EPS", 1, true), s)
  s = repl.doc(pt.zeros({ 1 }).sum)
  T.eq(s:match("^[^\n]*"), "proteus.Tensor.sum: Tensor:sum(dims?, keepdim?) -> proteus.Tensor")
  s = repl.doc("proteus.codec")
  assert(s:find("^Byte codecs for artifacts"), s)
  assert(s:find("\n  compress: codec.compress(s, name, level?) -> string", 1, true), s)
  -- modules that document themselves keep their own __doc
  assert(repl.doc(repl):find("^REPL helpers"), repl.doc(repl))
  -- an undocumented module still lists its fields
  assert(repl.doc("proteus.quant"):find("int6_row_clip", 1, true))
end

tests.markdown_from_a_small_file = function(T)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "w"))
  f:write([[
---@meta
--- A module.
---@class demo.mod
---@field k number a field
local D = {}

--- Adds.
---@param a number first
---@param b? number second
---@return number sum the result
function D.add(a, b) end

--- A constant.
D.N = 3
]])
  f:close()
  local mods = docs.parse(tmp)
  local md = docs.markdown(tmp)
  os.remove(tmp)
  T.eq(#mods, 1)
  T.eq(mods[1].name, "demo.mod")
  T.eq(mods[1].summary, "A module.")
  T.eq(mods[1].entries[1].sig, "D.add(a, b?) -> number")
  T.eq(mods[1].entries[2].sig, "D.N = 3")
  assert(md:find("### `D.add(a, b?) -> number`\n\nAdds.\n\n* `a` `number` — first\n* `b?` `number` — second\n"
    .. "* returns `number` — sum the result\n", 1, true), md)
  assert(md:find("| `k` | `number` | a field |", 1, true), md)
end

tests.parse_errors_name_the_file = function(T)
  T.raises(function() docs.parse("/nonexistent/types.lua") end, "/nonexistent/types.lua")
end

return tests
