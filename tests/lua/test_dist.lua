-- tests/lua/test_dist.lua — proteus.dist in one process (the single backend): rank/world, the
-- collectives' identities and errors, bucketed gradient reduction, round-robin and parallel Muon
-- against optim.Muon, the ledger's export/import and merge, dist.evaluate, the stop-rule helper.
-- The 2-process tests are tests/cli/test_dist_mpirun.sh (mpirun -np 2).
--
--   build/proteus tests/run.lua tests/lua/test_dist.lua
local pt = require "proteus"
local optim = require "proteus.optim"
local data = require "proteus.data"
local eval = require "proteus.eval"
local dist = require "proteus.dist"

local function maxdiff(a, b) return (a:to("f64") - b:to("f64")):abs():max():item() end

local tests = {}

tests.single_backend = function(T)
  local info = dist.init()
  T.eq(info.backend, "single")
  T.eq({ info.rank, info.world, info.local_rank, info.local_world }, { 0, 1, 0, 1 })
  T.eq({ dist.rank(), dist.world_size(), dist.local_rank(), dist.local_world_size() }, { 0, 1, 0, 1 })
  T.eq(dist.is_main(), true)
  T.eq(dist.device(), "cpu")
  T.eq(type(dist.has_mpi()), "boolean")
  T.eq(dist.timeout(), 600)
end

tests.collectives_are_identities = function(T)
  for _, dt in ipairs { "f32", "f64", "bf16" } do
    for _, op in ipairs { "sum", "avg", "max", "min" } do
      local t = pt.tensor({ 1.5, -2, 3 }, dt)
      T.eq(dist.all_reduce(t, op):to("f64"):totable(), { 1.5, -2, 3 }, dt .. " " .. op)
    end
  end
  T.eq(dist.all_reduce(pt.tensor({ 7 }, "i64"), "sum"):totable(), { 7 })
  local x = pt.tensor({ { 1, 2 }, { 3, 4 } })
  local g = dist.all_gather(x)
  T.eq(g:shape(), { 2, 2 })
  T.eq(g:totable(), { { 1, 2 }, { 3, 4 } })
  local s = dist.reduce_scatter(x, "avg")
  T.eq(s:totable(), { { 1, 2 }, { 3, 4 } })
  T.eq(dist.broadcast(pt.tensor({ 5, 6 }, "u8"), 0):totable(), { 5, 6 })
  dist.barrier()
  T.eq(dist.any(true), true)
  T.eq(dist.any(false), false)
  T.eq(dist.all_reduce_number(2.5, "max"), 2.5)
end

tests.collective_errors = function(T)
  T.raises(function() dist.all_reduce(pt.tensor({ 1 }, "i64"), "avg") end, "\"avg\" needs a float tensor, got i64")
  T.raises(function() dist.all_reduce(pt.tensor({ 1 }), "prod") end, "unknown reduction 'prod'")
  T.raises(function() dist.all_reduce(pt.tensor({ 1 }, "u16"), "sum") end, "cannot reduce a u16 tensor")
  T.raises(function() dist.all_reduce(pt.randn({ 3, 4 }):transpose(1, 2), "sum") end, "not contiguous")
  T.raises(function() dist.broadcast(pt.tensor({ 1 }), 1) end, "root 1 is outside ranks 0..0")
  T.raises(function() dist.set_timeout(-1) end, "timeout -1 s is not a number of seconds >= 0")
  T.raises(function() dist.init { timeout = 0 } end, "give a number of seconds > 0")
  T.raises(function() dist.reduce_grads({ pt.zeros({ 2 }) }, { bucket_bytes = 0 }) end, "bucket_bytes must be a positive")
  T.raises(function() dist.RoundRobinMuon(optim.SGD { params = { pt.zeros({ 2 }) }, lr = 1 }) end,
    "expected an optim.Muon optimizer, got SGD")
  local rr = dist.RoundRobinMuon(optim.Muon { params = { pt.zeros({ 2, 2 }) }, lr = 0.01 })
  T.raises(function() rr:prepare(1) end, "dist.RoundRobinMuon: prepare(lr_mul) is not supported")
  T.raises(function() rr:apply() end, "dist.RoundRobinMuon: apply() is not supported")
end

tests.timeout_setting = function(T)
  dist.set_timeout(30)
  T.eq(dist.timeout(), 30)
  dist.init { timeout = 600 }
  T.eq(dist.timeout(), 600)
end

