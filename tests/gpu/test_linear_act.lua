-- tests/gpu/test_linear_act.lua — F.linear_relu2 / F.linear_leaky_relu2 on CUDA (src/kernels/cuda/linear_act.cu):
-- both forward paths (cuBLAS + activation kernel, and the fused bf16 GEMM kernel) against the CPU oracle
-- in f64, against each other, and the PROTEUS_LINEAR_ACT switch's errors.
--
--   build/proteus tests/run.lua tests/gpu/test_linear_act.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--   PT_TEST_SEED=N ...                 repeat one set of random inputs (the seed is in every message)
--   PROTEUS_GPU_TEST_DEVICE=cpu ...    self-check of the harness without a GPU: the CPU in f32 stands in
--                                      for the device (no bf16 on the CPU; the switch checks skip)
--
-- Inputs: x ~ N(0, 1), W ~ N(0, 1/in), both rounded to bf16 (so h ~ N(0, 1): both sides of the kink),
-- upstream gradient ~ N(0, 1). The reference runs the op on the CPU in f64 on exactly those values.
-- PROTEUS_LINEAR_ACT is read by the CUDA kernel at every call, so the fused path and the error cases run
-- in child processes of this file (PT_LA_CHILD=dump:<file> | err:<case>).
--
-- Tolerances (relative norm ‖got − want‖/‖want‖): one bf16 rounding has a relative rms error of about
-- 1.1e-3. out = act(bf16(h)) rounded again: about 2.5e-3 expected, TOL.y = 8e-3. dh = g ⊙ act'(h) in
-- bf16, then dx, dW rounded once more: about 3e-3 expected, TOL.grad = 1.5e-2. Fused vs cuBLAS: the two
-- GEMMs sum in other orders, so an element of h may round to the neighbouring bf16 value (the backward
-- is the same code on both); TOL.y for y and the gradients.
-- In cuBLAS mode out must be exactly the CPU's f32 relu² of the device's own h (cuBLAS h, fetched
-- through x:matmul(W:transpose(1, 2)) with the same call): checks the activation kernel bit for bit.
-- f32 on CUDA (cuBLAS without TF32) against the CPU in f32: 2e-5.
local pt = require "proteus"
local F = require "proteus.functional"
local st = require "proteus.safetensors"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SELF, SEED = G.DEV, G.SELF, G.SEED
local RUN_DT = SELF and "f32" or "bf16"
local TOL = { y = 8e-3, grad = 1.5e-2, f32 = 2e-5 }
local rel, need_device = G.rel, G.need_device

-- shapes (rows M, in K, out N): fused-kernel shapes, then one it does not take (K = 100)
local SHAPES = { { 200, 64, 128 }, { 333, 512, 192 }, { 2048, 512, 1536 }, { 130, 1536, 512 } }
local ODD = { 77, 100, 96 }

-- the same bf16-representable inputs (held in f64) for a given (seed, shape) in every process
local function inputs(M, K, N)
  pt.manual_seed(SEED * 7919 + M * 131 + K * 17 + N)
  local x = pt.randn({ M, K }):to("bf16"):to("f64")
  local w = (pt.randn({ N, K }) * (1 / math.sqrt(K))):to("bf16"):to("f64")
  local g = pt.randn({ M, N }):to("bf16"):to("f64")
  return x, w, g
end

-- y, dx, dw of the op on dev in dtype dt (results on the CPU in f64)
local function op_on(dev, dt, act, x0, w0, g)
  local x, w = x0:to(dev, dt):detach(), w0:to(dev, dt):detach()
  x.requires_grad, w.requires_grad = true, true
  local y = act == "relu2" and F.linear_relu2(x, w) or F.linear_leaky_relu2(x, w, 0.5)
  y:backward(g:to(dev, dt))
  return { y = y:detach():to("cpu"):to("f64"), dx = x.grad:to("cpu"):to("f64"), dw = w.grad:to("cpu"):to("f64") }
end

-- tol: {y =, grad =} (default TOL)
local function check(label, got, want, tol)
  tol = tol or TOL
  for _, k in ipairs { "y", "dx", "dw" } do
    local r = rel(got[k], want[k])
    local bound = k == "y" and tol.y or tol.grad
    assert(r <= bound, string.format("%s: %s rel %.3g > %.3g (seed %d)", label, k, r, bound, SEED))
  end
end

local function label(act, s) return string.format("%s M=%d K=%d N=%d", act, s[1], s[2], s[3]) end

-- ---- child processes (G.run_child, G.child_dumps) ----
local here = debug.getinfo(1, "S").source:sub(2)

local child = os.getenv("PT_LA_CHILD")
if child then
  local file = child:match("^dump:(.+)$")
  if file then -- y, dx, dw of every shape and activation in this process's mode
    local out = {}
    for i, s in ipairs(SHAPES) do
      for _, act in ipairs { "relu2", "leaky_relu2" } do
        for k, t in pairs(op_on(DEV, RUN_DT, act, inputs(s[1], s[2], s[3]))) do out[act .. i .. "." .. k] = t end
      end
    end
    st.save(file, out)
  else -- err:odd (bf16, a shape fused does not take) | err:f32 (f32 input)
    local case = assert(child:match("^err:(%w+)$"), "PT_LA_CHILD must be dump:<file> or err:<case>")
    local x, w = inputs(ODD[1], ODD[2], ODD[3])
    local dt = case == "f32" and "f32" or RUN_DT
    local ok, err = pcall(F.linear_relu2, x:to(DEV, dt), w:to(DEV, dt))
    io.write(ok and "ok\n" or ("error: " .. tostring(err) .. "\n"))
  end
  os.exit(0)
