-- tests/lua/test_codec.lua — proteus.codec from Lua: round trips for every codec and level range,
-- byte shuffle layout, int6 packing, corrupt/truncated input errors, tensor bytes.
-- Run: build/proteus tests/run.lua tests/lua/test_codec.lua
local codec = require "proteus.codec"

local function sample(n)
  local t = {}
  local x = 12345
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = string.char((x >> 16) % 5 + (i % 50 == 0 and 100 or 0))
  end
  return table.concat(t)
end

local tests = {}

function tests.roundtrip_every_codec(T)
  local s = sample(20000)
  for _, c in ipairs { { "zstd", 1 }, { "zstd", 22 }, { "brotli", 0 }, { "brotli", 11 }, { "zlib", 0 },
                       { "zlib", 9 }, { "none", 0 } } do
    local z = codec.compress(s, c[1], c[2])
    T.eq(codec.decompress(z, c[1]), s, c[1] .. " " .. c[2])
    if c[1] ~= "none" and c[2] > 0 then assert(#z < #s // 2, c[1] .. " did not compress") end
  end
  -- default level is the maximum; empty strings round trip
  T.eq(codec.decompress(codec.compress(s, "brotli"), "brotli"), s)
  for _, name in ipairs(codec.names) do
    T.eq(codec.decompress(codec.compress("", name, name == "zstd" and 3 or 0), name), "")
  end
  T.eq(codec.max_level.zstd, 22)
  T.eq(codec.max_level.brotli, 11)
  T.eq(codec.max_level.zlib, 9)
end

function tests.zlib_framing(T)
  local z = codec.compress("hello", "zlib", 9)
  -- 8-byte little-endian decoded length, then a zlib stream (0x78 header byte)
  T.eq(z:sub(1, 8), "\5\0\0\0\0\0\0\0")
  T.eq(z:byte(9), 0x78)
end

function tests.bad_arguments(T)
  T.raises(function() codec.compress("x", "lzma", 1) end, "unknown codec 'lzma'")
  T.raises(function() codec.compress("x", "zstd", 23) end, "zstd level 23 out of range (1..22)")
  T.raises(function() codec.compress("x", "brotli", 12) end, "brotli level 12 out of range (0..11)")
end

function tests.corrupt_and_truncated(T)
  local s = sample(5000)
  for _, name in ipairs { "zstd", "brotli", "zlib" } do
    local z = codec.compress(s, name, 5)
    for cut = 0, #z - 1, 3 do
      local ok, err = pcall(codec.decompress, z:sub(1, cut), name)
      assert(not ok, name .. " accepted a cut at " .. cut)
      assert(tostring(err):find(name, 1, true), err)
    end
  end
  T.raises(function() codec.decompress("garbage!", "zstd") end, "not a zstd frame")
  local big = codec.compress(string.rep("\0", 100000), "zstd", 3)
  T.raises(function() codec.decompress(big, "zstd", 1000) end, "more than the limit of 1000")
end

function tests.shuffle4(T)
  T.eq(codec.shuffle4("\1\2\3\4\5\6"), "\1\5\2\6\3\0\4\0\2")
  T.eq(codec.unshuffle4("\1\5\2\6\3\0\4\0\2"), "\1\2\3\4\5\6")
  T.eq(codec.shuffle4(""), "\0")
  for n = 0, 33 do
    local s = sample(n)
    T.eq(codec.unshuffle4(codec.shuffle4(s)), s)
  end
  T.raises(function() codec.unshuffle4("\1\2\3\4\7") end, "pad count 7 is invalid")
  T.raises(function() codec.unshuffle4("") end, "empty input")
  -- encode/decode with shuffle
  local s = sample(999)
  T.eq(codec.decode(codec.encode(s, "brotli", 5, { shuffle = true }), "brotli", { shuffle = true }), s)
end

function tests.int6(T)
  T.eq(codec.pack_int6(string.pack("bbbb", 1, -1, 31, -32)), "\xC1\xFF\x81")
  T.eq(codec.unpack_int6("\xC1\xFF\x81", 4), string.pack("bbbb", 1, -1, 31, -32))
  local vals = {}
  for i = 1, 37 do vals[i] = string.pack("b", (i * 11) % 64 - 32) end
  local s = table.concat(vals)
  local p = codec.pack_int6(s)
  T.eq(#p, 30)
  T.eq(codec.unpack_int6(p, 37), s)
  T.raises(function() codec.pack_int6(string.pack("bb", 0, 40)) end, "value 40 at index 1 is outside [-32, 31]")
  T.raises(function() codec.unpack_int6("\0\0", 2) end, "2 values need 3 packed bytes, got 2")
end

function tests.smallest(T)
  local s = sample(4000)
  local best, c, tried = codec.smallest(s, { { "zlib", 9 }, { "zstd", 19 }, { "brotli", 11, shuffle = true } })
  T.eq(#tried, 3)
  local min = math.huge
  for _, t in ipairs(tried) do min = math.min(min, t.size) end
  T.eq(#best, min)
  T.eq(codec.decode(best, c[1], c), s)
end

function tests.tensor_bytes(T)
  local ok, pt = pcall(require, "proteus")
  if not ok then T.skip("proteus tensors not available: " .. tostring(pt)) end
  local t = pt.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, "f32")
  local b = codec.tensor_bytes(t)
  T.eq(b, string.pack("<ffffff", 1, 2, 3, 4, 5, 6))
  -- a non-contiguous view gives its elements in row-major order
  T.eq(codec.tensor_bytes(t:transpose(1, 2)), string.pack("<ffffff", 1, 4, 2, 5, 3, 6))
  local u = codec.tensor_from_bytes(b, "f32", { 3, 2 })
  T.eq(u:shape(), { 3, 2 })
  T.eq(u:totable(), { { 1, 2 }, { 3, 4 }, { 5, 6 } })
  local i8 = codec.tensor_from_bytes(string.pack("bbb", -3, 0, 7), "i8", { 3 })
  T.eq(i8:totable(), { -3, 0, 7 })
  T.raises(function() codec.tensor_from_bytes("abc", "f32", { 1 }) end, "3 bytes given, but shape [1] of f32 needs 4")
  -- compress a tensor's bytes and rebuild it
  local z = codec.compress(codec.tensor_bytes(t), "zstd", 22)
  T.eq(codec.tensor_from_bytes(codec.decompress(z, "zstd"), "f32", { 2, 3 }):totable(), t:totable())
end

return tests
