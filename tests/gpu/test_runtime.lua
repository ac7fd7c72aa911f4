-- tests/gpu/test_runtime.lua — the CUDA runtime from Lua: device queries, allocator statistics
-- and reuse, out-of-memory messages, empty_cache, synchronize and timing events.
--
--   build/proteus tests/run.lua tests/gpu/test_runtime.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Skips without a device.
local pt = require "proteus"
local cuda = require "proteus.cuda"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local need_device = G.need_cuda -- these tests use "cuda" itself: no CPU self-check

local tests = {}

function tests.device_queries(T)
  need_device(T)
  assert(cuda.device_count() >= 1)
  local info = cuda.device_info(0)
  assert(type(info.name) == "string" and #info.name > 0)
  assert(info.name == cuda.device_name("cuda:0"))
  assert(info.sm_count > 0 and info.total_bytes > 0 and info.major >= 1)
  T.raises(function() cuda.device_name(cuda.device_count()) end, "no such device")
end

function tests.tensors_move_allocator_statistics(T)
  need_device(T)
  cuda.synchronize()
  cuda.empty_cache()
  local s0 = cuda.memory_stats()
  local x = pt.zeros({ 1000, 1000 }, { device = "cuda" }) -- 4 MB: class 4 MiB
  local s1 = cuda.memory_stats()
  T.eq(s1.allocated_bytes - s0.allocated_bytes, 4194304)
  T.eq(s1.requested_bytes - s0.requested_bytes, 4000000)
  assert(s1.peak_allocated_bytes >= s1.allocated_bytes)
  x:release()
  local s2 = cuda.memory_stats()
  T.eq(s2.allocated_bytes, s0.allocated_bytes)
  T.eq(s2.cached_bytes - s0.cached_bytes, 4194304)
  local y = pt.zeros({ 999, 1000 }, { device = "cuda" }) -- same class: reused
  local s3 = cuda.memory_stats()
  T.eq(s3.n_cache_hits - s2.n_cache_hits, 1)
  T.eq(s3.n_cuda_mallocs, s2.n_cuda_mallocs)
  y:release()
  cuda.empty_cache()
  local s4 = cuda.memory_stats()
  T.eq(s4.cached_bytes, 0)
  T.eq(s4.reserved_bytes, s4.allocated_bytes)
  assert(cuda.memory_summary():find("allocated", 1, true))
end

function tests.out_of_memory_names_the_request(T)
  need_device(T)
  local flushes = cuda.memory_stats().n_oom_flushes
  local msg = T.raises(function() return pt.empty({ 2 ^ 48 }, { device = "cuda" }) end, "out of memory (asked 1.00 PiB")
  assert(msg:find("by live tensors", 1, true), msg)
  T.eq(cuda.memory_stats().n_oom_flushes, flushes + 1)
  -- still usable afterwards
  local z = pt.ones({ 10 }, { device = "cuda" })
  T.eq(z:to("cpu"):totable(), { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 })
end

function tests.events_time_device_work(T)
  need_device(T)
  local x = pt.ones({ 4096, 1024 }, { device = "cuda" })
  local ms = cuda.time(function() local _ = x * 2 end, { warmup = 2, repeats = 5 })
  assert(ms > 0 and ms < 1000, "median " .. ms)
  local e = cuda.event()
  T.raises(function() e:elapsed_ms(cuda.event()) end, "must be recorded first")
  e:record()
  e:synchronize()
  e:release()
  cuda.synchronize(0)
end

function tests.transfer_round_trip_bigger_than_staging(T)
  need_device(T)
  local n = 3 * 1024 * 1024 + 7 -- 12 MB of f32: two staging chunks and a tail
  local x = pt.arange(n):to("f32")
  local back = x:to("cuda"):to("cpu")
  T.eq(back:flat_get(1), 0)
  T.eq(back:flat_get(n), n - 1)
  T.eq(back:flat_get(2 * 1024 * 1024 + 3), 2 * 1024 * 1024 + 2)
  T.eq((back - x):abs():max():item(), 0)
end

return tests
