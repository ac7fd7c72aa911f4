-- tests/gpu/test_reduce.lua — CUDA reductions, softmax and their backwards against the CPU oracle.
--
--   build/proteus tests/run.lua tests/gpu/test_reduce.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Fresh random inputs (seed printed; PT_TEST_SEED=N repeats one); outputs compared by relative norm
-- (1e-5 f32, 1e-12 f64), indices of max/min/argmax exactly (ties are impossible with continuous
-- random inputs, and a tie test checks the first-index rule). Skips without a device;
-- PROTEUS_GPU_TEST_DEVICE=cpu runs it against itself to check the harness.
local pt = require "proteus"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")
local testing = require "proteus.testing"

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)
local TOL = { f32 = 1e-5, f64 = 1e-12 }

local need_device, rel = G.need_device, G.rel

local function check(what, got, want, dt)
  local r = rel(got, want)
  assert(r <= TOL[dt], string.format("%s (%s, seed %d): relative error %.3g > %.3g", what, dt, SEED, r, TOL[dt]))
end

local SHAPES = { { { 7, 33 }, 2 }, { { 4, 300, 5 }, 2 }, { { 3, 5, 2049 }, -1 }, { { 6, 4 }, 1 } }

local T = {}

function T.reductions_match_cpu(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64" } do
    for _, case in ipairs(SHAPES) do
      local x = pt.randn(case[1], dt)
      local xd = x:to(DEV)
      local d = case[2]
      check("sum", xd:sum(d), x:sum(d), dt)
      check("mean", xd:mean(d), x:mean(d), dt)
      check("var", xd:var(d), x:var(d), dt)
      check("std", xd:std(d, 0), x:std(d, 0), dt)
      check("norm2", xd:norm(2, d), x:norm(2, d), dt)
      check("norm1", xd:norm(1, d), x:norm(1, d), dt)
      check("norm_inf", xd:norm(math.huge, d), x:norm(math.huge, d), dt)
      check("sum_all", xd:sum(), x:sum(), dt)
      local v1, i1 = xd:max(d)
      local v0, i0 = x:max(d)
      check("max", v1, v0, dt)
      t.eq(i1:to("cpu"):totable(), i0:totable())
      local w1, j1 = xd:min(d)
      local w0, j0 = x:min(d)
      check("min", w1, w0, dt)
      t.eq(j1:to("cpu"):totable(), j0:totable())
      t.eq(xd:argmax(d):to("cpu"):totable(), x:argmax(d):totable())
      check("softmax", xd:softmax(d), x:softmax(d), dt)
      check("log_softmax", xd:log_softmax(d), x:log_softmax(d), dt)
    end
  end
end

function T.ties_and_nan_follow_the_cpu(t)
  need_device(t)
  local x = pt.tensor { { 1, 3, 3, 2 }, { 0 / 0, 5, 0 / 0, 1 }, { -1, -1, -1, -1 } }
  local _, i = x:to(DEV):max(2)
  t.eq(i:to("cpu"):totable(), { 1, 0, 0 })
  local _, j = x:to(DEV):min(2)
  t.eq(j:to("cpu"):totable(), { 0, 0, 0 })
end

function T.backwards_match_cpu(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64" } do
    local x = pt.randn({ 5, 37 }, dt)
    local g = pt.randn({ 5, 37 }, dt)
    local function grad_of(dev, f)
      local leaf = x:to(dev):detach()
      leaf.requires_grad = true
      f(leaf):backward(g:to(dev))
      return leaf.grad:to("cpu")
    end
    for name, f in pairs {
      softmax = function(a) return a:softmax(2) end,
      log_softmax = function(a) return a:log_softmax(2) end,
      max = function(a) return a:max(2):unsqueeze(2):expand { 5, 37 } end,
      mean = function(a) return a:mean(2, true):expand { 5, 37 } end,
      std = function(a) return a:std(2, 1, true):expand { 5, 37 } end,
    } do
      check(name .. " backward", grad_of(DEV, f), grad_of("cpu", f), dt)
    end
  end
end

function T.harness_detects_a_wrong_result(t)
  -- the comparison itself must fail on a perturbed result (runs everywhere)
  local a = pt.randn({ 100 })
  local b = a + 1e-3
  local ok = pcall(check, "probe", b, a, "f32")
  t.eq(ok, false)
  t.eq(testing.max_abs_diff(a, a), 0)
end

return T
