-- tests/gpu/gpu_common.lua — the setup shared by the GPU tests in tests/gpu/: which device is under test,
-- the skip helpers, the seed, and comparison helpers against the CPU oracle. Not a test itself (ctest and
-- scripts/gpu_tests.sh run tests/gpu/test_*.lua only). A test loads it relative to its own file, so the
-- working directory does not matter:
--
--   local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")
--
-- Environment (read once, when a test file loads this):
--   PROTEUS_GPU_TEST_DEVICE=cpu   self-check of a test's harness without a GPU: the CPU stands in for
--                                 the device (default "cuda")
--   PT_TEST_SEED=N                repeat one set of random inputs (default os.time(); tests put the
--                                 seed in their failure messages)
local cuda = require "proteus.cuda"
local st = require "proteus.safetensors"
local testing = require "proteus.testing"

local G = {}

G.DEV = os.getenv("PROTEUS_GPU_TEST_DEVICE") or "cuda" -- the device under test
G.SELF = G.DEV == "cpu" -- the harness self-check: the CPU plays the device
G.SEED = tonumber(os.getenv("PT_TEST_SEED") or "") or os.time()

-- Skips the test (T from tests/run.lua) unless a CUDA device is usable, whatever G.DEV says.
function G.need_cuda(T)
  if not cuda.is_available() then T.skip("no CUDA device: " .. cuda.unavailable_reason()) end
end

-- Skips the test unless G.DEV can run: always in the CPU self-check, else only with a CUDA device.
function G.need_device(T)
  if not G.SELF then G.need_cuda(T) end
end

-- Relative norm ‖got − want‖ / ‖want‖ in f64 on the CPU (tensors on any device; 1e-300 floor on ‖want‖).
G.rel = testing.rel

-- The elements of t (any device) as Lua numbers (i64 as integers), row-major; also returns its shape.
function G.flat(t)
  local c = t:to("cpu")
  c = c:to(c:dtype() == "i64" and "i64" or "f64"):contiguous()
  local out = {}
  for i = 1, c:numel() do out[i] = c:flat_get(i) end
  return out, c:shape()
end

-- Elementwise comparison of got (from G.DEV) with want (from the CPU), same shape required.
-- tol nil or 0: exact (NaN equals NaN, -0 equals +0); tol > 0: |got - want| <= tol * max(1, |want|).
-- The error names what, the seed, the first differing element (1-based, row-major) and both values.
function G.same(T, what, got, want, tol)
  local g, gs = G.flat(got)
  local w, ws = G.flat(want)
  T.eq(gs, ws, what .. " shape")
  tol = tol or 0
  for i = 1, #w do
    local a, b = g[i], w[i]
    local ok
    if b ~= b then
      ok = a ~= a
    elseif tol == 0 or a == b then
      ok = a == b
    else
      ok = math.abs(a - b) <= tol * math.max(1, math.abs(b))
    end
    if not ok then
      error(string.format("%s (seed %d): element %d is %s on %s, %s on the cpu", what, G.SEED, i, tostring(a),
        G.DEV, tostring(b)), 2)
    end
  end
end

-- ---- child processes: for switches a CUDA kernel reads from the environment (PROTEUS_ATTN,
-- PROTEUS_LINEAR_ACT), each setting runs in a process of its own, the test file run again ----

-- Runs the test file `file` in a child proteus (testing.proteus_bin) with PT_TEST_SEED = G.SEED, the
-- variables env (a list of { NAME, value }, set in that order: the test's child-mode variable, the
-- switch) and PROTEUS_GPU_TEST_DEVICE = G.DEV. Returns ok (exit status 0) and all it printed (stdout
-- and stderr together).
function G.run_child(file, env)
  local q = testing.shell_quote
  local words = { "PT_TEST_SEED=" .. G.SEED }
  for _, kv in ipairs(env) do words[#words + 1] = kv[1] .. "=" .. q(kv[2]) end
  words[#words + 1] = "PROTEUS_GPU_TEST_DEVICE=" .. q(G.DEV)
  words[#words + 1] = q(testing.proteus_bin(file:match("([^/]+)%.lua$"))) .. " " .. q(file) .. " 2>&1"
  local p = io.popen(table.concat(words, " "))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

-- Runs `file` once per mode of `modes` (G.run_child with child_var = "dump:<path>", switch = the
-- mode), each child saving its tensors to <path> (proteus.safetensors) and exiting; returns
-- { [mode] = the tensors it saved }. A failed child is an error naming the switch and showing its output.
function G.child_dumps(file, child_var, switch, modes)
  local dir = io.popen("mktemp -d /tmp/proteus_" .. file:match("([^/]+)%.lua$") .. "_XXXXXX"):read("l")
  local res, paths = {}, {}
  for i, mode in ipairs(modes) do
    paths[i] = dir .. "/" .. mode .. ".safetensors"
    local ok, out = G.run_child(file, { { child_var, "dump:" .. paths[i] }, { switch, mode } })
    assert(ok, "child with " .. switch .. "=" .. mode .. " failed:\n" .. out)
  end
  for i, mode in ipairs(modes) do res[mode] = st.load(paths[i]) end
  os.execute("rm -rf " .. testing.shell_quote(dir))
  return res
end

return G
