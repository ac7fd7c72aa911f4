-- tests/gpu/test_bf16_compute.lua — a GPT with compute_dtype = "bf16" (nn.lua: bf16 matmuls and
-- attention, f32 weights) on CUDA against the same model on the CPU, whose bf16 kernels round at the
-- same points (src/kernels/cpu/bf16.c): the loss and every parameter gradient agree to bf16 tolerance
-- (summation orders and the flash kernel's online softmax differ), and a few AdamW steps follow the
-- same curve.
--
--   build/proteus tests/run.lua tests/gpu/test_bf16_compute.lua       (ctest -L gpu; scripts/gpu_tests.sh)
--   PROTEUS_GPU_TEST_DEVICE=cpu build/proteus tests/run.lua tests/gpu/test_bf16_compute.lua  (harness check)
local pt = require "proteus"
local nn = require "proteus.nn"
local optim = require "proteus.optim"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

-- head dim 64: the flash kernels' shape (the simple kernel takes the others)
local CFG = { vocab_size = 256, num_layers = 2, model_dim = 128, num_heads = 2, num_kv_heads = 1, mlp_hidden = 256,
  xsa_layers = { 1 }, compute_dtype = "bf16" }

local function model_on(dev)
  pt.manual_seed(11)
  local m = nn.GPT(CFG)
  if dev ~= "cpu" then m:to(dev) end
  return m
end

return {
  loss_and_grads_match_cpu = function(T)
    G.need_device(T)
    pt.manual_seed(G.SEED)
    local x, y = pt.randint(0, 256, { 2, 128 }), pt.randint(0, 256, { 2, 128 })
    local md, mc = model_on(G.DEV), model_on("cpu")
    local ld, lc = md:forward(x:to(G.DEV), y:to(G.DEV)), mc:forward(x, y)
    local r = math.abs(ld:item() - lc:item()) / lc:item()
    assert(r < 5e-3, string.format("seed %d: loss %.6f on %s vs %.6f on the CPU (rel %.2g)", G.SEED, ld:item(), G.DEV,
      lc:item(), r))
    ld:backward()
    lc:backward()
    local gc = {}
    for name, p in mc:named_parameters() do gc[name] = p.grad end
    for name, p in md:named_parameters() do
      T.eq(p.grad:dtype(), "f32", name .. " grad dtype")
      local gr = G.rel(p.grad, gc[name])
      assert(gr < 5e-2, string.format("seed %d: %s grad rel %.3g (%s vs CPU)", G.SEED, name, gr, G.DEV))
    end
  end,

  adamw_curve_matches_cpu = function(T)
    G.need_device(T)
    pt.manual_seed(G.SEED + 1)
    local x = pt.randint(0, 256, { 2, 128 })
    local y = pt.cat({ x:narrow(2, 2, 127), x:narrow(2, 1, 1) }, 2)
    local function curve(dev)
      local m = model_on(dev)
      local opt = optim.AdamW { params = m:parameters(), lr = 3e-3, betas = { 0.9, 0.95 } }
      local xs, ys, out = x:to(dev), y:to(dev), {}
      for s = 1, 5 do
        local l = m:forward(xs, ys)
        l:backward()
        opt:step()
        opt:zero_grad()
        out[s] = l:item()
      end
      return out
    end
    local a, b = curve(G.DEV), curve("cpu")
    for s = 1, 5 do
      local r = math.abs(a[s] - b[s]) / b[s]
      assert(r < 1e-2, string.format("seed %d: step %d loss %.6f on %s vs %.6f on the CPU", G.SEED, s, a[s], G.DEV, b[s]))
    end
  end,
}
