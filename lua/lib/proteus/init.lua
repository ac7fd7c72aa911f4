--- proteus — tensors, dtypes, devices, autograd switches.
--
--   local pt = require "proteus"
--   local x = pt.randn({2, 3}, {requires_grad = true})
--   local y = (x * x):sum(); y:backward(); print(x.grad)
--
-- Conventions: dims and positions are 1-based (dim 1 first, -1 last; t[1] is the first row);
-- values stored in tensors keep their meaning (token ids are 0-based ids).
-- The functions are implemented in C (module proteus._tensor and the op-family modules); this file
-- gathers them into one table.
local C = require "proteus._tensor"

local pt = {}
for k, v in pairs(C) do
  if k ~= "methods" then pt[k] = v end
end

--- The tensor method table (t:method(...)); useful for completion and documentation.
pt.Tensor = C.methods

-- Op families written in C add their module-level functions and tensor methods when loaded.
for _, name in ipairs { "proteus._reduce", "proteus._matmul", "proteus._index", "proteus._sort", "proteus._rng" } do
  local ok, mod = pcall(require, name)
  if ok and type(mod) == "table" then
    for k, v in pairs(mod) do
      if pt[k] == nil then pt[k] = v end
    end
  elseif not ok and not tostring(mod):find("not found", 1, true) then
    error(mod, 0)
  end
end

--- CUDA: availability, memory statistics, synchronize, events (proteus.cuda).
pt.cuda = require "proteus.cuda"

pt.dtypes = { "f32", "f64", "bf16", "f16", "i64", "i32", "u16", "i8", "u8", "bool" }
pt.version = (function()
  local ok, host = pcall(require, "proteus._host")
  return ok and host.version or "unknown"
end)()

--- Runs fn(...) with gradient recording enabled (the opposite of pt.no_grad).
function pt.enable_grad(fn, ...)
  local prev = C.set_grad_enabled(true)
  local res = table.pack(pcall(fn, ...))
  C.set_grad_enabled(prev)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

--- Splits t along dim into pieces of `size` (the last may be smaller). Views share storage.
function pt.split(t, size, dim)
  dim = dim or 1
  local n = t:size(dim)
  local out = {}
  local start = 1
  while start <= n do
    local len = math.min(size, n - start + 1)
    out[#out + 1] = t:narrow(dim, start, len)
    start = start + len
  end
  return out
end

--- Splits t into `chunks` nearly equal pieces along dim (torch.chunk semantics).
function pt.chunk(t, chunks, dim)
  dim = dim or 1
  local n = t:size(dim)
  return pt.split(t, (n + chunks - 1) // chunks, dim)
end

C.methods.split = pt.split
C.methods.chunk = pt.chunk

--- Flattens dims [start_dim, end_dim] (1-based, inclusive) into one.
function C.methods.flatten(t, start_dim, end_dim)
  local shape = t:shape()
  local nd = #shape
  start_dim = start_dim or 1
  end_dim = end_dim or -1
  if start_dim < 0 then start_dim = nd + 1 + start_dim end
  if end_dim < 0 then end_dim = nd + 1 + end_dim end
  local new, prod = {}, 1
  for i = 1, nd do
    if i < start_dim or i > end_dim then
      if i == end_dim + 1 and #new < start_dim then new[#new + 1] = prod end
      new[#new + 1] = shape[i]
    else
      prod = prod * shape[i]
      if i == end_dim then new[#new + 1] = prod end
    end
  end
  if nd == 0 then new = { 1 } end
  return t:reshape(new)
end

return pt
