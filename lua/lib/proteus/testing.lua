--- proteus.testing — helpers for tests: finite-difference gradient checks and tensor comparisons.
--
--   local testing = require "proteus.testing"
--   local ok, report = testing.gradcheck(function(x, w) return (x * w):tanh() end,
--                                        { pt.randn({3, 4}, "f64"), pt.randn({4}, "f64") })
--
-- gradcheck projects the output on a fixed random tensor r (so any output shape works without a
-- reduction op), runs backward(r) for the analytic gradient and central differences of <r, f(x)>
-- for the numeric one, per element of every input that requires grad. Inputs should be f64.
local pt = require "proteus"

local testing = {}

local function flat(t)
  local n = t:numel()
  local out = {}
  for i = 1, n do out[i] = t:flat_get(i) end
  return out
end
testing.flat = flat

-- deterministic pseudo-random numbers in [-1, 1] (independent of the tensor RNG)
local function lcg(seed)
  local s = seed
  return function()
    s = (s * 6364136223846793005 + 1442695040888963407)
    return ((s >> 33) % 2000001) / 1000000 - 1
  end
end

local function fill_random(t, rnd)
  for i = 1, t:numel() do t:flat_set(i, rnd()) end
  return t
end

local function as_list(out)
  if pt.is_tensor(out) then return { out } end
  return out
end

local function project(outs, rs)
  local s = 0
  for k, o in ipairs(outs) do
    local a, b = flat(o), flat(rs[k])
    for i = 1, #a do s = s + a[i] * b[i] end
  end
  return s
end

