-- tests/lua/test_recipe_configs.lua — the recipes' `full` presets reproduce the spec's numbers
-- (../shared/spec/parameter-golf.md §2–§6): parameter counts of the nn.GPT built from the resolved
-- config (init = "default" for speed), batch tokens and per-GPU sequences, sequence lengths, learning
-- rates, schedule constants (read back through the job's schedule function), averaging, pruning,
-- quantization and TTT constants; v9's as_run preset differs from the card exactly as §3.1/§9 say;
-- every recipe declares its legality. The knobs are also traced to where they act: the optimizers
-- each recipe builds (over a tiny model with the preset's other knobs), the quantization policy it
-- names, and the options its main passes to the trainer, proteus.ttt and proteus.quant (the main
-- runs over a job whose steps only record their arguments).
--
--   build/proteus tests/run.lua tests/lua/test_recipe_configs.lua
local recipe = require "proteus.recipe"
local nn = require "proteus.nn"

local ROOT = (os.getenv("PROTEUS_HOME") or ".") .. "/lua/recipes/"

local function path_of(name)
  local p = ROOT .. name .. ".lua"
  local f = io.open(p, "r")
  if f then f:close() return p end
  return p .. ".wip" -- v9 is developed as .wip until its demo preset runs end to end
end

local function load(name) return recipe.load(path_of(name)) end

local function resolve(name, preset)
  local r = load(name)
  local cfg, info = r.resolve({ "preset=" .. (preset or "full") }, false, { has_gpu = false })
  return cfg, r.def, info
end

local function params_of(def, cfg)
  local c = def.model(cfg)
  c.init = "default"
  return nn.GPT(c):num_params()
end

-- a job over a resolved config without a run directory (schedules, batch shape, optimizer split)
local function fake_job(def, cfg, world, model)
  return setmetatable({ def = def, cfg = cfg, world = world or 8, rank = 0, model = model,
    run = { log = function() end } }, recipe.Job)
end

-- the optimizers a recipe builds over a tiny model with the preset's other knobs (lrs, wd, betas, ...)
local TINY = { num_layers = 4, model_dim = 32, num_heads = 2, num_kv_heads = 1, bigram_dim = 8, bigram_vocab_size = 64,
  ve_dim = 8, ve_layers = { 3 }, mlp_hidden = 64, vocab_size = 64, parallel_residual_start = 2, recur_layers = { 1 } }
local function tiny_optimizers(def, cfg)
  local cc = {}
  for k, v in pairs(cfg) do cc[k] = v end
  for k, v in pairs(TINY) do if cc[k] ~= nil then cc[k] = v end end
  local m = nn.GPT(def.model(cc))
  local opts = def.optimizers(fake_job(def, cc, 1, m))
  local by_kind = {}
  for _, o in ipairs(opts) do
    by_kind[o.kind] = by_kind[o.kind] or {}
    table.insert(by_kind[o.kind], o)
  end
  -- every group of every optimizer, with the names it holds
  local n = 0
  for _, o in ipairs(opts) do n = n + #o:parameters() end
  return opts, by_kind, m, n
end

local function names_of(group)
  local r = {}
  for i = 1, #group.params do r[#r + 1] = group.names[i] end
  table.sort(r)
  return r
end

-- Runs a recipe's main over a job whose steps only record what the main passes them (no model, no
-- data): the knobs must reach proteus.ttt / proteus.quant / the trainer with the spec's values.
local function trace_main(name, args)
  local r = load(name)
  local cfg = r.resolve(args, false, { has_gpu = false })
  local calls = { ttt = {}, steps = {}, quant = {} }
  local model = { cfg = { recurrence = false, parallel_start = cfg.parallel_residual_start },
    layers = function() return {} end }
  local ledger = { name = "the val ledger" }
  local val = { ledger = ledger, tokens = {} }
  local ttt_stub = setmetatable({}, { __index = function(_, fn)
    return function(m, v, opts)
      assert(m == model and v == val, fn .. ": not called on the job's model and validation set")
      calls.ttt[#calls.ttt + 1] = { fn = fn, opts = opts }
      return { bpb = 1.0, loss = 1.0, submission_bpb = 0.9, docs = {}, steps = 0, epochs = 0, epoch_losses = {},
        report = { trained_before_scored = 0 } }
    end
  end })
  local function step(label) return function(_, ...) calls.steps[#calls.steps + 1] = { label, ... } end end
  local job = { def = r.def, cfg = cfg, world = 1, rank = 0, out = { eval = {} }, model = model,
    build_model = function() return model end, val = function() return val end, ttt = function() return ttt_stub end,
    log = function() end, record_ttt = step("record_ttt"), results = step("results"), average = step("average"),
    eval_standard = step("eval_standard"), roundtrip = step("roundtrip"), eval_sliding = step("eval_sliding"),
    write_artifact = step("write_artifact"), prune = step("prune"), train = step("train") }
  local saved = package.loaded["proteus.quant"]
  package.loaded["proteus.quant"] = {
    generate_calibration = function(m, n, len, temp, seed, o)
      calls.quant.calib = { n = n, len = len, temp = temp, seed = seed, batch = o and o.batch,
        recurrence = m.cfg.recurrence, parallel = m.cfg.parallel_start }
      return { "calib" }
    end,
    collect_hessians = function(m, batches, o)
      calls.quant.hessians = { batches = batches, damp = o and o.damp, recurrence = m.cfg.recurrence,
        parallel = m.cfg.parallel_start }
      return { H = true }
    end,
  }
  local ok, err = pcall(r.main, job)
  package.loaded["proteus.quant"] = saved
  if not ok then error(err, 0) end
  local by = {}
  for _, c in ipairs(calls.steps) do by[c[1]] = by[c[1]] or c end
  return calls, by, cfg, model, ledger
end

local function lr_at(job, step, elapsed_ms)
  return job:lr_schedule() { step = step, elapsed_ms = elapsed_ms, max_steps = job.cfg.iterations,
    max_wallclock_ms = job.cfg.max_wallclock_seconds > 0 and job.cfg.max_wallclock_seconds * 1000 or nil }
end

return {
  compute_dtype_and_cuda_graph_knobs = function(T)
    -- every recipe has them (recipe.COMMON); auto = f32 on the CPU, bf16 on a GPU; cuda_graph reaches train.run
    for _, name in ipairs { "baseline", "v9_lora_ttt", "gepa_legal_ttt", "sp8192_prequant_ttt", "deepquant_v10b" } do
      local cfg, def = resolve(name, "smoke")
      T.eq(cfg.compute_dtype, "auto", name)
      T.eq(cfg.cuda_graph, false, name)
      local job = fake_job(def, cfg, 1)
      job.device = "cpu"
      T.eq(job:model_config().compute_dtype, "f32", name .. " auto on the CPU")
      job.device = "cuda"
      T.eq(job:model_config().compute_dtype, "bf16", name .. " auto on a GPU")
      cfg.compute_dtype = "f32"
      T.eq(job:model_config().compute_dtype, "f32", name .. " f32 on a GPU when asked")
    end
  end,

  legality_declared = function(T)
    local want = { baseline = true, v9_lora_ttt = true, gepa_legal_ttt = true, sp8192_prequant_ttt = false,
      deepquant_v10b = false, eval_artifact = true }
    for name, legal in pairs(want) do T.eq(load(name).def.legal, legal, name) end
  end,

  every_recipe_has_full_demo_smoke = function(T)
    for _, name in ipairs { "baseline", "v9_lora_ttt", "gepa_legal_ttt", "sp8192_prequant_ttt", "deepquant_v10b" } do
      local d = load(name).def
      for _, p in ipairs { "full", "demo", "smoke" } do assert(d.presets[p], name .. " lacks preset " .. p) end
    end
  end,

  baseline_full = function(T)
    local c, d = resolve("baseline")
    T.eq(params_of(d, c), 17059912)
    T.eq(c.train_batch_tokens, 524288); T.eq(c.train_seq_len, 1024); T.eq(c.eval_seq_len, 1024)
    T.eq(c.iterations, 20000); T.eq(c.warmdown_iters, 1200); T.eq(c.warmup_steps, 20)
    T.eq(c.max_wallclock_seconds, 600.0)
    T.eq(c.matrix_lr, 0.04); T.eq(c.scalar_lr, 0.04); T.eq(c.tied_embed_lr, 0.05)
    T.eq(c.muon_momentum, 0.95); T.eq(c.muon_momentum_warmup_start, 0.85); T.eq(c.muon_momentum_warmup_steps, 500)
    T.eq(c.muon_backend_steps, 5); T.eq(c.beta1, 0.9); T.eq(c.beta2, 0.95); T.eq(c.adam_eps, 1e-8)
    T.eq(c.grad_clip_norm, 0.0); T.eq(c.rope_base, 10000.0); T.eq(c.qk_gain_init, 1.5); T.eq(c.logit_softcap, 30.0)
    T.eq(c.quant_policy, "baseline")
    local job = fake_job(d, c, 8)
    local seqs, accum = job:batch_shape()
    T.eq(seqs, 64); T.eq(accum, 1)                  -- 524,288 / 8 GPUs / 1024
    seqs, accum = fake_job(d, c, 1):batch_shape()
    T.eq(seqs, 64); T.eq(accum, 8)                  -- grad_accum = 8 / W
    -- §2.4 wallclock warmdown: 1200 steps of 40 ms = 48 s; at 576 s elapsed 24 s remain -> 0.5
    T.near(lr_at(job, 14400, 576000), 0.5, 1e-12)
    T.eq(lr_at(job, 100, 4000), 1.0)
    -- §2.1 model: no NTK scaling, PyTorch default init, relu², plain skips, nothing extra
    local mc = d.model(c)
    T.eq(mc.num_layers, 9); T.eq(mc.model_dim, 512); T.eq(mc.mlp_mult, 2); T.eq(mc.num_kv_heads, 4)
    T.eq(mc.rope_train_seq_len, nil); T.eq(mc.init, nil); T.eq(mc.tied_embed_init_std, 0.005)
    local g = nn.gpt_config(mc)
    T.eq(g.init, "default"); T.eq(g.mlp_act, "relu2"); T.eq(g.skip_mode, "plain"); T.eq(g.bigram_vocab_size, 0)
    T.eq(g.smear_gate, false); T.eq(g.depth_scale, false); T.eq(g.ln_scale, false); T.eq(#g.xsa_layers, 0)
    -- §1.4: VAL_BATCH_SIZE 524,288 over W·accum = 8 -> 65,536 tokens = 64 windows of 1024 per forward
    T.eq(c.val_batch_size, 524288)
    T.eq(recipe.val_batch_seqs(job), 64); T.eq(recipe.val_batch_seqs(fake_job(d, c, 1)), 64)
    -- §2.5 export: int8 per-row + zlib 9
    local qp = require("proteus.quant").policy[c.quant_policy]
    T.eq(qp.codec, "zlib"); T.eq(qp.level, 9)
    -- §2.3 optimizers as built: Adam (no wd) on tok_emb 0.05, Muon 0.04 (ns 5, μ 0.95, no wd), scalars 0.04
    local opts, _, m, n = tiny_optimizers(d, c)
    local total = 0
    for _ in m:named_parameters() do total = total + 1 end
    T.eq(n, total)                                  -- every tensor has an optimizer
    local adam_e, muon, adam_s = table.unpack(opts)
    T.eq(adam_e.kind, "AdamW"); T.eq(muon.kind, "Muon"); T.eq(adam_s.kind, "AdamW")
    T.eq(names_of(adam_e.groups[1]), { "tok_emb.weight" })
    T.eq(adam_e.groups[1].lr, 0.05); T.eq(adam_e.groups[1].weight_decay, 0); T.eq(adam_e.groups[1].betas, { 0.9, 0.95 })
    T.eq(adam_e.groups[1].eps, 1e-8)
    T.eq(muon.groups[1].lr, 0.04); T.eq(muon.groups[1].momentum, 0.95); T.eq(muon.groups[1].ns_steps, 5)
    T.eq(muon.groups[1].weight_decay, 0); T.eq(muon.groups[1].coeffs, "ns5"); T.eq(muon.groups[1].round, "scaled")
    T.eq(#muon.groups[1].params, 6 * 4)              -- c_q, c_k, c_v, proj, fc, proj of each block
    T.eq(adam_s.groups[1].lr, 0.04); T.eq(adam_s.groups[1].weight_decay, 0)
    -- the main: no pruning, no TTT, int8 artifact, pre-quant and roundtrip evaluations
    local calls, by = trace_main("baseline", { "preset=full" })
    T.eq(#calls.ttt, 0); T.eq(by.prune, nil); T.eq(by.write_artifact[2], "baseline")
    T.eq(by.eval_standard[2], "pre_quant"); assert(by.roundtrip, "baseline: no roundtrip evaluation")
  end,

  v9_full_is_the_card = function(T)
    local c, d = resolve("v9_lora_ttt")
    T.eq(params_of(d, c), 26829913)
    T.eq(c.train_batch_tokens, 786432); T.eq(c.train_seq_len, 1024); T.eq(c.eval_seq_len, 2048)
    local seqs, accum = fake_job(d, c, 8):batch_shape()
    T.eq(seqs, 96); T.eq(accum, 1)                  -- 96 sequences per GPU (§3.1)
    T.eq(c.iterations, 20000); T.eq(c.warmdown_iters, 3000); T.eq(c.warmup_steps, 20); T.eq(c.grad_clip_norm, 0.3)
    T.eq(c.matrix_lr, 0.025); T.eq(c.scalar_lr, 0.02); T.eq(c.tied_embed_lr, 0.03)
    T.eq(c.muon_momentum, 0.99); T.eq(c.muon_momentum_warmup_start, 0.92); T.eq(c.muon_momentum_warmup_steps, 1500)
    T.eq(c.muon_weight_decay, 0.04); T.eq(c.adam_weight_decay, 0.04)
    T.eq(c.ema_decay, 0.997); T.eq(c.ema_every, 1); T.eq(c.swa_enabled, false)
    T.eq(c.prune_frac, 0.03); T.eq(c.quant_policy, "proteus_card"); T.eq(c.train_bigram_smear, true)
    T.eq(d.model(c).xsa_layers, { 7, 8, 9, 10 })
    T.eq(d.model(c).rope_base, 50000.0); T.eq(d.model(c).mlp_mult, 3); T.eq(d.model(c).bigram_vocab_size, 2048)
    -- TTT (§3.7) = proteus.ttt's v9 preset
    local p = require("proteus.ttt").presets.v9
    T.eq(c.ttt_lora_rank, p.lora_rank); T.eq(c.ttt_lora_lr, p.lr); T.eq(c.ttt_chunk_size, p.chunk_size)
    T.eq(c.ttt_eval_seq_len, p.eval_seq_len); T.eq(c.ttt_batch_size, p.batch_docs)
    T.eq(c.ttt_min_doc_len, p.short_doc_len); T.eq(c.ttt_epochs, 1); T.eq(c.ttt_eps, 1e-10)
    T.eq({ c.ttt_beta1, c.ttt_beta2 }, p.betas)
    T.eq(c.ttt_lora_rank, 8); T.eq(c.ttt_chunk_size, 256); T.eq(c.ttt_min_doc_len, 512)
    -- §3.1–3.3 model knobs as nn.GPT sees them
    local mc = d.model(c)
    T.eq(mc.rope_train_seq_len, 1024); T.eq(mc.rope_dims, nil); T.eq(mc.init, "orthogonal"); T.eq(mc.depth_scale, true)
    T.eq(mc.smear_gate, true); T.eq(mc.bigram_dim, 128); T.eq(mc.logit_softcap, 30.0); T.eq(mc.qk_gain_init, 1.5)
    T.eq(mc.tied_embed_init_std, 0.005)
    T.eq(c.muon_backend_steps, 5); T.eq(c.beta1, 0.9); T.eq(c.beta2, 0.95); T.eq(c.adam_eps, 1e-8)
    T.eq(c.eval_stride, 0); T.eq(c.ttt_enabled, true)
    -- §2.4 wallclock warmdown with WARMDOWN_ITERS 3000: at ~86 ms/step it starts at ~342 s (§3.4)
    local job = fake_job(d, c, 8)
    T.eq(lr_at(job, 3900, 3900 * 86), 1.0)
    T.near(lr_at(job, 5000, 5000 * 86), (600000 - 5000 * 86) / (3000 * 86), 1e-12)
    -- §3.6 (card: GPTQ-lite per row) zstd-22, tok_emb fp16
    local quant = require "proteus.quant"
    local qp = quant.policy[c.quant_policy]
    T.eq(qp.codec, "zstd"); T.eq(qp.level, 22); T.eq(qp.first("tok_emb.weight").method, "fp16")
    T.eq(qp.large("blocks.0.attn.c_q.weight", "attn").method, "int6_gptq_lite_row")
    -- §3.4 optimizers as built: AdamW(tok_emb 0.03) -> Muon(0.025 card, wd 0.04, NS5) -> AdamW(scalars 0.02)
    local opts = tiny_optimizers(d, c)
    local adam_e, muon, adam_s = table.unpack(opts)
    T.eq(adam_e.groups[1].lr, 0.03); T.eq(adam_e.groups[1].weight_decay, 0.04)
    T.eq(muon.groups[1].lr, 0.025); T.eq(muon.groups[1].weight_decay, 0.04); T.eq(muon.groups[1].momentum, 0.99)
    T.eq(muon.groups[1].ns_steps, 5)
    T.eq(adam_s.groups[1].lr, 0.02); T.eq(adam_s.groups[1].weight_decay, 0.04); T.eq(adam_s.groups[1].betas, { 0.9, 0.95 })
    -- the main: card pruning 3%, GPTQ-lite artifact, no sliding eval, LoRA TTT with the §3.7 constants
    local calls, by = trace_main("v9_lora_ttt", { "preset=full" })
    T.eq(by.prune[2], 0.03); T.eq(by.write_artifact[2], "proteus_card"); T.eq(by.eval_sliding, nil)
    assert(by.average, "v9: the averaging step is not called")
    T.eq(#calls.ttt, 1); T.eq(calls.ttt[1].fn, "lora_eval")
    local o = calls.ttt[1].opts
    for _, k in ipairs { "chunk_size", "eval_seq_len", "batch_docs", "short_doc_len", "lora_rank", "head_rank", "lr",
      "betas", "eps", "epochs" } do
      T.eq(o[k], p[k], "lora_eval opts." .. k)
    end
    T.eq(o.lrs, nil); T.eq(o.nll_scale, nil); T.eq(o.bias_tuning, nil); T.eq(o.reset_between_epochs, nil)
    local _, rby = trace_main("v9_lora_ttt", { "preset=as_run" })
    T.eq(rby.prune[2], 0.05); T.eq(rby.write_artifact[2], "proteus_as_run")
  end,

  v9_as_run_differs_as_the_logs_show = function(T)
    local card, d = resolve("v9_lora_ttt")
    local run = resolve("v9_lora_ttt", "as_run")
    T.eq(params_of(d, run), 26829913)
    T.eq(d.model(run).xsa_layers, {})
    T.eq(run.matrix_lr, 0.02); T.eq(run.prune_frac, 0.05); T.eq(run.quant_policy, "proteus_as_run")
    T.eq(run.ema_decay, 0.999); T.eq(run.ema_every, 10); T.eq(run.swa_enabled, true)
    T.eq(run.swa_every, 50); T.eq(run.swa_threshold, 0.2); T.eq(run.train_bigram_smear, false)
    -- exactly these knobs differ
    local diff = {}
    for _, k in ipairs(d.keys) do
      if type(card[k]) ~= "table" and card[k] ~= run[k] then diff[#diff + 1] = k end
    end
    table.sort(diff)
    T.eq(diff, { "ema_decay", "ema_every", "matrix_lr", "prune_frac", "quant_policy", "swa_enabled", "train_bigram_smear",
      "xsa_last_n" })
    -- the optimizer split: the card trains BigramHash + SmearGate, the run leaves them at init
    local small = { num_layers = 2, model_dim = 32, num_heads = 2, num_kv_heads = 1, bigram_dim = 8, bigram_vocab_size = 64 }
    local function counts(cfg)
      local cc = {}
      for k, v in pairs(cfg) do cc[k] = v end
      for k, v in pairs(small) do cc[k] = v end
      local m = nn.GPT(d.model(cc))
      local opts = d.optimizers(fake_job(d, cc, 1, m))
      local n = {}
      for i, o in ipairs(opts) do n[i] = #o:parameters() end
      return n, m
    end
    local nc = counts(card)
    local nr = counts(run)
    T.eq(nr, { 1, 12, 9 })                          -- tok_emb; 6 matrices × 2 blocks; 4 scalars × 2 + skip weights
    T.eq(nc, { 1, 13, 12 })                         -- + bigram.proj (Muon); + bigram table, scale, smear gate
  end,

  pr1539_full = function(T)
    local c, d = resolve("sp8192_prequant_ttt")
    T.eq(params_of(d, c), 36311132)
    local rc = {}
    for k, v in pairs(c) do rc[k] = v end
    T.eq(c.vocab_size, 8192); T.eq(c.train_seq_len, 2048); T.eq(c.eval_seq_len, 2048); T.eq(c.train_batch_tokens, 786432)
    local seqs, accum = fake_job(d, c, 8):batch_shape()
    T.eq(seqs, 48); T.eq(accum, 1)                  -- 48 sequences of 2048 per GPU (§4.1)
    T.eq(c.qk_gain_init, 5.25); T.eq(c.rope_dims, 16); T.eq(d.model(c).xsa_layers, { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 })
    T.eq(c.ve_dim, 44); T.eq(c.ve_layers, { 9, 10 }); T.eq(c.parallel_residual_start, 7)
    T.eq(c.recur_layers, { 3, 4, 5 }); T.eq(c.recur_start_step, 3000); T.eq(c.bigram_vocab_size, 0)
    T.eq(c.matrix_lr, 0.022); T.eq(c.muon_weight_decay, 0.095); T.eq(c.muon_backend_steps, 4); T.eq(c.muon_row_norm, true)
    T.eq(c.tied_embed_lr, 0.03); T.eq(c.embed_wd, 0.095); T.eq(c.scalar_lr, 0.02); T.eq(c.adam_wd, 0.02)
    T.eq(c.muon_momentum, 0.99); T.eq(c.muon_momentum_warmup_start, 0.92); T.eq(c.muon_momentum_warmup_steps, 1500)
    T.eq(c.grad_clip_norm, 0.3); T.eq(c.ema_decay, 0.9965); T.eq(c.late_qat_threshold, 0.15)
    T.eq(c.warmdown_frac, 0.72); T.eq(c.lr_floor, 0.0)
    -- §4.3 schedule: lr_mul 1 while elapsed/600 s <= 0.28, then linear to 0
    local job = fake_job(d, c, 8)
    T.eq(lr_at(job, 1000, 0.28 * 600000), 1.0)
    T.near(lr_at(job, 3000, 300000), 1 - (0.5 - 0.28) / 0.72, 1e-12)
    T.near(lr_at(job, 5000, 600000), 0.0, 1e-12)
    -- pre-quant TTT (§4.4) and GPTQ (§4.5)
    T.eq(c.prequant_ttt_epochs, 6); T.eq(c.prequant_ttt_lr, 5e-4); T.eq(c.prequant_ttt_lr_min, 5e-5)
    T.eq(c.prequant_ttt_batch_tokens, 65536); T.eq(c.prequant_ttt_grad_clip, 1.0)
    T.eq(c.gptq_calib_seqs, 32); T.eq(c.gptq_calib_temp, 0.8); T.eq(c.gptq_calib_batch, 8)
    T.eq(c.quant_policy, "pr1539_gptq"); T.eq(c.eval_stride, 64)
    -- with recurrence on the count is the same (§4.2)
    local mc = d.model(c)
    mc.recurrence, mc.init = true, "default"
    T.eq(nn.GPT(mc):num_params(), 36311132)
    -- §4.2 model knobs as nn.GPT sees them
    mc = d.model(c)
    T.eq(mc.mlp_act, "leaky_relu2"); T.eq(mc.mlp_mult, 4); T.eq(mc.ln_scale, true); T.eq(mc.skip_mode, "plain")
    T.eq(mc.smear_gate, true); T.eq(mc.init, "orthogonal"); T.eq(mc.rope_train_seq_len, 1024); T.eq(mc.rope_base, 10000.0)
    T.eq(mc.parallel_start, 7); T.eq(mc.recurrence_layers, { 3, 4, 5 }); T.eq(mc.recurrence, false)
    T.eq(mc.logit_softcap, 30.0); T.eq(c.warmup_steps, 20); T.eq(c.iterations, 20000); T.eq(c.max_wallclock_seconds, 600.0)
    -- §4.5 export: SDClip GPTQ int6, int8 SDClip k=20 embedding, int8 percentile VE table, Brotli 11 + byte shuffle
    local qp = require("proteus.quant").policy[c.quant_policy]
    T.eq(qp.codec, "brotli"); T.eq(qp.level, 11); T.eq(qp.shuffle, true)
    T.eq(qp.large("blocks.0.mlp.fc.weight", "mlp"), { method = "int6_gptq", k = 12.85 })
    T.eq(qp.large("tok_emb.weight", "embed"), { method = "int8_sdclip", k = 20 })
    T.eq(qp.large("ve_shared.embed.weight", "other").method, "int8_row_clip")
    T.eq(qp.small("blocks.0.attn_scale").method, "fp16")
    -- §4.3 optimizers as built
    local opts, by_kind, m, n = tiny_optimizers(d, c)
    local total = 0
    for _ in m:named_parameters() do total = total + 1 end
    T.eq(n, total)
    local emb, rest = table.unpack(by_kind.AdamW)
    local muon = by_kind.Muon[1]
    T.eq(names_of(emb.groups[1]), { "tok_emb.weight", "ve_shared.embed.weight" })
    T.eq(emb.groups[1].lr, 0.03); T.eq(emb.groups[1].weight_decay, 0.095); T.eq(emb.groups[1].betas, { 0.9, 0.95 })
    T.eq(rest.groups[1].lr, 0.02); T.eq(rest.groups[1].weight_decay, 0.02)
    local rn = {}
    for _, x in ipairs(names_of(rest.groups[1])) do rn[x] = true end
    for _, x in ipairs { "ve_shared.proj.weight", "ve_shared.scale", "ve_layer_scales", "lane_merge", "smear.gate",
      "skip_weights", "blocks.0.resid_mix", "blocks.0.attn.q_gain" } do
      assert(rn[x], "#1539 scalar AdamW group lacks " .. x)
    end
    local g = muon.groups[1]
    T.eq(g.lr, 0.022); T.eq(g.weight_decay, 0.095); T.eq(g.momentum, 0.99); T.eq(g.coeffs, "polar_express")
    T.eq(g.ns_steps, 4); T.eq(g.row_norm, true); T.eq(g.round, "unit"); T.eq(#g.params, 6 * 4)
    -- the main: clip before the reduction, QAT on the VE projection only, recurrence after step 3000,
    -- pre-quant TTT (§4.4), calibration with recurrence on, Hessians from the plain U-Net (§4.5),
    -- the sliding eval on the ledger the val training used
    local calls, by, _, model, ledger = trace_main("sp8192_prequant_ttt", { "preset=full", "tokenizer_path=x.model" })
    local to = by.train[2]
    T.eq(to.clip_when, "before"); T.eq(to.qat_names, { "^ve_shared%.proj%.weight$" })
    model.cfg.recurrence = false
    to.on_step { step = 2999 }; T.eq(model.cfg.recurrence, false)
    to.on_step { step = 3000 }; T.eq(model.cfg.recurrence, true)
    T.eq(#calls.ttt, 1); T.eq(calls.ttt[1].fn, "prequant")
    local o = calls.ttt[1].opts
    T.eq(o.seq_len, 2048); T.eq(o.batch_tokens, 65536); T.eq(o.epochs, 6); T.eq(o.lr, 5e-4); T.eq(o.lr_min, 5e-5)
    T.eq(o.clip, 1.0); T.eq(o.betas, nil); T.eq(o.weight_decay, nil); T.eq(o.freeze, nil) -- ttt.prequant's §4.4 defaults
    local cal = calls.quant.calib
    T.eq(cal.n, 32); T.eq(cal.len, 2048); T.eq(cal.temp, 0.8); T.eq(cal.seed, c.seed); T.eq(cal.batch, 8)
    T.eq(cal.recurrence, true); T.eq(cal.parallel, 7)
    local h = calls.quant.hessians
    T.eq(h.recurrence, false); T.eq(h.parallel, nil); T.eq(h.damp, 0.01); T.eq(h.batches, { "calib" })
    T.eq(model.cfg.recurrence, true); T.eq(model.cfg.parallel_start, 7) -- restored for the evaluations
    T.eq(by.write_artifact[2], "pr1539_gptq"); T.eq(by.write_artifact[3].hessians, { H = true })
    T.eq(by.eval_sliding[2].ledger, ledger); T.eq(by.eval_sliding[2].batch_seqs, 32)
    T.eq(by.prune, nil)
  end,

  pr598_full = function(T)
    local c, d = resolve("gepa_legal_ttt")
    T.eq(params_of(d, c), 27030108)
    T.eq(c.train_batch_tokens, 786432); T.eq(c.train_seq_len, 2048); T.eq(c.eval_seq_len, 2048)
    local seqs, accum = fake_job(d, c, 4):batch_shape()
    T.eq(seqs, 48); T.eq(accum, 2)                  -- 4×A100, grad accum 2 (§5)
    T.eq(c.iterations, 7000); T.eq(c.warmdown_iters, 3500); T.eq(c.max_wallclock_seconds, 0.0)
    T.eq(c.num_kv_heads, 4); T.eq(c.mlp_hidden, 1536); T.eq(c.bigram_vocab_size, 2048); T.eq(c.ve_dim, 128)
    T.eq(d.model(c).xsa_layers, { 7, 8, 9, 10 }); T.eq(c.rope_dims, 16)
    T.eq(c.matrix_lr, 0.025); T.eq(c.decoder_lr_mult, 2.0); T.eq(c.scalar_lr, 0.025); T.eq(c.tied_embed_lr, 0.035)
    T.eq(c.muon_weight_decay, 0.04); T.eq(c.adam_weight_decay, 0.04); T.eq(c.ema_decay, 0.997)
    T.eq(c.late_qat_threshold, 0.15); T.eq(c.grad_clip_norm, 0.3)
    -- §5.3 iteration warmdown: (7000 − step)/3500 from step 3500
    local job = fake_job(d, c, 4)
    T.eq(lr_at(job, 3000, 1e6), 1.0)
    T.near(lr_at(job, 5250, 1e6), 0.5, 1e-12)
    T.near(lr_at(job, 6476, 1e6), (7000 - 6476) / 3500, 1e-12) -- 0.1497: late QAT starts here (§5.3)
    -- TTT (§5.5)
    T.eq(c.ttt_lr, 0.002); T.eq(c.ttt_momentum, 0.9); T.eq(c.ttt_epochs, 10); T.eq(c.ttt_chunk_tokens, 32768)
    T.eq(c.ttt_freeze_blocks, 2); T.eq(c.ttt_grad_clip, 1.0); T.eq(c.eval_stride, 64)
    T.eq(c.quant_policy, "pr598_mixed")
    T.eq(c.ttt_batch_seqs, 32); T.eq(c.ttt_train_batch_seqs, 16); T.eq(c.warmup_steps, 20); T.eq(c.ema_every, 1)
    T.eq(c.muon_momentum, 0.99); T.eq(c.muon_momentum_warmup_start, 0.92); T.eq(c.muon_momentum_warmup_steps, 1500)
    T.eq(c.muon_backend_steps, 5); T.eq(c.beta1, 0.9); T.eq(c.beta2, 0.95); T.eq(c.adam_eps, 1e-8)
    -- §5.2 model knobs as nn.GPT sees them
    local mc = d.model(c)
    T.eq(mc.mlp_act, "star_relu"); T.eq(mc.ln_scale, true); T.eq(mc.skip_mode, "gated"); T.eq(mc.ve_layers, { 9, 10 })
    T.eq(mc.smear_gate, true); T.eq(mc.init, "orthogonal"); T.eq(mc.rope_base, 10000.0); T.eq(mc.rope_train_seq_len, 1024)
    T.eq(mc.qk_gain_init, 1.5); T.eq(mc.bigram_dim, 128); T.eq(mc.depth_scale, nil)
    -- §5.4 export: zstd-22, int6 GPTQ-lite per tensor on attn/MLP, int8 per tensor elsewhere
    local qp = require("proteus.quant").policy[c.quant_policy]
    T.eq(qp.codec, "zstd"); T.eq(qp.level, 22)
    T.eq(qp.large("blocks.0.attn.c_q.weight", "attn").method, "int6_gptq_lite_tensor")
    T.eq(qp.large("tok_emb.weight", "embed").method, "int8_tensor")
    T.eq(qp.large("bigram.embed.weight", "other").method, "int8_tensor")
    -- the main: late QAT on every linear (block matrices, bigram and VE projections), no pruning, and
    -- the §5.5 chunked TTT constants
    local calls, by = trace_main("gepa_legal_ttt", { "preset=full" })
    T.eq(by.train[2].qat_names, { "^blocks%..*%.weight$", "^bigram%.proj%.weight$", "^ve_shared%.proj%.weight$" })
    T.eq(by.prune, nil); T.eq(by.write_artifact[2], "pr598_mixed"); T.eq(by.eval_sliding, nil)
    T.eq(#calls.ttt, 1); T.eq(calls.ttt[1].fn, "chunked_full")
    local o = calls.ttt[1].opts
    T.eq(o.seq_len, 2048); T.eq(o.stride, 64); T.eq(o.chunk_tokens, 32768); T.eq(o.epochs, 10); T.eq(o.lr, 0.002)
    T.eq(o.momentum, 0.9); T.eq(o.clip, 1.0); T.eq(o.freeze, { "^blocks%.0%.", "^blocks%.1%." })
    T.eq(o.batch_seqs, 32); T.eq(o.train_batch_seqs, 16)
  end,

  pr598_optimizer_groups = function(T)
    local c, d = resolve("gepa_legal_ttt")
    local cc = {}
    for k, v in pairs(c) do cc[k] = v end
    cc.model_dim, cc.num_heads, cc.num_kv_heads, cc.mlp_hidden, cc.bigram_dim, cc.bigram_vocab_size, cc.ve_dim =
      32, 2, 1, 64, 8, 64, 8
    local m = nn.GPT(d.model(cc))
    local adam, muon = table.unpack(d.optimizers(fake_job(d, cc, 1, m)))
    T.eq(#muon.groups, 3)
    T.eq(muon.groups[1].lr, 0.025); T.eq(muon.groups[2].lr, 0.05); T.eq(muon.groups[3].lr, 0.025)
    T.eq(#muon.groups[1].params, 5 * 6); T.eq(#muon.groups[2].params, 6 * 6); T.eq(#muon.groups[3].params, 1)
    T.eq(adam.groups[1].lr, 0.035); T.eq(adam.groups[2].lr, 0.025); T.eq(adam.groups[3].lr, 0.05)
    T.eq(adam.groups[4].lr, 0.025)
    for i = 1, 4 do T.eq(adam.groups[i].weight_decay, 0.04) end -- wd on all AdamW groups (§5.3)
    for i = 1, 3 do T.eq(muon.groups[i].weight_decay, 0.04); T.eq(muon.groups[i].momentum, 0.99) end
    T.eq(names_of(muon.groups[3]), { "bigram.proj.weight" })
    local rest = {}
    for _, x in ipairs(names_of(adam.groups[4])) do rest[x] = true end
    for _, x in ipairs { "smear.gate", "bigram.embed.weight", "bigram.scale", "skip_weights", "skip_gates",
      "ve_shared.embed.weight", "ve_shared.proj.weight", "ve_shared.scale", "ve_layer_scales" } do
      assert(rest[x], "#598 'other' AdamW group lacks " .. x)
    end
    local n = 0
    for _, o in ipairs { adam, muon } do n = n + #o:parameters() end
    local total = 0
    for _ in m:named_parameters() do total = total + 1 end
    T.eq(n, total)                                  -- every tensor is trained (incl. bigram, smear, VE)
  end,

  deepquant_full = function(T)
    local c, d = resolve("deepquant_v10b")
    T.eq(params_of(d, c), 26829913)
    T.eq(c.prune_frac, 0.04); T.eq(c.matrix_lr, 0.02); T.eq(c.swa_enabled, true); T.eq(c.quant_policy, "proteus_as_run")
    local p = require("proteus.ttt").presets.deepquant_v10b
    T.eq(c.ttt_epochs, p.epochs); T.eq(c.ttt_max_eval_secs, p.max_eval_seconds); T.eq(c.ttt_head_lora_rank, p.head_rank)
    T.eq(c.ttt_temperature, p.nll_scale); T.eq(c.ttt_cosine_floor, p.cosine_floor); T.eq(c.ttt_lora_rank, p.lora_rank)
    local lr = c.ttt_lora_lr
    T.near(lr * c.ttt_q_lr_mult, p.lrs.q, 1e-15); T.near(lr * c.ttt_v_lr_mult, p.lrs.v, 1e-15)
    T.near(lr * c.ttt_head_lr_mult, p.lrs.head, 1e-15); T.near(lr * c.ttt_bias_lr_mult, p.lrs.bias, 1e-15)
    T.eq(c.ttt_zigzag, false)                       -- V10b; the final head (§6.2) zigzags
    local f = resolve("deepquant_v10b", "final_head")
    T.eq(f.ttt_zigzag, true); T.eq(f.ttt_max_doc_len, p.max_doc_len); T.eq(f.ttt_max_eval_secs, 570.0)
    T.eq(f.ttt_epochs, 8)                           -- the run used 8 (the code's default was 6, §6.2)
    T.eq(c.ttt_chunk_size, 256); T.eq(c.ttt_eval_seq_len, 1024); T.eq(c.ttt_batch_size, 64); T.eq(c.ttt_min_doc_len, 512)
    T.eq(c.ttt_bias_tuning, true); T.eq(c.ttt_cosine, true); T.eq({ c.ttt_beta1, c.ttt_beta2 }, { 0.9, 0.95 })
    T.eq(c.ttt_eps, 1e-10); T.eq(c.ttt_max_doc_len, 0)
    -- §6: the training stack is PROTEUS as run (= v9_lora_ttt preset=as_run) except 4% pruning
    local v9, dv = resolve("v9_lora_ttt", "as_run")
    for _, k in ipairs(d.keys) do
      if v9[k] ~= nil and not k:match("^ttt_") and k ~= "prune_frac" then T.eq(c[k], v9[k], "deepquant vs v9 as_run: " .. k) end
    end
    T.eq(nn.gpt_config(d.model(c)), nn.gpt_config(dv.model(v9)))  -- the same nn.GPT (no XSA)
    local ov, od = tiny_optimizers(dv, v9), tiny_optimizers(d, c)
    for i = 1, 3 do T.eq(#od[i]:parameters(), #ov[i]:parameters()) end -- BigramHash/SmearGate untrained too
    -- the main: 4% pruning, the as-run artifact, the V10b TTT options (§6.1)
    local calls, by = trace_main("deepquant_v10b", { "preset=full" })
    T.eq(by.prune[2], 0.04); T.eq(by.write_artifact[2], "proteus_as_run")
    T.eq(#calls.ttt, 1); T.eq(calls.ttt[1].fn, "lora_eval")
    local o = calls.ttt[1].opts
    for _, k in ipairs { "chunk_size", "eval_seq_len", "batch_docs", "short_doc_len", "lora_rank", "head_rank", "lr",
      "betas", "eps", "epochs", "reset_between_epochs", "bias_tuning", "cosine", "cosine_floor", "nll_scale",
      "max_eval_seconds" } do
      T.eq(o[k], p[k], "lora_eval opts." .. k)
    end
    for _, k in ipairs { "q", "v", "head", "bias" } do T.near(o.lrs[k], p.lrs[k], 1e-15) end
    T.eq(o.zigzag, false); T.eq(o.max_doc_len, nil)
    local fcalls = trace_main("deepquant_v10b", { "preset=final_head" })
    local fo = fcalls.ttt[1].opts
    T.eq(fo.zigzag, true); T.eq(fo.max_doc_len, 50000); T.eq(fo.max_eval_seconds, 570.0); T.eq(fo.epochs, 8)
  end,
}
