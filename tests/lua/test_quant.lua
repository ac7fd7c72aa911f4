-- tests/lua/test_quant.lua — proteus.quant against the PyTorch reference, and its properties.
--
--   build/proteus tests/run.lua tests/lua/test_quant.lua
--
-- matches_reference: random-normal, heavy-tailed (Student-t, 3 degrees of freedom), floor-dominated
-- and zero-row tensors go to tests/reference/quant_ref.py (/usr/bin/python3, torch) in a safetensors
-- file; every scheme must give the same integers and the same fp16 scales (GPTQ: same scales, and at
-- most 0.1% of the integers off by one — the sweep's f32 sums are ordered differently by OpenBLAS and
-- PyTorch). Skipped without torch. Other tests: GPTQ-lite never worse than the fixed percentile, full
-- GPTQ beats GPTQ-lite and plain SDClip rounding on layer output error with a Hessian from real
-- activations (a small GPT on the bundled sample), Hessian hooks, calibration, pruning, policies.
local pt = require "proteus"
local nn = require "proteus.nn"
local F = require "proteus.functional"
local data = require "proteus.data"
local st = require "proteus.safetensors"
local quant = require "proteus.quant"
local codec = require "proteus.codec"

local PY = "/usr/bin/python3"
local REF = "tests/reference/quant_ref.py"

local torch_ok
local function need_torch(T)
  if torch_ok == nil then
    local p = io.popen(PY .. " -c 'import torch' 2>/dev/null && echo yes")
    torch_ok = p and p:read("a"):find("yes") ~= nil
    if p then p:close() end
  end
  if not torch_ok then T.skip(PY .. " with torch is not available") end
end

local function tmpname(suffix)
  local p = assert(io.popen("mktemp /tmp/proteus_quant_XXXXXX"))
  local n = p:read("l")
  p:close()
  os.remove(n)
  return n .. (suffix or "")
end

local function student_t(shape, df)
  local chi = pt.zeros(shape)
  for _ = 1, df do
    local z = pt.randn(shape)
    chi = chi + z * z
  end
  return pt.randn(shape) / (chi / df):sqrt()
end

-- the test tensors: name -> 2-D f32
local function cases()
  pt.manual_seed(7)
  local c = {}
  c.normal = pt.randn({ 48, 300 })
  c.normal_scaled = pt.randn({ 40, 257 }) * pt.rand({ 40, 1 }) * 3 -- rows of different scales
  c.student_t = student_t({ 48, 300 }, 3) * 0.7
  c.student_t_wide = student_t({ 16, 1024 }, 3) * 0.05
  local fl = pt.randn({ 24, 128 }) * 0.02 -- every row at the 1/31 floor
  pt.no_grad(function() fl[3]:fill_(0) end) -- an all-zero row
  c.floor = fl
  return c
end

local function count_diff(a, b)
  local d = (a:to("f32") - b:to("f32")):abs()
  return d:gt(0):to("f32"):sum():item(), d:max():item()
end

local function same(T, got, want, what)
  T.eq(got:shape(), want:shape(), what .. " shape")
  local n, mx = count_diff(got, want)
  if n > 0 then error(string.format("%s: %d of %d values differ (max |diff| %g)", what, n, got:numel(), mx), 2) end
end

-- a small GPT and real token batches from the bundled sample
local function small_model_and_batches(n_batches)
  pt.manual_seed(3)
  local model = nn.GPT { vocab_size = 1024, num_layers = 2, model_dim = 64, num_heads = 4, num_kv_heads = 2,
    mlp_mult = 3, init = "orthogonal" }
  -- give the zero-initialised projections realistic orthogonal weights
  pt.no_grad(function()
    for i = 0, 1 do
      for _, n in ipairs { "attn.proj.weight", "mlp.proj.weight" } do
        local p = model:get("blocks." .. i .. "." .. n)
        p:copy_(nn.orthogonal(p:size(1), p:size(2)) * (1 / math.sqrt(4)))
      end
    end
  end)
  local stream = data.stream(data.paths().train)
  local batches = {}
  for b = 1, n_batches do
    local xy = stream:next_batch(4 * 64, 0, 1):tensor()
    batches[b] = xy:narrow(1, 1, 4 * 64):reshape { 4, 64 }
  end
  return model, batches
end

