-- tests/lua/test_train.lua — the training loop library (proteus.train) and the progress line.
--
--   build/proteus tests/run.lua tests/lua/test_train.lua
--
-- A tiny nn.GPT (2 layers, dim 32) on the bundled sample, CPU. Checks: 20 steps straight and 10 +
-- stop + resume + 10 give bit-identical losses and weights (with grad accumulation, clipping, Muon
-- momentum warmup, EMA, SWA and late QAT all on); the compile warmup restores weights, optimizer
-- states and the data position; the schedules get the training time and their lr_mul reaches the
-- optimizers; the wallclock stop rule; NaN / non-finite gradient stops naming the step and keeping
-- the last checkpoint; the STE fake-quant; EMA/SWA averaging; the records' log line format.
local pt = require "proteus"
local nn = require "proteus.nn"
local testing = require "proteus.testing"
local sched = require "proteus.schedule"
local data = require "proteus.data"
local run = require "proteus.run"
local train = require "proteus.train"
local ckpt = require "proteus.checkpoint"
local progress = require "proteus.progress"

local TMP = os.getenv("TMPDIR") or "/tmp"
local function tmpdir(tag)
  local d = string.format("%s/proteus_test_train_%s_%d_%d", TMP, tag, os.time(), math.random(1, 1e9))
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end
local function rmdir(d) os.execute("rm -rf '" .. d .. "'") end

-- a fresh tiny model and the PROTEUS optimizer split (§3.4), deterministic from the seed
local function setup(seed)
  pt.manual_seed(seed or 1337)
  local model = nn.GPT { vocab_size = 1024, num_layers = 2, model_dim = 32, num_heads = 2, num_kv_heads = 1,
    mlp_mult = 2, bigram_vocab_size = 64, bigram_dim = 16, smear_gate = true }
  local opts = testing.proteus_optimizers(model)
  return model, opts, data.stream(data.paths().train)
end

local function weights(model)
  local out = {}
  for n, p in model:named_parameters() do out[n] = p:totable() end
  return out
end

