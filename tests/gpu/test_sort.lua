-- tests/gpu/test_sort.lua — CUDA sort, topk, kthvalue, quantile (src/kernels/cuda/sort.cu) and
-- scatter_add (src/kernels/cuda/index.cu) against the CPU oracle.
--
--   build/proteus tests/run.lua tests/gpu/test_sort.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Inputs have many ties, +-0, +-inf and NaN, whose order the CPU defines (pt_sort.h: NaN after +inf,
-- -0 == +0, ties in original order; descending reverses values only). sort / topk / kthvalue must give
-- the CPU's indices and values exactly; quantile within a few ulps (same formula, NaN where the CPU
-- has NaN); scatter_add exactly for integers and within a tolerance for floats (atomics add in any
-- order). Shapes include empty ones and every dim. Skips without a device;
-- PROTEUS_GPU_TEST_DEVICE=cpu runs it against itself. PT_TEST_SEED=N repeats one set of inputs.
local pt = require "proteus"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local DEV, SEED = G.DEV, G.SEED
pt.manual_seed(SEED)

local need_device, flat, same = G.need_device, G.flat, G.same

-- small integers (many ties) with +-0, +-inf and NaN spread in (float dtypes)
local function tricky(shape, dt)
  local a = pt.randint(-3, 4, shape):to("f64")
  local n = a:numel()
  if dt == "f32" or dt == "f64" or dt == "bf16" then
    local special = { 0 / 0, -0.0, 1 / 0, -1 / 0, 0 / 0 }
    for k = 1, math.min(n, 2 + n // 6) do
      local i = (k * 7919 + SEED) % n + 1
      a:flat_set(i, special[(k % #special) + 1])
    end
  end
  return a:to(dt)
end

local SHAPES = { { 0 }, { 1 }, { 7 }, { 4, 33 }, { 3, 5, 6 }, { 2, 0, 3 }, { 2, 300 } }

local T = {}

function T.sort_matches_cpu(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64", "bf16", "i64", "i32", "u8" } do
    for _, shape in ipairs(SHAPES) do
      local a = tricky(shape, dt)
      local ad = a:to(DEV)
      for dim = 1, #shape do
        for _, desc in ipairs { false, true } do
          local what = string.format("sort %s %s dim %d desc %s", dt, table.concat(shape, "x"), dim, tostring(desc))
          local v, i = ad:sort(dim, desc)
          local cv, ci = a:sort(dim, desc)
          same(t, what .. " indices", i, ci)
          same(t, what .. " values", v, cv)
        end
      end
    end
  end
end

function T.sort_long_rows_match_cpu(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64" } do
    local a = pt.randn({ 3, 5000 }):to(dt)
    local ad = a:to(DEV)
    for _, desc in ipairs { false, true } do
      local v, i = ad:sort(2, desc)
      local cv, ci = a:sort(2, desc)
      same(t, "long sort indices " .. dt, i, ci)
      same(t, "long sort values " .. dt, v, cv)
    end
    local v, i = ad:sort(1)
    local cv, ci = a:sort(1)
    same(t, "sort dim 1 indices " .. dt, i, ci)
    same(t, "sort dim 1 values " .. dt, v, cv)
  end
end

function T.topk_and_kthvalue_match_cpu(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64", "i64", "i32" } do
    for _, shape in ipairs(SHAPES) do
      local a = tricky(shape, dt)
      local ad = a:to(DEV)
      for dim = 1, #shape do
        local n = shape[dim]
        local ks = { 0, 1, n // 2, n }
        for _, k in ipairs(ks) do
          if k >= 0 and k <= n then
            for _, largest in ipairs { true, false } do
              local what = string.format("topk %s %s dim %d k %d largest %s", dt, table.concat(shape, "x"), dim, k,
                tostring(largest))
              local v, i = ad:topk(k, dim, largest)
              local cv, ci = a:topk(k, dim, largest)
              same(t, what .. " indices", i, ci)
              same(t, what .. " values", v, cv)
            end
          end
          if k >= 1 and k <= n then
            for _, keep in ipairs { false, true } do
              local what = string.format("kthvalue %s %s dim %d k %d keepdim %s", dt, table.concat(shape, "x"), dim,
                k, tostring(keep))
              local v, i = ad:kthvalue(k, dim, keep)
              local cv, ci = a:kthvalue(k, dim, keep)
              same(t, what .. " indices", i, ci)
              same(t, what .. " values", v, cv)
            end
          end
        end
      end
    end
  end
end

function T.quantile_matches_cpu(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64" } do
    local tol = dt == "f32" and 4e-7 or 1e-15
    for _, shape in ipairs { { 1 }, { 7 }, { 4, 33 }, { 3, 5, 6 }, { 2, 300 } } do
      for _, nan in ipairs { true, false } do
        local a = nan and tricky(shape, dt) or pt.randn(shape):to(dt)
        local ad = a:to(DEV)
        for _, q in ipairs { 0, 0.1, 0.25, 0.5, 0.77, 1 } do
          local what = string.format("quantile %s %s q %g nan %s", dt, table.concat(shape, "x"), q, tostring(nan))
          same(t, what .. " all dims", ad:quantile(q), a:quantile(q), tol)
          same(t, what .. " all dims keepdim", ad:quantile(q, nil, true), a:quantile(q, nil, true), tol)
          for dim = 1, #shape do
            same(t, what .. " dim " .. dim, ad:quantile(q, dim), a:quantile(q, dim), tol)
            same(t, what .. " dim " .. dim .. " keepdim", ad:quantile(q, dim, true), a:quantile(q, dim, true), tol)
          end
        end
      end
    end
  end
end

function T.scatter_add_matches_cpu(t)
  need_device(t)
  for _, dt in ipairs { "f32", "f64", "i64", "i32" } do
    local tol = dt == "f32" and 1e-5 or dt == "f64" and 1e-12 or 0
    for dim = 1, 3 do
      local ashape = { 5, 7, 3 }
      local ishape = { 5, 4, 3 }
      if dim ~= 2 then ishape = { 4, 7, 2 } end
      local a = (pt.randn(ashape) * 4):round():to(dt)
      local idx = pt.randint(0, ashape[dim], ishape)
      local src = (pt.randn({ 6, 8, 4 }) * 4):round():to(dt)
      if dt == "f32" or dt == "f64" then src = pt.randn({ 6, 8, 4 }):to(dt) end
      local what = string.format("scatter_add %s dim %d", dt, dim)
      same(t, what, a:to(DEV):scatter_add(dim, idx:to(DEV), src:to(DEV)), a:scatter_add(dim, idx, src), tol)
    end
    -- empty index: the input unchanged
    local a = pt.randn({ 3, 4 }):to(dt)
    local idx = pt.zeros({ 0, 4 }, { dtype = "i64" })
    local src = pt.randn({ 2, 4 }):to(dt)
    same(t, "scatter_add empty " .. dt, a:to(DEV):scatter_add(1, idx:to(DEV), src:to(DEV)), a)
  end
end

function T.scatter_add_backward_of_gather(t)
  need_device(t)
  local a = pt.randn({ 6, 9 })
  local idx = pt.randint(0, 9, { 6, 20 })
  local g = pt.randn({ 6, 20 })
  local function grad(dev)
    local leaf = a:to(dev):detach()
    leaf.requires_grad = true
    leaf:gather(2, idx:to(dev)):backward(g:to(dev))
    return leaf.grad
  end
  same(t, "gather backward", grad(DEV), grad("cpu"), 1e-5)
end

function T.randperm_matches_cpu(t)
  need_device(t)
  for _, n in ipairs { 0, 1, 2, 7, 1000 } do
    pt.manual_seed(SEED)
    local p = pt.randperm(n, { device = DEV })
    pt.manual_seed(SEED)
    same(t, "randperm " .. n, p, pt.randperm(n))
    local seen = {}
    for _, v in ipairs((flat(p))) do seen[v] = true end
    for v = 0, n - 1 do assert(seen[v], "randperm " .. n .. " misses " .. v) end
  end
end

return T
