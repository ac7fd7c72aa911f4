--- proteus.nn — modules and the GPT builder of the parameter-golf family.
--
--   local nn = require "proteus.nn"
--   local model = nn.GPT(config)                 -- config keys: see nn.gpt_defaults
--   local loss = model:forward(x, y)             -- x, y: i64 [B, T] token ids; mean CE (softcapped)
--   for name, p in model:named_parameters() do ... end   -- PyTorch state-dict names
--
-- One model class covers the baseline (spec §2.1), PROTEUS v9 (§3.2), #1539 (§4.2) and #598 (§5.2)
-- through config switches; every switch is named after the submission's environment variable in
-- lower case where one exists. Modules follow torch.nn: `forward` plus `parameters`/
-- `named_parameters`; the autograd tape does the backward.
local pt = require "proteus"
local F = require "proteus.functional"

local nn = {}

-- ------------------------------------------------------------------------------------------------
-- Parameter registry (ordered, named)
-- ------------------------------------------------------------------------------------------------
local Params = {}
Params.__index = Params

local function new_params()
  return setmetatable({ names = {}, by_name = {}, buffers = {} }, Params)
end

function Params:add(name, t, opts)
  assert(not self.by_name[name], "duplicate parameter " .. name)
  if not (opts and opts.buffer) then t.requires_grad = true end
  self.names[#self.names + 1] = name
  self.by_name[name] = t
  if opts and opts.buffer then self.buffers[name] = true end
  return t
end

-- ------------------------------------------------------------------------------------------------
-- Config
-- ------------------------------------------------------------------------------------------------

--- Every knob of the GPT family with the baseline's values (spec §2.1).
nn.gpt_defaults = {
  vocab_size = 1024,
  num_layers = 9,
  model_dim = 512,
  num_heads = 8,
  num_kv_heads = 4,
  mlp_mult = 2,            -- hidden = mlp_mult * model_dim unless mlp_hidden is set
  mlp_hidden = nil,
  mlp_act = "relu2",       -- relu2 | leaky_relu2 (#1539) | star_relu (#598)
  tie_embeddings = true,
  tied_embed_init_std = 0.005,
  rope_base = 10000,
  rope_dims = nil,         -- nil = all head dims; 16 in #598/#1539
  rope_train_seq_len = nil, -- nil = no NTK scaling (baseline); 1024 in PROTEUS/#598/#1539
  logit_softcap = 30,
  fused_head_ce = false,   -- forward(x, y) mean loss through F.linear_softcap_cross_entropy (LM head + CE in row
                           -- chunks, no [B*T, V] logits); logits() and reduction = "none" stay unfused
  fused_norms = true,      -- the norms' prologues fused (issue 11): resid mix + norm and residual add + norm
                           -- through F.mix_rms_norm, q/k norm + rotary + q gain through F.rms_norm_rotary;
                           -- on the CPU the same bits as false (the unfused ops), loss and gradients
  compute_dtype = "f32",   -- "bf16": the matmuls (every linear, the tied head, the MLP's up projection + relu²)
                           -- and attention take bf16 operands (weights and activations cast at each use, as
                           -- the records' bf16 autocast with fp32 weights) and give f32 back, except the MLP's
                           -- relu² output, which its down projection reads in bf16; norms, rotary, XSA, the
                           -- residual stream, CE and the optimizers stay f32. On CUDA this is the tensor-core
                           -- path (flash attention is bf16 only); on the CPU it is slower than f32 (bf16 is
                           -- widened to f32 and rounded back) and exists to test the bf16 model code.
                           -- fused_head_ce: bf16 head GEMMs, the logits widened to f32 for the CE, as unfused.
  fused_mlp = true,        -- MLP up projection + relu² / leaky relu² as one op (F.linear_relu2, issue 11): on the
                           -- CPU the same bits as false; star_relu (#598) stays unfused
  qk_gain_init = 1.5,
  rms_eps = F.RMS_EPS,     -- FLT_EPSILON (2^-23), as F.rms_norm(eps=None)
  init = "default",        -- default (PyTorch Linear init) | orthogonal (PROTEUS/#598/#1539, §3.3)
  depth_scale = false,     -- PROTEUS: residual branches × bf16(1/sqrt(i+1))
  ln_scale = false,        -- #598/#1539: normalised inputs × 1/sqrt(i+1)
  skip_mode = "plain",     -- plain (w ⊙ pop) | gated (#598: sigmoid gate G, scale S) | sigmoid (#1539 SIGMOID_SKIPS)
  bigram_vocab_size = 0,   -- BigramHash buckets (2048 in PROTEUS/#598), 0 = off
  bigram_dim = 128,
  smear_gate = false,
  xsa_layers = {},         -- physical layer indices (0-based, as the spec) with XSA
  ve_dim = 0,              -- value embeddings (#598: 128, #1539: 44), 0 = off
  ve_layers = {},
  ve_init_std = 0.01,
  parallel_start = nil,    -- #1539: physical layer from which two residual lanes run
  recurrence_layers = nil, -- #1539: {3,4,5} repeated once when recurrence is on
  recurrence = false,      -- switch the virtual layer list on (the trainer sets it at a step)
}

local function copy(t)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  return r
end

-- Levenshtein-nearest known key (one implementation, in proteus.config)
local nearest = require("proteus.config").nearest
nn.nearest = nearest

--- Validates a GPT config; fills defaults. Errors name the key and say what to do.
function nn.gpt_config(cfg)
  local c = copy(nn.gpt_defaults)
  local keys = {}
  for k in pairs(nn.gpt_defaults) do keys[#keys + 1] = k end
  table.sort(keys)
  for k, v in pairs(cfg or {}) do
    if nn.gpt_defaults[k] == nil and not (k == "mlp_hidden" or k == "rope_dims" or k == "rope_train_seq_len"
          or k == "parallel_start" or k == "recurrence_layers") then
      error(string.format("GPT config: unknown key '%s' (did you mean '%s'?)", tostring(k), nearest(tostring(k), keys)), 2)
    end
    c[k] = v
  end
  local function need(cond, msg) if not cond then error("GPT config: " .. msg, 3) end end
  need(c.model_dim % c.num_heads == 0,
    string.format("num_heads=%d does not divide model_dim=%d", c.num_heads, c.model_dim))
  need(c.num_heads % c.num_kv_heads == 0,
    string.format("num_kv_heads=%d does not divide num_heads=%d", c.num_kv_heads, c.num_heads))
  c.head_dim = c.model_dim // c.num_heads
  c.rope_dims = c.rope_dims or c.head_dim
  need(c.rope_dims % 2 == 0 and c.rope_dims <= c.head_dim,
    string.format("rope_dims=%d must be even and at most the head dim %d", c.rope_dims, c.head_dim))
  c.mlp_hidden = c.mlp_hidden or math.floor(c.mlp_mult * c.model_dim)
  need(({ relu2 = 1, leaky_relu2 = 1, star_relu = 1 })[c.mlp_act],
    "mlp_act='" .. tostring(c.mlp_act) .. "' (expected relu2, leaky_relu2 or star_relu)")
  need(({ plain = 1, gated = 1, sigmoid = 1 })[c.skip_mode],
    "skip_mode='" .. tostring(c.skip_mode) .. "' (expected plain, gated or sigmoid)")
  need(c.tie_embeddings == true,
    "tie_embeddings=false is not implemented (every reference submission ties the LM head to tok_emb)")
  need(({ default = 1, orthogonal = 1 })[c.init], "init='" .. tostring(c.init) .. "' (expected default or orthogonal)")
  need(type(c.fused_head_ce) == "boolean",
    "fused_head_ce=" .. tostring(c.fused_head_ce) .. " (expected true or false)")
  need(type(c.fused_norms) == "boolean", "fused_norms=" .. tostring(c.fused_norms) .. " (expected true or false)")
  need(type(c.fused_mlp) == "boolean", "fused_mlp=" .. tostring(c.fused_mlp) .. " (expected true or false)")
  need(c.compute_dtype == "f32" or c.compute_dtype == "bf16",
    "compute_dtype='" .. tostring(c.compute_dtype) .. "' (expected \"f32\" or \"bf16\")")
  return c
end

-- ------------------------------------------------------------------------------------------------
-- Initialisation helpers
-- ------------------------------------------------------------------------------------------------
local function uniform(shape, bound)
  return pt.rand(shape) * (2 * bound) - bound
end

local function orthogonal(rows, cols)
  -- torch.nn.init.orthogonal_: QR of a normal matrix of the larger orientation, sign-corrected by diag(R)
  local flip = rows < cols
  local a = flip and pt.randn({ cols, rows }) or pt.randn({ rows, cols })
  local q, r = pt.qr(a)
  local d = pt.zeros({ r:size(2) })
  for i = 1, r:size(2) do d:flat_set(i, r:get(i, i) >= 0 and 1 or -1) end
  q = q * d
  if flip then q = q:transpose(1, 2):contiguous() end
  return q
end
nn.orthogonal = orthogonal

local function bf16_round(x)
  return pt.tensor({ x }, "f64"):to("bf16"):to("f64"):item()
end

-- ------------------------------------------------------------------------------------------------
-- The GPT
-- ------------------------------------------------------------------------------------------------
local GPT = {}
GPT.__index = GPT

local function contains(list, v)
  for _, x in ipairs(list or {}) do if x == v then return true end end
  return false
end

--- Builds a GPT from a config table (nn.gpt_defaults lists the keys).
function nn.GPT(cfg)
  local c = nn.gpt_config(cfg)
  local self = setmetatable({ cfg = c, params = new_params() }, GPT)
  local P = self.params
  local d, V, L = c.model_dim, c.vocab_size, c.num_layers
  local kvd = c.num_kv_heads * c.head_dim
  local ortho = c.init == "orthogonal"

  -- a Linear weight [out, in]: PyTorch default U(±1/sqrt(in)); orthogonal rule of §3.3 when both dims ≥ 64
  -- zero: flagged zero-init (kept); ctor_zero: zero in the constructor, overwritten by the orthogonal pass
  local function linear(name, out_dim, in_dim, zero, ctor_zero)
    local w
    local eligible = ortho and out_dim >= 64 and in_dim >= 64
    if zero or (ctor_zero and not eligible) then
      w = pt.zeros({ out_dim, in_dim })
    elseif eligible then
      w = orthogonal(out_dim, in_dim)
      if name:sub(-#".proj.weight") == ".proj.weight" then w = w * (1 / math.sqrt(2 * L)) end
    else
      w = uniform({ out_dim, in_dim }, 1 / math.sqrt(in_dim))
    end
    return P:add(name, w)
  end

  P:add("tok_emb.weight", pt.randn({ V, d }) * c.tied_embed_init_std)
  if c.bigram_vocab_size > 0 then
    P:add("bigram.embed.weight", pt.zeros({ c.bigram_vocab_size, c.bigram_dim }))
    linear("bigram.proj.weight", d, c.bigram_dim, false, true)
    P:add("bigram.scale", pt.full({}, 0.05))
  end
  if c.smear_gate then P:add("smear.gate", pt.zeros({ d })) end
  if c.ve_dim > 0 then
    P:add("ve_shared.embed.weight", pt.randn({ V, c.ve_dim }) * c.ve_init_std)
    linear("ve_shared.proj.weight", kvd, c.ve_dim, false, true)
    P:add("ve_shared.scale", pt.full({}, 0.1))
    P:add("ve_layer_scales", pt.ones({ #c.ve_layers }))
  end
  self.n_enc = L // 2
  self.n_dec = L - self.n_enc
  self.n_skip = math.min(self.n_enc, self.n_dec)
  P:add("skip_weights", pt.full({ self.n_skip, d }, c.skip_mode == "sigmoid" and 2.2 or 1.0))
  if c.skip_mode == "gated" then P:add("skip_gates", pt.zeros({ self.n_skip, d })) end
  self.depth_scales = {}
  for i = 0, L - 1 do
    local b = "blocks." .. i .. "."
    P:add(b .. "attn_scale", pt.ones({ d }))
    P:add(b .. "mlp_scale", pt.ones({ d }))
    local mix = pt.zeros({ 2, d })
    pt.no_grad(function() mix[1]:fill_(1) end)
    P:add(b .. "resid_mix", mix)
    linear(b .. "attn.c_q.weight", d, d)
    linear(b .. "attn.c_k.weight", kvd, d)
    linear(b .. "attn.c_v.weight", kvd, d)
    linear(b .. "attn.proj.weight", d, d, true)
    P:add(b .. "attn.q_gain", pt.full({ c.num_heads }, c.qk_gain_init))
    linear(b .. "mlp.fc.weight", c.mlp_hidden, d)
    linear(b .. "mlp.proj.weight", d, c.mlp_hidden, true)
    if c.mlp_act == "star_relu" then
      P:add(b .. "mlp.scale", pt.ones({ c.mlp_hidden }))
      P:add(b .. "mlp.bias", pt.zeros({ c.mlp_hidden }))
    end
    self.depth_scales[i] = c.depth_scale and bf16_round(1 / math.sqrt(i + 1)) or 1.0
  end
  if c.parallel_start then P:add("lane_merge", pt.full({}, 0.5)) end
  return self
end

--- Iterator over (name, tensor) in registration order (the state-dict order).
function GPT:named_parameters()
  local i = 0
  local P = self.params
  return function()
    i = i + 1
    local n = P.names[i]
    if n then return n, P.by_name[n] end
  end
end

function GPT:parameters()
  local out = {}
  for _, p in self:named_parameters() do out[#out + 1] = p end
  return out
end

function GPT:num_params()
  local n = 0
  for _, p in self:named_parameters() do n = n + p:numel() end
  return n
end

function GPT:get(name) return self.params.by_name[name] end

--- Moves every parameter to `device` ("cpu", "cuda", "cuda:1") and/or casts it (`dtype`), in place:
-- the model keeps its names, new leaf tensors require grad. Returns the model.
function GPT:to(device, dtype)
  local P = self.params
  for _, name in ipairs(P.names) do
    local t = P.by_name[name]
    local moved = pt.no_grad(function()
      local x = dtype and t:to(dtype) or t
      return x:to(device):detach():clone()
    end)
    if not P.buffers[name] then moved.requires_grad = true end
    P.by_name[name] = moved
  end
  self.device = device
  return self
end

function GPT:zero_grad()
  for _, p in self:named_parameters() do p.grad = nil end
end

--- The virtual layer list (physical indices) in use.
function GPT:layers()
  local c = self.cfg
  local v = {}
  for i = 0, c.num_layers - 1 do v[#v + 1] = i end
  if c.recurrence and c.recurrence_layers then
    local last = c.recurrence_layers[#c.recurrence_layers]
    local out = {}
    for _, i in ipairs(v) do
      out[#out + 1] = i
      if i == last then for _, r in ipairs(c.recurrence_layers) do out[#out + 1] = r end end
    end
    v = out
  end
  return v
end

local function lin(x, w) -- x [..., in] · wᵀ
  return x:matmul(w:transpose(1, 2))
end

-- x · wᵀ in the model's compute dtype: with compute_dtype = "bf16" both operands are cast to bf16 (a
-- no-op for a bf16 x) and the product comes back in w's dtype; else lin itself
local function clin(c, x, w)
  if c.compute_dtype ~= "bf16" then return lin(x, w) end
  return lin(x:to("bf16"), w:to("bf16")):to(w:dtype())
end

--- x [..., in] · Wᵀ for the named weight. When `model.linear_hook` is set, it is called first with
-- (name, x): quantization collects its Hessians (XᵀX of every linear's input) through it.
function GPT:linear(name, x)
  if self.linear_hook then self.linear_hook(name, x) end
  return clin(self.cfg, x, self.params.by_name[name])
end

-- attention sublayer of physical block i on normalised input h [B,T,d]; lora = optional deltas
function GPT:attn(i, h, tokens, lora)
  local c, P = self.cfg, self.params.by_name
  local b = "blocks." .. i .. "."
  local B, T = h:size(1), h:size(2)
  local H, Hkv, D = c.num_heads, c.num_kv_heads, c.head_dim
  local q = self:linear(b .. "attn.c_q.weight", h)
  local k = self:linear(b .. "attn.c_k.weight", h)
  local v = self:linear(b .. "attn.c_v.weight", h)
  if lora and lora.q then q = q + lora.q(i, h) end
  if lora and lora.v then v = v + lora.v(i, h) end
  if c.ve_dim > 0 and contains(c.ve_layers, i) then
    local idx
    for j, l in ipairs(c.ve_layers) do if l == i then idx = j end end
    local ve = self:linear("ve_shared.proj.weight", pt.embedding(P["ve_shared.embed.weight"], tokens))
    local s = P["ve_shared.scale"] * P["ve_layer_scales"]:narrow(1, idx, 1):reshape {}
    v = v + ve * s
  end
  local rope = { dims = c.rope_dims, base = c.rope_base, train_len = c.rope_train_seq_len or false }
  if c.fused_norms then -- rms_norm → rotary → × q_gain in one op each (same bits on the CPU)
    q = F.rms_norm_rotary(q:reshape { B, T, H, D }, rope, P[b .. "attn.q_gain"], c.rms_eps)
    k = F.rms_norm_rotary(k:reshape { B, T, Hkv, D }, rope, nil, c.rms_eps)
  else
    q = F.rms_norm(q:reshape { B, T, H, D }, c.rms_eps)
    k = F.rms_norm(k:reshape { B, T, Hkv, D }, c.rms_eps)
    q = F.rotary(q, rope)
    k = F.rotary(k, rope)
    q = q * P[b .. "attn.q_gain"]:reshape { H, 1 }
  end
  v = v:reshape { B, T, Hkv, D }
  local y
  if c.compute_dtype == "bf16" then -- bf16 operands (CUDA's flash kernels), f32 result
    y = F.attention(q:to("bf16"), k:to("bf16"), v:to("bf16")):to(v:dtype())
  else
    y = F.attention(q, k, v)
  end
  if contains(c.xsa_layers, i) then y = F.xsa(y, v) end
  return self:linear(b .. "attn.proj.weight", y:reshape { B, T, c.model_dim })
end

function GPT:mlp(i, h)
  local c, P = self.cfg, self.params.by_name
  local b = "blocks." .. i .. "."
  local a
  if c.fused_mlp and c.mlp_act ~= "star_relu" then -- up projection + activation as one op (same bits on the CPU)
    local name = b .. "mlp.fc.weight"
    if self.linear_hook then self.linear_hook(name, h) end
    local x, w = h, P[name]
    if c.compute_dtype == "bf16" then x, w = h:to("bf16"), w:to("bf16") end -- a stays bf16 for the down projection
    a = c.mlp_act == "relu2" and F.linear_relu2(x, w) or F.linear_leaky_relu2(x, w, 0.5)
  else
    a = self:linear(b .. "mlp.fc.weight", h)
    if c.mlp_act == "relu2" then
      a = F.relu2(a)
    elseif c.mlp_act == "leaky_relu2" then
      a = F.leaky_relu2(a, 0.5)
    else
      a = F.star_relu(a, P[b .. "mlp.scale"], P[b .. "mlp.bias"])
    end
  end
  return self:linear(b .. "mlp.proj.weight", a)
end

function GPT:block(i, x, x0, tokens, lora)
  local c, P = self.cfg, self.params.by_name
  local b = "blocks." .. i .. "."
  local mix = P[b .. "resid_mix"]
  local lam = c.ln_scale and 1 / math.sqrt(i + 1) or nil
  local ds = self.depth_scales[i]
  if c.fused_norms then -- each residual update fused with the norm that reads it (same bits on the CPU)
    local y, h = F.mix_rms_norm(x, x0, mix[1], mix[2], c.rms_eps, lam)
    local y2, h2 = F.mix_rms_norm(y, self:attn(i, h, tokens, lora), nil, P[b .. "attn_scale"], c.rms_eps, lam, ds)
    local m = self:mlp(i, h2) * P[b .. "mlp_scale"]
    if ds ~= 1 then m = m * ds end
    return y2 + m
  end
  local y = x * mix[1] + x0 * mix[2]
  local h = F.rms_norm(y, c.rms_eps, lam)
  local att = self:attn(i, h, tokens, lora) * P[b .. "attn_scale"]
  if ds ~= 1 then att = att * ds end
  y = y + att
  local m = self:mlp(i, F.rms_norm(y, c.rms_eps, lam)) * P[b .. "mlp_scale"]
  if ds ~= 1 then m = m * ds end
  return y + m
end

local function skip_add(self, j, x, s)
  local c, P = self.cfg, self.params.by_name
  local w = P["skip_weights"][j + 1]
  if c.skip_mode == "plain" then
    return x + s * w
  elseif c.skip_mode == "sigmoid" then
    return x + s * w:sigmoid()
  else -- gated (#598): g⊙x + (1−g)⊙(S⊙s)
    local g = P["skip_gates"][j + 1]:sigmoid()
    return x * g + (s * w) * (1 - g)
  end
end

--- Final hidden states [B,T,d] for tokens [B,T] (i64). lora: optional TTT deltas (proteus.ttt).
function GPT:hidden(tokens, lora)
  local c, P = self.cfg, self.params.by_name
  local x = pt.embedding(P["tok_emb.weight"], tokens)
  if c.bigram_vocab_size > 0 then
    local buckets = F.bigram_hash(tokens, c.bigram_vocab_size)
    local bg = self:linear("bigram.proj.weight", pt.embedding(P["bigram.embed.weight"], buckets))
    x = x + bg * P["bigram.scale"]
  end
  x = F.rms_norm(x, c.rms_eps)
  if c.smear_gate then x = F.smear_gate(x, P["smear.gate"]) end
  local x0 = x
  local virt = self:layers()
  local n_enc = #virt // 2
  local stack = {}
  for v = 1, n_enc do
    x = self:block(virt[v], x, x0, tokens, lora)
    stack[#stack + 1] = x
    if lora and lora.block_bias then x = x + lora.block_bias(virt[v]) end
  end
  local lane0, lane1, parallel
  for j = 0, #virt - n_enc - 1 do
    local p = virt[n_enc + j + 1]
    if #stack > 0 and j < self.n_skip then
      local s = table.remove(stack)
      if parallel then lane0 = skip_add(self, j, lane0, s) else x = skip_add(self, j, x, s) end
    end
    if c.parallel_start and p >= c.parallel_start and not parallel then
      lane0, lane1, parallel = x, x, true
    end
    if parallel then
      local b = "blocks." .. p .. "."
      local lam = c.ln_scale and 1 / math.sqrt(p + 1) or nil
      local mix = P[b .. "resid_mix"]
      local a_in, h
      if c.fused_norms then
        a_in, h = F.mix_rms_norm(lane0, x0, mix[1], mix[2], c.rms_eps, lam)
      else
        a_in = lane0 * mix[1] + x0 * mix[2]
        h = F.rms_norm(a_in, c.rms_eps, lam)
      end
      lane0 = a_in + self:attn(p, h, tokens, lora) * P[b .. "attn_scale"]
      lane1 = lane1 + self:mlp(p, F.rms_norm(lane1, c.rms_eps, lam)) * P[b .. "mlp_scale"]
    else
      x = self:block(p, x, x0, tokens, lora)
    end
    if lora and lora.block_bias then x = x + lora.block_bias(p) end
  end
  if parallel then
    local m = P["lane_merge"]
    x = lane0 * m + lane1 * (1 - m)
  end
  return F.rms_norm(x, c.rms_eps)
end

--- Logits before the softcap, [B*T, V].
function GPT:logits(tokens, lora)
  local h = self:hidden(tokens, lora)
  local B, T = tokens:size(1), tokens:size(2)
  h = h:reshape { B * T, self.cfg.model_dim }
  local z = clin(self.cfg, h, self.params.by_name["tok_emb.weight"])
  if lora and lora.head then z = z + lora.head(h) end
  return z
end

--- Mean softcapped cross-entropy over all positions (targets given), or the logits [B*T, V].
-- With cfg.fused_head_ce the mean loss goes through F.linear_softcap_cross_entropy (same value; the
-- [B*T, V] logits are never materialised); reduction = "none" and the logits keep the unfused path.
function GPT:forward(tokens, targets, opts)
  local lora = opts and opts.lora
  local reduction = opts and opts.reduction or "mean"
  if targets and self.cfg.fused_head_ce and reduction == "mean" then
    if lora and lora.head then
      error("GPT:forward: fused_head_ce=true cannot add a LoRA head (lora.head) to the fused LM head; "
        .. "set fused_head_ce=false for this model", 2)
    end
    local h = self:hidden(tokens, lora)
    h = h:reshape { tokens:size(1) * tokens:size(2), self.cfg.model_dim }
    local w = self.params.by_name["tok_emb.weight"]
    if self.cfg.compute_dtype == "bf16" then h, w = h:to("bf16"), w:to("bf16") end -- bf16 GEMMs, f32 CE
    return F.linear_softcap_cross_entropy(h, w, targets:reshape { -1 },
      { softcap = self.cfg.logit_softcap, reduction = "mean" })
  end
  local z = self:logits(tokens, lora)
  if not targets then return z end
  return F.softcap_cross_entropy(z, targets:reshape { -1 },
    { softcap = self.cfg.logit_softcap, reduction = reduction })
end

nn.GPTClass = GPT
return nn
