--- proteus.train — the training loop of the records (spec §2.4, §3.4, §4.3, §5.3): gradient
--- accumulation, the wallclock cap and its stop rule, compile warmup with full restore, periodic
--- validation, log lines in the records' format, metrics.jsonl, a progress line, EMA / SWA / late
--- QAT, checkpoints, exact resume, Ctrl-C and NaN handling.
--
--   local train = require "proteus.train"
--   local res = train.run{
--     model = model, optimizers = {adam_embed, muon, adam_scalar},   -- stepped in this order (§3.4)
--     stream = data.stream(paths.train), seq_len = 1024, batch_seqs = 64, grad_accum = 8,
--     lr_schedule = train.wallclock_lr(3000),                          -- function(ctx) -> lr_mul
--     momentum_schedule = train.momentum_warmup(0.92, 0.99, 1500),     -- Muon optimizers only
--     clip = 0.3, clip_when = "after", max_steps = 20000, max_wallclock_ms = 600000, warmup_steps = 20,
--     val_every = 1000, val_fn = function(ctx) return {val_loss = l, val_bpb = b} end,
--     ema = {decay = 0.999, every = 10}, swa = {threshold = 0.2, every = 50},
--     qat = {threshold = 0.15, names = {"^ve_shared%.proj%.weight$"}, bits = 6},
--     log_every = 200, run = R, checkpoint = {path = R:path("ckpt.safetensors"), every = 500},
--     resume = "runs/x/ckpt.safetensors",
--   }
--   if res.interrupted then return end            -- Ctrl-C: a checkpoint was written, see the message
--   -- res.averaging is "swa", "ema" or nil: what train.apply_averaging put into the weights
--
-- One step (ctx.step = steps completed so far, 0 for the first):
--   lr_mul = lr_schedule(ctx); late QAT switches on (for good) once lr_mul < qat.threshold;
--   grad_accum micro-steps: x, y from stream:next_batch(batch_seqs·seq_len, rank, world) (§2.4),
--   loss = model:forward(x, y), (loss/grad_accum):backward(); train_loss = mean of the micro losses;
--   clip_when "after" (§3.4): reduce_grads, then clip; "before" (§4.3): clip, then reduce_grads;
--   a non-finite train_loss or gradient norm stops the run here (error naming the step; no
--   optimizer step, no checkpoint written, the last good checkpoint stays);
--   Muon momentum = momentum_schedule(ctx); each optimizer:step(lr_mul) in the given order; grads
--   dropped; step += 1; EMA:update(step); SWA:maybe_add(step, lr_mul); log; then the stop rule:
--   if training time ≥ max_wallclock_ms (any rank, through opts.any_rank), this step is the last.
-- Validation runs at step 0, every val_every steps and after the last step, at the top of the loop
-- as the records do; its time is excluded from the training time (the clock is paused).
--
-- Log lines (the records' format):
--   step:N/M train_loss:X train_time:Yms step_avg:Zms              (step ≤ 10, every log_every, last)
--   step:N/M val_loss:X val_bpb:X train_time:Yms step_avg:Zms
--   warmup_step:i/N, stopping_early: wallclock_cap train_time:Yms step:N/M, late_qat:enabled ...
-- Metrics: one metrics.jsonl record per step {step, train_loss, lr_mul, grad_norm, train_time_ms,
-- step_avg_ms, tokens} and per validation {step, val_loss, val_bpb, train_time_ms}.
--
-- Late QAT mechanism: nn.lua is not touched. The GPT reads every weight through
-- model.params.by_name[name] at forward time, so for the forward and backward of a step the trainer
-- puts w + detach(q(w) − w) into by_name[name] (q = per-row int6 fake-quant, train.fake_quant) and
-- puts w back before clipping and the optimizer steps. The forward sees q(w); the gradient reaches
-- w unchanged (straight-through estimator). Only 2-D weights whose names match a qat.names pattern
-- are wrapped.
--
-- Warmup (§2.4 "WARMUP_STEPS"): warmup_steps full training steps run (to warm kernels and caches),
-- then weights, optimizer states, the data position and the RNG state are restored from an
-- in-memory proteus.checkpoint snapshot; EMA/SWA are not touched; the clock starts after it.
--
-- Checkpoints (proteus.checkpoint): every checkpoint.every steps, at a requested stop (on_step
-- returning true, Ctrl-C) and at the end of the run; the default path is the run directory's
-- checkpoint.safetensors (checkpoint = false: none). resume = path continues the run: step, training time, weights, optimizer,
-- EMA/SWA, RNG, data position and the late-QAT switch are restored; seq_len, batch_seqs, grad_accum
-- and world must match. Ctrl-C: the trainer traps SIGINT (proteus._host.trap_interrupt), polls the
-- flag after every step, writes a checkpoint and returns {interrupted = true} after logging how to
-- resume.
--
-- Distributed hooks (single process until proteus.dist lands): rank = 0, world = 1,
-- reduce_grads = function(params) (averages gradients across ranks), any_rank = function(bool) ->
-- bool (the stop flag's max over ranks).
--
-- CUDA graphs (cuda_graph = true, default false; docs/gpu.md "CUDA graphs"): for a model on a CUDA
-- device (no qat), the first cuda_graph_warmup (default 3) steps of this call run eagerly through the
-- same step code, then one step — zero_grad, forward and backward of every grad_accum micro-step (each
-- with its own static input tensors; the step's loss their mean, on the device), reduce_grads,
-- clip (optim.clip_grad_norm(params, max_norm, {device = true, out = norm}): a 0-d device tensor,
-- no host read), opt:apply() for each optimizer — is captured with proteus.cuda's cuda.graph and
-- replayed for every later step. Outside the graph, each step: the batch is copied INTO the static
-- input tensors, momentum_schedule / opt:set and opt:prepare(lr_mul, {all = true}) write the step's
-- scalars to the device, then after the replay the loss and the gradient norm are read for logs, metrics and the
-- NaN check — which therefore runs after the optimizer step (the error says so). EMA/SWA, validation,
-- checkpoints and the compile warmup (warmup_steps) stay eager. result.cuda_graph = {capture_step,
-- replays, stats} (the graph's stats before it was freed at the end of the run; nil when the run
-- ended within the eager warm-up steps).
--
-- Tests: tests/lua/test_train.lua, tests/lua/test_checkpoint.lua, tests/cli/test_kill_checkpoint.sh,
-- tests/lua/test_graph_api.lua (cuda_graph's errors), tests/gpu/test_graph.lua (graph vs eager on a GPU).
local pt = require "proteus"
local optim = require "proteus.optim"
local sched = require "proteus.schedule"
local ckpt = require "proteus.checkpoint"
local progress = require "proteus.progress"
local host = require "proteus._host"

local train = {}

local function fail(fmt, ...) error("train.run: " .. string.format(fmt, ...), 3) end

-- ---------------------------------------------------------------------------------------------
-- schedule helpers: functions of ctx = {step, elapsed_ms, max_steps, max_wallclock_ms}
-- ---------------------------------------------------------------------------------------------

--- §2.4 wallclock warmdown over ctx (iteration form when the run has no cap).
function train.wallclock_lr(warmdown_iters)
  return function(ctx)
    return sched.wallclock_warmdown { step = ctx.step, elapsed_ms = ctx.elapsed_ms, warmdown_iters = warmdown_iters,
      max_ms = ctx.max_wallclock_ms or false, iterations = ctx.max_steps }
  end
end

--- §4.3 fraction-of-time warmdown (hold 0.28, floor 0 by default).
function train.fraction_lr(hold, floor)
  return function(ctx)
    return sched.fraction_warmdown { elapsed_ms = ctx.elapsed_ms, max_ms = ctx.max_wallclock_ms or 600000,
      hold = hold, floor = floor }
  end
end

--- §5.3 iteration warmdown.
function train.iteration_lr(warmdown_iters)
  return function(ctx)
    return sched.iteration_warmdown { step = ctx.step, iterations = ctx.max_steps, warmdown_iters = warmdown_iters }
  end
end

--- Muon momentum warmup from → to over `steps` steps.
function train.momentum_warmup(from, to, steps)
  return function(ctx) return sched.momentum_warmup(ctx.step, from, to, steps) end
end

-- ---------------------------------------------------------------------------------------------
-- late QAT
-- ---------------------------------------------------------------------------------------------

--- Per-row fake quantisation of a 2-D weight (no gradient): s = max(rowmax|w|/qmax, 1/qmax),
--- q = clamp(round(w/s), −qmax−1, qmax)·s with qmax = 2^(bits−1) − 1 (31 for int6, §4.3/§5.3).
function train.fake_quant(w, bits)
  bits = bits or 6
  local qmax = (1 << (bits - 1)) - 1
  return pt.no_grad(function()
    local wd = w:detach()
    local s = (wd:abs():max(2, true) * (1 / qmax)):maximum(pt.full({ 1 }, 1 / qmax, { dtype = w:dtype(), device = w:device() }))
    return (wd / s):round():clamp(-qmax - 1, qmax) * s
  end)
end

--- The names of model.params.by_name that QAT wraps: 2-D tensors matching any of the Lua patterns.
function train.qat_targets(model, patterns)
  if type(model) ~= "table" or type(model.params) ~= "table" or type(model.params.by_name) ~= "table" then
    error("train: late QAT needs a model whose weights are read through model.params.by_name (nn.GPT)", 2)
  end
  if type(patterns) == "string" then patterns = { patterns } end
  if type(patterns) ~= "table" or #patterns == 0 then
    error("train: qat.names must be a list of Lua patterns on parameter names, e.g. {\"%.weight$\"}", 2)
  end
  local out = {}
  for _, name in ipairs(model.params.names) do
    local t = model.params.by_name[name]
    if t:dim() == 2 and not (model.params.buffers and model.params.buffers[name]) then
      for _, pat in ipairs(patterns) do
        if name:find(pat) then
          out[#out + 1] = name
          break
        end
      end
    end
  end
  if #out == 0 then
    error("train: qat.names " .. table.concat(patterns, ", ") .. " match no 2-D parameter of the model", 2)
  end
  return out
end

--- Puts the STE fake-quantised weights into model.params.by_name; returns the function that puts
--- the originals back.
function train.qat_swap(model, names, bits)
  local by_name = model.params.by_name
  local saved = {}
  for i, name in ipairs(names) do
    local w = by_name[name]
    saved[i] = w
    local delta = pt.no_grad(function() return train.fake_quant(w, bits) - w:detach() end)
    by_name[name] = w + delta
  end
  return function()
    for i, name in ipairs(names) do by_name[name] = saved[i] end
  end
end

-- ---------------------------------------------------------------------------------------------
-- averaging
-- ---------------------------------------------------------------------------------------------

--- §3.4: SWA average if it has ≥ min_count snapshots, else the EMA shadow, else nothing.
--- a = {swa = optim.SWA or nil, ema = optim.EMA or nil, log = function(line) or nil}.
--- Returns "swa", "ema" or nil.
function train.apply_averaging(a)
  local log = a.log or function() end
  if a.swa and a.swa:apply() then
    log(string.format("swa:applying averaged %d checkpoints", a.swa.count))
    return "swa"
  end
  if a.ema then
    a.ema:apply()
    log(string.format("ema:applying shadow (decay %g every %d steps, %d updates)", a.ema.decay, a.ema.every, a.ema.updates))
    return "ema"
  end
  return nil
end

-- ---------------------------------------------------------------------------------------------
-- the loop
-- ---------------------------------------------------------------------------------------------

local function named_list(model)
  local out = {}
  for name, p in model:named_parameters() do out[#out + 1] = { name, p } end
  return out
end

local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

local KNOWN_OPTS = { "any_rank", "apply_averaging", "batch_seqs", "checkpoint", "clip", "clip_when", "config",
  "cuda_graph", "cuda_graph_warmup", "ema", "grad_accum", "log_every", "lr_schedule", "max_steps", "max_wallclock_ms",
  "model", "momentum_schedule", "on_step", "optimizers", "progress", "qat", "quiet", "rank", "reduce_grads", "resume", "run", "seq_len", "stream",
  "swa", "val_every", "val_fn", "warmup_steps", "world" }
local KNOWN_SET = {}
for _, k in ipairs(KNOWN_OPTS) do KNOWN_SET[k] = true end

local function check_opts(o)
  if type(o) ~= "table" then fail("expected a table of options") end
  -- a misspelt option would otherwise be ignored silently (val_evry = 100 and no validation at all)
  for k in pairs(o) do
    if type(k) ~= "string" or not KNOWN_SET[k] then
      fail("unknown option %s (did you mean %s?); the options are listed in proteus/train.lua's header",
        tostring(k), require("proteus.config").nearest(tostring(k), KNOWN_OPTS))
    end
  end
  if type(o.model) ~= "table" or type(o.model.forward) ~= "function" then
    fail("model must be a model with forward(x, y) and named_parameters() (nn.GPT)")
  end
  if type(o.optimizers) ~= "table" or #o.optimizers == 0 then
    fail("optimizers must be a non-empty list of proteus.optim optimizers, in stepping order")
  end
  if not o.stream then fail("stream is required (data.stream(paths.train))") end
  for _, k in ipairs { "seq_len", "batch_seqs", "max_steps" } do
    if math.type(o[k]) ~= "integer" or o[k] < 1 then fail("%s must be an integer >= 1, got %s", k, tostring(o[k])) end
  end
  for _, k in ipairs { "grad_accum", "warmup_steps", "val_every", "log_every" } do
    if o[k] ~= nil and (math.type(o[k]) ~= "integer" or o[k] < 0) then
      fail("%s must be an integer >= 0, got %s", k, tostring(o[k]))
    end
  end
  if o.grad_accum == 0 then fail("grad_accum must be >= 1, got 0") end
  if o.clip_when ~= nil and o.clip_when ~= "after" and o.clip_when ~= "before" then
    fail("clip_when must be \"after\" (clip after the gradient reduction, §3.4) or \"before\" (§4.3), got %s",
      tostring(o.clip_when))
  end
  if o.max_wallclock_ms ~= nil and (type(o.max_wallclock_ms) ~= "number" or o.max_wallclock_ms <= 0) then
    fail("max_wallclock_ms must be a positive number of milliseconds (or nil for no cap), got %s",
      tostring(o.max_wallclock_ms))
  end
  for _, k in ipairs { "lr_schedule", "momentum_schedule", "val_fn", "on_step", "reduce_grads", "any_rank" } do
    if o[k] ~= nil and type(o[k]) ~= "function" then fail("%s must be a function, got %s", k, type(o[k])) end
  end
  if o.cuda_graph ~= nil and type(o.cuda_graph) ~= "boolean" then
    fail("cuda_graph must be true or false, got %s", tostring(o.cuda_graph))
  end
  if o.cuda_graph_warmup ~= nil and (math.type(o.cuda_graph_warmup) ~= "integer" or o.cuda_graph_warmup < 1) then
    fail("cuda_graph_warmup must be an integer >= 1 (eager steps before the capture), got %s",
      tostring(o.cuda_graph_warmup))
  end
end

-- ---------------------------------------------------------------------------------------------
-- CUDA graphs (cuda_graph = true): see the header
-- ---------------------------------------------------------------------------------------------

-- the step's Muon momentum from the schedule (if any), set on every Muon optimizer
local function set_momentum(opts_list, schedule, ctx)
  if not schedule then return end
  local m = schedule(ctx)
  for _, opt in ipairs(opts_list) do
    if opt.kind == "Muon" then opt:set("momentum", m) end
  end
end

-- What cuda_graph = true needs, checked before the first step (options first, so the messages are the
-- same on any machine); dev is the parameters' device.
local function graph_check(o, dev)
  if o.qat then
    fail("cuda_graph = true cannot be combined with qat: switching late QAT on changes the captured step; drop "
      .. "one of them")
  end
  for i, opt in ipairs(o.optimizers) do
    if type(opt) == "table" and getmetatable(opt) and opt.foreach ~= nil and not opt._multi then
      fail("cuda_graph = true needs the optimizers' multi-tensor path, and optimizer %d (%s) has none (AdamW, Adam "
        .. "and Muon have it); use one of those or cuda_graph = false", i, tostring(opt.kind))
    end
    if type(opt) == "table" and opt.foreach == false then
      fail("cuda_graph = true needs the optimizers' multi-tensor path, but optimizer %d (%s) was made with "
        .. "foreach = false (its per-tensor step reads scalars on the host); drop foreach = false", i, tostring(opt.kind))
    end
    for _, m in ipairs { "prepare", "apply" } do
      if type(opt) ~= "table" or type(opt[m]) ~= "function" then
        fail("cuda_graph = true needs the optimizers' launch-only API, but optimizer %d (%s) has no %s "
          .. "(proteus.optim: opt:prepare(lr_mul) writes the step's scalars to the device outside the graph, "
          .. "opt:apply() only launches the update)", i, type(opt) == "table" and tostring(opt.kind) or type(opt),
          m == "prepare" and "prepare(lr_mul)" or "apply()")
      end
    end
  end
  if not dev:match("^cuda") then
    fail("cuda_graph = true needs the model on a CUDA device, but its parameters are on %s (move it with "
      .. "model:to(\"cuda\"), or drop cuda_graph)", dev)
  end
end

-- The graph runner: step(ctx, lr_mul, xy) -> train_loss, grad_norm. s = {model, opts_list,
-- all_params, clip, clip_when, reduce_grads, warmup, dev, batch_seqs, seq_len, n_tok, max_steps,
-- momentum_schedule}; stop_nan(ctx, what, v, after_update) raises.
local function graph_runner(s, stop_nan)
  local cuda = require "proteus.cuda"
  local r = { graph = nil, capture_step = nil, replays = 0 }
  local xs, ys, loss_out, norm_out, captured, captured_opt -- xs[k], ys[k]: the static inputs of micro-step k
  local eager_left = s.warmup
  -- the gradient norm's home: made outside the capture, written by the device-side clip each step
  local norm_t = pt.zeros({}, { dtype = "f64", device = s.dev })
  local clip_opts = { device = true, out = norm_t }

  -- the captured step: nothing in it reads the GPU from the host. With accum micro-steps each loss is
  -- scaled by 1/accum before its backward (as the eager step), and the step's loss is their mean.
  local function device_step()
    for _, opt in ipairs(s.opts_list) do opt:zero_grad() end
    s.model:zero_grad()
    local loss
    for k = 1, s.accum do
      local l = s.model:forward(xs[k], ys[k])
      if s.accum > 1 then
        loss = loss and (loss + l:detach()) or l:detach()
        l = l * (1.0 / s.accum)
      else
        loss = l
      end
      l:backward()
    end
    if s.accum > 1 then loss = loss * (1.0 / s.accum) end
    local norm
    if s.clip_when == "before" then
      norm = optim.clip_grad_norm(s.all_params, s.clip, clip_opts)
      if s.reduce_grads then s.reduce_grads(s.all_params) end
    else
      if s.reduce_grads then s.reduce_grads(s.all_params) end
      norm = optim.clip_grad_norm(s.all_params, s.clip, clip_opts)
    end
    for _, opt in ipairs(s.opts_list) do opt:apply() end
    return loss:detach(), norm
  end

  -- what the graph holds of each optimizer: its launch plan (the step-scalar buffer) and its state
  -- tensors, in a fixed order ({opt index, state position, key, tensor})
  local function optimizer_tensors()
    local list = {}
    for oi, opt in ipairs(s.opts_list) do
      list[#list + 1] = { oi, 0, "plan", opt._plan }
      local ks = {}
      for k in pairs(opt.state or {}) do ks[#ks + 1] = k end
      table.sort(ks)
      for _, k in ipairs(ks) do
        local keys = {}
        for key, v in pairs(opt.state[k]) do if pt.is_tensor(v) then keys[#keys + 1] = key end end
        table.sort(keys)
        for _, key in ipairs(keys) do list[#list + 1] = { oi, k, key, opt.state[k][key] } end
      end
    end
    return list
  end

  local function params_unchanged()
    local i = 0
    for name, p in s.model:named_parameters() do
      i = i + 1
      if captured[i] ~= p then
        fail("the model's parameter %s was replaced since the CUDA graph was captured at step %d; the graph "
          .. "updates the tensors it captured (change parameters in place, or use cuda_graph = false)", name,
          r.capture_step)
      end
    end
    local now = optimizer_tensors()
    for j, c in ipairs(captured_opt) do
      local n = now[j]
      if not (n and n[1] == c[1] and n[2] == c[2] and n[3] == c[3] and rawequal(n[4], c[4])) then
        local opt = s.opts_list[c[1]]
        fail("optimizer %d (%s): its %s was replaced since the CUDA graph was captured at step %d (a "
          .. "load_state_dict or a change of the live parameters?); the graph updates the tensors it captured "
          .. "(copy new state in place, or use cuda_graph = false)", c[1], tostring(opt.kind),
          c[2] == 0 and "step-scalar plan" or string.format("state %s of parameter %d", c[3], c[2]), r.capture_step)
      end
    end
    if #now ~= #captured_opt then
      fail("the optimizers' state tensors changed in number since the CUDA graph was captured at step %d (%d, "
        .. "then %d); the graph updates the tensors it captured (use cuda_graph = false)", r.capture_step,
        #captured_opt, #now)
    end
  end

  -- next_xy() gives one micro-step's token buffer (n_tok + 1 tokens, on the CPU)
  function r.step(ctx, lr_mul, next_xy)
    for k = 1, s.accum do
      local xy = next_xy()
      local x = xy:narrow(1, 1, s.n_tok):reshape { s.batch_seqs, s.seq_len }
      local y = xy:narrow(1, 2, s.n_tok):reshape { s.batch_seqs, s.seq_len }
      if not xs then xs, ys = {}, {} end
      if not xs[k] then -- the static inputs: the graph reads these addresses at every replay
        xs[k] = pt.zeros({ s.batch_seqs, s.seq_len }, { dtype = x:dtype(), device = s.dev })
        ys[k] = pt.zeros({ s.batch_seqs, s.seq_len }, { dtype = y:dtype(), device = s.dev })
      end
      xs[k]:copy_(x)
      ys[k]:copy_(y)
    end
    set_momentum(s.opts_list, s.momentum_schedule, ctx)
    -- all = true: every parameter will have a gradient when apply() runs (the step drops them first)
    for _, opt in ipairs(s.opts_list) do opt:prepare(lr_mul, { all = true }) end
    local loss_t, norm_t
    if eager_left > 0 then
      eager_left = eager_left - 1
      loss_t, norm_t = device_step()
    else
      if not r.graph then
        local ok, g, l, n = pcall(cuda.graph, device_step, { device = s.dev })
        if not ok then
          error(string.format("train.run: step %d/%d: capturing the training step into a CUDA graph failed (use "
            .. "cuda_graph = false to train without it): %s", ctx.step + 1, s.max_steps, tostring(g)), 0)
        end
        r.graph, loss_out, norm_out, r.capture_step = g, l, n, ctx.step + 1
        captured = {}
        for _, p in s.model:named_parameters() do captured[#captured + 1] = p end
        captured_opt = optimizer_tensors()
      else
        params_unchanged()
      end
      r.graph:replay() -- the capture ran nothing: this is the step's one run
      r.replays = r.replays + 1
      loss_t, norm_t = loss_out, norm_out
    end
    local train_loss, norm = loss_t:item(), norm_t:item()
    if not finite(train_loss) then stop_nan(ctx, "train_loss", train_loss, true) end
    if not finite(norm) then stop_nan(ctx, "the gradient norm", norm, true) end
    return train_loss, norm
  end

  function r.finish()
    local out = r.capture_step and { capture_step = r.capture_step, replays = r.replays } or nil
    if r.graph then
      out.stats = r.graph:stats()
      r.graph:free()
      r.graph = nil
    end
    return out
  end
  return r
end

--- Runs the training loop; see the header for the options. Returns
--- {steps, train_time_ms, step_avg_ms, tokens, last_loss, losses = {[step] = train_loss} (steps of
---  this call), stopped = "max_steps" | "wallclock" | "requested" | "interrupted", interrupted,
---  checkpoint (path of the last checkpoint written or nil), val (last validation result),
---  qat_on, qat_step, ema, swa, averaging ("swa" | "ema" | nil), cuda_graph (cuda_graph = true: see the header)}.
function train.run(o)
  check_opts(o)
  local model, opts_list, stream = o.model, o.optimizers, o.stream
  local R = o.run
  local seq_len, batch_seqs = o.seq_len, o.batch_seqs
  local accum = o.grad_accum or 1
  local rank, world = o.rank or 0, o.world or 1
  local max_steps, cap = o.max_steps, o.max_wallclock_ms
  local log_every, val_every = o.log_every or 200, o.val_every or 0
  local clip, clip_when = o.clip or 0, o.clip_when or "after"
  local n_tok = batch_seqs * seq_len
  local tokens_per_step = n_tok * accum * world
  local lr_schedule = o.lr_schedule or function() return 1.0 end
  local named = named_list(model)
  local all_params = {}
  for i, e in ipairs(named) do all_params[i] = e[2] end
  -- batches come from the stream on the CPU and go to the parameters' device
  local dev = #all_params > 0 and all_params[1]:device() or "cpu"
  if o.cuda_graph then graph_check(o, dev) end

  local prog = (o.progress ~= false and not (R and R.quiet) and not o.quiet)
    and progress.new { total_steps = max_steps, max_ms = cap, tokens_per_step = tokens_per_step }
  local function log(line)
    if prog then prog:clear() end
    if R then R:log(line) elseif not o.quiet then print(line) end
  end
  local function metrics(m) if R then R:log_metrics(m) end end

  -- averaging and QAT objects
  local ema = o.ema and optim.EMA { params = named, decay = o.ema.decay or 0.999, every = o.ema.every or 1 }
  local swa = o.swa and optim.SWA { params = named, threshold = o.swa.threshold or 0.2, every = o.swa.every or 50,
    min_count = o.swa.min_count }
  local qat_names
  if o.qat then
    if type(o.qat.threshold) ~= "number" then fail("qat.threshold must be a number (0.15 in the records)") end
    qat_names = train.qat_targets(model, o.qat.names)
  end
  local qat_on, qat_step = false, nil

  local parts = { model = model, optimizers = opts_list, ema = ema, swa = swa, stream = stream }
  local ck_path = o.checkpoint and o.checkpoint.path or (R and R:path("checkpoint.safetensors")) or nil
  if o.checkpoint == false then ck_path = nil end -- no checkpoints at all
  local ck_every = o.checkpoint and o.checkpoint.every or 0
  local run_config = { seq_len = seq_len, batch_seqs = batch_seqs, grad_accum = accum, world = world,
    max_steps = max_steps, max_wallclock_ms = cap, user = o.config }
  local last_ckpt, last_ckpt_step = nil, nil

  local step, base_ms = 0, 0.0
  if o.resume then
    local c = ckpt.load(o.resume)
    local cc = c.config or {}
    for _, k in ipairs { "seq_len", "batch_seqs", "grad_accum", "world" } do
      if cc[k] ~= run_config[k] then
        error(string.format("train.run: cannot resume from %s: it was written with %s = %s, this run has %s",
          o.resume, k, tostring(cc[k]), tostring(run_config[k])), 2)
      end
    end
    ckpt.restore(c, parts)
    step, base_ms = c.step, c.elapsed_ms
    local ex = c.extra or {}
    qat_on, qat_step = ex.qat_on == true and qat_names ~= nil, ex.qat_step
    last_ckpt, last_ckpt_step = o.resume, step
    log(string.format("resume: step %d/%d from %s (train_time:%.0fms%s)", step, max_steps, o.resume, base_ms,
      qat_on and ", late QAT on" or ""))
  end

  local function save_ckpt(at_step, elapsed_ms)
    if not ck_path then return nil end
    ckpt.save(ck_path, parts, { step = at_step, elapsed_ms = elapsed_ms, config = run_config,
      extra = { qat_on = qat_on, qat_step = qat_step } })
    last_ckpt, last_ckpt_step = ck_path, at_step
    return ck_path
  end

  -- a non-finite loss or gradient norm stops the run (after_update: the CUDA graph's step already
  -- applied the optimizers when the value is read)
  local function stop_nan_at(ctx, what, v, after_update)
    model:zero_grad()
    local keep = last_ckpt and string.format("the last good checkpoint is %s (step %d); resume from it with resume=%s",
      last_ckpt, last_ckpt_step, last_ckpt) or "no checkpoint was written"
    error(string.format("train.run: %s is %s at step %d/%d; stopped %s (%s; lower the learning rates or check the data)",
      what, v ~= v and "nan" or tostring(v), ctx.step + 1, max_steps,
      after_update and "after the optimizer step (cuda_graph = true reads it after the replayed step), so the "
        .. "weights in memory are not good" or "before the optimizer step", keep), 0)
  end

  local graph = o.cuda_graph and graph_runner({ model = model, opts_list = opts_list, all_params = all_params,
    clip = clip, clip_when = clip_when, reduce_grads = o.reduce_grads, warmup = o.cuda_graph_warmup or 3, dev = dev,
    accum = accum,
    batch_seqs = batch_seqs, seq_len = seq_len, n_tok = n_tok, max_steps = max_steps,
    momentum_schedule = o.momentum_schedule }, stop_nan_at)

  -- one optimisation step; returns train_loss, grad_norm (or raises for a non-finite one)
  local function one_step(ctx, lr_mul, check)
    local sum = 0.0
    for _ = 1, accum do
      local xy = stream:next_batch(n_tok, rank, world):tensor()
      local x = xy:narrow(1, 1, n_tok):reshape { batch_seqs, seq_len }
      local y = xy:narrow(1, 2, n_tok):reshape { batch_seqs, seq_len }
      if dev ~= "cpu" then x, y = x:to(dev), y:to(dev) end
      -- late QAT: STE weights in by_name for this micro-step's forward and backward only
      local restore_qat = qat_on and train.qat_swap(model, qat_names, o.qat.bits or 6)
      local ok, err = pcall(function()
        local loss = model:forward(x, y)
        sum = sum + loss:item()
        if accum > 1 then loss = loss * (1.0 / accum) end
        loss:backward()
      end)
      if restore_qat then restore_qat() end
      if not ok then
        if type(err) == "string" and not err:find("train.run: step ", 1, true) then
          err = string.format("train.run: step %d/%d: %s", ctx.step + 1, max_steps, err)
        end
        error(err, 0)
      end
    end
    local train_loss = sum / accum
    local function stop_nan(what, v) stop_nan_at(ctx, what, v, false) end
    if check and not finite(train_loss) then stop_nan("train_loss", train_loss) end
    local norm
    if clip_when == "before" then
      norm = optim.clip_grad_norm(all_params, clip)
      if o.reduce_grads then o.reduce_grads(all_params) end
    else
      if o.reduce_grads then o.reduce_grads(all_params) end
      norm = optim.clip_grad_norm(all_params, clip)
    end
    if check and not finite(norm) then stop_nan("the gradient norm", norm) end
    set_momentum(opts_list, o.momentum_schedule, ctx)
    for _, opt in ipairs(opts_list) do opt:step(lr_mul) end
    for _, opt in ipairs(opts_list) do opt:zero_grad() end
    model:zero_grad()
    return train_loss, norm
  end

  local old_trap = host.trap_interrupt(true)
  local result = { losses = {} }
  local ok, err = pcall(function()
    -- compile warmup, then restore everything
    local warm = o.warmup_steps or 0
    if warm > 0 then
      local snap = ckpt.capture(parts, {})
      local ctx = { step = step, elapsed_ms = base_ms, max_steps = max_steps, max_wallclock_ms = cap }
      for i = 1, warm do
        one_step(ctx, lr_schedule(ctx), false)
        if warm <= 20 or i % 10 == 0 or i == warm then log(string.format("warmup_step:%d/%d", i, warm)) end
      end
      ckpt.restore(snap, parts)
      model:zero_grad()
    end

    local t0 = host.clock()
    local function elapsed() return base_ms + (host.clock() - t0) * 1000 end
    -- checkpoint writes, like validation, do not count as training time
    local function save_paused()
      base_ms = elapsed()
      local p = save_ckpt(step, base_ms)
      t0 = host.clock()
      return p
    end
    local start_step = step
    local stop_after, stopped = nil, nil
    local tokens = 0
    while true do
      local last = step >= max_steps or (stop_after ~= nil and step >= stop_after)
      if o.val_fn and (last or (val_every > 0 and step % val_every == 0)) then
        base_ms = elapsed()
        local ms = base_ms
        local r = o.val_fn { step = step, elapsed_ms = ms, max_steps = max_steps, model = model }
        if type(r) ~= "table" then fail("val_fn must return {val_loss =, val_bpb =}, got %s", type(r)) end
        log(string.format("step:%d/%d val_loss:%.4f val_bpb:%.4f train_time:%.0fms step_avg:%.2fms", step, max_steps,
          r.val_loss or 0 / 0, r.val_bpb or 0 / 0, ms, ms / math.max(step, 1)))
        metrics { step = step, val_loss = r.val_loss, val_bpb = r.val_bpb, train_time_ms = ms }
        result.val = r
        t0 = host.clock()
      end
      if last then
        if stop_after ~= nil and step < max_steps then
          log(string.format("stopping_early: wallclock_cap train_time:%.0fms step:%d/%d", elapsed(), step, max_steps))
          stopped = "wallclock"
        else
          stopped = "max_steps"
        end
        break
      end
      local ctx = { step = step, elapsed_ms = elapsed(), max_steps = max_steps, max_wallclock_ms = cap }
      local lr_mul = lr_schedule(ctx)
      if type(lr_mul) ~= "number" then fail("lr_schedule returned %s, expected a number", tostring(lr_mul)) end
      if qat_names and not qat_on and lr_mul < o.qat.threshold then
        qat_on, qat_step = true, step
        log(string.format("late_qat:enabled step:%d lr_mul:%.4f int%d on %d weights", step, lr_mul, o.qat.bits or 6,
          #qat_names))
      end
      local train_loss, norm
      if graph then
        train_loss, norm = graph.step(ctx, lr_mul, function() return stream:next_batch(n_tok, rank, world):tensor() end)
      else
        train_loss, norm = one_step(ctx, lr_mul, true)
      end
      step = step + 1
      tokens = step * tokens_per_step -- since the start of the run, resumes included
      local ms = elapsed()
      result.losses[step] = train_loss
      result.last_loss = train_loss
      if ema then ema:update(step) end
      if swa then swa:maybe_add(step, lr_mul) end
      local reached_cap = cap ~= nil and ms >= cap
      if o.any_rank then reached_cap = o.any_rank(reached_cap) end
      if reached_cap and stop_after == nil then stop_after = step end
      if log_every > 0 and (step <= 10 or step % log_every == 0 or stop_after ~= nil or step == max_steps) then
        log(string.format("step:%d/%d train_loss:%.4f train_time:%.0fms step_avg:%.2fms", step, max_steps, train_loss,
          ms, ms / step))
      end
      metrics { step = step, train_loss = train_loss, lr_mul = lr_mul, grad_norm = norm, train_time_ms = ms,
        step_avg_ms = ms / step, tokens = tokens }
      if prog then prog:update { step = step, elapsed_ms = ms, loss = train_loss, lr_mul = lr_mul } end
      local want_stop = o.on_step and o.on_step { step = step, train_loss = train_loss, lr_mul = lr_mul,
        elapsed_ms = ms, max_steps = max_steps, grad_norm = norm, model = model }
      if host.interrupted() then
        host.clear_interrupt()
        local p = save_paused()
        if p then
          log(string.format("interrupted at step %d/%d: checkpoint written to %s; to continue, run the same command with resume=%s",
            step, max_steps, p, p))
        else
          log(string.format("interrupted at step %d/%d: no checkpoint written (pass checkpoint = {path = ...} or run = ...)",
            step, max_steps))
        end
        stopped, result.interrupted = "interrupted", true
        break
      end
      if want_stop == true then
        local p = save_paused()
        log(string.format("stopped at step %d/%d on request%s", step, max_steps,
          p and ("; checkpoint " .. p .. ", resume=" .. p) or ""))
        stopped = "requested"
        break
      end
      if ck_every > 0 and step % ck_every == 0 and step < max_steps and stop_after == nil then
        save_paused()
      end
    end
    if stopped ~= "interrupted" and stopped ~= "requested" and ck_path and step > start_step then save_paused() end
    local total = elapsed()
    result.steps, result.train_time_ms, result.step_avg_ms = step, total, total / math.max(step, 1)
    result.tokens, result.stopped = tokens, stopped
  end)
  if prog then prog:finish() end
  host.trap_interrupt(old_trap)
  if graph then -- frees the graph, also after an error (which stays the one reported)
    local okf, cg = pcall(graph.finish)
    if okf then result.cuda_graph = cg elseif ok then ok, err = false, cg end
  end
  if not ok then error(err, 0) end
  result.checkpoint = last_ckpt
  result.qat_on, result.qat_step, result.ema, result.swa = qat_on, qat_step, ema, swa
  if not result.interrupted and result.stopped ~= "requested" and o.apply_averaging ~= false then
    result.averaging = train.apply_averaging { swa = swa, ema = ema, log = log }
  end
  return result
end

return train
