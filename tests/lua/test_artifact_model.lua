-- tests/lua/test_artifact_model.lua — proteus.artifact: a model packed by every policy, written
-- atomically with size accounting, loaded back, and the roundtrip: the loaded model computes exactly
-- the function the stored integers and scales define (q·scale computed here independently, from the
-- container's raw entries).
--
--   build/proteus tests/run.lua tests/lua/test_artifact_model.lua
local pt = require "proteus"
local nn = require "proteus.nn"
local quant = require "proteus.quant"
local artifact = require "proteus.artifact"
local codec = require "proteus.codec"
local A = require "proteus._artifact"

local CFG = { vocab_size = 1024, num_layers = 2, model_dim = 128, num_heads = 4, num_kv_heads = 2, mlp_mult = 5,
  init = "orthogonal", bigram_vocab_size = 2048, bigram_dim = 64, smear_gate = true, depth_scale = true }

local function model(seed, cfg)
  pt.manual_seed(seed or 1)
  local m = nn.GPT(cfg or CFG)
  pt.no_grad(function() -- realistic nonzero projections and bigram table
    for name, p in m:named_parameters() do
      if name:match("proj%.weight$") or name == "bigram.embed.weight" then p:copy_(pt.randn(p:shape()) * 0.03) end
    end
  end)
  return m
end

local function tmp(suffix)
  local p = assert(io.popen("mktemp /tmp/proteus_artm_XXXXXX"))
  local n = p:read("l")
  p:close()
  os.remove(n)
  return n .. suffix
end

-- q·s from the raw entry, with plain tensor ops (not proteus._quant)
local function independent(e)
  if not e.scales then return nil end
  local n = 1
  for _, d in ipairs(e.shape) do n = n * d end
  local raw = e.packed6 and codec.unpack_int6(e.data, n) or e.data
  local q = codec.tensor_from_bytes(raw, "i8", e.shape):to("f32")
  local ns = e.scheme == "int8_per_tensor" and 1 or e.shape[1]
  local s = codec.tensor_from_bytes(e.scales, e.scale_dtype, { ns }):to("f32")
  local R = e.scheme == "int8_per_tensor" and 1 or e.shape[1]
  return (q:reshape { R, -1 } * s:reshape { R, 1 }):reshape(e.shape)
end

local function maxdiff(a, b) return (a:to("f64") - b:to("f64")):abs():max():item() end

return {
  roundtrip_is_the_function_of_the_stored_integers = function(T)
    local m = model(1)
    local tok = pt.randint(0, 1024, { 2, 24 })
    for _, pname in ipairs { "baseline", "proteus_as_run", "proteus_card", "pr598_mixed" } do
      local path = tmp(".ptz")
      local info = artifact.write(path, m, quant.policy[pname], { recipe = "test_" .. pname, config = CFG,
        codec = "zstd", level = 3 })
      local entries = A.read(path)
      local m2 = model(2) -- other weights, same shapes
      artifact.load_into(m2, path, { recipe = "test_" .. pname })
      local m3 = model(3)
      local qi = 0
      pt.no_grad(function()
        for _, e in ipairs(entries) do
          local w = independent(e)
          if w then
            qi = qi + 1
            T.eq(maxdiff(m2:get(e.name), w), 0, pname .. " " .. e.name .. " dequantized")
          else
            w = codec.tensor_from_bytes(e.data, e.dtype, e.shape):to("f32")
            T.eq(maxdiff(m2:get(e.name), w), 0, pname .. " " .. e.name .. " passthrough")
          end
          m3:get(e.name):copy_(w)
        end
      end)
      assert(qi >= 3, pname .. ": quantized tensors " .. qi)
      -- the integers stored are those the quantizer produced
      for _, r in ipairs(info.results) do
        if r.q then
          for _, e in ipairs(entries) do
            if e.name == r.name then
              local n = r.q:numel()
              local raw = e.packed6 and codec.unpack_int6(e.data, n) or e.data
              T.eq(raw, codec.tensor_bytes(r.q:contiguous()), pname .. " " .. r.name .. " integers")
            end
          end
        end
      end
      local z2 = pt.no_grad(function() return m2:logits(tok) end)
      local z3 = pt.no_grad(function() return m3:logits(tok) end)
      T.eq(maxdiff(z2, z3), 0, pname .. " logits")
      local z1 = pt.no_grad(function() return m:logits(tok) end)
      assert(maxdiff(z1, z2) < 1.0, pname .. ": the quantized model stays close to the original")
      os.remove(path)
    end
  end,

  gptq_policy_with_hessians_packs_and_loads = function(T)
    local m = model(4)
    local cal = quant.generate_calibration(m, 2, 16, 0.8, 7)
    local H = quant.collect_hessians(m, cal)
    local bytes, info = artifact.pack(m, quant.policy.pr1539_gptq, { hessians = H, recipe = "g", level = 5 })
    T.eq(info.codec, "brotli")
    T.eq(info.shuffle, true)
    T.eq(info.schemes.int6_per_row, 4) -- mlp fc/proj of 2 layers (attn matrices are ≤ 65,536)
    local entries, meta = A.unpack(bytes)
    T.eq(meta.extra.quant.tensors["blocks.0.mlp.fc.weight"].method, "int6_gptq")
    T.eq(meta.extra.quant.tensors["tok_emb.weight"].method, "int8_sdclip")
    T.eq(#entries, m:num_params() > 0 and #m:parameters() or 0)
  end,

  int6_packing_keeps_the_smaller = function(T)
    local m = model(5)
    local _, info = artifact.pack(m, quant.policy.proteus_as_run, { codec = "zstd", level = 3 })
    local s = info.int6_packing.sizes
    assert(s.packed6 and s.bytes_per_value, "both measured")
    T.eq(info.model_bytes, math.min(s.packed6, s.bytes_per_value))
    T.eq(info.int6_packing.chosen, s.packed6 < s.bytes_per_value and "packed6" or "bytes_per_value")
    local _, forced = artifact.pack(m, quant.policy.proteus_as_run, { codec = "zstd", level = 3, int6_packing = "packed6" })
    T.eq(forced.model_bytes, s.packed6)
  end,

  size_accounting_and_the_cap = function(T)
    local m = model(6)
    local path = tmp(".ptz")
    local err = T.raises(function()
      artifact.write(path, m, quant.policy.proteus_as_run, { codec = "zstd", level = 3, cap = 1000,
        recipe_path = "tests/lua/test_artifact_model.lua" })
    end, "over the 1000-byte cap")
    assert(err:find("model bytes: %d+") and err:find("code bytes: %d+") and err:find("C host"), err)
    assert(not io.open(path, "rb"), "nothing written over the cap")
    local info = artifact.write(path, m, quant.policy.proteus_as_run, { codec = "zstd", level = 3, cap = 1000,
      allow_over = true, recipe_path = "tests/lua/test_artifact_model.lua" })
    local acc = info.account
    T.eq(acc.fits, false)
    local f = assert(io.open(path, "rb"))
    T.eq(acc.model_bytes, f:seek("end"))
    f:close()
    -- code: the recipe file plus the loaded library files, each counted at its size
    local found = {}
    local sum = 0
    for _, cf in ipairs(acc.code_files) do
      found[cf.path:match("[^/]+$")] = cf.bytes
      sum = sum + cf.bytes
    end
    T.eq(sum, acc.code_bytes)
    T.eq(acc.total, acc.model_bytes + acc.code_bytes)
    for _, n in ipairs { "test_artifact_model.lua", "quant.lua", "artifact.lua", "nn.lua", "codec.lua" } do
      assert(found[n], "code files include " .. n)
    end
    local qf = assert(io.open("lua/lib/proteus/quant.lua", "rb"))
    T.eq(found["quant.lua"], #qf:read("a"))
    qf:close()
    os.remove(path)
  end,

  load_refuses_other_recipes_shapes_and_damage = function(T)
    local m = model(7)
    local path = tmp(".ptz")
    artifact.write(path, m, quant.policy.proteus_as_run, { codec = "zstd", level = 3, recipe = "v9" })
    T.raises(function() artifact.load_into(model(8), path, { recipe = "baseline" }) end,
      "was written by recipe 'v9', not 'baseline'")
    local cfg2 = {}
    for k, v in pairs(CFG) do cfg2[k] = v end
    cfg2.mlp_mult = 3
    T.raises(function() artifact.load_into(model(8, cfg2), path) end, "tensor blocks.0.mlp.fc.weight has shape 640x128, the model's is 384x128")
    local cfg3 = {}
    for k, v in pairs(CFG) do cfg3[k] = v end
    cfg3.num_layers = 3
    T.raises(function() artifact.load_into(model(8, cfg3), path) end, "has no tensor blocks.2.attn_scale")
    cfg3.num_layers, cfg3.smear_gate = 2, false
    T.raises(function() artifact.load_into(model(8, cfg3), path) end, "holds tensor smear.gate, which the model does not have")
    -- truncated and corrupted files are refused with the file named
    local f = assert(io.open(path, "rb"))
    local bytes = f:read("a")
    f:close()
    local bad = tmp(".ptz")
    local g = assert(io.open(bad, "wb"))
    g:write(bytes:sub(1, #bytes - 10))
    g:close()
    T.raises(function() artifact.load(bad) end, "truncated")
    g = assert(io.open(bad, "wb"))
    g:write(bytes:sub(1, 100) .. string.char((bytes:byte(101) + 1) % 256) .. bytes:sub(102))
    g:close()
    local e = T.raises(function() artifact.load(bad) end, bad)
    assert(#e > 0)
    os.remove(bad)
    os.remove(path)
  end,
}
