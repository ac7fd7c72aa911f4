-- tests/lua/test_data.lua — proteus.data and the ledger from Lua: shards, streams, documents, the
-- tokenizer's byte tables on the bundled sample, and ledger scoring from a logits tensor (legal and
-- adversarial runs).
--
--   build/proteus tests/run.lua tests/lua/test_data.lua
local data = require "proteus.data"
local pt = require "proteus"

local function tmpdir()
  local p = assert(io.popen("mktemp -d"))
  local d = p:read("l")
  p:close()
  return d
end

local function read_json_number(path, key)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match('"' .. key .. '": (%d+)'))
end

-- a ledger over a small synthetic stream (values < 16) with the sp1024 tables
local function small_ledger(legal)
  local ids = {}
  for i = 0, 100 do ids[#ids + 1] = (i % 25 == 0) and 1 or (4 + (i * 7) % 12) end
  local tok = data.tokenizer(data.paths().tokenizer)
  return data.ledger(data.tokens(ids), tok, { legal = legal, name = "small_val" }), ids
end

-- logits tensor [n, 16] for targets a..b-1
local function logits_for(a, b)
  local rows = {}
  for t = a, b - 1 do
    local r = {}
    for v = 0, 15 do r[v + 1] = math.sin(0.3 * t + v) end
    rows[#rows + 1] = r
  end
  return pt.tensor(rows)
end

local function range(a, b)
  local p = {}
  for t = a, b - 1 do p[#p + 1] = t end
  return p
end

return {
  bundled_paths_and_counts = function(T)
    local p = data.paths()
    local paths, counts = data.list(p.train)
    T.eq(#paths, 2)
    T.eq(counts, { 811082, 680207 })
    T.eq(data.shard_info(paths[1]), 811082)
    local val = data.read(p.val)
    T.eq(#val, 117937)
    T.eq(val:get(0), data.BOS)
    T.eq(#data.docs(val), 119)
    T.eq(data.sha256_file(p.tokenizer), "4f5e8adb109c66b4886963bc75a7befd73bda36d27fd7102df8e9e66503b0e2a")
    T.eq(data.sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  end,

  byte_tables_match_normalized_text = function(T)
    local p = data.paths()
    local tok = data.tokenizer(p.tokenizer)
    T.eq(tok:vocab_size(), 1024)
    T.eq(tok:piece_type(4), "byte")
    T.eq(tok:piece_type(1), "control")
    T.eq(tok:id("\u{2581}"), 939)
    local bt = tok:byte_tables()
    T.eq({ bt:entry(939) }, { 0, true, false })
    local the = tok:id("\u{2581}the")
    T.eq(bt:bytes(1, the), 3)
    T.eq(bt:bytes(tok:id("t"), the), 4)
    local want = read_json_number(data.root() .. "/data/sample/meta.json", "val_norm_bytes")
    T.eq(bt:sum(data.read(p.val)), want)
    T.eq(want, 312092)
    T.eq(tok:byte_tables(8192):size(), 8192)
    T.raises(function() tok:byte_tables(512) end, "the model's vocabulary (512) is smaller than the tokenizer's (1024")
    T.raises(function() bt:sum(data.tokens { 1, 5, 2000 }, "x.bin") end,
      "token 2000 at position 2 of x.bin is outside the vocabulary (1024)")
  end,

  shard_write_read_and_errors = function(T)
    local dir = tmpdir()
    local toks = data.tokens { 1, 300, 301, 1, 302 }
    toks:write(dir .. "/fineweb_val_000000.bin")
    T.eq(data.read_shard(dir .. "/fineweb_val_000000.bin"):totable(), { 1, 300, 301, 1, 302 })
    local f = assert(io.open(dir .. "/fineweb_val_000001.bin", "wb"))
    f:write(string.pack("<i4i4i4", 12345, 1, 5), string.rep("\0", 1012 + 10))
    f:close()
    T.raises(function() data.read_shard(dir .. "/fineweb_val_000001.bin") end,
      "fineweb_val_000001.bin: bad magic 12345 (expected 20240520)")
    T.raises(function() data.read(dir .. "/fineweb_val_*.bin") end, "bad magic 12345")
    f = assert(io.open(dir .. "/short.bin", "wb"))
    f:write(string.pack("<i4i4i4", 20240520, 1, 5), string.rep("\0", 1012 + 4))
    f:close()
    T.raises(function() data.read_shard(dir .. "/short.bin") end, "short.bin: size mismatch: file is 1028 bytes")
    T.raises(function() data.read(dir .. "/none_*.bin") end, "no token shards match")
    T.raises(function() data.tokenizer(dir .. "/short.bin") end, "short.bin")
    os.execute("rm -rf '" .. dir .. "'")
  end,

  stream_resume_exact = function(T)
    local p = data.paths()
    local s = data.stream(p.train)
    T.eq(s:total(), 811082 + 680207)
    local first = s:next_batch(1024, 0, 1)
    T.eq(#first, 1025)
    T.eq(first:get(0), data.BOS)
    s:take(811082 - 1025 - 10) -- up to 10 tokens before the shard boundary
    local sh, off = s:pos()
    T.eq({ sh, off }, { 0, 811072 })
    local a = s:next_batch(16, 1, 2) -- spans into the second shard
    local s2 = data.stream(p.train)
    s2:set_pos(sh, off)
    T.eq(s2:next_batch(16, 1, 2):totable(), a:totable())
    T.eq({ s:pos() }, { s2:pos() })
    -- the token tensor for the model
    local x = first:tensor(0, 4)
    T.eq(x:dtype(), "i64")
    T.eq(x[1]:item(), data.BOS)
  end,

  ledger_legal_score_then_grant = function(T)
    local led = small_ledger(true)
    T.eq(#led, 101)
    local total = 0
    for a = 1, 100, 20 do
      local b = math.min(a + 20, 101)
      total = total + led:score(range(a, b), logits_for(a, b), { temperature = 1.0 })
      local g = led:grant(a, b)
      T.eq(#g, b - a + 1)
    end
    local r = led:report()
    T.eq({ r.verdict, r.targets, r.scored_once, r.scored_never, r.trained }, { "legal", 100, 100, 0, 100 })
    T.near(r.nll_sum, total, 1e-9)
    T.near(r.bpb, r.nll_sum / (math.log(2) * r.byte_sum), 1e-12)
    assert(data.format_bpb(r, "ttt"):find("[ledger LEGAL: 100 targets, 100 scored once", 1, true))
  end,

  ledger_nll_against_direct_computation = function(T)
    local led = small_ledger(true)
    local toks = led:tokens()
    local sum, nll = led:score({ 5, 6 }, logits_for(5, 7), { softcap = 0.5, temperature = 0.7, nll = true })
    for i, t in ipairs { 5, 6 } do
      local y = toks:get(t)
      local z, mx = {}, -math.huge
      for v = 0, 15 do
        -- the logits pass through f32 in the tensor
        local f = string.unpack("<f", string.pack("<f", math.sin(0.3 * t + v)))
        z[v] = 0.5 * math.tanh(f / 0.5) / 0.7
        mx = math.max(mx, z[v])
      end
      local s = 0
      for v = 0, 15 do s = s + math.exp(z[v] - mx) end
      T.near(nll[i], mx + math.log(s) - z[y], 1e-12)
    end
    T.near(sum, nll[1] + nll[2], 1e-12)
    -- packed f32 logits work too
    local packed = {}
    for v = 0, 15 do packed[#packed + 1] = string.pack("<f", math.sin(0.3 * 7 + v)) end
    local s7 = led:score({ 7 }, table.concat(packed), { vocab = 16 })
    local lse = 0
    for v = 0, 15 do lse = lse + math.exp(string.unpack("<f", packed[v + 1])) end
    T.near(s7, math.log(lse) - string.unpack("<f", packed[toks:get(7) + 1]), 1e-12)
  end,

  ledger_legal_mode_raises = function(T)
    local led = small_ledger(true)
    led:score(range(1, 21), logits_for(1, 21))
    T.raises(function() led:score({ 20 }, logits_for(20, 21)) end, "target position 20 of small_val is scored a second time")
    T.raises(function() led:grant(1, 22) end, "target position 21 of small_val has not been scored yet")
    T.raises(function() led:score({ 21 }, logits_for(21, 22), { rescale = 0.98 }) end, "NLL rescaled by 0.98")
    T.raises(function() led:score({ 21, 22 }, logits_for(21, 22)) end, "2 positions but 1 rows of logits")
    T.raises(function() led:score({ 0 }, logits_for(0, 1)) end, "target position 0 (row 0) is outside 1..100")
    T.raises(function() led:score({ 21 }, logits_for(21, 22):to("f64")) end, "logits must be a contiguous f32 CPU tensor")
    local r = led:report()
    T.eq({ r.verdict, r.scored_once, r.trained }, { "legal", 20, 0 })
  end,

  ledger_adversarial_runs_are_illegal = function(T)
    -- score twice
    local led = small_ledger(false)
    led:score(range(1, 101), logits_for(1, 101))
    led:score(range(50, 60), logits_for(50, 60))
    local r = led:report()
    T.eq({ r.verdict, r.scored_once, r.scored_multiple, r.duplicate_scorings }, { "illegal", 90, 10, 10 })
    -- training on an unscored chunk (pre-quant TTT on val)
    led = small_ledger(false)
    led:grant(1, 101)
    led:score(range(1, 101), logits_for(1, 101))
    r = led:report()
    T.eq({ r.verdict, r.trained_before_scored, r.scored_once }, { "illegal", 100, 100 })
    -- off-by-one grant at each chunk edge
    led = small_ledger(false)
    for a = 1, 100, 25 do
      led:score(range(a, a + 25), logits_for(a, a + 25))
      led:grant(a, math.min(a + 26, 101))
    end
    r = led:report()
    T.eq({ r.verdict, r.trained_before_scored }, { "illegal", 3 })
    T.eq({ led:position(26) }, { 1, true, true })
    -- second epoch rescoring
    led = small_ledger(false)
    for _ = 1, 2 do
      for a = 1, 100, 50 do
        led:score(range(a, a + 50), logits_for(a, a + 50))
        led:grant(a, a + 50)
      end
    end
    r = led:report()
    T.eq({ r.verdict, r.scored_multiple, r.scored_once, r.trained_before_scored }, { "illegal", 100, 0, 0 })
    -- NLL x 0.98
    led = small_ledger(false)
    local ref = small_ledger(true)
    led:score(range(1, 101), logits_for(1, 101), { rescale = 0.98 })
    ref:score(range(1, 101), logits_for(1, 101))
    r = led:report()
    T.eq({ r.verdict, r.nll_rescaled }, { "illegal", 100 })
    T.near(r.nll_sum, 0.98 * ref:report().nll_sum, 1e-9)
    -- external NLLs: counted, legal; merge of disjoint halves equals one ledger
    local a, b = small_ledger(true), small_ledger(true)
    a:score(range(1, 51), logits_for(1, 51))
    b:score_nll(range(51, 101), (function() local t = {} for i = 1, 50 do t[i] = 2.0 end return t end)())
    a:merge(b)
    r = a:report()
    T.eq({ r.verdict, r.scored_once, r.nll_external }, { "legal", 100, 50 })
    assert(data.format_bpb(r):find("50 NLLs supplied externally", 1, true))
    T.raises(function() a:merge(ref) end, "was scored in both ledgers")
  end,

  encode_text_with_spm = function(T)
    local dir = tmpdir()
    local f = assert(io.open(dir .. "/t.txt", "w"))
    f:write("In the beginning God created the heaven and the earth.\n\nAnd the earth was without form.\n")
    f:close()
    local ok, toks = pcall(data.encode_file, dir .. "/t.txt")
    os.execute("rm -rf '" .. dir .. "'")
    if not ok and tostring(toks):find("spm_encode failed", 1, true) then T.skip("spm_encode is not installed") end
    assert(ok, toks)
    local docs = data.docs(toks)
    T.eq(#docs, 2)
    T.eq(toks:get(0), data.BOS)
    -- the sum of bytes equals the normalized text's length (BOS targets count 0)
    local bt = data.tokenizer(data.paths().tokenizer):byte_tables()
    T.eq(bt:sum(toks), #"In the beginning God created the heaven and the earth." + #"And the earth was without form.")
  end,
}
