-- tests/cli/dist_worker.lua — the script that tests/cli/test_dist_mpirun.sh runs on every rank
-- (not a test file of tests/run.lua). One mode per call:
--
--   mpirun -np 2 build/proteus tests/cli/dist_worker.lua collectives
--   build/proteus tests/cli/dist_worker.lua train OUT.safetensors MUON ACCUM [CLIP]  (MUON: plain|roundrobin|parallel)
--   mpirun -np 2 build/proteus tests/cli/dist_worker.lua train OUT.safetensors MUON 1
--   build/proteus tests/cli/dist_worker.lua compare A.safetensors B.safetensors TOL
--   [mpirun -np 2] build/proteus tests/cli/dist_worker.lua eval OUT.txt
--   mpirun -np 2 build/proteus tests/cli/dist_worker.lua hang      (all-reduces until killed; prints "ready")
--   mpirun -np 2 build/proteus tests/cli/dist_worker.lua overlap   (two ranks score one position: must raise)
--   [mpirun -np 2] build/proteus tests/cli/dist_worker.lua recipe_eval MODEL.ptz RUN_DIR  (proteus.recipe's eval steps)
--   build/proteus tests/cli/dist_worker.lua results_compare ONE/results.json TWO/results.json TOL
--   [mpirun -np 2] build/proteus tests/cli/dist_worker.lua ttt OUT.txt BATCH contiguous|zigzag  (LoRA TTT, merged)
--   build/proteus tests/cli/dist_worker.lua ttt_compare ONE.txt TWO.txt TOL [steps]
--   mpirun -np 2 build/proteus tests/cli/dist_worker.lua ttt_overlap   (both ranks score rank 0's documents)
--
-- Training: a smoke-size nn.GPT (2 layers, dim 32, BigramHash, SmearGate) on the bundled sample,
-- 10 steps of proteus.train with the PROTEUS optimizer split. The global batch is 4 sequences of
-- 32 tokens: one process runs grad_accum = ACCUM = 2 micro-batches of 2 sequences, two ranks run one
-- micro-batch of 2 sequences each; the stream's rank slicing (spec §2.4) gives both the same tokens.
local pt = require "proteus"
local nn = require "proteus.nn"
local optim = require "proteus.optim"
local data = require "proteus.data"
local eval = require "proteus.eval"
local train = require "proteus.train"
local st = require "proteus.safetensors"
local dist = require "proteus.dist"

local mode = arg[1]

local function smoke_model(seed)
  pt.manual_seed(seed or 1337)
  return nn.GPT { vocab_size = 1024, num_layers = 2, model_dim = 32, num_heads = 2, num_kv_heads = 1,
    mlp_mult = 2, bigram_vocab_size = 64, bigram_dim = 16, smear_gate = true }
end

local function check(cond, fmt, ...)
  if not cond then error(string.format("rank %d: " .. fmt, dist.rank(), ...), 2) end
end

if mode == "collectives" then
  local r, W = dist.rank(), dist.world_size()
  check(dist.backend() == "mpi" and W == 2, "expected the mpi backend with 2 ranks, got %s with %d", dist.backend(), W)
  check(dist.local_world_size() == 2 and dist.local_rank() == r, "local rank %d of %d", dist.local_rank(), dist.local_world_size())
  -- sum / avg / max / min in f32, f64, bf16, i64
  for _, dt in ipairs { "f32", "f64", "bf16" } do
    local t = pt.tensor({ 1 + r, 0.5 * r, -r }, dt)
    dist.all_reduce(t, "sum")
    local v = t:to("f64"):totable()
    check(v[1] == 3 and v[2] == 0.5 and v[3] == -1, "%s sum gave %s %s %s", dt, v[1], v[2], v[3])
    t = pt.tensor({ 1 + r, 3 * r }, dt)
    dist.all_reduce(t, "avg")
    v = t:to("f64"):totable()
    check(v[1] == 1.5 and v[2] == 1.5, "%s avg gave %s %s", dt, v[1], v[2])
    t = pt.tensor({ r, -r }, dt)
    dist.all_reduce(t, "max")
    v = t:to("f64"):totable()
    check(v[1] == 1 and v[2] == 0, "%s max gave %s %s", dt, v[1], v[2])
    t = pt.tensor({ r, -r }, dt)
    dist.all_reduce(t, "min")
    v = t:to("f64"):totable()
    check(v[1] == 0 and v[2] == -1, "%s min gave %s %s", dt, v[1], v[2])
  end
  -- bf16 sums round once per add: 1 + 2^-9 is not representable, stays 1
  local b = pt.tensor({ r == 0 and 1 or 2 ^ -9 }, "bf16")
  dist.all_reduce(b, "sum")
  check(b:to("f64"):item() == 1, "bf16 1 + 2^-9 gave %.10g", b:to("f64"):item())
  local big = pt.tensor({ (1 << 40) + r }, "i64")
  dist.all_reduce(big, "sum")
  check(big:item() == (1 << 41) + 1, "i64 sum gave %d", big:item())
  -- reduce_scatter: rank r gets rows [2r, 2r+2) of the sum
  local rs = dist.reduce_scatter(pt.tensor({ { 1, 2 }, { 3, 4 }, { 5, 6 }, { 7, 8 } }, "f32") * (r + 1), "sum")
  local want = r == 0 and { { 3, 6 }, { 9, 12 } } or { { 15, 18 }, { 21, 24 } }
  local got = rs:totable()
  for i = 1, 2 do for j = 1, 2 do check(got[i][j] == want[i][j], "reduce_scatter [%d][%d] = %s", i, j, got[i][j]) end end
  check(#rs:shape() == 2 and rs:shape()[1] == 2 and rs:shape()[2] == 2, "reduce_scatter shape")
  local ok, err = pcall(dist.reduce_scatter, pt.zeros({ 3, 2 }), "sum")
  check(not ok and err:find("multiple of the world size 2", 1, true), "reduce_scatter of 3 rows: %s", tostring(err))
  -- all_gather: rank order along dim 1
  local ag = dist.all_gather(pt.tensor({ { 10 * r, 10 * r + 1 } }, "i64")):totable()
  check(ag[1][1] == 0 and ag[1][2] == 1 and ag[2][1] == 10 and ag[2][2] == 11, "all_gather gave %d %d %d %d",
    ag[1][1], ag[1][2], ag[2][1], ag[2][2])
  -- broadcast from rank 1
  local bc = pt.tensor({ r + 7, r + 8 }, "u8")
  dist.broadcast(bc, 1)
  local bv = bc:totable()
  check(bv[1] == 8 and bv[2] == 9, "broadcast gave %d %d", bv[1], bv[2])
  check(dist.any(r == 1) == true and dist.any(false) == false, "dist.any")
  check(dist.all_reduce_number(r + 0.25, "sum") == 1.5, "all_reduce_number")
  -- reduce_grads: buckets across dtypes, averaged
  local ps = {}
  for i = 1, 5 do
    local p = pt.zeros({ 3, 4 }, { requires_grad = true })
    p.grad = pt.full({ 3, 4 }, i * (r + 1))
    ps[i] = p
  end
  local info = dist.reduce_grads(ps, { bucket_bytes = 100 })
  -- 48 bytes per gradient, 100-byte buckets: 2 + 2 + 1
  check(info.buckets == 3 and info.elements == 60, "reduce_grads buckets %d elements %d", info.buckets, info.elements)
  for i = 1, 5 do check(ps[i].grad[2][3]:item() == i * 1.5, "grad %d = %s", i, ps[i].grad[2][3]:item()) end
  -- mismatched gradients are refused on both ranks
  ps[5].grad = r == 0 and ps[5].grad or nil
  ok, err = pcall(dist.reduce_grads, ps)
  check(not ok and err:find("same parameters", 1, true), "mismatched grads: %s", tostring(err))
  -- ParallelMuon with the same bf16-exact gradients on both ranks (so the average is exact) equals
  -- optim.Muon with "unit" rounding in one process: a bank [3, 4, 6] (padded to 4 rows: rank 0
  -- orthogonalises matrices 1-2, rank 1 matrix 3 and the padding) and a matrix [5, 4]
  pt.manual_seed(5)
  local w = { pt.randn({ 3, 4, 6 }), pt.randn({ 5, 4 }) }
  local gr = { pt.randn({ 3, 4, 6 }):to("bf16"):to("f32"), pt.randn({ 5, 4 }):to("bf16"):to("f32") }
  local function params()
    local ps2 = {}
    for i = 1, 2 do ps2[i] = w[i]:clone(); ps2[i].grad = gr[i] end
    return ps2
  end
  local mo = { lr = 0.05, momentum = 0.9, weight_decay = 0.1, round = "unit" }
  local ref, par = params(), params()
  local mref = optim.Muon { params = ref, lr = mo.lr, momentum = mo.momentum, weight_decay = mo.weight_decay, round = "unit" }
  local mpar = dist.ParallelMuon(optim.Muon { params = par, lr = mo.lr, momentum = mo.momentum, weight_decay = mo.weight_decay,
    round = "unit" })
  for _ = 1, 2 do mref:step(0.5); mpar:step(0.5) end
  for i = 1, 2 do
    local d = (ref[i] - par[i]):abs():max():item()
    check(d == 0, "ParallelMuon param %d differs from optim.Muon by %g", i, d)
  end
  dist.barrier()
  print(string.format("collectives ok rank %d", r))
  return
end

if mode == "train" then
  local out, muon_kind, accum, clip = arg[2], arg[3] or "plain", tonumber(arg[4] or "1"), tonumber(arg[5] or "0.3")
  local model = smoke_model(1337)
  local named = {}
  for n, p in model:named_parameters() do named[#named + 1] = { n, p } end
  local g = optim.split_params(named, "proteus", { unmatched = "scalar" })
  local muon = optim.Muon { params = g.muon.params, lr = 0.02, momentum = 0.95, weight_decay = 0.04 }
  local hooks_opts = {}
  if muon_kind == "roundrobin" then
    muon = dist.RoundRobinMuon(muon)
  elseif muon_kind == "parallel" then
    muon = dist.ParallelMuon(muon)
    hooks_opts.exclude = muon
  end
  local opts = {
    optim.AdamW { params = g.embed.params, lr = 0.03, betas = { 0.9, 0.95 }, weight_decay = 0.04 },
    muon,
    optim.AdamW { params = g.scalar.params, lr = 0.02, betas = { 0.9, 0.95 }, weight_decay = 0.04 },
  }
  local hooks = dist.train_hooks(hooks_opts)
  local res = train.run {
    model = model, optimizers = opts, stream = data.stream(data.paths().train), seq_len = 32, batch_seqs = 2,
    grad_accum = accum, max_steps = 10, quiet = true, checkpoint = false, clip = clip,
    clip_when = muon_kind == "parallel" and "before" or "after",
    lr_schedule = train.iteration_lr(6), momentum_schedule = train.momentum_warmup(0.85, 0.95, 5),
    rank = hooks.rank, world = hooks.world, reduce_grads = hooks.reduce_grads, any_rank = hooks.any_rank,
  }
  check(res.steps == 10, "trained %d steps", res.steps)
  -- every rank holds the same weights: compare a checksum with rank 0's
  local sum = 0
  for _, e in ipairs(named) do sum = sum + e[2]:to("f64"):abs():sum():item() end
  local t = pt.tensor({ sum }, "f64")
  dist.broadcast(t, 0)
  check(t:item() == sum, "weights differ from rank 0's (checksum %.17g vs %.17g)", sum, t:item())
  dist.rank0(function()
    local m = {}
    for _, e in ipairs(named) do m[e[1]] = e[2] end
    st.save(out, m)
    print(string.format("train %s world %d: 10 steps, last loss %.6f, weights in %s", muon_kind,
      dist.world_size(), res.last_loss, out))
  end)
  return
end

if mode == "compare" then
  local a, b, tol = st.load(arg[2]), st.load(arg[3]), tonumber(arg[4])
  local worst, worst_name, n = 0, "", 0
  for name, ta in pairs(a) do
    local tb = b[name]
    check(tb ~= nil, "%s missing from %s", name, arg[3])
    local diff = (ta:to("f64") - tb:to("f64")):pow(2):sum():item() ^ 0.5
    local norm = ta:to("f64"):pow(2):sum():item() ^ 0.5
    local rel = diff / math.max(norm, 1e-30)
    if rel > worst then worst, worst_name = rel, name end
    n = n + 1
  end
  print(string.format("compare: %d tensors, largest relative difference %.3e (%s), tolerance %.0e", n, worst,
    worst_name, tol))
  if worst >= tol then os.exit(1) end
  return
end

if mode == "eval" then
  local out = arg[2]
  local model = smoke_model(7)
  local full = data.open_val { vocab = 1024 }
  -- the first 12,289 validation tokens (12,288 targets) keep the test short
  local val = { tokens = full.tokens:sub(0, 12289), tables = full.tables, name = "val_head" }
  local logits_fn = function(x) return model:logits(x) end
  local res = dist.evaluate(eval.standard, val, logits_fn, { seq_len = 64, batch_seqs = 8, log = false })
  -- the sliding pass scores into a ledger kept open (opts.ledger), so its merged per-position state
  -- can be digested afterwards
  local led = data.ledger(val.tokens, val.tables, { legal = true, name = "val_head" })
  local sres = dist.evaluate(eval.sliding, val, logits_fn, { seq_len = 64, stride = 32, batch_seqs = 8, log = false,
    ledger = led })
  -- a digest of the merged per-position state: Σ t·scored[t] and the scored count of every 1000th target
  local sc = led:export()
  local digest = (sc:to("f64") * pt.arange(0, #val.tokens):to("f64")):sum():item()
  local picks = {}
  for t = 1, #val.tokens - 1, 1000 do picks[#picks + 1] = led:position(t) end
  dist.rank0(function()
    local f = assert(io.open(out, "w"))
    for _, r in ipairs { res, sres } do
      local rep = r.report
      f:write(string.format("%.17g %.17g %d %d %d %d %d %s\n", rep.bpb, rep.loss, rep.targets, rep.scored_once,
        rep.scored_never, rep.scored_multiple, rep.token_count, rep.verdict))
    end
    f:write(string.format("ledger %.17g %s\n", digest, table.concat(picks, ",")))
    f:close()
    print(res.line)
    print(sres.line)
  end)
  return
end

if mode == "overlap" then
  -- both ranks score target 1: the merge must refuse in legal mode, on every rank
  local val = data.open_val { vocab = 1024 }
  local led = data.ledger(val.tokens, val.tables, { legal = true, name = "val" })
  led:score({ 1 }, pt.zeros({ 1, 1024 }))
  local ok, err = pcall(dist.merge_ledger, led)
  check(not ok and err:find("target position 1 of val was scored 2 times across ranks", 1, true),
    "overlap not refused: %s", tostring(err))
  -- legal = false: the duplicate is counted and the verdict is illegal
  local led2 = data.ledger(val.tokens, val.tables, { legal = false, name = "val" })
  led2:score({ 1 }, pt.zeros({ 1, 1024 }))
  local r = dist.merge_ledger(led2)
  check(r.scored_multiple == 1 and r.verdict == "illegal" and r.token_count == 2, "non-legal merge: %d %s %d",
    r.scored_multiple, r.verdict, r.token_count)
  print(string.format("overlap ok rank %d", dist.rank()))
  return
end

if mode == "recipe_eval" then
  -- Job:eval_standard / Job:eval_sliding / Job:results of proteus.recipe on one artifact (the same file
  -- for 1 and 2 ranks): 4128 validation tokens give 64 standard windows of 64 and 128 sliding windows
  -- (stride 32), so with 8 windows per forward both runs compute the same batches and the logits are
  -- bit-identical (they depend on the batch shape in the last bits); only the f64 sums differ in order.
  local artifact_path, run_dir = arg[2], arg[3]
  local recipe = require "proteus.recipe"
  local artifact = require "proteus.artifact"
  local src = recipe.load(data.root() .. "/lua/recipes/baseline.lua")
  local cfg, info = src.resolve({ "preset=smoke", "val_max_tokens=4128", "run_dir=" .. run_dir, "quiet=true" }, false)
  recipe.run(src.def, cfg, info, function(job)
    job:build_model()
    artifact.load_into(job.model, artifact_path, { recipe = "baseline" })
    job:eval_standard("roundtrip", { batch_seqs = 8 })
    job:eval_sliding { seq_len = 64, stride = 32, batch_seqs = 8 }
    job:results()
  end, src.path)
  return
end

if mode == "results_compare" then
  -- results.json of a 1-process run (A) and a 2-rank run (B): the BPBs within relative TOL, the same
  -- ledger counts and verdict, world_size 1 and 2
  local run = require "proteus.run"
  local a, b, tol = run.read_results(arg[2]), run.read_results(arg[3]), tonumber(arg[4])
  check(a.world_size == 1 and b.world_size == 2, "world_size %s and %s (expected 1 and 2)", tostring(a.world_size),
    tostring(b.world_size))
  local n = 0
  for _, k in ipairs { "pre_quant_bpb", "roundtrip_bpb", "sliding_bpb", "val_loss" } do
    local x, y = a.eval[k], b.eval[k]
    check(type(x) == type(y), "eval.%s: %s vs %s", k, tostring(x), tostring(y))
    if type(x) == "number" then
      local rel = math.abs(x - y) / math.abs(x)
      check(rel <= tol, "eval.%s: %.17g vs %.17g (relative %.3e > %.0e)", k, x, y, rel, tol)
      print(string.format("results_compare: eval.%s %.17g vs %.17g, relative %.3e", k, x, y, rel))
      n = n + 1
    end
  end
  check(n >= 2, "only %d BPB fields to compare", n)
  local keys = { "verdict", "targets", "scored_once", "scored_never", "scored_multiple", "trained_before_scored" }
  for _, k in ipairs(keys) do
    check(a.ledger[k] == b.ledger[k], "ledger.%s: %s vs %s", k, tostring(a.ledger[k]), tostring(b.ledger[k]))
  end
  check(a.ledger.verdict == "legal", "verdict %s", tostring(a.ledger.verdict))
  return
end

-- LoRA TTT (ttt.lora_eval, spec §3.7) on the smoke model over the first 16,621 validation tokens (15
-- documents, 5 under 800 tokens: the short path), chunk 64 in windows of 128; BATCH documents per batch,
-- DIST = contiguous | zigzag. On 2 ranks each rank scores its documents and the ledgers are merged.
local function ttt_setup(legal)
  local ttt = require "proteus.ttt"
  local model = smoke_model(7)
  local full = data.open_val { vocab = 1024 }
  local tokens = full.tokens:sub(0, 16621)
  local val = { tokens = tokens, tables = full.tables, name = "val_head",
    ledger = data.ledger(tokens, full.tables, { legal = legal, name = "val_head" }) }
  return ttt, model, val
end
local TTT_OPTS = { chunk_size = 64, eval_seq_len = 128, short_doc_len = 800, lora_seed = 1234, log = false }

if mode == "ttt" then
  local out, batch, how = arg[2], tonumber(arg[3]), arg[4]
  local ttt, model, val = ttt_setup(true)
  local o = {}
  for k, v in pairs(TTT_OPTS) do o[k] = v end
  o.batch_docs, o.zigzag, o.rank, o.world = math.tointeger(batch), how == "zigzag", dist.rank(), dist.world_size()
  local r = ttt.lora_eval(model, val, o)
  local rep = r.report
  check(r.merged == (dist.world_size() > 1), "merged = %s", tostring(r.merged))
  check(rep.scored_once == rep.targets and rep.scored_never == 0 and rep.scored_multiple == 0
    and rep.verdict == "legal", "the merged ledger: %s", r.line)
  check(r.docs.long > 0 and r.docs.short > 0 and r.steps > 0, "docs short %d long %d, %d steps", r.docs.short,
    r.docs.long, r.steps)
  -- this rank's documents: contiguous or zigzag, and a share of the whole
  local n_all = r.docs.short + r.docs.long + r.docs.fallback
  local mine = r.rank_docs.short + r.rank_docs.long + r.rank_docs.fallback
  check(mine == #ttt.distribute(n_all, dist.world_size(), dist.rank(), how == "zigzag"), "rank holds %d docs", mine)
  local sc = r.ledger:export()
  local digest = (sc:to("f64") * pt.arange(0, #val.tokens):to("f64")):sum():item()
  dist.rank0(function()
    local f = assert(io.open(out, "w"))
    f:write(string.format("%.17g %.17g %.17g %d %d %d %d %d %d %d %d %d %.17g %s\n", rep.bpb, rep.loss,
      r.submission_bpb, rep.targets, rep.scored_once, rep.scored_never, rep.scored_multiple, rep.trained,
      r.trained_targets, r.docs.short, r.docs.long, r.steps, digest, rep.verdict))
    f:close()
    print(string.format("ttt %s batch %d world %d: %s (rank 0 docs %d of %d)", how, batch, dist.world_size(), r.line,
      mine, n_all))
  end)
  return
end

if mode == "ttt_compare" then
  -- two "ttt" result files: BPB, loss and submission BPB within relative TOL, every count equal
  local function read(path)
    local f = assert(io.open(path))
    local line = f:read("l")
    f:close()
    local v = {}
    for w in line:gmatch("%S+") do v[#v + 1] = w end
    return v
  end
  local a, b, tol = read(arg[2]), read(arg[3]), tonumber(arg[4])
  check(#a == 14 and #b == 14, "malformed result files")
  -- optimizer steps are per batch of documents: equal only when the batches are (BATCH = 1)
  print(string.format("ttt_compare: LoRA steps %s vs %s", a[12], b[12]))
  if arg[5] == "steps" then check(a[12] == b[12], "steps: %s vs %s", a[12], b[12]) end
  b[12] = a[12]
  local worst = 0
  for i = 1, 3 do
    local x, y = tonumber(a[i]), tonumber(b[i])
    worst = math.max(worst, math.abs(x - y) / math.abs(x))
  end
  local names = { "targets", "scored_once", "scored_never", "scored_multiple", "trained", "trained_targets",
    "short docs", "long docs", "steps", "scored digest", "verdict" }
  for i = 4, 14 do check(a[i] == b[i], "%s: %s vs %s", names[i - 3], a[i], b[i]) end
  print(string.format("ttt_compare: bpb %s vs %s, largest relative difference %.3e (tolerance %.0e); counts equal",
    a[1], b[1], worst, tol))
  check(worst <= tol, "relative difference %.3e > %.0e", worst, tol)
  return
end

if mode == "ttt_overlap" then
  -- both ranks take rank 0's documents: the merge must refuse (legal) / count the duplicates (legal=false)
  local ttt, model, val = ttt_setup(true)
  local o = {}
  for k, v in pairs(TTT_OPTS) do o[k] = v end
  o.batch_docs, o.rank, o.world = 4, 0, dist.world_size()
  local ok, err = pcall(ttt.lora_eval, model, val, o)
  check(not ok and tostring(err):find("of val_head was scored 2 times across ranks", 1, true),
    "overlap not refused: %s", tostring(err))
  local _, model2, val2 = ttt_setup(false)
  o.ledger = val2.ledger
  local r = ttt.lora_eval(model2, val2, o)
  local rep = r.report
  -- rank 0's share scored twice, rank 1's never, nothing once
  check(rep.verdict == "illegal" and rep.scored_multiple > 0 and rep.scored_never > 0 and rep.scored_once == 0
    and rep.scored_multiple + rep.scored_never == rep.targets, "non-legal merge: %s", r.line)
  print(string.format("ttt_overlap ok rank %d: %s", dist.rank(), r.line))
  return
end

if mode == "hang" then
  dist.init { timeout = tonumber(os.getenv("DIST_WORKER_TIMEOUT") or "5") }
  local t = pt.zeros({ 16 })
  local host = require "proteus._host"
  local t0 = host.clock()
  local i = 0
  while true do
    dist.all_reduce(t, "sum")
    i = i + 1
    if i == 1 then
      local f = io.open("/proc/self/stat")
      local pid = f and f:read("n") or -1
      if f then f:close() end
      print(string.format("ready rank %d pid %d", dist.rank(), pid))
      io.stdout:flush()
    end
    if host.clock() - t0 > 60 then error("hang: nobody killed a rank within 60 s") end
    local t1 = host.clock()
    while host.clock() - t1 < 0.01 do end
  end
end

if mode == "fail" then
  -- rank 1 raises inside dist.main: every rank ends at once (MPI_Abort), not after the watchdog
  dist.init { timeout = 60 }
  dist.main(function()
    if dist.rank() == 1 then error("deliberate failure on rank 1") end
    dist.barrier()
  end)
  return
end

error("dist_worker: unknown mode " .. tostring(mode)
  .. " (collectives | train | compare | eval | overlap | recipe_eval | results_compare | ttt | ttt_compare | ttt_overlap"
  .. " | hang | fail)")
