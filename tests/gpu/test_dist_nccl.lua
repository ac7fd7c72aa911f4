-- tests/gpu/test_dist_nccl.lua — proteus.dist's NCCL path on one GPU (one rank): all_reduce
-- (sum/avg/max/min in f32, bf16, f64), reduce_scatter, all_gather, broadcast on CUDA tensors through
-- a 1-rank NCCL communicator, checked against the CPU; and one parallel Muon step on the GPU equal
-- to optim.Muon on the CPU.
--
--   build/proteus tests/run.lua tests/gpu/test_dist_nccl.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--   mpirun -np 8 build/proteus tests/run.lua tests/gpu/test_dist_nccl.lua   (several GPUs: every rank
--     checks the sums against its own CPU arithmetic)
--
-- Skips without a device or without NCCL (a CPU build).
local pt = require "proteus"
local cuda = require "proteus.cuda"
local dist = require "proteus.dist"
local optim = require "proteus.optim"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local function need_device(T)
  if not dist.has_nccl() then T.skip("this proteus was built without CUDA/NCCL") end
  G.need_cuda(T)
end

local tests = {}

function tests.device_by_local_rank(T)
  need_device(T)
  T.eq(dist.device(), "cuda:" .. (dist.local_rank() % cuda.device_count()))
end

function tests.all_reduce_on_device(T)
  need_device(T)
  local W, r = dist.world_size(), dist.rank()
  local dev = dist.device()
  for _, dt in ipairs { "f32", "bf16", "f64" } do
    local x = pt.tensor({ 1, 2, 3, 4 }, dt)
    local sum = dist.all_reduce(x:to(dev) * (r + 1), "sum"):to("cpu"):to("f64"):totable()
    local k = W * (W + 1) / 2
    T.eq(sum, { k, 2 * k, 3 * k, 4 * k }, dt .. " sum")
    local avg = dist.all_reduce(x:to(dev), "avg"):to("cpu"):to("f64"):totable()
    T.eq(avg, { 1, 2, 3, 4 }, dt .. " avg")
    local mx = dist.all_reduce(x:to(dev) * (r + 1), "max"):to("cpu"):to("f64"):totable()
    T.eq(mx, { W, 2 * W, 3 * W, 4 * W }, dt .. " max")
  end
end

function tests.gather_scatter_broadcast_on_device(T)
  need_device(T)
  local W, r = dist.world_size(), dist.rank()
  local dev = dist.device()
  local rows = pt.arange(0, 2 * W):to("f32"):reshape({ W, 2 })
  local shard = dist.reduce_scatter(rows:to(dev), "sum"):to("cpu")
  T.eq(shard:totable(), { { 2 * r * W, (2 * r + 1) * W } })
  local g = dist.all_gather(pt.tensor({ { r, r } }, "f32"):to(dev)):to("cpu")
  T.eq(g:shape(), { W, 2 })
  T.eq(g:totable()[W][1], W - 1)
  local b = dist.broadcast(pt.tensor({ r + 5 }, "i64"):to(dev), 0):to("cpu")
  T.eq(b:totable(), { 5 })
end

function tests.parallel_muon_on_device(T)
  need_device(T)
  local dev = dist.device()
  pt.manual_seed(4)
  local w, g = pt.randn({ 3, 8, 4 }), pt.randn({ 3, 8, 4 }):to("bf16"):to("f32")
  local a = w:clone(); a.grad = g
  local b = w:to(dev); b.grad = g:to(dev)
  local cfg = function(p) return { params = { p }, lr = 0.05, momentum = 0.9, round = "unit" } end
  optim.Muon(cfg(a)):step(1)
  dist.ParallelMuon(optim.Muon(cfg(b))):step(1)
  local d = (a - b:to("cpu")):abs():max():item()
  assert(d < 1e-3, "ParallelMuon on the GPU differs from the CPU Muon by " .. d)
end

return tests
