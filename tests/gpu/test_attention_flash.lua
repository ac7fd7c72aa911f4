-- tests/gpu/test_attention_flash.lua — the bf16 flash attention (src/kernels/cuda/attention.cu) against
-- the CPU oracle in f64, and against the simple CUDA kernel (fused.cu).
--
--   build/proteus tests/run.lua tests/gpu/test_attention_flash.lua     (ctest -L gpu; scripts/gpu_tests.sh)
--   PT_TEST_SEED=N ...                 repeat one set of random inputs (the seed is in every message)
--   PROTEUS_ATTN=simple ...            run the CPU comparisons on the simple kernel instead
--   PROTEUS_GPU_TEST_DEVICE=cpu ...    self-check of the harness without a GPU: the CPU in f32 stands in
--                                      for the device (the CPU has no bf16 attention kernel)
--
-- Inputs are bf16 (q ~ 1.5·N(0,1) so that softmax rows are peaked as well as flat; k, v, gy ~ N(0,1));
-- the reference runs F.attention on the CPU in f64 on exactly the same (bf16-representable) values.
-- Shapes: B = 2, H = 8, Hkv = 4 (GQA), D = 64, T = 1, 17, 64, 256, 1024 and 2048 (one tile, a partial
-- tile, exactly one tile, several tiles with the diagonal, long rows), plus D = 128 and a D = 32 case
-- that the flash kernel does not take (auto mode falls back to the simple kernel; PROTEUS_ATTN=flash
-- must name the shape in its error).
--
-- Metric: rel = ‖got − want‖ / max(‖want‖, 1e-3·√n) over the whole tensor (the floor covers T = 1,
-- where dq and dk are exactly 0), and per row of y and dq: ‖got_r − want_r‖ / (‖want_r‖ + ¼·rms_r + 1e-3).
-- The per-row check catches a wrong mask or a wrong lse for a single row, which a whole-tensor norm
-- would average away at T = 2048 (a row whose lse is off by δ has its dq row scaled by e^−δ).
-- lse itself is not visible from Lua; it is checked through the backward, which reads it.
--
-- Tolerances: one bf16 rounding has a relative rms error of about 2^-9/√3 ≈ 1.1e-3. The forward
-- rounds P to bf16 for P·V and y once at the end (≈ 1.6e-3 expected); the gradients also round dS,
-- and D = rowsum(dO ⊙ y) reads the rounded y (≈ 2.5e-3 expected; a CPU emulation of the kernels
-- measured 1.8e-3 for y and 2.3e-3 – 2.9e-3 for dq, dk, dv). TOL below is about 3x that; a wrong
-- index or mask gives errors of 1e-1 and more (the same emulation with a mask off by one: 0.2 – 0.4).
-- Flash vs simple: both carry their own rounding, so their difference gets 1.5x TOL.
local pt = require "proteus"
local F = require "proteus.functional"
local st = require "proteus.safetensors"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SELF = G.DEV, G.SELF
local RUN_DT = SELF and "f32" or "bf16"
local SEED = G.SEED
local TOL = { y = 6e-3, grad = 1e-2, row = 8e-2 }
local B, H, HKV, D = 2, 8, 4, 64

-- the same inputs for a given (seed, T, D) in every process: bf16-representable values, held in f64
local function inputs(T_, d, h, hkv)
  d, h, hkv = d or D, h or H, hkv or HKV
  pt.manual_seed(SEED * 7919 + T_ * 131 + d)
  local function r(shape, mul) return (pt.randn(shape) * mul):to("bf16"):to("f64") end
  return r({ B, T_, h, d }, 1.5), r({ B, T_, hkv, d }, 1), r({ B, T_, hkv, d }, 1), r({ B, T_, h, d }, 1)
end

-- y, dq, dk, dv of F.attention on dev in dtype dt (results on the CPU in f64)
local function attention_on(dev, dt, q, k, v, gy)
  local xs = {}
  for i, x in ipairs { q, k, v } do
    local t = x:to(dev, dt):detach()
    t.requires_grad = true
    xs[i] = t
  end
  local y = F.attention(xs[1], xs[2], xs[3])
  y:backward(gy:to(dev, dt))
  local out = { y = y:detach() }
  out.dq, out.dk, out.dv = xs[1].grad, xs[2].grad, xs[3].grad
  for key, t in pairs(out) do out[key] = t:to("cpu"):to("f64") end
  return out
end

local function norm(t) return math.sqrt((t ^ 2):sum():item()) end

local function rel(got, want)
  local floor = 1e-3 * math.sqrt(want:numel())
  return norm(got - want) / math.max(norm(want), floor)
end

-- worst per-row error of [B, T, heads, D] tensors (see the header for the formula)
local function worst_row(got, want)
  local d = want:size(4)
  local g, w = got:reshape({ -1, d }), want:reshape({ -1, d })
  local en = ((g - w) ^ 2):sum(2):sqrt()
  local wn = (w ^ 2):sum(2):sqrt()
  local rms = math.sqrt((w ^ 2):sum():item() / w:size(1))
  local r, idx = (en / (wn + (0.25 * rms + 1e-3))):max(1)
  return r:item(), idx:item()
end

