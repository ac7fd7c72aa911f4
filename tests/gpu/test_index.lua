-- tests/gpu/test_index.lua — CUDA indexing kernels (embedding, index_select, gather, index checks and the
-- deterministic embedding backward) against the CPU oracle.
--
--   build/proteus tests/run.lua tests/gpu/test_index.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Index ops move values, so results must be bit-identical to the CPU (also the backward, which adds
-- each row's contributions in increasing position order on both devices). Skips without a device;
-- PROTEUS_GPU_TEST_DEVICE=cpu runs it against itself.
local pt = require "proteus"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)

local need_device = G.need_device

local function same(T, what, got, want)
  local g, w = got:to("cpu"):to("f64"), want:to("cpu"):to("f64")
  local d = (g - w):abs():max():item()
  assert(d == 0, string.format("%s (seed %d): max |gpu - cpu| = %g, expected bit-identical", what, SEED, d))
end

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
