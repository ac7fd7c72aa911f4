-- tests/lua/test_eval.lua — proteus.eval: standard (§1.4) and sliding-window (§1.5) evaluation
-- through the score-first ledger, with small deterministic fake models (no dependency on nn.lua).
--
--   build/proteus tests/run.lua tests/lua/test_eval.lua
--
-- Oracle: for every scored target the test recomputes, in plain Lua f64, the logits row the fake
-- model gives in the window that scores it, the softcapped log-softmax NLL and the §1.3 bytes, and
-- compares Σℓ / (ln 2 · Σbytes) with what came through the ledger.
local pt = require "proteus"
local data = require "proteus.data"
local eval = require "proteus.eval"

local V = 16
local LN2 = math.log(2)

local function f32(x) return (string.unpack("<f", string.pack("<f", x))) end

-- embedding table E[a][v] (values already f32)
local E = {}
for a = 0, V - 1 do
  E[a] = {}
  for v = 0, V - 1 do E[a][v] = f32(2 * math.sin(1.3 * a + 0.7 * v + 0.1 * a * v)) end
end
local Et
do
  local rows = {}
  for a = 0, V - 1 do
    rows[a + 1] = {}
    for v = 0, V - 1 do rows[a + 1][v + 1] = E[a][v] end
  end
  Et = pt.tensor(rows)
end

-- fake causal model: row (b, j) = E[x_j] + 0.5·E[x_{j-1}] (j >= 1), E[x_0] + 0.5·E[x_0] for j = 0,
-- so a target's logits depend on where its window starts
local calls = 0
local function fake_logits(x)
  calls = calls + 1
  local B, T = x:size(1), x:size(2)
  local prev = T > 1 and pt.cat({ x:narrow(2, 1, 1), x:narrow(2, 1, T - 1) }, 2) or x
  local a = Et:index_select(1, x:reshape({ B * T }))
  local p = Et:index_select(1, prev:contiguous():reshape({ B * T }))
  return a + p * 0.5
end

-- the same model in Lua: the logits row of input j of a window over inputs tok[ws ..]
local function oracle_row(tok, ws, j)
  local a = tok[ws + j]
  local p = j >= 1 and tok[ws + j - 1] or a
  local r = {}
  for v = 0, V - 1 do r[v] = f32(E[a][v] + 0.5 * E[p][v]) end
  return r
end

local function tanh(x)
  local e = math.exp(-2 * math.abs(x))
  local t = (1 - e) / (1 + e)
  return x < 0 and -t or t
end

local function oracle_nll(row, y, softcap)
  local z, mx = {}, -math.huge
  for v = 0, V - 1 do
    z[v] = softcap > 0 and softcap * tanh(row[v] / softcap) or row[v]
    if z[v] > mx then mx = z[v] end
  end
  local s = 0
  for v = 0, V - 1 do s = s + math.exp(z[v] - mx) end
  return mx + math.log(s) - z[y]
end

