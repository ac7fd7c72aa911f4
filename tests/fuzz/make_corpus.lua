-- tests/fuzz/make_corpus.lua — regenerates the seed corpora of tests/fuzz/corpus/ from real small
-- files (a few KJV verses tokenized with sp1024, the first pieces of the sp1024 model, small
-- safetensors files and artifacts written by proteus itself, codec streams).
--
--   spm_encode --model=../shared/data/tokenizers/fineweb_1024_bpe.model --output_format=id \
--       < some.txt > /tmp/ids.txt
--   build/proteus tests/fuzz/make_corpus.lua /tmp/ids.txt /path/to/fineweb_1024_bpe.model
--
-- Keep the corpus small (< 1 MB for all targets): the fuzzers grow their own in build-fuzz/corpus.
local ids_path, model_path = arg[1], arg[2]
assert(ids_path and model_path, "usage: proteus tests/fuzz/make_corpus.lua IDS.txt SP1024.model")
local A = require "proteus._artifact"
local codec = require "proteus.codec"
local st = require "proteus.safetensors"
local pt = require "proteus"

local out = "tests/fuzz/corpus/"
local function put(target, name, bytes)
  local f = assert(io.open(out .. target .. "/" .. name, "wb"))
  f:write(bytes)
  f:close()
end
local function slurp(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read "a"
  f:close()
  return s
end

-- ---- token shards: BOS + tokens of a few verses, split in two documents; an empty shard ----
local toks = { 1 }
for w in slurp(ids_path):gmatch "%d+" do toks[#toks + 1] = tonumber(w) end
local function shard(list)
  local h = { string.pack("<i4i4i4", 20240520, 1, #list), string.rep("\0", 1024 - 12) }
  for _, t in ipairs(list) do h[#h + 1] = string.pack("<I2", t) end
  return table.concat(h)
end
local doc = {}
for i = 1, math.min(#toks, 120) do doc[i] = toks[i] end
put("shard", "kjv_120", shard(doc))
local two = { table.unpack(doc, 1, 40) }
two[#two + 1] = 1
for i = 41, 60 do two[#two + 1] = doc[i] end
put("shard", "kjv_two_docs", shard(two))
put("shard", "empty", shard {})
put("shard", "out_of_vocab", shard { 1, 5, 1500, 7 })

-- ---- SentencePiece: the sp1024 model cut after its first K pieces (+ its other top-level fields) ----
local model = slurp(model_path)
local function varint(s, i)
  local v, sh = 0, 0
  while true do
    local b = s:byte(i)
    i = i + 1
    v = v | ((b & 127) << sh)
    if b < 128 then return v, i end
    sh = sh + 7
  end
end
local pieces, rest = {}, {} -- field 1 SentencePiece messages; the other top-level fields
do
  local i = 1
  while i <= #model do
    local start = i
    local key
    key, i = varint(model, i)
    assert(key & 7 == 2, "unexpected wire type in the model")
    local n
    n, i = varint(model, i)
    i = i + n
    if key >> 3 == 1 then
      pieces[#pieces + 1] = model:sub(start, i - 1)
    elseif key >> 3 ~= 3 then -- the normalizer spec is a 240 KB charsmap: too big for a seed
      rest[#rest + 1] = model:sub(start, i - 1)
    end
  end
end
local function cut(k, keep_rest)
  local t = { table.unpack(pieces, 1, k) }
  if keep_rest then for _, r in ipairs(rest) do t[#t + 1] = r end end
  return table.concat(t)
end
put("sptok", "sp1024_first8", cut(8, false))
put("sptok", "sp1024_first300_spec", cut(300, true))
put("sptok", "sp1024_merged", table.concat { pieces[1], pieces[2], pieces[3], pieces[4], pieces[5],
  table.unpack(pieces, 900, 960) })

-- ---- safetensors ----
local tmp = os.tmpname()
local function st_bytes(tensors, meta)
  st.save(tmp, tensors, meta)
  return slurp(tmp)
end
put("safetensors", "f32_two", st_bytes({ w = pt.tensor { { 1, 2, 3 }, { 4, 5, 6 } }, b = pt.tensor { 0.5, -1 } },
  { recipe = "fuzz" }))
put("safetensors", "dtypes", st_bytes {
  bf = pt.tensor({ 1, 2 }):to "bf16", h = pt.tensor({ 3 }):to "f16", i = pt.tensor({ 7, 8 }):to "i64",
  u = pt.tensor({ 9 }):to "u8", m = pt.tensor({ 1, 0, 1 }):to "bool", e = pt.zeros(0, 3),
})
put("safetensors", "scalar_meta", st_bytes({ s = pt.tensor(2.5) }, { a = "b", c = "" }))
os.remove(tmp)

-- ---- artifacts: every codec, with and without the shuffle ----
local q = {}
for i = 1, 32 do q[i] = string.pack("b", (i * 5) % 63 - 31) end
local q6 = table.concat(q)
local entries = {
  { name = "blocks.0.attn.c_q.weight", scheme = "int6_per_row", dtype = "i8", shape = { 4, 8 },
    orig_dtype = "f32", data = q6, scale_dtype = "f16", scales = string.rep("\0\60", 4) },
  { name = "blocks.0.mlp.fc.weight", scheme = "int6_per_row", dtype = "i8", shape = { 4, 8 }, packed6 = true,
    orig_dtype = "f32", data = codec.pack_int6(q6), scale_dtype = "f32", scales = string.pack("<ffff", 1, 2, 3, 4) },
  { name = "tok_emb.weight", scheme = "int8_per_tensor", dtype = "i8", shape = { 2, 2 }, orig_dtype = "bf16",
    data = "\1\2\3\4", scale_dtype = "f16", scales = "\0\60" },
  { name = "skip", scheme = "fp32", dtype = "f32", shape = { 2 }, data = string.pack("<ff", 0.5, -1) },
  { name = "mask", scheme = "raw", dtype = "bool", shape = { 3 }, data = "\1\0\1" },
}
local meta = { recipe = "fuzz", config = { num_layers = 1, lr = 0.02 }, extra = { clip = 0.5 },
  tokenizer_sha256 = string.rep("ab", 32) }
for _, c in ipairs { { "none", 0 }, { "zstd", 3 }, { "brotli", 5 }, { "zlib", 6 } } do
  put("artifact", c[1], A.pack(entries, meta, c[1], c[2], false))
end
put("artifact", "none_shuffled", A.pack(entries, meta, "none", 0, true))
put("artifact", "zstd_shuffled", A.pack(entries, meta, "zstd", 3, true))
put("artifact", "empty", A.pack({}, {}, "none", 0, false))
-- bare payloads (fuzz_artifact wraps them in a valid header): the bytes after the 32-byte header
put("artifact", "payload_all", A.pack(entries, meta, "none", 0, false):sub(33))
put("artifact", "payload_empty", A.pack({}, {}, "none", 0, false):sub(33))

-- ---- codecs: selector byte (0 zstd, 1 brotli, 2 zlib, 3 none, 4 unshuffle4, 5 int6) + input ----
local text = slurp(ids_path):sub(1, 600)
put("codec", "zstd", "\0" .. codec.compress(text, "zstd", 3))
put("codec", "zstd_zeros", "\0" .. codec.compress(string.rep("\0", 5000), "zstd", 19))
put("codec", "brotli", "\1" .. codec.compress(text, "brotli", 5))
put("codec", "zlib", "\2" .. codec.compress(text, "zlib", 6))
put("codec", "none", "\3" .. text:sub(1, 64))
put("codec", "shuffle", "\4" .. codec.shuffle4(text:sub(1, 61)))
put("codec", "int6", "\5" .. codec.pack_int6(q6))
-- ---- checkpoint (when proteus.checkpoint exists): selector byte 0 + a file, 1 + JSON text ----
local okc, ckpt = pcall(require, "proteus.checkpoint")
if okc then
  local nn = require "proteus.nn"
  local optim = require "proteus.optim"
  pt.manual_seed(1)
  local model = nn.GPT { vocab_size = 64, num_layers = 1, model_dim = 16, num_heads = 2, num_kv_heads = 1,
    mlp_mult = 1, rope_train_seq_len = 16 }
  local adam = optim.AdamW { params = model:parameters(), lr = 0.01 }
  local p = os.tmpname()
  ckpt.save(p, { model = model, optimizers = { adam } }, { step = 3, elapsed_ms = 12.5, config = { lr = 0.01 } })
  put("checkpoint", "tiny_gpt", "\0" .. slurp(p))
  os.remove(p)
end
put("checkpoint", "json_obj", '\1{"format":"proteus.checkpoint","version":1,"step":3,"a":[1,2.5,null,true,"x\\u00e9"]}')
put("checkpoint", "json_num", "\1[-0.0,1e308,12345678901234567890,5e-324,\"\\ud83d\\ude00\"]")
print("corpus written under " .. out)