local function check(label, got, want, scale)
  scale = scale or 1
  for _, key in ipairs { "y", "dq", "dk", "dv" } do
    local r = rel(got[key], want[key])
    local tol = (key == "y" and TOL.y or TOL.grad) * scale
    assert(r <= tol, string.format("%s: %s rel %.3g > %.3g (seed %d)", label, key, r, tol, SEED))
  end
  for _, key in ipairs { "y", "dq" } do
    local r, row = worst_row(got[key], want[key])
    local tol = TOL.row * scale
    assert(r <= tol, string.format("%s: %s row %d (0-based, of [B·T·H]) error %.3g > %.3g (seed %d)", label, key,
      row, r, tol, SEED))
  end
end

local need_device = G.need_device

-- ---- child processes (PROTEUS_ATTN is read by the CUDA kernel, so a mode needs its own process) ----
local here = debug.getinfo(1, "S").source:sub(2)

local CHILD_TS = { 17, 256, 1024 }

-- child mode: PT_ATTN_CHILD=dump:<file> writes y, dq, dk, dv for CHILD_TS; PT_ATTN_CHILD=d32 prints
-- what F.attention says about a D = 32 bf16 call
local child = os.getenv("PT_ATTN_CHILD")
if child then
  if child == "d32" then
    local q, k, v = inputs(5, 32)
    local ok, err = pcall(F.attention, q:to(DEV, RUN_DT), k:to(DEV, RUN_DT), v:to(DEV, RUN_DT))
    io.write(ok and "ok\n" or ("error: " .. tostring(err) .. "\n"))
  else
    local file = assert(child:match("^dump:(.+)$"), "PT_ATTN_CHILD must be dump:<file> or d32")
    local out = {}
    for _, T_ in ipairs(CHILD_TS) do
      local r = attention_on(DEV, RUN_DT, inputs(T_))
      for key, t in pairs(r) do out["T" .. T_ .. "." .. key] = t end
    end
    st.save(file, out)
  end
  os.exit(0)
end

local function run_child(mode, env_attn)
  return G.run_child(here, { { "PT_ATTN_CHILD", mode }, { "PROTEUS_ATTN", env_attn } })
end

local T = {}

function T.flash_matches_cpu_f64(t)
  need_device(t)
  local Ts = { 1, 17, 64, 256, 1024, 2048 }
  for _, T_ in ipairs(Ts) do
    local q, k, v, gy = inputs(T_)
    local want = attention_on("cpu", "f64", q, k, v, gy)
    local got = attention_on(DEV, RUN_DT, q, k, v, gy)
    check(string.format("T=%d B=%d H=%d Hkv=%d D=%d", T_, B, H, HKV, D), got, want)
  end
end

function T.head_dim_128_and_uneven_tiles(t)
  need_device(t)
  for _, T_ in ipairs { 130, 200 } do
    local q, k, v, gy = inputs(T_, 128, 4, 1) -- 4 query heads on one kv head
    local want = attention_on("cpu", "f64", q, k, v, gy)
    check(string.format("D=128 T=%d H=4 Hkv=1", T_), attention_on(DEV, RUN_DT, q, k, v, gy), want)
  end
end

function T.unsupported_shape_runs_the_simple_kernel(t)
  need_device(t)
  local q, k, v, gy = inputs(33, 32) -- D = 32: not a flash shape; auto mode takes the simple kernel
  check("D=32 T=33 (simple kernel)", attention_on(DEV, RUN_DT, q, k, v, gy), attention_on("cpu", "f64", q, k, v, gy))
end

function T.flash_is_deterministic_and_matches_simple(t)
  need_device(t)
  local d = G.child_dumps(here, "PT_ATTN_CHILD", "PROTEUS_ATTN", { "flash", "simple" })
  local flash, simple = d.flash, d.simple
  for _, T_ in ipairs(CHILD_TS) do
    local function pick(set)
      local r = {}
      for _, key in ipairs { "y", "dq", "dk", "dv" } do r[key] = assert(set["T" .. T_ .. "." .. key]) end
      return r
    end
    local f, s = pick(flash), pick(simple)
    check(string.format("flash vs simple T=%d", T_), f, s, 1.5)
    -- this process runs in auto mode: for bf16, D = 64 that is flash, which has no atomics, so the
    -- result is bit-identical to the PROTEUS_ATTN=flash child's (the simple kernel's dK/dV are not)
    if os.getenv("PROTEUS_ATTN") == nil or os.getenv("PROTEUS_ATTN") == "" then
      local mine = attention_on(DEV, RUN_DT, inputs(T_))
      for _, key in ipairs { "y", "dq", "dk", "dv" } do
        local diff = (mine[key] - f[key]):abs():max():item()
        assert(diff == 0, string.format("T=%d %s: auto mode differs from PROTEUS_ATTN=flash by %g (seed %d)", T_, key,
          diff, SEED))
      end
    end
  end
end

function T.flash_mode_names_the_shape_it_cannot_take(t)
  need_device(t)
  if SELF then t.skip("PROTEUS_ATTN is a CUDA switch; nothing to check on the CPU") end
  local ok, out = run_child("d32", "flash")
  assert(ok, out)
  assert(out:find("PROTEUS_ATTN=flash", 1, true) and out:find("D=32", 1, true) and out:find("head dim D = 32", 1, true),
    "expected an error naming the shape and the head dim, got:\n" .. out)
  ok, out = run_child("d32", "bogus")
  assert(ok, out)
  assert(out:find("PROTEUS_ATTN=bogus: expected simple, flash or auto", 1, true), "got:\n" .. out)
end

return T
