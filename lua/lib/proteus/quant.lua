--- proteus.quant — post-training quantization of the parameter-golf submissions: schemes, per-
-- submission policies, Hessians and self-generated calibration, magnitude and selective ±1 pruning.
--
--   local quant = require "proteus.quant"
--   local r = quant.int6_row_clip(w)                  -- {q = i8, scale = f16 [R], scheme =, meta =}
--   local w2 = quant.dequantize(r)                     -- f32, q · scale
--   local H = quant.collect_hessians(model, batches)   -- name -> [C, C] for every block matrix
--   local r = quant.gptq(w, H[name])                   -- #1539 full GPTQ with SDClip scales
--   local res = quant.quantize_model(model, quant.policy.proteus_as_run)   -- ordered list of results
--
-- Schemes (spec section; f32 math; `s32` the f32 scale, `s16` its fp16 rounding, which is stored):
--   int8_row_clip (§2.5)      c_r = quantile(|w_r|, 0.9999984), s32 = max(c_r/127, 1/127),
--                             q = clamp(round(clamp(w, ±c_r)/s32), ±127)
--   int6_row_clip (§3.6)      the same with 31: s32 = max(c_r/31, 1/31), q ∈ [−31, 31]
--   int6_gptq_lite_row        the PROTEUS card: int6_row_clip for each p of {0.999, 0.9995, 0.9999,
--                             0.99999, 1.0}, per row the p with the lowest Σ(w − q·s16)² (first on ties)
--   int6_gptq_lite_tensor     #598 (§5.4): per p, c_r = quantile(|w_r|, p), s32 = max(c_r/31, 1/31),
--     (§5.4)                  q = clamp(round(w/s32), −32, 31) (w itself not clamped), one p per
--                             tensor by the whole-tensor squared error Σ(w − q·s16)²
--   int8_tensor (§5.4)        s32 = amax/127 (1 when amax = 0), q = clamp(round(w/s32), ±127)
--   int6_sdclip / int8_sdclip s16 = fp16(max(k·std_r/qmax, 1/qmax)) (unbiased std; k 12.85 / 20),
--     (§4.5)                  q = clamp(round(w/s16), ±qmax)
--   int6_gptq (§4.5)          SDClip scales (k 12.85), then the GPTQ sweep of pt_quant.h with the
--                             Hessian (dead columns, damping 0.01·mean diag, descending-diag
--                             permutation, U = chol_upper(H⁻¹), blocks of 128), q ∈ [−31, 31]
-- The clean_per_row family (§2.5, §3.6, §5.4) quantizes with s32 and stores s16 (the records' tiny
-- mismatch); the #1539 family (SDClip, GPTQ) quantizes with s16. Error criteria use s16: the error
-- of what the loader reconstructs. Per-element loops run in C (proteus._quant, src/kernels/pt_quant.h).
--
-- Tests: tests/lua/test_quant.lua (against tests/reference/quant_ref.py), tests/c/test_quant.c.
local pt = require "proteus"
local Q = require "proteus._quant"

local quant = {}

quant.SMALL_NUMEL = 65536
quant.CLIP_Q = 0.9999984
quant.LITE_PERCENTILES = { 0.999, 0.9995, 0.9999, 0.99999, 1.0 }
--- The names whose small tensors stay fp32 in the clean_per_row exports (§2.1, §3.6).
quant.CONTROL_NAMES = { "attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weights" }

local function as2d(w, who)
  if not pt.is_tensor(w) then error(who .. ": expected a tensor, got " .. type(w), 3) end
  if w:dim() ~= 2 then
    error(string.format("%s: expected a 2-D weight [rows, cols], got shape {%s}", who,
      table.concat(w:shape(), ", ")), 3)
  end
  if w:dtype() ~= "f32" then w = w:to("f32") end
  return w:detach():contiguous()
end

local function result(scheme, q, s16, meta)
  return { scheme = scheme, q = q, scale = s16, meta = meta }
end

