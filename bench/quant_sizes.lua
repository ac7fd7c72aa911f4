-- bench/quant_sizes.lua — artifact bytes of a v9-shaped model (nn.GPT with the PROTEUS v9 config,
-- 26,829,913 params) for each quantization policy × codec, with the int6 packing measurement
-- (6-bit packed vs one byte per value). Results go in bench/RESULTS.md.
--
--   build/proteus bench/quant_sizes.lua [codecs=zstd22,brotli11,brotli11s,zlib9] [policies=all] [seed=1]
--
-- Weights: random with realistic scales — the builder's init (tok_emb N(0, 0.005²), orthogonal
-- q/k/v/fc), the zero-initialised projections replaced by N(0, 0.02²), the bigram table left at zero
-- as in the records (§3.2). pr1539_sdclip is #1539's policy with SDClip rounding in place of GPTQ
-- (no Hessians for a random model); GPTQ changes the integers, not the format.
local pt = require "proteus"
local nn = require "proteus.nn"
local quant = require "proteus.quant"
local artifact = require "proteus.artifact"
local host = require "proteus._host"

local opts = { codecs = "zstd22,brotli11,brotli11s,zlib9", policies = "all", seed = "1" }
for _, a in ipairs(arg or {}) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k or opts[k] == nil then error("quant_sizes: unknown argument '" .. a .. "' (codecs=, policies=, seed=)") end
  opts[k] = v
end

local CODECS = {
  zstd22 = { "zstd", 22, false }, brotli11 = { "brotli", 11, false }, brotli11s = { "brotli", 11, true },
  zlib9 = { "zlib", 9, false },
}

pt.manual_seed(tonumber(opts.seed))
local cfg = dofile("tests/lua/gpt_configs.lua").configs.proteus_v9
local model = nn.GPT(cfg)
pt.no_grad(function()
  for name, p in model:named_parameters() do
    if name:match("%.proj%.weight$") and name:match("^blocks") then p:copy_(pt.randn(p:shape()) * 0.02) end
  end
end)
print(string.format("quant_sizes: v9-shaped model, %d params, seed %s", model:num_params(), opts.seed))

local pols = {
  { "baseline", quant.policy.baseline },
  { "proteus_as_run", quant.policy.proteus_as_run },
  { "proteus_card", quant.policy.proteus_card },
  { "pr598_mixed", quant.policy.pr598_mixed },
}
local sd = {}
for k, v in pairs(quant.policy.pr1539_gptq) do sd[k] = v end
sd.name = "pr1539_sdclip"
sd.large = function(name, cat, t)
  local s = quant.policy.pr1539_gptq.large(name, cat, t)
  if s.method == "int6_gptq" then return { method = "int6_sdclip", k = 12.85 } end
  return s
end
pols[#pols + 1] = { "pr1539_sdclip", sd }

print("| policy | codec | int6 packing | bytes | payload | packed6 | one byte/value |")
print("|---|---|---|---|---|---|---|")
for _, pp in ipairs(pols) do
  local pname, pol = pp[1], pp[2]
  if opts.policies == "all" or opts.policies:find(pname, 1, true) then
    local t0 = host.clock()
    local results = quant.quantize_model(model, pol)
    local tq = host.clock() - t0
    for c in opts.codecs:gmatch("[^,]+") do
      local cc = CODECS[c] or error("quant_sizes: unknown codec " .. c)
      local t1 = host.clock()
      local _, info = artifact.pack_results(results, pol, { codec = cc[1], level = cc[2], shuffle = cc[3] })
      local s = info.int6_packing.sizes
      print(string.format("| %s | %s%s | %s | %d | %d | %s | %s |   (quantize %.1fs, pack %.1fs)", pname,
        cc[1] .. "-" .. cc[2], cc[3] and "+shuffle" or "", info.int6_packing.chosen, info.model_bytes,
        info.sizes.payload, s.packed6 or "-", s.bytes_per_value or "-", tq, host.clock() - t1))
      io.stdout:flush()
    end
  end
end
