-- lua/recipes/sp8192_prequant_ttt.lua — PR #1539 "SP8192 + Pre-Quant AdamW TTT" (spec §4): an 11-layer
-- GPT over the sp8192 vocabulary with partial RoPE, ln-scale, XSA everywhere, value embeddings,
-- parallel residual lanes from layer 7 and depth recurrence of layers 3–5 from step 3000
-- (36,311,132 params); parallel Muon with MuonEq-R and Polar Express; EMA; then 6 epochs of AdamW
-- on the VALIDATION tokens before quantization, full GPTQ with SDClip from self-generated
-- calibration text, Brotli, and a sliding-window evaluation (reported).
-- ILLEGAL: training on validation tokens before scoring them is the pattern the challenge ruled out
-- (§4, §7). The recipe runs with the ledger in legal=false mode; results.json reports the verdict
-- "illegal" with trained_before_scored counting the targets. Reference: 1.05869 sliding BPB (mean of 3).
--
--   proteus lua/recipes/sp8192_prequant_ttt.lua data_path=DIR tokenizer_path=sp8192.model   # full (GPU)
--   proteus lua/recipes/sp8192_prequant_ttt.lua preset=demo    # CPU, the bundled sp1024 sample
--   proteus lua/recipes/sp8192_prequant_ttt.lua preset=smoke   # seconds (tests)
--
-- The full preset needs the sp8192 export (HF kevclark/parameter-golf, §1.2); demo and smoke run on
-- the bundled sp1024 sample with vocab_size = 1024.
-- As run (§4.1: VOCAB_SIZE=8192 BIGRAM_VOCAB_SIZE=0 VE_DIM=44, other defaults): sigmoid_skips is
-- off (the default; UNVERIFIED which ran, §4.2), SLOT off.
-- After training the model runs with recurrence on (pre-quant TTT, calibration, every evaluation);
-- the GPTQ Hessians come from the same weights without recurrence and without the parallel lanes (§4.5).
-- As in the record: "freeze the first 2 blocks" of the pre-quant TTT freezes only their 4,112
-- control values (the matrices live in banks there and stay trainable, §4.4); late QAT touches only
-- the VE projection (§4.3); the 33-sequence overlapping pre-quant batches.
-- Not reproduced: weight banks (proteus keeps one matrix per layer; the update math is the same);
-- the pre-quant TTT's identical batches on every GPU (one process runs each batch once: the same
-- update); selective ±1 pruning (never triggered in the runs); the records' 31 duplicate tail windows
-- of the sliding eval (every target is scored once here; eval.sliding's records_quirk can reproduce
-- them for comparison); the rANS/Brotli "auto" choice (Brotli, as all runs chose); torch.compile,
-- FlashAttention-3 and bf16 autocast (the CPU computes in f32).
local recipe = require "proteus.recipe"

