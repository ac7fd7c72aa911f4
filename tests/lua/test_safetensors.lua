-- tests/lua/test_safetensors.lua — proteus.safetensors from Lua: save/load round trip for every
-- dtype with metadata, and errors for bad files and bad arguments.
-- Run: build/proteus tests/run.lua tests/lua/test_safetensors.lua
local pt = require "proteus"
local st = require "proteus.safetensors"

local tests = {}

function tests.roundtrip_all_dtypes(T)
  local path = os.tmpname()
  local src = {}
  for _, dt in ipairs { "f32", "f64", "bf16", "f16", "i64", "i32", "u16", "i8", "u8" } do
    src["w." .. dt] = pt.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, dt)
  end
  src["mask"] = pt.tensor({ true, false, true }, "bool")
  src["scalar"] = pt.tensor(2.5, "f32")
  src["view"] = pt.tensor({ { 1, 2 }, { 3, 4 } }, "f32"):transpose(1, 2) -- saved in row-major order
  st.save(path, src, { recipe = "test", step = 12 })
  local got, meta = st.load(path)
  T.eq(meta, { recipe = "test", step = "12" })
  for name, t in pairs(src) do
    assert(got[name], "missing " .. name)
    T.eq(got[name]:dtype(), t:dtype(), name)
    T.eq(got[name]:shape(), t:shape(), name)
    T.eq(got[name]:totable(), t:totable(), name)
  end
  -- the header is 8-byte aligned and the file starts with its length
  local f = assert(io.open(path, "rb"))
  local n = string.unpack("<I8", f:read(8))
  f:close()
  T.eq(n % 8, 0)
  os.remove(path)
end

function tests.errors(T)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(string.pack("<I8", 1000), "{}")
  f:close()
  T.raises(function() st.load(path) end, "header length 1000 exceeds the file")
  f = assert(io.open(path, "wb"))
  local h = '{"a":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[0,1]}}'
  f:write(string.pack("<I8", #h), h, "\0")
  f:close()
  T.raises(function() st.load(path) end, "tensor 'a' has unknown dtype 'F8_E5M2'")
  os.remove(path)
  T.raises(function() st.load("/nonexistent/x.safetensors") end, "cannot open /nonexistent/x.safetensors")
  T.raises(function() st.save(path, { a = 5 }) end, "'a' is a number, not a tensor")
  T.raises(function() st.save(path, { pt.tensor({ 1 }) }) end, "keys must be names")
end

return tests
