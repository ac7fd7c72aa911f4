-- tests/lua/test_artifact.lua — proteus._artifact from Lua: pack/unpack/write/read round trips with
-- every codec, config tables through JSON, the size breakdown, and clean errors for bad input.
-- Run: build/proteus tests/run.lua tests/lua/test_artifact.lua
local A = require "proteus._artifact"
local codec = require "proteus.codec"

local function entries()
  local q = {}
  for i = 1, 32 do q[i] = string.pack("b", (i * 5) % 63 - 31) end
  local q6 = table.concat(q)
  return {
    { name = "blocks.0.attn.c_q.weight", scheme = "int6_per_row", dtype = "i8", shape = { 4, 8 },
      orig_dtype = "f32", data = q6, scale_dtype = "f16", scales = string.rep("\0\60", 4) },
    { name = "blocks.0.mlp.fc.weight", scheme = "int6_per_row", dtype = "i8", shape = { 4, 8 }, packed6 = true,
      orig_dtype = "f32", data = codec.pack_int6(q6), scale_dtype = "f32", scales = string.pack("<ffff", 1, 2, 3, 4) },
    { name = "tok_emb.weight", scheme = "int8_per_tensor", dtype = "i8", shape = { 2, 2 }, orig_dtype = "bf16",
      data = "\1\2\3\4", scale_dtype = "f16", scales = "\0\60" },
    { name = "skip_weights", scheme = "fp32", dtype = "f32", shape = { 2 }, orig_dtype = "f32",
      data = string.pack("<ff", 0.5, -1) },
    { name = "smear.gate", scheme = "fp16", dtype = "f16", shape = { 1 }, data = "\0\60" },
  }
end

local meta = {
  recipe = "v9_lora_ttt",
  config = { num_layers = 11, model_dim = 512, lr = 0.025, name = "v9", flags = { true, false }, nested = { a = { 1, 2 } } },
  extra = { clip = 0.9999984 },
  tokenizer_sha256 = string.rep("ab", 32),
}

local tests = {}

function tests.roundtrip_each_codec(T)
  for _, c in ipairs { { "none", 0 }, { "zstd", 22 }, { "brotli", 11 }, { "zlib", 9 } } do
    for _, sh in ipairs { false, true } do
      local bytes = A.pack(entries(), meta, c[1], c[2], sh)
      T.eq(bytes:sub(1, 4), "PTZ1")
      local es, m = A.unpack(bytes)
      local want = entries()
      T.eq(#es, #want)
      for i, e in ipairs(want) do
        for _, k in ipairs { "name", "scheme", "dtype", "shape", "data", "scales", "scale_dtype" } do
          T.eq(es[i][k], e[k], e.name .. "." .. k)
        end
        T.eq(es[i].packed6, e.packed6 == true)
        T.eq(es[i].orig_dtype, e.orig_dtype or e.dtype)
      end
      T.eq(m.recipe, "v9_lora_ttt")
      T.eq(m.config, meta.config)
      T.eq(m.extra.clip, 0.9999984)
      T.eq(m.tokenizer_sha256, meta.tokenizer_sha256)
      T.eq(m.codec, c[1])
      T.eq(m.level, c[2])
      T.eq(m.shuffle, sh)
      T.eq(m.version, 1)
      T.eq(m.sizes.file, #bytes)
      T.eq(m.sizes.stored, #bytes - 32)
      T.eq(m.sizes.data, 32 + 24 + 4 + 8 + 2)
      T.eq(m.sizes.scales, 8 + 16 + 2)
      T.eq(m.sizes.by_scheme.int6_per_row, 32 + 8 + 24 + 16)
      T.eq(m.sizes.payload, 8 + m.sizes.json + m.sizes.data + m.sizes.scales)
      T.eq(A.sizes(bytes), m.sizes)
      T.eq(codec.unpack_int6(es[2].data, 32), es[1].data)
    end
  end
end

function tests.config_as_json_text(T)
  local bytes = A.pack(entries(), { config = '{"a":[1,2,{"b":null}]}' }, "zstd", 3)
  local _, m = A.unpack(bytes)
  T.eq(m.config_json, '{"a":[1,2,{"b":null}]}')
  T.eq(m.config.a[2], 2)
  T.eq(m.recipe, "")
end

function tests.write_read(T)
  local path = os.tmpname()
  local n = A.write(path, entries(), meta, "brotli", 11, true)
  local f = assert(io.open(path, "rb"))
  local bytes = f:read("a")
  f:close()
  T.eq(#bytes, n)
  local es, m = A.read(path)
  T.eq(#es, 5)
  T.eq(m.config.model_dim, 512)
  os.remove(path)
  T.raises(function() A.read("run/none-such.ptz") end, "cannot open run/none-such.ptz: No such file or directory")
end

function tests.errors(T)
  local bytes = A.pack(entries(), meta, "zstd", 5)
  T.raises(function() A.unpack("PK\3\4" .. bytes:sub(5), "run/model.ptz") end,
    "run/model.ptz is not a proteus artifact (magic 'PK\\x03\\x04'")
  for cut = 0, #bytes - 1, 5 do
    local ok, err = pcall(A.unpack, bytes:sub(1, cut), "cut.ptz")
    assert(not ok and tostring(err):find("cut.ptz", 1, true), "cut " .. cut .. ": " .. tostring(err))
  end
  local e = entries()
  e[1].scheme = "int4_magic"
  T.raises(function() A.pack(e, meta) end, "unknown scheme 'int4_magic'")
  e = entries()
  e[1].data = e[1].data:sub(2)
  T.raises(function() A.pack(e, meta) end, "has 31 data bytes")
  e = entries()
  e[4].dtype = "f64"
  T.raises(function() A.pack(e, meta) end, "scheme fp32 stores f32, not f64")
  T.raises(function() A.pack(entries(), { config = { f = print } }) end, "meta.config: config holds a function")
  T.raises(function() A.pack(entries(), meta, "lzma") end, "unknown codec 'lzma'")
  T.raises(function() A.pack({ 5 }, meta) end, "entry 1 is a number, not a table")
end

return tests