--- Per-row percentile clip with `qmax` levels each side (int8: 127, int6: 31).
-- opts: percentile (0.9999984), qmax (127).
function quant.int_row_clip(w, opts)
  opts = opts or {}
  local qmax, p = opts.qmax or 127, opts.percentile or quant.CLIP_Q
  w = as2d(w, "quant.int_row_clip")
  local clip = w:abs():quantile(p, 2)
  local s32 = (clip / qmax):clamp(1 / qmax)
  local s16 = s32:to("f16")
  local q, err = Q.rows(w, { clip = clip, scale = s32, err_scale = s16, qmin = -qmax, qmax = qmax })
  local r = result(qmax == 127 and "int8_per_row" or "int6_per_row", q, s16,
    { method = qmax == 127 and "int8_row_clip" or "int6_row_clip", percentile = p, qmax = qmax })
  r.row_err, r.clip, r.scale32 = err, clip, s32
  return r
end

function quant.int8_row_clip(w, opts)
  return quant.int_row_clip(w, { qmax = 127, percentile = opts and opts.percentile })
end

function quant.int6_row_clip(w, opts)
  return quant.int_row_clip(w, { qmax = 31, percentile = opts and opts.percentile })
end

--- PROTEUS card GPTQ-lite: the int6_row_clip percentile with the lowest reconstruction error, per row.
function quant.int6_gptq_lite_row(w, opts)
  local ps = opts and opts.percentiles or quant.LITE_PERCENTILES
  w = as2d(w, "quant.int6_gptq_lite_row")
  local cands = {}
  for i, p in ipairs(ps) do cands[i] = quant.int_row_clip(w, { qmax = 31, percentile = p }) end
  local errs, clips, scales = {}, {}, {}
  for i, c in ipairs(cands) do errs[i], clips[i], scales[i] = -c.row_err, c.clip, c.scale32 end
  local best = pt.stack(errs):argmax(1):reshape { 1, -1 } -- first of the lowest errors
  local clip = pt.stack(clips):gather(1, best):reshape { -1 }
  local s32 = pt.stack(scales):gather(1, best):reshape { -1 }
  local s16 = s32:to("f16")
  local q, err = Q.rows(w, { clip = clip, scale = s32, err_scale = s16, qmin = -31, qmax = 31 })
  local counts = {}
  local b = best:reshape { -1 }
  for i = 1, #ps do counts[i] = b:eq(i - 1):to("f32"):sum():item() end
  local r = result("int6_per_row", q, s16, { method = "int6_gptq_lite_row", percentiles = ps, rows_per_percentile = counts })
  r.row_err, r.choice = err, best:reshape { -1 }
  return r
end

--- #598 GPTQ-lite: one percentile per tensor by whole-tensor error; values in [−32, 31].
function quant.int6_gptq_lite_tensor(w, opts)
  local ps = opts and opts.percentiles or quant.LITE_PERCENTILES
  w = as2d(w, "quant.int6_gptq_lite_tensor")
  local best, best_err, tried = nil, nil, {}
  for i, p in ipairs(ps) do
    local clip = w:abs():quantile(p, 2)
    local s32 = (clip / 31):clamp(1 / 31)
    local s16 = s32:to("f16")
    local q, err = Q.rows(w, { scale = s32, err_scale = s16, qmin = -32, qmax = 31 })
    local e = err:sum():item()
    tried[i] = e / w:numel()
    if not best_err or e < best_err then best, best_err = { q = q, s16 = s16, p = p, row_err = err }, e end
  end
  local r = result("int6_per_row", best.q, best.s16,
    { method = "int6_gptq_lite_tensor", percentile = best.p, mse = tried, qmin = -32, qmax = 31 })
  r.row_err = best.row_err
  return r
end

--- #598 int8 per tensor: s = amax/127.
function quant.int8_tensor(w)
  if not pt.is_tensor(w) then error("quant.int8_tensor: expected a tensor, got " .. type(w), 2) end
  local shape = w:shape()
  local flat = w:detach():to("f32"):contiguous():reshape { 1, -1 }
  local amax = flat:abs():max():item()
  local s32 = pt.tensor({ amax > 0 and amax / 127 or 1.0 }, "f64"):to("f32")
  local s16 = s32:to("f16")
  local q = Q.rows(flat, { scale = s32, qmin = -127, qmax = 127 })
  return result("int8_per_tensor", q:reshape(shape), s16, { method = "int8_tensor", amax = amax })
end