end

local function run_child(mode, env)
  return G.run_child(here, { { "PT_LA_CHILD", mode }, { "PROTEUS_LINEAR_ACT", env } })
end

local T = {}

function T.default_path_matches_cpu_f64(t)
  need_device(t)
  for _, s in ipairs(SHAPES) do
    for _, act in ipairs { "relu2", "leaky_relu2" } do
      local x, w, g = inputs(s[1], s[2], s[3])
      check(label(act, s), op_on(DEV, RUN_DT, act, x, w, g), op_on("cpu", "f64", act, x, w, g))
    end
  end
  local x, w, g = inputs(ODD[1], ODD[2], ODD[3]) -- not a fused shape: cuBLAS in every mode but "fused"
  check(label("relu2", ODD) .. " (odd shape)", op_on(DEV, RUN_DT, "relu2", x, w, g), op_on("cpu", "f64", "relu2", x, w, g))
end

function T.cublas_path_activation_is_exact(t)
  need_device(t)
  local mode = os.getenv("PROTEUS_LINEAR_ACT")
  if mode == "fused" then t.skip("PROTEUS_LINEAR_ACT=fused: this checks the cuBLAS path") end
  local s = SHAPES[2]
  local x0, w0 = inputs(s[1], s[2], s[3])
  local x, w = x0:to(DEV, RUN_DT), w0:to(DEV, RUN_DT)
  local h = x:matmul(w:transpose(1, 2)):to("cpu"):to("f32") -- the device's own h (the same cuBLAS call)
  for _, act in ipairs { "relu2", "leaky_relu2" } do
    local y = act == "relu2" and F.linear_relu2(x, w) or F.linear_leaky_relu2(x, w, 0.5)
    local want = (act == "relu2" and F.relu2(h) or F.leaky_relu2(h, 0.5)):to(RUN_DT)
    G.same(t, act .. ": act(h) of the cuBLAS path", y, want)
  end
end

function T.f32_matches_cpu_f32(t)
  need_device(t)
  local s = SHAPES[2]
  local x, w, g = inputs(s[1], s[2], s[3])
  local got, want = op_on(DEV, "f32", "leaky_relu2", x, w, g), op_on("cpu", "f32", "leaky_relu2", x, w, g)
  for _, k in ipairs { "y", "dx", "dw" } do
    local r = rel(got[k], want[k])
    assert(r <= TOL.f32, string.format("f32 %s rel %.3g > %.3g (seed %d)", k, r, TOL.f32, SEED))
  end
end

function T.fused_matches_cublas_and_cpu(t)
  need_device(t)
  if SELF then t.skip("the fused kernel is CUDA bf16; nothing to compare on the CPU") end
  local d = G.child_dumps(here, "PT_LA_CHILD", "PROTEUS_LINEAR_ACT", { "fused", "cublas" })
  local fused, cublas = d.fused, d.cublas
  for i, s in ipairs(SHAPES) do
    for _, act in ipairs { "relu2", "leaky_relu2" } do
      local function pick(set)
        local r = {}
        for _, k in ipairs { "y", "dx", "dw" } do r[k] = assert(set[act .. i .. "." .. k], act .. i .. "." .. k) end
        return r
      end
      local f, c = pick(fused), pick(cublas)
      local x, w, g = inputs(s[1], s[2], s[3])
      check(label(act, s) .. " fused vs cpu f64", f, op_on("cpu", "f64", act, x, w, g))
      check(label(act, s) .. " fused vs cublas", f, c, { y = TOL.y, grad = TOL.y })
    end
  end
end

function T.switch_errors_name_the_shape_and_dtype(t)
  need_device(t)
  if SELF then t.skip("PROTEUS_LINEAR_ACT is a CUDA switch; nothing to check on the CPU") end
  local ok, out = run_child("err:odd", "fused")
  assert(ok, out)
  assert(out:find("PROTEUS_LINEAR_ACT=fused", 1, true) and out:find("x [77, 100]", 1, true)
    and out:find("in = 100 and out = 96 must both be multiples of 64", 1, true),
    "expected an error naming the shape, got:\n" .. out)
  ok, out = run_child("err:f32", "fused")
  assert(ok, out)
  assert(out:find("the fused kernel takes bf16, got f32", 1, true), "got:\n" .. out)
  ok, out = run_child("err:odd", "bogus")
  assert(ok, out)
  assert(out:find("PROTEUS_LINEAR_ACT=bogus: expected cublas, fused or auto", 1, true), "got:\n" .. out)
  ok, out = run_child("err:odd", "cublas")
  assert(ok and out:find("^ok"), "cublas mode takes any shape, got:\n" .. out)
end

return T