local function base_opts(model, opts, stream, extra)
  local o = { model = model, optimizers = opts, stream = stream, seq_len = 32, batch_seqs = 2, max_steps = 20,
    quiet = true, clip = 0.3, lr_schedule = train.iteration_lr(12),
    momentum_schedule = train.momentum_warmup(0.85, 0.95, 10) }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function flat(t) -- nested totable -> flat list
  local out = {}
  local function walk(x)
    if type(x) == "table" then for _, v in ipairs(x) do walk(v) end else out[#out + 1] = x end
  end
  walk(t)
  return out
end

local tests = {}

tests.resume_is_bit_identical = function(T)
  local dir = tmpdir("resume")
  -- iteration warmdown over 16 steps: SWA snapshots (lr_mul < 0.9) start before the stop at 10,
  -- late QAT (lr_mul < 0.3) switches on after it
  local extra = { grad_accum = 2, ema = { decay = 0.9, every = 2 }, swa = { threshold = 0.9, every = 2 },
    qat = { threshold = 0.3, names = { "%.c_q%.weight$", "mlp%.fc%.weight$" } }, warmup_steps = 2,
    lr_schedule = train.iteration_lr(16) }
  -- straight
  local m1, o1, s1 = setup()
  local e1 = {}
  for k, v in pairs(extra) do e1[k] = v end
  local r1 = train.run(base_opts(m1, o1, s1, e1))
  T.eq(r1.steps, 20)
  T.eq(r1.stopped, "max_steps")
  T.eq(r1.qat_on, true)
  T.eq(r1.averaging, "swa")
  -- 10 steps, stop (checkpoint), then a fresh process-like setup resumes for the other 10
  local path = dir .. "/ck.safetensors"
  local m2, o2, s2 = setup()
  local e2 = { checkpoint = { path = path }, on_step = function(ctx) return ctx.step == 10 end }
  for k, v in pairs(extra) do e2[k] = v end
  local r2 = train.run(base_opts(m2, o2, s2, e2))
  T.eq(r2.steps, 10)
  T.eq(r2.stopped, "requested")
  T.eq(r2.checkpoint, path)
  T.eq(r2.averaging, nil) -- a stop is not the end: no averaging applied
  T.eq(r2.swa.count, 2)
  T.eq(r2.ema.updates, 5)
  T.eq(r2.qat_on, false)
  local m3, o3, s3 = setup(999) -- a different init: everything must come from the checkpoint
  local e3 = { resume = path }
  for k, v in pairs(extra) do e3[k] = v end
  local r3 = train.run(base_opts(m3, o3, s3, e3))
  T.eq(r3.steps, 20)
  T.eq(r3.qat_on, true)
  T.eq(r3.qat_step, r1.qat_step)
  T.eq(r1.qat_step, 16)
  for step = 1, 10 do
    assert(r1.losses[step] == r2.losses[step], string.format("step %d: %.17g vs %.17g", step, r1.losses[step], r2.losses[step]))
  end
  for step = 11, 20 do
    assert(r1.losses[step] == r3.losses[step], string.format("step %d: %.17g vs %.17g", step, r1.losses[step], r3.losses[step]))
  end
  T.eq(weights(m3), weights(m1), "weights after 20 steps (SWA applied)")
  T.eq(r3.swa.count, r1.swa.count)
  rmdir(dir)
end

tests.warmup_restores_everything = function(T)
  local model, opts, stream = setup()
  local w0 = weights(model)
  local shard0, off0 = stream:pos()
  local rng0 = pt.get_rng_state()
  local checked = false
  local res = train.run(base_opts(model, opts, stream, { warmup_steps = 3, max_steps = 2, val_every = 100,
    val_fn = function(ctx)
      if ctx.step == 0 then
        T.eq(weights(model), w0, "weights after the warmup")
        for i, opt in ipairs(opts) do T.eq(next(opt.state), nil, "optimizer " .. i .. " state after the warmup") end
        local sh, off = stream:pos()
        T.eq({ sh, off }, { shard0, off0 }, "stream position after the warmup")
        T.eq(pt.get_rng_state(), rng0, "rng state after the warmup")
        for n, p in model:named_parameters() do assert(p.grad == nil, n .. " kept a gradient from the warmup") end
        checked = true
      end
      return { val_loss = 1, val_bpb = 1 }
    end }))
  assert(checked, "val_fn was not called at step 0")
  -- and the run then matches a run without warmup, bit for bit
  local m2, o2, s2 = setup()
  local r2 = train.run(base_opts(m2, o2, s2, { max_steps = 2 }))
  T.eq(res.losses, r2.losses)
  T.eq(weights(model), weights(m2))
end

-- a spy "optimizer" that records the lr_mul it is stepped with (no checkpoint/warmup in its run)
local function spy()
  local s = { kind = "Spy", groups = {}, state = {}, seen = {} }
  function s:step(m) self.seen[#self.seen + 1] = m end
  function s:zero_grad() end
  return s
end

tests.schedules_wired_and_stop_rule = function(T)
  local model, opts, stream = setup()
  local sp = spy()
  table.insert(opts, 1, sp)
  local cap = 400
  local ctxs, steps = {}, {}
  local lr = train.wallclock_lr(5)
  local res = train.run(base_opts(model, opts, stream, { max_steps = 100000, max_wallclock_ms = cap, log_every = 0,
    lr_schedule = function(ctx)
      ctxs[#ctxs + 1] = { step = ctx.step, elapsed_ms = ctx.elapsed_ms, m = lr(ctx) }
      return ctxs[#ctxs].m
    end,
    on_step = function(ctx) steps[#steps + 1] = ctx end }))
  T.eq(res.stopped, "wallclock")
  local n = res.steps
  assert(n >= 3 and n < 100000, "steps " .. n)
  -- stop rule (§2.4): the last step ended at or after the cap, the one before it did not
  assert(steps[n].elapsed_ms >= cap, "last step ended at " .. steps[n].elapsed_ms)
  assert(steps[n - 1].elapsed_ms < cap, "step before the last ended at " .. steps[n - 1].elapsed_ms)
  T.eq(#ctxs, n)
  for i, c in ipairs(ctxs) do
    T.eq(c.step, i - 1, "ctx.step counts completed steps")
    -- the formula of §2.4 at the ctx the schedule saw, and the optimizer got exactly that lr_mul
    local want = sched.wallclock_warmdown { step = c.step, elapsed_ms = c.elapsed_ms, warmdown_iters = 5, max_ms = cap }
    T.eq(c.m, want)
    T.eq(sp.seen[i], want)
    T.eq(steps[i].lr_mul, want)
    if i > 1 then assert(c.elapsed_ms >= steps[i - 1].elapsed_ms - 1e-9, "training time goes backwards") end
  end
  -- the warmdown had begun by the end and heads for 0 at the cap
  assert(ctxs[n].m < 1, "lr_mul at the last step " .. ctxs[n].m)
  T.eq(sched.wallclock_warmdown { step = n, elapsed_ms = cap, warmdown_iters = 5, max_ms = cap }, 0.0)
  -- Muon momentum follows momentum_warmup at the last step's ctx.step
  T.eq(opts[3].groups[1].momentum, sched.momentum_warmup(n - 1, 0.85, 0.95, 10))
end

tests.validation_time_excluded = function(T)
  local model, opts, stream = setup()
  local host = require "proteus._host"
  local steps = {}
  local res = train.run(base_opts(model, opts, stream, { max_steps = 4, val_every = 2, log_every = 0,
    val_fn = function()
      local t = host.clock()
      while host.clock() - t < 0.3 do end -- 300 ms of "validation"
      return { val_loss = 2.5, val_bpb = 1.5 }
    end,
    on_step = function(ctx) steps[#steps + 1] = ctx.elapsed_ms end }))
  -- 3 validations (steps 0, 2, 4) took 900 ms; training time must not contain them
  assert(res.train_time_ms < 600, "train_time " .. res.train_time_ms .. "ms includes validation")
  T.eq(res.val.val_bpb, 1.5)
end

-- a model wrapper whose forward returns a poisoned loss at the k-th call
local function poisoned(model, k, how)
  local calls = 0
  local w = setmetatable({}, { __index = model })
  function w:forward(x, y)
    calls = calls + 1
    local loss = model:forward(x, y)
    if calls == k then
      if how == "loss" then return loss * (0 / 0) end
      -- finite loss (+ 0), non-finite gradient: sqrt'(0) = inf, times the 0 of p*0 -> nan
      local p = model.params.by_name["blocks.0.attn.proj.weight"]
      return loss + (p * 0):sqrt():sum()
    end
    return loss
  end
  return w
end

tests.nan_loss_stops_and_keeps_checkpoint = function(T)
  local dir = tmpdir("nan")
  local path = dir .. "/ck.safetensors"
  local model, opts, stream = setup()
  local msg = T.raises(function()
    train.run(base_opts(poisoned(model, 5, "loss"), opts, stream, { checkpoint = { path = path, every = 2 } }))
  end, "train_loss is nan at step 5/20")
  assert(msg:find(path, 1, true), msg)
  assert(msg:find("(step 4)", 1, true), msg)
  local c = ckpt.load(path)
  T.eq(c.step, 4)
  local m2, o2, s2 = setup(7)
  ckpt.restore(c, { model = m2, optimizers = o2, stream = s2 })
  rmdir(dir)
end

tests.nonfinite_grad_norm_stops = function(T)
  local model, opts, stream = setup()
  local msg = T.raises(function()
    train.run(base_opts(poisoned(model, 3, "grad"), opts, stream, {}))
  end, "the gradient norm is")
  assert(msg:find("at step 3/20", 1, true), msg)
  assert(msg:find("no checkpoint was written", 1, true), msg)
end

tests.fake_quant_int6_per_row = function(T)
  local w = pt.tensor({ { 0.31, -0.62, 0.0, 0.155 }, { 0.001, -0.002, 0.0005, 0.0 }, { -3.1, 1.0, 3.1, -2.0 } })
  local got = train.fake_quant(w, 6):totable()
  -- s = max(rowmax/31, 1/31): rows 1 and 2 (rowmax < 1) use the floor 1/31, row 3 uses 3.1/31
  local s = { 1 / 31, 1 / 31, 3.1 / 31 }
  local k = { { 10, -19, 0, 5 }, { 0, 0, 0, 0 }, { -31, 10, 31, -20 } }
  for r = 1, 3 do
    for c = 1, 4 do T.near(got[r][c], k[r][c] * s[r], 1e-6, string.format("q[%d][%d]", r, c)) end
  end
  -- int4 uses qmax 7
  -- int4: qmax 7, s = max(1.4/7, 1/7) = 0.2: 1.4 -> 7·0.2, 0.25 -> 1·0.2
  local q4 = train.fake_quant(pt.tensor({ { 1.4, 0.25 } }), 4):totable()
  T.near(q4[1][1], 1.4, 1e-6)
  T.near(q4[1][2], 0.2, 1e-6)
end

tests.qat_swap_is_straight_through = function(T)
  local model = setup()
  local name = "blocks.0.mlp.fc.weight"
  local w = model.params.by_name[name]
  local names = train.qat_targets(model, { "mlp%.fc%.weight$" })
  T.eq(names, { "blocks.0.mlp.fc.weight", "blocks.1.mlp.fc.weight" })
  local restore = train.qat_swap(model, names, 6)
  local wq = model.params.by_name[name]
  assert(wq ~= w, "by_name was not swapped")
  T.eq(wq:totable(), train.fake_quant(w, 6):totable(), "the forward sees the quantised weight")
  local c = pt.randn(w:shape())
  local l = (wq * c):sum()
  l:backward()
  restore()
  assert(model.params.by_name[name] == w, "by_name not restored")
  T.eq(w.grad:totable(), c:totable(), "straight-through gradient")
  T.raises(function() train.qat_targets(model, { "nothing_here" }) end, "match no 2-D parameter")
end

tests.ema_used_when_swa_has_fewer_than_two = function(T)
  local model, opts, stream = setup()
  -- SWA threshold 0 never snapshots -> EMA (every 2 steps) is applied
  local res = train.run(base_opts(model, opts, stream, { max_steps = 6, ema = { decay = 0.5, every = 2 },
    swa = { threshold = 0.0, every = 1 } }))
  T.eq(res.averaging, "ema")
  T.eq(res.ema.updates, 3)
  T.eq(res.swa.count, 0)
  local i = 0
  for _, p in model:named_parameters() do
    i = i + 1
    T.eq(p:totable(), res.ema.shadow[i]:totable())
  end
end

tests.swa_average_overrides_ema = function(T)
  local model, opts, stream = setup()
  local snaps = {}
  local res = train.run(base_opts(model, opts, stream, { max_steps = 20, ema = { decay = 0.5, every = 1 },
    swa = { threshold = 0.5, every = 2 }, lr_schedule = train.iteration_lr(12),
    on_step = function(ctx)
      if ctx.lr_mul < 0.5 and ctx.step % 2 == 0 then snaps[#snaps + 1] = weights(model) end
    end }))
  T.eq(res.averaging, "swa")
  T.eq(res.swa.count, #snaps)
  assert(#snaps >= 2, "expected SWA snapshots, got " .. #snaps)
  local w = weights(model)
  for name, t in pairs(w) do
    local got = flat(t)
    local sums = {}
    for _, s in ipairs(snaps) do
      for j, v in ipairs(flat(s[name])) do sums[j] = (sums[j] or 0) + v end
    end
    for j, v in ipairs(got) do T.near(v, sums[j] / #snaps, 1e-5, name .. "[" .. j .. "]") end
  end
end

tests.log_lines_and_metrics = function(T)
  local dir = tmpdir("log")
  local R = run.open { recipe = "t", preset = "test", run_dir = dir, quiet = true }
  local model, opts, stream = setup()
  train.run(base_opts(model, opts, stream, { max_steps = 12, log_every = 5, val_every = 6, run = R,
    quiet = false, val_fn = function() return { val_loss = 3.25, val_bpb = 1.875 } end }))
  R:close()
  local lines = {}
  for l in io.lines(dir .. "/run.log") do lines[#lines + 1] = l end
  local train_steps, val_steps = {}, {}
  for _, l in ipairs(lines) do
    local n, m = l:match("^step:(%d+)/(%d+) train_loss:%d+%.%d%d%d%d train_time:%d+ms step_avg:%d+%.%d%dms$")
    if n then train_steps[#train_steps + 1] = tonumber(n); T.eq(m, "12") end
    local v = l:match("^step:(%d+)/12 val_loss:3%.2500 val_bpb:1%.8750 train_time:%d+ms step_avg:%d+%.%d%dms$")
    if v then val_steps[#val_steps + 1] = tonumber(v) end
  end
  T.eq(train_steps, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12 })
  T.eq(val_steps, { 0, 6, 12 })
  local json = require "proteus.json"
  local n_train, n_val = 0, 0
  for l in io.lines(dir .. "/metrics.jsonl") do
    local r = json.decode(l)
    if r.train_loss then
      n_train = n_train + 1
      T.eq(r.step, n_train)
      assert(r.lr_mul and r.grad_norm and r.train_time_ms and r.tokens == n_train * 64, l)
    else
      n_val = n_val + 1
      T.eq(r.val_bpb, 1.875)
    end
  end
  T.eq({ n_train, n_val }, { 12, 3 })
  -- the final checkpoint went to the run directory
  T.eq(ckpt.load(dir .. "/checkpoint.safetensors").step, 12)
  rmdir(dir)
end

tests.resume_refuses_other_batch_shape = function(T)
  local dir = tmpdir("shape")
  local path = dir .. "/ck.safetensors"
  local model, opts, stream = setup()
  train.run(base_opts(model, opts, stream, { max_steps = 2, checkpoint = { path = path } }))
  local m2, o2, s2 = setup()
  local msg = T.raises(function()
    train.run(base_opts(m2, o2, s2, { seq_len = 16, resume = path }))
  end, "seq_len = 32, this run has 16")
  assert(msg:find(path, 1, true), msg)
  rmdir(dir)
end

tests.bad_options_are_named = function(T)
  local model, opts, stream = setup()
  T.raises(function() train.run(base_opts(model, opts, stream, { clip_when = "during" })) end, "clip_when")
  T.raises(function() train.run(base_opts(model, opts, stream, { max_steps = 0 })) end, "max_steps must be an integer >= 1, got 0")
  T.raises(function() train.run(base_opts(model, opts, stream, { max_wallclock_ms = -5 })) end, "max_wallclock_ms")
  T.raises(function() train.run(base_opts(model, opts, stream, { qat = { names = { "x" } } })) end, "qat.threshold")
  -- a misspelt key is refused with the nearest option, not ignored
  T.raises(function() train.run(base_opts(model, opts, stream, { val_evry = 5 })) end,
    "unknown option val_evry (did you mean val_every?)")
end


tests.progress_format = function(T)
  T.eq(progress.format { step = 120, total_steps = 20000, elapsed_ms = 10000, max_ms = 600000, loss = 3.21,
    lr_mul = 1, tokens_per_step = 524288 },
    "step 120/20000 | loss 3.2100 | 6.29M tok/s | train 10.0s/10m00s | left ~9m50s | lr_mul 1.000")
  -- without a cap the time left comes from the average step time
  T.eq(progress.format { step = 10, total_steps = 20, elapsed_ms = 5000 },
    "step 10/20 | train 5.0s | left ~5.0s")
  T.eq(progress.duration(3725), "1h02m")
end

tests.progress_tty_and_plain = function(T)
  local buf = {}
  local out = { write = function(self, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end end, flush = function() end }
  local now = 0
  local p = progress.new { total_steps = 10, out = out, tty = true, clock = function() return now end }
  p:update { step = 1, elapsed_ms = 100 }
  T.eq(table.concat(buf), "\rstep 1/10 | train 0.1s | left ~0.9s\27[K")
  buf = {}
  now = 0.05
  T.eq(p:update { step = 2, elapsed_ms = 200 }, false, "redraws at most every 0.1 s")
  p:clear()
  T.eq(table.concat(buf), "\r\27[K")
  buf = {}
  local q = progress.new { total_steps = 10, out = out, tty = false, plain_every_s = 60, clock = function() return now end }
  T.eq(q:update { step = 1, elapsed_ms = 100 }, false)
  now = 61
  q:update { step = 5, elapsed_ms = 500 }
  T.eq(table.concat(buf), "progress: step 5/10 | train 0.5s | left ~0.5s\n")
end

return tests
