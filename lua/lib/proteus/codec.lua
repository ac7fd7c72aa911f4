--- proteus.codec — byte codecs for artifacts: zstd (levels 1..22), brotli (quality 0..11), zlib
-- (0..9, with an 8-byte length prefix, see src/host/pt_codec.h), the 4-byte byte shuffle of #1539
-- (spec §4.5) and int6 packing (4 values in 3 bytes). Everything works on Lua strings; tensors go
-- through codec.tensor_bytes / codec.tensor_from_bytes.
--
--   local codec = require "proteus.codec"
--   local z = codec.compress(bytes, "zstd", 22)
--   assert(codec.decompress(z, "zstd") == bytes)
--   local best = codec.smallest(bytes, {{"zstd", 22}, {"brotli", 11, shuffle = true}})
--
-- Decoders refuse corrupt or truncated input with an error, and never produce more than max_len
-- bytes (default 2 GiB). Test: tests/lua/test_codec.lua.
local C = require "proteus._codec"

local codec = {}

--- Compresses str with codec name ("zstd", "brotli", "zlib", "none"); level defaults to the
-- codec's maximum (zstd 22, brotli 11, zlib 9).
codec.compress = C.compress
--- Decompresses str; max_len (optional) bounds the output size.
codec.decompress = C.decompress
--- Byte shuffle and its inverse (output = padded length + 1 pad-count byte).
codec.shuffle4 = C.shuffle4
codec.unshuffle4 = C.unshuffle4
--- int6 packing: a string of int8 values in [-32, 31] -> ceil(n/4)*3 bytes, and back (n values).
codec.pack_int6 = C.pack_int6
codec.unpack_int6 = C.unpack_int6
--- Raw little-endian bytes of a tensor (row-major), and a CPU tensor from such bytes.
codec.tensor_bytes = C.tensor_bytes
codec.tensor_from_bytes = C.tensor_from_bytes
--- Highest level per codec name.
codec.max_level = C.max_level
codec.names = { "none", "zstd", "brotli", "zlib" }

--- Encodes with an optional byte shuffle first: opts = {shuffle = true}.
function codec.encode(str, name, level, opts)
  if opts and opts.shuffle then str = C.shuffle4(str) end
  return C.compress(str, name, level)
end

--- Inverse of codec.encode.
function codec.decode(str, name, opts, max_len)
  local out = C.decompress(str, name, max_len)
  if opts and opts.shuffle then out = C.unshuffle4(out) end
  return out
end

--- Tries each candidate {name, level, shuffle = bool} and returns the smallest encoding:
-- bytes, candidate, and a list of {name, level, shuffle, size} for every candidate tried.
function codec.smallest(str, candidates)
  assert(type(candidates) == "table" and #candidates > 0, "codec.smallest: give a list of {name, level}")
  local best, best_c, tried = nil, nil, {}
  for _, c in ipairs(candidates) do
    local enc = codec.encode(str, c[1], c[2], c)
    tried[#tried + 1] = { name = c[1], level = c[2], shuffle = c.shuffle and true or false, size = #enc }
    if not best or #enc < #best then best, best_c = enc, c end
  end
  return best, best_c, tried
end

return codec
