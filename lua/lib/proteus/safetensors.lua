--- proteus.safetensors — save and load weights in the safetensors format (readable by PyTorch,
-- JAX, Hugging Face tools; no code in the file). Format and checks: src/host/pt_safetensors.h.
--
--   local st = require "proteus.safetensors"
--   st.save("run/model.safetensors", {["tok_emb.weight"] = w, ...}, {recipe = "v9"})
--   local tensors, meta = st.load("run/model.safetensors")   -- name -> CPU tensor, key -> string
--   st.save_module("run/model.safetensors", model)            -- model:named_parameters() / parameters()
--
-- Writes are atomic (temporary file, fsync, rename). Loading validates the header before
-- allocating and raises an error naming the file and the problem. Tests: tests/lua/test_safetensors.lua,
-- tests/reference/safetensors_interop.py.
local C = require "proteus._safetensors"

local st = {}

--- Writes tensors (name -> tensor) and optional metadata (string -> string) to path.
function st.save(path, tensors, metadata)
  C.save(path, tensors, metadata)
end

--- Reads path; returns tensors (name -> CPU tensor) and metadata (string -> string).
function st.load(path)
  return C.load(path)
end

--- Saves a module's named parameters (module:named_parameters() returning name -> tensor or a
-- list of {name, tensor}).
function st.save_module(path, module, metadata)
  assert(type(module) == "table" and module.named_parameters,
    "safetensors.save_module: the module has no named_parameters()")
  local named, out = module:named_parameters(), {}
  for k, v in pairs(named) do
    if type(k) == "string" then out[k] = v else out[v[1]] = v[2] end
  end
  C.save(path, out, metadata)
end

return st
