-- tests/reference/fused_ops_dump.lua — writes the inputs, outputs, upstream gradients and input gradients
-- of every fused op (proteus.functional, f32) as JSON, for tests/reference/fused_ops_ref.py to recompute
-- with PyTorch. Run by that script:  build/proteus tests/reference/fused_ops_dump.lua OUT.json
--
-- JSON layout: {"cases": [{"name", "op", "params": {...}, "inputs": {NAME: T}, "output": T,
--   "grad_out": T, "grads": {NAME: T}}]} with T = {"shape": [...], "dtype": "f32"|"i64", "data": [flat,
--   row-major]}. Float values are written with 9 significant digits (exact for f32).
local pt = require "proteus"
local F = require "proteus.functional"

local out_path = arg and arg[1]
if not out_path then
  io.stderr:write("usage: proteus tests/reference/fused_ops_dump.lua OUT.json\n")
  os.exit(2)
end

math.randomseed(20240520)
local function randn_table(shape, scale, d)
  d = d or 1
  local t = {}
  for i = 1, shape[d] do
    if d == #shape then t[i] = (math.random() * 2 - 1) * (scale or 1)
    else t[i] = randn_table(shape, scale, d + 1) end
  end
  return t
end
local function rand(shape, scale, grad)
  return pt.tensor(randn_table(shape, scale), { dtype = "f32", requires_grad = grad ~= false })
end

