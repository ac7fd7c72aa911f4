-- tests/lua/test_reduce.lua — the Lua face of the reduction, softmax, matmul and linear algebra
-- families: exact values on small cases, 1-based dims, errors that name the op and shapes, and
-- gradient checks through proteus.testing.gradcheck.
--
--   build/proteus tests/run.lua tests/lua/test_reduce.lua
local pt = require "proteus"
local testing = require "proteus.testing"

local T = {}

function T.sum_mean_dims(t)
  local a = pt.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, "f64")
  t.eq(a:sum():item(), 21)
  t.eq(a:sum(1):totable(), { 5, 7, 9 })
  t.eq(a:sum(-1, true):totable(), { { 6 }, { 15 } })
  t.eq(a:sum({ 1, 2 }):item(), 21)
  t.eq(a:mean(2):totable(), { 2, 5 })
  t.eq(pt.tensor({ 1, 2, 3 }, "i32"):sum():dtype(), "i64")
  t.raises(function() return a:sum(3) end, "sum: dim 2 out of range for a 2-d tensor")
  t.raises(function() return a:sum { 2, -1 } end, "appears twice")
  t.raises(function() return pt.tensor({ 1, 2 }, "i32"):mean() end, "mean: expected a f32 or f64 tensor, got i32")
end

function T.max_min_argmax(t)
  local a = pt.tensor { { 1, 3, 3 }, { 7, -1, 7 } }
  local v, i = a:max(2)
  t.eq(v:totable(), { 3, 7 })
  t.eq(i:totable(), { 1, 0 }) -- 0-based positions, first index on ties
  v, i = a:min(1, true)
  t.eq(v:totable(), { { 1, -1, 3 } })
  t.eq(i:totable(), { { 0, 1, 0 } })
  t.eq(a:argmax(2):totable(), { 1, 0 })
  t.eq(a:max():item(), 7)
  t.raises(function() return pt.zeros(2, 0):max(2) end, "cannot reduce over dim 1 of size 0")
end

function T.norm_var_std(t)
  local a = pt.tensor({ { 3, 4 }, { 0, -2 } }, "f64")
  t.eq(a:norm(2, 2):totable(), { 5, 2 })
  t.eq(a:norm(1):item(), 9)
  t.eq(a:norm(math.huge, 1):totable(), { 3, 4 })
  local b = pt.tensor({ 1, 2, 3, 4 }, "f64")
  t.near(b:var():item(), 5 / 3, 1e-15)
  t.eq(b:var(nil, 0):item(), 1.25)
  t.near(b:std(1, 0):item(), math.sqrt(1.25), 1e-15)
end

function T.softmax_log_softmax(t)
  local x = pt.tensor({ 0, math.log(2), math.log(3) }, "f64")
  local s = x:softmax(1):totable()
  t.near(s[1], 1 / 6, 1e-15)
  t.near(s[2], 2 / 6, 1e-15)
  t.near(s[3], 3 / 6, 1e-15)
  t.near(x:log_softmax():totable()[3], math.log(0.5), 1e-15)
  t.raises(function() return x:softmax(2) end, "softmax: dim 1 out of range")
end

function T.matmul_and_linalg(t)
  local a = pt.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, "f64")
  local b = pt.tensor({ { 7, 8 }, { 9, 10 }, { 11, 12 } }, "f64")
  t.eq(a:matmul(b):totable(), { { 58, 64 }, { 139, 154 } })
  t.eq(pt.matmul(a, pt.tensor({ 1, 1, 1 }, "f64")):totable(), { 6, 15 })
  t.eq(a:transpose(1, 2):matmul(a):totable(), { { 17, 22, 27 }, { 22, 29, 36 }, { 27, 36, 45 } })
  t.raises(function() return a:matmul(a) end, "matmul: shapes [2, 3] and [2, 3] do not fit")
  t.raises(function() return a:matmul(b:to("f32")) end, "dtypes differ (f64 and f32)")
  local q, r = pt.qr(pt.tensor({ { 3, 1 }, { 4, 2 } }, "f64"))
  t.near(q:totable()[1][1], -0.6, 1e-15)
  t.near(r:totable()[1][2], -2.2, 1e-14)
  local l = pt.tensor({ { 4, 12, -16 }, { 12, 37, -43 }, { -16, -43, 98 } }, "f64"):cholesky()
  t.eq(l:totable(), { { 2, 0, 0 }, { 6, 1, 0 }, { -8, 5, 3 } })
  t.raises(function() return pt.tensor({ { 1, 2 }, { 2, 1 } }, "f64"):cholesky() end,
    "not positive definite (its leading minor of order 2")
  local inv = pt.tensor({ { 4, 7 }, { 2, 6 } }, "f64"):inverse():totable()
  t.near(inv[1][1], 0.6, 1e-15)
  t.near(inv[1][2], -0.7, 1e-15)
  t.raises(function() return pt.tensor({ { 1, 2 }, { 2, 4 } }, "f64"):inverse() end, "is singular")
end

function T.gradients(t)
  local x = pt.tensor({ { 0.3, -1.2, 0.7, 2.1 }, { -0.4, 0.9, -1.6, 0.25 }, { 1.3, -0.75, 0.55, -2.2 } }, "f64")
  local w = pt.tensor({ { 0.2, -0.3 }, { 1.1, 0.4 }, { -0.6, 0.8 }, { 0.5, -0.9 } }, "f64")
  local cases = {
    sum = function(a) return a:sum(2) end,
    mean = function(a) return a:mean({ 1, 2 }) end,
    max = function(a) return (a:max(2)) end,
    min = function(a) return (a:min(1, true)) end,
    norm = function(a) return a:norm(2, 2) end,
    var = function(a) return a:var(1) end,
    std = function(a) return a:std(2, 0) end,
    softmax = function(a) return a:softmax(2) end,
    log_softmax = function(a) return a:log_softmax(1) end,
  }
  for name, fn in pairs(cases) do
    local ok, msg = testing.gradcheck(fn, { x })
    assert(ok, name .. ": " .. tostring(msg))
  end
  local ok, msg = testing.gradcheck(function(a, b) return a:matmul(b) end, { x, w })
  assert(ok, "matmul: " .. tostring(msg))
  ok, msg = testing.gradcheck(function(a) return a:inverse() end,
    { pt.tensor({ { 4, 1, 0.5 }, { 0.3, 3, -1 }, { 0.2, 0.7, 5 } }, "f64") })
  assert(ok, "inverse: " .. tostring(msg))
end

return T
