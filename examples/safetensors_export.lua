-- examples/safetensors_export.lua — save a model's weights as safetensors (PyTorch state-dict names,
-- the config in the file's metadata), read the file back, rebuild the model from it, and check
-- that the rebuilt model computes the same logits.
--
--   build/proteus examples/safetensors_export.lua [out=runs/export/model.safetensors]
--
-- The file is plain safetensors: Python's `safetensors.torch.load_file(path)` or
-- tests/reference/gpt_ref.py read it (examples/export_to_pytorch.lua runs the model in PyTorch).
-- tests/lua/test_examples.lua runs this file.
local pt = require "proteus"
local nn = require "proteus.nn"
local st = require "proteus.safetensors"
local json = require "proteus.json"

local out = "runs/export/model.safetensors"
for _, a in ipairs(arg or {}) do
  local v = a:match("^out=(.+)$")
  if not v then error("safetensors_export: unknown argument '" .. a .. "' (out=PATH)", 0) end
  out = v
end
os.execute("mkdir -p '" .. (out:match("^(.*)/[^/]*$") or "."):gsub("'", "'\\''") .. "'")

local config = { vocab_size = 1024, num_layers = 2, model_dim = 64, num_heads = 4, num_kv_heads = 2, mlp_mult = 2,
  bigram_vocab_size = 512, bigram_dim = 32, smear_gate = true }
pt.manual_seed(7)
local model = nn.GPT(config)

-- 1. save: name -> tensor, in state-dict order; metadata is string -> string
local weights, names = {}, {}
for name, p in model:named_parameters() do
  weights[name] = p:detach()
  names[#names + 1] = name
end
st.save(out, weights, { format = "proteus.gpt", config = json.encode(config) })
local f = assert(io.open(out, "rb"))
local size = f:seek("end")
f:close()
print(string.format("saved %d tensors (%d parameters) to %s, %d bytes", #names, model:num_params(), out, size))

-- 2. load: tensors and metadata back
local tensors, meta = st.load(out)
assert(meta.format == "proteus.gpt", "metadata survives the round trip")
for i = 1, math.min(#names, 4) do
  local t = tensors[names[i]]
  print(string.format("  %-28s %-6s [%s]", names[i], t:dtype(), table.concat(t:shape(), ", ")))
end
print("  ...")

-- 3. rebuild: a fresh model from the stored config (other random weights), then the stored weights
pt.manual_seed(99)
local model2 = nn.GPT(json.decode(meta.config))
pt.no_grad(function()
  for name, p in model2:named_parameters() do
    local t = tensors[name] or error("safetensors_export: " .. out .. " has no tensor " .. name)
    p:copy_(t)
  end
end)

local x = pt.randint(0, 1024, { 2, 16 })
local a, b = model:logits(x), model2:logits(x)
local diff = (a - b):abs():max():item()
print(string.format("logits of the saved and the rebuilt model: max |difference| = %g", diff))
assert(diff == 0, "the rebuilt model computes the same logits")
