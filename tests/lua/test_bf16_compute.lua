-- tests/lua/test_bf16_compute.lua — bf16 compute on the CPU (src/kernels/cpu/bf16.c) and the GPT's
-- compute_dtype = "bf16" (nn.lua): each bf16 kernel equals the f32 kernel on the bf16-rounded inputs,
-- rounded once (the CUDA kernels' storage contract), bit for bit; a bf16-compute GPT keeps f32
-- parameters and gradients, its loss and gradients stay near the f32 model's, and it trains.
--
--   build/proteus tests/run.lua tests/lua/test_bf16_compute.lua
local pt = require "proteus"
local F = require "proteus.functional"
local nn = require "proteus.nn"
local testing = require "proteus.testing"

-- a tensor with values already on the bf16 grid (f32), and its bf16 copy
local function grid(shape, scale)
  local x = (pt.randn(shape) * (scale or 1)):to("bf16"):to("f32")
  return x, x:to("bf16")
end

local same_bits, rel = testing.same_bits, testing.rel

local CFG = { vocab_size = 64, num_layers = 2, model_dim = 32, num_heads = 4, num_kv_heads = 2, mlp_hidden = 64,
  xsa_layers = { 1 } }

local function with(a, b)
  local r = {}
  for k, v in pairs(a) do r[k] = v end
  for k, v in pairs(b) do r[k] = v end
  return r
end

return {
  matmul_is_the_f32_product_rounded = function(T)
    pt.manual_seed(1)
    local a32, a16 = grid({ 3, 5, 7 })
    local b32, b16 = grid({ 7, 4 })
    same_bits(a16:matmul(b16), a32:matmul(b32):to("bf16"), "a·b")
    local w32, w16 = grid({ 6, 7 })
    same_bits(a16:matmul(w16:transpose(1, 2)), a32:matmul(w32:transpose(1, 2)):to("bf16"), "x·wᵀ")
    -- the backward: gradients in bf16, each the f32 one on the same (bf16) operands, rounded
    local x = a16:detach()
    x.requires_grad = true
    local y = x:matmul(w16:transpose(1, 2))
    local g32, g16 = grid(y:shape())
    y:backward(g16)
    same_bits(x.grad, g32:matmul(w32):to("bf16"), "dx")
  end,

  linear_relu2_and_attention_are_the_f32_kernels_rounded = function(T)
    pt.manual_seed(2)
    local x32, x16 = grid({ 2, 5, 16 })
    local w32, w16 = grid({ 24, 16 }, 0.25)
    same_bits(F.linear_relu2(x16, w16), F.linear_relu2(x32, w32):to("bf16"), "linear_relu2")
    same_bits(F.linear_leaky_relu2(x16, w16, 0.5), F.linear_leaky_relu2(x32, w32, 0.5):to("bf16"), "linear_leaky_relu2")
    local q32, q16 = grid({ 2, 9, 4, 8 })
    local k32, k16 = grid({ 2, 9, 2, 8 })
    local v32, v16 = grid({ 2, 9, 2, 8 })
    same_bits(F.attention(q16, k16, v16), F.attention(q32, k32, v32):to("bf16"), "attention")
    -- backward: gradients flow in bf16 and stay close to the f32 ones
    local q, k, v = q16:detach(), k16:detach(), v16:detach()
    for _, t in ipairs { q, k, v } do t.requires_grad = true end
    local gy32, gy16 = grid({ 2, 9, 4, 8 })
    F.attention(q, k, v):backward(gy16)
    local qf, kf, vf = q32:detach(), k32:detach(), v32:detach()
    for _, t in ipairs { qf, kf, vf } do t.requires_grad = true end
    F.attention(qf, kf, vf):backward(gy32)
    for _, p in ipairs { { "dq", q, qf }, { "dk", k, kf }, { "dv", v, vf } } do
      T.eq(p[2].grad:dtype(), "bf16", p[1] .. " dtype")
      local r = rel(p[2].grad:to("f32"), p[3].grad)
      assert(r < 1e-2, string.format("%s: bf16 vs f32 rel %.3g", p[1], r))
    end
  end,

  gpt_bf16_compute_near_f32_with_f32_grads = function(T)
    for _, fused in ipairs { true, false } do
      pt.manual_seed(3)
      local m32 = nn.GPT(with(CFG, { fused_mlp = fused, fused_norms = fused }))
      pt.manual_seed(3)
      local m16 = nn.GPT(with(CFG, { compute_dtype = "bf16", fused_mlp = fused, fused_norms = fused }))
      local x, y = pt.randint(0, 64, { 2, 16 }), pt.randint(0, 64, { 2, 16 })
      local l32, l16 = m32:forward(x, y), m16:forward(x, y)
      T.eq(l16:dtype(), "f32", "loss dtype")
      local r = math.abs(l16:item() - l32:item()) / l32:item()
      assert(r < 2e-2, string.format("fused=%s: bf16 loss %.6f vs f32 %.6f (rel %.3g)", tostring(fused), l16:item(),
        l32:item(), r))
      l32:backward()
      l16:backward()
      local g32 = {}
      for name, p in m32:named_parameters() do g32[name] = p.grad end
      local n = 0
      for name, p in m16:named_parameters() do
        T.eq(p:dtype(), "f32", name .. " stays f32")
        assert(p.grad, name .. " has no gradient in bf16 compute")
        T.eq(p.grad:dtype(), "f32", name .. " grad dtype")
        local gr = rel(p.grad, g32[name])
        assert(gr < 0.1, string.format("fused=%s: %s grad bf16 vs f32 rel %.3g", tostring(fused), name, gr))
        n = n + 1
      end
      assert(n > 10, "parameters checked: " .. n)
    end
  end,

  gpt_bf16_compute_trains = function(T)
    local optim = require "proteus.optim"
    pt.manual_seed(4)
    local m = nn.GPT(with(CFG, { compute_dtype = "bf16" }))
    local opt = optim.AdamW { params = m:parameters(), lr = 0.01, betas = { 0.9, 0.95 } }
    local x = pt.randint(0, 64, { 4, 16 })
    local y = pt.cat({ x:narrow(2, 2, 15), x:narrow(2, 1, 1) }, 2)
    local first, last
    for s = 1, 30 do
      local l = m:forward(x, y)
      l:backward()
      opt:step()
      opt:zero_grad()
      if s == 1 then first = l:item() end
      last = l:item()
    end
    assert(last < 0.7 * first, string.format("bf16 compute did not learn: loss %.4f -> %.4f", first, last))
  end,

  bad_compute_dtype_is_named = function(T)
    T.raises(function() nn.GPT(with(CFG, { compute_dtype = "fp16" })) end,
      "compute_dtype='fp16' (expected \"f32\" or \"bf16\")")
  end,
}
