-- tests/lua/test_autograd.lua — the tape: accumulation, no_grad, detach, second backward, and the
-- finite-difference gradient check of every elementwise and view op.
--
--   build/proteus tests/run.lua tests/lua/test_autograd.lua
local pt = require "proteus"
local testing = require "proteus.testing"

local T = {}

local function rnd(shape, seed, lo)
  local t = testing.random_fill(pt.zeros(shape, "f64"), seed)
  if lo then t = t:abs() + lo end
  return t
end

local function check(t, fn, inputs, opts)
  local ok, msg = testing.gradcheck(fn, inputs, opts)
  assert(ok, msg)
end

function T.chain_rule_exact(t)
  local x = pt.tensor({ 1, 2, 3 }, { requires_grad = true })
  local y = (x * x * x):exp():log() -- x^3
  y:backward(pt.ones(3))
  t.eq(x.grad:totable(), { 3, 12, 27 })
end

function T.gradients_accumulate(t)
  local x = pt.tensor({ 1, 2 }, { requires_grad = true })
  ;(x * 2):backward(pt.ones(2))
  ;(x * 3):backward(pt.ones(2))
  t.eq(x.grad:totable(), { 5, 5 })
  x.grad = nil
  t.eq(x.grad, nil)
end

function T.shared_input_used_twice(t)
  local x = pt.tensor({ 3 }, { requires_grad = true })
  local y = x * x + x -- dy/dx = 2x + 1 = 7
  y:backward(pt.ones(1))
  t.eq(x.grad:totable(), { 7 })
end

function T.no_grad_and_detach(t)
  local x = pt.tensor({ 1 }, { requires_grad = true })
  local y = pt.no_grad(function() return x * 2 end)
  t.eq(y.requires_grad, false)
  local z = (x * 2):detach()
  t.eq(z.requires_grad, false)
  t.eq(pt.grad_enabled(), true)
  t.raises(function() z:backward(pt.ones(1)) end, "does not require grad")
  -- no_grad restores the mode after an error too
  pcall(pt.no_grad, function() error("boom") end)
  t.eq(pt.grad_enabled(), true)
end

function T.second_backward_is_an_error(t)
  local x = pt.tensor({ 1, 2 }, { requires_grad = true })
  local y = x:exp()
  y:backward(pt.ones(2))
  t.raises(function() y:backward(pt.ones(2)) end, "second time")
end

function T.backward_shape_errors(t)
  local x = pt.tensor({ 1, 2 }, { requires_grad = true })
  local y = x * 2
  t.raises(function() y:backward() end, "one-element")
  t.raises(function() y:backward(pt.ones(3)) end, "does not match")
end

function T.retain_grad_on_intermediate(t)
  local x = pt.tensor({ 2 }, { requires_grad = true })
  local h = x * 3
  h.retain_grad = true
  ;(h * h):backward(pt.ones(1))
  t.eq(h.grad:totable(), { 12 })
  t.eq(x.grad:totable(), { 36 })
end

function T.unneeded_gradients_are_dropped_once(t)
  -- a fused backward that returns gradients for inputs that need none (attention's dk here) must not
  -- be released twice (regression: double free found by the TTT engineer)
  local F = require "proteus.functional"
  local q = pt.randn({ 1, 5, 2, 8 }, { requires_grad = true })
  local k = pt.randn({ 1, 5, 1, 8 })
  local v = pt.randn({ 1, 5, 1, 8 }, { requires_grad = true })
  for _ = 1, 20 do
    q.grad, v.grad = nil, nil
    F.attention(q, k, v):backward(pt.ones({ 1, 5, 2, 8 }))
  end
  t.eq(k.grad, nil)
  t.eq(q.grad:shape(), { 1, 5, 2, 8 })
end

function T.gradcheck_binary_broadcast(t)
  local a, b = rnd({ 2, 3 }, 1), rnd({ 3 }, 2, 0.5)
  check(t, function(x, y) return x + y end, { a, b })
  check(t, function(x, y) return x - y end, { a, b })
  check(t, function(x, y) return x * y end, { a, b })
  check(t, function(x, y) return x / y end, { a, b })
  check(t, function(x, y) return x:maximum(y) end, { a, b })
  check(t, function(x, y) return x:minimum(y) end, { a, b })
  check(t, function(x, y) return x ^ y end, { rnd({ 2, 3 }, 3, 0.5), b })
  check(t, function(x, y) return pt.where(x:gt(0), x, y) end, { a, b })
end

function T.gradcheck_scalar_ops(t)
  local a = rnd({ 4 }, 4, 0.5)
  check(t, function(x) return x + 2 end, { a })
  check(t, function(x) return 2 - x end, { a })
  check(t, function(x) return x * 3 end, { a })
  check(t, function(x) return x / 3 end, { a })
  check(t, function(x) return 3 / x end, { a })
  check(t, function(x) return x ^ 3 end, { a })
  check(t, function(x) return 2 ^ x end, { a })
end

function T.gradcheck_unary(t)
  local a = rnd({ 5 }, 5)
  local pos = rnd({ 5 }, 6, 0.5)
  for _, f in ipairs { "neg", "exp", "tanh", "sigmoid", "sin", "cos", "square", "abs", "relu" } do
    check(t, function(x) return x[f](x) end, { a })
  end
  for _, f in ipairs { "log", "sqrt", "rsqrt", "reciprocal" } do
    check(t, function(x) return x[f](x) end, { pos })
  end
  check(t, function(x) return x:leaky_relu(0.5) end, { a })
  check(t, function(x) return x:clamp(-0.3, 0.3) end, { a })
  check(t, function(x) return x:to("f32"):to("f64") end, { a }, { eps = 1e-2, atol = 1e-4, rtol = 1e-3 })
end

function T.gradcheck_views(t)
  local a = rnd({ 2, 3, 4 }, 7)
  check(t, function(x) return x:transpose(1, 3) * 1 end, { a })
  check(t, function(x) return x:permute { 3, 1, 2 }:contiguous() end, { a })
  check(t, function(x) return x:reshape { 6, 4 } end, { a })
  check(t, function(x) return x:narrow(3, 2, 2) end, { a })
  check(t, function(x) return x:select(2, 3) end, { a })
  check(t, function(x) return x:narrow(1, 1, 1):expand { 3, 3, 4 } end, { a })
  check(t, function(x) return x:unsqueeze(2):squeeze(2) end, { a })
  check(t, function(x, y) return pt.cat({ x, y }, 2) end, { a, rnd({ 2, 1, 4 }, 8) })
  check(t, function(x, y) return pt.stack({ x, y }, 1) end, { a, rnd({ 2, 3, 4 }, 9) })
end

return T
