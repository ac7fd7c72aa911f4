-- tests/gpu/test_graph.lua — CUDA graphs (src/kernels/cuda/graph.c, proteus.cuda's cuda.graph,
-- train.run{cuda_graph = true}) on a GPU:
--   * a chain of elementwise ops, a cuBLAS matmul and reductions captured once, replayed after new
--     values are copied into the static input: the same results as running it eagerly;
--   * tensor:item() (and synchronize, host->device copies, empty_cache, events, random fills, nested captures,
--     plain errors) inside the captured function raise a clear error, the capture is discarded,
--     and the process goes on capturing and replaying;
--   * the graph's private pool: allocations during the capture come from it, tensors released
--     during the capture go back to it (and are reused), earlier tensors released during it are
--     adopted, eager work outside never takes from it, the device statistics show it, and freeing
--     the graph hands its blocks back to the device cache;
--   * the host-free paths of a GPT step (device fill, integer scalars, embedding forward/backward with the
--     device-grouped index_add, the CE target check and mean, the fused head + CE) captured and replayed
--     with new indices match eager; a bad index or target inside a replay is reported at the next
--     synchronisation (loss:item(), cuda.synchronize()) with the eager message + "(a deferred check ...)";
--   * a tiny GPT's forward + backward (fused_head_ce off and on) captured and replayed with new tokens;
--   * a 5-step tiny-GPT train.run with cuda_graph = true (2 eager steps, capture at step 3, replays)
--     gives the eager run's losses within 1e-5: f32 with one micro-step, bf16 compute with two; an
--     optimizer state replaced after the capture (load_state_dict) stops the run with an error.
--
--   build/proteus tests/run.lua tests/gpu/test_graph.lua      (ctest -L gpu; scripts/gpu_tests.sh)
--
-- Skips without a device (graphs need a real one: no CPU self-check). Not yet run on a GPU.
local pt = require "proteus"
local cuda = require "proteus.cuda"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local need = G.need_cuda
local tests = {}

local function invariant(T, s, what)
  T.eq(s.reserved_bytes, s.allocated_bytes + s.cached_bytes, what .. ": reserved = allocated + cached")
end

tests.capture_replay_matches_eager = function(T)
  need(T)
  pt.manual_seed(G.SEED)
  local x = pt.randn({ 64, 32 }):to("cuda") -- the static input
  local w = pt.randn({ 32, 16 }):to("cuda")
  local function f()
    local h = (x * 0.5 + 1):tanh()          -- elementwise (scalar and unary kernels)
    local z = h:matmul(w)                   -- cuBLAS, with the allocator's workspace
    local r = (z * z):sum(2)                -- a reduction per row [64]
    return r, r:mean()                      -- and a full one (0-d)
  end
  f() -- warm-up: kernels loaded, handles made
  local g, r, m = cuda.graph(f)
  assert(g:stats().nodes >= 5, tostring(g))
  for round = 1, 3 do
    if round > 1 then x:copy_(pt.randn({ 64, 32 })) end -- new values INTO the static input
    g:replay()
    local want_r, want_m = f()
    G.same(T, "replay " .. round .. " rows", r, want_r, 1e-6)
    G.same(T, "replay " .. round .. " mean", m, want_m, 1e-6)
  end
  local same_r = select(1, g:outputs())
  assert(same_r == r, "g:outputs() returns the captured function's results")
  T.eq(g:stats().replays, 3)
  local m_before = m:item()
  g:free()
  T.raises(function() g:replay() end, "already freed")
  -- results of a freed graph stay readable (their memory became ordinary)
  T.eq(m:item(), m_before, "the result reads the same after free")
end

