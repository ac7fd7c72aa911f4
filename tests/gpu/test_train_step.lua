-- tests/gpu/test_train_step.lua — a whole PROTEUS-style training run on CUDA against the CPU (issue 10):
-- same seed, same weights (drawn on the CPU, moved), same batches, 50 steps of Muon + AdamW; the loss
-- curves must agree within f32 tolerance (different summation orders, atomics in the attention
-- backward). A shorter run (5 steps) is the default so the suite stays quick; PT_GPU_STEPS=50 runs the
-- issue's full check.
--
--   build/proteus tests/run.lua tests/gpu/test_train_step.lua      (ctest -L gpu; scripts/gpu_tests.sh)
local pt = require "proteus"
local nn = require "proteus.nn"
local optim = require "proteus.optim"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV = G.DEV
local STEPS = tonumber(os.getenv("PT_GPU_STEPS") or "") or 5
local need_device = G.need_device

local CFG = { vocab_size = 1024, num_layers = 4, model_dim = 128, num_heads = 4, num_kv_heads = 2, mlp_mult = 3,
  rope_base = 50000, rope_train_seq_len = 1024, init = "orthogonal", depth_scale = true, bigram_vocab_size = 2048,
  bigram_dim = 32, smear_gate = true, xsa_layers = { 3 } }

local function curve(dev, batches)
  pt.manual_seed(1337)
  local model = nn.GPT(CFG):to(dev)
  local mats, rest = {}, {}
  for name, p in model:named_parameters() do
    if name:match("^blocks%.") and p:dim() == 2 and not name:match("resid_mix") then mats[#mats + 1] = p
    else rest[#rest + 1] = p end
  end
  local muon = optim.Muon { params = mats, lr = 0.02, momentum = 0.95, ns_dtype = "f32" }
  local adam = optim.AdamW { params = rest, lr = 0.01, betas = { 0.9, 0.95 }, eps = 1e-8 }
  local losses = {}
  for k = 1, #batches do
    local x, y = batches[k][1]:to(dev), batches[k][2]:to(dev)
    local loss = model:forward(x, y)
    loss:backward()
    losses[k] = loss:item()
    optim.clip_grad_norm(model:parameters(), 0.3)
    muon:step(1.0)
    adam:step(1.0)
    model:zero_grad()
  end
  return losses
end

return {
  loss_curve_matches_cpu = function(T)
    need_device(T)
    pt.manual_seed(7)
    local batches = {}
    for k = 1, STEPS do
      local xy = pt.randint(0, 1024, { 4, 65 })
      batches[k] = { xy:narrow(2, 1, 64):contiguous(), xy:narrow(2, 2, 64):contiguous() }
    end
    local a, b = curve(DEV, batches), curve("cpu", batches)
    for k = 1, STEPS do
      local r = math.abs(a[k] - b[k]) / math.abs(b[k])
      assert(r <= 1e-3, string.format("step %d: loss %.7f on %s vs %.7f on the CPU (rel %.2g)", k, a[k], DEV, b[k], r))
    end
    print(string.format("    %d steps, final loss %.6f (%s) vs %.6f (cpu)", STEPS, a[STEPS], DEV, b[STEPS]))
  end,
}