local function flatten(v, acc)
  if type(v) == "table" then
    for i = 1, #v do flatten(v[i], acc) end
  else
    acc[#acc + 1] = v
  end
  return acc
end

local function enc_tensor(t)
  local dt = t:dtype()
  local vals = t:dim() == 0 and { t:item() } or flatten(t:totable(), {})
  local parts = {}
  for i, v in ipairs(vals) do
    parts[i] = (dt == "f32" or dt == "f64") and string.format("%.9g", v) or string.format("%d", math.tointeger(v))
  end
  return string.format('{"shape": [%s], "dtype": "%s", "data": [%s]}', table.concat(t:shape(), ", "), dt,
    table.concat(parts, ", "))
end

local function enc_map(m, order)
  local parts = {}
  for _, k in ipairs(order) do
    if m[k] then parts[#parts + 1] = string.format('"%s": %s', k, enc_tensor(m[k])) end
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

local function enc_params(p)
  local parts = {}
  for k, v in pairs(p) do
    local s = type(v) == "string" and ('"' .. v .. '"') or (type(v) == "boolean" and tostring(v))
      or string.format("%.17g", v)
    parts[#parts + 1] = string.format('"%s": %s', k, s)
  end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end

local cases = {}
-- runs fn(inputs...) -> output, backward with a random upstream gradient, records everything
local function case(name, op, params, names, inputs, fn, differentiable)
  local y = fn(table.unpack(inputs))
  local g
  local grads = {}
  if differentiable ~= false then
    g = y:dim() == 0 and pt.tensor(0.75, "f32") or rand(y:shape(), 1, false)
    y:backward(g)
    for i, n in ipairs(names) do
      if inputs[i].requires_grad then grads[n] = inputs[i].grad end
    end
  end
  local ins = {}
  for i, n in ipairs(names) do ins[n] = inputs[i] end
  cases[#cases + 1] = string.format('{"name": "%s", "op": "%s", "params": %s, "inputs": %s, "output": %s, '
    .. '"grad_out": %s, "grads": %s}', name, op, enc_params(params), enc_map(ins, names), enc_tensor(y:detach()),
    g and enc_tensor(g) or "null", enc_map(grads, names))
end

case("rms_norm", "rms_norm", { eps = F.RMS_EPS, scale = 1 }, { "x" }, { rand({ 4, 8, 32 }, 2) },
  function(x) return F.rms_norm(x) end)
case("rms_norm_lnscale", "rms_norm", { eps = F.RMS_EPS, scale = 1 / math.sqrt(3) }, { "x" }, { rand({ 4, 8, 32 }) },
  function(x) return F.rms_norm(x, nil, 1 / math.sqrt(3)) end)
case("rotary_partial_ntk", "rotary", { dims = 8, base = 10000, train_len = 64, offset = 0 }, { "x" },
  { rand({ 2, 80, 4, 16 }) }, function(x) return F.rotary(x, { dims = 8, base = 10000, train_len = 64 }) end)
case("rotary_full_offset", "rotary", { dims = 16, base = 50000, train_len = 1024, offset = 3 }, { "x" },
  { rand({ 2, 80, 4, 16 }) }, function(x) return F.rotary(x, { base = 50000, offset = 3 }) end)
case("attention_gqa", "attention", {}, { "q", "k", "v" },
  { rand({ 2, 80, 4, 16 }, 2), rand({ 2, 80, 2, 16 }, 2), rand({ 2, 80, 2, 16 }) },
  function(q, k, v) return F.attention(q, k, v) end)
case("attention_mha", "attention", {}, { "q", "k", "v" },
  { rand({ 1, 33, 2, 8 }, 2), rand({ 1, 33, 2, 8 }, 2), rand({ 1, 33, 2, 8 }) },
  function(q, k, v) return F.attention(q, k, v) end)
case("xsa", "xsa", {}, { "y", "v" }, { rand({ 2, 10, 4, 16 }), rand({ 2, 10, 2, 16 }) },
  function(y, v) return F.xsa(y, v) end)
case("relu2", "relu2", {}, { "x" }, { rand({ 6, 32 }, 2) }, function(x) return F.relu2(x) end)
case("leaky_relu2", "leaky_relu2", { slope = 0.5 }, { "x" }, { rand({ 6, 32 }, 2) },
  function(x) return F.leaky_relu2(x, 0.5) end)
case("star_relu", "star_relu", {}, { "x", "scale", "bias" }, { rand({ 6, 32 }, 2), rand({ 32 }), rand({ 32 }) },
  function(x, s, b) return F.star_relu(x, s, b) end)
local targets = {}
for b = 1, 2 do
  targets[b] = {}
  for t = 1, 20 do targets[b][t] = math.random(0, 63) end
end
local tg = pt.tensor(targets, "i64")
case("softcap_ce_mean", "softcap_cross_entropy", { softcap = 30, reduction = "mean" }, { "logits", "targets" },
  { rand({ 2, 20, 64 }, 40), tg }, function(x, t) return F.softcap_cross_entropy(x, t) end)
case("softcap_ce_none", "softcap_cross_entropy", { softcap = 30, reduction = "none" }, { "logits", "targets" },
  { rand({ 2, 20, 64 }, 40), tg }, function(x, t) return F.softcap_cross_entropy(x, t, { reduction = "none" }) end)
local toks = {}
for b = 1, 2 do
  toks[b] = {}
  for t = 1, 30 do toks[b][t] = (t % 3 == 0) and math.random(60000, 200000) or math.random(0, 8191) end
end
case("bigram_hash", "bigram_hash", { buckets = 2048 }, { "tokens" }, { pt.tensor(toks, "i64") },
  function(t) return F.bigram_hash(t, 2048) end, false)
case("smear_gate", "smear_gate", {}, { "x", "gate" }, { rand({ 2, 10, 32 }), rand({ 32 }, 3) },
  function(x, g) return F.smear_gate(x, g) end)
case("lora", "lora", {}, { "x", "A", "B" }, { rand({ 2, 10, 32 }), rand({ 2, 4, 32 }), rand({ 2, 24, 4 }) },
  function(x, a, b) return F.lora(x, a, b) end)

local f = assert(io.open(out_path, "w"))
f:write('{"cases": [\n', table.concat(cases, ",\n"), "\n]}\n")
f:close()
print(string.format("wrote %d cases to %s", #cases, out_path))
