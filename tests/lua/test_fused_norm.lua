-- tests/lua/test_fused_norm.lua — the fused norm prologues through proteus.functional (F.mix_rms_norm,
-- F.rms_norm_rotary; kernels in src/kernels/fused_norm.c): hand cases, defaults and options, errors,
-- f64 gradient checks, bit-for-bit equality with the unfused F ops in f32 (values and gradients), and the
-- GPT switch fused_norms: the loss and every parameter gradient of small v9-like (ln_scale, XSA, depth
-- scale) and #1539-like (parallel lanes, recurrence) models are the same bits with it on and off.
-- (The C side, with finite-difference checks of every input: tests/c/test_fused_norm.c.)
-- Run: build/proteus tests/run.lua tests/lua/test_fused_norm.lua
local pt = require "proteus"
local F = require "proteus.functional"
local nn = require "proteus.nn"
local testing = require "proteus.testing"

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local configs = dofile(here .. "gpt_configs.lua")

local function near_all(T, got, want, tol, what)
  local g = testing.flat(got)
  T.eq(#g, #want, (what or "tensor") .. " size")
  for i = 1, #want do T.near(g[i], want[i], tol, (what or "tensor") .. " element " .. i) end
end

-- the same bits element by element (string.pack sees -0 and NaN payloads too); got fused, want unfused
local same_bits = testing.same_bits

local function leaf(t)
  local l = t:detach():clone()
  l.requires_grad = true
  return l
end

return {
  mix_rms_norm_hand_case = function(T)
    local x = pt.tensor({ { 1, 2 }, { 3, 4 } }, "f64")
    local x0 = pt.tensor({ { 0.5, -1 }, { 2, 0 } }, "f64")
    local wx, w0 = pt.tensor({ 2, 1 }, "f64"), pt.tensor({ 1, 3 }, "f64")
    local y, h = F.mix_rms_norm(x, x0, wx, w0, 0, 0.5)
    near_all(T, y, { 2.5, -1, 8, 4 }, 0, "y")
    local r0, r1 = 1 / math.sqrt(3.625), 1 / math.sqrt(40)
    near_all(T, h, { 0.5 * 2.5 * r0, -0.5 * r0, 0.5 * 8 * r1, 0.5 * 4 * r1 }, 1e-15, "h")
    -- defaults: eps = F.RMS_EPS, scale 1, x0_scale 1; wx nil means 1
    local y2, h2 = F.mix_rms_norm(x, x0, nil, w0)
    near_all(T, y2, { 1.5, -1, 5, 4 }, 0, "y, wx nil")
    near_all(T, h2, testing.flat(F.rms_norm(y2)), 0, "h = F.rms_norm(y)")
    local y3 = F.mix_rms_norm(x, x0, nil, w0, nil, nil, 2)
    near_all(T, y3, { 2, -4, 7, 4 }, 0, "x0_scale")
  end,

  mix_rms_norm_errors = function(T)
    local x, w = pt.randn({ 2, 3 }, "f64"), pt.randn({ 3 }, "f64")
    T.raises(function() F.mix_rms_norm(x, pt.randn({ 3, 2 }, "f64"), w, w) end,
      "mix_rms_norm: x0 [3, 2] must have the shape of x [2, 3]")
    T.raises(function() F.mix_rms_norm(x, x, pt.randn({ 2 }, "f64"), w) end,
      "mix_rms_norm: wx [2] must be 1-D of size C = 3 (the last dim of x [2, 3])")
    T.raises(function() F.mix_rms_norm(x, x, w, w:to("f32")) end, "mix_rms_norm: w0 has dtype f32 but x has f64")
    T.raises(function() F.mix_rms_norm(x, x, w) end, "bad argument #4")
    T.raises(function() F.mix_rms_norm(x, x, w, w, -1) end, "eps must be a finite number >= 0")
    T.raises(function() F.mix_rms_norm(x:to("bf16"), x:to("bf16"), nil, w:to("bf16")) end,
      "op mix_rms_norm has no kernel for dtype bf16 on cpu")
  end,

  mix_rms_norm_gradients = function(T)
    local x, x0 = pt.randn({ 2, 3, 5 }, "f64"), pt.randn({ 2, 3, 5 }, "f64")
    local wx, w0 = pt.randn({ 5 }, "f64"), pt.randn({ 5 }, "f64")
    -- both outputs: the gradient reaches y through h and directly
    local ok, msg = testing.gradcheck(function(a, b, c, d) return { F.mix_rms_norm(a, b, c, d, 1e-5, 0.7, 0.6) } end,
      { x, x0, wx, w0 })
    assert(ok, msg)
    ok, msg = testing.gradcheck(function(a, b, d) return { F.mix_rms_norm(a, b, nil, d, 0, 1, 1.3) } end, { x, x0, w0 })
    assert(ok, msg)
  end,

  mix_rms_norm_same_bits_as_unfused = function(T)
    for _, case in ipairs {
      { shape = { 2, 7, 96 }, wx = true, lam = nil, s0 = 1 },
      { shape = { 2, 7, 96 }, wx = true, lam = 1 / math.sqrt(3), s0 = 1 },
      { shape = { 3, 5, 40 }, wx = false, lam = 0.5, s0 = 0.70703125 },
      { shape = { 4, 64, 512 }, wx = false, lam = 1 / math.sqrt(2), s0 = 1 },
    } do
      local what = string.format("mix %s wx=%s", table.concat(case.shape, "x"), tostring(case.wx))
      local x, x0 = pt.randn(case.shape) * 3, pt.randn(case.shape)
      local wx, w0 = pt.randn({ case.shape[3] }), pt.randn({ case.shape[3] })
      local g1, g2 = pt.randn(case.shape), pt.randn(case.shape)
      local function run(fused)
        local a, b, c, d = leaf(x), leaf(x0), case.wx and leaf(wx) or nil, leaf(w0)
        local y, h
        if fused then
          y, h = F.mix_rms_norm(a, b, c, d, F.RMS_EPS, case.lam, case.s0)
        else
          local t = b * d
          if case.s0 ~= 1 then t = t * case.s0 end
          y = (c and a * c or a) + t
          h = F.rms_norm(y, F.RMS_EPS, case.lam)
        end
        ; (h * g1 + y * g2):backward(pt.ones(case.shape))
        return y, h, a.grad, b.grad, c and c.grad, d.grad
      end
      local r1, r0 = { run(true) }, { run(false) }
      for k, name in ipairs { "y", "h", "dx", "dx0", "dwx", "dw0" } do
        if r0[k] then same_bits(r1[k], r0[k], what .. " " .. name) end
      end
    end
  end,

  rms_norm_rotary_hand_case_and_options = function(T)
    local x = pt.tensor({ { { { 1, 2, 3, 4 } }, { { 1, 2, 3, 4 } } } }, "f64") -- [1, 2, 1, 4]
    local n = 1 / math.sqrt(7.5)
    local y = F.rms_norm_rotary(x, { base = 10000 }, pt.tensor({ 2 }, "f64"), 0)
    near_all(T, y, { 2 * n, 4 * n, 6 * n, 8 * n,
      2 * n * (math.cos(1) + 3 * math.sin(1)), 2 * n * (2 * math.cos(0.01) + 4 * math.sin(0.01)),
      2 * n * (-math.sin(1) + 3 * math.cos(1)), 2 * n * (-2 * math.sin(0.01) + 4 * math.cos(0.01)) }, 1e-12)
    -- defaults: rope nil = F.rotary's defaults, gain nil, eps = F.RMS_EPS
    near_all(T, F.rms_norm_rotary(x), testing.flat(F.rotary(F.rms_norm(x))), 0, "defaults")
    local o = F.rms_norm_rotary(x, { dims = 2, offset = 1, train_len = false })
    near_all(T, o, testing.flat(F.rotary(F.rms_norm(x), { dims = 2, offset = 1, train_len = false })), 0, "options")
    T.raises(function() F.rms_norm_rotary(x, { dim = 2 }) end,
      "F.rms_norm_rotary: unknown option 'dim' (known: dims, base, train_len, offset)")
    T.raises(function() F.rms_norm_rotary(x, nil, pt.tensor({ 1, 2 }, "f64")) end,
      "rms_norm_rotary: gain [2] must be 1-D of size H = 1")
    T.raises(function() F.rms_norm_rotary(x:reshape { 2, 1, 4 }) end, "rms_norm_rotary: x must be 4-D [B, T, H, D]")
    T.raises(function() F.rms_norm_rotary(x, { dims = 3 }) end, "rotary dims must be even and in [2, D = 4], got 3")
  end,

  rms_norm_rotary_gradients = function(T)
    local x, g = pt.randn({ 2, 5, 3, 6 }, "f64"), pt.randn({ 3 }, "f64")
    local rope = { dims = 4, base = 10, train_len = 4, offset = 1 } -- partial, NTK active, offset
    local ok, msg = testing.gradcheck(function(a, b) return F.rms_norm_rotary(a, rope, b, 1e-5) end, { x, g })
    assert(ok, msg)
    ok, msg = testing.gradcheck(function(a) return F.rms_norm_rotary(a, { base = 10 }) end, { x })
    assert(ok, msg)
  end,

  rms_norm_rotary_same_bits_as_unfused = function(T)
    for _, case in ipairs {
      { shape = { 2, 9, 4, 16 }, rope = { base = 50000 }, gain = true },
      { shape = { 2, 70, 2, 16 }, rope = { dims = 8, base = 10000, train_len = 64 }, gain = false },
      { shape = { 2, 128, 8, 64 }, rope = { dims = 16, train_len = 1024 }, gain = true },
    } do
      local what = "rms_norm_rotary " .. table.concat(case.shape, "x")
      local x, gain, G = pt.randn(case.shape) * 2, pt.randn({ case.shape[3] }) * 2, pt.randn(case.shape)
      local function run(fused)
        local a, b = leaf(x), case.gain and leaf(gain) or nil
        local y
        if fused then
          y = F.rms_norm_rotary(a, case.rope, b, F.RMS_EPS)
        else
          y = F.rotary(F.rms_norm(a, F.RMS_EPS), case.rope)
          if b then y = y * b:reshape { case.shape[3], 1 } end
        end
        y:backward(G)
        return y, a.grad, b and b.grad
      end
      local r1, r0 = { run(true) }, { run(false) }
      for k, name in ipairs { "y", "dx", "dgain" } do
        if r0[k] then same_bits(r1[k], r0[k], what .. " " .. name) end
      end
    end
  end,

  gpt_fused_norms_same_loss_and_gradients = function(T)
    local small = { vocab_size = 64, num_layers = 4, model_dim = 64, num_heads = 4, num_kv_heads = 2, mlp_hidden = 128,
      bigram_vocab_size = 64, bigram_dim = 16, rope_train_seq_len = 8 }
    local cases = {
      -- PROTEUS v9 with the seed card's XSA, ln_scale on: depth scale ≠ 1, NTK active (T = 12 > 8)
      v9_ln_xsa = configs.with(configs.configs.proteus_v9_xsa, configs.with(small, { ln_scale = true,
        xsa_layers = { 2, 3 } })),
      -- #1539: parallel lanes from layer 3, recurrence on, partial rotary, value embeddings
      pr1539_lanes = configs.with(configs.configs.pr1539_recur, configs.with(small, { num_layers = 6, rope_dims = 8,
        xsa_layers = { 0, 1, 2, 3, 4, 5 }, ve_dim = 8, ve_layers = { 4, 5 }, parallel_start = 3,
        recurrence_layers = { 1, 2 }, bigram_vocab_size = 0 })),
    }
    for name, cfg in pairs(cases) do
      pt.manual_seed(11)
      local model = nn.GPT(cfg)
      T.eq(model.cfg.fused_norms, true, name .. ": fused_norms defaults to true")
      local x, y = pt.randint(0, 64, { 2, 12 }), pt.randint(0, 64, { 2, 12 })
      local function run(fused)
        model.cfg.fused_norms = fused
        model:zero_grad()
        local loss = model:forward(x, y)
        loss:backward()
        local grads = {}
        for pname, p in model:named_parameters() do grads[pname] = p.grad end
        return loss, grads
      end
      local l1, g1 = run(true)
      local l0, g0 = run(false)
      same_bits(l1, l0, name .. " loss")
      local n = 0
      for pname, g in pairs(g0) do
        n = n + 1
        assert(g1[pname], name .. ": no fused gradient for " .. pname)
        same_bits(g1[pname], g, name .. " grad " .. pname)
      end
      assert(n > 20 and g0["blocks.1.resid_mix"] and g0["blocks.1.attn.q_gain"], name .. ": gradients reached the blocks")
    end
    T.raises(function() nn.GPT { vocab_size = 64, num_layers = 2, model_dim = 32, num_heads = 4, num_kv_heads = 2,
      fused_norms = 1 } end, "fused_norms=1 (expected true or false)")
  end,
}
