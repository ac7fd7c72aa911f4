-- tests/lua/test_recipe_configs.lua — the recipes' `full` presets reproduce the spec's numbers
-- (../shared/spec/parameter-golf.md §2–§6): parameter counts of the nn.GPT built from the resolved
-- config (init = "default" for speed), batch tokens and per-GPU sequences, sequence lengths, learning
-- rates, schedule constants (read back through the job's schedule function), averaging, pruning,
-- quantization and TTT constants; v9's as_run preset differs from the card exactly as §3.1/§9 say;
-- every recipe declares its legality.
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

local function lr_at(job, step, elapsed_ms)
  return job:lr_schedule() { step = step, elapsed_ms = elapsed_ms, max_steps = job.cfg.iterations,
    max_wallclock_ms = job.cfg.max_wallclock_seconds > 0 and job.cfg.max_wallclock_seconds * 1000 or nil }
end

return {
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
  end,
}
