--- tests/lua/gpt_configs.lua — the GPT configs of the parameter-golf family for nn.GPT (not a test file).
--
--   local configs = dofile("tests/lua/gpt_configs.lua")   -- name -> config table (nn.gpt_defaults keys)
--   local model = nn.GPT(configs.proteus_v9)
--
-- The same configs as tests/reference/configs.py (the PyTorch reference); test_gpt_parity.lua checks
-- that `configs.py --lua` gives exactly these tables. Sources (../shared/spec/parameter-golf.md):
-- baseline §2.1; PROTEUS v9 §3.1–3.3 as run (no XSA) and with the seed card's XSA on the last 4 layers;
-- #1539 §4.1–4.2 (recurrence off, and on as after step 3000); #598 §5.1–5.2. `params` holds the counts
-- in the submissions' logs. Layer indices are 0-based physical layers, as in the spec.
local M = {}

local function with(base, extra)
  local r = {}
  for k, v in pairs(base) do r[k] = v end
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end
M.with = with

local proteus_v9 = {
  num_layers = 11, mlp_hidden = 1536, rope_base = 50000, rope_train_seq_len = 1024,
  init = "orthogonal", depth_scale = true, bigram_vocab_size = 2048, bigram_dim = 128, smear_gate = true,
}

local pr1539 = {
  vocab_size = 8192, num_layers = 11, mlp_mult = 4, mlp_act = "leaky_relu2", rope_dims = 16,
  rope_train_seq_len = 1024, qk_gain_init = 5.25, init = "orthogonal", ln_scale = true,
  skip_mode = "plain", smear_gate = true, xsa_layers = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 },
  ve_dim = 44, ve_layers = { 9, 10 }, parallel_start = 7, recurrence_layers = { 3, 4, 5 },
  recurrence = false,
}

M.configs = {
  baseline = {},
  proteus_v9 = with(proteus_v9),
  proteus_v9_xsa = with(proteus_v9, { xsa_layers = { 7, 8, 9, 10 } }),
  pr1539 = with(pr1539),
  pr1539_recur = with(pr1539, { recurrence = true }),
  pr598 = {
    num_layers = 11, mlp_hidden = 1536, mlp_act = "star_relu", rope_dims = 16, rope_train_seq_len = 1024,
    init = "orthogonal", ln_scale = true, skip_mode = "gated", xsa_layers = { 7, 8, 9, 10 },
    ve_dim = 128, ve_layers = { 9, 10 }, bigram_vocab_size = 2048, bigram_dim = 128, smear_gate = true,
  },
}

M.names = { "baseline", "proteus_v9", "proteus_v9_xsa", "pr1539", "pr1539_recur", "pr598" }

M.params = {
  baseline = 17059912,
  proteus_v9 = 26829913,
  proteus_v9_xsa = 26829913,
  pr1539 = 36311132,
  pr1539_recur = 36311132,
  pr598 = 27030108,
}

return M
