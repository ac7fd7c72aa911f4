-- tests/lua/test_cuda_binding.lua — proteus.cuda on any machine: the module loads, says whether
-- CUDA is built and usable, and the calls that need a device fail with a message that says why
-- (no GPU in CI; the device behaviour is tested by tests/gpu/).
--
--   build/proteus tests/run.lua tests/lua/test_cuda_binding.lua
local pt = require "proteus"
local cuda = require "proteus.cuda"

local tests = {}

function tests.reports_availability_consistently()
  assert(type(cuda.built()) == "boolean")
  assert(type(cuda.is_available()) == "boolean")
  if cuda.is_available() then
    assert(cuda.built())
    assert(cuda.unavailable_reason() == "")
  else
    assert(#cuda.unavailable_reason() > 0)
  end
end

function tests.without_cuda_in_the_build_calls_say_so(T)
  if cuda.built() then T.skip("CUDA is built into this proteus") end
  T.eq(cuda.unavailable_reason(), "CUDA not built into this proteus (nvcc was not found at build time)")
  for _, name in ipairs { "device_count", "device_name", "memory_stats", "synchronize", "empty_cache", "event" } do
    T.raises(function() cuda[name]() end, "CUDA not built into this proteus (nvcc was not found at build time)")
  end
  T.raises(function() return pt.zeros({ 2 }, { device = "cuda" }) end, "no CUDA backend in this build")
end

function tests.built_without_device_calls_say_why(T)
  if not cuda.built() or cuda.is_available() then T.skip("needs a CUDA build on a machine without a GPU") end
  T.eq(cuda.device_count(), 0)
  local reason = cuda.unavailable_reason()
  T.raises(function() cuda.memory_stats() end, "cuda:0: no CUDA device is usable (" .. reason)
  T.raises(function() cuda.synchronize() end, "no CUDA device is usable")
  T.raises(function() return pt.zeros({ 2 }, { device = "cuda" }) end, "no CUDA device is usable")
  T.raises(function() return pt.ones({ 2 }):to("cuda") end, "no CUDA device is usable")
end

return tests