--- SDClip scales: fp16(max(k·std_r/qmax, 1/qmax)) with the unbiased row std.
function quant.sdclip_scale(w, k, qmax)
  local std = w:std(2)
  return ((std * k) / qmax):clamp(1 / qmax):to("f16")
end

--- #1539 SDClip without GPTQ: opts.k (12.85 for int6, 20 for int8), opts.qmax (31 or 127).
function quant.sdclip(w, opts)
  opts = opts or {}
  local qmax = opts.qmax or 31
  local k = opts.k or (qmax == 127 and 20 or 12.85)
  w = as2d(w, "quant.sdclip")
  local s16 = quant.sdclip_scale(w, k, qmax)
  local q, err = Q.rows(w, { scale = s16, err_scale = s16, qmin = -qmax, qmax = qmax })
  local r = result(qmax == 127 and "int8_per_row" or "int6_per_row", q, s16,
    { method = qmax == 127 and "int8_sdclip" or "int6_sdclip", k = k, qmax = qmax })
  r.row_err = err
  return r
end

--- #1539 full GPTQ with SDClip scales: H [C, C] from quant.collect_hessians. opts: k (12.85), qmax (31),
-- damp (0.01, the second damping), block (128).
function quant.gptq(w, H, opts)
  opts = opts or {}
  local qmax, k = opts.qmax or 31, opts.k or 12.85
  w = as2d(w, "quant.gptq")
  if not pt.is_tensor(H) then error("quant.gptq: a Hessian tensor [cols, cols] is required (quant.collect_hessians)", 2) end
  local s16 = quant.sdclip_scale(w, k, qmax)
  local q = Q.gptq(w, H, s16, { qmin = -qmax, qmax = qmax, damp = opts.damp or 0.01, block = opts.block or 128 })
  return result("int6_per_row", q, s16, { method = "int6_gptq", k = k, qmax = qmax, damp = opts.damp or 0.01,
    block = opts.block or 128 })
end

--- q · scale as f32 (per row or per tensor); the function the artifact defines.
function quant.dequantize(r)
  return Q.dequant(r.q, r.scale)
end

--- Σ(w − dequantize(r))² over the tensor (f64 accumulation through f64 tensors).
function quant.sq_error(w, r)
  local d = w:to("f64") - quant.dequantize(r):to("f64")
  return (d * d):sum():item()
end

-- ------------------------------------------------------------------------------------------------
-- Policies: which scheme each state-dict entry gets
-- ------------------------------------------------------------------------------------------------

--- Category of a tensor name as #598/#1539 classify them: embed | attn | mlp | other.
function quant.category(name)
  if name:find("tok_emb", 1, true) or name:find("lm_head", 1, true) then return "embed" end
  if name:find(".attn.", 1, true) then return "attn" end
  if name:find(".mlp.", 1, true) then return "mlp" end
  return "other"
end

local function has_any(name, list)
  for _, pat in ipairs(list) do if name:find(pat, 1, true) then return true end end
  return false
end

local function small_rule(control, other_dtype)
  return function(name)
    if control and has_any(name, control) then return { method = "fp32" } end
    return { method = other_dtype or "fp16" }
  end
end

--- Policies per submission. Each has: name, section, small(name) for tensors of ≤ 65,536 elements,
-- large(name, category, t) for the rest, and optionally first(name) for rules before the size test.
quant.policy = {
  baseline = {
    name = "baseline", section = "§2.5", codec = "zlib", level = 9,
    small = small_rule(quant.CONTROL_NAMES),
    large = function(_, _, t)
      if t:dim() ~= 2 then
        error("quant.policy.baseline: per-tensor int8 for non-2-D tensors is not implemented (no proteus model has one)")
      end
      return { method = "int8_row_clip", percentile = quant.CLIP_Q }
    end,
  },
  proteus_as_run = {
    name = "proteus_as_run", section = "§3.6", codec = "zstd", level = 22,
    first = function(name) if name == "tok_emb.weight" then return { method = "fp16" } end end,
    small = small_rule(quant.CONTROL_NAMES),
    large = function() return { method = "int6_row_clip", percentile = quant.CLIP_Q } end,
  },
  proteus_card = {
    name = "proteus_card", section = "§3.1 card (GPTQ-lite, 5 percentiles per row)", codec = "zstd", level = 22,
    first = function(name) if name == "tok_emb.weight" then return { method = "fp16" } end end,
    small = small_rule(quant.CONTROL_NAMES),
    large = function() return { method = "int6_gptq_lite_row" } end,
  },
  pr598_mixed = {
    name = "pr598_mixed", section = "§5.4", codec = "zstd", level = 22,
    small = small_rule({ "attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weights", "skip_gates", "smear",
      "bigram", "ve_shared", "ve_layer_scales", "lane_merge" }),
    large = function(_, cat)
      if cat == "attn" or cat == "mlp" then return { method = "int6_gptq_lite_tensor" } end
      return { method = "int8_tensor" }
    end,
  },
  pr1539_gptq = {
    name = "pr1539_gptq", section = "§4.5", codec = "brotli", level = 11, shuffle = true,
    small = small_rule(nil, "fp16"),
    large = function(_, cat)
      if cat == "attn" or cat == "mlp" then return { method = "int6_gptq", k = 12.85 } end
      if cat == "embed" then return { method = "int8_sdclip", k = 20 } end
      return { method = "int8_row_clip", percentile = quant.CLIP_Q }
    end,
  },
}

