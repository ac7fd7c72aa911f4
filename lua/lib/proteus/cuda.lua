--- proteus.cuda — the CUDA backend: devices, the caching allocator's statistics, synchronisation
-- and timing events. Tensors move with t:to("cuda") / t:to("cpu"); ops on CUDA tensors run the
-- kernels of src/kernels/cuda/ (see its README.md for what exists and what has run on a GPU).
--
--   local cuda = require "proteus.cuda"
--   if cuda.is_available() then
--     print(cuda.device_name(), cuda.memory_stats().allocated_bytes)
--     local ms = cuda.time(function() local y = x * x end, { warmup = 3, repeats = 20 })
--   else
--     print(cuda.unavailable_reason())
--   end
--
-- Devices are CUDA ordinals (0 = "cuda:0") or device strings. Every call that needs a device
-- raises a clear error without one; in a build without nvcc they raise "CUDA not built into this
-- proteus (nvcc was not found at build time)". Tests: tests/gpu/test_runtime.lua,
-- tests/lua/test_cuda_binding.lua.
local C = require "proteus._cuda"

local cuda = {}

--- true when this proteus was compiled with the CUDA backend
cuda.built = C.built
--- true when the backend is built and at least one device is usable
cuda.is_available = C.is_available
--- why CUDA cannot be used here ("" when it can)
cuda.unavailable_reason = C.unavailable_reason
cuda.device_count = C.device_count
cuda.device_name = C.device_name
--- {name=, major=, minor=, sm_count=, total_bytes=, l2_bytes=, smem_per_block_optin=}
cuda.device_info = C.device_info
--- allocator statistics of a device: allocated/requested/reserved/cached bytes, peaks, and counts
-- of allocations, frees, cache hits, cudaMalloc/cudaFree calls and out-of-memory cache flushes
cuda.memory_stats = C.memory_stats
cuda.reset_peak_stats = C.reset_peak_stats
--- returns the cached (free) blocks to the driver; all devices when dev is nil
cuda.empty_cache = C.empty_cache
--- waits for all queued work on the device and raises any kernel error
cuda.synchronize = C.synchronize
--- a timing event recorded on the compute stream: e:record(), e:elapsed_ms(later_event)
cuda.event = C.event

local function fmt_bytes(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local u = 1
  while math.abs(n) >= 1024 and u < #units do
    n = n / 1024
    u = u + 1
  end
  return u == 1 and string.format("%d B", n) or string.format("%.2f %s", n, units[u])
end
cuda.fmt_bytes = fmt_bytes

--- One line summarising memory_stats(dev).
function cuda.memory_summary(dev)
  local s = C.memory_stats(dev)
  return string.format(
    "allocated %s (peak %s), reserved %s (peak %s), cached %s; %d allocs, %d cache hits, %d cudaMalloc, %d OOM flushes",
    fmt_bytes(s.allocated_bytes), fmt_bytes(s.peak_allocated_bytes), fmt_bytes(s.reserved_bytes),
    fmt_bytes(s.peak_reserved_bytes), fmt_bytes(s.cached_bytes), s.n_allocs, s.n_cache_hits, s.n_cuda_mallocs,
    s.n_oom_flushes)
end

--- Times fn() on the device with events: `warmup` untimed calls, then `repeats` timed ones
-- (each between two events). Returns the median in milliseconds and the sorted list of times.
function cuda.time(fn, opts)
  opts = opts or {}
  local warmup, repeats = opts.warmup or 3, opts.repeats or 20
  assert(repeats >= 1, "cuda.time: repeats must be at least 1")
  for _ = 1, warmup do fn() end
  C.synchronize(opts.device)
  local times = {}
  local e0, e1 = C.event(), C.event()
  for i = 1, repeats do
    e0:record()
    fn()
    e1:record()
    times[i] = e0:elapsed_ms(e1)
  end
  e0:release()
  e1:release()
  table.sort(times)
  local m = (#times + 1) // 2
  local median = #times % 2 == 1 and times[m] or (times[m] + times[m + 1]) / 2
  return median, times
end

return cuda
