-- tests/gpu/test_elementwise.lua — every CUDA elementwise op against the CPU oracle, from Lua.
--
--   build/proteus tests/run.lua tests/gpu/test_elementwise.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Fresh random inputs per run (seed printed on failure; PT_TEST_SEED=N repeats one), shapes that
-- cover same-shape, broadcasting and transposed (non-contiguous) operands. Before each device op
-- the allocator's next block of the output's size is poisoned (0xFF bytes: NaN for floats, -1 for
-- integers, true for bools), so unwritten elements show. Error bound (METHOD.md): relative norm
-- ||gpu - cpu|| / ||cpu|| within 1e-5 (f32), 1e-12 (f64), 1e-2 (bf16, whose oracle is f32 on the
-- bf16 inputs, rounded once); exact for integers, bools, where, casts and fill; NaN only where the
-- CPU has NaN. The fast_path_* tests run contiguous operands (aligned, one element off alignment, sizes
-- around the vector widths) and strided views of the same values, and require the same values from both.
-- Skips without a device. PROTEUS_GPU_TEST_DEVICE=cpu runs the suite against itself
-- (checks the harness on a machine without a GPU).
local pt = require "proteus"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SEED = G.DEV, G.SEED
math.randomseed(SEED)
local M = pt.Tensor

local need_device = G.need_device

-- bf16 arithmetic exists only on the GPU: the self-check on the CPU leaves it out
local FLOATS = DEV == "cpu" and { "f32", "f64" } or { "f32", "f64", "bf16" }
local ALL = DEV == "cpu" and { "f32", "f64", "i64", "i32" } or { "f32", "f64", "bf16", "i64", "i32" }
local INTS = { i64 = true, i32 = true }
local TOL = { f32 = 1e-5, f64 = 1e-12, bf16 = 1e-2 }

local function numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

-- random CPU tensor: integers are whole numbers; |x| >= minabs
local function rand(shape, dtype, lo, hi, minabs)
  local flat = {}
  for i = 1, numel(shape) do
    local v
    repeat
      v = lo + (hi - lo) * math.random()
      if INTS[dtype] then v = math.floor(v + 0.5) end
    until math.abs(v) >= (minabs or 0)
    flat[i] = v
  end
  return pt.tensor(flat, "f64"):reshape(shape):to(dtype)
end

local BYTES = { f32 = 4, f64 = 8, bf16 = 2, f16 = 2, i64 = 8, i32 = 4, u16 = 2, i8 = 1, u8 = 1, bool = 1 }
-- makes the device's next allocation of nbytes come back full of 0xFF (LIFO reuse in the cache)
local function poison(nbytes)
  if DEV == "cpu" then return end
  local t = pt.full({ nbytes }, 255, { dtype = "u8", device = DEV })
  t:release()
end

local function oracle_in(t) -- bf16 computes in f32 on the CPU
  t = t:to("cpu")
  if t:dtype() == "bf16" then return t:to("f32") end
  return t
end

