--- proteus.dist — data-parallel training and evaluation across processes: rank and world size,
--- collectives (MPI for CPU tensors, NCCL for CUDA tensors, a single-process backend when run
--- alone), bucketed gradient all-reduce, round-robin Muon (spec §2.3), parallel Muon (§4.3), the
--- stop rule's max over ranks (§2.4), distributed evaluation with the ledger merged across ranks,
--- and rank-0 logging. docs/distributed.md has the whole picture.
--
--   mpirun -np 2 proteus recipe.lua        (or: proteus --nproc 2 recipe.lua)
--
--   local dist = require "proteus.dist"
--   dist.init{timeout = 600}                       -- optional; every call initialises on first use
--   local rank, world = dist.rank(), dist.world_size()
--   dist.all_reduce(t, "avg")                      -- in place: "sum" | "avg" | "max" | "min"
--   local shard = dist.reduce_scatter(t, "avg")    -- dim 1 of t split over the ranks
--   local full = dist.all_gather(shard)            -- shards stacked along dim 1, rank order
--   dist.broadcast(t, 0); dist.barrier()
--   dist.print0("only rank 0 prints this")
--   local hooks = dist.train_hooks()               -- {rank, world, reduce_grads, any_rank} for train.run
--   local muon = dist.RoundRobinMuon(optim.Muon{...})   -- §2.3: param i on rank i mod W
--   local pmuon = dist.ParallelMuon(optim.Muon{...})    -- §4.3: reduce-scatter, NS on shards, all-gather
--   local res = dist.evaluate(eval.standard, val, logits_fn, {seq_len = 1024})  -- merged ledger
--   dist.main(function() ... end)                  -- a failing rank ends every rank at once
--
-- Every rank must make the same collective calls in the same order with the same shapes.
-- Tests: tests/lua/test_dist.lua (one process), tests/cli/test_dist_mpirun.sh (mpirun -np 2).
local D = require "proteus._dist"
local pt = require "proteus"

local dist = {}

dist.init = D.init                  -- {timeout = s} --> {backend, rank, world, local_rank, local_world, timeout}
dist.info = D.info
dist.rank = D.rank
dist.world_size = D.world
dist.local_rank = D.local_rank
dist.local_world_size = D.local_world
dist.backend = D.backend            -- "single" | "mpi"
dist.has_mpi = D.has_mpi            -- built with MPI
dist.has_nccl = D.has_nccl          -- built with NCCL (CUDA build)
dist.all_reduce = D.all_reduce
dist.reduce_scatter = D.reduce_scatter
dist.all_gather = D.all_gather
dist.broadcast = D.broadcast
dist.barrier = D.barrier
dist.timeout = D.timeout
dist.set_timeout = D.set_timeout
dist.abort = D.abort

dist.DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024

local DTYPE_BYTES = { f32 = 4, f64 = 8, bf16 = 2, f16 = 2, i64 = 8, i32 = 4, u16 = 2, i8 = 1, u8 = 1, bool = 1 }

local function fail(fmt, ...) error(string.format(fmt, ...), 3) end

--- true on rank 0
function dist.is_main() return D.rank() == 0 end

--- The device this rank computes on: "cuda:<local_rank mod device count>" when CUDA devices exist,
--- else "cpu". One process per GPU.
function dist.device()
  local ok, cuda = pcall(require, "proteus.cuda")
  if ok and cuda.built and cuda.is_available() then
    local n = cuda.device_count()
    if n > 0 then return "cuda:" .. (D.local_rank() % n) end
  end
  return "cpu"
end

--- print(...) on rank 0 only.
function dist.print0(...)
  if D.rank() == 0 then print(...) end
end

--- A log function that writes on rank 0 only: dist.logger(function(s) R:log(s) end) or dist.logger().
function dist.logger(fn)
  fn = fn or print
  return function(...) if D.rank() == 0 then return fn(...) end end
end

--- Runs fn on rank 0 only (artifact writing, results.json) and returns its results there.
function dist.rank0(fn, ...)
  if D.rank() == 0 then return fn(...) end
end

