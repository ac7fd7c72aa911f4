-- tests/lua/test_errors.lua — the bad-input catalogue of docs/errors.md, one test per entry: each
-- feeds one bad input and checks the exact message a user gets (the file or value named, and what
-- to do). Entries whose feature another engineer is still building skip with a reason naming the
-- missing module, and assert for real once it is there.
--
--   build/proteus tests/run.lua tests/lua/test_errors.lua
local pt = require "proteus"
local data = require "proteus.data"
local nn = require "proteus.nn"
local optim = require "proteus.optim"

local function need(mod)
  local ok, m = pcall(require, mod)
  if not ok then error({ skip = mod .. " is not there yet (" .. tostring(m):match("^[^\n]*") .. ")" }, 0) end
  return m
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end
local function rmdir(d) os.execute("rm -rf '" .. d .. "'") end
local function slurp(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read "a"
  f:close()
  return s
end

local function tiny_gpt(vocab, layers)
  pt.manual_seed(1)
  return nn.GPT { vocab_size = vocab or 1024, num_layers = layers or 1, model_dim = 16, num_heads = 2,
    num_kv_heads = 1, mlp_mult = 1, rope_train_seq_len = 16 }
end

local tests = {}

-- ---- data ----

function tests.data_dir_missing(T)
  local m = T.raises(function() data.stream("/nonexistent/proteus_data/fineweb_train_*.bin") end,
    "no token shards match '/nonexistent/proteus_data/fineweb_train_*.bin' (check the data path; the bundled sample is data/sample/fineweb_*_000000.bin)")
  assert(m:find("host/shards.c", 1, true))
  T.raises(function() data.open_val { data_path = "/nonexistent/proteus_data" } end,
    "no token shards match '/nonexistent/proteus_data/fineweb_val_*.bin'")
end

function tests.data_dir_empty(T)
  local d = tmpdir()
  T.raises(function() data.open_val { data_path = d } end, "no token shards match '" .. d .. "/fineweb_val_*.bin'")
  T.raises(function() data.stream(d .. "/fineweb_train_*.bin") end, "no token shards match '" .. d .. "/fineweb_train_*.bin'")
  rmdir(d)
end

function tests.data_shard_truncated(T)
  local d = tmpdir()
  data.tokens { 1, 5, 6, 7 }:write(d .. "/fineweb_val_000000.bin")
  local s = slurp(d .. "/fineweb_val_000000.bin")
  local f = assert(io.open(d .. "/fineweb_val_000000.bin", "wb"))
  f:write(s:sub(1, #s - 3))
  f:close()
  T.raises(function() data.read(d .. "/fineweb_val_*.bin") end,
    "fineweb_val_000000.bin: size mismatch: file is 1029 bytes but the header says 4 tokens (expected 1032 bytes = 1024 + 2*4); the file is truncated or corrupt")
  rmdir(d)
end

function tests.token_range_outside_vocab(T)
  local d = tmpdir()
  data.tokens { 1, 5, 1500, 7 }:write(d .. "/fineweb_val_000000.bin")
  T.raises(function() data.read(d .. "/fineweb_val_*.bin"):check_vocab(1024) end,
    "token 1500 at position 2 of the tokens is outside the vocabulary (1024)")
  T.raises(function() data.open_val { val_files = d .. "/fineweb_val_*.bin", vocab = 1024 } end,
    "token 1500 at position 2 of fineweb_val_*.bin is outside the vocabulary (1024)")
  rmdir(d)
end

function tests.model_vocab_smaller_than_tokenizer(T)
  T.raises(function() data.open_val { vocab = 512 } end,
    "byte tables: the model's vocabulary (512) is smaller than the tokenizer's (1024 pieces); use a model with vocab_size >= 1024 or the tokenizer it was trained with")
end

function tests.tokenizer_not_a_model(T)
  local d = tmpdir()
  local f = assert(io.open(d .. "/bad.model", "wb"))
  f:write("this is not a protobuf")
  f:close()
  T.raises(function() data.tokenizer(d .. "/bad.model") end,
    d .. "/bad.model: unsupported protobuf wire type 4 (field 14) at byte 1: not a SentencePiece model")
  rmdir(d)
end

-- ---- artifacts ----

local function artifact_mods()
  local artifact = need "proteus.artifact"
  local quant = need "proteus.quant"
  return artifact, quant
end

function tests.artifact_from_another_recipe(T)
  local artifact, quant = artifact_mods()
  local d = tmpdir()
  local m = tiny_gpt(64)
  artifact.write(d .. "/a.ptz", m, quant.policy.baseline, { recipe = "recipe_a", codec = "zstd", level = 3 })
  T.raises(function() artifact.load_into(m, d .. "/a.ptz", { recipe = "recipe_b" }) end,
    "artifact " .. d .. "/a.ptz was written by recipe 'recipe_a', not 'recipe_b'")
  -- the same recipe name with another config: the first tensor whose shape differs is named
  T.raises(function() artifact.load_into(tiny_gpt(64, 2), d .. "/a.ptz", { recipe = "recipe_a" }) end,
    "(another config?)")
  artifact.load_into(m, d .. "/a.ptz", { recipe = "recipe_a" })
  rmdir(d)
end

function tests.artifact_over_the_cap(T)
  local artifact, quant = artifact_mods()
  local d = tmpdir()
  local m = tiny_gpt(64)
  local path = d .. "/a.ptz"
  artifact.write(path, m, quant.policy.baseline, { recipe = "r", codec = "zstd", level = 3 })
  local before = slurp(path)
  local msg = T.raises(function()
    artifact.write(path, m, quant.policy.baseline, { recipe = "r", codec = "zstd", level = 3, cap = 1000 })
  end, "artifact " .. path .. ": over the 1000-byte cap:")
  assert(msg:find("model bytes: ", 1, true) and msg:find("code bytes: ", 1, true) and msg:find("(OVER by ", 1, true), msg)
  T.eq(slurp(path) == before, true, "the artifact already at the path is left as it was")
  rmdir(d)
end

function tests.artifact_corrupt_and_hostile(T)
  local A = require "proteus._artifact"
  local bytes = A.pack({ { name = "w", scheme = "fp32", dtype = "f32", shape = { 2 }, data = string.pack("<ff", 1, 2) } },
    { recipe = "r" }, "zstd", 3, false)
  T.raises(function() A.unpack("GIF89a" .. bytes) end, "is not a proteus artifact (magic 'GIF8', expected 'PTZ1')")
  T.raises(function() A.unpack(bytes:sub(1, #bytes - 1)) end, "is truncated: the header says 32 + ")
  -- flip one byte of the stored data: the codec or the checksum catches it
  local i = #bytes - 4
  local flipped = bytes:sub(1, i - 1) .. string.char(bytes:byte(i) ~ 0xFF) .. bytes:sub(i + 1)
  -- (zstd reports "corrupt data (Data corruption detected)" with Debian's libzstd; the CRC would say
  -- "is corrupted: payload checksum ...": either way the file is named and called corrupt)
  local msg = T.raises(function() A.unpack(flipped) end, "artifact <bytes>")
  assert(msg:find("corrupt", 1, true), msg)
  -- a header claiming a 1 TiB payload
  local hostile = bytes:sub(1, 12) .. string.pack("<I8", 1 << 40) .. bytes:sub(21)
  T.raises(function() A.unpack(hostile) end, "claims a payload of 1099511627776 bytes, more than the 2147483648-byte limit")
end

function tests.safetensors_corrupt(T)
  local st = require "proteus.safetensors"
  local d = tmpdir()
  st.save(d .. "/w.safetensors", { w = pt.tensor { 1, 2, 3 } })
  local s = slurp(d .. "/w.safetensors")
  local f = assert(io.open(d .. "/t.safetensors", "wb"))
  f:write(s:sub(1, #s - 4))
  f:close()
  T.raises(function() st.load(d .. "/t.safetensors") end,
    "safetensors " .. d .. "/t.safetensors: tensor 'w' data_offsets [0, 12] are outside the data buffer of 8 bytes")
  f = assert(io.open(d .. "/h.safetensors", "wb"))
  f:write(string.pack("<I8", 1 << 40) .. "{}")
  f:close()
  T.raises(function() st.load(d .. "/h.safetensors") end, "header length 1099511627776 exceeds the file (2 bytes after the length field)")
  rmdir(d)
end

-- ---- memory ----

-- Under AddressSanitizer a failed huge allocation aborts the process unless
-- ASAN_OPTIONS has allocator_may_return_null=1 (scripts/test.sh --sanitize does not set it yet).
local function asan_aborts_on_huge_alloc()
  local f = io.open("/proc/self/maps", "r")
  if not f then return false end
  local maps = f:read "a"
  f:close()
  if not maps:find("libasan", 1, true) then return false end
  return not (os.getenv("ASAN_OPTIONS") or ""):find("allocator_may_return_null=1", 1, true)
end

function tests.huge_tensor_is_out_of_memory_not_a_crash(T)
  if asan_aborts_on_huge_alloc() then
    T.skip("AddressSanitizer build without ASAN_OPTIONS=allocator_may_return_null=1: a 4 TB malloc aborts by design")
  end
  T.raises(function() pt.zeros(1000000000000) end,
    "out of host memory: asked for 4000000000000 bytes")
  T.raises(function() pt.zeros(1000000, 1000000, 1000000) end, "shape [1000000, 1000000, 1000000] is too large")
  T.raises(function() pt.randn(1000000000000) end, "out of host memory: asked for 4000000000000 bytes")
  -- the process is still fine afterwards
  T.eq(pt.zeros(3):sum():item(), 0.0)
end

function tests.huge_tensor_float_size_1e12(T)
  -- pt.zeros(1e12): 1e12 is a float in Lua 5.4; it must be read as the integer size it is
  if asan_aborts_on_huge_alloc() then
    T.skip("AddressSanitizer build without ASAN_OPTIONS=allocator_may_return_null=1: a 4 TB malloc aborts by design")
  end
  local ok, msg = pcall(pt.zeros, 1e12)
  assert(not ok, "pt.zeros(1e12) returned a tensor")
  msg = tostring(msg)
  assert(msg:find("out of host memory: asked for 4000000000000 bytes", 1, true), msg)
end

-- ---- training ----

local function train_setup(T, model)
  local train = need "proteus.train"
  local adam = optim.AdamW { params = model:parameters(), lr = 0.01 }
  return train, { model = model, optimizers = { adam }, stream = data.stream(data.paths().train), seq_len = 16,
    batch_seqs = 2, max_steps = 3, quiet = true }
end

function tests.nan_loss_stops_the_run(T)
  local m = tiny_gpt()
  local train, o = train_setup(T, m)
  for name, p in m:named_parameters() do
    if name == "tok_emb.weight" then pt.no_grad(function() p:mul_(0 / 0) end) end
  end
  T.raises(function() train.run(o) end,
    "train.run: train_loss is nan at step 1/3; stopped before the optimizer step (no checkpoint was written; lower the learning rates or check the data)")
end

function tests.lua_error_inside_a_training_step(T)
  local m = tiny_gpt()
  local train, o = train_setup(T, m)
  local fwd, calls = m.forward, 0
  m.forward = function(self, x, y)
    calls = calls + 1
    if calls == 2 then error("boom in my forward") end
    return fwd(self, x, y)
  end
  local msg = T.raises(function() train.run(o) end, "boom in my forward")
  assert(msg:find("test_errors.lua:%d+: boom in my forward"), "the error keeps where it was raised: " .. msg)
  assert(msg:find("train.run: step 2/3: ", 1, true), "the error names the step: " .. msg)
  T.eq(calls, 2)
end

function tests.config_key_typo(T)
  -- model config
  T.raises(function() nn.GPT { vocab_size = 64, num_layer = 1, model_dim = 16, num_heads = 2, num_kv_heads = 1 } end,
    "GPT config: unknown key 'num_layer' (did you mean 'num_layers'?)")
  -- the quickstart script's key=value arguments
  local chunk = assert(loadfile("examples/quickstart.lua"))
  local saved = arg
  arg = { "stesp=2" }
  local ok, msg = pcall(chunk, "stesp=2")
  arg = saved
  assert(not ok and tostring(msg):find("quickstart: unknown key 'stesp' (did you mean 'steps'?)", 1, true), tostring(msg))
end

function tests.checkpoint_truncated_or_foreign(T)
  local ckpt = need "proteus.checkpoint"
  local st = require "proteus.safetensors"
  local d = tmpdir()
  local m = tiny_gpt(64)
  ckpt.save(d .. "/c.safetensors", { model = m, optimizers = { optim.AdamW { params = m:parameters(), lr = 0.01 } } },
    { step = 1, elapsed_ms = 1.0 })
  local s = slurp(d .. "/c.safetensors")
  local f = assert(io.open(d .. "/t.safetensors", "wb"))
  f:write(s:sub(1, #s - 100))
  f:close()
  T.raises(function() ckpt.load(d .. "/t.safetensors") end,
    "checkpoint.load " .. d .. "/t.safetensors: not a readable checkpoint (truncated or corrupt?)")
  st.save(d .. "/w.safetensors", { w = pt.tensor { 1, 2 } })
  T.raises(function() ckpt.load(d .. "/w.safetensors") end,
    "checkpoint.load " .. d .. "/w.safetensors: not a proteus checkpoint (no \"proteus.checkpoint\" metadata)")
  T.raises(function() ckpt.load(d .. "/missing.safetensors") end,
    "checkpoint.load " .. d .. "/missing.safetensors: no such file (or it cannot be read)")
  rmdir(d)
end

function tests.recipe_key_typo(T)
  local recipe = need "proteus.recipe"
  local path = "lua/recipes/baseline.lua"
  local r = recipe.load(path)
  local no_env = function() return nil end
  -- a key=value argument with a typo is refused before anything runs, with the nearest key
  T.raises(function() r.run({ "num_layer=3" }, no_env) end,
    "recipe baseline: unknown key 'num_layer' (argument 1) (did you mean 'num_layers'?)")
  T.raises(function() r.run({ "num_layers=3", "trian_seq_len=8" }, no_env) end,
    "recipe baseline: unknown key 'trian_seq_len' (argument 2) (did you mean 'train_seq_len'?)")
end

return tests
