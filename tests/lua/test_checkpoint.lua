-- tests/lua/test_checkpoint.lua — proteus.checkpoint: save/load/capture/restore of weights, optimizer
-- states, EMA/SWA, RNG, data position, step, training time and config; refusal of truncated,
-- corrupt and mismatched checkpoints with errors naming the file.
--
--   build/proteus tests/run.lua tests/lua/test_checkpoint.lua
--
-- The kill -9 test of the atomic write is tests/cli/test_kill_checkpoint.sh.
local pt = require "proteus"
local nn = require "proteus.nn"
local optim = require "proteus.optim"
local testing = require "proteus.testing"
local data = require "proteus.data"
local st = require "proteus.safetensors"
local ckpt = require "proteus.checkpoint"
local train = require "proteus.train"

local TMP = os.getenv("TMPDIR") or "/tmp"
local function tmpdir(tag)
  local d = string.format("%s/proteus_test_ckpt_%s_%d_%d", TMP, tag, os.time(), math.random(1, 1e9))
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end
local function rmdir(d) os.execute("rm -rf '" .. d .. "'") end

local function setup(seed, dim)
  pt.manual_seed(seed or 1337)
  local model = nn.GPT { vocab_size = 1024, num_layers = 2, model_dim = dim or 32, num_heads = 2, num_kv_heads = 1,
    mlp_mult = 2 }
  local opts, named = testing.proteus_optimizers(model)
  local parts = { model = model, optimizers = opts, stream = data.stream(data.paths().train),
    ema = optim.EMA { params = named, decay = 0.9, every = 1 }, swa = optim.SWA { params = named, every = 1, threshold = 2 } }
  return parts
end

-- a few real steps so every optimizer has state, EMA has moved and SWA has sums
local function trained(seed)
  local parts = setup(seed)
  train.run { model = parts.model, optimizers = parts.optimizers, stream = parts.stream, seq_len = 16, batch_seqs = 2,
    max_steps = 3, quiet = true, apply_averaging = false,
    on_step = function() parts.ema:update(1); parts.swa:add() end }
  parts.optimizers[2]:set("momentum", 0.9123456789012345) -- a scheduled hyper-parameter
  parts.stream:next_batch(7, 0, 1)
  return parts
end

local function snapshot(parts)
  local s = { w = {}, opt = {}, ema = {}, swa = {} }
  for n, p in parts.model:named_parameters() do s.w[n] = p:totable() end
  for i, o in ipairs(parts.optimizers) do
    local sd = o:state_dict()
    for _, st_ in pairs(sd.state) do
      for k, v in pairs(st_) do if pt.is_tensor(v) then st_[k] = v:totable() end end
    end
    s.opt[i] = sd
  end
  for i, t in ipairs(parts.ema.shadow) do s.ema[i] = t:totable() end
  for i, t in ipairs(parts.swa.sums or {}) do s.swa[i] = t:totable() end
  s.swa_count, s.ema_updates = parts.swa.count, parts.ema.updates
  s.pos = { parts.stream:pos() }
  s.rng = pt.get_rng_state()
  return s
end

local tests = {}

tests.save_load_restore_roundtrip = function(T)
  local dir = tmpdir("rt")
  local path = dir .. "/c.safetensors"
  local a = trained(1)
  pt.rand({ 5 }) -- move the RNG
  local want = snapshot(a)
  local cfg = { seq_len = 16, lr = 0.1 + 0.2, name = "x", list = { 1, 2.5, "z" } }
  T.eq(ckpt.save(path, a, { step = 3, elapsed_ms = 1234.5678901234567, config = cfg, extra = { qat_on = true } }), path)
  local b = setup(99) -- different weights, empty states, stream at 0, rng elsewhere
  pt.manual_seed(5)
  local c = ckpt.load(path)
  T.eq(c.step, 3)
  T.eq(math.type(c.step), "integer")
  T.eq(c.elapsed_ms, 1234.5678901234567)
  T.eq(c.config, cfg)
  T.eq(c.extra, { qat_on = true })
  ckpt.restore(c, b)
  T.eq(snapshot(b), want)
  -- the optimizers continue identically: one more step on both gives the same weights
  for _, parts in ipairs { a, b } do
    for _, p in ipairs(parts.model:parameters()) do p.grad = pt.ones(p:shape()) * 0.01 end
    for _, o in ipairs(parts.optimizers) do o:step(0.5) end
  end
  T.eq(snapshot(b).w, snapshot(a).w)
  rmdir(dir)
