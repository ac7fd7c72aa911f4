--- proteus.cuda — the CUDA backend: devices, the caching allocator's statistics, synchronisation,
-- timing events and CUDA graphs. Tensors move with t:to("cuda") / t:to("cpu"); ops on CUDA tensors run the
-- kernels of src/kernels/cuda/ (see its README.md for what exists and what has run on a GPU).
--
--   local cuda = require "proteus.cuda"
--   if cuda.is_available() then
--     print(cuda.device_name(), cuda.memory_stats().allocated_bytes)
--     local ms = cuda.time(function() local y = x * x end, { warmup = 3, repeats = 20 })
--     step()                                   -- warm up eagerly first (handles, lazy state)
--     local g, loss = cuda.graph(step)         -- capture step() once: nothing runs yet
--     for _ = 1, n do x:copy_(next_batch()); g:replay(); print(loss:item()) end
--     g:free()
--   else
--     print(cuda.unavailable_reason())
--   end
--
-- Devices are CUDA ordinals (0 = "cuda:0") or device strings. Every call that needs a device
-- raises a clear error without one; in a build without nvcc they raise "CUDA not built into this
-- proteus (nvcc was not found at build time)". Tests: tests/gpu/test_runtime.lua,
-- tests/gpu/test_graph.lua, tests/lua/test_cuda_binding.lua, tests/lua/test_graph_api.lua.
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
-- of allocations, frees, cache hits, cudaMalloc/cudaFree calls and out-of-memory cache flushes;
-- n_graph_pools, graph_pool_reserved_bytes, graph_pool_allocated_bytes: memory of live CUDA graphs
-- (included in the counts above; their free blocks are "cached" but stay with their graph)
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

--- The device this thread is capturing a CUDA graph on (0 for cuda:0), or nil.
cuda.capturing = C.capturing

-- ---------------------------------------------------------------------------------------------
-- CUDA graphs (src/kernels/cuda/graph.c; docs/gpu.md "CUDA graphs")
-- ---------------------------------------------------------------------------------------------

local CAPTURE_PHRASE = "cannot run inside a CUDA graph capture"
local READS_PHRASE = "reads the GPU and " .. CAPTURE_PHRASE

-- xpcall message handler for the captured function: names the C function that raised (e.g. the
-- tensor method item) and the first Lua line on the stack. Error objects that are not strings
-- (a test's skip, say) pass through unchanged.
local function capture_error(e)
  if type(e) ~= "string" then return e end
  local op
  local info = debug.getinfo(2, "nS")
  if info and info.what == "C" and info.name and info.name ~= "error" and info.name ~= "assert" then
    op = (info.namewhat == "method" and "tensor:" or "") .. info.name .. "()"
  end
  local where
  for level = 2, 64 do
    local i = debug.getinfo(level, "Sl")
    if not i then break end
    if i.what ~= "C" and i.currentline and i.currentline > 0 then
      where = i.short_src .. ":" .. i.currentline
      break
    end
  end
  if op and e:find(READS_PHRASE, 1, true) then
    return string.format("%s reads the GPU and cannot run inside a CUDA graph capture; move it out of the captured "
      .. "function (%s%s)", op, where and ("at " .. where .. "; ") or "", e)
  elseif op and e:find(CAPTURE_PHRASE, 1, true) then
    return string.format("%s: %s%s", op, e, where and (" (at " .. where .. ")") or "")
  end
  return where and not e:find(where, 1, true) and (e .. " (at " .. where .. ")") or e
end

--- Captures fn() into a CUDA graph on the device's compute stream and returns the graph and fn's
-- results: `local g, y = cuda.graph(fn, {device = 0})`. Nothing runs during the capture: kernels
-- are recorded, and g:replay() runs them all with one launch, on the same memory each time. So
-- run fn eagerly a few times first (warm-up: handles and lazily made state exist, shapes are
-- fixed), keep every tensor fn reads alive and change inputs in place (x:copy_(new) before
-- g:replay(), outside fn). fn's results are kept alive with the graph (g:outputs()); tensors made
-- during the capture live in the graph's private memory pool until g:free() (or collection).
-- Anything in fn that waits for the GPU or reads it from the host (tensor:item(), :totable(),
-- printing, cuda.synchronize(), events), copies host data to the GPU, or uses another device
-- raises "... cannot run inside a CUDA graph capture; ..."; any error in fn aborts the capture
-- cleanly (nothing is captured, the process goes on) and is raised again with "cuda.graph:" and
-- the line in fn. Without CUDA it raises the module's "CUDA not built" / "no CUDA device" error.
function cuda.graph(fn, opts)
  if type(fn) ~= "function" then error("cuda.graph: expected the function to capture, got " .. type(fn), 2) end
  if opts ~= nil and type(opts) ~= "table" then error("cuda.graph: opts must be a table {device = 0}", 2) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "device" then error("cuda.graph: unknown option " .. tostring(k) .. " (the only option is device)", 2) end
  end
  -- garbage tensors freed during the capture would be adopted by the graph's pool (it may hold their
  -- addresses) and kept as long as the graph: free them now, into the device cache
  collectgarbage("collect")
  C.graph_begin(opts.device)
  local res = table.pack(xpcall(fn, capture_error))
  if not res[1] then
    C.graph_abort()
    local e = res[2]
    if type(e) ~= "string" then error(e, 0) end
    error("cuda.graph: the capture was aborted (nothing was captured): " .. e, 2)
  end
  local keep = table.pack(table.unpack(res, 2, res.n))
  -- tensors fn dropped (and earlier ones it read and dropped) must be freed while the capture is on,
  -- so that the pool adopts their blocks; collected later they would go to the device cache and eager
  -- work could reuse addresses the graph reads or writes at replay
  res = nil
  collectgarbage("collect")
  local ok, g = pcall(C.graph_end, keep)
  if not ok then error("cuda.graph: " .. tostring(g), 2) end
  return g, table.unpack(keep, 1, keep.n)
end

--- One line summarising memory_stats(dev).
function cuda.memory_summary(dev)
  local s = C.memory_stats(dev)
  return string.format(
    "allocated %s (peak %s), reserved %s (peak %s), cached %s; %d allocs, %d cache hits, %d cudaMalloc, %d OOM flushes%s",
    fmt_bytes(s.allocated_bytes), fmt_bytes(s.peak_allocated_bytes), fmt_bytes(s.reserved_bytes),
    fmt_bytes(s.peak_reserved_bytes), fmt_bytes(s.cached_bytes), s.n_allocs, s.n_cache_hits, s.n_cuda_mallocs,
    s.n_oom_flushes, (s.n_graph_pools or 0) > 0 and string.format("; %d CUDA graph pool%s hold %s (%s in use)",
      s.n_graph_pools, s.n_graph_pools == 1 and "" or "s", fmt_bytes(s.graph_pool_reserved_bytes),
      fmt_bytes(s.graph_pool_allocated_bytes)) or "")
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