-- environment checks run in a child process (the backend is chosen once per process)
tests.environment_errors = function(T)
  local exe = arg and arg[-1] or "build/proteus"
  local function run(env, code)
    local p = io.popen(env .. " '" .. exe .. "' -e '" .. code .. "' 2>&1; echo rc=$?")
    local out = p:read("a")
    p:close()
    return out
  end
  local out = run("PROTEUS_WORLD_SIZE=4", 'require("proteus.dist").rank()')
  assert(out:find("PROTEUS_WORLD_SIZE=4 is set, but ranks are started only through MPI", 1, true), out)
  out = run("PROTEUS_DIST=nccl", 'require("proteus.dist").rank()')
  assert(out:find("PROTEUS_DIST=nccl; use \"single\"", 1, true), out)
  out = run("PROTEUS_DIST_TIMEOUT=soon", 'require("proteus.dist").rank()')
  assert(out:find("PROTEUS_DIST_TIMEOUT=soon is not a number of seconds", 1, true), out)
  out = run("PROTEUS_DIST_TIMEOUT=2.5", 'print(require("proteus.dist").timeout())')
  assert(out:find("2.5\nrc=0", 1, true), out)
  out = run("OMPI_COMM_WORLD_SIZE=1 PROTEUS_DIST=single", 'print(require("proteus.dist").backend())')
  assert(out:find("single\nrc=0", 1, true), out)
  out = run("", 'print(1)')
  assert(out:find("1\nrc=0", 1, true), out)
  -- --nproc argument errors (the mpirun runs are in tests/cli/test_dist_mpirun.sh)
  local p = io.popen("'" .. exe .. "' --nproc zero x.lua 2>&1; echo rc=$?")
  out = p:read("a"); p:close()
  assert(out:find("--nproc zero: give a number of ranks between 1 and 4096", 1, true) and out:find("rc=1", 1, true), out)
  p = io.popen("PROTEUS_MPIRUN=/nonexistent/mpirun '" .. exe .. "' --nproc 2 x.lua 2>&1; echo rc=$?")
  out = p:read("a"); p:close()
  assert(out:find("cannot run '/nonexistent/mpirun'", 1, true) and out:find("rc=1", 1, true), out)
  p = io.popen("'" .. exe .. "' --nproc 1 -e 'print(require(\"proteus.dist\").world_size())' 2>&1; echo rc=$?")
  out = p:read("a"); p:close()
  assert(out:find("1\nrc=0", 1, true), out)
end

tests.reduce_grads_buckets = function(T)
  local ps = {}
  for i = 1, 5 do
    local p = pt.zeros({ 3, 4 }, { requires_grad = true })
    p.grad = pt.full({ 3, 4 }, i)
    ps[i] = p
  end
  ps[6] = pt.zeros({ 2 }, { requires_grad = true }) -- no gradient: skipped
  local d = pt.zeros({ 2 }, { dtype = "f64", requires_grad = true })
  d.grad = pt.tensor({ 1, 2 }, "f64")
  ps[7] = d
  -- f32: 48 bytes per gradient, 100-byte buckets → 2 + 2 + 1; f64 in its own bucket
  local info = dist.reduce_grads(ps, { bucket_bytes = 100 })
  T.eq(info, { buckets = 4, elements = 62 })
  for i = 1, 5 do T.eq(ps[i].grad:totable()[3][4], i) end
  T.eq(d.grad:totable(), { 1, 2 })
  T.eq(dist.reduce_grads(ps).buckets, 2) -- default 25 MB: one per dtype
  local hooks = dist.train_hooks()
  T.eq(hooks.rank, 0)
  T.eq(hooks.world, 1)
  T.eq(hooks.reduce_grads, nil) -- nothing to reduce with one rank
end

-- params with bf16-exact gradients, so Muon's bf16 grad cast (parallel Muon) changes nothing
local function muon_case()
  pt.manual_seed(11)
  local w = { pt.randn({ 6, 4 }), pt.randn({ 3, 4, 5 }), pt.randn({ 4, 8 }) }
  local g = {}
  for i, x in ipairs(w) do g[i] = pt.randn(x:shape()):to("bf16"):to("f32") end
  return function()
    local ps = {}
    for i = 1, #w do ps[i] = w[i]:clone(); ps[i].grad = g[i] end
    return ps
  end
end

