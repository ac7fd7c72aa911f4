-- tests/gpu/test_index.lua — CUDA indexing kernels (embedding, index_select, gather, index checks and the
-- deterministic embedding backward) against the CPU oracle.
--
--   build/proteus tests/run.lua tests/gpu/test_index.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Index ops move values, so results must be bit-identical to the CPU (also the backward, which adds
-- each row's contributions in increasing position order on both devices: the device groups the indices
-- with a stable radix sort, heavy collisions and every index dtype included). Skips without a device;
-- PROTEUS_GPU_TEST_DEVICE=cpu runs it against itself.
local pt = require "proteus"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)

local need_device = G.need_device

local same = G.same -- exact: the first differing element, with the seed

local T = {}

function T.embedding_forward_and_backward(t)
  need_device(t)
  for _, itype in ipairs { "i64", "i32", "u16" } do
    local w = pt.randn({ 1024, 64 })
    local idx = pt.randint(0, 1024, { 4, 200 }, itype)
    same(t, "embedding " .. itype, pt.embedding(w:to(DEV), idx:to(DEV)), pt.embedding(w, idx))
    local g = pt.randn({ 4, 200, 64 })
    local function grad(dev)
      local leaf = w:to(dev):detach()
      leaf.requires_grad = true
      pt.embedding(leaf, idx:to(dev)):backward(g:to(dev))
      return leaf.grad
    end
    same(t, "embedding backward " .. itype, grad(DEV), grad("cpu"))
  end
end

function T.index_select_and_gather(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64", "i64" } do
    local a = pt.randn({ 5, 7, 3 }):to(dt)
    local idx = pt.randint(0, 7, { 11 })
    same(t, "index_select " .. dt, a:to(DEV):index_select(2, idx:to(DEV)), a:index_select(2, idx))
    local gidx = pt.randint(0, 7, { 5, 4, 3 })
    same(t, "gather " .. dt, a:to(DEV):gather(2, gidx:to(DEV)), a:gather(2, gidx))
  end
end

-- index_add (the backward of embedding / index_select) groups the indices on the device: a stable radix
-- sort of (index, position), then each run of equal indices is added in position order, the CPU's order.
-- Long runs of one row and values of very different sizes make any other order show in the bits.
function T.index_add_device_grouping_is_bitwise_the_cpu(t)
  need_device(t)
  local function grad(w, idx, g, dev, dim)
    local leaf = w:to(dev):detach()
    leaf.requires_grad = true
    local y = dim and leaf:index_select(dim, idx:to(dev)) or pt.embedding(leaf, idx:to(dev))
    y:backward(g:to(dev))
    return leaf.grad
  end
  local function scaled(shape) -- mixed magnitudes: sums are order-sensitive in f32
    return pt.randn(shape) * pt.randint(0, 3, shape):to("f32"):mul(8):exp()
  end
  for _, dt in ipairs { "f32", "f64" } do
    -- heavy collisions: 6000 ids over 5 rows (runs of ~1200), plus rows that never occur
    local w = pt.randn({ 9, 48 }):to(dt)
    local idx = pt.randint(0, 5, { 6000 })
    local g = scaled({ 6000, 48 }):to(dt)
    same(t, "collisions " .. dt, grad(w, idx, g, DEV), grad(w, idx, g, "cpu"))
    -- every index dtype, the last row (the sort's top key bit) and a single-row table
    for _, itype in ipairs { "i64", "i32", "u16", "u8", "i8" } do
      local i2 = pt.tensor({ 1022, 0, 1023, 1023, 5, 0, 1023 }, "i64")
      if itype == "u8" or itype == "i8" then i2 = pt.tensor({ 100, 0, 127, 127, 5, 0, 127 }, "i64") end
      i2 = i2:to(itype)
      local w2 = pt.randn({ 1024, 16 }):to(dt)
      local g2 = scaled({ 7, 16 }):to(dt)
      same(t, "index dtype " .. itype .. " " .. dt, grad(w2, i2, g2, DEV), grad(w2, i2, g2, "cpu"))
    end
    local w1 = pt.randn({ 1, 8 }):to(dt)
    local i1 = pt.zeros({ 300 }, { dtype = "i64" })
    local g1 = scaled({ 300, 8 }):to(dt)
    same(t, "one row " .. dt, grad(w1, i1, g1, DEV), grad(w1, i1, g1, "cpu"))
    -- index_select along a middle dim: outer = 3, inner = 5 (the grouping is shared by every outer slice)
    local a = pt.randn({ 3, 11, 5 }):to(dt)
    local ia = pt.randint(0, 11, { 400 })
    local ga = scaled({ 3, 400, 5 }):to(dt)
    same(t, "index_select backward " .. dt, grad(a, ia, ga, DEV, 2), grad(a, ia, ga, "cpu", 2))
  end
  -- a large embedding backward (the GPT's: B*T tokens over a 1024 vocabulary) twice: deterministic
  local w = pt.randn({ 1024, 64 })
  local idx = pt.randint(0, 1024, { 8, 1024 })
  local g = scaled({ 8, 1024, 64 })
  local a1, a2 = grad(w, idx, g, DEV), grad(w, idx, g, DEV)
  same(t, "repeat", a1, a2)
  same(t, "gpt-sized", a1, grad(w, idx, g, "cpu"))
end

function T.bad_index_is_reported_like_the_cpu(t)
  need_device(t)
  local w = pt.randn({ 10, 4 })
  local idx = pt.tensor({ 1, 2, 15, 3 }, "i64")
  local _, cpu_msg = pcall(pt.embedding, w, idx)
  local _, dev_msg = pcall(pt.embedding, w:to(DEV), idx:to(DEV))
  assert(tostring(cpu_msg):find("index 15 at position 2", 1, true), cpu_msg)
  assert(tostring(dev_msg):find("index 15 at position 2", 1, true), dev_msg)
end

return T