tests.item_inside_capture_errors_and_the_process_continues = function(T)
  need(T)
  local x = pt.arange(12):to("f32"):to("cuda")
  local msg = T.raises(function()
    cuda.graph(function()
      local y = x * 2
      local v = y:sum():item()
      return y * v
    end)
  end, "tensor:item() reads the GPU and cannot run inside a CUDA graph capture; move it out of the captured function")
  assert(msg:find("cuda.graph: the capture was aborted (nothing was captured)", 1, true), msg)
  assert(msg:find("test_graph.lua:", 1, true), "the message names the line: " .. msg)
  T.eq(cuda.capturing(), nil)
  -- eager work goes on
  T.eq((x * 3):sum():item(), 198)
  -- an error swallowed inside fn still fails the capture
  msg = T.raises(function()
    cuda.graph(function()
      pcall(function() return x:sum():item() end)
      return x * 2
    end)
  end, "CUDA graph capture on cuda:0 failed and was discarded")
  assert(msg:find("reads the GPU", 1, true), msg)
  -- the other operations that cannot be captured name themselves
  T.raises(function() cuda.graph(function() cuda.synchronize() end) end,
    "cuda.synchronize() waits for the GPU and cannot run inside a CUDA graph capture")
  T.raises(function() cuda.graph(function() return pt.ones({ 4 }):to("cuda") end) end,
    "a host->device copy (16 bytes to cuda:0")
  T.raises(function() cuda.graph(function() cuda.empty_cache() end) end,
    "cuda.empty_cache() (cudaFree) cannot run inside a CUDA graph capture")
  T.raises(function() cuda.graph(function() return cuda.event() end) end, "a timing event")
  -- random fills: seed and offset are fixed at capture, a replay would repeat the numbers
  local buf = pt.zeros({ 64 }, { device = "cuda" })
  T.raises(function() cuda.graph(function() buf:normal_(0, 1) end) end, "a random fill on the GPU")
  T.raises(function() cuda.graph(function() return pt.randperm(10, { device = "cuda" }) end) end,
    "pt.randperm on the GPU")
  T.raises(function() cuda.graph(function() cuda.graph(function() end) end) end, "captures do not nest")
  T.raises(function() cuda.graph(function() error("boom in the step") end) end, "boom in the step")
  T.eq(cuda.capturing(), nil)
  T.eq(cuda.memory_stats().n_graph_pools, 0, "every aborted capture released its pool")
  -- and a good capture still works
  local g, y = cuda.graph(function() return x * 2 + 1 end)
  g:replay()
  G.same(T, "capture after errors", y, x * 2 + 1)
  g:free()
end

tests.pool_holds_the_graphs_memory = function(T)
  need(T)
  cuda.synchronize()
  local s0 = cuda.memory_stats()
  T.eq(s0.n_graph_pools, 0)
  local x = pt.randn({ 256, 256 }):to("cuda") -- 256 KiB
  local early = x * 1                           -- made before the capture, released during it
  local function f()
    local a = x * 2
    local b = a + 1
    a:release()                 -- back to the pool ...
    local c = b:tanh()          -- ... and taken again here (same size class)
    b:release()
    early:release()             -- adopted: the graph may hold its address
    return c:sum(), c
  end
  local g, total, c = cuda.graph(f)
  local st = g:stats()
  assert(st.pool_reuses >= 1, "c reuses a's block")
  assert(st.pool_frees >= 3, "a, b and early came back to the pool")
  T.eq(st.pool_adopted, 1)
  assert(st.pool_blocks >= 3 and st.pool_reserved_bytes >= 3 * 262144, "pool " .. st.pool_reserved_bytes)
  assert(st.pool_allocated_bytes >= 262144 + 512 and st.pool_allocated_bytes <= st.pool_reserved_bytes)
  local s1 = cuda.memory_stats()
  T.eq(s1.n_graph_pools, 1)
  T.eq(s1.graph_pool_reserved_bytes, st.pool_reserved_bytes)
  T.eq(s1.graph_pool_allocated_bytes, st.pool_allocated_bytes)
  invariant(T, s1, "during the graph's life")
  assert(cuda.memory_summary():find("1 CUDA graph pool hold", 1, true), cuda.memory_summary())
  -- eager work outside the capture never takes from the pool, even after its tensors are released
  c:release()
  local allocs = g:stats().pool_allocs
  local z = pt.randn({ 256, 256 }):to("cuda") * 3
  T.eq(g:stats().pool_allocs, allocs)
  -- empty_cache leaves the pool alone
  cuda.empty_cache()
  T.eq(cuda.memory_stats().graph_pool_reserved_bytes, st.pool_reserved_bytes)
  -- replays compute on the pool's memory
  x:copy_(pt.randn({ 256, 256 }))
  g:replay()
  G.same(T, "pool replay", total, ((x * 2) + 1):tanh():sum(), 1e-6)
  local reserved = cuda.memory_stats().reserved_bytes
  local total_before = total:item()
  g:free()
  local s2 = cuda.memory_stats()
  T.eq(s2.n_graph_pools, 0)
  T.eq(s2.graph_pool_reserved_bytes, 0)
  T.eq(s2.graph_pool_allocated_bytes, 0)
  T.eq(s2.reserved_bytes, reserved, "the pool's blocks went to the device cache, not to the driver")
  invariant(T, s2, "after free")
  -- the output lives on as an ordinary tensor
  T.eq(total:item(), total_before, "the output reads the same after free")
  z:release()
