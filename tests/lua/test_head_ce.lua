-- tests/lua/test_head_ce.lua — F.linear_softcap_cross_entropy (src/kernels/head_ce.c): the LM head fused
-- with the softcapped cross-entropy in row chunks, against the unfused
-- F.softcap_cross_entropy(x:matmul(w:transpose(1, 2))) path (loss, dx, dw), an f64 finite-difference
-- gradient check, its errors, and the GPT switch fused_head_ce.
-- Run: build/proteus tests/run.lua tests/lua/test_head_ce.lua
--
-- Equality: with one chunk (chunk >= N, or the automatic size at these N) the fused op makes the same
-- BLAS and kernel calls as the unfused path, so loss, dx and dw are asserted bit for bit. With several
-- chunks two things change the rounding, not the maths: OpenBLAS takes other code paths for a small
-- row count (gemv for one row, small-matrix kernels), which may round a logit differently by an ulp,
-- and dw is summed chunk by chunk instead of in one GEMM (a different summation order over the N rows).
-- Those cases are asserted to max|fused − unfused| <= tol · max|unfused| with tol 2e-6 in f32 (about
-- 32 f32 ulps; the worst seen over 20 seeds was 9.3e-7) and 1e-13 in f64 (worst seen 2e-15).
-- bf16 x and w (the GPT's compute_dtype = "bf16"): the unfused counterpart is the GPT's clin,
-- x:to("bf16") · w:to("bf16")ᵀ, widened to f32 for the CE; one chunk is the same bits (loss f32, dx and
-- dw reach the f32 leaves through the casts), several chunks differ in dw's sum order (bf16 partial
-- products summed in f32) and in BLAS paths: loss and dx to 2e-6, dw to 1e-2 (bf16 partials).
local pt = require "proteus"
local F = require "proteus.functional"
local nn = require "proteus.nn"
local testing = require "proteus.testing"

local function max_abs(t) return testing.max_abs_diff(t, pt.zeros(t:shape(), t:dtype())) end

-- unfused and fused loss and gradients for one case
local function both(x0, w0, t, opts, g)
  local res = {}
  for k, fused in ipairs { false, true } do
    local x, w = x0:clone(), w0:clone()
    x.requires_grad, w.requires_grad = true, true
    local l
    if fused then
      l = F.linear_softcap_cross_entropy(x, w, t, opts)
    else
      l = F.softcap_cross_entropy(x:matmul(w:transpose(1, 2)), t,
        { softcap = opts.softcap, reduction = opts.reduction })
    end
    l:backward(g)
    res[k] = { loss = l, dx = x.grad, dw = w.grad }
  end
  return res[1], res[2]
end

local function compare(T, ref, got, tol, what)
  for _, k in ipairs { "loss", "dx", "dw" } do
    T.eq(got[k]:shape(), ref[k]:shape(), what .. " " .. k .. " shape")
    local d = testing.max_abs_diff(got[k], ref[k])
    if tol == 0 then
      T.eq(d, 0, what .. " " .. k .. " (bitwise)")
    else
      local bound = tol * max_abs(ref[k])
      if d > bound then error(string.format("%s %s: max diff %.3g > %.3g", what, k, d, bound)) end
    end
  end
end

-- A small GPT (cfg + extra) run with fused_head_ce false then true on the same tokens: the loss and
-- every parameter's gradient must be the same bits. Returns the model, x, y and the fused loss.
local function gpt_fused_same_bits(T, seed, extra)
  local cfg = { vocab_size = 64, num_layers = 2, model_dim = 32, num_heads = 4, num_kv_heads = 2 }
  for k, v in pairs(extra) do cfg[k] = v end
  pt.manual_seed(seed)
  local model = nn.GPT(cfg)
  local x, y = pt.randint(0, 64, { 2, 9 }), pt.randint(0, 64, { 2, 9 })
  local function run(fused)
    model.cfg.fused_head_ce = fused
    model:zero_grad()
    local loss = model:forward(x, y)
    loss:backward()
    local grads = {}
    for name, p in model:named_parameters() do grads[name] = p.grad and p.grad:clone() end
    return loss, grads
  end
  local l0, g0 = run(false)
  local l1, g1 = run(true)
  T.eq(l1:item(), l0:item(), "loss")
  local n = 0
  for name, g in pairs(g0) do
    n = n + 1
    testing.same_bits(g1[name], g, "grad " .. name)
  end
  assert(n > 5 and g0["tok_emb.weight"], "gradients reached the parameters")
  return model, x, y, l1
end

