--- proteus.recipe — the machinery shared by the recipes in lua/recipes/: a recipe declares its knobs
--- (proteus.config) and writes a short main over a Job whose methods are the steps of the standard
--- pipeline: train → average → prune → quantize + artifact → roundtrip eval → sliding / TTT → results.
--
--   local recipe = require "proteus.recipe"
--   local def = recipe.define{name = "baseline", legal = true, defaults = {...}, presets = {...},
--                             model = function(cfg) return {...nn.GPT config...} end,
--                             optimizers = function(job) return {adam, muon} end}
--   return recipe.main(def, arg, function(job)
--     job:build_model(); job:train(); job:average(); job:prune(job.cfg.prune_frac)
--     job:eval_standard("pre_quant"); job:write_artifact("baseline"); job:roundtrip(); job:results()
--   end)
--
-- recipe.main resolves the config (proteus.config: preset, environment, key=value), prints it once,
-- opens the run directory (proteus.run), runs main(job) and returns the job. Every step is a plain
-- method: a recipe replaces one by writing its own function (or assigning job.step = fn) and calling
-- it in its main. docs/recipes.md is the how-to.
--
-- Loading without running (tests, eval_artifact.lua): recipe.load(path) returns {def, main,
-- run = function(args, getenv) -> job}; the file's `return recipe.main(...)` hands back its
-- definition instead of running while recipe.load is in progress.
--
-- Job fields: cfg (resolved config), info (config.resolve's), def, run (proteus.run), model, val
-- (data.open_val, maybe truncated to cfg.val_max_tokens), train_result, results (the results.json
-- table being built in job.out: eval.pre_quant_bpb etc.), final (the evaluation whose ledger verdict is
-- reported), world, rank, device.
--
-- Several ranks (mpirun -np W / proteus --nproc W): training is data-parallel (dist.train_hooks);
-- eval_standard / eval_sliding split the windows over the ranks and merge the ledgers
-- (dist.evaluate: every rank gets the whole set's result, rank 0 logs the same line as one rank);
-- rank 0 alone opens the run directory (its path is broadcast; the other ranks' job.run writes
-- nothing), writes model.ptz and results.json and draws the picture; the other ranks wait until
-- model.ptz is complete and load it for the roundtrip. TTT steps run whole on every rank (logged).
-- Modules that may be missing raise "not yet available: proteus.X (issue N)" (recipe.need).
--
-- Tests: tests/lua/test_config.lua, tests/lua/test_recipe_configs.lua, tests/lua/test_recipes_smoke.lua.
local pt = require "proteus"
local config = require "proteus.config"
local nn = require "proteus.nn"
local data = require "proteus.data"
local run = require "proteus.run"

local ok_host, host = pcall(require, "proteus._host")
local clock = ok_host and host.clock or os.clock

local recipe = {}

--- Where each step's library is built (for the "not yet available" message).
recipe.ISSUES = { ["proteus.train"] = 6, ["proteus.quant"] = 7, ["proteus.artifact"] = 7, ["proteus.ttt"] = 8,
  ["proteus.dist"] = 10 }

--- require(name), or an error saying the module has not landed yet.
function recipe.need(name)
  local ok, m = pcall(require, name)
  if ok then return m end
  if tostring(m):find("module '" .. name .. "' not found", 1, true) then
    error(string.format("not yet available: %s (issue %s); this step of the recipe cannot run until it lands",
      name, tostring(recipe.ISSUES[name] or "?")), 0)
  end
  error(m, 0)
end

--- Knobs every recipe has (merged under the recipe's own; the recipe's values win).
recipe.COMMON = {
  defaults = {
    seed = 1337, data_path = "", tokenizer_path = "", run_dir = "", runs_root = "runs", device = "auto",
    val_max_tokens = 0, train_log_every = 200, val_loss_every = 0, quiet = false, plot = true,
    grad_accum_steps = 0, compute_dtype = "auto", cuda_graph = false,
  },
  doc = {
    seed = "RNG seed (SEED)",
    data_path = "folder with fineweb_train_*.bin / fineweb_val_*.bin (DATA_PATH); empty = the bundled sample",
    tokenizer_path = "SentencePiece .model (TOKENIZER_PATH); empty = the bundled sp1024",
    run_dir = "run directory; empty = runs/<recipe>_<preset>_<time>",
    runs_root = "parent folder of new run directories",
    device = "auto (cuda when available, else cpu) | cpu | cuda",
    val_max_tokens = "evaluate on the first N validation tokens only (0 = all); demo/smoke presets only",
    train_log_every = "log a train line every N steps (TRAIN_LOG_EVERY)",
    val_loss_every = "validate every N steps during training, 0 = never (VAL_LOSS_EVERY)",
    quiet = "log to run.log only",
    plot = "draw the loss curve (lua/recipes/report.lua, gnuplot) into the run directory at the end",
    grad_accum_steps = "micro-steps per optimizer step; 0 = 8 / world size (the records' rule, §2.4)",
    compute_dtype = "auto (bf16 on a GPU, f32 on the CPU) | f32 | bf16: the matmuls' and attention's dtype "
      .. "(weights stay f32; nn.lua compute_dtype)",
    cuda_graph = "replay each training step (all its micro-steps) from a CUDA graph (GPU only; not with late "
      .. "QAT; docs/gpu.md)",
  },
}

--- config.define with recipe.COMMON merged in. Extra fields a recipe gives: legal (bool: the
--- ledger mode the recipe runs in), model(cfg) -> nn.GPT config, optimizers(job) -> list,
--- section (spec), reference (string).
function recipe.define(spec)
  local s = {}
  for k, v in pairs(spec) do s[k] = v end
  s.defaults, s.doc = {}, {}
  for k, v in pairs(recipe.COMMON.defaults) do s.defaults[k] = v end
  for k, v in pairs(recipe.COMMON.doc) do s.doc[k] = v end
  for k, v in pairs(spec.defaults or {}) do s.defaults[k] = v end
  for k, v in pairs(spec.doc or {}) do s.doc[k] = v end
  if type(spec.legal) ~= "boolean" then
    error(string.format("recipe.define: recipe %s must declare legal = true or false (the ledger mode it runs in)",
      tostring(spec.name)), 2)
  end
  return config.define(s)
end

-- ------------------------------------------------------------------------------------------------
-- the Job: one run of a recipe
-- ------------------------------------------------------------------------------------------------
local Job = {}
Job.__index = Job
recipe.Job = Job

-- proteus.dist when this job runs on several ranks, else nil
local function dist_of(job)
  if (job.world or 1) <= 1 then return nil end
  return require "proteus.dist"
end

-- Runs fn on rank 0 only; every rank then learns whether it succeeded (a collective, so it also
-- waits for rank 0: nothing rank 0 wrote is read before it is complete). Returns fn's results on
-- rank 0, nothing elsewhere; raises on every rank when fn raised on rank 0. `what` names the step.
local function on_rank0(job, what, fn)
  local dist = dist_of(job)
  if not dist then return fn() end
  local res, err
  if job.rank == 0 then
    res = table.pack(pcall(fn))
    if not res[1] then err = res[2] end
  end
  if dist.any(err ~= nil) then
    if err then error(err, 0) end
    error(string.format("recipe %s: rank 0 failed while %s (its error is in its output); rank %d stops too",
      job.def.name, what, job.rank), 0)
  end
  if res then return table.unpack(res, 2, res.n) end
end

function Job:log(fmt, ...)
  local line = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  if self.rank ~= 0 then return end
  self.run:log(line)
end

--- The nn.GPT config of this run (def.model(cfg)) with the run's compute dtype (compute_dtype = auto:
--- bf16 on a GPU, f32 on the CPU).
function Job:model_config()
  local m = self.def.model(self.cfg)
  local cd = self.cfg.compute_dtype or "auto"
  if cd == "auto" then cd = (self.device and self.device ~= "cpu") and "bf16" or "f32" end
  m.compute_dtype = cd
  return m
end

--- Step: builds the model (seeded), on the run's device.
function Job:build_model()
  pt.manual_seed(self.cfg.seed)
  local m = nn.GPT(self:model_config())
  if self.device ~= "cpu" then m:to(self.device) end
  self.model = m
  self.out.params = m:num_params()
  self:log("model: %d parameters, %d layers, d=%d, vocab %d, device %s, %s compute", m:num_params(),
    m.cfg.num_layers, m.cfg.model_dim, m.cfg.vocab_size, self.device, m.cfg.compute_dtype)
  return m
end

--- The validation set (opened once): the ledger's mode is the recipe's declared legality.
function Job:val()
  if self._val then return self._val end
  local c = self.cfg
  local v = data.open_val { vocab = c.vocab_size, legal = self.def.legal, data_path = c.data_path ~= "" and c.data_path or nil,
    tokenizer_path = c.tokenizer_path ~= "" and c.tokenizer_path or nil }
  if c.val_max_tokens > 0 and c.val_max_tokens < #v.tokens then
    v.ledger:close()
    v.tokens = v.tokens:sub(0, c.val_max_tokens)
    v.ledger = data.ledger(v.tokens, v.tables, { legal = self.def.legal })
    v.name = string.format("%s[0:%d]", v.paths.val:match("[^/]*$"), c.val_max_tokens)
    self:log("val: the first %d validation tokens (val_max_tokens)", c.val_max_tokens)
  end
  self._val = v
  return v
end

--- A fresh ledger over the validation tokens in the recipe's mode (for a second scored pass).
function Job:fresh_val()
  local v = self:val()
  local r = {}
  for k, x in pairs(v) do r[k] = x end
  r.ledger = data.ledger(v.tokens, v.tables, { legal = self.def.legal })
  return r
end

--- Per-rank sequences per micro-step and the accumulation, from train_batch_tokens (global).
function Job:batch_shape()
  local c = self.cfg
  local accum = c.grad_accum_steps > 0 and c.grad_accum_steps or math.max(1, 8 // self.world)
  local per = c.train_batch_tokens // (self.world * accum)
  if per * self.world * accum ~= c.train_batch_tokens or per % c.train_seq_len ~= 0 then
    error(string.format("recipe %s: train_batch_tokens=%d does not split into %d ranks × %d micro-steps × sequences "
      .. "of train_seq_len=%d; pick a multiple of %d", self.def.name, c.train_batch_tokens, self.world, accum,
      c.train_seq_len, self.world * accum * c.train_seq_len), 0)
  end
  return per // c.train_seq_len, accum
end

-- Windows per forward of the standard evaluation: cfg.val_batch_size (VAL_BATCH_SIZE: tokens per
-- forward over all ranks and micro-steps, §1.4: 524,288 / (W·accum) = 65,536 per rank) when the
-- recipe has that knob (> 0); nil = eval.standard's default (65,536 tokens).
local function val_batch_seqs(job)
  local c = job.cfg
  if (c.val_batch_size or 0) <= 0 then return nil end
  local _, accum = job:batch_shape()
  return math.max(1, c.val_batch_size // (job.world * accum) // (c.eval_seq_len or c.train_seq_len))
end
recipe.val_batch_seqs = val_batch_seqs

--- The learning-rate schedule from the config: warmdown_frac > 0 → fraction-of-time (§4.3),
--- else the wallclock warmdown over warmdown_iters (iteration form without a cap, §2.4/§5.3).
function Job:lr_schedule()
  local train = recipe.need("proteus.train")
  local c = self.cfg
  if (c.warmdown_frac or 0) > 0 then return train.fraction_lr(1 - c.warmdown_frac, c.lr_floor or 0) end
  return train.wallclock_lr(c.warmdown_iters)
end

--- Step: the training loop (proteus.train) with the config's schedule, momentum warmup, clipping,
--- EMA / SWA / late QAT; averaging is left to job:average(). opts are passed on to train.run
--- (on_step, clip_when, qat names, ...).
function Job:train(opts)
  local train = recipe.need("proteus.train")
  opts = opts or {}
  local c = self.cfg
  local model = self.model or self:build_model()
  local optimizers = opts.optimizers or self.def.optimizers(self)
  local batch_seqs, accum = self:batch_shape()
  local paths = data.paths { data_path = c.data_path ~= "" and c.data_path or nil }
  local o = {
    model = model, optimizers = optimizers, stream = data.stream(paths.train), seq_len = c.train_seq_len,
    batch_seqs = batch_seqs, grad_accum = accum, max_steps = c.iterations,
    max_wallclock_ms = (c.max_wallclock_seconds or 0) > 0 and c.max_wallclock_seconds * 1000 or nil,
    lr_schedule = self:lr_schedule(),
    momentum_schedule = train.momentum_warmup(c.muon_momentum_warmup_start, c.muon_momentum,
      c.muon_momentum_warmup_steps),
    clip = c.grad_clip_norm, warmup_steps = c.warmup_steps, log_every = c.train_log_every,
    val_every = c.val_loss_every, run = self.rank == 0 and self.run or nil, config = c, apply_averaging = false,
    quiet = c.quiet or self.rank ~= 0,
    rank = self.rank, world = self.world, checkpoint = false, cuda_graph = c.cuda_graph or nil,
  }
  if (c.ema_decay or 0) > 0 then o.ema = { decay = c.ema_decay, every = c.ema_every or 1 } end
  if c.swa_enabled then o.swa = { threshold = c.swa_threshold, every = c.swa_every } end
  if (c.late_qat_threshold or 0) > 0 then o.qat = { threshold = c.late_qat_threshold, names = opts.qat_names, bits = 6 } end
  if c.val_loss_every > 0 then
    local eval = require "proteus.eval"
    local dist = dist_of(self)
    o.val_fn = function()
      local r = pt.no_grad(function()
        local eo = { seq_len = c.eval_seq_len or c.train_seq_len, log = false, batch_seqs = val_batch_seqs(self) }
        local lf = function(x) return model:logits(x) end
        if dist then return dist.evaluate(eval.standard, self:val(), lf, eo) end
        return eval.standard(self:val(), lf, eo)
      end)
      return { val_loss = r.loss, val_bpb = r.bpb }
    end
  end
  if self.hooks then for k, v in pairs(self.hooks) do o[k] = v end end
  for k, v in pairs(opts) do if k ~= "optimizers" and k ~= "qat_names" then o[k] = v end end
  self:log("train: %d seqs × %d tokens × %d micro-steps × %d ranks = %d tokens/step, up to %d steps%s",
    batch_seqs, c.train_seq_len, accum, self.world, batch_seqs * c.train_seq_len * accum * self.world, c.iterations,
    o.max_wallclock_ms and string.format(" or %ds", c.max_wallclock_seconds) or "")
  local tr = train.run(o)
  self.train_result = tr
  if tr.interrupted then error("interrupted during training (a checkpoint was written; see the log)", 0) end
  self.out.train = { steps = tr.steps, train_time_ms = tr.train_time_ms, step_avg_ms = tr.step_avg_ms,
    tokens = tr.tokens }
  self.out.train_loss = tr.last_loss
  return tr
end

--- Step: puts the SWA average (≥ 2 snapshots) or else the EMA shadow into the weights (§3.4).
function Job:average()
  local train = recipe.need("proteus.train")
  local tr = self.train_result or {}
  local how = train.apply_averaging { swa = tr.swa, ema = tr.ema, log = function(l) self:log(l) end }
  self.out.averaging = how or "none"
  if not how then self:log("average: none (no EMA and fewer than 2 SWA snapshots)") end
  return how
end

--- Step: §3.9 magnitude pruning of frac of the large 2-D weights (0 = skip).
function Job:prune(frac)
  if not frac or frac <= 0 then return nil end
  local quant = recipe.need("proteus.quant")
  local r = quant.magnitude_prune(self.model, frac)
  self:log("prune: zeroed %d of %d (%.1f%%), threshold %.6g", math.floor(r.zeroed), r.total, 100 * r.fraction, r.threshold)
  self.out.prune = { frac = frac, zeroed = math.floor(r.zeroed), total = r.total, threshold = r.threshold }
  return r
end

local function logits_fn(model) return function(x) return model:logits(x) end end

-- eval_fn (eval.standard / eval.sliding) over the job's validation set with options o; on several
-- ranks through dist.evaluate (windows split, ledgers merged), logging the same line as one rank
-- (label, BPB, verdict, eval_time over the whole distributed pass) through o.log on rank 0.
local function evaluate(job, eval_fn, o, label)
  local dist = dist_of(job)
  if not dist then
    return pt.no_grad(function() return eval_fn(job:val(), logits_fn(job.model), o) end)
  end
  local d = {}
  for k, v in pairs(o) do d[k] = v end
  d.log, d.label = false, o.label or label
  local t0 = clock()
  local r = pt.no_grad(function() return dist.evaluate(eval_fn, job:val(), logits_fn(job.model), d) end)
  r.eval_time_ms = (clock() - t0) * 1000
  local log = o.log
  if log == nil then log = print end
  if log and job.rank == 0 then log(string.format("%s eval_time:%.0fms", r.line, r.eval_time_ms)) end
  return r
end

--- Step: standard non-overlapping eval (§1.4) at cfg.eval_seq_len; label names the results field
--- ("pre_quant" -> eval.pre_quant_bpb, "roundtrip" -> eval.roundtrip_bpb). opts go to eval.standard.
function Job:eval_standard(label, opts)
  local eval = require "proteus.eval"
  local c = self.cfg
  local o = { seq_len = c.eval_seq_len or c.train_seq_len, label = label, log = function(l) self:log(l) end,
    batch_seqs = val_batch_seqs(self) }
  for k, v in pairs(opts or {}) do o[k] = v end
  local r = evaluate(self, eval.standard, o, "standard")
  self.out.eval[label .. "_bpb"] = r.bpb
  self.out.eval.val_loss = r.loss
  self.final = r
  return r
end

--- Step: sliding-window eval (§1.5) at cfg.eval_seq_len, stride cfg.eval_stride.
function Job:eval_sliding(opts)
  local eval = require "proteus.eval"
  local c = self.cfg
  local o = { seq_len = c.eval_seq_len, stride = c.eval_stride, log = function(l) self:log(l) end }
  for k, v in pairs(opts or {}) do o[k] = v end
  local quirk = o.records_quirk
  local r = evaluate(self, eval.sliding, o, (quirk ~= nil and quirk ~= false) and "sliding_records_quirk" or "sliding")
  self.out.eval.sliding_bpb = r.bpb
  self.out.eval.val_loss = r.loss
  self.final = r
  return r
end

--- Step: quantizes by `policy` (a proteus.quant policy name) and writes run_dir/model.ptz with the
--- size breakdown; opts go to artifact.write (hessians, codec, ...). On several ranks rank 0 alone
--- writes it (and returns the info; the others return nil after waiting until it is complete).
function Job:write_artifact(policy, opts)
  local artifact = recipe.need("proteus.artifact")
  local v = self:val()
  local o = { recipe = self.def.name, config = self.cfg, tokenizer_sha256 = data.sha256_file(v.paths.tokenizer),
    recipe_path = self.path }
  for k, x in pairs(opts or {}) do o[k] = x end
  local path = self.run:path("model.ptz")
  self.artifact_path = path
  local t0 = clock()
  local info = on_rank0(self, "writing " .. path, function() return artifact.write(path, self.model, policy, o) end)
  if not info then return nil end -- rank > 0: model.ptz is complete (rank 0 has finished writing it)
  local acc = info.account
  self:log("artifact: %s (policy %s, %s level %d, int6 %s) in %.1fs", path, info.policy, info.codec, info.level,
    info.int6_packing.chosen, clock() - t0)
  for _, l in ipairs(acc.lines) do self:log("  " .. l) end
  self.artifact_path = path
  self.out.artifact = { model_bytes = acc.model_bytes, code_bytes = acc.code_bytes, total_bytes = acc.total,
    limit = acc.cap, fits = acc.fits, policy = info.policy, codec = info.codec }
  return info
end

--- Step: loads the artifact back into the model (dequantized) and evaluates it ("roundtrip", §3.5).
function Job:roundtrip(opts)
  local artifact = recipe.need("proteus.artifact")
  artifact.load_into(self.model, self.artifact_path, { recipe = self.def.name })
  return self:eval_standard("roundtrip", opts)
end

--- The TTT module, or the "not yet available" error. On several ranks rank 0 logs how TTT is split.
function Job:ttt()
  local ttt = recipe.need("proteus.ttt")
  if self.world > 1 and not self._ttt_told then
    self._ttt_told = true
    self:log("ttt: %d ranks: LoRA TTT splits the documents over them and merges the ledgers; chunked TTT is not "
      .. "split (every rank runs it whole, same result on each)", self.world)
  end
  return ttt
end

--- Records a TTT result as the reported evaluation (eval.ttt_bpb; the ledger verdict of the run).
function Job:record_ttt(r, bpb)
  self.out.eval.ttt_bpb = bpb or r.bpb
  self.out.eval.val_loss = r.loss
  self.final = r
  return r
end

--- Step: results.json with the config, the final evaluation's ledger summary and the declared
--- legality checked against the verdict; then the loss-curve picture (cfg.plot). On several ranks
--- rank 0 alone writes and draws (the others return nil once it has finished).
function Job:results(extra)
  local res = self.out
  res.config = self.cfg
  res.legal_declared = self.def.legal
  if self.final and self.final.report then
    res.ledger = data.ledger_summary(self.final.report)
    local v = res.ledger.verdict
    self:log("ledger verdict: %s (recipe declared %s)", v:upper(), self.def.legal and "legal" or "illegal")
    if (v == "legal") ~= self.def.legal then
      self:log("WARNING: the verdict differs from the recipe's declared legality")
    end
  end
  for k, v in pairs(extra or {}) do res[k] = v end
  res.wall_time_s = clock() - self.t0
  return on_rank0(self, "writing results.json", function()
    local path = self.run:write_results(res)
    self:log("results: %s (%.1fs)", path, res.wall_time_s)
    if self.cfg.plot then self:plot() end
    return path
  end)
end

--- Draws the loss curve with lua/recipes/report.lua (gnuplot); a missing gnuplot is a log line.
function Job:plot()
  local exe = arg and arg[-1]
  local root = data.root()
  local script = root .. "/lua/recipes/report.lua"
  if not exe or not io.open(script, "r") then return end
  local q = function(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
  local cmd = string.format("%s %s run=%s >/dev/null 2>&1", q(exe), q(script), q(self.run.dir))
  if os.execute(cmd) == true then
    self:log("loss curve: %s/curves.png", self.run.dir)
  else
    self:log("loss curve: not drawn (needs gnuplot: %s lua/recipes/report.lua run=%s)", exe, self.run.dir)
  end
end

-- ------------------------------------------------------------------------------------------------
-- running a recipe
-- ------------------------------------------------------------------------------------------------

local loading = nil -- set while recipe.load runs a recipe file

local function device_of(c)
  if c.device == "cpu" then return "cpu" end
  local gpu = config.has_gpu()
  if c.device == "cuda" and not gpu then
    error("recipe: device=cuda but no CUDA device is available here (use device=cpu or device=auto)", 0)
  end
  if c.device ~= "auto" and c.device ~= "cuda" and not c.device:match("^cuda:%d+$") then
    error("recipe: device='" .. c.device .. "' (expected auto, cpu, cuda or cuda:N)", 0)
  end
  if c.device == "auto" then return gpu and "cuda" or "cpu" end
  return c.device
end

-- What job.run is on ranks > 0: rank 0's directory, writing nothing (rank 0 owns run.log,
-- metrics.jsonl and results.json).
local function follower_run(dir, preset, recipe_name)
  local r = { dir = dir, name = dir:match("[^/]*$"), recipe = recipe_name, preset = preset, quiet = true,
    closed = false, follower = true }
  function r.path(self, name) return self.dir .. "/" .. name end
  function r.log(_, line, ...)
    if select("#", ...) > 0 then line = string.format(line, ...) end
    return tostring(line)
  end
  function r.log_bpb() end
  function r.log_metrics() end
  function r.write_results()
    error("run:write_results: only rank 0 writes results.json (job:results() does it there)", 2)
  end
  function r.close(self) self.closed = true end
  return r
end

-- Opens the run directory on rank 0 and hands its path to the other ranks (so that a run_dir
-- chosen by time is the same folder everywhere).
local function open_shared_run(dist, rank, o)
  local ok, r
  if rank == 0 then ok, r = pcall(run.open, o) end
  local dir = (rank == 0 and ok) and r.dir or ""
  local n = pt.tensor({ rank == 0 and (ok and #dir or -1) or 0 }, "f64")
  dist.broadcast(n, 0)
  local len = math.tointeger(n:item())
  if len < 0 then
    if rank == 0 then error(r, 0) end
    error("recipe: rank 0 could not open the run directory (its error is in its output)", 0)
  end
  local bytes
  if rank == 0 then
    bytes = pt.tensor({ dir:byte(1, len) }, "u8")
  else
    bytes = pt.zeros({ len }, "u8")
  end
  dist.broadcast(bytes, 0)
  if rank == 0 then return r end
  local t = bytes:totable()
  local cs = {}
  for i = 1, len do cs[i] = string.char(math.tointeger(t[i])) end
  return follower_run(table.concat(cs), o.preset, o.recipe)
end

--- Runs main(job) with a resolved config. Returns the job.
function recipe.run(def, cfg, info, main, path)
  local world, rank, hooks = 1, 0, nil
  local okd, dist = pcall(require, "proteus.dist")
  if okd and dist.world_size() > 1 then
    world, rank, hooks = dist.world_size(), dist.rank(), dist.train_hooks()
  end
  local job = setmetatable({ def = def, cfg = cfg, info = info, world = world, rank = rank, hooks = hooks,
    path = path, t0 = clock(), out = { eval = {} } }, Job)
  job.device = device_of(cfg)
  if cfg.compute_dtype ~= nil and cfg.compute_dtype ~= "auto" and cfg.compute_dtype ~= "f32"
    and cfg.compute_dtype ~= "bf16" then
    error(string.format("recipe %s: compute_dtype='%s' (expected auto, f32 or bf16)", def.name,
      tostring(cfg.compute_dtype)), 0)
  end
  local ro = { recipe = def.name, preset = info.preset, run_dir = cfg.run_dir ~= "" and cfg.run_dir or nil,
    runs_root = cfg.runs_root, quiet = cfg.quiet }
  job.run = world > 1 and open_shared_run(dist, rank, ro) or run.open(ro)
  job.out.recipe, job.out.preset, job.out.seed = def.name, info.preset, cfg.seed
  local okn, dname = pcall(function() return (require "proteus.cuda").device_name(0) end)
  job.out.device = job.device == "cpu" and "cpu" or ("cuda:" .. (okn and tostring(dname) or "?"))
  job.out.world_size = world
  job:log(config.format(def, cfg, info))
  job:log("run dir: %s; ledger mode: %s", job.run.dir, def.legal and "legal" or "legal=false (reported as non-compliant)")
  local ok, err = xpcall(main, debug.traceback, job)
  if not ok then
    job:log("recipe %s failed: %s", def.name, tostring(err))
    job.run:close()
    error((tostring(err):gsub("\nstack traceback:.*$", "")), 0)
  end
  job.run:close()
  return job
end

--- The last line of a recipe file: resolves the config from args and the environment and runs main
--- (or, inside recipe.load, returns the definition). Returns the job (nil after `help`).
function recipe.main(def, args, main)
  if loading then
    loading.def, loading.main = def, main
    return loading
  end
  local cfg, info = config.resolve(def, args, os.getenv)
  if not cfg then return nil end
  return recipe.run(def, cfg, info, main, arg and arg[0])
end

--- Loads a recipe file without running it: {def, main, path, run = function(args, getenv) -> job}.
function recipe.load(path)
  local chunk, err = loadfile(path)
  if not chunk then error("recipe.load: " .. tostring(err), 2) end
  local slot = { path = path }
  loading = slot
  local ok, e = pcall(chunk)
  loading = nil
  if not ok then error("recipe.load: " .. path .. ": " .. tostring(e), 2) end
  if not slot.def then error("recipe.load: " .. path .. " does not end with `return recipe.main(def, arg, main)`", 2) end
  function slot.resolve(args, getenv, opts) return config.resolve(slot.def, args, getenv, opts) end
  function slot.run(args, getenv)
    local cfg, info = config.resolve(slot.def, args, getenv == nil and false or getenv)
    if not cfg then return nil end
    return recipe.run(slot.def, cfg, info, slot.main, path)
  end
  return slot
end

-- ------------------------------------------------------------------------------------------------
-- optimizer helpers shared by the recipes
-- ------------------------------------------------------------------------------------------------

--- The §2.3/§3.4 split: tok_emb → AdamW (tied_embed_lr), 2-D block matrices → Muon (matrix_lr),
--- other block params and skip weights → AdamW (scalar_lr). opts.extra_scalar / extra_matrix: Lua
--- patterns of non-block names to train in the scalar / Muon groups (PROTEUS card: BigramHash,
--- SmearGate); names matching nothing are not optimised (logged). Returns {adam_embed, muon, adam_scalar}.
function recipe.proteus_optimizers(job, opts)
  local optim = require "proteus.optim"
  opts = opts or {}
  local c = job.cfg
  local embed, mats, scalars, skipped = {}, {}, {}, {}
  local function any(name, pats)
    for _, p in ipairs(pats or {}) do if name:find(p) then return true end end
    return false
  end
  for name, p in job.model:named_parameters() do
    if name == "tok_emb.weight" then embed[#embed + 1] = { name, p }
    elseif name:match("^blocks%.") and p:dim() == 2 and not name:match("resid_mix") then mats[#mats + 1] = { name, p }
    elseif name:match("^blocks%.") or name:match("^skip_weights") then scalars[#scalars + 1] = { name, p }
    elseif any(name, opts.extra_matrix) and p:dim() == 2 then mats[#mats + 1] = { name, p }
    elseif any(name, opts.extra_scalar) then scalars[#scalars + 1] = { name, p }
    else skipped[#skipped + 1] = name end
  end
  if #skipped > 0 then job:log("optimizers: not trained (no optimizer, as the submission): %s", table.concat(skipped, ", ")) end
  local betas = { c.beta1, c.beta2 }
  return {
    optim.AdamW { params = embed, lr = c.tied_embed_lr, betas = betas, eps = c.adam_eps, weight_decay = c.adam_weight_decay or 0 },
    optim.Muon { params = mats, lr = c.matrix_lr, momentum = c.muon_momentum, ns_steps = c.muon_backend_steps,
      weight_decay = c.muon_weight_decay or 0 },
    optim.AdamW { params = scalars, lr = c.scalar_lr, betas = betas, eps = c.adam_eps, weight_decay = c.adam_weight_decay or 0 },
  }
end

--- Integer list of the last n physical layers of an L-layer model (0-based, as the spec).
function recipe.last_layers(L, n)
  local r = {}
  for i = math.max(0, L - n), L - 1 do r[#r + 1] = i end
  return r
end

return recipe
