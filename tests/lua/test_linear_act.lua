-- tests/lua/test_linear_act.lua — F.linear_relu2 / F.linear_leaky_relu2 (src/kernels/linear_act.c): the MLP's
-- up projection and its squared activation as one op, against the unfused
-- F.relu2(x:matmul(w:transpose(1, 2))) path (output, dx, dw: equal, the CPU makes the same BLAS and
-- activation kernel calls), an f64 gradient check, gradients for one input only, errors, and the GPT's
-- config key fused_mlp (nn.lua GPT:mlp): same loss, same gradients, same linear_hook calls as false.
-- Run: build/proteus tests/run.lua tests/lua/test_linear_act.lua
local pt = require "proteus"
local F = require "proteus.functional"
local nn = require "proteus.nn"
local testing = require "proteus.testing"

-- output and gradients of the fused op (fused = true) or of the unfused composition
local function run(fused, x0, w0, act, slope, g)
  local x, w = x0:clone(), w0:clone()
  x.requires_grad, w.requires_grad = true, true
  local y
  if fused then
    y = act == "relu2" and F.linear_relu2(x, w) or F.linear_leaky_relu2(x, w, slope)
  else
    local h = x:matmul(w:transpose(1, 2))
    y = act == "relu2" and F.relu2(h) or F.leaky_relu2(h, slope)
  end
  y:backward(g)
  return { y = y:detach(), dx = x.grad, dw = w.grad }
end

-- counts the fused op's calls (nn.lua looks F.linear_relu2 / F.linear_leaky_relu2 up at every call)
local fused_calls = 0
local function counting(f) return function(...) fused_calls = fused_calls + 1 return f(...) end end

