--- tests/lua/test_elementwise_torch.lua — randomized comparison of the elementwise family against PyTorch
-- (Debian's /usr/bin/python3 with python3-torch), forward and backward.
--
--   build/proteus tests/run.lua tests/lua/test_elementwise_torch.lua [--match cast]
--
-- Cases (f32, and f64 for a subset; shapes drawn per case from broadcasting pairs, seed fixed):
-- binary add sub mul div pow maximum minimum with broadcasting, the comparisons eq ne lt le gt ge;
-- ops with a scalar on either side (x + s, s - x, x * s, s / x, x ^ s, s ^ x); unary neg exp log tanh
-- sigmoid relu sqrt rsqrt abs sign round sin cos square reciprocal (inputs kept in each op's domain,
-- round gets exact .5 ties); where with a broadcast condition; clamp; leaky_relu; casts f32/f64 ->
-- bf16/f16 with round-to-nearest-even (exact ties, subnormals, overflow to inf, NaN), compared bit for
-- bit, and their backward (the gradient rounded to the narrow type). Each case's output y is compared
-- with PyTorch's, and the gradients of its inputs after y:backward(g) for a random g (broadcast
-- inputs: summed back to their shape). Exchange: proteus.safetensors files read and written by
-- tests/reference/elementwise_ref.py. Tolerance |d| <= atol + rtol·|ref| (f32: 1e-6 + 2e-6 for
-- + - * / max min where clamp leaky and casts exact; 1e-5 relative for transcendental ops, whose libm
-- and PyTorch's vectorised versions differ by a few ulp; f64: 1e-12).
-- Skipped, with the reason, when /usr/bin/python3 cannot import torch (PROTEUS_TEST_PYTHON names
-- another interpreter).
local pt = require "proteus"
local st = require "proteus.safetensors"

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local REF = here .. "../reference/elementwise_ref.py"
local PY = os.getenv("PROTEUS_TEST_PYTHON") or "/usr/bin/python3"

local torch_ok, torch_why
local function need_torch(T)
  if torch_ok == nil then
    local f = io.popen(PY .. " -c 'import torch; print(torch.__version__)' 2>&1")
    local out = f:read("a")
    torch_ok = f:close() and true or false
    torch_why = out:gsub("%s+$", ""):match("([^\n]*)$")
  end
  if not torch_ok then
    T.skip(PY .. " cannot import torch (" .. torch_why:sub(-120) .. "); install Debian's python3-torch")
  end
end

-- broadcasting shape pairs (a, b)
local PAIRS = {
  { { 3, 4, 5 }, { 3, 4, 5 } }, { { 3, 4, 5 }, { 4, 1 } }, { { 2, 1, 5 }, { 1, 3, 1 } }, { { 6 }, { 2, 6 } },
  { { 4, 5 }, { 1 } }, { { 2, 3, 1, 4 }, { 3, 5, 1 } }, { { 1 }, { 3, 2 } }, { { 7, 1 }, { 1, 9 } },
}

-- builds the cases: name -> {spec, a, b, c, run = fn(a, b, c) -> y, kind}
local function make_cases()
  pt.manual_seed(20261123)
  math.randomseed(20261123)
  local cases, order = {}, {}
  local function add(name, spec, ins, run, tol)
    cases[name] = { spec = spec, ins = ins, run = run, tol = tol }
    order[#order + 1] = name
  end
  local function pair(i) local p = PAIRS[(i - 1) % #PAIRS + 1]; return p[1], p[2] end
  local function pos(shape, dt) return (pt.rand(shape, dt) * 2 + 0.25) end
  local EXACT, TRANS = { 1e-6, 2e-6 }, { 1e-6, 1e-5 }
  local bins = { "add", "sub", "mul", "div", "pow", "maximum", "minimum" }
  local binops = {
    add = function(a, b) return a + b end, sub = function(a, b) return a - b end,
    mul = function(a, b) return a * b end, div = function(a, b) return a / b end,
    pow = function(a, b) return a ^ b end,
    maximum = function(a, b) return a:maximum(b) end, minimum = function(a, b) return a:minimum(b) end,
  }
  for _, dt in ipairs { "f32", "f64" } do
    for i, op in ipairs(bins) do
      for j = 0, (dt == "f32" and 2 or 0) do
        local sa, sb = pair(i + 3 * j)
        local a, b = pt.randn(sa, dt), pt.randn(sb, dt)
        if op == "div" then b = b:sign() * (b:abs() + 0.5) end
        if op == "pow" then a = pos(sa, dt) end
        add(string.format("bin_%s_%s_%d", op, dt, j), "bin:" .. op, { a = a, b = b }, binops[op],
          op == "pow" and TRANS or EXACT)
      end
    end
  end
  for i, op in ipairs { "eq", "ne", "lt", "le", "gt", "ge" } do
    local sa, sb = pair(i)
    -- small integers as floats, so equal values occur
    local a, b = pt.randint(-2, 3, sa):to("f32"), pt.randint(-2, 3, sb):to("f32")
    add("cmp_" .. op, "bin:" .. op, { a = a, b = b }, function(x, y) return x[op](x, y) end, { 0, 0 })
  end
  local scal = {
    { "add", 2.5, false, function(x) return x + 2.5 end }, { "sub", -1.25, true, function(x) return -1.25 - x end },
    { "mul", 0.3, false, function(x) return x * 0.3 end }, { "div", 1.7, true, function(x) return 1.7 / x end },
    { "pow", 2.5, false, function(x) return x ^ 2.5 end }, { "pow", 1.5, true, function(x) return 1.5 ^ x end },
    { "sub", 4.0, false, function(x) return x - 4.0 end }, { "div", -3.0, false, function(x) return x / -3.0 end },
  }
  for k, s in ipairs(scal) do
    for _, dt in ipairs { "f32", "f64" } do
      local shape = ({ { 3, 4 }, { 17 }, { 2, 3, 5 } })[k % 3 + 1]
      local a = (s[1] == "pow" and not s[3] or s[1] == "div" and s[3]) and pos(shape, dt) or pt.randn(shape, dt)
      add(string.format("scal_%s_%s%s_%s", s[1], s[3] and "first_" or "", tostring(s[2]), dt),
        string.format("scal:%s:%.17g:%d", s[1], s[2], s[3] and 1 or 0), { a = a }, s[4],
        s[1] == "pow" and TRANS or EXACT)
    end
  end
  local uns = { neg = EXACT, exp = TRANS, log = TRANS, tanh = TRANS, sigmoid = TRANS, relu = EXACT,
    sqrt = TRANS, rsqrt = TRANS, abs = EXACT, sign = EXACT, round = EXACT, sin = TRANS, cos = TRANS,
    square = EXACT, reciprocal = EXACT }
  local names = {}
  for k in pairs(uns) do names[#names + 1] = k end
  table.sort(names)
  for _, op in ipairs(names) do
    for _, dt in ipairs { "f32", "f64" } do
      local shape = { 5, 7 }
      local a
      if op == "log" or op == "sqrt" or op == "rsqrt" or op == "reciprocal" then a = pos(shape, dt)
      elseif op == "round" then a = pt.randint(-6, 7, shape):to(dt) * 0.5 + pt.randn(shape, dt) * 0.01 * pt.randint(0, 2, shape):to(dt)
      else a = pt.randn(shape, dt) * 2 end
      add(string.format("un_%s_%s", op, dt), "un:" .. op, { a = a }, function(x) return x[op](x) end, uns[op])
    end
  end
  for i = 1, 3 do
    local sa, sb = pair(i + 1)
    local a, b = pt.randn(sa), pt.randn(sb)
    local y0 = a + b -- the broadcast shape
    local shape = y0:shape()
    local cshape = { table.unpack(shape, 2) }
    if #cshape == 0 then cshape = { 1 } end
    local c = pt.randint(0, 2, cshape):to("u8")
    add("where_" .. i, "where", { a = a, b = b, c = c }, function(x, y, cc) return pt.where(cc, x, y) end, EXACT)
  end
  for _, dt in ipairs { "f32", "f64" } do
    add("clamp_" .. dt, "clamp:-0.5:0.75", { a = pt.randn({ 6, 9 }, dt) }, function(x) return x:clamp(-0.5, 0.75) end, EXACT)
    add("leaky_" .. dt, "leaky:0.2", { a = pt.randn({ 6, 9 }, dt) }, function(x) return x:leaky_relu(0.2) end, EXACT)
  end
  -- casts: random values over many magnitudes plus exact ties, subnormals, overflow, specials
  local special = {
    1 + 2 ^ -8, 1 + 3 * 2 ^ -8, -(1 + 2 ^ -8), 1 + 2 ^ -11, 1 + 3 * 2 ^ -11, 2 ^ -133, 2 ^ -126 * 1.5,
    2 ^ -24, 2 ^ -25, 3 * 2 ^ -26, 6e-8, 65504, 65519, 65520, 70000, 3.3e38, -3.3e38, 0.0, -0.0,
    1 / 0, -1 / 0, 0 / 0, 0.1, 1 / 3, 1e-5, 123456.789,
  }
  for _, dt in ipairs { "f32", "f64" } do
    for _, to in ipairs { "bf16", "f16" } do
      local r = pt.randn({ 40 }, "f64") * pt.tensor({ 10 }, "f64") ^ (pt.rand({ 40 }, "f64") * 20 - 10)
      local a = pt.cat({ pt.tensor(special, dt), r:to(dt) }, 1)
      add(string.format("cast_%s_%s", dt, to), "cast:" .. to, { a = a },
        function(x) return x:to(to) end, { 0, 0 })
    end
  end
  return cases, order
end

local function tmpbase()
  local p = os.tmpname()
  os.remove(p)
  return p
end

-- max over elements of |got - want| - (atol + rtol |want|) > 0 means a mismatch; NaNs must match, infs equal
local function check(what, got, want, tol)
  assert(got, what .. ": proteus produced nothing")
  assert(want, what .. ": the reference wrote nothing")
  local gs, ws = got:shape(), want:shape()
  assert(#gs == #ws, string.format("%s: shape %s vs reference %s", what, table.concat(gs, "x"), table.concat(ws, "x")))
  for i = 1, #gs do
    assert(gs[i] == ws[i], string.format("%s: shape %s vs reference %s", what, table.concat(gs, "x"), table.concat(ws, "x")))
  end
  local g, w = got:to("f64"):reshape({ -1 }):totable(), want:to("f64"):reshape({ -1 }):totable()
  for i = 1, #g do
    local a, b = g[i], w[i]
    local ok
    if b ~= b then ok = a ~= a
    elseif b == math.huge or b == -math.huge then ok = a == b
    else ok = math.abs(a - b) <= tol[1] + tol[2] * math.abs(b) end
    if ok and tol[1] == 0 and tol[2] == 0 and b == 0 then ok = (1 / a) == (1 / b) end -- signed zero
    if not ok then
      error(string.format("%s: element %d is %.9g, PyTorch gives %.9g (tolerance %g + %g|ref|)", what, i, a, b,
        tol[1], tol[2]), 0)
    end
  end
end

local compute_once
local results, failed -- computed once for all tests (a failure too)
local function compute(T)
  need_torch(T)
  if failed then error(failed, 0) end
  if results then return results end
  local okc, r = pcall(function() return compute_once() end)
  if not okc then failed = r; error(r, 0) end
  results = r
  return r
end

compute_once = function()
  local cases, order = make_cases()
  local ins, meta, ours = {}, {}, {}
  for _, name in ipairs(order) do
    local c = cases[name]
    meta[name] = c.spec
    local a = c.ins.a:detach()
    local b = c.ins.b and c.ins.b:detach()
    ins[name .. ".a"] = a
    if b then ins[name .. ".b"] = b end
    if c.ins.c then ins[name .. ".c"] = c.ins.c end
    local float = c.spec:sub(1, 4) ~= "bin:" or not c.spec:match(":[eqnlgt][qte]$")
    if float then a.requires_grad = true; if b then b.requires_grad = true end end
    local y = c.run(a, b, c.ins.c)
    local r = { y = y }
    if c.spec:sub(1, 5) == "cast:" then
      local g = pt.randn(y:shape(), a:dtype())
      ins[name .. ".g"] = g
      ;(y:to(a:dtype()) * g):sum():backward()
      r.ga = a.grad
    elseif float then
      local g = pt.randn(y:shape(), y:dtype())
      ins[name .. ".g"] = g
      y:backward(g)
      r.ga = a.grad or pt.zeros(a:shape(), a:dtype())
      if b then r.gb = b.grad or pt.zeros(b:shape(), b:dtype()) end
    else
      ins[name .. ".g"] = pt.zeros({ 1 })
    end
    ours[name] = r
  end
  local base = tmpbase()
  local ipath, opath = base .. "-in.safetensors", base .. "-out.safetensors"
  st.save(ipath, ins, meta)
  local cmd = string.format("%s '%s' '%s' '%s' 2>&1", PY, REF, ipath, opath)
  local f = io.popen(cmd)
  local out = f:read("a")
  local ok, _, code = f:close()
  os.remove(ipath)
  assert(ok, string.format("elementwise_ref.py failed (exit %s): %s\n%s", tostring(code), cmd, out))
  local ref = st.load(opath)
  os.remove(opath)
  return { cases = cases, order = order, ours = ours, ref = ref }
end

local function run_group(T, prefix)
  local R = compute(T)
  local n = 0
  for _, name in ipairs(R.order) do
    if name:sub(1, #prefix) == prefix then
      local c, o = R.cases[name], R.ours[name]
      local tol = c.tol
      if name:match("f64") then tol = { 1e-12, 1e-12 } end
      if c.spec:sub(1, 5) == "cast:" then
        -- bit-exact: compare the raw 16-bit patterns through the narrow dtype
        T.eq(o.y:dtype(), c.spec:sub(6), name .. " output dtype")
        check(name .. " forward", o.y:to("f64"), R.ref[name .. ".y"]:to("f64"), { 0, 0 })
        check(name .. " grad a", o.ga, R.ref[name .. ".ga"], { 0, 0 })
      else
        check(name .. " forward", o.y, R.ref[name .. ".y"], tol)
        if o.ga then
          -- gradients add a few terms (broadcast sums): 4x the forward tolerance
          local gt = { tol[1] * 4, tol[2] * 4 }
          check(name .. " grad a", o.ga, R.ref[name .. ".ga"], gt)
          if o.gb then check(name .. " grad b", o.gb, R.ref[name .. ".gb"], gt) end
        end
      end
      n = n + 1
    end
  end
  assert(n > 0, "no cases with prefix " .. prefix)
end

local tests = {}
for _, g in ipairs { "bin_", "cmp_", "scal_", "un_", "where_", "clamp_", "leaky_", "cast_" } do
  tests[#tests + 1] = { g:gsub("_$", ""), function(T) run_group(T, g) end }
end
return tests