--- The scheme spec a policy gives tensor `name` (t: the tensor).
function quant.classify(policy, name, t)
  if not ({ f32 = 1, f64 = 1, bf16 = 1, f16 = 1 })[t:dtype()] then
    return { method = "raw" }
  end
  local s = policy.first and policy.first(name)
  if s then return s end
  if t:numel() <= quant.SMALL_NUMEL then return policy.small(name) end
  return policy.large(name, quant.category(name), t)
end

--- Quantizes one tensor by a scheme spec; ctx.hessians (name -> H) feeds int6_gptq.
-- Returns {name, scheme (container scheme), q, scale, meta} or {name, scheme = fp16/fp32/raw, data}.
function quant.apply(name, t, spec, ctx)
  local m = spec.method
  local r
  if m == "fp16" or m == "fp32" or m == "raw" then
    local dt = ({ fp16 = "f16", fp32 = "f32" })[m]
    r = { scheme = m, data = dt and t:detach():to(dt):contiguous() or t:detach():contiguous(), meta = { method = m } }
  elseif m == "int8_row_clip" then r = quant.int8_row_clip(t, spec)
  elseif m == "int6_row_clip" then r = quant.int6_row_clip(t, spec)
  elseif m == "int6_gptq_lite_row" then r = quant.int6_gptq_lite_row(t, spec)
  elseif m == "int6_gptq_lite_tensor" then r = quant.int6_gptq_lite_tensor(t, spec)
  elseif m == "int8_tensor" then r = quant.int8_tensor(t)
  elseif m == "int8_sdclip" then r = quant.sdclip(t, { qmax = 127, k = spec.k or 20 })
  elseif m == "int6_sdclip" then r = quant.sdclip(t, { qmax = 31, k = spec.k or 12.85 })
  elseif m == "int6_gptq" then
    local H = ctx and ctx.hessians and ctx.hessians[name]
    if not H then
      error(string.format("quant: tensor %s needs a Hessian for full GPTQ (policy %s); pass hessians = "
        .. "quant.collect_hessians(model, batches)", name, ctx and ctx.policy or "?"), 2)
    end
    r = quant.gptq(t, H, spec)
  else
    error(string.format("quant: tensor %s: unknown method '%s'", name, tostring(m)), 2)
  end
  r.name = name
  r.orig_dtype = t:dtype()
  r.shape = t:shape()
  return r
end