return {
  matches_unfused_path = function(T)
    pt.manual_seed(11)
    local N, C, V = 37, 24, 50 -- N is not a multiple of 7
    for _, dt in ipairs { "f32", "f64" } do
      local x0, w0, t = pt.randn({ N, C }, dt), pt.randn({ V, C }, dt), pt.randint(0, V, { N })
      local g = pt.randn({ N }, dt)
      for _, cap in ipairs { 0, 30 } do
        for _, red in ipairs { "mean", "none" } do
          for _, ck in ipairs { 1, 7, N - 1, N, N + 5, "auto" } do
            local opts = { softcap = cap, reduction = red }
            if ck ~= "auto" then opts.chunk = ck end
            local ref, got = both(x0, w0, t, opts, red == "none" and g or nil)
            local single = ck == "auto" or ck >= N
            local tol = single and 0 or (dt == "f32" and 2e-6 or 1e-13)
            compare(T, ref, got, tol, string.format("%s cap=%g %s chunk=%s", dt, cap, red, tostring(ck)))
          end
        end
      end
    end
  end,

  leading_dims_and_target_dtypes = function(T)
    -- x [B, T, C] with targets [B, T] (i32) is the same as the flattened rows
    pt.manual_seed(3)
    local x0, w0 = pt.randn({ 2, 5, 8 }, "f64"), pt.randn({ 11, 8 }, "f64")
    local t = pt.randint(0, 11, { 2, 5 })
    local a = F.linear_softcap_cross_entropy(x0, w0, t:to("i32"), { reduction = "none", chunk = 3 })
    T.eq(a:shape(), { 2, 5 })
    local b = F.softcap_cross_entropy(x0:reshape { 10, 8 }:matmul(w0:transpose(1, 2)), t:reshape { -1 },
      { reduction = "none" })
    T.near(testing.max_abs_diff(a:reshape { -1 }, b), 0, 1e-14, "per-position NLL")
  end,

  gradcheck_f64 = function(T)
    pt.manual_seed(5)
    local x, w = pt.randn({ 5, 3 }, "f64"), pt.randn({ 4, 3 }, "f64") * 2
    local t = pt.tensor({ 0, 3, 1, 3, 2 }, "i64")
    for _, cap in ipairs { 0, 3 } do -- a small cap so tanh is far from linear
      for _, red in ipairs { "mean", "none" } do
        for _, ck in ipairs { 1, 2, 5 } do
          local ok, msg = testing.gradcheck(function(xx, ww)
            return F.linear_softcap_cross_entropy(xx, ww, t, { softcap = cap, reduction = red, chunk = ck })
          end, { x, w })
          T.eq(ok, true, string.format("cap=%g %s chunk=%d: %s", cap, red, ck, tostring(msg)))
        end
      end
    end
  end,

  only_needed_gradients = function(T)
    -- w frozen: only dx; x a constant: only dw
    pt.manual_seed(9)
    local x0, w0, t = pt.randn({ 6, 4 }, "f64"), pt.randn({ 5, 4 }, "f64"), pt.randint(0, 5, { 6 })
    local ref = both(x0, w0, t, { chunk = 4 })
    local x = x0:clone()
    x.requires_grad = true
    F.linear_softcap_cross_entropy(x, w0, t, { chunk = 4 }):backward()
    T.near(testing.max_abs_diff(x.grad, ref.dx), 0, 1e-15, "dx alone")
    local w = w0:clone()
    w.requires_grad = true
    F.linear_softcap_cross_entropy(x0, w, t, { chunk = 4 }):backward()
    T.near(testing.max_abs_diff(w.grad, ref.dw), 0, 1e-15, "dw alone")
    T.eq(F.linear_softcap_cross_entropy(x0, w0, t).requires_grad, false, "no graph without grads")
  end,

  errors = function(T)
    local x, w, t = pt.zeros({ 4, 3 }), pt.zeros({ 5, 3 }), pt.tensor({ 0, 1, 2, 4 }, "i64")
    local m = T.raises(function() F.linear_softcap_cross_entropy(x, pt.zeros({ 5, 2 }), t) end, "do not fit")
    assert(m:find("[4, 3]", 1, true) and m:find("[5, 2]", 1, true), "names both shapes: " .. m)
    T.raises(function() F.linear_softcap_cross_entropy(x, pt.zeros({ 3 }), t) end, "[3]")
    T.raises(function() F.linear_softcap_cross_entropy(x, w, pt.tensor({ 0, 1, 5, 2 }, "i64")) end,
      "target 5 at position 2")
    T.raises(function() F.linear_softcap_cross_entropy(x, w, pt.tensor({ 0, -1, 1, 2 }, "i64")) end,
      "out of range [0, 5)")
    T.raises(function() F.linear_softcap_cross_entropy(x, w, pt.tensor({ 0, 1, 2 }, "i64")) end,
      "targets [3] must have the shape of x [4, 3] without its last dim")
    T.raises(function() F.linear_softcap_cross_entropy(x, w, pt.zeros({ 4 })) end, "integer token ids")
    T.raises(function() F.linear_softcap_cross_entropy(x, w, t, { chunk = 0 }) end,
      "chunk must be an integer >= 1")
    T.raises(function() F.linear_softcap_cross_entropy(x, w, t, { chunk = -3 }) end, "got -3")
    T.raises(function() F.linear_softcap_cross_entropy(x, w, t, { chunk = 1.5 }) end, "must be an integer")
    T.raises(function() F.linear_softcap_cross_entropy(x, w, t, { chunks = 2 }) end, "unknown option 'chunks'")
    T.raises(function() F.linear_softcap_cross_entropy(x, w, t, { reduction = "sum" }) end,
      "reduction must be \"mean\" or \"none\", got sum")
    T.raises(function() F.linear_softcap_cross_entropy(x, w, t, { softcap = -1 }) end, "softcap must be")
    T.raises(function() F.linear_softcap_cross_entropy(x, w:to("f64"), t) end, "cast them to one dtype")
    T.raises(function() F.linear_softcap_cross_entropy(pt.zeros({ 0, 3 }), w, pt.zeros({ 0 }, "i64")) end,
      "reduction mean of an empty batch")
    local e = F.linear_softcap_cross_entropy(pt.zeros({ 0, 3 }), w, pt.zeros({ 0 }, "i64"), { reduction = "none" })
    T.eq(e:shape(), { 0 })
  end,

  zero_channels = function(T)
    -- C = 0: every logit is 0, the loss is log V, no gradient flows into the empty x and w
    local x = pt.zeros({ 3, 0 }, "f64")
    x.requires_grad = true
    local l = F.linear_softcap_cross_entropy(x, pt.zeros({ 4, 0 }, "f64"), pt.tensor({ 0, 1, 3 }, "i64"),
      { chunk = 2 })
    T.near(l:item(), math.log(4), 1e-15)
    l:backward()
    T.eq(x.grad:shape(), { 3, 0 })
  end,

  gpt_fused_head_ce_same_loss_and_gradients = function(T)
    local model, x, y, l1 = gpt_fused_same_bits(T, 7, {})
    -- the per-position NLL stays on the unfused path and agrees with the fused mean
    model.cfg.fused_head_ce = true
    local nll = model:forward(x, y, { reduction = "none" })
    T.near(nll:mean():item(), l1:item(), 1e-6, "mean of the per-position NLL")
    T.raises(function() nn.GPT { vocab_size = 64, num_layers = 2, model_dim = 32, num_heads = 4, num_kv_heads = 2,
      fused_head_ce = "yes" } end, "fused_head_ce=yes (expected true or false)")
    T.raises(function() model:forward(x, y, { lora = { head = function(h) return h end } }) end,
      "cannot add a LoRA head")
  end,
  bf16_operands_match_the_unfused_bf16_path = function(T)
    pt.manual_seed(12)
    local N, C, V = 37, 24, 50
    local x0, w0, t = pt.randn({ N, C }), pt.randn({ V, C }), pt.randint(0, V, { N })
    for _, cap in ipairs { 0, 30 } do
      for _, ck in ipairs { "auto", N, 7, 1 } do
        local res = {}
        for k, fused in ipairs { false, true } do
          local x, w = x0:clone(), w0:clone()
          x.requires_grad, w.requires_grad = true, true
          local xb, wb = x:to("bf16"), w:to("bf16")
          local l
          if fused then
            local opts = { softcap = cap }
            if ck ~= "auto" then opts.chunk = ck end
            l = F.linear_softcap_cross_entropy(xb, wb, t, opts)
          else
            l = F.softcap_cross_entropy(xb:matmul(wb:transpose(1, 2)):to("f32"), t, { softcap = cap })
          end
          T.eq(l:dtype(), "f32", "the loss is f32")
          l:backward()
          res[k] = { loss = l, dx = x.grad, dw = w.grad }
        end
        local what = string.format("bf16 cap=%g chunk=%s", cap, tostring(ck))
        if ck == "auto" or ck >= N then
          compare(T, res[1], res[2], 0, what)
        else
          for key, tol in pairs { loss = 2e-6, dx = 2e-6, dw = 1e-2 } do
            local d, bound = testing.max_abs_diff(res[2][key], res[1][key]), tol * max_abs(res[1][key])
            if d > bound then error(string.format("%s %s: max diff %.3g > %.3g", what, key, d, bound)) end
          end
        end
      end
    end
    -- mixed operands are refused (the GPT casts both)
    T.raises(function() F.linear_softcap_cross_entropy(x0:to("bf16"), w0, t) end, "w has dtype f32 but x has bf16")
  end,

  gpt_bf16_compute_fused_head_ce_same_bits = function(T)
    local model, x, y, l1 = gpt_fused_same_bits(T, 8, { compute_dtype = "bf16" })
    T.eq(model:forward(x, y):dtype(), "f32")
    T.eq(l1:dtype(), "f32")
  end,
}