end

-- The paths of a GPT step that used to touch the host, now on the device (capturable): fill
-- (pt.full, fill_, autograd's seed), an integer tensor with a Lua integer, the embedding's range check
-- and its backward (index_add, grouped on the device), the CE target check and its mean (ce_mean), the
-- fused head + CE. Replayed with new indices: the same as eager.
tests.embedding_ce_fill_capture_replays_with_new_indices = function(T)
  need(T)
  local F = require "proteus.functional"
  pt.manual_seed(G.SEED)
  local V, C, N = 1024, 32, 256
  local w = pt.randn({ V, C }):to("cuda"):detach()
  w.requires_grad = true
  local head = pt.randn({ V, C }):to("cuda")
  local idx = pt.randint(0, V, { N }):to("cuda") -- static inputs
  local tgt = pt.randint(0, V, { N }):to("cuda")
  local function f()
    w.grad = nil
    local x = pt.embedding(w, idx)                                          -- index_check + index_select
    local loss = F.softcap_cross_entropy(x:matmul(head:transpose(1, 2)), tgt, { softcap = 30 }) -- targets, ce_mean
    local fused = F.linear_softcap_cross_entropy(x, head, tgt, { softcap = 30, chunk = 100 })   -- head_ce's check
    ;(loss + fused):backward()                                             -- seed fill, index_add
    local filled = pt.full({ 4, 3 }, 2.5, { device = "cuda" })
    filled:narrow(2, 2, 1):fill_(-1)                                        -- strided fill
    return loss:detach(), fused:detach(), w.grad, filled, idx + 1, idx * 3 - 7, pt.ones({ 5 }, { device = "cuda" })
  end
  f() -- warm-up
  local g, loss, fused, grad, filled, plus1, lin, ones = cuda.graph(f)
  for round = 1, 3 do
    if round > 1 then -- new values INTO the static inputs
      idx:copy_(pt.randint(0, V, { N }))
      tgt:copy_(pt.randint(0, V, { N }))
    end
    g:replay()
    local want = table.pack(f())
    G.same(T, "replay " .. round .. " loss", loss, want[1], 1e-6)
    G.same(T, "replay " .. round .. " fused loss", fused, want[2], 1e-6)
    assert(G.rel(grad, want[3]) <= 1e-6, "replay " .. round .. " embedding gradient")
    G.same(T, "fill", filled, want[4])
    G.same(T, "idx + 1", plus1, want[5])
    G.same(T, "idx * 3 - 7", lin, want[6])
    G.same(T, "ones", ones, want[7])
  end
  T.eq(filled:to("cpu"):totable(), { { 2.5, -1, 2.5 }, { 2.5, -1, 2.5 }, { 2.5, -1, 2.5 }, { 2.5, -1, 2.5 } })

  -- a bad index inside a replay cannot stop the GPU: the check records it and the next synchronisation
  -- reports it with the eager message; the data kernels skip the bad row meanwhile (no fault)
  local good = idx:to("cpu")
  local bad = good:clone()
  bad[6]:fill_(1500)
  idx:copy_(bad)
  g:replay()
  local deferred = " (a deferred check inside a CUDA graph: reported at the next synchronisation)"
  T.raises(function() return loss:item() end,
    "embedding: index 1500 at position 5 is out of range for 1024 rows (valid 0..1023)" .. deferred)
  T.eq(math.type(loss:item()) or type(loss:item()), "float", "read once: the record was cleared") -- no error now
  -- the eager op says the same without the suffix
  local _, eager_msg = pcall(pt.embedding, w, idx)
  assert(tostring(eager_msg):find("embedding: index 1500 at position 5 is out of range for 1024 rows", 1, true)
    and not tostring(eager_msg):find("deferred", 1, true), tostring(eager_msg))
  -- a bad target: the first failing check in stream order wins (softcap_cross_entropy's, before head_ce's);
  -- cuda.synchronize() reports it as well
  idx:copy_(good)
  local tg = tgt:to("cpu")
  local tb = tg:clone()
  tb[4]:fill_(5000)
  tgt:copy_(tb)
  g:replay()
  T.raises(function() cuda.synchronize() end, "softcap_cross_entropy: target 5000 at position 3 (flat index into "
    .. "targets [256]) is out of range [0, 1024)" .. deferred)
  cuda.synchronize() -- cleared
  -- good inputs again: the replay is right again
  tgt:copy_(tg)
  g:replay()
  local want = table.pack(f())
  G.same(T, "after the errors", loss, want[1], 1e-6)
  assert(G.rel(grad, want[3]) <= 1e-6, "embedding gradient after the errors")
  g:free()
end

-- A GPT forward + backward (fused_head_ce off and on; BigramHash, SmearGate, XSA, attention, rms_norm)
-- captured once and replayed with new tokens: the eager loss and gradients. A token out of range in a
-- replay is reported at the next loss:item().
tests.gpt_forward_backward_capture_matches_eager = function(T)
  need(T)
  local nn = require "proteus.nn"
  for _, fused in ipairs { false, true } do
    pt.manual_seed(1337)
    local model = nn.GPT { vocab_size = 1024, num_layers = 2, model_dim = 64, num_heads = 2, num_kv_heads = 1,
      mlp_mult = 2, bigram_vocab_size = 256, bigram_dim = 16, smear_gate = true, xsa_layers = { 1 },
      fused_head_ce = fused }:to("cuda")
    local xs = pt.randint(0, 1024, { 4, 64 }):to("cuda")
    local ys = pt.randint(0, 1024, { 4, 64 }):to("cuda")
    local function step()
      model:zero_grad()
      local loss = model:forward(xs, ys)
      loss:backward()
      local grads = {}
      for name, p in model:named_parameters() do grads[#grads + 1] = { name, p.grad } end
      return loss:detach(), grads
    end
    step() -- warm-up
    local g, loss, grads = cuda.graph(step)
    for round = 1, 2 do
      xs:copy_(pt.randint(0, 1024, { 4, 64 }))
      ys:copy_(pt.randint(0, 1024, { 4, 64 }))
      g:replay()
      local got = loss:item()
      local want_loss, want_grads = step()
      local want = want_loss:item()
      assert(math.abs(got - want) <= 1e-5 * math.max(1, math.abs(want)),
        string.format("fused_head_ce=%s round %d: loss %.8f replayed vs %.8f eager", tostring(fused), round, got, want))
      for i, ng in ipairs(grads) do
        local r = G.rel(ng[2], want_grads[i][2])
        assert(r <= 1e-5, string.format("fused_head_ce=%s: %s gradient differs by %.3g", tostring(fused), ng[1], r))
      end
    end
    local bad = xs:to("cpu")
    bad[2][4]:fill_(5000) -- flat position 67
    xs:copy_(bad)
    g:replay()
    T.raises(function() return loss:item() end, "embedding: index 5000 at position 67 is out of range for 1024 rows "
      .. "(valid 0..1023) (a deferred check inside a CUDA graph: reported at the next synchronisation)")
    g:free()
  end
end

tests.tiny_gpt_train_run_graph_matches_eager = function(T)
  need(T)
  local nn = require "proteus.nn"
  local optim = require "proteus.optim"
  local data = require "proteus.data"
  local train = require "proteus.train"
  local function run(graph, v)
    pt.manual_seed(1337)
    local model = nn.GPT { vocab_size = 1024, num_layers = 2, model_dim = 128, num_heads = 2, num_kv_heads = 1,
      mlp_mult = 2, bigram_vocab_size = 256, bigram_dim = 16, smear_gate = true, compute_dtype = v.compute }:to("cuda")
    local named = {}
    for n, p in model:named_parameters() do named[#named + 1] = { n, p } end
    local g = optim.split_params(named, "proteus", { unmatched = "scalar" })
    local opts = { -- the PROTEUS split (§3.4): Muon's Newton–Schulz GEMMs are captured too
      optim.AdamW { params = g.embed.params, lr = 0.03, betas = { 0.9, 0.95 }, weight_decay = 0.04 },
      optim.Muon { params = g.muon.params, lr = 0.02, momentum = 0.95, weight_decay = 0.04, ns_dtype = "f32" },
      optim.AdamW { params = g.scalar.params, lr = 0.02, betas = { 0.9, 0.95 }, weight_decay = 0.04 },
    }
    local res = train.run { model = model, optimizers = opts, stream = data.stream(data.paths().train),
      seq_len = 64, batch_seqs = 4, max_steps = 5, clip = 0.3, quiet = true, checkpoint = false,
      lr_schedule = train.iteration_lr(3), momentum_schedule = train.momentum_warmup(0.85, 0.95, 4),
      cuda_graph = graph, cuda_graph_warmup = 2, grad_accum = v.accum, on_step = v.on_step and function(c)
        return v.on_step(c, opts)
      end }
    return res, model
  end
  -- f32, one micro-step; then bf16 compute (head dim 64: the flash kernels) with 2 micro-steps per step
  for _, v in ipairs { { compute = "f32", accum = 1 }, { compute = "bf16", accum = 2 } } do
    local eager, me = run(false, v)
    local graphed, mg = run(true, v)
    local what = string.format("%s compute, grad_accum %d", v.compute, v.accum)
    T.eq(graphed.cuda_graph.capture_step, 3, what)
    T.eq(graphed.cuda_graph.replays, 3, what)
    for k = 1, 5 do
      local a, b = graphed.losses[k], eager.losses[k]
      assert(math.abs(a - b) <= 1e-5 * math.max(1, math.abs(b)),
        string.format("%s: step %d: loss %.8f with cuda_graph vs %.8f eager", what, k, a, b))
    end
    local pe = {}
    for name, p in me:named_parameters() do pe[name] = p end
    for name, p in mg:named_parameters() do
      local r = G.rel(p, pe[name])
      assert(r <= 1e-5, string.format("%s: %s: relative difference %.3g after 5 steps", what, name, r))
    end
    print(string.format("    %s: 5 steps, final loss %.6f (graph) vs %.6f (eager); graph %d nodes, pool %s", what,
      graphed.losses[5], eager.losses[5], graphed.cuda_graph.stats.nodes,
      cuda.fmt_bytes(graphed.cuda_graph.stats.pool_reserved_bytes)))
  end
  -- an optimizer's state replaced after the capture (load_state_dict makes new tensors): the replay
  -- would update the old ones, so the next step refuses, naming the optimizer
  T.raises(function()
    run(true, { compute = "f32", accum = 1, on_step = function(c, opts)
      if c.step == 3 then opts[2]:load_state_dict(opts[2]:state_dict()) end
    end })
  end, "optimizer 2 (Muon): its ")
end

return tests
