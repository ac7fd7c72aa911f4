-- scripts/gen_api_docs.lua — writes docs/api.md from the LuaCATS definitions in lua/types/proteus.lua
-- (through proteus.docs, the same parser the REPL's help() uses).
--
--   build/proteus scripts/gen_api_docs.lua [out=docs/api.md] [check=true]
--
-- check=true writes nothing and exits 1 when the file differs from what would be generated
-- (tests/lua/test_docs.lua does the same comparison).
local docs = require "proteus.docs"

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local out, check = here .. "../docs/api.md", false
for _, a in ipairs(arg or {}) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if k == "out" then out = v
  elseif k == "check" then check = v == "true"
  else error("gen_api_docs: unknown argument '" .. a .. "' (out=PATH, check=true)", 0) end
end

local text = docs.markdown() .. "\n"
if check then
  local f = io.open(out, "r")
  local old = f and f:read("a")
  if f then f:close() end
  if old ~= text then
    io.stderr:write(out .. " is out of date: run build/proteus scripts/gen_api_docs.lua\n")
    os.exit(1)
  end
  print(out .. " is up to date")
  return
end
local f = assert(io.open(out, "w"))
f:write(text)
f:close()
local n = select(2, text:gsub("\n### ", ""))
print(string.format("wrote %s: %d entries, %d bytes", out, n, #text))
