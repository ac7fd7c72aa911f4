-- examples/custom_op.lua — a new op composed in Lua from tensor ops: autograd differentiates it
-- with no backward written by hand, proteus.testing.gradcheck checks that gradient against finite
-- differences, and the op is then used inside a small model.
--
--   build/proteus examples/custom_op.lua
--
-- The op: the tanh form of GELU, gelu(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
-- Every tensor op recorded on the tape (*, +, pow, tanh, ...) has its backward, so a composition is
-- differentiable as it stands. A composed op is one autograd node per primitive; when one becomes a
-- hot spot, it moves into a fused C kernel (src/kernels/, see proteus.functional).
-- tests/lua/test_examples.lua runs this file.
local pt = require "proteus"
local testing = require "proteus.testing"

local K = math.sqrt(2 / math.pi)

--- gelu(x): any float tensor, any shape; differentiable through its primitives.
local function gelu(x)
  local inner = (x + x:pow(3) * 0.044715) * K
  return x * 0.5 * (inner:tanh() + 1)
end

-- 1. values: against the formula evaluated in plain Lua
local xs = { -3, -1, -0.5, 0, 0.25, 1, 2.5 }
local y = gelu(pt.tensor(xs, "f64"))
for i, v in ipairs(xs) do
  local want = 0.5 * v * (1 + math.tanh(K * (v + 0.044715 * v ^ 3)))
  assert(math.abs(y[i]:item() - want) < 1e-12, string.format("gelu(%g) = %.17g, want %.17g", v, y[i]:item(), want))
end
print("values:   gelu(" .. table.concat(xs, ", ") .. ")")
print(y)

-- 2. gradient: analytic (autograd) against central differences, in f64
pt.manual_seed(3)
local x = pt.randn({ 4, 5 }, "f64")
local ok, why = testing.gradcheck(gelu, { x })
assert(ok, why)
print("gradcheck: gelu passes (4x5 f64, central differences, rtol 1e-4)")

-- the same check for an op with two inputs: a gated unit gelu(a)·b (GeGLU)
local function geglu(a, b) return gelu(a) * b end
ok, why = testing.gradcheck(geglu, { pt.randn({ 3, 4 }, "f64"), pt.randn({ 3, 4 }, "f64") })
assert(ok, why)
print("gradcheck: geglu(a, b) = gelu(a)·b passes for both inputs")

-- 3. in a model: a two-layer MLP with the op, one gradient step lowers the loss
local w1 = (pt.randn({ 8, 16 }) * 0.3):detach()
local w2 = (pt.randn({ 16, 1 }) * 0.3):detach()
w1.requires_grad, w2.requires_grad = true, true
local inp, target = pt.randn({ 32, 8 }), pt.randn({ 32, 1 })
local function loss_fn() return (gelu(inp:matmul(w1)):matmul(w2) - target):square():mean() end
local before = loss_fn()
before:backward()
pt.no_grad(function()
  w1:add_(w1.grad * -0.5)
  w2:add_(w2.grad * -0.5)
end)
local after = loss_fn()
print(string.format("mlp:      loss %.6f -> %.6f after one gradient step", before:item(), after:item()))
assert(after:item() < before:item(), "one step along the gradient lowers the loss")
