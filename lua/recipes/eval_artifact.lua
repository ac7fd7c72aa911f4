-- lua/recipes/eval_artifact.lua — evaluate a saved artifact on its own: rebuild the model from the
-- config stored in the artifact (and the recipe that wrote it), load the dequantized weights, run the
-- standard evaluation, optionally a sliding-window one, and optionally the writing recipe's TTT.
--
--   proteus lua/recipes/eval_artifact.lua artifact=runs/v9_lora_ttt_demo_X/model.ptz
--   proteus lua/recipes/eval_artifact.lua artifact=run/model.ptz ttt=lora       # PROTEUS-style LoRA TTT
--   proteus lua/recipes/eval_artifact.lua artifact=run/model.ptz ttt=chunked eval_stride=64   # #598-style
--   proteus lua/recipes/eval_artifact.lua artifact=run/model.ptz val_max_tokens=8192
--
-- The TTT knobs (ttt_*) are read from the stored config; this recipe's own knobs override the
-- evaluation lengths. The ledger runs in legal mode: a stored config whose TTT is illegal
-- (DeepQuant's 8 epochs) is refused by proteus.ttt with a message; pass legal_mode=false to run it
-- anyway and get the "illegal" verdict.
local recipe = require "proteus.recipe"
local data = require "proteus.data"

local def = recipe.define {
  name = "eval_artifact", legal = true, default_preset = "default",
  defaults = { artifact = "", ttt = "none", eval_seq_len = 0, eval_stride = 0, legal_mode = true },
  doc = {
    artifact = "the .ptz file to evaluate (required)",
    ttt = "none | lora (per-document LoRA, v9 / DeepQuant knobs) | chunked (#598 score-first full TTT)",
    eval_seq_len = "T of the evaluation; 0 = the stored config's eval_seq_len",
    eval_stride = "> 0: also a sliding-window evaluation with this stride",
    legal_mode = "open the ledger in legal mode (false: rule-breaking TTT runs and is reported illegal)",
  },
  presets = { default = {}, full = {}, demo = {}, smoke = { val_max_tokens = 4096, plot = false } },
}

return recipe.main(def, arg, function(job)
  local c = job.cfg
  if c.artifact == "" then error("eval_artifact: artifact=PATH is required (a model.ptz written by a recipe)", 0) end
  local artifact = recipe.need("proteus.artifact")
  local _, meta = artifact.load(c.artifact)
  local stored = meta.config
  if type(stored) ~= "table" or next(stored) == nil then
    error("eval_artifact: " .. c.artifact .. " holds no recipe config (written outside a recipe?)", 0)
  end
  local path = string.format("%s/lua/recipes/%s.lua", data.root(), meta.recipe)
  local ok, src = pcall(recipe.load, path)
  if not ok then
    error(string.format("eval_artifact: %s was written by recipe '%s', which cannot be loaded from %s: %s",
      c.artifact, tostring(meta.recipe), path, tostring(src)), 0)
  end
  local sc = {}
  for k, v in pairs(src.def.defaults) do sc[k] = v end
  for k, v in pairs(stored) do sc[k] = v end
  sc.vocab_size = math.tointeger(sc.vocab_size) or sc.vocab_size
  -- the run's evaluation knobs: ours, else the stored ones
  job.def = setmetatable({ legal = c.legal_mode }, { __index = def })
  c.vocab_size = sc.vocab_size
  c.data_path = c.data_path ~= "" and c.data_path or sc.data_path or ""
  c.tokenizer_path = c.tokenizer_path ~= "" and c.tokenizer_path or sc.tokenizer_path or ""
  c.eval_seq_len = c.eval_seq_len > 0 and c.eval_seq_len or sc.eval_seq_len or sc.train_seq_len
  local nn = require "proteus.nn"
  local model = nn.GPT(src.def.model(sc))
  -- a model trained with depth recurrence (#1539, §4.6) is evaluated with it on, as its run did
  if model.cfg.recurrence_layers then model.cfg.recurrence = true end
  artifact.load_into(model, c.artifact, { recipe = meta.recipe })
  job.model = model
  job.out.params = model:num_params()
  job:log("eval_artifact: %s (recipe %s, %d params, T=%d)", c.artifact, meta.recipe, model:num_params(), c.eval_seq_len)
  job:eval_standard("roundtrip")
  if c.eval_stride > 0 and c.ttt ~= "chunked" then job:eval_sliding() end
  if c.ttt == "lora" then
    local ttt = job:ttt()
    local lr = sc.ttt_lora_lr or 0.01
    local r = ttt.lora_eval(model, job:val(), {
      chunk_size = sc.ttt_chunk_size, eval_seq_len = sc.ttt_eval_seq_len, batch_docs = sc.ttt_batch_size,
      short_doc_len = sc.ttt_min_doc_len, lora_rank = sc.ttt_lora_rank, head_rank = sc.ttt_head_lora_rank or sc.ttt_lora_rank,
      lr = lr, epochs = sc.ttt_epochs, betas = { sc.ttt_beta1 or 0.9, sc.ttt_beta2 or 0.95 }, eps = sc.ttt_eps,
      lrs = sc.ttt_q_lr_mult and { q = lr * sc.ttt_q_lr_mult, v = lr * sc.ttt_v_lr_mult, head = lr * sc.ttt_head_lr_mult,
        bias = lr * sc.ttt_bias_lr_mult } or nil,
      bias_tuning = sc.ttt_bias_tuning, cosine = sc.ttt_cosine, cosine_floor = sc.ttt_cosine_floor,
      nll_scale = sc.ttt_temperature, log = function(l) job:log(l) end,
    })
    job:record_ttt(r, r.submission_bpb)
  elseif c.ttt == "chunked" then
    local ttt = job:ttt()
    local freeze = {}
    for i = 0, (sc.ttt_freeze_blocks or 2) - 1 do freeze[#freeze + 1] = "^blocks%." .. i .. "%." end
    local r = ttt.chunked_full(model, job:val(), { seq_len = c.eval_seq_len,
      stride = c.eval_stride > 0 and c.eval_stride or sc.eval_stride or 64, chunk_tokens = sc.ttt_chunk_tokens,
      epochs = sc.ttt_epochs, lr = sc.ttt_lr, momentum = sc.ttt_momentum, clip = sc.ttt_grad_clip, freeze = freeze,
      log = function(l) job:log(l) end })
    job:record_ttt(r)
  elseif c.ttt ~= "none" then
    error("eval_artifact: ttt='" .. c.ttt .. "' (expected none, lora or chunked)", 0)
  end
  job:results { evaluated_artifact = c.artifact, artifact_recipe = meta.recipe }
end)