end

tests.capture_is_a_copy = function(T)
  local a = trained(2)
  local want = snapshot(a)
  local snap = ckpt.capture(a, { step = 7 })
  T.eq(snap.meta.step, 7)
  -- change everything, then restore the in-memory snapshot
  train.run { model = a.model, optimizers = a.optimizers, stream = a.stream, seq_len = 16, batch_seqs = 2,
    max_steps = 2, quiet = true, apply_averaging = false, on_step = function() a.ema:update(1); a.swa:add() end }
  pt.rand({ 3 })
  assert(snapshot(a).w["tok_emb.weight"][1][1] ~= want.w["tok_emb.weight"][1][1], "training did not move the weights")
  ckpt.restore(snap, a)
  T.eq(snapshot(a), want)
end

local function read_all(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function write_all(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

tests.truncated_or_corrupt_files_are_named = function(T)
  local dir = tmpdir("bad")
  local path = dir .. "/c.safetensors"
  local a = trained(3)
  ckpt.save(path, a, { step = 3 })
  local bytes = read_all(path)
  local cut = dir .. "/cut.safetensors"
  for _, n in ipairs { 0, 5, 8, 100, #bytes // 2, #bytes - 1 } do
    write_all(cut, bytes:sub(1, n))
    local msg = T.raises(function() ckpt.load(cut) end, "checkpoint.load " .. cut)
    assert(msg:find("truncated or corrupt", 1, true), msg)
  end
  write_all(cut, string.rep("garbage!", 100))
  T.raises(function() ckpt.load(cut) end, "checkpoint.load " .. cut .. ": not a readable checkpoint")
  T.raises(function() ckpt.load(dir .. "/none.safetensors") end, dir .. "/none.safetensors: no such file")
  -- a safetensors file that is not a checkpoint
  local plain = dir .. "/plain.safetensors"
  st.save(plain, { x = pt.ones({ 2 }) })
  T.raises(function() ckpt.load(plain) end, plain .. ": not a proteus checkpoint")
  -- metadata and tensors that disagree (a tensor dropped from the file)
  local snap = ckpt.capture(a, { step = 1 }, { clone = false })
  local json = require "proteus.json"
  local tensors = {}
  for k, v in pairs(snap.tensors) do tensors[k] = v end
  tensors["ema.1"] = nil
  st.save(cut, tensors, { [ckpt.META_KEY] = json.encode(snap.meta) })
  T.raises(function() ckpt.load(cut) end, "tensor ema.1 is listed in the metadata but missing from the file")
  -- a newer version
  snap.meta.version = 2
  st.save(cut, snap.tensors, { [ckpt.META_KEY] = json.encode(snap.meta) })
  T.raises(function() ckpt.load(cut) end, cut .. ": version 2; this proteus reads version 1")
  rmdir(dir)
end

tests.mismatched_run_is_refused_before_any_change = function(T)
  local dir = tmpdir("mismatch")
  local path = dir .. "/c.safetensors"
  ckpt.save(path, trained(4), { step = 3 })
  local b = setup(5, 48)
  local before = snapshot(b)
  local msg = T.raises(function() ckpt.restore(ckpt.load(path), b) end,
    "tok_emb.weight has shape [1024, 32] in the checkpoint, [1024, 48] in the run")
  assert(msg:find(path, 1, true), msg)
  T.eq(snapshot(b), before, "nothing changed")
  -- a different optimizer list
  local c = setup(5)
  T.raises(function()
    ckpt.restore(ckpt.load(path), { model = c.model, optimizers = { c.optimizers[1] } })
  end, "the checkpoint has 3 optimizers, the run 1")
  rmdir(dir)
end

tests.overwrite_is_atomic_and_leaves_no_temp = function(T)
  local dir = tmpdir("atomic")
  local path = dir .. "/c.safetensors"
  local a = trained(6)
  ckpt.save(path, a, { step = 1 })
  ckpt.save(path, a, { step = 2 })
  T.eq(ckpt.load(path).step, 2)
  local p = io.popen("ls -A '" .. dir .. "'")
  local names = p:read("a")
  p:close()
  T.eq(names, "c.safetensors\n")
  -- a failing save (directory missing) leaves the old checkpoint as it was
  T.raises(function() ckpt.save(dir .. "/no/such/dir/c.safetensors", a, { step = 3 }) end, "checkpoint.save " .. dir)
  T.eq(ckpt.load(path).step, 2)
  rmdir(dir)
end

return tests
