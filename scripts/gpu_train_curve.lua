--- scripts/gpu_train_curve.lua — runs tests/gpu/test_train_step.lua's check (a PROTEUS-style model
-- trained on CUDA and on the CPU from the same seed, same batches, Muon + AdamW; loss curves must agree
-- within 1e-3 relative) and also writes both loss curves, step by step, as CSV. It runs the test's own
-- function: the test's local `curve` is wrapped (debug.setupvalue) so that its results are kept as well
-- as checked, so the curves are exactly the ones the test compared. scripts/device_check.sh runs it
-- with PT_GPU_STEPS=50 (the issue's 50-step check; the suite's default is 5).
--
--   PT_GPU_STEPS=50 build-gpu/proteus scripts/gpu_train_curve.lua [out.csv]   (default: stdout only)
--
-- Exit 0: the test passed (curves written); 1: it failed (curves written when both runs finished);
-- 77: skipped (no CUDA device). The CSV has columns step,loss_cuda,loss_cpu,rel_diff.
local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local test_path = here .. "../tests/gpu/test_train_step.lua"
local out_path = arg and arg[1]

local T = {}
function T.skip(reason) error({ skip = tostring(reason) }, 0) end

local chunk = assert(loadfile(test_path))
local tests = chunk(T)
local fn = tests.loss_curve_matches_cpu
if type(fn) ~= "function" then
  error("gpu_train_curve: " .. test_path .. " has no test 'loss_curve_matches_cpu'; update this script to the test")
end

local curves = {}
local idx, orig
for i = 1, 64 do
  local name, v = debug.getupvalue(fn, i)
  if name == nil then break end
  if name == "curve" then idx, orig = i, v end
end
if not idx then
  error("gpu_train_curve: the test no longer calls a local function 'curve(dev, batches)'; update this script")
end
debug.setupvalue(fn, idx, function(dev, batches)
  local losses = orig(dev, batches)
  curves[#curves + 1] = { dev = dev, losses = losses }
  return losses
end)

local ok, err = pcall(fn, T)
if not ok and type(err) == "table" and err.skip then
  print("skip: " .. err.skip)
  os.exit(77)
end

local function write_csv()
  if #curves < 2 then return false end
  local a, b = curves[1], curves[2] -- the test runs the device first, then the CPU
  local lines = { string.format("step,loss_%s,loss_%s,rel_diff", a.dev, b.dev) }
  local worst = 0
  for k = 1, #b.losses do
    local r = math.abs(a.losses[k] - b.losses[k]) / math.abs(b.losses[k])
    if r > worst then worst = r end
    lines[#lines + 1] = string.format("%d,%.7f,%.7f,%.3e", k, a.losses[k], b.losses[k], r)
  end
  local text = table.concat(lines, "\n") .. "\n"
  io.write(text)
  if out_path then
    local f = assert(io.open(out_path, "w"))
    f:write(text)
    f:close()
  end
  print(string.format("steps %d, worst relative difference %.3e (bound 1e-3), final loss %.6f (%s) vs %.6f (%s)",
    #b.losses, worst, a.losses[#a.losses], a.dev, b.losses[#b.losses], b.dev))
  return true
end

write_csv()
if ok then
  print("PASS loss_curve_matches_cpu")
  os.exit(0)
end
print("FAIL loss_curve_matches_cpu: " .. tostring(err))
os.exit(1)
