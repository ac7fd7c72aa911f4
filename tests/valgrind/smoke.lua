-- tests/valgrind/smoke.lua — a short run that goes through every layer once, small enough for
-- Valgrind's memcheck (scripts/valgrind_smoke.sh): tokenizer and shards, a tiny GPT trained for
-- 2 steps with Muon + AdamW, a standard evaluation through the ledger on a 600-token validation
-- slice, safetensors save/load, artifacts with every codec (and the byte shuffle, int6 packing).
--
--   build/proteus tests/valgrind/smoke.lua            (plain: a few seconds)
--   bash scripts/valgrind_smoke.sh                    (under valgrind: a few minutes)
local pt = require "proteus"
local nn = require "proteus.nn"
local data = require "proteus.data"
local optim = require "proteus.optim"
local eval = require "proteus.eval"
local st = require "proteus.safetensors"
local codec = require "proteus.codec"
local A = require "proteus._artifact"

pt.manual_seed(1)
local model = nn.GPT {
  vocab_size = 1024, num_layers = 2, model_dim = 32, num_heads = 2, num_kv_heads = 1, mlp_mult = 2,
  rope_base = 10000, rope_train_seq_len = 64, bigram_vocab_size = 64, bigram_dim = 8, smear_gate = true,
  xsa_layers = { 2 },
}
local mats, rest = {}, {}
for name, p in model:named_parameters() do
  if name:match("^blocks%.") and p:dim() == 2 then mats[#mats + 1] = p else rest[#rest + 1] = p end
end
local muon = optim.Muon { params = mats, lr = 0.02, momentum = 0.95 }
local adam = optim.AdamW { params = rest, lr = 0.01 }

local paths = data.paths()
local stream = data.stream(paths.train)
local B, T = 2, 32
for step = 1, 2 do
  local xy = stream:next_batch(B * T, 0, 1):tensor()
  local x = xy:narrow(1, 1, B * T):reshape { B, T }
  local y = xy:narrow(1, 2, B * T):reshape { B, T }
  local loss = model:forward(x, y)
  loss:backward()
  local l = loss:item()
  assert(l == l and l > 0, "smoke: bad loss " .. tostring(l))
  optim.clip_grad_norm(model:parameters(), 1.0)
  muon:step(1)
  adam:step(1)
  model:zero_grad()
  print(string.format("smoke: step %d loss %.4f", step, l))
end

-- evaluation on a 600-token slice of the validation shard, through the ledger
local tmpdir = os.tmpname()
os.remove(tmpdir)
assert(os.execute("mkdir -p " .. tmpdir))
local val_all = data.read(paths.val)
val_all:sub(1, 600):write(tmpdir .. "/fineweb_val_000000.bin")
local val = data.open_val { val_files = tmpdir .. "/fineweb_val_*.bin", vocab = 1024 }
local r = pt.no_grad(function()
  return eval.standard(val, function(tok) return model:logits(tok) end, { seq_len = 64, batch_seqs = 2, log = false })
end)
assert(r.bpb > 0 and r.bpb == r.bpb, "smoke: bad bpb")
print(string.format("smoke: val bpb %.4f over %d targets", r.bpb, r.scored))

-- safetensors round trip
local named = {}
for name, p in model:named_parameters() do named[name] = p end
st.save(tmpdir .. "/m.safetensors", named, { recipe = "smoke" })
local back, meta = st.load(tmpdir .. "/m.safetensors")
assert(meta.recipe == "smoke")
for name, p in pairs(named) do
  assert((back[name] - p):abs():max():item() == 0, "smoke: safetensors changed " .. name)
end

-- artifacts with every codec; int6 packing; the shuffle
local q = {}
for i = 1, 64 do q[i] = string.pack("b", (i * 7) % 63 - 31) end
local q6 = table.concat(q)
local entries = {
  { name = "w", scheme = "int6_per_row", dtype = "i8", shape = { 8, 8 }, packed6 = true, orig_dtype = "f32",
    data = codec.pack_int6(q6), scale_dtype = "f16", scales = string.rep("\0\60", 8) },
  { name = "b", scheme = "fp32", dtype = "f32", shape = { 2 }, data = string.pack("<ff", 0.5, -1) },
}
for _, c in ipairs { { "none", 0 }, { "zstd", 19 }, { "brotli", 9 }, { "zlib", 9 } } do
  for _, sh in ipairs { false, true } do
    local bytes = A.pack(entries, { recipe = "smoke", config = { a = 1 } }, c[1], c[2], sh)
    local es, m = A.unpack(bytes)
    assert(#es == 2 and m.recipe == "smoke" and codec.unpack_int6(es[1].data, 64) == q6)
  end
end
os.execute("rm -rf " .. tmpdir)
print("smoke: ok")