--- A number reduced over the ranks (f64): op "sum" | "max" | "min" | "avg".
function dist.all_reduce_number(x, op)
  if type(x) ~= "number" then fail("dist.all_reduce_number: expected a number, got %s", type(x)) end
  if D.world() == 1 then return x end
  local t = pt.tensor({ x }, "f64")
  D.all_reduce(t, op or "sum")
  return t:item()
end

--- true when flag is true on any rank (the §2.4 stop rule: the wallclock cap is the max over ranks).
function dist.any(flag)
  if D.world() == 1 then return flag and true or false end
  local t = pt.tensor({ flag and 1 or 0 }, "i32")
  D.all_reduce(t, "max")
  return t:item() == 1
end

-- tensors from a list of tensors, {name, tensor} pairs, a map name -> tensor, or an object with
-- :parameters() (an optimizer)
local function tensor_list(what, xs)
  if type(xs) == "table" and type(xs.parameters) == "function" then xs = xs:parameters() end
  if type(xs) ~= "table" then fail("%s: expected a list of tensors, got %s", what, type(xs)) end
  local out = {}
  if #xs > 0 then
    for i, x in ipairs(xs) do
      if pt.is_tensor(x) then out[#out + 1] = x
      elseif type(x) == "table" and pt.is_tensor(x[2]) then out[#out + 1] = x[2]
      else fail("%s: entry %d is a %s, expected a tensor or {name, tensor}", what, i, type(x)) end
    end
  else
    local keys = {}
    for k, v in pairs(xs) do
      if not pt.is_tensor(v) then fail("%s: entry %s is not a tensor", what, tostring(k)) end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for _, k in ipairs(keys) do out[#out + 1] = xs[k] end
  end
  return out
end

-- ---------------------------------------------------------------------------------------------
-- data-parallel gradient reduction
-- ---------------------------------------------------------------------------------------------

--- All-reduces the gradients of params (avg by default) in buckets: gradients of one dtype and
--- device are flattened into buckets of about opts.bucket_bytes (25 MB; at most 256 tensors), each
--- bucket is reduced with one collective and copied back. Params without a gradient are skipped;
--- every rank must hold gradients for the same params (checked: the element counts are compared
--- across ranks first). opts.op = "avg" | "sum". Returns {buckets = n, elements = n}.
--- Overlap with the backward pass (reducing a bucket as soon as its gradients are ready) is a CUDA
--- concern and not done here (docs/distributed.md).
function dist.reduce_grads(params, opts)
  opts = opts or {}
  local ps = tensor_list("dist.reduce_grads", params)
  local op = opts.op or "avg"
  local limit = opts.bucket_bytes or dist.DEFAULT_BUCKET_BYTES
  if type(limit) ~= "number" or limit <= 0 then
    fail("dist.reduce_grads: opts.bucket_bytes must be a positive number of bytes, got %s", tostring(limit))
  end
  local W = D.world()
  -- gradients grouped by dtype/device in first-seen order
  local groups, order, total = {}, {}, 0
  for _, p in ipairs(ps) do
    local g = p.grad
    if g then
      local key = g:dtype() .. "@" .. g:device()
      if not groups[key] then
        groups[key] = {}
        order[#order + 1] = key
      end
      local list = groups[key]
      list[#list + 1] = g
      total = total + g:numel()
    end
  end
  if W > 1 then
    local c = pt.tensor({ total, -total }, "i64")
    D.all_reduce(c, "max")
    local mx, mn = c[1]:item(), -c[2]:item()
    if mx ~= total or mn ~= total then
      error(string.format("dist.reduce_grads: rank %d holds gradients of %d elements, other ranks between %d and %d; "
        .. "every rank must have gradients for the same parameters (a parameter unused on one rank?)",
        D.rank(), total, mn, mx), 2)
    end
  end
  local nb = 0
  pt.no_grad(function()
    for _, key in ipairs(order) do
      local list = groups[key]
      local i = 1
      while i <= #list do
        local bucket, bytes = {}, 0
        local es = DTYPE_BYTES[list[i]:dtype()] or 8
        while i <= #list and #bucket < 256 and (#bucket == 0 or bytes + list[i]:numel() * es <= limit) do
          bucket[#bucket + 1] = list[i]
          bytes = bytes + list[i]:numel() * es
          i = i + 1
        end
        local flats = {}
        for j, g in ipairs(bucket) do flats[j] = g:reshape({ -1 }) end
        local flat = #flats == 1 and flats[1]:contiguous():clone() or pt.cat(flats, 1)
        D.all_reduce(flat, op)
        local off = 1
        for _, g in ipairs(bucket) do
          local n = g:numel()
          g:copy_(flat:narrow(1, off, n):reshape(g:shape()))
          off = off + n
        end
        nb = nb + 1
      end
    end
  end)
  return { buckets = nb, elements = total }
end

--- Options for proteus.train.run: {rank, world, reduce_grads, any_rank}. With one rank only rank
--- and world (nothing to reduce). opts.exclude: params (or an optimizer such as dist.ParallelMuon)
--- whose gradients must stay local (ParallelMuon reduce-scatters them itself); opts.bucket_bytes,
--- opts.op as in reduce_grads.
function dist.train_hooks(opts)
  opts = opts or {}
  local W = D.world()
  local h = { rank = D.rank(), world = W }
  if W == 1 then return h end
  local skip = {}
  if opts.exclude then
    for _, p in ipairs(tensor_list("dist.train_hooks exclude", opts.exclude)) do skip[p] = true end
  end
  h.reduce_grads = function(params)
    local keep = {}
    for _, p in ipairs(tensor_list("dist.train_hooks reduce_grads", params)) do
      if not skip[p] then keep[#keep + 1] = p end
    end
    dist.reduce_grads(keep, opts)
  end
  h.any_rank = dist.any
  return h
end

--- Pads dim 1 of t with zero rows to a multiple of m; returns t itself when it already is one.
function dist.pad_rows(t, m)
  local shape = t:shape()
  local n = shape[1]
  local r = (m - n % m) % m
  if r == 0 then return t end
  local zshape = { table.unpack(shape) }
  zshape[1] = r
  return pt.cat({ t, pt.zeros(zshape, { dtype = t:dtype(), device = t:device() }) }, 1)
end

-- ---------------------------------------------------------------------------------------------
-- Muon across ranks
-- ---------------------------------------------------------------------------------------------

local OC = require "proteus._optim"

local function muon_opts(g, round)
  return { lr = 1, momentum = g.momentum, nesterov = g.nesterov, weight_decay = 0, factor = g.factor,
    steps = g.ns_steps, coeffs = g.coeffs, ns_dtype = g.ns_dtype, row_norm = g.row_norm, round = round or g.round }
end

local function shape_factor(p, g)
  if g.factor then return g.factor end
  local s = p:shape()
  local rows, cols = s[#s - 1], s[#s]
  return math.sqrt(math.max(1, rows / cols))
end

-- p ← p·(1 − lr·wd) − lr·f·u (u f32, p's shape)
local function apply_update(p, u, lr, wd, f)
  if wd ~= 0 then p:mul_(1 - lr * wd) end
  p:add_(u * (-(lr * f)))
end

local function wrap(kind, inner, step_fn)
  if type(inner) ~= "table" or inner.kind ~= "Muon" then
    error(string.format("dist.%s: expected an optim.Muon optimizer, got %s", kind,
      type(inner) == "table" and tostring(inner.kind) or type(inner)), 3)
  end
  local o = setmetatable({ kind = "Muon", dist_kind = kind, inner = inner, groups = inner.groups }, {
    __index = function(self, k)
      local v = inner[k]
      if type(v) == "function" then return function(_, ...) return v(inner, ...) end end
      return v
    end,
  })
  o.step = step_fn
  -- the launch-only split (train.run's cuda_graph) would run the inner Muon's update, not this one's
  local function no_split(what)
    return function()
      error(string.format("dist.%s: %s is not supported (the distributed update has collectives and runs only "
        .. "through step(lr_mul)); train with cuda_graph = false", kind, what), 2)
    end
  end
  o.prepare, o.apply = no_split("prepare(lr_mul)"), no_split("apply()")
  return o
end

--- Round-robin Muon (spec §2.3): gradients already averaged over the ranks (train_hooks); parameter
--- k (counting through the groups, 1-based) is orthogonalised on rank (k−1) mod W only, which keeps
--- its momentum buffer; its update bf16(f·NS(u)) goes into one flat buffer (zeros for the other
--- ranks' params), all-reduced with SUM in bf16 ("scaled" rounding; f32 for "unit"/"none"); then every
--- rank applies p ← p·(1 − lr·wd) − lr·u. With one rank this is optim.Muon's step.
--- Returns an optimizer with the inner Muon's methods (set, zero_grad, state_dict, parameters).
function dist.RoundRobinMuon(muon)
  return wrap("RoundRobinMuon", muon, function(self, lr_mul)
    lr_mul = lr_mul or 1
    local W, r = D.world(), D.rank()
    local inner = self.inner
    local items, k = {}, 0
    local bf16 = true
    for _, g in ipairs(inner.groups) do
      if g.round ~= "scaled" then bf16 = false end
    end
    pt.no_grad(function()
      for _, g in ipairs(inner.groups) do
        for _, p in ipairs(g.params) do
          k = k + 1
          local grad = p.grad
          if grad then
            local u
            if (k - 1) % W == r then
              local st = inner.state[k]
              if not st then st = {}; inner.state[k] = st end
              if not st.momentum_buffer then st.momentum_buffer = pt.zeros(p:shape(), { dtype = "f32", device = p:device() }) end
              -- scratch = 0 − 1·R(f·u): the bf16-rounded scaled update, negated (exact)
              local scratch = pt.zeros(p:shape(), { dtype = "f32", device = p:device() })
              OC.muon_step(scratch, grad, st.momentum_buffer, muon_opts(g))
              u = scratch:neg()
            else
              u = pt.zeros(p:shape(), { dtype = "f32", device = p:device() })
            end
            items[#items + 1] = { p = p, g = g, u = u }
          end
        end
      end
      if #items == 0 then return end
      local flats = {}
      for i, it in ipairs(items) do flats[i] = it.u:reshape({ -1 }) end
      local flat = #flats == 1 and flats[1]:clone() or pt.cat(flats, 1)
      if bf16 then flat = flat:to("bf16") end
      D.all_reduce(flat, "sum")
      if bf16 then flat = flat:to("f32") end
      local off = 1
      for _, it in ipairs(items) do
        local n = it.p:numel()
        local u = flat:narrow(1, off, n):reshape(it.p:shape())
        off = off + n
        apply_update(it.p, u, it.g.lr * lr_mul, it.g.weight_decay or 0, 1)
      end
    end)
  end)
end

--- Parallel Muon (spec §4.3, #1539): the Muon params' LOCAL gradients (exclude them from the
--- gradient all-reduce: dist.train_hooks{exclude = pmuon}) are viewed as banks [n, rows, cols]
--- (n = 1 for a matrix), cast to bf16, padded along dim 1 to a multiple of W and reduce-scattered
--- with AVG; each rank runs momentum and Newton–Schulz on its shard (momentum buffer per shard, f32
--- here where #1539 keeps it in bf16), rounds the unit update to bf16, all-gathers the shards, and
--- every rank applies p ← p·(1 − lr·wd) − lr·f·u (f = group factor or √max(1, rows/cols)).
function dist.ParallelMuon(muon)
  return wrap("ParallelMuon", muon, function(self, lr_mul)
    lr_mul = lr_mul or 1
    local W = D.world()
    local inner = self.inner
    local k = 0
    pt.no_grad(function()
      for _, g in ipairs(inner.groups) do
        for _, p in ipairs(g.params) do
          k = k + 1
          local grad = p.grad
          if grad then
            local s = p:shape()
            local bank = #s == 2 and { 1, s[1], s[2] } or s
            local gb = dist.pad_rows(grad:reshape(bank):to("bf16"), W)
            local shard = D.reduce_scatter(gb:contiguous(), "avg"):to("f32")
            local st = inner.state[k]
            if not st then st = {}; inner.state[k] = st end
            if not st.shard_buffer then
              st.shard_buffer = pt.zeros(shard:shape(), { dtype = "f32", device = p:device() })
            end
            local scratch = pt.zeros(shard:shape(), { dtype = "f32", device = p:device() })
            local o = muon_opts(g, "unit")
            o.factor = 1
            OC.muon_step(scratch, shard, st.shard_buffer, o) -- scratch = −bf16(NS(u))
            local full = D.all_gather(scratch:neg():to("bf16"))
            local u = full:narrow(1, 1, bank[1]):to("f32"):reshape(s)
            apply_update(p, u, g.lr * lr_mul, g.weight_decay or 0, shape_factor(p, g))
          end
        end
      end
    end)
  end)
end

-- ---------------------------------------------------------------------------------------------
-- evaluation across ranks: the ledger merged
-- ---------------------------------------------------------------------------------------------

--- Merges a ledger across the ranks in place and returns the merged report: scored counts are
--- summed, training flags or-ed, the f64 accumulators summed in rank order. In legal mode a target
--- scored on two ranks raises "... scored 2 times across ranks ..." on every rank. Every rank ends
--- with the same merged ledger.
function dist.merge_ledger(ledger)
  local sc, tr, tf, acc = ledger:export()
  local W = D.world()
  if W > 1 then
    D.all_reduce(sc, "sum")
    D.all_reduce(tr, "max")
    D.all_reduce(tf, "max")
    local all = D.all_gather(acc):totable()
    local s = { 0, 0, 0, 0, 0 }
    for rr = 0, W - 1 do
      for j = 1, 5 do s[j] = s[j] + all[rr * 5 + j] end
    end
    acc = pt.tensor(s, "f64")
  end
  ledger:import(sc, tr, tf, acc)
  return ledger:report()
end

--- Runs an evaluation (eval.standard or eval.sliding) with the windows split over the ranks
--- (contiguous, spec §1.4), then merges the ledgers: every rank returns the same result
--- {loss, bpb, report, line, ...} of the whole validation set; rank 0 prints the line through
--- opts.log (default print; false = silent). opts.ledger: a ledger to score into (kept open and
--- merged in place); otherwise a fresh one is opened and closed.
function dist.evaluate(eval_fn, val, logits_fn, opts)
  local data = require "proteus.data"
  if type(eval_fn) ~= "function" then fail("dist.evaluate: expected eval.standard or eval.sliding, got %s", type(eval_fn)) end
  opts = opts or {}
  local o = {}
  for key, v in pairs(opts) do o[key] = v end
  o.rank, o.world, o.log = D.rank(), D.world(), false
  local own = o.ledger == nil
  if own then
    local legal = not (o.records_quirk ~= nil and o.records_quirk ~= false)
    o.ledger = data.ledger(val.tokens, val.tables, { legal = legal, name = val.name or "the validation set" })
  end
  local ok, res = pcall(eval_fn, val, logits_fn, o)
  if not ok then
    if own then o.ledger:close() end
    error(res, 0)
  end
  local ok2, r = pcall(dist.merge_ledger, o.ledger)
  if own then o.ledger:close() end
  if not ok2 then error(r, 0) end
  res.report, res.loss, res.bpb = r, r.loss, r.bpb
  res.line = data.format_bpb(r, opts.label or (res.stride and "sliding" or "standard"))
  res.ledger = (not own) and o.ledger or nil
  res.rank, res.world = o.rank, o.world
  local log = opts.log
  if log == nil then log = print end
  if log and D.rank() == 0 then log(string.format("%s world:%d", res.line, o.world)) end
  return res
end

--- Runs fn(...) and, when it raises on a rank of a multi-rank run, prints the error and ends every
--- rank at once (MPI_Abort) instead of leaving the others to the watchdog. With one rank the error
--- propagates as usual. Returns fn's results.
function dist.main(fn, ...)
  local res = table.pack(xpcall(fn, debug.traceback, ...))
  if not res[1] then
    if D.world() > 1 then
      io.stderr:write(string.format("proteus: rank %d: %s\n", D.rank(), tostring(res[2])))
      io.stderr:flush()
      D.abort("the script failed on rank " .. D.rank() .. " (error above)", 1)
    end
    error(res[2], 0)
  end
  return table.unpack(res, 2, res.n)
end

return dist
