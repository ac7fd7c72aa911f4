-- lua/recipes/v9_lora_ttt.lua — PROTEUS v9 (PR #633, spec §3): an 11×512 GPT with BigramHash,
-- SmearGate, depth-scaled residuals and orthogonal init (26,829,913 params), Muon + AdamW under the
-- wallclock warmdown, weight averaging, magnitude pruning, int6 per-row + zstd-22, and the reported
-- metric: per-document LoRA test-time training, score first then train, one epoch. Legal.
-- Reference: 1.1526 BPB (mean of 3 seeds, TTT; roundtrip 1.1774) on 8×H100.
--
--   proteus lua/recipes/v9_lora_ttt.lua                    # full, the seed card (8×H100; default only with a GPU)
--   proteus lua/recipes/v9_lora_ttt.lua preset=as_run      # full, what the logs show (below)
--   proteus lua/recipes/v9_lora_ttt.lua preset=demo        # CPU, the bundled sample, < 10 minutes on 2 cores
--   proteus lua/recipes/v9_lora_ttt.lua preset=smoke       # seconds (tests)
--   proteus lua/recipes/v9_lora_ttt.lua help               # every knob; KEY=value in the environment too
--
-- The defaults follow the submission's own description (its seed card). Preset `as_run` reproduces
-- what the three logs show instead (spec §3.1, §3.9, §9.1); the differences, knob by knob:
--   xsa_last_n        card 4 (XSA on layers 7–10)        as_run 0 (no XSA code in the file)
--   quant_policy      card proteus_card (GPTQ-lite: 5    as_run proteus_as_run (one fixed 99.99984%
--                     clip percentiles, best per row)           percentile per row)
--   ema_decay/every   card 0.997 every step, applied     as_run 0.999 every 10 steps, overridden by
--   swa_enabled       card off                                  SWA of the snapshots every 50 steps
--                                                               once lr_mul < 0.2 (12 in the logs)
--   matrix_lr         card 0.025                          as_run 0.02
--   prune_frac        card 0.03                           as_run 0.05 (the logs say "5.0%")
--   train_bigram_smear card true (in the optimizers)     as_run false (no optimizer: the bigram
--                                                               table stays 0, SmearGate a fixed 50/50 blend)
-- TTT on several ranks (mpirun): documents split contiguously as in §3.7, ledgers merged (one process
-- scores every document). Not reproduced: torch.compile, bf16 autocast (the CPU computes in f32), the
-- bf16 SWA sum of the embedding.
local recipe = require "proteus.recipe"

local def = recipe.define {
  name = "v9_lora_ttt", legal = true, section = "§3",
  reference = "1.1526 TTT BPB, mean of 3 seeds (8×H100); roundtrip 1.1774",
  defaults = {
    -- model (§3.1–3.3)
    vocab_size = 1024, num_layers = 11, model_dim = 512, num_heads = 8, num_kv_heads = 4, mlp_mult = 3,
    rope_base = 50000.0, rope_train_seq_len = 1024, logit_softcap = 30.0, qk_gain_init = 1.5,
    tied_embed_init_std = 0.005, bigram_vocab_size = 2048, bigram_dim = 128, smear_gate = true, xsa_last_n = 4,
    ortho_init = true, depth_scale = true,
    -- batching and schedule (§3.1, §2.4)
    train_batch_tokens = 786432, train_seq_len = 1024, eval_seq_len = 2048, iterations = 20000,
    warmdown_iters = 3000, warmup_steps = 20, max_wallclock_seconds = 600.0, grad_clip_norm = 0.3,
    -- optimizers (§3.4)
    matrix_lr = 0.025, scalar_lr = 0.02, tied_embed_lr = 0.03, muon_momentum = 0.99,
    muon_momentum_warmup_start = 0.92, muon_momentum_warmup_steps = 1500, muon_backend_steps = 5,
    muon_weight_decay = 0.04, adam_weight_decay = 0.04, beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8,
    train_bigram_smear = true,
    -- averaging (§3.4)
    ema_decay = 0.997, ema_every = 1, swa_enabled = false, swa_every = 50, swa_threshold = 0.2,
    -- post-training (§3.5, §3.6, §3.9)
    prune_frac = 0.03, quant_policy = "proteus_card", eval_stride = 0,
    -- LoRA TTT (§3.7)
    ttt_enabled = true, ttt_lora_rank = 8, ttt_lora_lr = 0.01, ttt_chunk_size = 256, ttt_eval_seq_len = 1024,
    ttt_batch_size = 64, ttt_min_doc_len = 512, ttt_epochs = 1, ttt_beta1 = 0.9, ttt_beta2 = 0.95, ttt_eps = 1e-10,
  },
  doc = {
    xsa_last_n = "XSA on the last N layers (card 4; the run had none)",
    rope_train_seq_len = "NTK RoPE base scaling above this length (§2.2)",
    ortho_init = "orthogonal init of the Linear weights (§3.3)", depth_scale = "branches × bf16(1/√(i+1)) (§3.2)",
    train_bigram_smear = "BigramHash and SmearGate in the optimizers (card) or left at init (as run)",
    ema_decay = "EMA decay, 0 = no EMA (card 0.997 every step)", ema_every = "EMA update period in steps",
    swa_enabled = "SWA snapshots every swa_every steps once lr_mul < swa_threshold; applied when ≥ 2",
    prune_frac = "magnitude pruning of the large 2-D weights (§3.9)",
    quant_policy = "proteus_card (GPTQ-lite per row) | proteus_as_run (fixed percentile)",
    eval_stride = "sliding-window stride of a sliding eval, 0 = none (EVAL_STRIDE; off in v9)",
    ttt_min_doc_len = "documents shorter than this are scored by the base model (TTT_MIN_DOC_LEN)",
    ttt_batch_size = "documents per LoRA batch (TTT_BATCH_SIZE)",
    ttt_eval_seq_len = "context window of TTT scoring (TTT_EVAL_SEQ_LEN)",
  },
  presets = {
    full = {},
    as_run = { xsa_last_n = 0, quant_policy = "proteus_as_run", ema_decay = 0.999, ema_every = 10,
      swa_enabled = true, matrix_lr = 0.02, prune_frac = 0.05, train_bigram_smear = false },
    demo = { num_layers = 4, model_dim = 160, num_heads = 4, num_kv_heads = 2, bigram_dim = 32, xsa_last_n = 1,
      train_batch_tokens = 2048, train_seq_len = 256, eval_seq_len = 512, iterations = 300, warmdown_iters = 100,
      warmup_steps = 0, max_wallclock_seconds = 240.0, muon_momentum = 0.95, muon_momentum_warmup_start = 0.85,
      muon_momentum_warmup_steps = 100, ema_decay = 0.99, train_log_every = 25, grad_accum_steps = 1,
      ttt_chunk_size = 128, ttt_eval_seq_len = 512, ttt_batch_size = 16, ttt_min_doc_len = 256, val_max_tokens = 32768 },
    smoke = { num_layers = 2, model_dim = 32, num_heads = 2, num_kv_heads = 1, bigram_dim = 8, bigram_vocab_size = 64,
      xsa_last_n = 1, train_batch_tokens = 256, train_seq_len = 32, eval_seq_len = 64, iterations = 4,
      warmdown_iters = 2, warmup_steps = 1, max_wallclock_seconds = 0.0, train_log_every = 1, grad_accum_steps = 1,
      ttt_chunk_size = 32, ttt_eval_seq_len = 64, ttt_batch_size = 4, ttt_min_doc_len = 64, val_max_tokens = 4096,
      plot = false },
  },
  model = function(c)
    return { vocab_size = c.vocab_size, num_layers = c.num_layers, model_dim = c.model_dim, num_heads = c.num_heads,
      num_kv_heads = c.num_kv_heads, mlp_mult = c.mlp_mult, rope_base = c.rope_base,
      rope_train_seq_len = c.rope_train_seq_len, logit_softcap = c.logit_softcap, qk_gain_init = c.qk_gain_init,
      tied_embed_init_std = c.tied_embed_init_std, init = c.ortho_init and "orthogonal" or "default",
      depth_scale = c.depth_scale, bigram_vocab_size = c.bigram_vocab_size, bigram_dim = c.bigram_dim,
      smear_gate = c.smear_gate, xsa_layers = recipe.last_layers(c.num_layers, c.xsa_last_n) }
  end,
  -- §3.4: AdamW(tied embedding) → Muon(block matrices) → AdamW(block scalars, skip weights); the card
  -- also trains BigramHash (projection in Muon, table/scale in AdamW) and the SmearGate
  optimizers = function(job)
    local train_extra = job.cfg.train_bigram_smear
    return recipe.proteus_optimizers(job, {
      extra_matrix = train_extra and { "^bigram%.proj%." } or nil,
      extra_scalar = train_extra and { "^bigram%.", "^smear%." } or nil,
    })
  end,
}

return recipe.main(def, arg, function(job)
  local c = job.cfg
  job:build_model()                   -- 11×512, BigramHash + SmearGate, depth scale, orthogonal init
  job:train()                         -- Muon + AdamW, wallclock warmdown, EMA (card) / SWA (as run)
  job:average()                       -- the EMA shadow (card) or the SWA average (as run)
  job:prune(c.prune_frac)             -- magnitude pruning (3% card, 5% as run)
  job:eval_standard("pre_quant")      -- T = eval_seq_len (2048, NTK RoPE)
  job:write_artifact(c.quant_policy)  -- int6 per-row (GPTQ-lite or fixed clip), tok_emb fp16, zstd-22
  job:roundtrip()                     -- reload, dequantize, evaluate
  if c.eval_stride > 0 then job:eval_sliding() end
  if c.ttt_enabled then                -- the reported metric: per-document LoRA TTT, score first
    local ttt = job:ttt()
    local r = ttt.lora_eval(job.model, job:val(), {
      chunk_size = c.ttt_chunk_size, eval_seq_len = c.ttt_eval_seq_len, batch_docs = c.ttt_batch_size,
      short_doc_len = c.ttt_min_doc_len, lora_rank = c.ttt_lora_rank, head_rank = c.ttt_lora_rank,
      lr = c.ttt_lora_lr, betas = { c.ttt_beta1, c.ttt_beta2 }, eps = c.ttt_eps, epochs = c.ttt_epochs,
      rank = job.rank, world = job.world, -- on several ranks: documents split, ledgers merged
      log = function(l) job:log(l) end,
    })
    job:record_ttt(r)
  end
  job:results()
end)
