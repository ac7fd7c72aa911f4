-- tests/gpu/test_ttt_device.lua — test-time training with the model on the GPU against the same run on
-- the CPU: ttt.lora_eval (PROTEUS v9's per-document LoRA TTT) and ttt.chunked_full (#598) build their
-- token windows, targets, weights and LoRA leaves on the CPU (same generator stream on every device),
-- move them to the model's device, and hand the ledger CPU logits. Same seed, same weights, same
-- documents: the BPB must agree within f32 tolerance and the ledger's counts exactly.
--
--   build/proteus tests/run.lua tests/gpu/test_ttt_device.lua        (ctest -L gpu; scripts/gpu_tests.sh)
--   PROTEUS_GPU_TEST_DEVICE=cpu build/proteus tests/run.lua tests/gpu/test_ttt_device.lua   (harness check)
local pt = require "proteus"
local nn = require "proteus.nn"
local data = require "proteus.data"
local ttt = require "proteus.ttt"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")
local C = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "../lua/gpt_configs.lua")

local CFG = C.with(C.configs.proteus_v9, { num_layers = 3, model_dim = 64, num_heads = 4, num_kv_heads = 2,
  mlp_hidden = 128, bigram_vocab_size = 64, bigram_dim = 16, xsa_layers = { 2 } })
local N_TOKENS = 4000 -- a piece of the bundled validation stream: short and long documents both

local full
local function val(legal)
  full = full or data.open_val { vocab = 1024 }
  local tok = full.tokens:sub(0, N_TOKENS)
  return { tokens = tok, tables = full.tables,
    ledger = data.ledger(tok, full.tables, { legal = legal ~= false, name = "ttt_device" }) }
end

-- a model on dev with the weights drawn on the CPU from seed 2024
local function model_on(dev)
  pt.manual_seed(2024)
  local m = nn.GPT(CFG)
  if dev ~= "cpu" then m:to(dev) end
  return m
end

local function same_report(T, a, b)
  for _, k in ipairs { "verdict", "targets", "scored_once", "scored_never", "scored_multiple",
    "trained_before_scored" } do
    T.eq(a[k], b[k], "ledger " .. k)
  end
end

return {
  lora_eval_matches_cpu = function(T)
    G.need_device(T)
    local opts = { chunk_size = 64, eval_seq_len = 128, batch_docs = 4, short_doc_len = 200, log = false }
    pt.manual_seed(99)
    local a = ttt.lora_eval(model_on(G.DEV), val(true), opts)
    pt.manual_seed(99)
    local b = ttt.lora_eval(model_on("cpu"), val(true), opts)
    same_report(T, a.report, b.report)
    T.eq(a.report.verdict, "legal")
    T.eq(a.steps, b.steps, "TTT steps")
    local r = math.abs(a.bpb - b.bpb) / b.bpb
    assert(r <= 1e-4, string.format("seed %d: TTT BPB %.7f on %s vs %.7f on the CPU (rel %.2g)", G.SEED, a.bpb,
      G.DEV, b.bpb, r))
    print(string.format("    lora_eval: %d steps, BPB %.6f (%s) vs %.6f (cpu)", a.steps, a.bpb, G.DEV, b.bpb))
  end,

  chunked_full_matches_cpu = function(T)
    G.need_device(T)
    local opts = { chunk_tokens = 1024, seq_len = 128, stride = 64, epochs = 1, lr = 0.002, log = false }
    local a = ttt.chunked_full(model_on(G.DEV), val(true), opts)
    local b = ttt.chunked_full(model_on("cpu"), val(true), opts)
    same_report(T, a.report, b.report)
    local r = math.abs(a.bpb - b.bpb) / b.bpb
    assert(r <= 1e-4, string.format("chunked TTT BPB %.7f on %s vs %.7f on the CPU (rel %.2g)", a.bpb, G.DEV,
      b.bpb, r))
    print(string.format("    chunked_full: BPB %.6f (%s) vs %.6f (cpu)", a.bpb, G.DEV, b.bpb))
  end,
}
