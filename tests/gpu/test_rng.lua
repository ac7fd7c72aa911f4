-- tests/gpu/test_rng.lua — the Philox stream on the GPU gives the CPU's bits (DESIGN invariant 3).
--
--   build/proteus tests/run.lua tests/gpu/test_rng.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Same seed, same fills in the same order on both devices: uniform and normal in f32 and f64 (odd sizes,
-- so partial Philox blocks are covered) and randint must be bit-identical. Skips without a device.
local pt = require "proteus"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, need_device = G.DEV, G.need_device

local function fills(dev)
  pt.manual_seed(20261123)
  local out = {}
  for _, dt in ipairs { "f32", "f64" } do
    out[#out + 1] = pt.zeros({ 1001 }, { dtype = dt, device = dev }):uniform_(-2, 3)
    out[#out + 1] = pt.zeros({ 999 }, { dtype = dt, device = dev }):normal_(0.5, 2)
  end
  return out
end

return {
  device_stream_is_bit_identical = function(T)
    need_device(T)
    local a, b = fills(DEV), fills("cpu")
    for i = 1, #a do
      local d = (a[i]:to("cpu"):to("f64") - b[i]:to("f64")):abs():max():item()
      assert(d == 0, string.format("fill %d differs from the CPU by up to %g", i, d))
    end
    T.eq(pt.get_rng_state().offset > 0, true)
  end,
}
