-- tests/lua/test_functional.lua — the Lua face of the fused ops (proteus.functional): exact values on
-- hand cases, options and their defaults, errors raised with clear messages, and gradients reaching the
-- leaves through t:backward(). (Finite-difference checks of every backward: tests/c/test_fused.c.)
-- Run: build/proteus tests/run.lua tests/lua/test_functional.lua
local pt = require "proteus"
local F = require "proteus.functional"

local function near_all(T, got, want, tol, what)
  got = got:totable()
  local function walk(g, w, path)
    if type(w) == "table" then
      T.eq(#g, #w, path .. " length")
      for i = 1, #w do walk(g[i], w[i], path .. "[" .. i .. "]") end
    else
      T.near(g, w, tol, path)
    end
  end
  walk(got, want, what or "tensor")
end

return {
  rms_norm_hand_case = function(T)
    local x = pt.tensor({ { 3, 4 } }, "f64")
    local d = math.sqrt(12.5 + F.RMS_EPS)
    near_all(T, F.rms_norm(x), { { 3 / d, 4 / d } }, 1e-15)
    near_all(T, F.rms_norm(x, 0, 0.5), { { 1.5 / math.sqrt(12.5), 2 / math.sqrt(12.5) } }, 1e-15, "ln-scale")
    T.near(F.RMS_EPS, 1.1920928955078125e-07, 0, "FLT_EPSILON")
  end,

  rms_norm_gradient = function(T)
    local x = pt.tensor({ { 3, 4 } }, { dtype = "f64", requires_grad = true })
    local y = F.rms_norm(x, 0)
    y:backward(pt.tensor({ { 1, 0 } }, "f64"))
    -- d y0 / d x = r·(e0 − x·x0·r²/C) with r = 1/sqrt(12.5)
    local r = 1 / math.sqrt(12.5)
    near_all(T, x.grad, { { r * (1 - 3 * 3 * r * r / 2), r * (0 - 4 * 3 * r * r / 2) } }, 1e-15)
  end,

  rotary_options = function(T)
    local x = pt.tensor({ { { { 1, 2, 3, 4 } }, { { 1, 2, 3, 4 } } } }, "f64") -- [1, 2, 1, 4]
    local y = F.rotary(x, { base = 10000 })
    near_all(T, y[1][2][1], { 1 * math.cos(1) + 3 * math.sin(1), 2 * math.cos(0.01) + 4 * math.sin(0.01),
      -math.sin(1) + 3 * math.cos(1), -2 * math.sin(0.01) + 4 * math.cos(0.01) }, 1e-12)
    local p = F.rotary(x, { dims = 2 })
    near_all(T, p[1][2][1], { math.cos(1) + 2 * math.sin(1), -math.sin(1) + 2 * math.cos(1), 3, 4 }, 1e-12)
    local o = F.rotary(x, { offset = 1 })
    near_all(T, o[1][1][1], y[1][2][1]:totable(), 1e-15, "offset")
    T.near(F.rotary_base(50000, 64, 2048, 1024), 102261.14, 0.01, "NTK base PROTEUS")
    T.near(F.rotary_base(10000, 16, 2048), 22081.79, 0.01, "NTK base #598")
    T.raises(function() F.rotary(x, { dims = 3 }) end, "rotary dims must be even and in [2, D = 4], got 3")
    T.raises(function() F.rotary(x, { dim = 2 }) end, "F.rotary: unknown option 'dim' (known: dims, base, train_len, offset)")
  end,

  attention_gqa = function(T)
    local q = pt.tensor({ { { { 1 }, { 1 } }, { { 1 }, { 1 } } } }, "f64")  -- [1, 2, 2, 1]
    local k = pt.tensor({ { { { 0 } }, { { math.log(2) } } } }, "f64")      -- [1, 2, 1, 1]
    local v = pt.tensor({ { { { 3 } }, { { 6 } } } }, "f64")
    near_all(T, F.attention(q, k, v), { { { { 3 }, { 3 } }, { { 5 }, { 5 } } } }, 1e-14)
    -- scale option: 0.5 halves the scores: p = [1/(1+√2), √2/(1+√2)]
    local s2 = math.sqrt(2)
    T.near(F.attention(q, k, v, { scale = 0.5 })[1][2][1][1]:item(), (3 + 6 * s2) / (1 + s2), 1e-14)
    local k3 = pt.zeros({ 1, 2, 3, 1 }, "f64")
    T.raises(function() F.attention(q, k3, k3) end, "do not divide the 2 query heads")
    T.raises(function() F.attention(q, k, v, { scal = 1 }) end, "unknown option 'scal'")
  end,

  attention_gradients_reach_qkv = function(T)
    local q = pt.tensor({ { { { 0.3, -0.2 } }, { { 0.1, 0.5 } } } }, { dtype = "f64", requires_grad = true })
    local k = pt.tensor({ { { { 0.7, 0.1 } }, { { -0.4, 0.2 } } } }, { dtype = "f64", requires_grad = true })
    local v = pt.tensor({ { { { 1, 2 } }, { { 3, 4 } } } }, { dtype = "f64", requires_grad = true })
    local y = F.attention(q, k, v)
    y:backward(pt.ones({ 1, 2, 1, 2 }, "f64"))
    -- position 0 attends only to itself: its query gets no gradient; the value gradient sums the probabilities
    near_all(T, q.grad[1][1][1], { 0, 0 }, 1e-15, "dq at t=0")
    local g = v.grad:totable()
    T.near(g[1][1][1][1] + g[1][2][1][1], 2, 1e-14, "sum of dv")
    T.eq(k.grad:shape(), { 1, 2, 1, 2 })
  end,

  xsa_removes_value_direction = function(T)
    local y = pt.tensor({ { { { 1, 1 } }, { { 5, -3 } } } }, "f64")
    local v = pt.tensor({ { { { 2, 0 } }, { { 0, 0 } } } }, "f64")
    near_all(T, F.xsa(y, v), { { { { 0, 1 } }, { { 5, -3 } } } }, 0)
  end,

  activations = function(T)
    local x = pt.tensor({ { -2, 3 } }, "f64")
    near_all(T, F.relu2(x), { { 0, 9 } }, 0)
    near_all(T, F.leaky_relu2(x), { { 1, 9 } }, 0, "default slope 0.5")
    near_all(T, F.leaky_relu2(x, 0.25), { { 0.25, 9 } }, 0)
    near_all(T, F.star_relu(x, pt.tensor({ 2, 3 }, "f64"), pt.tensor({ 1, 1 }, "f64")), { { 1, 28 } }, 0)
    T.raises(function() F.relu2(pt.tensor({ 1, 2 }, "i64")) end, "relu2: x has dtype i64; expected f32 or f64")
  end,

  softcap_cross_entropy = function(T)
    local logits = pt.zeros({ 2, 4 }, "f64")
    local targets = pt.tensor({ 1, 3 }, "i64")
    T.near(F.softcap_cross_entropy(logits, targets):item(), math.log(4), 1e-15)
    local none = F.softcap_cross_entropy(logits, targets, { reduction = "none" })
    T.eq(none:shape(), { 2 })
    local l = F.softcap_cross_entropy(pt.tensor({ { 60, 0 } }, "f64"), pt.tensor({ 1 }, "i64"), { softcap = 30 })
    T.near(l:item(), math.log(1 + math.exp(30 * math.tanh(2))), 1e-12, "capped")
    local plain = F.softcap_cross_entropy(pt.tensor({ { 60, 0 } }, "f64"), pt.tensor({ 1 }, "i64"), { softcap = false })
    T.near(plain:item(), 60 + math.log(1 + math.exp(-60)), 1e-12, "softcap off")
    T.raises(function() F.softcap_cross_entropy(logits, pt.tensor({ 1, 4 }, "i64")) end,
      "target 4 at position 1 (flat index into targets [2]) is out of range [0, 4)")
    T.raises(function() F.softcap_cross_entropy(logits, targets, { reduction = "sum" }) end,
      "reduction must be \"mean\" or \"none\", got sum")
    -- gradient: (softmax − onehot)/N for zero logits (tanh' = 1 at 0)
    local x = pt.zeros({ 1, 2 }, { dtype = "f64", requires_grad = true })
    F.softcap_cross_entropy(x, pt.tensor({ 0 }, "i64")):backward()
    near_all(T, x.grad, { { -0.5, 0.5 } }, 1e-15)
  end,

  bigram_hash = function(T)
    local b = F.bigram_hash(pt.tensor({ { 5, 7, 1000, 100000, 70000, 3 } }, "i64"), 2048)
    T.eq(b:dtype(), "i64")
    T.eq(b:totable(), { { 2047, 1082, 1359, 219, 1649, 1719 } })
    T.eq(F.bigram_hash(pt.tensor({ 5, 7 }, "i64")):totable(), { 2047, 1082 }, "default 2048 buckets")
    T.raises(function() F.bigram_hash(pt.tensor({ 1, -2 }, "i64")) end, "token -2 at position 1")
  end,

  smear_gate = function(T)
    local x = pt.tensor({ { { 1 }, { 3 } } }, { dtype = "f64", requires_grad = true })
    local g = pt.tensor({ 0 }, { dtype = "f64", requires_grad = true })
    local y = F.smear_gate(x, g)
    near_all(T, y, { { { 0.5 }, { 2 } } }, 0)
    y:backward(pt.ones({ 1, 2, 1 }, "f64"))
    near_all(T, x.grad, { { { 1 }, { 0.5 } } }, 0)
    -- dg = σ'(0)·Σ g·(x_prev − x) = 0.25·((0 − 1) + (1 − 3)) = −0.75
    near_all(T, g.grad, { -0.75 }, 1e-15)
  end,

  lora = function(T)
    local x = pt.tensor({ { { 1, 2 } } }, "f64")
    local A = pt.tensor({ { { 3, 4 } } }, "f64")
    local B = pt.tensor({ { { 1 }, { -1 } } }, "f64")
    near_all(T, F.lora(x, A, B), { { { 11, -11 } } }, 0)
    T.raises(function() F.lora(x, B, A) end, "lora: shapes x [1, 1, 2], A [1, 2, 1], B [1, 1, 2] do not fit")
  end,
}
