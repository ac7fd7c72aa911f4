--- tests/lua/test_param_counts.lua — exact parameter counts of the GPT family built by nn.GPT.
--
--   build/proteus tests/run.lua tests/lua/test_param_counts.lua
--
-- Builds every config of tests/lua/gpt_configs.lua at full size with nn.GPT (init = "default": the
-- count does not depend on the init, and the PyTorch-default init avoids the QR cost) and asserts the
-- counts of the submissions' logs (spec parameter-golf.md): baseline 17,059,912 (§2.1), PROTEUS v9
-- 26,829,913 (§3.1, with and without XSA), #1539 36,311,132 (§4, recurrence on and off), #598
-- 27,030,108 (§5.1). Also checks the breakdowns the spec states and the shapes of the tensors whose
-- size depends on a switch. The PyTorch side of the same counts: tests/reference/param_counts.py.
local nn = require "proteus.nn"
local G = dofile((debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")) .. "gpt_configs.lua")

local function build(name)
  local cfg = G.with(G.configs[name], { init = "default" })
  return nn.GPT(cfg)
end

local function sum_where(model, pred)
  local n = 0
  for name, p in model:named_parameters() do
    if pred(name) then n = n + p:numel() end
  end
  return n
end

local function shape_of(model, name)
  local p = model:get(name)
  assert(p, "parameter " .. name .. " is missing")
  return p:shape()
end

local tests = {}

for _, name in ipairs(G.names) do
  tests[#tests + 1] = { "count_" .. name, function(T)
    local m = build(name)
    local n = m:num_params()
    print(string.format("    params %-15s %d (expected %d)", name, n, G.params[name]))
    T.eq(n, G.params[name], name .. " parameter count")
  end }
end

tests[#tests + 1] = { "breakdown_pr598_block", function(T)
  -- §5.1: per block 2,364,424 (c_q 512², c_k, c_v 256×512, proj 512², fc/proj 1536×512, scale, bias,
  -- attn/mlp scale, resid_mix, q_gain)
  local m = build("pr598")
  T.eq(sum_where(m, function(n) return n:find("^blocks%.0%.") ~= nil end), 2364424, "#598 block 0")
  T.eq(shape_of(m, "blocks.3.mlp.scale"), { 1536 })
  T.eq(shape_of(m, "blocks.3.mlp.bias"), { 1536 })
  T.eq(shape_of(m, "skip_gates"), { 5, 512 })
  T.eq(shape_of(m, "ve_shared.embed.weight"), { 1024, 128 })
  T.eq(shape_of(m, "ve_shared.proj.weight"), { 256, 128 })
  T.eq(shape_of(m, "bigram.embed.weight"), { 2048, 128 })
  T.eq(shape_of(m, "bigram.proj.weight"), { 512, 128 })
  T.eq(shape_of(m, "bigram.scale"), {})
end }

tests[#tests + 1] = { "breakdown_pr1539", function(T)
  -- §4.2: 4,194,304 (emb) + 31,719,424 (banks) + 22,616 (block scalars) + 2,560 (skips) + 512 (smear)
  --       + 371,715 (VE) + 1 (lane_merge)
  local m = build("pr1539")
  T.eq(sum_where(m, function(n) return n == "tok_emb.weight" end), 4194304, "embedding")
  T.eq(sum_where(m, function(n) return n:find("^blocks%.") and n:find("%.weight$") end), 31719424, "banks")
  T.eq(sum_where(m, function(n) return n:find("^blocks%.") and not n:find("%.weight$") end), 22616, "block scalars")
  T.eq(sum_where(m, function(n) return n == "skip_weights" end), 2560, "skips")
  T.eq(sum_where(m, function(n) return n == "smear.gate" end), 512, "smear")
  T.eq(sum_where(m, function(n) return n:find("^ve_") ~= nil end), 371715, "value embeddings")
  T.eq(shape_of(m, "lane_merge"), {})
  T.eq(shape_of(m, "ve_layer_scales"), { 2 })
  T.eq(shape_of(m, "blocks.10.mlp.fc.weight"), { 2048, 512 })
  T.eq(m:get("skip_gates"), nil, "no skip_gates without skip_mode = gated")
  T.eq(m:get("bigram.embed.weight"), nil, "BigramHash is off in #1539")
end }

tests[#tests + 1] = { "breakdown_proteus_v9", function(T)
  -- §3.1/§3.2: bigram 2048×128 + 512×128 + scale, smear 512, skips 5×512; depth scales are buffers
  local m = build("proteus_v9")
  T.eq(sum_where(m, function(n) return n:find("^bigram%.") ~= nil end), 262144 + 65536 + 1, "bigram")
  T.eq(shape_of(m, "skip_weights"), { 5, 512 })
  T.eq(shape_of(m, "blocks.10.mlp.proj.weight"), { 512, 1536 })
  T.eq(m:get("lane_merge"), nil, "no lane_merge without parallel lanes")
end }

return tests