tests.round_robin_muon_equals_muon = function(T)
  local make = muon_case()
  local a, b = make(), make()
  local cfg = function(ps) return { params = ps, lr = 0.05, momentum = 0.9, weight_decay = 0.1 } end
  local m1 = optim.Muon(cfg(a))
  local m2 = dist.RoundRobinMuon(optim.Muon(cfg(b)))
  T.eq(m2.kind, "Muon")
  for step = 1, 3 do
    m2:set("momentum", 0.9 + 0.01 * step)
    m1:set("momentum", 0.9 + 0.01 * step)
    m1:step(0.5); m2:step(0.5)
  end
  for i = 1, #a do T.eq(maxdiff(a[i], b[i]), 0, "param " .. i) end
  -- the wrapper exposes the inner optimizer's state
  local sd = m2:state_dict()
  T.eq(sd.kind, "Muon")
  T.eq(#sd.groups, 1)
  m2:zero_grad()
  T.eq(b[1].grad, nil)
end

tests.parallel_muon_equals_unit_muon = function(T)
  local make = muon_case()
  local a, b = make(), make()
  local cfg = function(ps)
    return { params = ps, lr = 0.05, momentum = 0.9, weight_decay = 0.1, round = "unit", coeffs = "polar_express",
      row_norm = true }
  end
  local m1 = optim.Muon(cfg(a))
  local m2 = dist.ParallelMuon(optim.Muon(cfg(b)))
  for _ = 1, 3 do m1:step(1); m2:step(1) end
  for i = 1, #a do T.eq(maxdiff(a[i], b[i]), 0, "param " .. i) end
end

tests.pad_rows = function(T)
  local t = pt.ones({ 3, 2 })
  T.eq(dist.pad_rows(t, 4):totable(), { { 1, 1 }, { 1, 1 }, { 1, 1 }, { 0, 0 } })
  T.eq(rawequal(dist.pad_rows(t, 3), t), true)
end

local function val_head(n)
  local full = data.open_val { vocab = 1024 }
  return { tokens = full.tokens:sub(0, n), tables = full.tables, name = "val_head" }
end

tests.ledger_export_import = function(T)
  local val = val_head(2049)
  local a = data.ledger(val.tokens, val.tables, { name = "val_head" })
  local b = data.ledger(val.tokens, val.tables, { name = "val_head" })
  local lg = pt.randn({ 3, 1024 })
  a:score({ 1, 2, 3 }, lg)
  a:grant(1, 3)
  local sc, tr, tf, acc = a:export()
  T.eq(sc:dtype(), "i32"); T.eq(tr:dtype(), "u8"); T.eq(acc:shape(), { 5 })
  T.eq(sc:narrow(1, 1, 5):totable(), { 0, 1, 1, 1, 0 })
  T.eq(tr:narrow(1, 1, 4):totable(), { 0, 1, 1, 0 })
  b:import(sc, tr, tf, acc)
  local ra, rb = a:report(), b:report()
  T.eq(rb, ra)
  -- a merged count of 2 (two ranks scored target 2) is refused in legal mode, naming the position
  local counts = sc:totable()
  counts[3] = 2
  local sc2 = pt.tensor(counts, "i32")
  T.raises(function() b:import(sc2, tr, tf, acc) end, "target position 2 of val_head was scored 2 times across ranks")
  T.raises(function() b:import(sc:narrow(1, 1, 10), tr, tf, acc) end, "scored must be a contiguous CPU i32 tensor of 2049")
  -- legal = false: counted, verdict illegal
  local c = data.ledger(val.tokens, val.tables, { legal = false, name = "val_head" })
  c:import(sc2, tr, tf, acc)
  T.eq(c:report().scored_multiple, 1)
  T.eq(c:report().verdict, "illegal")
  -- with one rank, merge_ledger keeps the ledger as it is
  T.eq(dist.merge_ledger(a), ra)
  a:close(); b:close(); c:close()
end

tests.evaluate_one_rank = function(T)
  local val = val_head(4097)
  pt.manual_seed(3)
  local W = pt.randn({ 1024, 1024 }) * 0.1
  local logits_fn = function(x) return pt.embedding(W, x:reshape({ -1 })) end
  local lines = {}
  local r1 = eval.standard(val, logits_fn, { seq_len = 64, log = false })
  local r2 = dist.evaluate(eval.standard, val, logits_fn, { seq_len = 64, log = function(s) lines[#lines + 1] = s end })
  T.eq(r2.bpb, r1.bpb)
  T.eq(r2.report, r1.report)
  T.eq(r2.world, 1)
  T.eq(#lines, 1)
  assert(lines[1]:find("standard val_loss:", 1, true) and lines[1]:find("world:1", 1, true), lines[1])
  local s = dist.evaluate(eval.sliding, val, logits_fn, { seq_len = 64, stride = 16, log = false })
  T.eq(s.report.scored_once, 4096)
end

tests.main_propagates_errors_with_one_rank = function(T)
  T.eq({ dist.main(function(a, b) return a + b, "x" end, 2, 3) }, { 5, "x" })
  T.raises(function() dist.main(function() error("boom in main") end) end, "boom in main")
end

return tests