local def = recipe.define {
  name = "sp8192_prequant_ttt", legal = false, section = "§4",
  reference = "1.05869 sliding BPB, mean of 3 seeds (8×H100); illegal (pre-quant TTT on val)",
  defaults = {
    -- model (§4.1–4.2)
    vocab_size = 8192, num_layers = 11, model_dim = 512, num_heads = 8, num_kv_heads = 4, mlp_mult = 4,
    mlp_act = "leaky_relu2", rope_base = 10000.0, rope_dims = 16, rope_train_seq_len = 1024, logit_softcap = 30.0,
    qk_gain_init = 5.25, tied_embed_init_std = 0.005, ln_scale = true, xsa_last_n = 11, ve_dim = 44,
    ve_layers = { 9, 10 }, parallel_residual_start = 7, recur_layers = { 3, 4, 5 }, recur_start_step = 3000,
    smear_gate = true, bigram_vocab_size = 0, sigmoid_skips = false, ortho_init = true,
    -- batching and schedule (§4.1, §4.3)
    train_batch_tokens = 786432, train_seq_len = 2048, eval_seq_len = 2048, iterations = 20000,
    max_wallclock_seconds = 600.0, warmdown_frac = 0.72, lr_floor = 0.0, warmup_steps = 20, grad_clip_norm = 0.3,
    -- optimizers (§4.3)
    matrix_lr = 0.022, muon_weight_decay = 0.095, muon_momentum = 0.99, muon_momentum_warmup_start = 0.92,
    muon_momentum_warmup_steps = 1500, muon_backend_steps = 4, muon_row_norm = true, tied_embed_lr = 0.03,
    embed_wd = 0.095, scalar_lr = 0.02, adam_wd = 0.02, beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8,
    ema_decay = 0.9965, ema_every = 1, late_qat_threshold = 0.15,
    -- pre-quant TTT on the validation tokens (§4.4)
    prequant_ttt_enabled = true, prequant_ttt_epochs = 6, prequant_ttt_lr = 5e-4, prequant_ttt_lr_min = 5e-5,
    prequant_ttt_batch_tokens = 65536, prequant_ttt_grad_clip = 1.0, prequant_ttt_batch_seqs = 16,
    -- GPTQ with SDClip (§4.5)
    quant_policy = "pr1539_gptq", gptq_calib_seqs = 32, gptq_calib_temp = 0.8, gptq_calib_batch = 8, gptq_damp = 0.01,
    -- evaluation (§4.6)
    eval_stride = 64, sliding_batch_seqs = 32,
  },
  doc = {
    parallel_residual_start = "physical layer from which attention and MLP run in two lanes (§4.2)",
    recur_layers = "layers repeated once when depth recurrence is on", recur_start_step = "recurrence from this step",
    sigmoid_skips = "σ-gated U-Net skips (SIGMOID_SKIPS; off in the runs' command)",
    warmdown_frac = "fraction of the 600 s over which lr decays linearly to lr_floor (§4.3)",
    muon_row_norm = "MuonEq-R row normalisation before Polar Express (§4.3)",
    embed_wd = "AdamW weight decay of the embeddings", adam_wd = "AdamW weight decay of the scalar group",
    late_qat_threshold = "STE fake-quant once lr_mul < this (only the VE projection is affected, §4.3)",
    prequant_ttt_enabled = "fine-tune on the validation tokens before quantization (ILLEGAL, §4.4)",
    gptq_calib_seqs = "self-generated calibration sequences of eval_seq_len tokens (§4.5)",
  },
  presets = {
    full = {},
    demo = { vocab_size = 1024, num_layers = 4, model_dim = 128, num_heads = 4, num_kv_heads = 2, mlp_mult = 4,
      xsa_last_n = 4, ve_dim = 16, ve_layers = { 2, 3 }, parallel_residual_start = 3, recur_layers = { 1 },
      recur_start_step = 60, train_batch_tokens = 2048, train_seq_len = 256, eval_seq_len = 256, iterations = 150,
      max_wallclock_seconds = 180.0, warmup_steps = 0, muon_momentum = 0.95, muon_momentum_warmup_start = 0.85,
      muon_momentum_warmup_steps = 50, ema_decay = 0.99, train_log_every = 25, grad_accum_steps = 1,
      prequant_ttt_epochs = 2, prequant_ttt_lr = 1e-3, prequant_ttt_lr_min = 1e-4, prequant_ttt_batch_tokens = 4096,
      prequant_ttt_batch_seqs = 8, gptq_calib_seqs = 4, gptq_calib_batch = 4, val_max_tokens = 32768,
      eval_stride = 64 },
    smoke = { vocab_size = 1024, num_layers = 3, model_dim = 32, num_heads = 2, num_kv_heads = 1, mlp_mult = 2,
      xsa_last_n = 3, ve_dim = 8, ve_layers = { 2 }, parallel_residual_start = 2, recur_layers = { 1 },
      recur_start_step = 2, train_batch_tokens = 256, train_seq_len = 32, eval_seq_len = 64, iterations = 4,
      max_wallclock_seconds = 0.0, warmup_steps = 1, late_qat_threshold = 0.6, train_log_every = 1,
      grad_accum_steps = 1, prequant_ttt_epochs = 1, prequant_ttt_batch_tokens = 512, prequant_ttt_batch_seqs = 8,
      gptq_calib_seqs = 2, gptq_calib_batch = 2, eval_stride = 32, sliding_batch_seqs = 8, val_max_tokens = 4096,
      plot = false },
  },
  model = function(c)
    return { vocab_size = c.vocab_size, num_layers = c.num_layers, model_dim = c.model_dim, num_heads = c.num_heads,
      num_kv_heads = c.num_kv_heads, mlp_mult = c.mlp_mult, mlp_act = c.mlp_act, rope_base = c.rope_base,
      rope_dims = c.rope_dims, rope_train_seq_len = c.rope_train_seq_len, logit_softcap = c.logit_softcap,
      qk_gain_init = c.qk_gain_init, tied_embed_init_std = c.tied_embed_init_std,
      init = c.ortho_init and "orthogonal" or "default", ln_scale = c.ln_scale,
      skip_mode = c.sigmoid_skips and "sigmoid" or "plain", smear_gate = c.smear_gate,
      bigram_vocab_size = c.bigram_vocab_size, xsa_layers = recipe.last_layers(c.num_layers, c.xsa_last_n),
      ve_dim = c.ve_dim, ve_layers = c.ve_layers,
      parallel_start = c.parallel_residual_start >= 0 and c.parallel_residual_start or nil,
      recurrence_layers = #c.recur_layers > 0 and c.recur_layers or nil, recurrence = false }
  end,
  -- §4.3: AdamW(tok_emb, VE table; wd 0.095) and AdamW(every other non-matrix tensor; wd 0.02);
  -- Muon (MuonEq-R row normalisation, 4 Polar Express steps, bf16(u)·factor) on the block matrices
  optimizers = function(job)
    local optim = require "proteus.optim"
    local c = job.cfg
    local embed, mats, rest = {}, {}, {}
    for name, p in job.model:named_parameters() do
      if name == "tok_emb.weight" or name == "ve_shared.embed.weight" then embed[#embed + 1] = { name, p }
      elseif name:match("^blocks%.") and p:dim() == 2 and name:match("%.weight$") then mats[#mats + 1] = { name, p }
      else rest[#rest + 1] = { name, p } end
    end
    local betas = { c.beta1, c.beta2 }
    return {
      optim.AdamW { params = embed, lr = c.tied_embed_lr, betas = betas, eps = c.adam_eps, weight_decay = c.embed_wd },
      optim.AdamW { params = rest, lr = c.scalar_lr, betas = betas, eps = c.adam_eps, weight_decay = c.adam_wd },
      optim.Muon { params = mats, lr = c.matrix_lr, momentum = c.muon_momentum, weight_decay = c.muon_weight_decay,
        coeffs = "polar_express", ns_steps = c.muon_backend_steps, row_norm = c.muon_row_norm, round = "unit" },
    }
  end,
}

return recipe.main(def, arg, function(job)
  local c = job.cfg
  if c.vocab_size ~= 1024 and c.tokenizer_path == "" then
    error(string.format("sp8192_prequant_ttt: vocab_size=%d needs the sp8192 export: set data_path= (or DATA_PATH) "
      .. "and tokenizer_path= to the kevclark/parameter-golf sp8192 files (spec §1.2); the bundled sample is "
      .. "sp1024 (preset=demo / preset=smoke use it)", c.vocab_size), 0)
  end
  local quant = recipe.need("proteus.quant")
  local model = job:build_model()     -- 11 layers, XSA everywhere, VE 9–10, parallel lanes from 7
  job:train {                         -- time-fraction warmdown (hold 28%), clip before the reduction
    clip_when = "before",
    qat_names = { "^ve_shared%.proj%.weight$" },
    on_step = function(ctx)           -- depth recurrence of layers 3–5 after step 3000
      if not model.cfg.recurrence and ctx.step >= c.recur_start_step and #c.recur_layers > 0 then
        model.cfg.recurrence = true
        job:log("recurrence:on step:%d layers:%s", ctx.step, table.concat(model:layers(), ","))
      end
    end,
  }
  job:average()                       -- EMA 0.9965 every step
  -- everything after training runs with recurrence on (§4.4: the pre-quant TTT model, §4.5: the
  -- calibration generator, §4.6: the evaluated model), even if training stopped before recur_start_step
  model.cfg.recurrence = #c.recur_layers > 0
  job:eval_standard("pre_quant")      -- post-EMA, before the val fine-tune
  local val = job:val()               -- ledger opened with legal = false
  if c.prequant_ttt_enabled then      -- ILLEGAL: 6 epochs of AdamW on the validation tokens, unscored
    local ttt = job:ttt()
    local r = ttt.prequant(model, val, { seq_len = c.eval_seq_len, batch_tokens = c.prequant_ttt_batch_tokens,
      epochs = c.prequant_ttt_epochs, lr = c.prequant_ttt_lr, lr_min = c.prequant_ttt_lr_min,
      clip = c.prequant_ttt_grad_clip, train_batch_seqs = c.prequant_ttt_batch_seqs, log = function(l) job:log(l) end })
    job.out.prequant_ttt = { epochs = r.epochs, epoch_losses = r.epoch_losses, steps = r.steps,
      trained_before_scored = r.report.trained_before_scored }
  end
  -- GPTQ: calibration text sampled from the adapted model (recurrence on); Hessians from the plain
  -- 11-layer U-Net, without recurrence and without the parallel lanes (§4.5)
  local calib = quant.generate_calibration(model, c.gptq_calib_seqs, c.eval_seq_len, c.gptq_calib_temp, c.seed,
    { batch = c.gptq_calib_batch })
  local recur, par = model.cfg.recurrence, model.cfg.parallel_start
  model.cfg.recurrence, model.cfg.parallel_start = false, nil
  local okh, H = pcall(quant.collect_hessians, model, calib, { damp = c.gptq_damp })
  model.cfg.recurrence, model.cfg.parallel_start = recur, par
  if not okh then error(H, 0) end
  job:write_artifact(c.quant_policy, { hessians = H })  -- int6 GPTQ (SDClip 12.85), int8 SDClip embedding, Brotli
  job:roundtrip()                     -- standard eval of the dequantized weights (a fresh ledger)
  job:eval_sliding { ledger = val.ledger, batch_seqs = c.sliding_batch_seqs }  -- reported; same ledger as the val training
  job:results()
end)