local function layer_err(W, r, H)
  local D = W:to("f64") - quant.dequantize(r):to("f64")
  return ((D:matmul(H:to("f64"))) * D):sum():item()
end

return {
  matches_reference = function(T)
    need_torch(T)
    local cs = cases()
    local model, batches = small_model_and_batches(2)
    local H = quant.collect_hessians(model, batches)
    local ins = {}
    for name, w in pairs(cs) do ins[name .. ".w"] = w end
    ins["gptq_fc.w"] = model:get("blocks.0.mlp.fc.weight"):detach()
    ins["gptq_fc.H"] = H["blocks.0.mlp.fc.weight"]
    ins["gptq_proj.w"] = model:get("blocks.1.mlp.proj.weight"):detach() * 20 -- scales above the floor
    ins["gptq_proj.H"] = H["blocks.1.mlp.proj.weight"]
    local fin, fout = tmpname(".in.safetensors"), tmpname(".out.safetensors")
    st.save(fin, ins)
    local ok = os.execute(PY .. " " .. REF .. " " .. fin .. " " .. fout)
    os.remove(fin)
    assert(ok, "quant_ref.py failed")
    local ref = st.load(fout)
    os.remove(fout)
    local schemes = {
      int8_row_clip = quant.int8_row_clip, int6_row_clip = quant.int6_row_clip,
      int6_gptq_lite_row = quant.int6_gptq_lite_row, int6_gptq_lite_tensor = quant.int6_gptq_lite_tensor,
      int8_tensor = quant.int8_tensor,
      int6_sdclip = function(w) return quant.sdclip(w, { qmax = 31, k = 12.85 }) end,
      int8_sdclip = function(w) return quant.sdclip(w, { qmax = 127, k = 20 }) end,
    }
    local checked = 0
    for name, w in pairs(ins) do
      local case = name:match("^(.*)%.w$")
      if case then
        for sname, fn in pairs(schemes) do
          local r = fn(w)
          local key = case .. "." .. sname
          same(T, r.q, ref[key .. ".q"], key .. " integers")
          T.eq(r.scale:dtype(), "f16", key .. " scale dtype")
          same(T, r.scale, ref[key .. ".s"]:reshape(r.scale:shape()), key .. " scales")
          if sname == "int6_gptq_lite_tensor" then
            local f32 = string.unpack("<f", string.pack("<f", r.meta.percentile))
            T.eq(f32, ref[key .. ".p"]:flat_get(1), key .. " percentile")
          end
          checked = checked + 1
        end
        if ins[case .. ".H"] then
          local r = quant.gptq(w, ins[case .. ".H"])
          local key = case .. ".int6_gptq"
          same(T, r.scale, ref[key .. ".s"], key .. " scales")
          local n, mx = count_diff(r.q, ref[key .. ".q"])
          assert(mx <= 1 and n <= 0.001 * r.q:numel(),
            string.format("%s: %d of %d integers differ (max %g)", key, n, r.q:numel(), mx))
          checked = checked + 1
        end
      end
    end
    T.eq(checked, 7 * 7 + 2)
  end,

  gptq_lite_no_worse_than_fixed_percentile = function(T)
    for name, w in pairs(cases()) do
      local fixed = quant.sq_error(w, quant.int6_row_clip(w))
      local lite = quant.sq_error(w, quant.int6_gptq_lite_row(w))
      assert(lite <= fixed, string.format("%s: GPTQ-lite error %.17g > fixed-percentile error %.17g", name, lite, fixed))
      -- per row too: the chosen candidate is the row minimum over the five
      local r = quant.int6_gptq_lite_row(w)
      for _, p in ipairs(quant.LITE_PERCENTILES) do
        local c = quant.int_row_clip(w, { qmax = 31, percentile = p })
        local worse = (r.row_err - c.row_err):gt(0):to("f32"):sum():item()
        T.eq(worse, 0, name .. " rows worse than percentile " .. p)
      end
    end
  end,

  full_gptq_beats_gptq_lite_on_layer_output = function(T)
    local model, batches = small_model_and_batches(3)
    local H = quant.collect_hessians(model, batches)
    local lines = {}
    for _, name in ipairs { "blocks.0.attn.c_q.weight", "blocks.0.mlp.fc.weight", "blocks.1.mlp.proj.weight",
      "blocks.1.attn.proj.weight" } do
      local W = model:get(name):detach()
      -- v9-scale weights (the model is 64 wide; ×√(64/512) gives the entry size of a 512-wide
      -- orthogonal matrix, where the records' scales sit at the 1/31 floor), and 20× larger ones
      for _, scale in ipairs { math.sqrt(64 / 512), 20 } do
        local Ws = W * scale
        local g = layer_err(Ws, quant.gptq(Ws, H[name]), H[name])
        local lite = layer_err(Ws, quant.int6_gptq_lite_row(Ws), H[name])
        local sd = layer_err(Ws, quant.sdclip(Ws, { qmax = 31, k = 12.85 }), H[name])
        lines[#lines + 1] = string.format("%s x%g: gptq %.4g lite %.4g sdclip %.4g", name, scale, g, lite, sd)
        assert(g < sd, "GPTQ must beat plain rounding with the same scales: " .. lines[#lines])
        if scale < 1 then assert(g < lite, "GPTQ must beat GPTQ-lite: " .. lines[#lines]) end
      end
    end
  end,

  hessian_hooks_see_the_linear_inputs = function(T)
    pt.manual_seed(5)
    local model = nn.GPT { vocab_size = 1024, num_layers = 2, model_dim = 32, num_heads = 2, num_kv_heads = 1, mlp_mult = 2 }
    local tok = pt.randint(0, 1024, { 2, 16 })
    local before = pt.no_grad(function() return model:logits(tok) end)
    local H, n = quant.collect_hessians(model, { tok }, { damp = 0 })
    T.eq(n, 2)
    -- block 0 input: x0 = rms(E[tok]) and resid_mix = [1; 0], so c_q sees rms(x0)
    local x0 = F.rms_norm(pt.embedding(model:get("tok_emb.weight"), tok):detach())
    local h = F.rms_norm(x0):reshape { -1, 32 }
    local want = h:transpose(1, 2):matmul(h) / 2
    local d = (H["blocks.0.attn.c_q.weight"] - want):abs():max():item()
    assert(d < 1e-4, "c_q Hessian differs from rms(x0)ᵀrms(x0)/n by " .. d)
    -- c_k and c_v read the same normalised input as c_q
    T.eq((H["blocks.0.attn.c_k.weight"] - H["blocks.0.attn.c_q.weight"]):abs():max():item(), 0)
    T.eq((H["blocks.0.attn.c_v.weight"] - H["blocks.0.attn.c_q.weight"]):abs():max():item(), 0)
    T.eq(H["blocks.1.mlp.proj.weight"]:shape(), { 64, 64 })
    T.eq(H["blocks.1.attn.proj.weight"]:shape(), { 32, 32 })
    -- the hooks are gone and the function is unchanged, bit for bit
    assert(model.linear_hook == nil, "the linear hook was left on the model")
    local after = pt.no_grad(function() return model:logits(tok) end)
    T.eq((after - before):abs():max():item(), 0)
    -- proj inputs: ∑ over tokens of a aᵀ is positive semidefinite with nonnegative diagonal; mlp
    -- proj input is relu² ≥ 0, so every entry is ≥ 0
    assert(H["blocks.0.mlp.proj.weight"]:min():item() >= 0, "relu² inputs give a nonnegative Hessian")
    -- damping: 0.01·mean(diag)
    local H2 = quant.collect_hessians(model, { tok })
    local A, B = H["blocks.0.mlp.fc.weight"], H2["blocks.0.mlp.fc.weight"]
    local m = 0
    for i = 1, 32 do m = m + A:get(i, i) end
    T.near(B:get(1, 1) - A:get(1, 1), 0.01 * m / 32, 1e-5)
    T.near(B:get(1, 2), A:get(1, 2), 1e-7)
  end,

  hessians_of_a_bf16_compute_model_are_f32 = function(T)
    -- compute_dtype = "bf16": the fused MLP's relu² output (mlp.proj's input) is bf16; every Hessian is
    -- still accumulated in f32 and stays close to the f32 model's
    local cfg = { vocab_size = 1024, num_layers = 2, model_dim = 32, num_heads = 2, num_kv_heads = 1, mlp_mult = 2 }
    pt.manual_seed(5)
    local m32 = nn.GPT(cfg)
    cfg.compute_dtype = "bf16"
    pt.manual_seed(5)
    local m16 = nn.GPT(cfg)
    local tok = pt.randint(0, 1024, { 2, 16 })
    local A = quant.collect_hessians(m32, { tok }, { damp = 0 })
    local B = quant.collect_hessians(m16, { tok }, { damp = 0 })
    local n = 0
    for key, h in pairs(A) do
      T.eq(B[key]:dtype(), "f32", key)
      local d = (B[key] - h):pow(2):sum():item() ^ 0.5 / math.max(h:pow(2):sum():item() ^ 0.5, 1e-30)
      assert(d < 5e-2, string.format("%s: bf16-compute Hessian differs by %.3g (relative)", key, d))
      n = n + 1
    end
    assert(n >= 12, "Hessians compared: " .. n)
  end,

  calibration_is_seeded_and_restores_the_rng = function(T)
    pt.manual_seed(11)
    local model = nn.GPT { vocab_size = 1024, num_layers = 1, model_dim = 32, num_heads = 2, num_kv_heads = 1, mlp_mult = 2 }
    pt.manual_seed(99)
    local s0 = pt.get_rng_state()
    local a = quant.generate_calibration(model, 5, 6, 0.8, 1234, { batch = 2 })
    T.eq(pt.get_rng_state(), s0)
    local b = quant.generate_calibration(model, 5, 6, 0.8, 1234, { batch = 2 })
    T.eq(#a, 3)
    T.eq(a[1]:shape(), { 2, 6 })
    T.eq(a[3]:shape(), { 1, 6 })
    for i = 1, 3 do
      T.eq(a[i]:totable(), b[i]:totable())
      assert(a[i]:min():item() >= 0 and a[i]:max():item() < 1024, "token out of range")
    end
    local c = quant.generate_calibration(model, 5, 6, 0.8, 4321, { batch = 2 })
    assert(c[1]:totable()[1][3] ~= a[1]:totable()[1][3] or c[1]:totable()[2][4] ~= a[1]:totable()[2][4],
      "another seed gives other text")
    -- temperature → 0 follows the argmax of the logits
    local g = quant.generate_calibration(model, 1, 4, 1e-6, 5)[1]
    local z = pt.no_grad(function() return model:logits(g:narrow(2, 1, 3)) end)
    local am = z:argmax(2)
    T.eq(g:flat_get(4), am:flat_get(3))
  end,

  magnitude_prune_matches_reference = function(T)
    need_torch(T)
    pt.manual_seed(21)
    local model = nn.GPT { vocab_size = 1024, num_layers = 1, model_dim = 128, num_heads = 2, num_kv_heads = 1, mlp_mult = 5 }
    pt.no_grad(function() model:get("blocks.0.mlp.proj.weight"):copy_(pt.randn({ 128, 640 }) * 0.02) end)
    local ins, names = {}, {}
    for name, p in model:named_parameters() do
      if p:dim() == 2 and p:numel() > 65536 then
        names[#names + 1] = name
        ins["prune.p" .. #names] = p:detach():clone()
      end
    end
    T.eq(names, { "tok_emb.weight", "blocks.0.mlp.fc.weight", "blocks.0.mlp.proj.weight" })
    local res = quant.magnitude_prune(model, 0.05, { keep_sample = true, max_sample = 100000 })
    T.eq(res.sample_index:numel(), 100000)
    ins["prune.idx"] = res.sample_index
    local fin, fout = tmpname(".in.safetensors"), tmpname(".out.safetensors")
    st.save(fin, ins, { prune_frac = "0.05" })
    assert(os.execute(PY .. " " .. REF .. " " .. fin .. " " .. fout), "quant_ref.py failed")
    os.remove(fin)
    local ref = st.load(fout)
    os.remove(fout)
    T.eq(res.threshold, ref["prune.thr"]:flat_get(1))
    for i, name in ipairs(names) do same(T, model:get(name), ref["prune.p" .. i], name .. " after pruning") end
    assert(math.abs(res.fraction - 0.05) < 0.01, "fraction zeroed " .. res.fraction)
  end,

  prune_ones_zeroes_smallest_scales_first_to_the_budget = function(T)
    pt.manual_seed(31)
    local ws = { { "a", pt.randn({ 400, 200 }) * 0.04 }, { "b", pt.randn({ 400, 200 }) * 0.5 } }
    local pol = quant.policy.proteus_as_run
    local results = quant.quantize_model(ws, pol)
    local function size(rs)
      local parts = {}
      for i, r in ipairs(rs) do parts[i] = codec.tensor_bytes(r.q) end
      return #codec.compress(table.concat(parts), "zstd", 3)
    end
    local s0 = size(results)
    local res0 = quant.prune_ones(results, s0, size)
    assert(res0.already_fits and res0.pruned == 0)
    local ones_b = results[2].q:to("f32"):abs():eq(1):to("f32"):sum():item()
    local budget = s0 - 300
    local res = quant.prune_ones(results, budget, size)
    assert(res.fits and res.size <= budget, "pruned to fit")
    assert(res.pruned > 0 and res.pruned < res.candidates, "some, not all: " .. res.pruned)
    -- tensor a has the floor scale 1/31 on every row, tensor b larger ones: a's ±1 go first
    local left_b = results[2].q:to("f32"):abs():eq(1):to("f32"):sum():item()
    if res.pruned <= res.candidates - ones_b then T.eq(left_b, ones_b, "tensor b untouched") end
    -- minimal: one fewer does not fit (bisection invariant), checked by redoing it
    local again = quant.quantize_model(ws, pol)
    local r2 = quant.prune_ones(again, budget, size)
    T.eq(r2.pruned, res.pruned)
  end,

  policies_follow_the_spec = function(T)
    local P = quant.policy
    local function m(pol, name, shape)
      return quant.classify(pol, name, pt.zeros(shape)).method
    end
    -- §2.5 baseline
    T.eq(m(P.baseline, "tok_emb.weight", { 1024, 512 }), "int8_row_clip")
    T.eq(m(P.baseline, "blocks.0.attn_scale", { 512 }), "fp32")
    T.eq(m(P.baseline, "blocks.0.attn.c_k.weight", { 256, 128 }), "fp16")
    -- §3.6 PROTEUS
    T.eq(m(P.proteus_as_run, "tok_emb.weight", { 1024, 512 }), "fp16")
    T.eq(m(P.proteus_as_run, "bigram.proj.weight", { 512, 128 }), "fp16") -- exactly 65,536
    T.eq(m(P.proteus_as_run, "bigram.embed.weight", { 2048, 128 }), "int6_row_clip")
    T.eq(m(P.proteus_as_run, "skip_weights", { 5, 512 }), "fp32")
    T.eq(m(P.proteus_as_run, "smear.gate", { 512 }), "fp16")
    T.eq(m(P.proteus_card, "blocks.3.mlp.fc.weight", { 1536, 512 }), "int6_gptq_lite_row")
    -- §5.4 #598
    T.eq(m(P.pr598_mixed, "blocks.3.attn.c_q.weight", { 512, 512 }), "int6_gptq_lite_tensor")
    T.eq(m(P.pr598_mixed, "tok_emb.weight", { 1024, 512 }), "int8_tensor")
    T.eq(m(P.pr598_mixed, "ve_shared.embed.weight", { 1024, 128 }), "int8_tensor")
    T.eq(m(P.pr598_mixed, "blocks.3.mlp.scale", { 1536 }), "fp16")
    T.eq(m(P.pr598_mixed, "blocks.3.mlp_scale", { 512 }), "fp32")
    T.eq(m(P.pr598_mixed, "smear.gate", { 512 }), "fp32")
    T.eq(m(P.pr598_mixed, "bigram.proj.weight", { 512, 128 }), "fp32")
    -- §4.5 #1539
    T.eq(m(P.pr1539_gptq, "blocks.0.mlp.proj.weight", { 512, 2048 }), "int6_gptq")
    T.eq(m(P.pr1539_gptq, "tok_emb.weight", { 8192, 512 }), "int8_sdclip")
    T.eq(m(P.pr1539_gptq, "ve_shared.embed.weight", { 8192, 44 }), "int8_row_clip")
    T.eq(m(P.pr1539_gptq, "blocks.0.attn_scale", { 512 }), "fp16")
    T.raises(function() quant.quantize_model({ { "blocks.0.mlp.fc.weight", pt.zeros({ 512, 256 }) } }, P.pr1539_gptq) end,
      "blocks.0.mlp.fc.weight needs a Hessian")
    T.raises(function() quant.int6_row_clip(pt.zeros({ 4 })) end, "expected a 2-D weight")
  end,
}