return {
  matches_unfused_path = function(T)
    pt.manual_seed(21)
    for _, dt in ipairs { "f32", "f64" } do
      for _, case in ipairs { { "relu2" }, { "leaky_relu2", 0.5 }, { "leaky_relu2", -1.25 } } do
        for _, shape in ipairs { { 2, 7, 16 }, { 300, 64 }, { 5 } } do
          local x0 = pt.randn(shape, dt)
          local w0 = pt.randn({ 24, shape[#shape] }, dt)
          local oshape = {}
          for i = 1, #shape - 1 do oshape[i] = shape[i] end
          oshape[#oshape + 1] = 24
          local g = pt.randn(oshape, dt)
          local a = run(true, x0, w0, case[1], case[2], g)
          local b = run(false, x0, w0, case[1], case[2], g)
          local what = string.format("%s %s slope=%s x%s", dt, case[1], tostring(case[2]), table.concat(shape, "x"))
          T.eq(a.y:shape(), oshape, what .. " shape")
          T.eq(a.y:dtype(), dt, what .. " dtype")
          for _, k in ipairs { "y", "dx", "dw" } do
            T.eq(testing.max_abs_diff(a[k], b[k]), 0, what .. " " .. k .. " (bitwise)")
          end
        end
      end
    end
    -- the default slope is 0.5, as F.leaky_relu2's
    local x, w = pt.randn({ 3, 4 }), pt.randn({ 5, 4 })
    T.eq(testing.max_abs_diff(F.linear_leaky_relu2(x, w), F.linear_leaky_relu2(x, w, 0.5)), 0, "default slope")
  end,

  gradcheck_f64 = function(T)
    pt.manual_seed(5)
    local x, w = pt.randn({ 2, 3, 5 }, "f64"), pt.randn({ 4, 5 }, "f64")
    local ok, msg = testing.gradcheck(function(xx, ww) return F.linear_relu2(xx, ww) end, { x, w })
    T.eq(ok, true, "linear_relu2: " .. tostring(msg))
    ok, msg = testing.gradcheck(function(xx, ww) return F.linear_leaky_relu2(xx, ww, 0.3) end, { x, w })
    T.eq(ok, true, "linear_leaky_relu2: " .. tostring(msg))
  end,

  only_needed_gradients = function(T)
    pt.manual_seed(9)
    local x0, w0 = pt.randn({ 6, 4 }, "f64"), pt.randn({ 5, 4 }, "f64")
    local ref = run(true, x0, w0, "relu2", nil, pt.ones({ 6, 5 }, "f64"))
    local x = x0:clone()
    x.requires_grad = true
    F.linear_relu2(x, w0):sum():backward()
    T.eq(testing.max_abs_diff(x.grad, ref.dx), 0, "dx alone")
    local w = w0:clone()
    w.requires_grad = true
    F.linear_relu2(x0, w):sum():backward()
    T.eq(testing.max_abs_diff(w.grad, ref.dw), 0, "dw alone")
    T.eq(F.linear_relu2(x0, w0).requires_grad, false, "no graph without grads")
    local y = pt.no_grad(function() return F.linear_relu2(x, w) end)
    T.eq(y.requires_grad, false, "no graph under no_grad")
  end,

  errors = function(T)
    local x, w = pt.zeros({ 4, 3 }), pt.zeros({ 5, 3 })
    local m = T.raises(function() F.linear_relu2(x, pt.zeros({ 5, 2 })) end, "do not fit")
    assert(m:find("[4, 3]", 1, true) and m:find("[5, 2]", 1, true) and m:find("linear_relu2", 1, true),
      "names the op and both shapes: " .. m)
    T.raises(function() F.linear_leaky_relu2(x, pt.zeros({ 3 })) end, "linear_leaky_relu2: x [4, 3] and W [3]")
    T.raises(function() F.linear_relu2(x, w:to("f64")) end, "cast them to one dtype")
    T.raises(function() F.linear_relu2(x:to("i64"), w:to("i64")) end, "x has dtype i64")
    T.raises(function() F.linear_leaky_relu2(x, w, 0 / 0) end, "slope must be finite")
    T.raises(function() F.linear_leaky_relu2(x, w, "steep") end, "number expected")
    T.eq(F.linear_relu2(x:to("bf16"), w:to("bf16")):dtype(), "bf16", "bf16 storage runs on the CPU (cpu/bf16.c)")
    T.raises(function() F.linear_relu2(x) end, "proteus.Tensor expected")
  end,

  gpt_fused_mlp_is_the_same_model = function(T)
    -- fused_mlp = true (the default): loss, every gradient and the linear_hook calls are those of the
    -- unfused mlp (fused_mlp = false), bitwise on the CPU
    for _, act in ipairs { "relu2", "leaky_relu2" } do
      local cfg = { vocab_size = 64, num_layers = 2, model_dim = 32, num_heads = 4, num_kv_heads = 2, mlp_act = act }
      pt.manual_seed(7)
      local model = nn.GPT(cfg)
      local x, y = pt.randint(0, 64, { 2, 9 }), pt.randint(0, 64, { 2, 9 })
      T.eq(model.cfg.fused_mlp, true, "fused_mlp defaults to true")
      local function go(fused)
        model.cfg.fused_mlp = fused
        model:zero_grad()
        local seen = {}
        model.linear_hook = function(name, h) seen[#seen + 1] = { name, h:clone() } end
        local loss = model:forward(x, y)
        model.linear_hook = nil
        loss:backward()
        local grads = {}
        for name, p in model:named_parameters() do grads[name] = p.grad and p.grad:clone() end
        return loss:item(), grads, seen
      end
      local name = act == "relu2" and "linear_relu2" or "linear_leaky_relu2"
      local orig = F[name]
      F[name] = counting(orig)
      fused_calls = 0
      local ok0, l0, g0, s0 = pcall(go, false)
      local n_unfused = fused_calls
      local ok1, l1, g1, s1 = true, nil, nil, nil
      if ok0 then ok1, l1, g1, s1 = pcall(go, true) end
      F[name] = orig
      if not ok0 then error(l0, 0) end
      if not ok1 then error(l1, 0) end
      T.eq(n_unfused, 0, act .. ": fused_mlp=false never calls F." .. name)
      T.eq(fused_calls, 2, act .. ": fused_mlp=true calls F." .. name .. " once per layer")
      T.eq(l1, l0, act .. " loss")
      local n = 0
      for name, g in pairs(g0) do
        n = n + 1
        T.eq(testing.max_abs_diff(g1[name], g), 0, act .. " grad " .. name)
      end
      assert(n > 5 and g0["blocks.0.mlp.fc.weight"], "gradients reached the MLP weights")
      T.eq(#s1, #s0, act .. " linear_hook calls")
      for i = 1, #s0 do
        T.eq(s1[i][1], s0[i][1], act .. " hook " .. i .. " name")
        T.eq(testing.max_abs_diff(s1[i][2], s0[i][2]), 0, act .. " hook " .. i .. " input")
      end
    end
  end,
}