-- Σℓ, Σbytes, count over a list of {ws, j} scorings (target t = ws + j + 1)
local function oracle(val, tok, scorings, softcap)
  local nll, bytes = 0, 0
  for _, sc in ipairs(scorings) do
    local ws, j = sc[1], sc[2]
    local t = ws + j + 1
    nll = nll + oracle_nll(oracle_row(tok, ws, j), tok[t], softcap)
    bytes = bytes + val.tables:bytes(tok[t - 1], tok[t])
  end
  return { loss = nll / #scorings, bpb = nll / (LN2 * bytes), n = #scorings }
end

-- a synthetic validation set of N tokens (ids < 16, a BOS every 37) with the sp1024 byte tables
local tokenizer
local function synth_val(N, name)
  tokenizer = tokenizer or data.tokenizer(data.paths().tokenizer)
  local ids, tok = {}, {}
  for i = 0, N - 1 do
    local id = (i % 37 == 0) and 1 or (4 + (i * i * 7 + 3 * i) % 12)
    ids[#ids + 1] = id
    tok[i] = id
  end
  return { tokens = data.tokens(ids), tables = tokenizer:byte_tables(), name = name or "synth_val" }, tok
end

local function rel_near(T, got, want, tol, what)
  T.near(got, want, tol * math.abs(want), what)
end

local QUIET = { log = false }
local function with(opts)
  local o = { log = false }
  for k, v in pairs(opts) do o[k] = v end
  return o
end

return {
  standard_truncates_and_matches_oracle = function(T)
    local val, tok = synth_val(401) -- M = 400 targets, T = 64: 6 windows, 384 scored, 16 never
    local r = eval.standard(val, fake_logits, with { seq_len = 64, batch_seqs = 4 })
    T.eq({ r.windows, r.scored, r.tokens_used }, { 6, 384, 385 })
    local rep = r.report
    T.eq({ rep.verdict, rep.targets, rep.scored_once, rep.scored_never, rep.scored_multiple, rep.token_count },
      { "legal", 400, 384, 16, 0, 384 })
    local sc = {}
    for w = 0, 5 do
      for j = 0, 63 do sc[#sc + 1] = { w * 64, j } end
    end
    local want = oracle(val, tok, sc, 30)
    rel_near(T, r.loss, want.loss, 1e-12, "loss")
    rel_near(T, r.bpb, want.bpb, 1e-12, "bpb")
    T.eq(r.bpb, rep.bpb)
    T.eq(r.seq_len, 64)
    assert(r.line:find("^standard val_loss:%d%.%d+ val_bpb:%d%.%d+ %[ledger LEGAL: 400 targets, 384 scored once, 16 never"),
      r.line)
  end,

  sliding_stride_T_equals_standard = function(T)
    local val = synth_val(401) -- 400 targets = 4 windows of 100
    local a = eval.standard(val, fake_logits, with { seq_len = 100, batch_seqs = 3 })
    local b = eval.sliding(val, fake_logits, with { seq_len = 100, stride = 100 })
    local c = eval.sliding(val, fake_logits, with { seq_len = 100, stride = 100, batch_seqs = 1 })
    T.near(b.loss, a.loss, 1e-12, "loss")
    T.near(b.bpb, a.bpb, 1e-12, "bpb")
    T.eq(b.bpb, a.bpb) -- same rows in the same order: bit for bit
    T.eq(c.bpb, a.bpb)
    T.eq({ b.report.scored_once, b.report.scored_never, b.windows }, { 400, 0, 4 })
  end,

  sliding_scores_each_target_once = function(T)
    -- (N, T, s): stride dividing / not dividing, val shorter than T, exactly T, stride 1
    for _, case in ipairs { { 401, 64, 16 }, { 401, 64, 24 }, { 300, 50, 7 }, { 40, 64, 16 }, { 65, 64, 16 },
      { 66, 64, 16 }, { 120, 32, 1 }, { 257, 64, 64 }, { 2, 8, 3 } } do
      local N, Tq, s = case[1], case[2], case[3]
      local val, tok = synth_val(N)
      local led = data.ledger(val.tokens, val.tables, { legal = true, name = "synth_val" })
      local r = eval.sliding(val, fake_logits, with { seq_len = Tq, stride = s, batch_seqs = 5, ledger = led })
      local rep = led:report()
      local what = string.format("N=%d T=%d s=%d", N, Tq, s)
      T.eq({ rep.scored_once, rep.scored_never, rep.scored_multiple, rep.verdict },
        { N - 1, 0, 0, "legal" }, what)
      for t = 1, N - 1 do T.eq(led:position(t), 1, what .. " position " .. t) end
      -- oracle: input i = t-1 is scored by window 0 when i < T, else by window k = (i - T) // s + 1
      local sc = {}
      for i = 0, N - 2 do
        local ws = i < Tq and 0 or ((i - Tq) // s + 1) * s
        sc[#sc + 1] = { ws, i - ws }
      end
      local want = oracle(val, tok, sc, 30)
      rel_near(T, r.bpb, want.bpb, 1e-12, what)
      rel_near(T, r.loss, want.loss, 1e-12, what)
      T.eq(r.ledger, led)
      local plan = eval.sliding_plan(N - 1, Tq, s)
      T.eq(r.windows, plan.count, what)
    end
  end,

  sliding_context_changes_the_score = function(T)
    -- with s < T most targets see a longer context than in the standard eval: a different loss
    local val = synth_val(401)
    local a = eval.standard(val, fake_logits, with { seq_len = 100 })
    local b = eval.sliding(val, fake_logits, with { seq_len = 100, stride = 25 })
    assert(math.abs(a.loss - b.loss) > 1e-6, "sliding and standard should differ for this model")
    T.eq(b.report.scored_once, 400)
  end,

  sliding_window_plan_counts = function(T)
    local p = eval.sliding_plan(6400, 2048, 64)
    T.eq(p.count, 1 + (6400 - 2048) // 64) -- 69: the last full window ends at N
    T.eq({ p.window(0) }, { 0, 2048, 0 })
    T.eq({ p.window(68) }, { 4352, 2048, 1984 })
    p = eval.sliding_plan(6430, 2048, 64) -- a short last window scoring 30 targets
    T.eq(p.count, 70)
    T.eq({ p.window(69) }, { 4416, 2014, 1984 })
    local q = eval.sliding_plan(6400, 2048, 64, true)
    T.eq(q.count, 100)
    T.eq({ q.window(99) }, { 6336, 64, 0 })
    T.eq({ q.window(80) }, { 5120, 1280, 1216 })
    T.eq(eval.sliding_plan(6430, 2048, 64, true).count, 101)
    T.eq(eval.sliding_plan(6430, 2048, 64, "598").count, 100)
    T.eq(eval.standard_plan(6430, 2048).count, 3)
  end,

  records_quirk_rescoring_counted = function(T)
    -- spec §1.5: N a multiple of 64, T = 2048, s = 64: 31 tail windows re-score the final 64 targets
    local val, tok = synth_val(6401) -- M = 6400 targets
    local r = eval.sliding(val, fake_logits, with { seq_len = 2048, stride = 64, records_quirk = true })
    local rep = r.report
    T.eq({ rep.verdict, rep.legal_mode, rep.targets, rep.scored_once, rep.scored_never, rep.scored_multiple,
      rep.duplicate_scorings, rep.token_count }, { "illegal", false, 6400, 6336, 0, 64, 1984, 6400 + 1984 })
    T.eq(r.windows, 100)
    T.eq(r.records_quirk, true)
    assert(r.line:find("^sliding_records_quirk .*%[ledger ILLEGAL: 6400 targets, 6336 scored once, 0 never, 64 more than once"),
      r.line)
    -- the number matches the records' rule, duplicates included
    local sc = {}
    for k = 0, 99 do
      local ws = 64 * k
      local wlen = math.min(2048, 6400 - ws)
      local from = k == 0 and 0 or math.max(wlen - 64, 0)
      for j = from, wlen - 1 do sc[#sc + 1] = { ws, j } end
    end
    T.eq(#sc, 6400 + 1984)
    rel_near(T, r.bpb, oracle(val, tok, sc, 30).bpb, 1e-12, "quirk bpb")
    -- the legal sliding eval of the same set scores each target once
    local l = eval.sliding(val, fake_logits, with { seq_len = 2048, stride = 64 })
    T.eq({ l.report.verdict, l.report.scored_once, l.report.duplicate_scorings, l.windows }, { "legal", 6400, 0, 69 })
  end,

  records_quirk_598_and_short_tail = function(T)
    -- M = 400 not a multiple of s = 48: #1539 adds a 16-target tail window that re-scores all 16
    local val = synth_val(401)
    local a = eval.sliding(val, fake_logits, with { seq_len = 128, stride = 48, records_quirk = true })
    local b = eval.sliding(val, fake_logits, with { seq_len = 128, stride = 48, records_quirk = "598" })
    T.eq({ a.windows, b.windows }, { 9, 8 })
    T.eq(a.report.verdict, "illegal")
    T.eq(a.report.token_count - b.report.token_count, 16)
    T.eq(b.report.targets, 400)
  end,

  records_quirk_needs_a_non_legal_ledger = function(T)
    local val = synth_val(401)
    local led = data.ledger(val.tokens, val.tables, { legal = true })
    T.raises(function()
      eval.sliding(val, fake_logits, with { seq_len = 128, stride = 16, records_quirk = true, ledger = led })
    end, "records_quirk re-scores the final targets, which a legal-mode ledger refuses; pass a ledger opened with legal=false")
    local other = synth_val(300)
    T.raises(function()
      eval.sliding(val, fake_logits, with { seq_len = 128, stride = 16, ledger = data.ledger(other.tokens, other.tables) })
    end, "opts.ledger covers 300 tokens but the validation set synth_val has 401")
    T.raises(function() eval.sliding(val, fake_logits, with { seq_len = 128, stride = 16, records_quirk = "yes" }) end,
      "opts.records_quirk must be false, true (= \"1539\") or \"598\", got yes")
  end,

  rank_split_merges_to_the_whole = function(T)
    local val = synth_val(1001)
    for _, mode in ipairs { "standard", "sliding" } do
      local o = { seq_len = 64, stride = 16 }
      local whole = eval[mode](val, fake_logits, with(o))
      local leds, scored = {}, 0
      for rank = 0, 2 do
        leds[rank] = data.ledger(val.tokens, val.tables, { name = "synth_val" })
        local r = eval[mode](val, fake_logits, with { seq_len = 64, stride = 16, rank = rank, world = 3, ledger = leds[rank] })
        scored = scored + r.scored
      end
      T.eq(scored, whole.scored, mode)
      leds[0]:merge(leds[1]):merge(leds[2])
      local m = leds[0]:report()
      T.eq({ m.scored_once, m.scored_never, m.scored_multiple, m.verdict },
        { whole.report.scored_once, whole.report.scored_never, 0, "legal" }, mode)
      rel_near(T, m.bpb, whole.bpb, 1e-12, mode)
    end
    T.raises(function() eval.standard(val, fake_logits, with { seq_len = 64, rank = 3, world = 3 }) end,
      "opts.rank = 3 is outside [0, world = 3)")
  end,

  softcap_zero_and_temperature = function(T)
    local val, tok = synth_val(201)
    local r = eval.standard(val, fake_logits, with { seq_len = 50, softcap = 0 })
    local sc = {}
    for w = 0, 3 do
      for j = 0, 49 do sc[#sc + 1] = { w * 50, j } end
    end
    rel_near(T, r.bpb, oracle(val, tok, sc, 0).bpb, 1e-12, "no softcap")
    local c = eval.standard(val, fake_logits, with { seq_len = 50 })
    assert(math.abs(c.bpb - r.bpb) > 1e-9, "the softcap changes the score")
  end,

  logits_layouts_and_devices = function(T)
    local val = synth_val(201)
    local base = eval.sliding(val, fake_logits, with { seq_len = 50, stride = 10 })
    -- [B, T, V] logits, f64 logits: the same numbers
    local r3 = eval.sliding(val, function(x)
      return fake_logits(x):reshape({ x:size(1), x:size(2), V })
    end, with { seq_len = 50, stride = 10 })
    T.eq(r3.bpb, base.bpb)
    local r64 = eval.sliding(val, function(x) return fake_logits(x):to("f64") end, with { seq_len = 50, stride = 10 })
    T.eq(r64.bpb, base.bpb)
  end,

  batches_are_padded_windows = function(T)
    local val = synth_val(101)
    local shapes = {}
    eval.sliding(val, function(x)
      shapes[#shapes + 1] = x:size(1) .. "x" .. x:size(2)
      T.eq(x:dtype(), "i64")
      if #shapes == 3 then -- the last batch: windows at 60 (len 32) and 70 (len 30, right-padded with 0)
        local rows = x:totable()
        T.eq(rows[1][1], val.tokens:get(60))
        T.eq(rows[2][1], val.tokens:get(70))
        T.eq(rows[2][30], val.tokens:get(99))
        T.eq({ rows[2][31], rows[2][32] }, { 0, 0 })
      end
      return fake_logits(x)
    end, with { seq_len = 32, stride = 10, batch_seqs = 3 })
    -- 100 targets, T = 32, s = 10: windows 0, 10, ..., 70 (ws + 22 < 100) --> 8 windows in batches of 3
    T.eq(shapes, { "3x32", "3x32", "2x32" })
  end,

  short_validation_set_errors = function(T)
    local val = synth_val(1500, "fineweb_val_*.bin")
    T.raises(function() eval.standard(val, fake_logits, with { seq_len = 2048 }) end,
      "validation set fineweb_val_*.bin has 1500 tokens, fewer than one window of T=2048+1; use a smaller eval_seq_len")
    T.raises(function() eval.standard(val, fake_logits, with { seq_len = 1500 }) end,
      "has 1500 tokens, fewer than one window of T=1500+1; use a smaller eval_seq_len (at most 1499)")
    local ok = eval.standard(val, fake_logits, with { seq_len = 1499 })
    T.eq(ok.report.scored_once, 1499)
    -- sliding needs no full window: one short window scores all 1499 targets
    local s = eval.sliding(val, fake_logits, with { seq_len = 2048, stride = 64 })
    T.eq({ s.windows, s.report.scored_once }, { 1, 1499 })
  end,

  option_errors_name_the_value = function(T)
    local val = synth_val(101)
    T.raises(function() eval.standard(val, fake_logits, QUIET) end, "eval.standard: opts.seq_len is required")
    T.raises(function() eval.standard(val, fake_logits, with { seq_len = 0 }) end, "opts.seq_len = 0 must be >= 1")
    T.raises(function() eval.standard(val, fake_logits, with { seq_len = 2.5 }) end,
      "opts.seq_len must be an integer, got 2.5")
    T.raises(function() eval.sliding(val, fake_logits, with { seq_len = 32 }) end, "eval.sliding: opts.stride is required")
    T.raises(function() eval.sliding(val, fake_logits, with { seq_len = 32, stride = 33 }) end,
      "opts.stride = 33 is larger than seq_len = 32; use a stride in 1..32")
    T.raises(function() eval.sliding(val, fake_logits, with { seq_len = 32, stride = 0 }) end, "opts.stride = 0 must be >= 1")
    T.raises(function() eval.standard(val, fake_logits, with { seq_len = 32, softcap = -1 }) end,
      "opts.softcap must be a number >= 0 (0 = no softcap), got -1")
    T.raises(function() eval.standard(val, fake_logits, with { seq_len = 32, batch_seqs = 0 }) end,
      "opts.batch_seqs = 0 must be >= 1")
    T.raises(function() eval.standard({}, fake_logits, with { seq_len = 32 }) end,
      "val must be the table of data.open_val (fields tokens and tables)")
    T.raises(function() eval.standard(val, 42, with { seq_len = 32 }) end, "logits_fn must be a function")
    T.raises(function()
      eval.standard(val, function(x) return pt.zeros({ 5, V }) end, with { seq_len = 32, batch_seqs = 2 })
    end, "logits_fn returned a tensor of shape [5, 16] for inputs [2, 32]; expected [64, V]")
    T.raises(function() eval.standard(val, function() return "x" end, with { seq_len = 32 }) end,
      "logits_fn returned string")
    -- a model with fewer columns than the token ids: the ledger names the target
    T.raises(function()
      eval.standard(val, function(x) return pt.zeros({ x:size(1) * x:size(2), 4 }) end, with { seq_len = 32 })
    end, "is outside the logits' 4 columns")
  end,

  prints_bpb_with_verdict = function(T)
    local val = synth_val(101)
    local lines = {}
    local r = eval.standard(val, fake_logits, { seq_len = 50, log = function(s) lines[#lines + 1] = s end,
      label = "final_roundtrip" })
    T.eq(#lines, 1)
    assert(lines[1]:find("^final_roundtrip val_loss:%d%.%d%d%d%d%d%d%d%d val_bpb:%d%.%d+ %[ledger LEGAL: 100 targets, "
      .. "100 scored once, 0 never, 0 more than once, 0 trained before scored, 0 rescaled%] eval_time:%d+ms$"), lines[1])
    T.eq(lines[1]:sub(1, #r.line), r.line)
  end,

  bundled_val_bigram = function(T)
    -- the real sample with the sp1024 tables and a bigram model (log-probabilities as logits, no
    -- softcap): the NLL of each target is exactly -log p(y | x), whatever the window
    local val = data.open_val {}
    local toks = val.tokens:totable()
    local N = #toks
    local counts = {}
    for i = 1, N - 1 do
      local k = toks[i] * 1024 + toks[i + 1]
      counts[k] = (counts[k] or 0) + 1
    end
    local Vb = 1024
    local rows, logp = {}, {}
    for a = 0, Vb - 1 do
      local r, tot = {}, 0
      for y = 0, Vb - 1 do tot = tot + (counts[a * 1024 + y] or 0) + 0.1 end
      for y = 0, Vb - 1 do r[y + 1] = f32(math.log(((counts[a * 1024 + y] or 0) + 0.1) / tot)) end
      rows[a + 1] = r
      logp[a] = r
    end
    local W = pt.tensor(rows)
    local function bigram(x) return W:index_select(1, x:reshape({ x:size(1) * x:size(2) })) end
    -- oracle over targets [1, last]: Σ -log softmax(row)[y] with the f32 row
    local lse = {}
    local function nll(a, y)
      if not lse[a] then
        local s = 0
        for v = 1, Vb do s = s + math.exp(logp[a][v]) end
        lse[a] = math.log(s)
      end
      return lse[a] - logp[a][y + 1]
    end
    local function oracle_bpb(last)
      local s, b = 0, 0
      for t = 1, last do
        s = s + nll(toks[t], toks[t + 1])
        b = b + val.tables:bytes(toks[t], toks[t + 1])
      end
      return s / (LN2 * b)
    end
    T.eq(N, 117937)
    local st = eval.standard(val, bigram, with { seq_len = 4096, softcap = 0 })
    T.eq({ st.windows, st.report.scored_once, st.report.scored_never }, { 28, 28 * 4096, 117936 - 28 * 4096 })
    rel_near(T, st.bpb, oracle_bpb(28 * 4096), 1e-12, "standard bpb")
    local sl = eval.sliding(val, bigram, with { seq_len = 4096, stride = 2048, softcap = 0 })
    T.eq({ sl.report.scored_once, sl.report.scored_never }, { 117936, 0 })
    rel_near(T, sl.bpb, oracle_bpb(117936), 1e-12, "sliding bpb")
    assert(sl.bpb > 1 and sl.bpb < 4, "a bigram on English text: " .. sl.bpb)
  end,
}
