--- tests/lua/test_ttt.lua — proteus.ttt: LoRA TTT (PROTEUS v9 and DeepQuant V10b options), chunked
--- full-model TTT (#598) and pre-quant TTT (#1539), each through the score-first ledger.
--
--   build/proteus tests/run.lua tests/lua/test_ttt.lua [--match v9]
--
-- Scale: a 3-layer 64-wide PROTEUS-style GPT trained 24 steps on the bundled sample's train shards,
-- evaluated on a small validation set made of the bundled val documents cut to chosen lengths (BOS +
-- the document's first tokens), with chunk 64 / window 128 / 2 documents per batch (the spec's 256 /
-- 1024 / 64 scaled down). Verdicts and counts are exact; the LoRA step is compared with a PyTorch
-- reference (tests/reference/lora_ttt_ref.py, Debian's /usr/bin/python3 with torch; skipped when torch
-- is missing). Spec: ../shared/spec/parameter-golf.md §3.7, §4.4, §5.5, §6.1–6.2, §7.
local pt = require "proteus"
local nn = require "proteus.nn"
local data = require "proteus.data"
local eval = require "proteus.eval"
local optim = require "proteus.optim"
local st = require "proteus.safetensors"
local ttt = require "proteus.ttt"

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local G = dofile(here .. "gpt_configs.lua")
local root = here .. "../../"
local PY = os.getenv("PROTEUS_TEST_PYTHON") or "/usr/bin/python3"

-- the tiny model: PROTEUS v9 with these overrides (the reference gets the same through --cfg)
local OVERRIDES = { num_layers = 3, model_dim = 64, num_heads = 4, num_kv_heads = 2, mlp_hidden = 128,
  bigram_vocab_size = 64, bigram_dim = 16, xsa_layers = { 2 } }
local CFG = G.with(G.configs.proteus_v9, OVERRIDES)

-- scaled-down v9 options
local SMALL = { chunk_size = 64, eval_seq_len = 128, batch_docs = 2, short_doc_len = 350, log = false }
local DOC_LENS = { 300, 420, 520, 610, 700 } -- data.docs lengths (incl. the next BOS); the first is short

local function with(a, b)
  local r = {}
  for k, v in pairs(a) do r[k] = v end
  for k, v in pairs(b or {}) do r[k] = v end
  return r
end

local function quiet() return function() end end

-- ---- fixtures (built once) ----
local full_val
local function open_full()
  if not full_val then full_val = data.open_val { vocab = 1024 } end
  return full_val
end

-- a validation set of bundled documents cut to DOC_LENS (each: its BOS + its next len-2 tokens, so
-- with the next document's BOS, data.docs gives exactly DOC_LENS; a BOS ends the last one)
local small_tokens
local function small_val(legal)
  local fv = open_full()
  if not small_tokens then
    local docs = data.docs(fv.tokens)
    local ids = {}
    local k = 1
    for _, n in ipairs(DOC_LENS) do
      while docs[k].len <= n do k = k + 1 end -- a bundled document long enough to cut
      for j = 0, n - 2 do ids[#ids + 1] = fv.tokens:get(docs[k].start + j) end
      k = k + 1
    end
    ids[#ids + 1] = data.BOS -- the last document predicts the next BOS too
    small_tokens = data.tokens(ids)
  end
  return { tokens = small_tokens, tables = fv.tables,
    ledger = data.ledger(small_tokens, fv.tables, { legal = legal ~= false, name = "small_val" }) }
end

-- a contiguous piece of the real validation stream (for #598 / #1539)
local function stream_val(n, legal)
  local fv = open_full()
  local tok = fv.tokens:sub(0, n)
  return { tokens = tok, tables = fv.tables,
    ledger = data.ledger(tok, fv.tables, { legal = legal ~= false, name = "stream_val" }) }
end

local trained_state
local function trained_model()
  pt.manual_seed(2024)
  local model = nn.GPT(CFG)
  if not trained_state then
    local stream = data.stream(data.paths().train)
    local opt = optim.AdamW { params = model:parameters(), lr = 0.01, betas = { 0.9, 0.95 }, weight_decay = 0 }
    local B, T = 4, 64
    for _ = 1, 24 do
      local xy = stream:next_batch(B * T, 0, 1):tensor()
      local loss = model:forward(xy:narrow(1, 1, B * T):reshape { B, T }, xy:narrow(1, 2, B * T):reshape { B, T })
      loss:backward()
      opt:step()
      opt:zero_grad()
    end
    trained_state = {}
    for name, p in model:named_parameters() do trained_state[name] = p:detach():clone() end
    return model
  end
  pt.no_grad(function()
    for name, p in model:named_parameters() do p:copy_(trained_state[name]) end
  end)
  return model
end

local function snapshot(model)
  local s = {}
  for name, p in model:named_parameters() do s[name] = p:detach():clone() end
  return s
end

local function same(a, b) return (a - b):abs():max():item() == 0 end

-- expected counts of the small set under SMALL: predictions of long documents and of their last chunks
local function long_counts(opts)
  local docs = data.docs(small_tokens)
  local long_targets, trained = 0, 0
  for _, d in ipairs(docs) do
    if d.len >= opts.short_doc_len then
      local P = d.len - 1
      local nc = (d.len - 2) // opts.chunk_size + 1
      long_targets = long_targets + P
      trained = trained + P - (P - (nc - 1) * opts.chunk_size)
    end
  end
  return long_targets, trained
end

local tests = {}

-- ---------------------------------------------------------------------------------------------
tests[#tests + 1] = { "distribute_contiguous_and_zigzag", function(T)
  T.eq(ttt.distribute(10, 3, 0), { 1, 2, 3 })
  T.eq(ttt.distribute(10, 3, 1), { 4, 5, 6 })
  T.eq(ttt.distribute(10, 3, 2), { 7, 8, 9, 10 })
  -- §6.2: groups of 8, odd groups reversed: order 1..8, 16..9, 17..20; rank r takes every 8th from r
  T.eq(ttt.distribute(20, 8, 0, true), { 1, 16, 17 })
  T.eq(ttt.distribute(20, 8, 3, true), { 4, 13, 20 })
  T.eq(ttt.distribute(20, 8, 7, true), { 8, 9 })
  local seen = {}
  for r = 0, 7 do
    for _, i in ipairs(ttt.distribute(20, 8, r, true)) do
      assert(not seen[i], "document " .. i .. " given to two ranks")
      seen[i] = true
    end
  end
  for i = 1, 20 do assert(seen[i], "document " .. i .. " given to no rank") end
end }

-- ---------------------------------------------------------------------------------------------
-- LoRA TTT steps against PyTorch (loss and adapters after each of two Adam steps, f32, < 1e-5 rel)
local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function json(v)
  local t = type(v)
  if t == "boolean" then return v and "true" or "false" end
  if t == "number" then return math.type(v) == "integer" and string.format("%d", v) or string.format("%.17g", v) end
  if t == "string" then return string.format("%q", v) end
  if #v > 0 then
    local p = {}
    for i = 1, #v do p[i] = json(v[i]) end
    return "[" .. table.concat(p, ",") .. "]"
  end
  local keys, p = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do p[#p + 1] = string.format("%q:%s", k, json(v[k])) end
  return "{" .. table.concat(p, ",") .. "}"
end

local torch_ok
local function need_torch(T)
  if torch_ok == nil then
    local f = io.popen(PY .. " -c 'import torch' 2>&1")
    f:read("a")
    torch_ok = f:close() and true or false
  end
  if not torch_ok then T.skip(PY .. " cannot import torch; install Debian's python3-torch") end
end

local function rel(a, b)
  local nb = b:norm():item()
  local nd = (a - b):norm():item()
  if nb == 0 then return nd end
  return nd / nb
end

local function reference_case(T, lopts)
  need_torch(T)
  pt.manual_seed(31)
  local model = nn.GPT(CFG)
  pt.no_grad(function() -- off the init, so the zero-initialised projections carry gradient
    for _, p in model:named_parameters() do p:add_(pt.randn(p:shape()) * 0.05) end
  end)
  local B, TT, K = 2, 16, 2
  local s = ttt.lora_state(model, B, lopts)
  local init = {}
  for i, ab in pairs(s.q) do init["q." .. i .. ".A"], init["q." .. i .. ".B"] = ab[1]:detach():clone(), ab[2]:detach():clone() end
  for i, ab in pairs(s.v) do init["v." .. i .. ".A"], init["v." .. i .. ".B"] = ab[1]:detach():clone(), ab[2]:detach():clone() end
  init["head.A"], init["head.B"] = s.head[1]:detach():clone(), s.head[2]:detach():clone()
  for i, b in pairs(s.bias) do init["bias." .. i] = b:detach():clone() end
  local steps = {}
  for k = 1, K do
    steps["x" .. k] = pt.randint(0, 1024, { B, TT })
    steps["y" .. k] = pt.randint(0, 1024, { B, TT })
    -- per-document chunk means: doc 1 trains on positions 5..12, doc 2 on 1..16
    local w = pt.zeros({ B, TT })
    pt.no_grad(function()
      w[1]:narrow(1, 5, 8):fill_(1 / 8)
      w[2]:fill_(1 / 16)
    end)
    steps["w" .. k] = w
  end
  local base = os.tmpname()
  local wp, lp, sp, op = base .. "-w.safetensors", base .. "-l.safetensors", base .. "-s.safetensors", base .. "-o.safetensors"
  local ok, err = pcall(function()
    local weights = {}
    for n, p in model:named_parameters() do weights[n] = p:detach() end
    st.save(wp, weights)
    st.save(lp, init)
    st.save(sp, steps)
    local lr = lopts.lr or 0.01
    local lrs = with({ q = lr, v = lr, head = lr, bias = lr }, lopts.lrs)
    local cmd = table.concat({ PY, shell_quote(root .. "tests/reference/lora_ttt_ref.py"), "--config proteus_v9",
      "--cfg", shell_quote(json(OVERRIDES)), "--weights", shell_quote(wp), "--lora", shell_quote(lp),
      "--steps", shell_quote(sp), "--out", shell_quote(op), "--lrs", shell_quote(json(lrs)), "2>&1" }, " ")
    local f = io.popen(cmd)
    local out = f:read("a")
    local rc = f:close()
    assert(rc, "lora_ttt_ref.py failed: " .. cmd .. "\n" .. out)
    local ref = st.load(op)
    for k = 1, K do
      local z = ttt.lora_forward(model, s, steps["x" .. k], 1)
      local loss = ttt.lora_update(s, z, steps["y" .. k]:reshape { -1 }, steps["w" .. k]:reshape { -1 },
        model.cfg.logit_softcap)
      local rl = ref.loss:flat_get(k)
      assert(math.abs(loss - rl) / math.abs(rl) < 1e-5,
        string.format("step %d: loss %.9g vs PyTorch %.9g", k, loss, rl))
      local cur = {}
      for i, ab in pairs(s.q) do cur["q." .. i .. ".A"], cur["q." .. i .. ".B"] = ab[1], ab[2] end
      for i, ab in pairs(s.v) do cur["v." .. i .. ".A"], cur["v." .. i .. ".B"] = ab[1], ab[2] end
      cur["head.A"], cur["head.B"] = s.head[1], s.head[2]
      for i, b in pairs(s.bias) do cur["bias." .. i] = b end
      for name, t in pairs(cur) do
        local r = ref["step" .. k .. "." .. name]
        assert(r, "the reference wrote no " .. name)
        local e = rel(t:detach(), r)
        assert(e < 1e-5, string.format("step %d: %s differs from PyTorch by %.3g (relative)", k, name, e))
      end
      if k == 1 then -- B starts at zero: A has no gradient in the first step and must not move
        assert(same(s.q[0][1]:detach(), init["q.0.A"]), "A_q moved in the first step although B was zero")
        assert(s.q[0][2]:detach():abs():max():item() > 0, "B_q did not move in the first step")
      end
    end
  end)
  for _, p in ipairs { wp, lp, sp, op, base } do os.remove(p) end
  if not ok then error(err, 0) end
end

tests[#tests + 1] = { "lora_step_matches_pytorch_v9", function(T)
  reference_case(T, { lora_rank = 8, head_rank = 8, lr = 0.01 })
end }

tests[#tests + 1] = { "lora_step_matches_pytorch_deepquant_groups_bias_head16", function(T)
  reference_case(T, { lora_rank = 8, head_rank = 16, bias_tuning = true, lr = 0.01,
    lrs = { q = 0.005, v = 0.015, head = 0.02, bias = 0.03 } })
end }

-- ---------------------------------------------------------------------------------------------
tests[#tests + 1] = { "lora_state_shapes_and_init", function()
  pt.manual_seed(3)
  local model = nn.GPT(CFG)
  local s = ttt.lora_state(model, 5, { lora_rank = 8, head_rank = 16, bias_tuning = true })
  assert(#s.q[0][1]:shape() == 3)
  local function shp(t) return table.concat(t:shape(), "x") end
  assert(shp(s.q[2][1]) == "5x8x64" and shp(s.q[2][2]) == "5x64x8", shp(s.q[2][1]))
  assert(shp(s.v[0][1]) == "5x8x64" and shp(s.v[0][2]) == "5x32x8", shp(s.v[0][2]))
  assert(shp(s.head[1]) == "5x16x64" and shp(s.head[2]) == "5x1024x16", shp(s.head[2]))
  assert(shp(s.bias[1]) == "5x1x64")
  local bound = 1 / math.sqrt(64)
  assert(s.q[1][1]:abs():max():item() <= bound, "A outside U(±1/√in)")
  assert(s.q[1][1]:abs():max():item() > 0.9 * bound, "A does not fill U(±1/√in)")
  assert(s.q[1][2]:abs():max():item() == 0 and s.head[2]:abs():max():item() == 0, "B must start at zero")
  assert(#s.opt.groups == 4 and s.opt.groups[1].eps == 1e-10 and s.opt.groups[1].betas[2] == 0.95)
end }

-- ---------------------------------------------------------------------------------------------
tests[#tests + 1] = { "v9_legal_every_target_once_and_no_worse_than_base", function(T)
  local model = trained_model()
  local before = snapshot(model)
  local vb = small_val(true)
  local base = ttt.lora_eval(model, vb, with(SMALL, { adapt = false }))
  local v = small_val(true)
  local r = ttt.lora_eval(model, v, SMALL)
  local rep = r.report
  local n_targets = #small_tokens - 1
  T.eq(rep.verdict, "legal")
  T.eq(rep.targets, n_targets)
  T.eq(rep.scored_once, n_targets, "every target scored exactly once")
  T.eq(rep.scored_never, 0)
  T.eq(rep.scored_multiple, 0)
  T.eq(rep.trained_before_scored, 0)
  T.eq(rep.nll_rescaled, 0)
  local long_targets, trained = long_counts(SMALL)
  T.eq(rep.trained, trained, "targets granted for training = all but each long document's last chunk")
  T.eq(r.trained_targets, trained)
  T.eq(r.docs, { short = 1, long = 4, fallback = 0 })
  T.eq(r.phases.short.tokens, DOC_LENS[1] - 1)
  T.eq(r.phases.long.tokens, long_targets)
  T.eq(base.report.verdict, "legal")
  T.eq(base.report.scored_once, n_targets)
  T.eq(base.docs, { short = 1, long = 0, fallback = 4 })
  T.near(base.report.byte_sum, rep.byte_sum, 0, "the same targets carry the same bytes")
  print(string.format("    base bpb %.5f  TTT bpb %.5f  (%d steps, %.1fs)", base.bpb, r.bpb, r.steps, r.eval_time_ms / 1000))
  assert(r.bpb <= base.bpb, string.format("LoRA TTT bpb %.6f is worse than the base model's %.6f", r.bpb, base.bpb))
  T.near(r.submission_bpb, r.bpb, 1e-12, "one epoch: the submission's number is the ledger's")
  -- the base weights are untouched and trainable again
  for name, p in model:named_parameters() do
    assert(same(p:detach(), before[name]), name .. " changed during LoRA TTT")
    assert(p.requires_grad, name .. " lost requires_grad")
    assert(p.grad == nil, name .. " kept a gradient")
  end
end }

-- ---------------------------------------------------------------------------------------------
tests[#tests + 1] = { "illegal_options_refused_on_a_legal_ledger", function(T)
  local model = trained_model()
  local m = T.raises(function() ttt.lora_eval(model, small_val(true), with(SMALL, { epochs = 8 })) end,
    "epochs=8 rescores tokens already trained on: open the ledger with legal=false")
  assert(m:find("ttt.lora_eval", 1, true), m)
  T.raises(function() ttt.lora_eval(model, small_val(true), with(SMALL, { nll_scale = 0.98 })) end,
    "nll_scale=0.98 multiplies every NLL")
  T.raises(function() ttt.prequant(model, small_val(true), { seq_len = 64, log = false }) end,
    "ttt.prequant: pre-quant TTT trains on validation targets before they are scored")
  T.raises(function() ttt.lora_eval(model, small_val(true), with(SMALL, { chunk_size = 0 })) end,
    "opts.chunk_size = 0 must be >= 1")
  T.raises(function() ttt.lora_eval(model, small_val(true), with(SMALL, { eval_seq_len = 32 })) end,
    "opts.eval_seq_len = 32 is shorter than opts.chunk_size = 64")
  T.raises(function() ttt.lora_eval({}, small_val(true), SMALL) end, "model must be an nn.GPT")
  T.raises(function() ttt.lora_eval(model, small_val(true), with(SMALL, { epoch = 2 })) end,
    "ttt.lora_eval: unknown option 'epoch' (did you mean 'epochs'?)")
  T.raises(function() ttt.lora_eval(model, small_val(true), with(SMALL, { world = 2, rank = 2 })) end,
    "opts.rank = 2 is outside [0, world = 2)")
  T.raises(function() ttt.chunked_full(model, small_val(true), { world = 2, log = false }) end,
    "not implemented yet")
  -- a real temperature on the logits is allowed
  local r = ttt.lora_eval(model, small_val(true), with(SMALL, { temperature = 0.9, adapt = false }))
  T.eq(r.report.verdict, "legal")
end }

-- ---------------------------------------------------------------------------------------------
tests[#tests + 1] = { "deepquant_v10b_illegal_rescored_and_rescaled", function(T)
  local model = trained_model()
  local v = small_val(false)
  local o = with(ttt.presets.deepquant_v10b, SMALL)
  o.epochs = 2
  o.max_eval_seconds = 1e9
  local r = ttt.lora_eval(model, v, o)
  local rep = r.report
  local long_targets, trained = long_counts(SMALL)
  local n_targets = #small_tokens - 1
  T.eq(rep.verdict, "illegal")
  T.eq(rep.scored_multiple, long_targets, "every long-document target is scored in both epochs")
  T.eq(rep.duplicate_scorings, long_targets)
  T.eq(rep.scored_once, n_targets - long_targets, "the short document is scored once")
  T.eq(rep.nll_rescaled, 2 * long_targets, "NLL×0.98 on every TTT scoring (short documents are not rescaled)")
  T.eq(rep.trained_before_scored, 0, "within an epoch each chunk is still scored first")
  T.eq(rep.trained, trained)
  T.eq(r.steps, 2 * (r.steps // 2))
  -- the submission reports the last epoch only: its bytes are one scoring of every target
  local once = ttt.lora_eval(model, small_val(true), with(SMALL, { adapt = false }))
  T.near(r.submission_byte_sum, once.report.byte_sum, 0)
  assert(r.submission_bpb ~= rep.bpb)
  assert(r.submission_bpb < once.bpb, string.format("DeepQuant's reported %.5f should beat the base %.5f",
    r.submission_bpb, once.bpb))
end }

tests[#tests + 1] = { "wallclock_limit_falls_back_to_the_base_model", function(T)
  local model = trained_model()
  local base = ttt.lora_eval(model, small_val(true), with(SMALL, { adapt = false }))
  -- a whole-eval budget of 0 s: every long document is scored by the base model (legal, same numbers)
  local r = ttt.lora_eval(model, small_val(true), with(SMALL, { budget_seconds = 0 }))
  T.eq(r.docs, { short = 1, long = 0, fallback = 4 })
  T.eq(r.steps, 0)
  T.eq(r.report.verdict, "legal")
  T.near(r.report.nll_sum, base.report.nll_sum, 0, "fallback = base model on the chunk/window scheme")
  -- DeepQuant's limit (from the start of the long documents), fallback NLLs rescaled by 0.98
  local o = with(ttt.presets.deepquant_v10b, SMALL)
  o.max_eval_seconds = 0
  local d = ttt.lora_eval(model, small_val(false), o)
  local long_targets = long_counts(SMALL)
  T.eq(d.docs.fallback, 4)
  T.eq(d.report.nll_rescaled, long_targets)
  T.eq(d.report.scored_multiple, 0)
  T.eq(d.report.verdict, "illegal")
  -- the short document unscaled, the fallback documents' NLLs ×0.98
  local short_nll = base.report.nll_sum - base.phases.fallback.nll_sum
  T.near(d.report.nll_sum, short_nll + 0.98 * base.phases.fallback.nll_sum, 1e-9 * base.report.nll_sum)
end }

tests[#tests + 1] = { "ranks_split_the_documents_and_merge_to_every_target_once", function(T)
  local model = trained_model()
  local v = small_val(true)
  local parts = {}
  for rank = 0, 1 do
    local led = data.ledger(v.tokens, v.tables, { legal = true })
    -- every document on the short path (one forward each) keeps this quick
    parts[rank] = ttt.lora_eval(model, v, with(SMALL, { world = 2, rank = rank, zigzag = true,
      short_doc_len = 10000, ledger = led }))
  end
  -- zigzag with W = 2 over 5 documents: order 1, 2, 4, 3, 5 -> rank 0 gets 1, 4, 5; rank 1 gets 2, 3
  T.eq(parts[0].docs.short, 3)
  T.eq(parts[1].docs.short, 2)
  local merged = parts[0].ledger:merge(parts[1].ledger):report()
  T.eq(merged.verdict, "legal")
  T.eq(merged.scored_once, #small_tokens - 1)
  T.eq(merged.scored_never, 0)
end }

-- lora_seed: each document's LoRA init from its own seed, so its result does not depend on which
-- documents share its batch (or rank); without it the init comes from the generator's stream, as in
-- the records, and the batching changes the numbers
tests[#tests + 1] = { "lora_seed_makes_documents_independent_of_their_batch", function(T)
  local s3 = ttt.lora_state(trained_model(), 3, { seeds = { 11, 22, 33 } })
  local before = pt.get_rng_state()
  local s1 = ttt.lora_state(trained_model(), 1, { seeds = { 22 } })
  T.eq(pt.get_rng_state(), before, "the generator's state is restored")
  assert(same(s3.q[1][1]:narrow(1, 2, 1):detach(), s1.q[1][1]:detach()), "element 2's A differs from seed 22's alone")
  assert(same(s3.head[1]:narrow(1, 2, 1):detach(), s1.head[1]:detach()))
  assert(not same(s3.q[1][1]:narrow(1, 1, 1):detach(), s1.q[1][1]:detach()))
  T.raises(function() ttt.lora_state(trained_model(), 2, { seeds = { 1 } }) end,
    "one integer seed per batch element (2)")
  local model = trained_model()
  local r = {}
  for _, bd in ipairs { 1, 4 } do
    r[bd] = ttt.lora_eval(model, small_val(true), with(SMALL, { batch_docs = bd, lora_seed = 5 }))
    pt.manual_seed(99)
    r[-bd] = ttt.lora_eval(model, small_val(true), with(SMALL, { batch_docs = bd }))
  end
  print(string.format("    lora_seed: batch 1 vs 4 bpb %.10f vs %.10f; generator stream: %.10f vs %.10f", r[1].bpb,
    r[4].bpb, r[-1].bpb, r[-4].bpb))
  -- measured 8e-10 relative: the batch shape moves the last bits of the f32 logits, and Adam carries them on
  T.near(r[4].bpb, r[1].bpb, 1e-8 * r[1].bpb, "with lora_seed only the batch shape's last bits differ")
  T.eq(r[4].report.scored_once, r[1].report.scored_once)
  assert(math.abs(r[-4].bpb - r[-1].bpb) > 1e-7 * r[1].bpb, "without lora_seed the batching should change the init")
end }

tests[#tests + 1] = { "max_doc_len_moves_long_documents_to_the_single_forward_path", function(T)
  local model = trained_model()
  local r = ttt.lora_eval(model, small_val(true), with(SMALL, { max_doc_len = 500, budget_seconds = 0 }))
  T.eq(r.docs, { short = 4, long = 0, fallback = 1 }, "documents of 520, 610, 700 > 500 take the short path")
  T.eq(r.phases.short.tokens, 299 + 519 + 609 + 699)
  T.eq(r.report.scored_once, #small_tokens - 1)
end }

-- ---------------------------------------------------------------------------------------------
tests[#tests + 1] = { "chunked_full_598_legal_frozen_blocks", function(T)
  local model = trained_model()
  local before = snapshot(model)
  local v = stream_val(1601, true) -- 1600 targets: chunks of 512 -> 4 chunks, the last 64 targets long
  local r = ttt.chunked_full(model, v, { seq_len = 64, stride = 32, chunk_tokens = 512, epochs = 2, lr = 0.002,
    batch_seqs = 16, train_batch_seqs = 8, log = false })
  local rep = r.report
  T.eq(rep.verdict, "legal")
  T.eq(rep.scored_once, 1600)
  T.eq(rep.scored_never, 0)
  T.eq(rep.trained, 3 * 512, "chunks 1..3 trained on exactly their targets, the last chunk never")
  T.eq(rep.trained_before_scored, 0)
  T.eq(r.chunks, 4)
  T.eq(r.trained_chunks, 3)
  T.eq(r.steps, 6)
  local frozen = 0
  for name, p in model:named_parameters() do
    local blk = name:match("^blocks%.([01])%.")
    if blk then
      frozen = frozen + p:numel()
      assert(same(p:detach(), before[name]), name .. " is frozen but changed")
    end
    assert(p.requires_grad, name .. " lost requires_grad")
  end
  T.eq(r.frozen, frozen)
  assert(not same(model:get("blocks.2.mlp.fc.weight"):detach(), before["blocks.2.mlp.fc.weight"]),
    "a trainable matrix did not move")
  assert(r.phases.score.tokens == 1600 and r.phases.train.tokens == 2 * 3 * 512)
  -- a whole-eval budget of 0 s: every chunk is still scored once, none trained
  local b = ttt.chunked_full(model, stream_val(1601, true), { seq_len = 64, stride = 32, chunk_tokens = 512,
    budget_seconds = 0, log = false })
  T.eq(b.report.scored_once, 1600)
  T.eq(b.trained_chunks, 0)
  T.eq(b.report.trained, 0)
  T.raises(function() ttt.chunked_full(model, v, { seq_len = 64, strides = 32 }) end,
    "ttt.chunked_full: unknown option 'strides' (did you mean 'stride'?)")
end }

-- #598's late-QAT flag during TTT (§5.5): with opts.qat the training forwards see the fake-quantized
-- weights, so one SGD step (momentum 0, no clip) moves every weight exactly as a QAT-less step from
-- the fake-quantized weights would (STE: the gradient at q(w) reaches w); the scoring forwards use the
-- plain weights: chunk 0 is scored as without QAT, chunk 1 as the plain trained weights score it.
-- lr = 1 makes the update large against the f32 rounding of w − lr·g (measured 7e-6 relative, against
-- 0.2 between the QAT and the QAT-less updates).
tests[#tests + 1] = { "chunked_full_598_qat_on_training_forwards_only", function(T)
  local train = require "proteus.train"
  local QAT = { names = { "^blocks%..*%.weight$" }, bits = 6 }
  local o = { seq_len = 64, stride = 32, chunk_tokens = 512, epochs = 1, lr = 1, momentum = 0, clip = 0,
    freeze = {}, batch_seqs = 16, train_batch_seqs = 3, log = false } -- 8 sequences: 3 micro-batches
  local names = train.qat_targets(trained_model(), QAT.names)
  local is_q = {}
  for _, n in ipairs(names) do is_q[n] = true end
  -- A: plain weights W0, QAT on during training
  local a = trained_model()
  local w0 = snapshot(a)
  local ra = ttt.chunked_full(a, stream_val(1025, true), with(o, { qat = QAT }))
  T.eq(ra.trained_chunks, 1)
  T.eq(ra.report.scored_once, 1024)
  -- B: weights replaced by their fake-quantized values, no QAT
  local b = trained_model()
  pt.no_grad(function()
    for _, n in ipairs(names) do b:get(n):copy_(train.fake_quant(w0[n], 6)) end
  end)
  local wb = snapshot(b)
  ttt.chunked_full(b, stream_val(1025, true), o)
  -- C: plain weights, no QAT (the update QAT must change)
  local cm = trained_model()
  local rc = ttt.chunked_full(cm, stream_val(1025, true), o)
  local worst, vs_plain = 0, 0
  for name, p in a:named_parameters() do
    local da = p:detach() - w0[name]
    local db = b:get(name):detach() - wb[name]
    local dc = cm:get(name):detach() - w0[name]
    local nrm = da:pow(2):sum():item() ^ 0.5
    if nrm > 0 then
      worst = math.max(worst, (da - db):pow(2):sum():item() ^ 0.5 / nrm)
      if is_q[name] then vs_plain = math.max(vs_plain, (da - dc):pow(2):sum():item() ^ 0.5 / nrm) end
    end
  end
  print(string.format("    QAT step vs step from q(W): relative %.2e; vs the QAT-less step: %.2e", worst, vs_plain))
  assert(worst < 1e-4, string.format("the QAT update differs from the fake-quantized model's by %.3e", worst))
  assert(vs_plain > 1e-3, string.format("QAT changed the update by only %.3e", vs_plain))
  -- scoring: chunk 0 before any training is the same with and without QAT ...
  local function chunk_nll(model, ci)
    local v = stream_val(1025, true)
    local plan = eval.sliding_plan(1024, 64, 32)
    local rows, pos, xs, k0 = {}, {}, {}, 0
    for k = 0, plan.count - 1 do
      local ws, wlen, from = plan.window(k)
      if (ws + from) // 512 == ci then
        k0 = k0 + 1
        xs[#xs + 1] = v.tokens:tensor(ws, ws + wlen)
        if wlen < 64 then xs[#xs + 1] = pt.zeros({ 64 - wlen }, "i64") end
        for j = from, wlen - 1 do
          rows[#rows + 1] = (k0 - 1) * 64 + j
          pos[#pos + 1] = ws + j + 1
        end
      end
    end
    local z = pt.no_grad(function() return model:logits(pt.cat(xs, 1):reshape({ k0, 64 })) end)
    local zc = z:index_select(1, pt.tensor(rows, "i64")):contiguous()
    v.ledger:score(pos, zc, { softcap = model.cfg.logit_softcap or 0 })
    return v.ledger:report().nll_sum
  end
  local plain0 = trained_model()
  local n0 = chunk_nll(plain0, 0)
  -- ... and chunk 1 is scored with the trained PLAIN weights (not their fake-quantized values)
  local n1 = chunk_nll(a, 1)
  T.near(ra.report.nll_sum, n0 + n1, 1e-6 * ra.report.nll_sum, "scoring forwards use the plain weights")
  local aq = trained_model()
  pt.no_grad(function()
    for name, p in a:named_parameters() do
      aq:get(name):copy_(is_q[name] and train.fake_quant(p:detach(), 6) or p:detach())
    end
  end)
  local n1q = chunk_nll(aq, 1)
  assert(math.abs(n1q - n1) > 1e-4 * n1, "the fake-quantized weights score chunk 1 like the plain ones: no contrast")
  T.near(rc.report.nll_sum - chunk_nll(cm, 1), n0, 1e-6 * n0, "chunk 0 is scored by the untrained weights")
  T.raises(function() ttt.chunked_full(trained_model(), stream_val(1025, true), with(o, { qat = { name = "x" } })) end,
    "unknown opts.qat field 'name'")
end }

-- ---------------------------------------------------------------------------------------------
tests[#tests + 1] = { "prequant_1539_illegal_trained_before_scored", function(T)
  local model = trained_model()
  local before = snapshot(model)
  local v = stream_val(641, false) -- 640 targets = 10 sequences of 64
  local r = ttt.prequant(model, v, { seq_len = 64, batch_tokens = 256, epochs = 2, lr = 5e-4, log = false })
  T.eq(r.epochs, 2)
  T.eq(r.steps, 2 * 3, "batches start every 256 tokens: 3 per epoch")
  T.eq(r.trained_sequences, 2 * (5 + 5 + 2), "4+1 sequences per batch (boundary included), 2 in the last")
  T.eq(r.report.trained_before_scored, 640)
  T.eq(r.report.verdict, "illegal")
  assert(same(model:get("blocks.1.attn_scale"):detach(), before["blocks.1.attn_scale"]), "frozen control tensor moved")
  assert(not same(model:get("blocks.1.attn.c_q.weight"):detach(), before["blocks.1.attn.c_q.weight"]),
    "#1539's frozen blocks keep their matrices trainable")
  -- ... then the (quantized) model is scored through the same ledger: the verdict stays illegal
  local e = eval.standard(v, function(x) return model:logits(x) end, { seq_len = 64, ledger = v.ledger, log = false })
  T.eq(e.report.verdict, "illegal")
  T.eq(e.report.scored_once, 640)
  T.eq(e.report.trained_before_scored, 640)
end }

return tests
