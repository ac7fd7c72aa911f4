-- lua/recipes/baseline.lua — the challenge baseline (spec §2; openai/parameter-golf train_gpt.py):
-- a 9×512 GPT (17,059,912 params), Muon on the block matrices and Adam elsewhere, the wallclock
-- warmdown, int8 per-row quantization + zlib-9, and the standard roundtrip evaluation. Legal.
-- Reference: post-quant 1.22436570 BPB on 8×H100 (NaiveBaseline record, 13,780 steps).
--
--   proteus lua/recipes/baseline.lua                   # full (8×H100; the default only with a GPU)
--   proteus lua/recipes/baseline.lua preset=demo       # CPU, the bundled sample, a few minutes
--   proteus lua/recipes/baseline.lua preset=smoke      # seconds (tests)
--   proteus lua/recipes/baseline.lua help              # every knob; KEY=value in the environment too
--
-- The full preset is the script's defaults (§2.1–2.5). Not reproduced: torch.compile, bf16 autocast
-- and the bf16 embedding table (the CPU computes in f32; the Muon update is still rounded to bf16),
-- Muon's round-robin over ranks (the same update, computed by every rank), the fused Adam kernel
-- (proteus uses AdamW with weight decay 0, the same update).
local recipe = require "proteus.recipe"

local def = recipe.define {
  name = "baseline", legal = true, section = "§2",
  reference = "1.22436570 post-quant BPB (8×H100, NaiveBaseline record)",
  defaults = {
    -- model (§2.1)
    vocab_size = 1024, num_layers = 9, model_dim = 512, num_heads = 8, num_kv_heads = 4, mlp_mult = 2,
    tie_embeddings = true, rope_base = 10000.0, logit_softcap = 30.0, qk_gain_init = 1.5, tied_embed_init_std = 0.005,
    -- batching and schedule (§2.4)
    train_batch_tokens = 524288, train_seq_len = 1024, iterations = 20000, warmdown_iters = 1200, warmup_steps = 20,
    max_wallclock_seconds = 600.0, val_batch_size = 524288, val_loss_every = 1000, train_log_every = 200,
    -- optimizers (§2.3)
    tied_embed_lr = 0.05, matrix_lr = 0.04, scalar_lr = 0.04, muon_momentum = 0.95, muon_backend_steps = 5,
    muon_momentum_warmup_start = 0.85, muon_momentum_warmup_steps = 500, beta1 = 0.9, beta2 = 0.95,
    adam_eps = 1e-8, grad_clip_norm = 0.0,
    -- evaluation and export (§1.4, §2.5)
    eval_seq_len = 1024, quant_policy = "baseline",
  },
  doc = {
    train_batch_tokens = "tokens per optimizer step over all ranks (TRAIN_BATCH_TOKENS)",
    iterations = "step budget (ITERATIONS)", warmdown_iters = "WARMDOWN_ITERS of the wallclock warmdown (§2.4)",
    warmup_steps = "compile warmup steps, then a full restore (not an LR warmup, §2.4)",
    max_wallclock_seconds = "training time cap, 0 = none (MAX_WALLCLOCK_SECONDS)",
    val_batch_size = "validation tokens per forward over all ranks and micro-steps (VAL_BATCH_SIZE; per rank "
      .. "val_batch_size / (world·grad_accum), §1.4)",
    quant_policy = "proteus.quant policy of the artifact (int8 per-row, zlib 9)",
    eval_seq_len = "T of the roundtrip evaluation (the baseline evaluates at its train length)",
  },
  presets = {
    full = {},
    demo = { num_layers = 4, model_dim = 128, num_heads = 4, num_kv_heads = 2, train_batch_tokens = 8192,
      train_seq_len = 256, iterations = 150, warmdown_iters = 50, warmup_steps = 0, max_wallclock_seconds = 240.0,
      val_loss_every = 0, train_log_every = 10, eval_seq_len = 256, grad_accum_steps = 1,
      muon_momentum_warmup_steps = 50, val_batch_size = 65536 },
    smoke = { num_layers = 2, model_dim = 32, num_heads = 2, num_kv_heads = 1, train_batch_tokens = 256,
      train_seq_len = 32, iterations = 4, warmdown_iters = 2, warmup_steps = 1, max_wallclock_seconds = 0.0,
      val_loss_every = 0, train_log_every = 1, eval_seq_len = 64, grad_accum_steps = 1, val_max_tokens = 4096,
      val_batch_size = 4096, plot = false },
  },
  model = function(c)
    return { vocab_size = c.vocab_size, num_layers = c.num_layers, model_dim = c.model_dim, num_heads = c.num_heads,
      num_kv_heads = c.num_kv_heads, mlp_mult = c.mlp_mult, tie_embeddings = c.tie_embeddings, rope_base = c.rope_base,
      logit_softcap = c.logit_softcap, qk_gain_init = c.qk_gain_init, tied_embed_init_std = c.tied_embed_init_std }
  end,
  -- §2.3: Adam (no weight decay) on the tied embedding and the control tensors, Muon on the block matrices
  optimizers = function(job) return recipe.proteus_optimizers(job) end,
}

return recipe.main(def, arg, function(job)
  job:build_model()                       -- 9×512, U-Net skips, tied embedding, relu² MLP
  job:train()                             -- Muon + Adam, wallclock warmdown, 600 s cap
  job:eval_standard("pre_quant")          -- the trained weights, T = 1024
  job:write_artifact(job.cfg.quant_policy) -- int8 per-row (clip 99.99984%), small tensors fp16/fp32, zlib 9
  job:roundtrip()                         -- reload, dequantize, evaluate: the reported score
  job:results()
end)
