--- proteus.ttt — test-time training on the validation stream, every token through the score-first
--- ledger: per-document LoRA TTT (PROTEUS v9, with DeepQuant V10b's options), chunked full-model TTT
--- (#598) and pre-quant TTT (#1539). Spec ../shared/spec/parameter-golf.md §3.7, §4.4, §5.5, §6.1–6.2,
--- §7; the rules and each variant's verdict: docs/ledger.md.
--
--   local ttt = require "proteus.ttt"
--   local val = data.open_val{vocab = 1024}                    -- legal ledger (default)
--   local r = ttt.lora_eval(model, val, ttt.presets.v9)        -- PROTEUS v9: ends "legal"
--   local val2 = data.open_val{vocab = 1024, legal = false}
--   local d = ttt.lora_eval(model, val2, ttt.presets.deepquant_v10b)  -- ends "illegal", d.submission_bpb
--   local f = ttt.chunked_full(model, val, {seq_len = 2048, stride = 64, chunk_tokens = 32768})  -- #598
--   ttt.prequant(model, val2, {epochs = 6}); ... quantize ...; eval.sliding(val2, fn, {ledger = val2.ledger, ...})
--
-- The ledger: opts.ledger, else val.ledger (data.open_val opens one), else a fresh legal one over
-- val.tokens. Every scored NLL is computed by the ledger from logits (ledger:score); every training
-- target is obtained through ledger:grant, which in legal mode refuses unscored targets. The
-- variants that break the rules (multi-epoch rescoring, NLL×0.98, training before scoring) refuse to
-- run on a legal-mode ledger and, on a legal=false one, run and end with an "illegal" verdict.
--
-- Positions are the ledger's (0-based token index t, target t predicts tokens[t] from tokens[t-1]).
-- A document {start = s, len = n} (data.docs: it includes the next document's BOS) has P = n - 1
-- predictions; prediction j (0-based) reads input token s + j and is ledger target s + j + 1.
--
-- Every function logs the time and throughput of its phases through opts.log (default print;
-- false = silent) and takes opts.budget_seconds, a wallclock budget for the whole call: past it,
-- LoRA TTT scores the remaining documents with the base model, chunked TTT stops training (it still
-- scores every chunk), pre-quant TTT stops its epochs.
--
-- The base model's weights: lora_eval never changes them (their requires_grad is switched off while
-- it runs and restored after); chunked_full and prequant train them in place.
--
-- Tests: build/proteus tests/run.lua tests/lua/test_ttt.lua (PyTorch reference of a LoRA step:
-- tests/reference/lora_ttt_ref.py).
local pt = require "proteus"
local F = require "proteus.functional"
local nn = require "proteus.nn"
local data = require "proteus.data"
local eval = require "proteus.eval"
local optim = require "proteus.optim"
local sched = require "proteus.schedule"

local ok_host, host = pcall(require, "proteus._host")
local clock = ok_host and host.clock or os.clock

local ttt = {}

--- Option sets of the submissions (spec §3.7 and §6.1–6.2). Copy and override.
ttt.presets = {
  -- PROTEUS v9 / PR #77 pattern (§3.7)
  v9 = {
    chunk_size = 256, eval_seq_len = 1024, batch_docs = 64, short_doc_len = 512, min_doc_len = 2,
    lora_rank = 8, head_rank = 8, lr = 0.01, betas = { 0.9, 0.95 }, eps = 1e-10, epochs = 1,
  },
  -- DeepQuant V10b as run (TTT_EPOCHS=8, TTT_MAX_EVAL_SECS=350) with the final head's zigzag and
  -- 50,000-token cap (§6.1–6.2). Needs a ledger opened with legal = false.
  deepquant_v10b = {
    chunk_size = 256, eval_seq_len = 1024, batch_docs = 64, short_doc_len = 512, min_doc_len = 2,
    lora_rank = 8, head_rank = 16, lr = 0.01, lrs = { q = 0.005, v = 0.015, head = 0.02, bias = 0.03 },
    betas = { 0.9, 0.95 }, eps = 1e-10, epochs = 8, reset_between_epochs = false, bias_tuning = true,
    cosine = true, cosine_floor = 0.1, nll_scale = 0.98, max_eval_seconds = 350, zigzag = true,
    max_doc_len = 50000,
  },
}

-- ---------------------------------------------------------------------------------------------
-- helpers
-- ---------------------------------------------------------------------------------------------

local function fail(fmt, ...) error(string.format(fmt, ...), 3) end

local function get_int(fn, opts, key, default, min)
  local v = opts[key]
  if v == nil then v = default end
  if type(v) == "number" and v == math.floor(v) then v = math.tointeger(v) end
  if math.type(v) ~= "integer" then fail("%s: opts.%s must be an integer, got %s", fn, key, tostring(opts[key])) end
  if v < min then fail("%s: opts.%s = %d must be >= %d", fn, key, v, min) end
  return v
end

local function get_num(fn, opts, key, default, min)
  local v = opts[key]
  if v == nil then v = default end
  if type(v) ~= "number" or v ~= v then fail("%s: opts.%s must be a number, got %s", fn, key, tostring(opts[key])) end
  if min and v < min then fail("%s: opts.%s = %s must be >= %s", fn, key, tostring(v), tostring(min)) end
  return v
end

-- unknown option keys are errors naming the nearest known key (a typo must not silently change a run)
local function check_keys(fn, opts, known)
  local list = {}
  for k in pairs(known) do list[#list + 1] = k end
  table.sort(list)
  for k in pairs(opts) do
    if not known[k] then
      fail("%s: unknown option '%s' (did you mean '%s'?)", fn, tostring(k), nn.nearest(tostring(k), list))
    end
  end
end

local function keyset(s)
  local r = {}
  for k in s:gmatch("[%w_]+") do r[k] = true end
  return r
end

local COMMON_KEYS = "ledger log label budget_seconds world rank "
local LORA_KEYS = keyset(COMMON_KEYS .. [[chunk_size eval_seq_len batch_docs short_doc_len min_doc_len max_doc_len
  lora_rank head_rank lr lrs betas eps bias_tuning epochs reset_between_epochs cosine cosine_floor nll_scale
  temperature zigzag adapt base_batch_seqs max_eval_seconds lora_seed]])
local CHUNKED_KEYS = keyset(COMMON_KEYS .. [[seq_len stride chunk_tokens epochs lr momentum clip freeze batch_seqs
  train_batch_seqs verbose qat]])
local PREQUANT_KEYS = keyset(COMMON_KEYS .. [[seq_len batch_tokens epochs lr lr_min betas eps weight_decay clip
  freeze train_batch_seqs]])

local function check_args(fn, model, val, opts)
  if type(model) ~= "table" or type(model.logits) ~= "function" or type(model.cfg) ~= "table" then
    fail("%s: model must be an nn.GPT (with :logits and .cfg), got %s", fn, type(model))
  end
  if type(val) ~= "table" or val.tokens == nil or val.tables == nil then
    fail("%s: val must be the table of data.open_val (fields tokens, tables, ledger), got %s", fn, type(val))
  end
  if opts ~= nil and type(opts) ~= "table" then fail("%s: opts must be a table, got %s", fn, type(opts)) end
  return opts or {}
end

local function val_name(val)
  if val.paths and val.paths.val then return (val.paths.val:match("[^/]*$")) end
  return "the validation set"
end

-- the ledger of a call: opts.ledger, val.ledger, or a fresh legal one
local function resolve_ledger(fn, val, opts)
  local ledger = opts.ledger or val.ledger
  if ledger == nil then
    ledger = data.ledger(val.tokens, val.tables, { legal = true, name = val_name(val) })
  end
  if #ledger ~= #val.tokens then
    fail("%s: the ledger covers %d tokens but val.tokens has %d; open it over val.tokens "
      .. "(data.ledger(val.tokens, val.tables))", fn, #ledger, #val.tokens)
  end
  return ledger
end

local function logger(opts)
  if opts.log == false then return function() end end
  return opts.log or print
end

-- pt.cat over any number of 1-D parts (pt.cat takes at most 256 at a time)
local function cat_many(parts)
  while #parts > 1 do
    local nxt = {}
    for i = 1, #parts, 256 do
      local g = table.move(parts, i, math.min(i + 255, #parts), 1, {})
      nxt[#nxt + 1] = #g == 1 and g[1] or pt.cat(g, 1)
    end
    parts = nxt
  end
  return parts[1]
end

-- The model's device ("cpu" until model:to moved it). Token windows, targets, weights, row indices and
-- LoRA leaves are built on the CPU (so the generator's stream is the same on every device) and moved
-- there; the ledger scores logits on their device (ledger:score), so only the scored rows' NLLs come back.
local function model_device(model) return model.device or "cpu" end
local function on(dev, t)
  if dev ~= "cpu" and t:device() == "cpu" then return t:to(dev) end
  return t
end

-- the ledger's f32 logits: z's rows `rows` (0-based, or all of z when rows is nil), gathered on z's
-- device (ledger:score computes the NLLs there)
local function ledger_logits(z, rows)
  local lg = z:detach()
  if rows then lg = lg:index_select(1, on(lg:device(), pt.tensor(rows, "i64"))) end
  if lg:dtype() ~= "f32" then lg = lg:to("f32") end
  if not lg:is_contiguous() then lg = lg:contiguous() end
  return lg
end

-- i64 [#spans, W] on dev: row r holds tokens[a_r, a_r + n_r) right-padded with token 0
local function input_rows(tokens, spans, W, dev)
  local parts = {}
  for _, sp in ipairs(spans) do
    parts[#parts + 1] = tokens:tensor(sp[1], sp[1] + sp[2])
    if sp[2] < W then parts[#parts + 1] = pt.zeros({ W - sp[2] }, "i64") end
  end
  return on(dev or "cpu", cat_many(parts):reshape({ #spans, W }))
end

-- scores rows (0-based, of z [R, V]) at ledger positions; returns Σ NLL
local function score_rows(ledger, z, rows, positions, sopts)
  return ledger:score(positions, ledger_logits(z, rows), sopts)
end

-- turns requires_grad off for every parameter whose name matches pred; returns the restore function
local function freeze(model, pred)
  local saved = {}
  for name, p in model:named_parameters() do
    if pred(name) and p.requires_grad then
      p.requires_grad = false
      saved[#saved + 1] = p
    end
  end
  return function()
    for _, p in ipairs(saved) do p.requires_grad = true end
  end
end

local function protect(restore, f, ...)
  local res = table.pack(pcall(f, ...))
  restore()
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

local function phase_line(name, n_docs, tokens, secs)
  return string.format("ttt:%s docs:%d tokens:%d time:%.2fs tok/s:%.0f", name, n_docs, tokens, secs,
    tokens / math.max(secs, 1e-9))
end

--- The documents of rank `rank` out of `world` (1-based indices into a list of n documents):
--  contiguous (docs[n·r/W : n·(r+1)/W], §3.7) or zigzag (§6.2: groups of W consecutive documents,
--  every odd-numbered group reversed, then every W-th element starting at r).
function ttt.distribute(n, world, rank, zigzag)
  local out = {}
  if not zigzag then
    for i = n * rank // world + 1, n * (rank + 1) // world do out[#out + 1] = i end
    return out
  end
  local order = {}
  for g = 0, (n - 1) // world do
    local lo, hi = g * world + 1, math.min((g + 1) * world, n)
    if g % 2 == 0 then
      for i = lo, hi do order[#order + 1] = i end
    else
      for i = hi, lo, -1 do order[#order + 1] = i end
    end
  end
  for k = rank + 1, #order, world do out[#out + 1] = order[k] end
  return out
end

-- ---------------------------------------------------------------------------------------------
-- per-document LoRA (independent per batch element) and one TTT step
-- ---------------------------------------------------------------------------------------------

local function uniform_leaf(shape, bound, dev)
  local t = on(dev, pt.rand(shape) * (2 * bound) - bound)
  t.requires_grad = true
  return t
end

local function zeros_leaf(shape, dev)
  local t = on(dev, pt.zeros(shape))
  t.requires_grad = true
  return t
end

--- A fresh LoRA set for B documents and its Adam (spec §3.7): per physical block i, Q (d→d) and V
--  (d→kvd) adapters A [B, r, d] ~ U(±1/√d), B [B, out, r] = 0; the LM head adapter (d→V, rank
--  head_rank); with bias_tuning a per-document vector [B, 1, d] = 0 after every block (§6.1).
--  opts: lora_rank (8), head_rank (lora_rank), bias_tuning (false), lr (0.01), lrs = {q, v, head, bias}
--  (each defaults to lr), betas ({0.9, 0.95}), eps (1e-10), seeds (nil: the A matrices from the
--  generator's stream, as the records; a list of B integers: element b's A matrices drawn from seed
--  seeds[b], so an element's init does not depend on its batch; the generator's state is restored).
--  Returns st = {q = {[i] = {A, B}},
--  v = ..., head = {A, B}, bias = {[i] = t}, opt, B}.
function ttt.lora_state(model, B, opts)
  opts = opts or {}
  local c = model.cfg
  local d, V, L = c.model_dim, c.vocab_size, c.num_layers
  local kvd = c.num_kv_heads * c.head_dim
  local r, rh = opts.lora_rank or 8, opts.head_rank or opts.lora_rank or 8
  local bound = 1 / math.sqrt(d)
  local dev = model_device(model)
  local st = { q = {}, v = {}, bias = {}, B = B }
  local groups = { q = {}, v = {}, head = {}, bias = {} }
  -- the A matrices in the order q_0, v_0, q_1, v_1, ..., head: from the generator's stream, or (seeds)
  -- element b's from its own seed, the generator's state restored afterwards
  local shapes = {}
  for _ = 0, L - 1 do shapes[#shapes + 1] = { r, d }; shapes[#shapes + 1] = { r, d } end
  shapes[#shapes + 1] = { rh, d }
  local next_A
  if opts.seeds then
    if type(opts.seeds) ~= "table" or #opts.seeds ~= B then
      error(string.format("ttt.lora_state: opts.seeds must list one integer seed per batch element (%d), got %s", B,
        type(opts.seeds) == "table" and (#opts.seeds .. " entries") or type(opts.seeds)), 2)
    end
    local saved = pt.get_rng_state()
    local per = {}
    for b = 1, B do
      pt.manual_seed(opts.seeds[b])
      per[b] = {}
      for j, sh in ipairs(shapes) do per[b][j] = pt.rand({ 1, sh[1], sh[2] }) end
    end
    pt.set_rng_state(saved)
    local j = 0
    next_A = function()
      j = j + 1
      local parts = {}
      for b = 1, B do parts[b] = per[b][j] end
      local t = on(dev, cat_many(parts) * (2 * bound) - bound)
      t.requires_grad = true
      return t
    end
  else
    local j = 0
    next_A = function()
      j = j + 1
      return uniform_leaf({ B, shapes[j][1], shapes[j][2] }, bound, dev)
    end
  end
  for i = 0, L - 1 do
    st.q[i] = { next_A(), zeros_leaf({ B, d, r }, dev) }
    st.v[i] = { next_A(), zeros_leaf({ B, kvd, r }, dev) }
    table.move(st.q[i], 1, 2, #groups.q + 1, groups.q)
    table.move(st.v[i], 1, 2, #groups.v + 1, groups.v)
  end
  st.head = { next_A(), zeros_leaf({ B, V, rh }, dev) }
  groups.head = { st.head[1], st.head[2] }
  if opts.bias_tuning then
    for i = 0, L - 1 do
      st.bias[i] = zeros_leaf({ B, 1, d }, dev)
      groups.bias[#groups.bias + 1] = st.bias[i]
    end
  end
  local lr = opts.lr or 0.01
  local lrs = opts.lrs or {}
  local spec = {}
  for _, g in ipairs { "q", "v", "head", "bias" } do
    if #groups[g] > 0 then spec[#spec + 1] = { params = groups[g], lr = lrs[g] or lr } end
  end
  st.opt = optim.Adam { groups = spec, lr = lr, betas = opts.betas or { 0.9, 0.95 }, eps = opts.eps or 1e-10 }
  return st
end

--- The nn.GPT lora hooks of batch elements lo .. lo+k-1 (1-based) of a LoRA state (narrowed views,
--  so gradients reach only those elements).
function ttt.lora_hooks(st, lo, k)
  lo, k = lo or 1, k or st.B
  local function nar(t) return (lo == 1 and k == st.B) and t or t:narrow(1, lo, k) end
  local q, v, bias = {}, {}, {}
  for i, ab in pairs(st.q) do q[i] = { nar(ab[1]), nar(ab[2]) } end
  for i, ab in pairs(st.v) do v[i] = { nar(ab[1]), nar(ab[2]) } end
  for i, b in pairs(st.bias) do bias[i] = nar(b) end
  local hA, hB = nar(st.head[1]), nar(st.head[2])
  local hooks = {
    q = function(i, h) return F.lora(h, q[i][1], q[i][2]) end,
    v = function(i, h) return F.lora(h, v[i][1], v[i][2]) end,
    head = function(h)
      local n, d = h:size(1), h:size(2)
      local z = F.lora(h:reshape({ k, n // k, d }), hA, hB)
      return z:reshape({ n, z:size(3) })
    end,
  }
  if next(st.bias) ~= nil then hooks.block_bias = function(i) return bias[i] end end
  return hooks
end

--- Logits [k·T, V] of x (i64 [k, T]) with the LoRA of batch elements lo .. lo+k-1.
function ttt.lora_forward(model, st, x, lo)
  return model:logits(x, ttt.lora_hooks(st, lo or 1, x:size(1)))
end

--- One TTT update: loss = Σ_rows w · softcapped-CE(z, y) (w [R] f32 weights, y [R] i64 targets; the
--  per-document chunk mean is w = 1/len on its chunk's rows), backward, one Adam step with
--  lr·lr_mul, gradients cleared (the LoRA's, and those of st.clear_grads: base weights that kept
--  requires_grad). Returns the loss.
function ttt.lora_update(st, z, y, w, softcap, lr_mul)
  y, w = on(z:device(), y), on(z:device(), w)
  local nll = F.softcap_cross_entropy(z, y, { softcap = softcap or 0, reduction = "none" })
  local loss = (nll * w):sum()
  loss:backward()
  st.opt:step(lr_mul or 1)
  st.opt:zero_grad()
  for _, p in ipairs(st.clear_grads or {}) do p.grad = nil end -- base weights' gradients, never applied
  return loss:item()
end

-- ---------------------------------------------------------------------------------------------
-- ttt.lora_eval
-- ---------------------------------------------------------------------------------------------

local function lora_config(fn, model, opts)
  local c = {}
  c.C = get_int(fn, opts, "chunk_size", 256, 1)
  c.W = get_int(fn, opts, "eval_seq_len", 1024, 1)
  if c.W < c.C then fail("%s: opts.eval_seq_len = %d is shorter than opts.chunk_size = %d", fn, c.W, c.C) end
  c.batch_docs = get_int(fn, opts, "batch_docs", 64, 1)
  c.short_len = get_int(fn, opts, "short_doc_len", 512, 0)
  c.min_len = get_int(fn, opts, "min_doc_len", 2, 2)
  c.max_len = opts.max_doc_len and get_int(fn, opts, "max_doc_len", nil, 2) or nil
  c.epochs = get_int(fn, opts, "epochs", 1, 1)
  c.reset = opts.reset_between_epochs and true or false
  c.cosine = opts.cosine and true or false
  c.cosine_floor = get_num(fn, opts, "cosine_floor", 0.1, 0)
  c.nll_scale = get_num(fn, opts, "nll_scale", 1, 0)
  c.temperature = get_num(fn, opts, "temperature", 1, 0)
  if c.temperature <= 0 then fail("%s: opts.temperature = %s must be > 0", fn, tostring(c.temperature)) end
  c.world = get_int(fn, opts, "world", 1, 1)
  c.rank = get_int(fn, opts, "rank", 0, 0)
  if c.rank >= c.world then fail("%s: opts.rank = %d is outside [0, world = %d)", fn, c.rank, c.world) end
  c.zigzag = opts.zigzag and true or false
  c.adapt = opts.adapt ~= false
  c.base_batch = get_int(fn, opts, "base_batch_seqs", 32, 1)
  c.max_eval = opts.max_eval_seconds and get_num(fn, opts, "max_eval_seconds", nil, 0) or nil
  c.budget = opts.budget_seconds and get_num(fn, opts, "budget_seconds", nil, 0) or nil
  c.softcap = model.cfg.logit_softcap or 0
  c.lora_seed = opts.lora_seed ~= nil and get_int(fn, opts, "lora_seed", nil, 0) or nil
  c.lora = {
    lora_rank = get_int(fn, opts, "lora_rank", 8, 1),
    head_rank = get_int(fn, opts, "head_rank", opts.lora_rank or 8, 1),
    bias_tuning = opts.bias_tuning and true or false, lr = get_num(fn, opts, "lr", 0.01, 0),
    lrs = opts.lrs, betas = opts.betas or { 0.9, 0.95 }, eps = get_num(fn, opts, "eps", 1e-10, 0),
  }
  if c.lora.lrs ~= nil and type(c.lora.lrs) ~= "table" then
    fail("%s: opts.lrs must be a table {q =, v =, head =, bias =}, got %s", fn, type(c.lora.lrs))
  end
  return c
end

-- chunk ch of a document: prediction range [cs, ce) and window start ws (prediction indices)
local function chunk_of(c, doc, ch)
  local cs = ch * c.C
  local ce = math.min(cs + c.C, doc.P)
  return cs, ce, math.max(0, ce - c.W)
end

-- base model, one forward over a whole document (short documents, §3.7)
local function score_doc_base(model, tokens, ledger, doc, sopts)
  local x = on(model_device(model), tokens:tensor(doc.start, doc.start + doc.P):reshape({ 1, doc.P }))
  local z = model:logits(x)
  local pos = {}
  for j = 0, doc.P - 1 do pos[j + 1] = doc.start + j + 1 end
  ledger:score(pos, ledger_logits(z), sopts)
end

-- base model with the chunk/window scheme (time-limit fallback §6.1, and adapt = false)
local function score_chunks_base(c, model, tokens, ledger, doc, sopts)
  local nc = doc.nc
  local ch = 0
  while ch < nc do
    local last = math.min(ch + c.base_batch, nc) - 1
    local spans, Wb = {}, 0
    for k = ch, last do
      local _, ce, ws = chunk_of(c, doc, k)
      spans[#spans + 1] = { doc.start + ws, ce - ws }
      Wb = math.max(Wb, ce - ws)
    end
    local x = input_rows(tokens, spans, Wb, model_device(model))
    local z = model:logits(x)
    local rows, pos = {}, {}
    for k = ch, last do
      local cs, ce, ws = chunk_of(c, doc, k)
      local r = k - ch
      for j = cs, ce - 1 do
        rows[#rows + 1] = r * Wb + (j - ws)
        pos[#pos + 1] = doc.start + j + 1
      end
    end
    score_rows(ledger, z, rows, pos, sopts)
    ch = last + 1
  end
end

-- one batch of long documents (sorted by chunk count, ascending): fresh LoRA + Adam, chunk loop
local function run_batch(c, model, tokens, ledger, docs, sopts, stats)
  local Bn = #docs
  local lora = c.lora
  if c.lora_seed then -- each document's LoRA init from its own seed: independent of batch and rank
    lora = {}
    for k, v in pairs(c.lora) do lora[k] = v end
    lora.seeds = {}
    for b, d in ipairs(docs) do lora.seeds[b] = c.lora_seed + d.start end
  end
  local st = ttt.lora_state(model, Bn, lora)
  st.clear_grads = stats.keep
  local max_nc = docs[Bn].nc
  local K = c.epochs * max_nc
  local step = 0
  for ep = 1, c.epochs do
    if ep > 1 and c.reset then
      st = ttt.lora_state(model, Bn, lora)
      st.clear_grads = stats.keep
    end
    local before_last = (ep == c.epochs and c.epochs > 1) and ledger:report() or nil
    for ch = 0, max_nc - 1 do
      local lo = 1
      while docs[lo].nc <= ch do lo = lo + 1 end -- the active documents are a suffix
      local Wc = math.min((ch + 1) * c.C, c.W)
      local train_any = docs[Bn].nc - 1 > ch
      local spans = {}
      for b = lo, Bn do
        local _, ce, ws = chunk_of(c, docs[b], ch)
        spans[#spans + 1] = { docs[b].start + ws, ce - ws }
      end
      local x = input_rows(tokens, spans, Wc, model_device(model))
      local z
      if train_any then
        z = ttt.lora_forward(model, st, x, lo)
      else
        z = pt.no_grad(function() return ttt.lora_forward(model, st, x, lo) end)
      end
      -- SCORE every active document's chunk before any update that could see it
      local rows, pos = {}, {}
      for b = lo, Bn do
        local d = docs[b]
        local cs, ce, ws = chunk_of(c, d, ch)
        for j = cs, ce - 1 do
          rows[#rows + 1] = (b - lo) * Wc + (j - ws)
          pos[#pos + 1] = d.start + j + 1
        end
      end
      local zc = z:index_select(1, on(z:device(), pt.tensor(rows, "i64"))) -- the chunk rows, in `pos` order
      ledger:score(pos, ledger_logits(zc), sopts)
      stats.scored = stats.scored + #pos
      -- TRAIN on the chunks just scored (the last chunk of a document never); targets from ledger:grant
      if train_any then
        local yp, wp = {}, {}
        for b = lo, Bn do
          local d = docs[b]
          local cs, ce = chunk_of(c, d, ch)
          local n = ce - cs
          if ch < d.nc - 1 then
            local g = ledger:grant(d.start + cs + 1, d.start + ce + 1) -- tokens d.start+cs .. d.start+ce
            yp[#yp + 1] = g:tensor(1, n + 1)
            wp[#wp + 1] = pt.full({ n }, 1 / n)
            stats.trained = stats.trained + n
          else
            yp[#yp + 1] = pt.zeros({ n }, "i64")
            wp[#wp + 1] = pt.zeros({ n })
          end
        end
        local lr_mul = 1
        if c.cosine then lr_mul = math.max(sched.cosine { t = step, total = K }, c.cosine_floor) end
        stats.last_loss = ttt.lora_update(st, zc, cat_many(yp), cat_many(wp), c.softcap, lr_mul)
        stats.steps = stats.steps + 1
      end
      step = step + 1
    end
    if before_last then -- DeepQuant: only the last epoch's scores are reported (§6.1)
      local r = ledger:report()
      stats.disc_nll = stats.disc_nll + (before_last.nll_sum - stats.batch_r0.nll_sum)
      stats.disc_bytes = stats.disc_bytes + (before_last.byte_sum - stats.batch_r0.byte_sum)
      stats.last_epoch_nll = stats.last_epoch_nll + (r.nll_sum - before_last.nll_sum)
    end
  end
end

--- Per-document LoRA TTT (PROTEUS v9, spec §3.7) with DeepQuant V10b's options (§6.1–6.2).
--  Defaults = ttt.presets.v9. opts:
--    chunk_size (256), eval_seq_len (1024: the window), batch_docs (64), short_doc_len (512: shorter
--    documents are scored by the base model, one forward each), min_doc_len (2), max_doc_len (nil;
--    longer documents take the short path, §6.2), lora_rank (8), head_rank (lora_rank), lr (0.01), lrs =
--    {q, v, head, bias} (per-group lrs), betas ({0.9, 0.95}), eps (1e-10), bias_tuning (false),
--    epochs (1), reset_between_epochs (false), cosine (false: lr·max(cos, cosine_floor) over
--    epochs × max_chunks steps of a batch), cosine_floor (0.1), nll_scale (1; DeepQuant's 0.98 is a
--    rescaled NLL = violation), temperature (1: a real logit temperature, allowed), world (1),
--    rank (0: this process's rank, as in proteus.eval), zigzag (false: documents split contiguously
--    over the ranks, §3.7; true: DeepQuant's zigzag, §6.2; ttt.distribute), max_eval_seconds (from
--    the start of the long documents, §6.1, per rank) and
--    budget_seconds (from the start of the call): when exceeded before a batch, the remaining long
--    documents are scored by the base model with the chunk/window scheme; base_batch_seqs (32: windows
--    per forward there); adapt (true; false = the base model on the long documents' chunk/window
--    scheme, the no-TTT counterpart); lora_seed (nil: the LoRA A matrices come from the generator's
--    stream, as in the records, so a document's init depends on its batch and on the rank split; an
--    integer: document d's from seed lora_seed + d.start, so its result does not depend on them);
--    ledger; label ("ttt_lora"); log.
--  Returns {loss, bpb, report, line, submission_bpb (the number the submission reports: with
--  epochs > 1 only the last epoch's scores), docs = {short, long, fallback}, phases = {short, long,
--  fallback} ({docs, tokens, seconds, tok_s, nll_sum}), steps, trained_targets, eval_time_ms, ledger,
--  rank, world, rank_docs (this rank's docs), merged}.
--  Across processes (world > 1 = proteus.dist's world size, under mpirun): each rank scores and
--  adapts on its own documents (LoRA is per document, so no gradient crosses ranks), then the ledger
--  (which must be fresh) is merged with dist.merge_ledger and every rank returns the whole set's
--  result: loss/bpb/report of the merged ledger, docs/phases/steps/trained_targets/submission_* summed
--  over the ranks (phase seconds: the slowest rank); merged = true. A target scored on two ranks
--  raises in legal mode. In ONE process with world > 1 (simulating a rank) only this rank's part is
--  scored and returned (merged = false; combine the ledgers with ledger:merge).
function ttt.lora_eval(model, val, opts)
  local fn = "ttt.lora_eval"
  opts = check_args(fn, model, val, opts)
  check_keys(fn, opts, LORA_KEYS)
  local c = lora_config(fn, model, opts)
  local ledger = resolve_ledger(fn, val, opts)
  local legal_mode = ledger:report().legal_mode
  if c.epochs > 1 and legal_mode then
    error(string.format("%s: epochs=%d rescores tokens already trained on: open the ledger with legal=false "
      .. "(data.open_val{legal = false}; the verdict will be illegal, spec §6.1, §7)", fn, c.epochs), 2)
  end
  if c.nll_scale ~= 1 and legal_mode then
    error(string.format("%s: nll_scale=%s multiplies every NLL (not a temperature, spec §6.1): open the ledger "
      .. "with legal=false, or use opts.temperature for a real logit temperature", fn, tostring(c.nll_scale)), 2)
  end
  -- several processes (proteus.dist): every rank scores its documents, then the ledgers are merged
  local dist, merge = nil, false
  if c.world > 1 then
    dist = require "proteus.dist"
    local W = dist.world_size()
    if W > 1 then
      if W ~= c.world then
        fail("%s: opts.world = %d but %d processes run (proteus.dist); pass world = dist.world_size()", fn, c.world, W)
      end
      local r0 = ledger:report()
      if r0.scored_once + r0.scored_multiple + r0.trained > 0 then
        fail("%s: on %d ranks the ledger must be fresh (it holds %d scored and %d trained targets): the merge "
          .. "sums every rank's counts; open a new one (data.ledger, or job:fresh_val() in a recipe)", fn, W,
          r0.scored_once + r0.scored_multiple, r0.trained)
      end
      merge = true
    end
  end
  local log = logger(opts)
  local t0 = clock()
  local tokens = val.tokens

  -- documents of this rank, split into the short and the long path
  local all = {}
  for _, d in ipairs(data.docs(tokens)) do
    if d.len >= c.min_len then all[#all + 1] = d end
  end
  local short, long = {}, {}
  for _, i in ipairs(ttt.distribute(#all, c.world, c.rank, c.zigzag)) do
    local d = all[i]
    local doc = { start = d.start, len = d.len, P = d.len - 1, nc = (d.len - 2) // c.C + 1, order = #short + #long }
    if d.len < c.short_len or (c.max_len and d.len > c.max_len) then
      short[#short + 1] = doc
    else
      long[#long + 1] = doc
    end
  end
  table.sort(long, function(a, b)
    if a.nc ~= b.nc then return a.nc < b.nc end
    return a.order < b.order
  end)

  local base_opts = { softcap = c.softcap, temperature = c.temperature }
  local ttt_opts = { softcap = c.softcap, temperature = c.temperature, rescale = c.nll_scale }
  local stats = { scored = 0, trained = 0, steps = 0, disc_nll = 0, disc_bytes = 0, last_epoch_nll = 0 }
  local phases = {}
  local n_fallback = 0
  local nll_prev = ledger:report().nll_sum
  local function nll_mark() -- Σ NLL the ledger accumulated since the previous mark
    local now = ledger:report().nll_sum
    local d = now - nll_prev
    nll_prev = now
    return d
  end

  -- base weights frozen while TTT runs (restored afterwards); only the LoRA adapters train
  local restore = freeze(model, function() return true end)
  stats.keep = {}
  protect(restore, function()
    -- short documents: the base model, one forward per document, never rescaled (§3.7, §6.1)
    local ts = clock()
    local ntok = 0
    pt.no_grad(function()
      for _, d in ipairs(short) do
        score_doc_base(model, tokens, ledger, d, base_opts)
        ntok = ntok + d.P
      end
    end)
    phases.short = { docs = #short, tokens = ntok, seconds = clock() - ts, nll_sum = nll_mark() }
    log(phase_line("short", #short, ntok, phases.short.seconds))

    -- long documents: batches of batch_docs, fresh LoRA per batch
    local tl = clock()
    local i = 1
    local ntok_long, nb = 0, 0
    while i <= #long and c.adapt do
      local now = clock()
      if (c.max_eval and now - tl > c.max_eval) or (c.budget and now - t0 > c.budget) then
        log(string.format("ttt:time limit reached after %.1fs (%d of %d long documents done); the base model "
          .. "scores the rest", now - t0, i - 1, #long))
        break
      end
      local batch = table.move(long, i, math.min(i + c.batch_docs - 1, #long), 1, {})
      stats.batch_r0 = ledger:report()
      run_batch(c, model, tokens, ledger, batch, ttt_opts, stats)
      for _, d in ipairs(batch) do ntok_long = ntok_long + d.P end
      nb = nb + 1
      i = i + #batch
    end
    phases.long = { docs = i - 1, tokens = ntok_long, seconds = clock() - tl, batches = nb, nll_sum = nll_mark() }
    log(phase_line("long", i - 1, ntok_long, phases.long.seconds)
      .. string.format(" batches:%d steps:%d epochs:%d", nb, stats.steps, c.epochs))

    -- the rest (time limit, or adapt = false): base model, same chunk/window scheme
    local tf = clock()
    local ntok_fb = 0
    pt.no_grad(function()
      for k = i, #long do
        score_chunks_base(c, model, tokens, ledger, long[k], ttt_opts)
        ntok_fb = ntok_fb + long[k].P
      end
    end)
    n_fallback = #long - i + 1
    phases.fallback = { docs = n_fallback, tokens = ntok_fb, seconds = clock() - tf, nll_sum = nll_mark() }
    if n_fallback > 0 then log(phase_line(c.adapt and "fallback" or "base", n_fallback, ntok_fb, phases.fallback.seconds)) end
  end)
  local rank_docs = { short = #short, long = #long - n_fallback, fallback = n_fallback }
  local docs = rank_docs
  local r
  if merge then
    -- the whole set on every rank: ledgers merged (a target scored on two ranks is refused in legal
    -- mode), then this call's per-rank sums added over the ranks (seconds: the slowest rank)
    r = dist.merge_ledger(ledger)
    local names, keys = { "short", "long", "fallback" }, { "docs", "tokens", "nll_sum", "batches" }
    local v = { stats.disc_nll, stats.disc_bytes, stats.steps, stats.trained, rank_docs.short, rank_docs.long,
      rank_docs.fallback }
    for _, ph in ipairs(names) do
      for _, k in ipairs(keys) do v[#v + 1] = phases[ph][k] or 0 end
    end
    local t = pt.tensor(v, "f64")
    dist.all_reduce(t, "sum")
    v = t:totable()
    local function int(x) return math.tointeger(x) or x end
    stats.disc_nll, stats.disc_bytes, stats.steps, stats.trained = v[1], v[2], int(v[3]), int(v[4])
    docs = { short = int(v[5]), long = int(v[6]), fallback = int(v[7]) }
    local i = 8
    for _, ph in ipairs(names) do
      for _, k in ipairs(keys) do
        if phases[ph][k] ~= nil then phases[ph][k] = k == "nll_sum" and v[i] or int(v[i]) end
        i = i + 1
      end
    end
    local secs = {}
    for j, ph in ipairs(names) do secs[j] = phases[ph].seconds end
    local ts = pt.tensor(secs, "f64")
    dist.all_reduce(ts, "max")
    secs = ts:totable()
    for j, ph in ipairs(names) do phases[ph].seconds = secs[j] end
  else
    r = ledger:report()
  end
  for _, p in pairs(phases) do p.tok_s = p.tokens / math.max(p.seconds, 1e-9) end
  local sub_nll, sub_bytes = r.nll_sum - stats.disc_nll, r.byte_sum - stats.disc_bytes
  local res = {
    loss = r.loss, bpb = r.bpb, report = r, line = data.format_bpb(r, opts.label or "ttt_lora"),
    submission_bpb = sub_nll / (math.log(2) * sub_bytes), submission_nll_sum = sub_nll,
    submission_byte_sum = sub_bytes,
    docs = docs,
    phases = phases, steps = stats.steps, trained_targets = stats.trained,
    eval_time_ms = (clock() - t0) * 1000, ledger = ledger, rank = c.rank, world = c.world, rank_docs = rank_docs,
    merged = merge,
  }
  log(string.format("%s eval_time:%.0fms", res.line, res.eval_time_ms))
  if c.epochs > 1 then
    log(string.format("ttt:submission_bpb:%.8f (last epoch of %d only, as the submission reports it; "
      .. "verdict %s)", res.submission_bpb, c.epochs, r.verdict:upper()))
  end
  return res
end

-- ---------------------------------------------------------------------------------------------
-- full-model training helpers (chunked_full, prequant)
-- ---------------------------------------------------------------------------------------------

local function pattern_pred(fn, pats)
  if pats == nil then return function() return false end end
  if type(pats) ~= "table" then fail("%s: opts.freeze must be a list of Lua patterns, got %s", fn, type(pats)) end
  return function(name)
    for _, p in ipairs(pats) do
      if name:find(p) then return true end
    end
    return false
  end
end

-- the trainable (name, tensor) pairs and the number of frozen values
local function split_trainable(model, frozen)
  local train, nfrozen, ntrain = {}, 0, 0
  for name, p in model:named_parameters() do
    if frozen(name) then
      nfrozen = nfrozen + p:numel()
    else
      train[#train + 1] = { name, p }
      ntrain = ntrain + p:numel()
    end
  end
  return train, nfrozen, ntrain
end

-- forward/backward over sequences of a granted Tokens buffer g (g[0] .. g[n]): sequences of up to
-- T targets, micro-batches of mb sequences; gradient of the mean CE over all n targets. Returns the loss.
-- qat = {names, bits} (optional): the forwards and backwards see the STE fake-quantized weights
-- (proteus.train.qat_swap), put back before the caller clips and steps.
local function train_on_tokens(model, seqs, mb, softcap, qat)
  local qat_swap = qat and require("proteus.train").qat_swap
  local total = 0
  for _, s in ipairs(seqs) do total = total + s.n end
  local loss_sum = 0
  local i = 1
  while i <= #seqs do
    -- a micro-batch of equal-length sequences
    local n = seqs[i].n
    local xs, ys = {}, {}
    local j = i
    while j <= #seqs and j - i < mb and seqs[j].n == n do
      xs[#xs + 1] = seqs[j].g:tensor(seqs[j].a, seqs[j].a + n)
      ys[#ys + 1] = seqs[j].g:tensor(seqs[j].a + 1, seqs[j].a + n + 1)
      j = j + 1
    end
    local B = j - i
    local dev = model_device(model)
    local x = on(dev, cat_many(xs):reshape({ B, n }))
    local y = on(dev, cat_many(ys))
    local function fwd_bwd() -- a fresh STE swap per micro-batch: each backward frees its graph
      local z = model:logits(x)
      local l = F.softcap_cross_entropy(z, y, { softcap = softcap, reduction = "none" }):sum() * (1 / total)
      l:backward()
      return l:item()
    end
    if qat_swap then
      loss_sum = loss_sum + protect(qat_swap(model, qat.names, qat.bits), fwd_bwd)
    else
      loss_sum = loss_sum + fwd_bwd()
    end
    i = j
  end
  return loss_sum
end

-- sequences of up to T targets over a granted buffer g holding tokens of targets [a, b)
local function sequences(g, ntarg, T, out)
  out = out or {}
  for a = 0, ntarg - 1, T do
    out[#out + 1] = { g = g, a = a, n = math.min(T, ntarg - a) }
  end
  return out
end

-- ---------------------------------------------------------------------------------------------
-- ttt.chunked_full (#598)
-- ---------------------------------------------------------------------------------------------

--- Chunked full-model score-first TTT (#598, spec §5.5). Sliding windows of seq_len T with stride s
--  (eval.sliding_plan without the records' quirk: every target scored once) are grouped into chunks
--  of chunk_tokens targets (a window belongs to the chunk of its first scored target). Per chunk:
--  score its windows (no grad), then — except after the last chunk — train on exactly the chunk's
--  targets (ledger:grant) for `epochs` epochs of one SGD step each (mean CE over the chunk's
--  sequences of T, global-norm clip, lr·½(1+cos(π·ci/(n_chunks−1))) across chunks, momentum
--  persisting across chunks), with the parameters matching `freeze` not trained.
--  opts: seq_len (2048), stride (64), chunk_tokens (32768), epochs (10), lr (0.002), momentum (0.9),
--  clip (1.0; 0 = none), freeze ({"^blocks%.0%.", "^blocks%.1%."}), batch_seqs (32 windows per
--  scoring forward), train_batch_seqs (16 sequences per training forward; gradients accumulate),
--  budget_seconds, ledger, label ("ttt_chunked"), log, qat (nil: off; {names = {Lua patterns},
--  bits = 6}: the TRAINING forwards and backwards see the STE fake-quantized weights of the matching
--  2-D parameters, proteus.train.qat_swap — #598's late-QAT flag left on during TTT, §5.5; the
--  scoring forwards use the plain weights, as the record's eval-mode forwards do). The model is
--  trained in place.
--  Returns {loss, bpb, report, line, chunks, trained_chunks, steps, frozen, trainable, phases =
--  {score, train}, eval_time_ms, ledger}.
function ttt.chunked_full(model, val, opts)
  local fn = "ttt.chunked_full"
  opts = check_args(fn, model, val, opts)
  check_keys(fn, opts, CHUNKED_KEYS)
  local T = get_int(fn, opts, "seq_len", 2048, 1)
  local s = get_int(fn, opts, "stride", 64, 1)
  if s > T then fail("%s: opts.stride = %d is larger than opts.seq_len = %d", fn, s, T) end
  local C = get_int(fn, opts, "chunk_tokens", 32768, 1)
  local epochs = get_int(fn, opts, "epochs", 10, 0)
  local lr = get_num(fn, opts, "lr", 0.002, 0)
  local momentum = get_num(fn, opts, "momentum", 0.9, 0)
  local clip = get_num(fn, opts, "clip", 1.0, 0)
  local batch_seqs = get_int(fn, opts, "batch_seqs", 32, 1)
  local mb = get_int(fn, opts, "train_batch_seqs", 16, 1)
  local budget = opts.budget_seconds and get_num(fn, opts, "budget_seconds", nil, 0) or nil
  local qat = nil
  if opts.qat then
    if type(opts.qat) ~= "table" then
      fail("%s: opts.qat must be a table {names = {Lua patterns}, bits = 6} or false, got %s", fn, type(opts.qat))
    end
    for k in pairs(opts.qat) do
      if k ~= "names" and k ~= "bits" then fail("%s: unknown opts.qat field '%s' (names, bits)", fn, tostring(k)) end
    end
    local bits = opts.qat.bits == nil and 6 or opts.qat.bits
    if math.type(bits) ~= "integer" or bits < 2 or bits > 8 then
      fail("%s: opts.qat.bits = %s must be an integer in [2, 8]", fn, tostring(opts.qat.bits))
    end
    qat = { names = require("proteus.train").qat_targets(model, opts.qat.names), bits = bits }
  end
  if (opts.world or 1) ~= 1 then
    fail("%s: opts.world = %s: distributed chunked TTT needs a gradient all-reduce (proteus.dist), which is "
      .. "not implemented yet; run with world = 1", fn, tostring(opts.world))
  end
  local frozen = pattern_pred(fn, opts.freeze == nil and { "^blocks%.0%.", "^blocks%.1%." } or opts.freeze)
  local ledger = resolve_ledger(fn, val, opts)
  local log = logger(opts)
  local softcap = model.cfg.logit_softcap or 0
  local t0 = clock()
  local N = #val.tokens
  local M = N - 1
  if M < 1 then fail("%s: the validation set has %d tokens; at least 2 are needed", fn, N) end

  -- windows grouped by chunk
  local plan = eval.sliding_plan(M, T, s)
  local nchunks = (M + C - 1) // C
  local first_of = {} -- first window of each chunk (0-based chunk index -> 0-based window index)
  local last_of = {}
  for k = 0, plan.count - 1 do
    local ws, _, from = plan.window(k)
    local ci = math.min((ws + from) // C, nchunks - 1)
    if first_of[ci] == nil then first_of[ci] = k end
    last_of[ci] = k
  end

  local train, nfrozen, ntrain = split_trainable(model, frozen)
  local restore = freeze(model, frozen)
  local tparams = {}
  for _, np in ipairs(train) do tparams[#tparams + 1] = np[2] end
  local opt = #tparams > 0 and optim.SGD { params = train, lr = lr, momentum = momentum } or nil
  log(string.format("ttt:chunked T:%d stride:%d chunk:%d chunks:%d windows:%d epochs:%d frozen:%d trainable:%d%s",
    T, s, C, nchunks, plan.count, epochs, nfrozen, ntrain,
    qat and string.format(" qat:int%d on %d weights (training forwards only)", qat.bits, #qat.names) or ""))

  local sopts = { softcap = softcap }
  local phases = { score = { tokens = 0, seconds = 0 }, train = { tokens = 0, seconds = 0 } }
  local steps, trained_chunks, stopped = 0, 0, false
  protect(restore, function()
    for ci = 0, nchunks - 1 do
      -- SCORE the chunk's windows
      local ts = clock()
      if first_of[ci] then
        pt.no_grad(function()
          local first = first_of[ci]
          while first <= last_of[ci] do
            local last = math.min(first + batch_seqs - 1, last_of[ci])
            local spans, rows, pos = {}, {}, {}
            for k = first, last do
              local ws, wlen, from = plan.window(k)
              spans[#spans + 1] = { ws, wlen }
              for j = from, wlen - 1 do
                rows[#rows + 1] = (k - first) * T + j
                pos[#pos + 1] = ws + j + 1
              end
            end
            local z = model:logits(input_rows(val.tokens, spans, T, model_device(model)))
            score_rows(ledger, z, rows, pos, sopts)
            phases.score.tokens = phases.score.tokens + #pos
            first = last + 1
          end
        end)
      end
      phases.score.seconds = phases.score.seconds + (clock() - ts)
      -- TRAIN on the chunk's (now scored) targets
      if ci < nchunks - 1 and opt and epochs > 0 and not stopped then
        if budget and clock() - t0 > budget then
          stopped = true
          log(string.format("ttt:chunked budget of %.1fs reached at chunk %d of %d; the rest is scored without training",
            budget, ci, nchunks))
        else
          local tt = clock()
          local a, b = ci * C + 1, math.min((ci + 1) * C, M) + 1
          local g = ledger:grant(a, b)
          local seqs = sequences(g, b - a, T)
          local lr_mul = nchunks > 1 and sched.cosine { t = ci, total = nchunks - 1 } or 1
          local loss
          for _ = 1, epochs do
            loss = train_on_tokens(model, seqs, mb, softcap, qat)
            if clip > 0 then optim.clip_grad_norm(tparams, clip) end
            opt:step(lr_mul)
            opt:zero_grad()
            steps = steps + 1
          end
          trained_chunks = trained_chunks + 1
          phases.train.tokens = phases.train.tokens + (b - a) * epochs
          phases.train.seconds = phases.train.seconds + (clock() - tt)
          if opts.verbose then
            log(string.format("ttt:chunk %d/%d lr_mul:%.4f train_loss:%.4f", ci + 1, nchunks, lr_mul, loss))
          end
        end
      end
    end
  end)
  for name, p in pairs(phases) do
    p.tok_s = p.tokens / math.max(p.seconds, 1e-9)
    log(string.format("ttt:chunked %s tokens:%d time:%.2fs tok/s:%.0f", name, p.tokens, p.seconds, p.tok_s))
  end
  local r = ledger:report()
  local res = {
    loss = r.loss, bpb = r.bpb, report = r, line = data.format_bpb(r, opts.label or "ttt_chunked"),
    chunks = nchunks, trained_chunks = trained_chunks, steps = steps, frozen = nfrozen, trainable = ntrain,
    phases = phases, eval_time_ms = (clock() - t0) * 1000, ledger = ledger,
  }
  log(string.format("%s eval_time:%.0fms", res.line, res.eval_time_ms))
  return res
end

-- ---------------------------------------------------------------------------------------------
-- ttt.prequant (#1539) — illegal by construction
-- ---------------------------------------------------------------------------------------------

--- Pre-quant AdamW TTT (#1539, spec §4.4): trains the model on the validation tokens BEFORE any of
--  them is scored — the pattern the challenge ruled illegal. It runs only on a ledger opened with
--  legal = false, and every training target goes through ledger:grant, so the ledger counts
--  trained_before_scored and the verdict of the scoring that follows (the caller quantizes, then
--  evaluates with opts.ledger = the same ledger) is "illegal".
--  Batches: sequences of T at offsets 0, T, 2T, ... of the first floor((N−1)/T)·T+1 tokens; batch b
--  holds the sequences starting at b·batch_tokens up to and including b·batch_tokens + batch_tokens
--  (batch_tokens/T + 1 sequences; the boundary one appears in two batches, as in the record).
--  Per batch: mean CE, backward, clip, AdamW step; lr cosine per epoch from lr to lr_min (T_max = epochs).
--  opts: seq_len (2048), batch_tokens (65536), epochs (6), lr (5e-4), lr_min (5e-5), betas ({0.9, 0.999}),
--  eps (1e-8), weight_decay (0), clip (1.0), freeze (the control tensors of blocks 0 and 1, as #1539's
--  "freeze first 2 blocks"), train_batch_seqs (16), budget_seconds, ledger, log.
--  Returns {epochs, epoch_losses, steps, trained_sequences, frozen, trainable, train_time_ms, tok_s,
--  report (the ledger's, after training), ledger}.
function ttt.prequant(model, val, opts)
  local fn = "ttt.prequant"
  opts = check_args(fn, model, val, opts)
  check_keys(fn, opts, PREQUANT_KEYS)
  local ledger = resolve_ledger(fn, val, opts)
  if ledger:report().legal_mode then
    error(fn .. ": pre-quant TTT trains on validation targets before they are scored (spec §4.4, §7): open the "
      .. "ledger with legal=false (data.open_val{legal = false}); the verdict will be illegal", 2)
  end
  local T = get_int(fn, opts, "seq_len", 2048, 1)
  local bt = get_int(fn, opts, "batch_tokens", 65536, 1)
  if bt % T ~= 0 then fail("%s: opts.batch_tokens = %d is not a multiple of seq_len = %d", fn, bt, T) end
  local epochs = get_int(fn, opts, "epochs", 6, 0)
  local lr = get_num(fn, opts, "lr", 5e-4, 0)
  local lr_min = get_num(fn, opts, "lr_min", 5e-5, 0)
  local clip = get_num(fn, opts, "clip", 1.0, 0)
  local mb = get_int(fn, opts, "train_batch_seqs", 16, 1)
  local budget = opts.budget_seconds and get_num(fn, opts, "budget_seconds", nil, 0) or nil
  local frozen = pattern_pred(fn, opts.freeze == nil and {
    "^blocks%.[01]%.attn_scale$", "^blocks%.[01]%.mlp_scale$", "^blocks%.[01]%.resid_mix$",
    "^blocks%.[01]%.attn%.q_gain$" } or opts.freeze)
  local log = logger(opts)
  local softcap = model.cfg.logit_softcap or 0
  local N = #val.tokens
  local nseq = (N - 1) // T
  if nseq < 1 then fail("%s: the validation set has %d tokens, fewer than one sequence of T=%d+1", fn, N, T) end
  local per = bt // T
  local train, nfrozen, ntrain = split_trainable(model, frozen)
  local restore = freeze(model, frozen)
  local tparams = {}
  for _, np in ipairs(train) do tparams[#tparams + 1] = np[2] end
  local opt = optim.AdamW { params = train, lr = lr, betas = opts.betas or { 0.9, 0.999 },
    eps = get_num(fn, opts, "eps", 1e-8, 0), weight_decay = get_num(fn, opts, "weight_decay", 0, 0) }
  log(string.format("ttt:prequant T:%d sequences:%d batches:%d epochs:%d frozen:%d trainable:%d (trains on val "
    .. "before scoring: illegal)", T, nseq, (nseq + per - 1) // per, epochs, nfrozen, ntrain))
  local t0 = clock()
  local losses, steps, nseqs, ntok = {}, 0, 0, 0
  protect(restore, function()
    for e = 0, epochs - 1 do
      if budget and clock() - t0 > budget then
        log(string.format("ttt:prequant budget of %.1fs reached after %d epochs", budget, e))
        break
      end
      local te = clock()
      local lr_mul = sched.cosine { t = e, total = epochs, floor = lr > 0 and lr_min / lr or 0 }
      local esum, nb = 0, 0
      for first = 0, nseq - 1, per do
        local seqs = {}
        for k = first, math.min(first + per, nseq - 1) do
          local g = ledger:grant(k * T + 1, k * T + T + 1) -- counted: trained before scored
          seqs[#seqs + 1] = { g = g, a = 0, n = T }
        end
        esum = esum + train_on_tokens(model, seqs, mb, softcap)
        if clip > 0 then optim.clip_grad_norm(tparams, clip) end
        opt:step(lr_mul)
        opt:zero_grad()
        steps, nb = steps + 1, nb + 1
        nseqs = nseqs + #seqs
        ntok = ntok + #seqs * T
      end
      losses[#losses + 1] = esum / nb
      log(string.format("ttt:prequant epoch:%d/%d lr:%.3g loss:%.4f time:%.2fs", e + 1, epochs, lr * lr_mul,
        esum / nb, clock() - te))
    end
  end)
  local secs = clock() - t0
  local r = ledger:report()
  log(string.format("ttt:prequant tokens:%d time:%.2fs tok/s:%.0f; ledger: %d targets trained before scored",
    ntok, secs, ntok / math.max(secs, 1e-9), r.trained_before_scored))
  return { epochs = #losses, epoch_losses = losses, steps = steps, trained_sequences = nseqs, frozen = nfrozen,
    trainable = ntrain, train_time_ms = secs * 1000, tok_s = ntok / math.max(secs, 1e-9), report = r,
    ledger = ledger }
end

return ttt