local function compare(what, got, want, tol)
  got = got:to("cpu"):to("f64")
  want = want:to("cpu"):to("f64")
  local gs, ws = got:shape(), want:shape()
  assert(#gs == #ws, what .. ": ndim differs")
  for i = 1, #ws do assert(gs[i] == ws[i], what .. ": shapes differ") end
  local num, den, nan_bad, exact_bad = 0, 0, 0, 0
  for i = 1, want:numel() do
    local g, w = got:flat_get(i), want:flat_get(i)
    if g ~= g or w ~= w then
      if (g ~= g) ~= (w ~= w) then nan_bad = nan_bad + 1 end
    elseif math.abs(w) == math.huge or math.abs(g) == math.huge then
      if g ~= w then exact_bad = exact_bad + 1 end
    else
      num = num + (g - w) ^ 2
      den = den + w * w
      if tol == 0 and g ~= w then exact_bad = exact_bad + 1 end
    end
  end
  local rel = den > 0 and math.sqrt(num / den) or math.sqrt(num)
  if nan_bad > 0 or exact_bad > 0 or rel > tol then
    error(string.format("%s: rel err %.3g (tol %g), %d NaN mismatches, %d exact mismatches of %d (seed %d)",
      what, rel, tol, nan_bad, exact_bad, want:numel(), SEED), 2)
  end
end

local function tol_of(dtype) return TOL[dtype] or 0 end

-- operand pairs: k = 1 same shape, 2 broadcast [37,1] op [29], 3 transposed a op contiguous b
local function pair(k, dtype, lo, hi, minabs_b)
  local a, b
  if k == 1 then
    a, b = rand({ 37, 29 }, dtype, lo, hi), rand({ 37, 29 }, dtype, lo, hi, minabs_b)
  elseif k == 2 then
    a, b = rand({ 37, 1 }, dtype, lo, hi), rand({ 29 }, dtype, lo, hi, minabs_b)
  else
    a, b = rand({ 29, 37 }, dtype, lo, hi), rand({ 37, 29 }, dtype, lo, hi, minabs_b)
  end
  local ga, gb = a:to(DEV), b:to(DEV)
  if k == 3 then a, ga = a:transpose(1, 2), ga:transpose(1, 2) end
  return a, b, ga, gb
end

local BINOPS = { "add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge" }
local CMP = { eq = true, ne = true, lt = true, le = true, gt = true, ge = true }
local UNOPS = { "neg", "exp", "log", "tanh", "sigmoid", "relu", "sqrt", "rsqrt", "abs", "sign", "round", "sin", "cos",
  "square", "reciprocal" }
local POSITIVE = { log = true, sqrt = true, rsqrt = true, reciprocal = true }
local INT_UNOPS = { neg = true, abs = true, sign = true, square = true }

local function ranges(op, dtype)
  local int = INTS[dtype]
  local lo, hi, mb = int and -20 or -2, int and 20 or 2, 0
  if op == "div" then mb = int and 1 or 0.25 end
  if op == "pow" then lo, hi = int and 0 or 0.1, int and 4 or 2 end
  return lo, hi, mb
end

local tests = {}

function tests.binary_every_op_dtype_geometry(T)
  need_device(T)
  for _, dt in ipairs(ALL) do
    for _, op in ipairs(BINOPS) do
      for k = 1, 3 do
        local lo, hi, mb = ranges(op, dt)
        local a, b, ga, gb = pair(k, dt, lo, hi, mb)
        poison(37 * 29 * (CMP[op] and 1 or BYTES[dt]))
        local got = M[op](ga, gb)
        local want = M[op](oracle_in(a), oracle_in(b))
        if dt == "bf16" and not CMP[op] then want = want:to("bf16") end
        compare(string.format("%s %s geometry %d", op, dt, k), got, want, CMP[op] and 0 or tol_of(dt))
      end
    end
  end
end

function tests.binary_with_scalar_on_either_side(T)
  need_device(T)
  for _, dt in ipairs(ALL) do
    for _, op in ipairs(BINOPS) do
      for _, first in ipairs { false, true } do
        local int = INTS[dt]
        local s = int and 3 or 0.75
        local lo, hi = int and -20 or -2, int and 20 or 2
        if op == "pow" then lo, hi = int and 0 or 0.1, int and 4 or 2 end
        local mb = (op == "div" and first) and (int and 1 or 0.25) or 0
        local a0 = rand({ 29, 37 }, dt, lo, hi, mb)
        local a, ga = a0:transpose(1, 2), a0:to(DEV):transpose(1, 2)
        local got = first and M[op](s, ga) or M[op](ga, s)
        local want = first and M[op](s, oracle_in(a)) or M[op](oracle_in(a), s)
        if got:dtype() == "bf16" then want = want:to("bf16") end
        local exact = CMP[op] or INTS[got:dtype()]
        compare(string.format("%s %s scalar %s", op, dt, first and "first" or "second"), got, want,
          exact and 0 or tol_of(got:dtype()))
      end
    end
  end
end

function tests.unary_every_op_on_transposed_input(T)
  need_device(T)
  for _, dt in ipairs(ALL) do
    for _, op in ipairs(UNOPS) do
      if not INTS[dt] or INT_UNOPS[op] then
        local lo, hi = POSITIVE[op] and 0.1 or -3, 3
        if INTS[dt] then lo, hi = -1000, 1000 end
        local a0 = rand({ 29, 37 }, dt, lo, hi)
        local a, ga = a0:transpose(1, 2), a0:to(DEV):transpose(1, 2)
        poison(37 * 29 * BYTES[dt])
        local got = M[op](ga)
        local want = M[op](oracle_in(a))
        if dt == "bf16" then want = want:to("bf16") end
        compare(op .. " " .. dt, got, want, tol_of(dt))
      end
    end
  end
end

function tests.leaky_relu_clamp_where(T)
  need_device(T)
  for _, dt in ipairs(ALL) do
    local a0 = rand({ 29, 37 }, dt, -3, 3)
    local a, ga = a0:transpose(1, 2), a0:to(DEV):transpose(1, 2)
    if not INTS[dt] then
      local r = dt == "bf16" and "bf16" or dt
      compare("leaky_relu " .. dt, ga:leaky_relu(0.1), oracle_in(a):leaky_relu(0.1):to(r), tol_of(dt))
      compare("clamp " .. dt, ga:clamp(-0.5, 0.7), oracle_in(a):clamp(-0.5, 0.7):to(r), tol_of(dt))
    end
    local cond = rand({ 37, 1 }, "f32", -1, 1):gt(0)
    local b = rand({ 29 }, dt, -3, 3)
    poison(37 * 29 * BYTES[dt])
    local got = pt.where(cond:to(DEV), ga, b:to(DEV))
    local want = pt.where(cond, oracle_in(a), oracle_in(b))
    compare("where " .. dt, got, want:to(dt), 0)
  end
end

-- backward kernels (unary, leaky, clamp) and sum_to (broadcast gradients), through autograd
function tests.backward_matches_cpu(T)
  need_device(T)
  for _, dt in ipairs { "f32", "f64" } do
    local ops = {}
    for _, op in ipairs(UNOPS) do ops[#ops + 1] = op end
    ops[#ops + 1] = "leaky_relu"
    ops[#ops + 1] = "clamp"
    for _, op in ipairs(ops) do
      local lo = POSITIVE[op] and 0.1 or -3
      local flat, gflat = {}, {}
      for i = 1, 37 * 29 do
        flat[i] = lo + (3 - lo) * math.random()
        gflat[i] = 2 * math.random() - 1
      end
      local function run(dev)
        local x = pt.tensor(flat, { dtype = dt, device = dev, requires_grad = true })
        local y
        if op == "leaky_relu" then y = x:leaky_relu(0.1)
        elseif op == "clamp" then y = x:clamp(-0.5, 0.7)
        else y = M[op](x) end
        y:backward(pt.tensor(gflat, { dtype = dt, device = dev }))
        return x.grad
      end
      compare("backward " .. op .. " " .. dt, run(DEV), run("cpu"), tol_of(dt))
    end
    -- broadcast add/mul: gradients summed back to [37,1] and [29] (sum_to)
    local a, b = rand({ 37, 1 }, dt, -1, 1), rand({ 29 }, dt, -1, 1)
    local function grads(dev)
      local x = pt.tensor(a:totable(), { dtype = dt, device = dev, requires_grad = true })
      local y = pt.tensor(b:totable(), { dtype = dt, device = dev, requires_grad = true })
      local z = (x * y) + x
      z:backward(pt.ones({ 37, 29 }, { dtype = dt, device = dev }))
      return x.grad, y.grad
    end
    local gx, gy = grads(DEV)
    local cx, cy = grads("cpu")
    compare("sum_to grad [37,1] " .. dt, gx, cx, tol_of(dt))
    compare("sum_to grad [29] " .. dt, gy, cy, tol_of(dt))
  end
end

function tests.add_inplace_axpy(T)
  need_device(T)
  for _, dt in ipairs(FLOATS) do
    for k = 1, 2 do
      local x = rand({ 37, 29 }, dt, -1, 1)
      local y0 = k == 1 and rand({ 29 }, dt, -1, 1) or rand({ 29, 37 }, dt, -1, 1)
      local gx, gy = x:to(DEV), y0:to(DEV)
      local cx, cy = oracle_in(x):clone(), oracle_in(y0)
      if k == 2 then gy, cy = gy:transpose(1, 2), cy:transpose(1, 2) end
      gx:add_(gy, 0.3)
      cx:add_(cy, 0.3)
      compare("add_ " .. dt .. (k == 1 and " broadcast" or " transposed"), gx, cx:to(dt), tol_of(dt))
    end
  end
end

function tests.cast_every_dtype_pair_from_transposed_views(T)
  need_device(T)
  for _, sd in ipairs(pt.dtypes) do
    local f = rand({ 23, 41 }, "f64", -300, 300)
    f:flat_set(5, 0 / 0)
    f:flat_set(6, 1e30)
    f:flat_set(7, -1e30)
    f:flat_set(8, 2.5)
    local src = f:to(sd)
    local cv, gv = src:transpose(1, 2), src:to(DEV):transpose(1, 2)
    for _, dd in ipairs(pt.dtypes) do
      poison(23 * 41 * BYTES[dd])
      compare(string.format("cast %s -> %s", sd, dd), gv:to(dd), cv:to(dd), 0)
    end
  end
end

function tests.fill_strided_views(T)
  need_device(T)
  for _, dt in ipairs(pt.dtypes) do
    local c = rand({ 19, 13 }, dt, 0, 5)
    local g = c:to(DEV)
    g:transpose(1, 2):fill_(-3.7)
    c:transpose(1, 2):fill_(-3.7)
    compare("fill_ " .. dt, g, c, 0)
  end
end

-- ---- the contiguous fast path (elementwise.cu k_fast, copy.cu k_cast_fast): contiguous operands at
-- storage offset 0 or one element in (not 16-byte aligned), sizes around the vector widths, against the
-- same values read through strided views (the general kernels: the same values required, exactly) and
-- against the CPU within the usual bounds ----
local FAST_SIZES = { 1, 3, 4, 7, 1023, 4097 }

-- one set of values as: cpu (contiguous at offset off of its storage), fast (the same on DEV) and slow
-- (on DEV, every other element of a shape..x2 storage: strided)
local function trio(shape, dtype, lo, hi, minabs, off)
  local n = numel(shape)
  local base = rand({ n + off }, dtype, lo, hi, minabs)
  local cpu = base:narrow(1, 1 + off, n):view(shape)
  local fast = base:to(DEV):narrow(1, 1 + off, n):view(shape)
  local wshape = {}
  for i, s in ipairs(shape) do wshape[i] = s end
  wshape[#shape + 1] = 2
  local w = pt.zeros(wshape, { dtype = dtype })
  w:select(#wshape, 1):copy_(cpu)
  local slow = w:to(DEV):select(#wshape, 1)
  assert(fast:is_contiguous() and not slow:is_contiguous() or n == 1)
  return cpu, fast, slow
end

local function check3(T, what, fast, slow, cpu, tol)
  G.same(T, what .. " (fast vs general kernel)", fast, slow)
  compare(what, fast, cpu, tol)
end

function tests.fast_path_binary_unary_sizes_and_misaligned(T)
  need_device(T)
  local ops = { "add", "sub", "mul", "div", "pow", "maximum", "lt" }
  local unops = { "neg", "exp", "tanh", "sigmoid", "sqrt", "relu", "square" }
  for _, dt in ipairs(FLOATS) do
    for _, n in ipairs(FAST_SIZES) do
      for off = 0, 1 do
        for _, op in ipairs(ops) do
          local lo, hi, mb = ranges(op, dt)
          local ca, fa, sa = trio({ n }, dt, lo, hi, 0, off)
          local cb, fb, sb = trio({ n }, dt, lo, hi, mb, 0)
          local want = M[op](oracle_in(ca), oracle_in(cb))
          if dt == "bf16" and not CMP[op] then want = want:to("bf16") end
          local what = string.format("fast %s %s n=%d offset %d", op, dt, n, off)
          check3(T, what, M[op](fa, fb), M[op](sa, sb), want, CMP[op] and 0 or tol_of(dt))
          for _, first in ipairs { false, true } do
            local s = (op == "pow" and first) and 1.5 or 0.75
            local got = first and M[op](s, fb) or M[op](fb, s)
            local gen = first and M[op](s, sb) or M[op](sb, s)
            want = first and M[op](s, oracle_in(cb)) or M[op](oracle_in(cb), s)
            if dt == "bf16" and not CMP[op] then want = want:to("bf16") end
            check3(T, what .. (first and " scalar first" or " scalar second"), got, gen, want,
              CMP[op] and 0 or tol_of(dt))
          end
        end
        for _, op in ipairs(unops) do
          local ca, fa, sa = trio({ n }, dt, POSITIVE[op] and 0.1 or -3, 3, 0, off)
          local want = M[op](oracle_in(ca))
          if dt == "bf16" then want = want:to("bf16") end
          check3(T, string.format("fast %s %s n=%d offset %d", op, dt, n, off), M[op](fa), M[op](sa), want, tol_of(dt))
        end
        local ca, fa, sa = trio({ n }, dt, -3, 3, 0, off)
        local r = dt == "bf16" and "bf16" or dt
        check3(T, string.format("fast leaky_relu %s n=%d offset %d", dt, n, off), fa:leaky_relu(0.1),
          sa:leaky_relu(0.1), oracle_in(ca):leaky_relu(0.1):to(r), tol_of(dt))
        check3(T, string.format("fast clamp %s n=%d offset %d", dt, n, off), fa:clamp(-0.5, 0.7), sa:clamp(-0.5, 0.7),
          oracle_in(ca):clamp(-0.5, 0.7):to(r), tol_of(dt))
        local cc, fc, sc = trio({ n }, "u8", 0, 1, 0, 1 - off)
        local cb, fb, sb = trio({ n }, dt, -3, 3, 0, 0)
        local cond_c, cond_f, cond_s = cc:gt(0), fc:gt(0), sc:gt(0)
        check3(T, string.format("fast where %s n=%d offset %d", dt, n, off), pt.where(cond_f, fa, fb),
          pt.where(cond_s, sa, sb), pt.where(cond_c, oracle_in(ca), oracle_in(cb)):to(dt), 0)
      end
    end
  end
end

function tests.fast_path_row_broadcast_and_axpy(T)
  need_device(T)
  for _, dt in ipairs(FLOATS) do
    for _, rc in ipairs { { 5, 8 }, { 3, 7 }, { 4, 1024 }, { 9, 1 } } do
      for off = 0, 1 do
        for _, op in ipairs { "add", "mul", "sub", "div" } do
          local lo, hi, mb = ranges(op, dt)
          local cm, fm, sm = trio(rc, dt, lo, hi, mb, 0)
          local cv, fv, sv = trio({ rc[2] }, dt, lo, hi, mb, off)
          local c1, f1, s1 = trio({ 1 }, dt, lo, hi, mb, off)
          local what = string.format("fast %s %s [%d,%d] offset %d", op, dt, rc[1], rc[2], off)
          local function want(x, y)
            local w = M[op](oracle_in(x), oracle_in(y))
            return dt == "bf16" and w:to("bf16") or w
          end
          check3(T, what .. " matrix op row", M[op](fm, fv), M[op](sm, sv), want(cm, cv), tol_of(dt))
          check3(T, what .. " row op matrix", M[op](fv, fm), M[op](sv, sm), want(cv, cm), tol_of(dt))
          check3(T, what .. " matrix op [1]", M[op](fm, f1), M[op](sm, s1), want(cm, c1), tol_of(dt))
          check3(T, what .. " [1] op matrix", M[op](f1, fm), M[op](s1, sm), want(c1, cm), tol_of(dt))
        end
        -- add_ (axpy): out contiguous at offset off, y [C] over its rows, the same shape, or [1]
        for form = 1, 3 do
          local co, fo = trio(rc, dt, -1, 1, 0, off)
          local yshape = form == 1 and { rc[2] } or (form == 2 and rc or { 1 })
          local cy, fy, sy = trio(yshape, dt, -1, 1, 0, off)
          local gen, want = fo:clone(), oracle_in(co):clone() -- before fo changes (on the CPU, co is fo)
          want:add_(oracle_in(cy), 0.3)
          fo:add_(fy, 0.3)
          gen:add_(sy, 0.3)
          check3(T, string.format("fast add_ %s [%d,%d] form %d offset %d", dt, rc[1], rc[2], form, off), fo, gen,
            want:to(dt), tol_of(dt))
        end
      end
    end
  end
end

function tests.fast_path_contiguous_casts(T)
  need_device(T)
  local fl = { "f32", "f64", "bf16", "f16" }
  for _, n in ipairs(FAST_SIZES) do
    for off = 0, 1 do
      for _, sd in ipairs(fl) do
        local c, f, s = trio({ n }, sd, -300, 300, 0, off)
        for _, dd in ipairs(fl) do
          check3(T, string.format("fast cast %s -> %s n=%d offset %d", sd, dd, n, off), f:to(dd), s:to(dd), c:to(dd), 0)
        end
      end
    end
  end
end

return tests