--- Quantizes every named parameter of a model (or a list of {name, tensor}) by a policy; returns the
-- ordered list of results. opts.hessians: name -> H for the GPTQ policy.
function quant.quantize_model(model, policy, opts)
  opts = opts or {}
  if type(policy) == "string" then
    policy = quant.policy[policy] or error("quant: unknown policy '" .. policy .. "'", 2)
  end
  local out = {}
  local function each(name, t)
    out[#out + 1] = quant.apply(name, t, quant.classify(policy, name, t), { hessians = opts.hessians, policy = policy.name })
  end
  pt.no_grad(function()
    if model.named_parameters then
      for name, t in model:named_parameters() do each(name, t) end
    else
      for _, nt in ipairs(model) do each(nt[1], nt[2]) end
    end
  end)
  return out
end

-- ------------------------------------------------------------------------------------------------
-- Hessians from calibration activations, and self-generated calibration text
-- ------------------------------------------------------------------------------------------------

--- H = Σ_seq XᵀX / n_seqs + damp·mean(diag)·I for every block matrix (c_q, c_k, c_v, attn proj,
-- mlp fc, mlp proj) from the inputs those linears see while the model runs on token_batches
-- (a list of i64 [B, T] tensors; n_seqs = total B). opts.damp = 0.01.
--
-- Hook: nn.lua has no forward hooks, so this wraps the model's attn/mlp methods on the instance (not
-- the class): q/k/v and fc take the normalised input the wrapper receives; for attn proj and mlp proj
-- the wrapper swaps the projection weight for an identity matrix, so the original method returns
-- exactly the projection's input, then applies the real projection itself (y·Wᵀ, the same matmul).
function quant.collect_hessians(model, token_batches, opts)
  opts = opts or {}
  local damp = opts.damp or 0.01
  local sums, nseq = {}, 0
  local function acc(key, x)
    local C = x:size(-1)
    local X = x:reshape { -1, C }
    if X:dtype() ~= "f32" then X = X:to("f32") end -- compute_dtype = "bf16": the MLP's relu² output is bf16
    local xtx = X:transpose(1, 2):matmul(X)
    sums[key] = sums[key] and (sums[key] + xtx) or xtx
  end
  local eyes = {}
  local function eye(n)
    if not eyes[n] then
      local e = pt.zeros({ n, n })
      for i = 1, n do e:flat_set((i - 1) * n + i, 1) end
      eyes[n] = e
    end
    return eyes[n]
  end
  -- every linear's input, through nn.GPT's linear hook (the model's function is unchanged)
  local prev_hook = model.linear_hook
  model.linear_hook = function(name, x) acc(name, x) end
  local ok, err = pcall(pt.no_grad, function()
    for _, tok in ipairs(token_batches) do
      model:logits(tok)
      nseq = nseq + tok:size(1)
    end
  end)
  model.linear_hook = prev_hook
  if not ok then error(err, 0) end
  if nseq == 0 then error("quant.collect_hessians: no calibration sequences given", 2) end
  local H = {}
  for key, S in pairs(sums) do
    local h = S / nseq
    local n = h:size(1)
    local diag_mean = 0
    for i = 1, n do diag_mean = diag_mean + h:flat_get((i - 1) * n + i) end
    diag_mean = diag_mean / n
    H[key] = h + eye(n) * (damp * diag_mean)
  end
  return H, nseq
end

--- Autoregressive self-generated calibration (§4.5): n_seqs sequences of len tokens in batches of
-- opts.batch (8): first token uniform in [0, V), then each next token sampled from
-- softmax(softcap(logits)/temperature) of the full prefix (Gumbel-max sampling). The global RNG is
-- seeded with `seed` and restored afterwards. Returns a list of i64 [b, len] batches.
function quant.generate_calibration(model, n_seqs, len, temperature, seed, opts)
  temperature = temperature or 0.8
  local batch = opts and opts.batch or 8
  local V = model.cfg.vocab_size
  local cap = model.cfg.logit_softcap
  local saved = pt.get_rng_state()
  if seed then pt.manual_seed(seed) end
  local out = {}
  local ok, err = pcall(pt.no_grad, function()
    local done = 0
    while done < n_seqs do
      local b = math.min(batch, n_seqs - done)
      local toks = pt.randint(0, V, { b, 1 })
      for t = 1, len - 1 do
        local z = model:logits(toks):reshape { b, t, V }:select(2, t)
        if cap and cap > 0 then z = (z / cap):tanh() * cap end
        z = z / temperature
        local u = pt.rand({ b, V }):clamp(1e-20, 1.0)
        local g = -((-(u:log())):log())
        local nxt = (z + g):argmax(2):reshape { b, 1 }
        toks = pt.cat({ toks, nxt }, 2)
      end
      out[#out + 1] = toks
      done = done + b
    end
  end)
  pt.set_rng_state(saved)
  if not ok then error(err, 0) end
  return out
end

-- ------------------------------------------------------------------------------------------------
-- Pruning
-- ------------------------------------------------------------------------------------------------

--- §3.9 magnitude pruning, in place: over every 2-D parameter with > 65,536 elements, threshold =
-- the value at index ⌊frac·n⌋ of the sorted random sample (pt.randperm, n = min(1e6, N)) of |w|;
-- entries with |w| < threshold become 0. Returns {threshold, zeroed, total, fraction, sample}.
function quant.magnitude_prune(model, frac, opts)
  opts = opts or {}
  local max_sample = opts.max_sample or 1000000
  local params, flats, N = {}, {}, 0
  for name, p in model:named_parameters() do
    if p:dim() == 2 and p:numel() > quant.SMALL_NUMEL then
      params[#params + 1] = { name, p }
      flats[#flats + 1] = p:detach():abs():reshape { -1 }
      N = N + p:numel()
    end
  end
  if N == 0 then return { threshold = 0, zeroed = 0, total = 0, fraction = 0 } end
  local res
  pt.no_grad(function()
    local all = pt.cat(flats, 1)
    local n = math.min(max_sample, N)
    local idx = pt.randperm(N):narrow(1, 1, n)
    local sample = all:index_select(1, idx):sort()
    local k = math.floor(frac * n)
    if k >= n then k = n - 1 end
    local thr = sample:flat_get(k + 1)
    local zeroed = 0
    for _, np in ipairs(params) do
      local p = np[2]
      local mask = p:abs():lt(thr)
      zeroed = zeroed + mask:to("f32"):sum():item()
      p:copy_(pt.where(mask, 0, p))
    end
    res = { threshold = thr, zeroed = zeroed, total = N, fraction = zeroed / N, sample_index = opts.keep_sample and idx or nil }
  end)
  return res
end

--- Selective ±1 pruning (§4.5) on quantize_model results, in place: entries with |q| = 1 are zeroed
-- in order of increasing scale² (ties: tensor order, then position) — the fewest that bring
-- size_fn(results) to ≤ budget, found by bisection. size_fn(results) -> bytes (e.g. the packed
-- artifact size). Returns {pruned, candidates, size, already_fits}.
function quant.prune_ones(results, budget, size_fn)
  local size0 = size_fn(results)
  if size0 <= budget then return { pruned = 0, size = size0, already_fits = true } end
  local rows = {}
  local orig = {}
  for ti, r in ipairs(results) do
    if r.q and r.scheme ~= "int8_per_tensor" then
      orig[ti] = r.q:clone()
      local qf = r.q:to("f32")
      local cnt = qf:abs():eq(1):to("f32"):sum(2)
      local s = r.scale:to("f32")
      for ri = 1, r.q:size(1) do
        local c = cnt:flat_get(ri)
        if c > 0 then
          local sv = s:flat_get(ri)
          rows[#rows + 1] = { cost = sv * sv, t = ti, row = ri, count = c }
        end
      end
    end
  end
  table.sort(rows, function(a, b)
    if a.cost ~= b.cost then return a.cost < b.cost end
    if a.t ~= b.t then return a.t < b.t end
    return a.row < b.row
  end)
  local total = 0
  for _, r in ipairs(rows) do total = total + r.count end
  local function apply(n) -- restore, then zero the first n candidates
    for ti, q in pairs(orig) do results[ti].q = q:clone() end
    local left = n
    for _, rw in ipairs(rows) do
      if left <= 0 then break end
      local row = results[rw.t].q[rw.row]
      if rw.count <= left then
        row:copy_(pt.where(row:to("f32"):abs():eq(1), 0, row))
        left = left - rw.count
      else
        local C = row:numel()
        for j = 1, C do
          if left <= 0 then break end
          local v = row:flat_get(j)
          if v == 1 or v == -1 then row:flat_set(j, 0); left = left - 1 end
        end
      end
    end
  end
  local lo, hi = 0, total -- invariant: hi fits (or is everything), lo does not
  apply(hi)
  local size_hi = size_fn(results)
  if size_hi > budget then
    return { pruned = total, candidates = total, size = size_hi, fits = false }
  end
  while hi - lo > 1 do
    local mid = (lo + hi) // 2
    apply(mid)
    if size_fn(results) <= budget then hi = mid else lo = mid end
  end
  apply(hi)
  return { pruned = hi, candidates = total, size = size_fn(results), fits = true }
end

return quant
