-- tests/gpu/test_linalg.lua — cuSOLVER cholesky, inverse and qr (src/kernels/cuda/linalg.cu) against the
-- CPU (LAPACK): sizes 1, 7, 64, 130, batches for cholesky and inverse, f32 and f64, and the errors for a
-- non-positive-definite / singular matrix (same message as the CPU, naming the batch element).
--
--   build/proteus tests/run.lua tests/gpu/test_linalg.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--   PROTEUS_GPU_TEST_DEVICE=cpu build/proteus tests/run.lua tests/gpu/test_linalg.lua   (self-check)
--
-- Inputs are well conditioned (SPD: X·Xᵀ/n + I; general: randn/√n + 2·I), so relative-norm bounds of
-- 1e-4 (f32) and 1e-10 (f64) hold for both pivoting orders. QR is compared up to the sign of each
-- Householder step (|Q|, |R| against the CPU) and by Q·R = A, Qᵀ·Q = I. Skips without a device.
local pt = require "proteus"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)
local TOL = { f32 = 1e-4, f64 = 1e-10 }
local SIZES = { 1, 7, 64, 130 }

local function eye(n, dt)
  local rows = {}
  for i = 1, n do
    local r = {}
    for j = 1, n do r[j] = i == j and 1 or 0 end
    rows[i] = r
  end
  return pt.tensor(rows, dt)
end

-- batch (table of leading dims, may be empty) of n×n SPD matrices
local function spd(batch, n, dt)
  local shape = {}
  for i, d in ipairs(batch) do shape[i] = d end
  shape[#shape + 1], shape[#shape + 2] = n, n
  local x = pt.randn(shape, dt)
  return x:matmul(x:transpose(-1, -2)) / n + eye(n, dt)
end

local function general(batch, n, dt)
  local shape = {}
  for i, d in ipairs(batch) do shape[i] = d end
  shape[#shape + 1], shape[#shape + 2] = n, n
  return pt.randn(shape, dt) / math.sqrt(n) + eye(n, dt) * 2
end

local function check(what, r, dt)
  assert(r <= TOL[dt], string.format("%s (seed %d): rel %.3g > %g", what, SEED, r, TOL[dt]))
end

local function errmsg(f, ...)
  local ok, msg = pcall(f, ...)
  assert(not ok, "expected an error")
  return tostring(msg)
end

return {
  cholesky_matches_cpu = function(T)
    G.need_device(T)
    for _, dt in ipairs { "f32", "f64" } do
      for _, n in ipairs(SIZES) do
        for _, batch in ipairs { {}, { 3 }, { 2, 2 } } do
          local a = spd(batch, n, dt)
          for _, upper in ipairs { false, true } do
            local got, want = pt.cholesky(a:to(DEV), upper), pt.cholesky(a, upper)
            local what = string.format("cholesky %s n=%d batch=%d upper=%s", dt, n, #batch, tostring(upper))
            T.eq(got:shape(), want:shape(), what .. " shape")
            check(what, G.rel(got, want), dt)
            -- the other triangle is exactly zero, as on the CPU
            local tri = got:to("cpu") * (want:to("cpu"):eq(0)):to(dt)
            T.eq(tri:abs():sum():item(), 0, what .. " zeroed triangle")
          end
        end
      end
    end
  end,

  inverse_matches_cpu = function(T)
    G.need_device(T)
    for _, dt in ipairs { "f32", "f64" } do
      for _, n in ipairs(SIZES) do
        for _, batch in ipairs { {}, { 3 }, { 2, 2 } } do
          local a = general(batch, n, dt)
          local got, want = pt.inverse(a:to(DEV)), pt.inverse(a)
          local what = string.format("inverse %s n=%d batch=%d", dt, n, #batch)
          T.eq(got:shape(), want:shape(), what .. " shape")
          check(what, G.rel(got, want), dt)
          check(what .. " A·inv(A) = I", G.rel(a:matmul(got:to("cpu")), eye(n, dt):expand(a:shape())), dt)
        end
      end
    end
  end,

  qr_matches_cpu = function(T)
    G.need_device(T)
    local shapes = { { 1, 1 }, { 7, 7 }, { 64, 64 }, { 130, 130 }, { 64, 33 }, { 33, 64 }, { 130, 7 }, { 1, 5 } }
    for _, dt in ipairs { "f32", "f64" } do
      for _, s in ipairs(shapes) do
        local a = pt.randn(s, dt)
        local q, r = pt.qr(a:to(DEV))
        local q0, r0 = pt.qr(a)
        local what = string.format("qr %s [%d, %d]", dt, s[1], s[2])
        T.eq(q:shape(), q0:shape(), what .. " Q shape")
        T.eq(r:shape(), r0:shape(), what .. " R shape")
        q, r = q:to("cpu"), r:to("cpu")
        check(what .. " |Q|", G.rel(q:abs(), q0:abs()), dt)
        check(what .. " |R|", G.rel(r:abs(), r0:abs()), dt)
        check(what .. " Q·R = A", G.rel(q:matmul(r), a), dt)
        local kk = math.min(s[1], s[2])
        check(what .. " QᵀQ = I", G.rel(q:transpose(1, 2):matmul(q), eye(kk, dt)), dt)
        -- R is upper triangular: below the diagonal exactly 0
        local below = r * (r0:eq(0)):to(dt)
        T.eq(below:abs():sum():item(), 0, what .. " R lower part")
      end
    end
  end,

  not_positive_definite_is_reported_like_the_cpu = function(T)
    G.need_device(T)
    for _, dt in ipairs { "f32", "f64" } do
      local a = spd({ 3 }, 7, dt)
      a:set(-5, 2, 4, 4) -- matrix 1 (0-based) of the batch loses definiteness at minor 4 (or earlier)
      local cpu_msg = errmsg(pt.cholesky, a)
      local dev_msg = errmsg(pt.cholesky, a:to(DEV))
      assert(cpu_msg:find("matrix 1 of the batch [3, 7, 7] is not positive definite", 1, true), cpu_msg)
      T.eq(dev_msg, cpu_msg, "cholesky error " .. dt)
      local one = spd({}, 5, dt)
      one:set(-1, 1, 1)
      T.eq(errmsg(pt.cholesky, one:to(DEV), true), errmsg(pt.cholesky, one, true), "cholesky 2-d error " .. dt)
    end
  end,

  singular_is_reported_like_the_cpu = function(T)
    G.need_device(T)
    for _, dt in ipairs { "f32", "f64" } do
      local a = general({ 2, 2 }, 7, dt)
      for j = 1, 7 do a:set(0, 2, 1, 4, j) end -- row 4 of matrix 2 (0-based, flattened batch) is zero
      local cpu_msg = errmsg(pt.inverse, a)
      local dev_msg = errmsg(pt.inverse, a:to(DEV))
      assert(cpu_msg:find("matrix 2 of the batch [2, 2, 7, 7] is singular", 1, true), cpu_msg)
      T.eq(dev_msg, cpu_msg, "inverse error " .. dt)
    end
  end,
}
