-- tests/gpu/test_lora.lua — the batched LoRA delta of TTT (F.lora) on CUDA against the CPU, forward and
-- backward (x, A, B), f32 and f64, with v9's shapes scaled down (rank 8, 512 -> 256 features).
--
--   build/proteus tests/run.lua tests/gpu/test_lora.lua      (ctest -L gpu; scripts/gpu_tests.sh)
local pt = require "proteus"
local F = require "proteus.functional"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV = G.DEV
pt.manual_seed(G.SEED)
local TOL = { f32 = 1e-5, f64 = 1e-12 }
local rel = G.rel

return {
  lora_matches_cpu = function(T)
    G.need_device(T)
    for _, dt in ipairs { "f32", "f64" } do
      local x, A, B = pt.randn({ 3, 40, 128 }, dt), pt.randn({ 3, 8, 128 }, dt), pt.randn({ 3, 256, 8 }, dt)
      local gy = pt.randn({ 3, 40, 256 }, dt)
      local function run(dev)
        local xs = { x:to(dev):detach(), A:to(dev):detach(), B:to(dev):detach() }
        for _, t in ipairs(xs) do t.requires_grad = true end
        local y = F.lora(xs[1], xs[2], xs[3])
        y:backward(gy:to(dev))
        return y, xs[1].grad, xs[2].grad, xs[3].grad
      end
      local r1 = { run(DEV) }
      local r0 = { run("cpu") }
      for i, what in ipairs { "y", "dx", "dA", "dB" } do
        local r = rel(r1[i], r0[i])
        assert(r <= TOL[dt], string.format("lora %s %s: rel %.3g", what, dt, r))
      end
    end
  end,
}
