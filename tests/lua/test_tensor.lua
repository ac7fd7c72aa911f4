-- tests/lua/test_tensor.lua — tensor core: constructors, dtypes, views sharing storage, broadcasting
-- arithmetic with exact values, casts (round to nearest even), errors, memory stability.
--
--   build/proteus tests/run.lua tests/lua/test_tensor.lua
local pt = require "proteus"

local T = {}

function T.constructors(t)
  t.eq(pt.zeros(2, 3):shape(), { 2, 3 })
  t.eq(pt.zeros({ 2, 3 }, "f64"):dtype(), "f64")
  t.eq(pt.ones(2):totable(), { 1, 1 })
  t.eq(pt.full({ 2 }, 7.5):totable(), { 7.5, 7.5 })
  t.eq(pt.arange(4):totable(), { 0, 1, 2, 3 })
  t.eq(pt.arange(4):dtype(), "i64")
  t.eq(pt.arange(1, 2, 0.25):totable(), { 1, 1.25, 1.5, 1.75 })
  t.eq(pt.tensor { { 1, 2 }, { 3, 4 } }:totable(), { { 1, 2 }, { 3, 4 } })
  t.eq(pt.tensor({ 1, 2 }, "i64"):dtype(), "i64")
  t.eq(pt.tensor(3.5):item(), 3.5)
  t.eq(pt.tensor({ 1, 0 }, "bool"):totable(), { true, false })
  t.eq(#pt.zeros(5, 2), 5)
end

function T.constructor_errors(t)
  t.raises(function() pt.tensor { { 1, 2 }, { 3 } } end, "ragged")
  t.raises(function() pt.zeros(2, 3):to("f33") end, "neither a dtype")
  t.raises(function() pt.zeros({ 2 }, "int4") end, "unknown dtype 'int4'")
  t.raises(function() pt.tensor { "a" } end, "expected a number")
end

function T.broadcast_arithmetic(t)
  local a = pt.tensor { { 1, 2, 3 }, { 4, 5, 6 } }
  local b = pt.tensor { 10, 20, 30 }
  t.eq((a + b):totable(), { { 11, 22, 33 }, { 14, 25, 36 } })
  t.eq((a - 1):totable(), { { 0, 1, 2 }, { 3, 4, 5 } })
  t.eq((2 - a):totable(), { { 1, 0, -1 }, { -2, -3, -4 } })
  t.eq((a * b):totable(), { { 10, 40, 90 }, { 40, 100, 180 } })
  t.eq((b / 10):totable(), { 1, 2, 3 })
  t.eq((a ^ 2):totable(), { { 1, 4, 9 }, { 16, 25, 36 } })
  t.eq((-a):totable()[2], { -4, -5, -6 })
  local col = pt.tensor { { 1 }, { 2 } }
  t.eq((col * b):totable(), { { 10, 20, 30 }, { 20, 40, 60 } })
  t.eq(a:gt(3):totable(), { { false, false, false }, { true, true, true } })
  t.eq(a:maximum(pt.tensor { 3 }):totable(), { { 3, 3, 3 }, { 4, 5, 6 } })
  t.eq(pt.where(a:gt(3), a, 0):totable(), { { 0, 0, 0 }, { 4, 5, 6 } })
  t.raises(function() return a + pt.zeros(2) end, "cannot be broadcast together")
  t.raises(function() return a + pt.zeros(4) end, "[2, 3] and [4]")
end

function T.integer_arithmetic(t)
  local a = pt.tensor({ 7, -7 }, "i64")
  t.eq((a * 3):totable(), { 21, -21 })
  t.eq((a + a):dtype(), "i64")
  t.eq((a / 2):dtype(), "f32") -- true division promotes
  t.eq((a / 2):totable(), { 3.5, -3.5 })
  t.raises(function() return a:div(pt.tensor({ 0, 1 }, "i64")) end, "division by zero")
end

function T.unary_math(t)
  local x = pt.tensor({ -1, 0, 2 }, "f64")
  t.eq(x:relu():totable(), { 0, 0, 2 })
  t.eq(x:abs():totable(), { 1, 0, 2 })
  t.eq(x:sign():totable(), { -1, 0, 1 })
  t.eq(x:square():totable(), { 1, 0, 4 })
  t.near(x:exp():totable()[3], math.exp(2), 1e-12)
  t.near(x:sigmoid():totable()[1], 1 / (1 + math.exp(1)), 1e-12)
  t.near(x:tanh():totable()[3], math.tanh and math.tanh(2) or 0.9640275800758169, 1e-12)
  t.eq(x:clamp(-0.5, 1):totable(), { -0.5, 0, 1 })
  t.eq(x:leaky_relu(0.5):totable(), { -0.5, 0, 2 })
  t.eq(pt.tensor({ 0.5, 1.5, 2.5, -0.5 }, "f64"):round():totable(), { 0, 2, 2, -0 }) -- half to even
end

function T.views_share_storage(t)
  local a = pt.arange(6, { dtype = "f32" }):reshape { 2, 3 }
  local tr = a:transpose(1, 2)
  t.eq(tr:shape(), { 3, 2 })
  t.eq(tr:is_contiguous(), false)
  t.eq(tr:totable(), { { 0, 3 }, { 1, 4 }, { 2, 5 } })
  t.eq(a:shares_storage(tr), true)
  local row = a[2]
  t.eq(row:totable(), { 3, 4, 5 })
  local n = a:narrow(2, 2, 2)
  t.eq(n:totable(), { { 1, 2 }, { 4, 5 } })
  n:fill_(9)
  t.eq(a:totable(), { { 0, 9, 9 }, { 3, 9, 9 } }) -- writes through the view
  t.eq(a:permute { 2, 1 }:totable(), a:transpose():totable())
  t.eq(pt.tensor { 1, 2 }:reshape { 2, 1 }:expand { 2, 3 }:totable(), { { 1, 1, 1 }, { 2, 2, 2 } })
  t.eq(a:unsqueeze(1):shape(), { 1, 2, 3 })
  t.eq(a:unsqueeze(1):squeeze(1):shape(), { 2, 3 })
  t.eq(a:reshape { -1 }:shape(), { 6 })
  t.eq(a:flatten():shape(), { 6 })
  t.eq(pt.zeros(2, 3, 4):flatten(2):shape(), { 2, 12 })
  t.raises(function() return a:reshape { 4, 2 } end, "cannot reshape [2, 3]")
  t.raises(function() return a:narrow(2, 3, 2) end, "out of bounds")
  t.raises(function() return a[3] end, "out of range")
  t.raises(function() return a:transpose(1, 3) end, "dim 2 out of range")
end

function T.cat_stack_split(t)
  local a, b = pt.tensor { { 1, 2 } }, pt.tensor { { 3, 4 }, { 5, 6 } }
  t.eq(pt.cat({ a, b }):totable(), { { 1, 2 }, { 3, 4 }, { 5, 6 } })
  t.eq(pt.cat({ b, b }, 2):totable(), { { 3, 4, 3, 4 }, { 5, 6, 5, 6 } })
  t.eq(pt.stack({ a[1], b[1] }):totable(), { { 1, 2 }, { 3, 4 } })
  local parts = pt.split(pt.arange(5), 2)
  t.eq(#parts, 3)
  t.eq(parts[3]:totable(), { 4 })
  t.eq(#pt.chunk(pt.arange(6), 3), 3)
  t.raises(function() return pt.cat { a, pt.zeros(1, 3) } end, "must match except in dim")
end

function T.casts_round_to_nearest_even(t)
  -- 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even one (1.0)
  t.eq(pt.tensor({ 1 + 2 ^ -8 }, "f64"):to("bf16"):to("f64"):totable(), { 1.0 })
  t.eq(pt.tensor({ 1 + 3 * 2 ^ -8 }, "f64"):to("bf16"):to("f64"):totable(), { 1 + 2 ^ -6 })
  t.eq(pt.tensor({ 1 + 2 ^ -11 }, "f64"):to("f16"):to("f64"):totable(), { 1.0 })
  t.eq(pt.tensor({ 65520 }, "f64"):to("f16"):to("f64"):totable(), { math.huge })
  t.eq(pt.tensor({ 2 ^ -24 }, "f64"):to("f16"):to("f64"):totable(), { 2 ^ -24 }) -- smallest subnormal
  t.eq(pt.tensor({ 300, -5 }, "f64"):to("u8"):totable(), { 255, 0 }) -- saturating
  t.eq(pt.tensor({ 0 / 0 }, "f64"):to("i32"):totable(), { 0 })
end

function T.i64_values_are_exact(t)
  local big = math.mininteger + 1
  local x = pt.zeros({ 2 }, "i64")
  -- arithmetic on i64 stays integer; totable and flat_get return exact integers
  local y = x + 9007199254740993 -- 2^53 + 1 is not a double
  t.eq(y:totable(), { 9007199254740993, 9007199254740993 })
  t.eq(y:flat_get(1), 9007199254740993)
  t.eq((x + big):totable()[1], big)
end

function T.item_and_tostring(t)
  t.eq(pt.tensor({ 5 }, "i64"):item(), 5)
  t.raises(function() return pt.zeros(2):item() end, "has 2 elements")
  local s = tostring(pt.zeros(2, 2))
  assert(s:find("of shape %[2, 2%]"), s)
  assert(s:find("0.0000"), s)
end

function T.close_releases(t)
  local before = pt.stats().live_tensors
  do
    local x <close> = pt.zeros(1000)
    t.eq(pt.stats().live_tensors, before + 1)
  end
  t.eq(pt.stats().live_tensors, before)
end

function T.no_memory_growth_in_loop(t)
  collectgarbage()
  collectgarbage()
  local base = pt.stats()
  for _ = 1, 100000 do
    local x = pt.zeros(16)
    local y = (x + 1) * 2
    local _ = y:reshape { 4, 4 }
  end
  collectgarbage()
  collectgarbage()
  local after = pt.stats()
  t.eq(after.live_tensors, base.live_tensors)
  t.eq(after.host_bytes, base.host_bytes)
end

function T.released_tensor_is_an_error(t)
  local x = pt.zeros(2)
  x:release()
  t.raises(function() return x + 1 end, "released tensor")
  assert(tostring(x):find("released"))
end

function T.inplace_on_grad_leaf_refused(t)
  local w = pt.zeros({ 2 }, { requires_grad = true })
  t.raises(function() w:fill_(1) end, "no_grad")
  pt.no_grad(function() w:fill_(1) end)
  t.eq(w:totable(), { 1, 1 })
end

return T
