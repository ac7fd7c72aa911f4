-- lua/recipes/deepquant_v10b.lua — PR #596 DeepQuant V10b (spec §6): the PROTEUS v8 training stack as
-- it ran (11×512, no XSA, SWA, untrained BigramHash/SmearGate, int6 per-row + zstd-22) with 4%
-- magnitude pruning, and a LoRA TTT evaluation that trains 8 epochs per document batch without
-- resetting, keeps only the last epoch's scores, adds per-block bias tuning, a rank-16 head LoRA,
-- per-group learning rates with a cosine, and multiplies every scored NLL by 0.98 ("temperature").
-- ILLEGAL: epochs 2–8 score tokens the adapter has already trained on, and the ×0.98 is not a
-- probability model (§6.1, §6.4, §7). The recipe runs with the ledger in legal=false mode:
-- results.json reports the verdict "illegal" with scored_multiple / trained_before_scored /
-- nll_rescaled counts, and eval.ttt_bpb is the number the submission reports (last epoch only).
-- Reference: 0.6430 BPB reported (mean of 3); honest post-quant roundtrip ≈ 1.1760.
--
--   proteus lua/recipes/deepquant_v10b.lua                      # full, V10b as run (GPU)
--   proteus lua/recipes/deepquant_v10b.lua preset=final_head    # the PR's final head (9e4f467, §6.2)
--   proteus lua/recipes/deepquant_v10b.lua preset=demo          # CPU, the bundled sample
--   proteus lua/recipes/deepquant_v10b.lua preset=smoke         # seconds (tests)
--
-- As run: TTT_EPOCHS=8 and TTT_MAX_EVAL_SECS=350 (§6.1). The model and training knobs are those of
-- v9_lora_ttt preset=as_run (the PROTEUS v8 stack) except prune_frac 0.04 (test_recipe_configs checks).
-- On several ranks (mpirun) the TTT documents are split as the record splits them (contiguous, or
-- final_head's zigzag, §6.1–6.2) and the ledgers merged; in one process every document is scored
-- there (zigzag changes nothing, and the wallclock limit covers the documents of all 8 ranks, not one
-- rank's share). Not reproduced: the bf16 SWA sum of the embedding, torch.compile, bf16 autocast (the
-- CPU computes in f32).
local recipe = require "proteus.recipe"

local def = recipe.define {
  name = "deepquant_v10b", legal = false, section = "§6",
  reference = "0.6430 reported TTT BPB (mean of 3, 8×H100); illegal (multi-epoch rescoring, NLL×0.98)",
  defaults = {
    -- model (= PROTEUS v8/v9 as run, §3.1–3.3)
    vocab_size = 1024, num_layers = 11, model_dim = 512, num_heads = 8, num_kv_heads = 4, mlp_mult = 3,
    rope_base = 50000.0, rope_train_seq_len = 1024, logit_softcap = 30.0, qk_gain_init = 1.5,
    tied_embed_init_std = 0.005, bigram_vocab_size = 2048, bigram_dim = 128, smear_gate = true, ortho_init = true,
    depth_scale = true,
    -- training (§3.1, §3.4)
    train_batch_tokens = 786432, train_seq_len = 1024, eval_seq_len = 2048, iterations = 20000,
    warmdown_iters = 3000, warmup_steps = 20, max_wallclock_seconds = 600.0, grad_clip_norm = 0.3,
    matrix_lr = 0.02, scalar_lr = 0.02, tied_embed_lr = 0.03, muon_momentum = 0.99,
    muon_momentum_warmup_start = 0.92, muon_momentum_warmup_steps = 1500, muon_backend_steps = 5,
    muon_weight_decay = 0.04, adam_weight_decay = 0.04, beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8,
    ema_decay = 0.999, ema_every = 10, swa_enabled = true, swa_every = 50, swa_threshold = 0.2,
    -- post-training
    prune_frac = 0.04, quant_policy = "proteus_as_run",
    -- TTT (§6.1)
    ttt_enabled = true, ttt_lora_rank = 8, ttt_head_lora_rank = 16, ttt_lora_lr = 0.01, ttt_q_lr_mult = 0.5,
    ttt_v_lr_mult = 1.5, ttt_head_lr_mult = 2.0, ttt_bias_lr_mult = 3.0, ttt_bias_tuning = true,
    ttt_chunk_size = 256, ttt_eval_seq_len = 1024, ttt_batch_size = 64, ttt_min_doc_len = 512, ttt_epochs = 8,
    ttt_cosine = true, ttt_cosine_floor = 0.1, ttt_temperature = 0.98, ttt_max_eval_secs = 350.0,
    ttt_zigzag = false, ttt_max_doc_len = 0, ttt_beta1 = 0.9, ttt_beta2 = 0.95, ttt_eps = 1e-10,
  },
  doc = {
    prune_frac = "magnitude pruning (4% in V10b)",
    ttt_epochs = "epochs per document batch; scores of the last only (TTT_EPOCHS; > 1 is illegal)",
    ttt_temperature = "what the submission calls temperature: every scored NLL × this (not a temperature)",
    ttt_max_eval_secs = "long-document TTT budget; the rest is scored by the base model (TTT_MAX_EVAL_SECS)",
    ttt_bias_tuning = "per-document bias vectors added after each block",
    ttt_zigzag = "final head: zigzag document distribution over ranks",
    ttt_max_doc_len = "final head: longer documents go to the short path, 0 = no limit",
  },
  presets = {
    full = {},
    final_head = { ttt_zigzag = true, ttt_max_doc_len = 50000, ttt_max_eval_secs = 570.0 },
    demo = { num_layers = 4, model_dim = 128, num_heads = 4, num_kv_heads = 2, bigram_dim = 32,
      train_batch_tokens = 2048, train_seq_len = 256, eval_seq_len = 512, iterations = 150, warmdown_iters = 60,
      warmup_steps = 0, max_wallclock_seconds = 180.0, muon_momentum = 0.95, muon_momentum_warmup_start = 0.85,
      muon_momentum_warmup_steps = 50, swa_every = 10, train_log_every = 25, grad_accum_steps = 1,
      ttt_chunk_size = 128, ttt_eval_seq_len = 512, ttt_batch_size = 16, ttt_min_doc_len = 256, ttt_epochs = 2,
      ttt_max_eval_secs = 120.0, val_max_tokens = 16384 },
    smoke = { num_layers = 2, model_dim = 32, num_heads = 2, num_kv_heads = 1, bigram_dim = 8, bigram_vocab_size = 64,
      train_batch_tokens = 256, train_seq_len = 32, eval_seq_len = 64, iterations = 6, warmdown_iters = 4,
      warmup_steps = 1, max_wallclock_seconds = 0.0, swa_every = 1, swa_threshold = 0.9, train_log_every = 1,
      grad_accum_steps = 1, ttt_chunk_size = 32, ttt_eval_seq_len = 64, ttt_batch_size = 4, ttt_min_doc_len = 64,
      ttt_epochs = 2, ttt_max_eval_secs = 60.0, val_max_tokens = 4096, plot = false },
  },
  model = function(c)
    return { vocab_size = c.vocab_size, num_layers = c.num_layers, model_dim = c.model_dim, num_heads = c.num_heads,
      num_kv_heads = c.num_kv_heads, mlp_mult = c.mlp_mult, rope_base = c.rope_base,
      rope_train_seq_len = c.rope_train_seq_len, logit_softcap = c.logit_softcap, qk_gain_init = c.qk_gain_init,
      tied_embed_init_std = c.tied_embed_init_std, init = c.ortho_init and "orthogonal" or "default",
      depth_scale = c.depth_scale, bigram_vocab_size = c.bigram_vocab_size, bigram_dim = c.bigram_dim,
      smear_gate = c.smear_gate }
  end,
  -- as PROTEUS ran: BigramHash and SmearGate are in no optimizer (§3.2)
  optimizers = function(job) return recipe.proteus_optimizers(job) end,
}

return recipe.main(def, arg, function(job)
  local c = job.cfg
  job:build_model()                   -- the PROTEUS v8 model
  job:train()                         -- Muon + AdamW, wallclock warmdown, SWA every 50 steps once lr_mul < 0.2
  job:average()                       -- the SWA average
  job:prune(c.prune_frac)             -- 4%
  job:eval_standard("pre_quant")
  job:write_artifact(c.quant_policy)  -- int6 per-row, fixed clip, zstd-22
  job:roundtrip()                     -- the honest number (≈1.176 at full scale)
  if c.ttt_enabled then               -- 8 epochs, last-epoch scores, NLL × 0.98: illegal
    local ttt = job:ttt()
    local lr = c.ttt_lora_lr
    local r = ttt.lora_eval(job.model, job:val(), {
      chunk_size = c.ttt_chunk_size, eval_seq_len = c.ttt_eval_seq_len, batch_docs = c.ttt_batch_size,
      short_doc_len = c.ttt_min_doc_len, max_doc_len = c.ttt_max_doc_len > 0 and c.ttt_max_doc_len or nil,
      lora_rank = c.ttt_lora_rank, head_rank = c.ttt_head_lora_rank, lr = lr,
      lrs = { q = lr * c.ttt_q_lr_mult, v = lr * c.ttt_v_lr_mult, head = lr * c.ttt_head_lr_mult,
        bias = lr * c.ttt_bias_lr_mult },
      betas = { c.ttt_beta1, c.ttt_beta2 }, eps = c.ttt_eps, epochs = c.ttt_epochs, reset_between_epochs = false,
      bias_tuning = c.ttt_bias_tuning, cosine = c.ttt_cosine, cosine_floor = c.ttt_cosine_floor,
      nll_scale = c.ttt_temperature, max_eval_seconds = c.ttt_max_eval_secs, zigzag = c.ttt_zigzag,
      rank = job.rank, world = job.world, -- on several ranks: documents split, ledgers merged
      log = function(l) job:log(l) end,
    })
    job:record_ttt(r, r.submission_bpb)  -- the reported number; the ledger's own BPB is eval.ttt_ledger_bpb
    job.out.eval.ttt_ledger_bpb = r.bpb
    job.out.ttt = { docs = r.docs, steps = r.steps, epochs = c.ttt_epochs }
  end
  job:results()
end)