--- Checks the gradients of fn at inputs. opts: eps (1e-6), atol (1e-5), rtol (1e-4), seed.
-- Returns true, or false and a message naming the input, element, analytic and numeric values.
function testing.gradcheck(fn, inputs, opts)
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-6, opts.atol or 1e-5, opts.rtol or 1e-4
  local rnd = lcg(opts.seed or 1234)
  local leaves = {}
  for k, x in ipairs(inputs) do
    if pt.is_tensor(x) and x:dtype() == "f64" and opts.no_grad ~= k then
      local leaf = x:detach():clone()
      leaf.requires_grad = true
      leaves[k] = leaf
    else
      leaves[k] = x
    end
  end
  local outs = as_list(fn(table.unpack(leaves, 1, #inputs)))
  local rs = {}
  for k, o in ipairs(outs) do rs[k] = fill_random(pt.zeros(o:shape(), o:dtype()), rnd) end
  -- analytic: the gradient of sum_k <r_k, out_k>; each output's backward runs on a fresh graph
  -- and the leaves accumulate
  local any = false
  for k, o in ipairs(outs) do
    if o.requires_grad then
      any = true
      local fresh = as_list(fn(table.unpack(leaves, 1, #inputs)))
      fresh[k]:backward(rs[k])
    end
  end
  if not any then return false, "gradcheck: no output requires grad" end
  for k, x in ipairs(leaves) do
    if pt.is_tensor(x) and x.requires_grad then
      local g = x.grad
      for i = 1, x:numel() do
        local orig = x:flat_get(i)
        local fp, fm
        pt.no_grad(function()
          x.requires_grad = false
          x:flat_set(i, orig + eps)
          fp = project(as_list(fn(table.unpack(leaves, 1, #inputs))), rs)
          x:flat_set(i, orig - eps)
          fm = project(as_list(fn(table.unpack(leaves, 1, #inputs))), rs)
          x:flat_set(i, orig)
          x.requires_grad = true
        end)
        local num = (fp - fm) / (2 * eps)
        local ana = g and g:flat_get(i) or 0
        if math.abs(num - ana) > atol + rtol * math.abs(num) then
          return false, string.format("gradcheck: input %d element %d: analytic %.10g, numeric %.10g", k, i, ana, num)
        end
      end
    end
  end
  return true
end

--- Max absolute difference between two tensors of the same shape (any dtypes, CPU). NaN on both sides
--- counts as equal; NaN on one side only is an infinite difference (math.max would drop it).
function testing.max_abs_diff(a, b)
  local x, y = flat(a:to("f64"):to("cpu")), flat(b:to("f64"):to("cpu"))
  assert(#x == #y, "max_abs_diff: sizes differ")
  local m = 0
  for i = 1, #x do
    local xn, yn = x[i] ~= x[i], y[i] ~= y[i]
    if xn ~= yn then return math.huge end
    if not xn then m = math.max(m, math.abs(x[i] - y[i])) end
  end
  return m
end

testing.random_fill = function(t, seed) return fill_random(t, lcg(seed or 1)) end

--- Relative norm ‖got − want‖ / ‖want‖, in f64 on the CPU (tensors of any float dtype on any device);
--- ‖want‖ is floored at 1e-300, so a zero want gives 0 for a zero difference and a huge value otherwise.
function testing.rel(got, want)
  local g, w = got:to("cpu"):to("f64"), want:to("cpu"):to("f64")
  local num = ((g - w) ^ 2):sum():item()
  local den = (w ^ 2):sum():item()
  return math.sqrt(num) / math.max(math.sqrt(den), 1e-300)
end

--- Raises unless got and want (any device) have the same shape, dtype and bits element by element:
--- -0 differs from +0, a NaN equals a NaN of the same bits (floats compared as packed f64, which holds
--- every value of the float dtypes exactly; integers as integers). The error names `what`, the first
--- differing element (1-based, row-major) and both values.
function testing.same_bits(got, want, what)
  what = what or "tensor"
  local gs, ws = table.concat(got:shape(), "x"), table.concat(want:shape(), "x")
  if gs ~= ws then error(string.format("%s: shape [%s], want [%s]", what, gs, ws), 2) end
  if got:dtype() ~= want:dtype() then
    error(string.format("%s: dtype %s, want %s", what, got:dtype(), want:dtype()), 2)
  end
  local g, w = got:to("cpu"):contiguous(), want:to("cpu"):contiguous()
  for i = 1, w:numel() do
    local a, b = g:flat_get(i), w:flat_get(i)
    local same
    if math.type(a) == "float" and math.type(b) == "float" then
      same = string.pack("<d", a) == string.pack("<d", b)
    else -- integers (i64) and booleans
      same = a == b and math.type(a) == math.type(b)
    end
    if not same then
      local function show(v) return math.type(v) == "float" and string.format("%.17g", v) or tostring(v) end
      error(string.format("%s: element %d is %s, want %s (not the same bits)", what, i, show(a), show(b)), 2)
    end
  end
end

--- The PROTEUS optimizer split (spec §3.4) of a model, as the training tests use it: AdamW for the tied
--- embedding (lr 0.03), Muon for the 2-D block matrices (lr 0.02, momentum 0.95), AdamW for the scalars
--- (lr 0.02); betas {0.9, 0.95}, weight decay 0.04. Returns the three optimizers and the {name, param}
--- pairs of the model.
function testing.proteus_optimizers(model)
  local optim = require "proteus.optim"
  local named = {}
  for n, p in model:named_parameters() do named[#named + 1] = { n, p } end
  local g = optim.split_params(named, "proteus", { unmatched = "scalar" })
  return {
    optim.AdamW { params = g.embed.params, lr = 0.03, betas = { 0.9, 0.95 }, weight_decay = 0.04 },
    optim.Muon { params = g.muon.params, lr = 0.02, momentum = 0.95, weight_decay = 0.04 },
    optim.AdamW { params = g.scalar.params, lr = 0.02, betas = { 0.9, 0.95 }, weight_decay = 0.04 },
  }, named
end

--- s quoted for a POSIX shell command line (single quotes, embedded quotes escaped).
function testing.shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- The running proteus binary as an absolute path, for tests that start child processes:
-- $PROTEUS_BIN when set, else the interpreter at the lowest `arg` index (`build/proteus tests/run.lua ...`).
-- `who` names the caller in the error when neither is available.
function testing.proteus_bin(who)
  local b = os.getenv("PROTEUS_BIN")
  if not (b and b ~= "") then
    local i = -1
    while arg and arg[i - 1] do i = i - 1 end -- the interpreter is the lowest index
    b = assert(arg and arg[i], (who or "testing.proteus_bin") .. ": cannot find the proteus binary (set PROTEUS_BIN)")
  end
  if b:sub(1, 1) == "/" then return b end
  if not b:find("/", 1, true) then return b end -- found on PATH
  local h = assert(io.popen("pwd"))
  local cwd = h:read("l")
  h:close()
  return cwd .. "/" .. b
end

return testing
