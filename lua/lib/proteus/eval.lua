--- proteus.eval — validation BPB through the score-first ledger: the standard non-overlapping
--- evaluation (spec §1.4) and the sliding-window evaluation (spec §1.5).
--
--   local data = require "proteus.data"
--   local eval = require "proteus.eval"
--   local val = data.open_val{vocab = 1024}               -- {tokens, tables, ledger, paths, ...}
--   local logits_fn = function(x) return model:logits(x) end   -- x: i64 [B, T] --> f32 [B*T, V]
--   local r = eval.standard(val, logits_fn, {seq_len = 1024})
--   local s = eval.sliding(val, logits_fn, {seq_len = 2048, stride = 64})
--   print(r.bpb, r.report.verdict)                       -- r.line: the printed line (BPB + verdict)
--
-- The model is any function from a CPU i64 token tensor [B, T] to logits before the softcap, [B*T, V]
-- (or [B, T, V]), on any device and float dtype; row b*T + j predicts the token after input (b, j).
-- The ledger computes every NLL itself (softcap opts.softcap, default 30; 0 = none), so a model
-- cannot score a target twice or rescale an NLL without the verdict saying so.
--
-- Token positions follow the ledger: N validation tokens, target t (1 <= t <= N-1) is token t
-- predicted from tokens < t; M = N - 1 targets. A window starting at input ws with length wlen
-- feeds inputs tokens[ws .. ws+wlen-1] and its row j predicts target ws + j + 1.
--
-- Each call opens a fresh ledger over val.tokens with val.tables (one pass = one ledger, so a second
-- evaluation of another model never counts as re-scoring), unless opts.ledger is given (a TTT loop
-- that shares the ledger with its grants). The result:
--   {loss, bpb, report = ledger report, line = data.format_bpb(report, label), windows, scored,
--    seq_len, stride, eval_time_ms, ledger = opts.ledger or nil}
-- and, unless opts.log == false, the line is printed through opts.log (default print): every BPB
-- that leaves this module goes out beside the ledger's verdict.
--
-- Distributed use: opts.rank, opts.world split the windows contiguously ([n·r/W, n·(r+1)/W), §1.4);
-- each rank's ledger then holds its own share (scored_never counts the other ranks' targets) and the
-- ledgers are combined with ledger:merge.
--
-- Tests: tests/lua/test_eval.lua (build/proteus tests/run.lua tests/lua/test_eval.lua).
local pt = require "proteus"
local data = require "proteus.data"

local ok_host, host = pcall(require, "proteus._host")
local clock = ok_host and host.clock or os.clock

local eval = {}

eval.DEFAULT_SOFTCAP = 30
eval.STANDARD_BATCH_TOKENS = 65536 -- VAL_BATCH_SIZE / (W·accum) tokens per forward (spec §1.4)
eval.SLIDING_BATCH_SEQS = 32       -- windows per forward in the records' sliding eval (spec §1.5)

-- ---------------------------------------------------------------------------------------------
-- argument checks (errors name the option, its value and what to do)
-- ---------------------------------------------------------------------------------------------

local function check_int(fn, opts, key, min, default, hint)
  local v = opts[key]
  if v == nil then
    if default ~= nil then return default end
    error(string.format("%s: opts.%s is required (%s)", fn, key, hint or "a positive integer"), 3)
  end
  if math.type(v) ~= "integer" then
    if type(v) == "number" and v == math.floor(v) and v >= -2 ^ 53 and v <= 2 ^ 53 then
      v = math.tointeger(v)
    else
      error(string.format("%s: opts.%s must be an integer, got %s", fn, key, tostring(v)), 3)
    end
  end
  if v < min then
    error(string.format("%s: opts.%s = %d must be >= %d%s", fn, key, v, min, hint and ("; " .. hint) or ""), 3)
  end
  return v
end

local function check_val(fn, val)
  if type(val) ~= "table" or val.tokens == nil or val.tables == nil then
    error(fn .. ": val must be the table of data.open_val (fields tokens and tables), got "
      .. (type(val) == "table" and "a table without tokens/tables" or type(val)), 3)
  end
end

local function val_name(val)
  if val.name then return val.name end
  if val.paths and val.paths.val then return (val.paths.val:match("[^/]*$")) end
  return "the validation set"
end

-- common options --> a plain config table
local function common(fn, val, opts)
  check_val(fn, val)
  if opts ~= nil and type(opts) ~= "table" then error(fn .. ": opts must be a table", 3) end
  opts = opts or {}
  local c = {}
  c.T = check_int(fn, opts, "seq_len", 1, nil, "the eval sequence length, e.g. seq_len = 1024")
  c.softcap = opts.softcap == nil and eval.DEFAULT_SOFTCAP or opts.softcap
  if type(c.softcap) ~= "number" or not (c.softcap >= 0) then
    error(string.format("%s: opts.softcap must be a number >= 0 (0 = no softcap), got %s", fn, tostring(opts.softcap)), 3)
  end
  c.temperature = opts.temperature or 1
  c.world = check_int(fn, opts, "world", 1, 1)
  c.rank = check_int(fn, opts, "rank", 0, 0)
  if c.rank >= c.world then
    error(string.format("%s: opts.rank = %d is outside [0, world = %d)", fn, c.rank, c.world), 3)
  end
  c.N = #val.tokens
  c.M = c.N - 1
  c.log = opts.log
  if c.log == nil then c.log = print end
  c.name = val_name(val)
  return c, opts
end

-- ---------------------------------------------------------------------------------------------
-- window plans: plan.count windows; plan.window(k) --> ws, wlen, from (k = 0-based window index);
-- a window scores its rows [from, wlen), i.e. targets ws+from+1 .. ws+wlen
-- ---------------------------------------------------------------------------------------------

--- The standard plan (§1.4): W = floor(M / T) windows of T inputs, every row scored.
function eval.standard_plan(M, T)
  local W = M // T
  return {
    count = W,
    window = function(k) return k * T, T, 0 end,
  }
end

--- The sliding plan (§1.5). quirk = nil/false: windows at ws = k·s while they have something left
--  to score; window 0 scores all its rows, window k >= 1 the rows of its last s inputs that the
--  previous window did not reach (the last window may score fewer than s). Every target exactly once.
--  quirk = true ("1539") or "598": the records' rule — windows at ws = 0, s, 2s, ... < M (#1539; #598:
--  only those with wlen >= s, plus ws = 0), each scoring rows [max(wlen - s, 0), wlen) (all for
--  ws = 0), which re-scores the final targets in the tail windows.
function eval.sliding_plan(M, T, s, quirk)
  local count
  if not quirk then
    count = 1
    if M > T then count = 1 + (M - T + s - 1) // s end
    return {
      count = count,
      window = function(k)
        local ws = k * s
        local wlen = math.min(T, M - ws)
        return ws, wlen, k == 0 and 0 or T - s
      end,
    }
  end
  if quirk == "598" then
    count = math.max(1, M // s)
  else
    count = (M + s - 1) // s
  end
  return {
    count = count,
    window = function(k)
      local ws = k * s
      local wlen = math.min(T, M - ws)
      return ws, wlen, k == 0 and 0 or math.max(wlen - s, 0)
    end,
  }
end

-- ---------------------------------------------------------------------------------------------
-- the engine: batches of windows --> logits_fn --> the ledger
-- ---------------------------------------------------------------------------------------------

local function shape_str(t)
  return "[" .. table.concat(t:shape(), ", ") .. "]"
end

-- pt.cat over any number of parts (pt.cat takes at most 256 at a time)
local function cat_many(parts)
  while #parts > 1 do
    local next_parts = {}
    for i = 1, #parts, 256 do
      local group = table.move(parts, i, math.min(i + 255, #parts), 1, {})
      next_parts[#next_parts + 1] = #group == 1 and group[1] or pt.cat(group, 1)
    end
    parts = next_parts
  end
  return parts[1]
end

-- inputs [B, T] for windows first..last of the plan (short windows right-padded with token 0)
local function batch_inputs(tokens, plan, first, last, T)
  local parts = {}
  for k = first, last do
    local ws, wlen = plan.window(k)
    parts[#parts + 1] = tokens:tensor(ws, ws + wlen)
    if wlen < T then parts[#parts + 1] = pt.zeros({ T - wlen }, "i64") end
  end
  return cat_many(parts):reshape({ last - first + 1, T })
end

-- the logits of one batch as a CPU f32 [B*T, V] tensor; rows: 0-based row list when only some rows
-- are scored (selected on the model's device before the copy to the CPU)
local function batch_logits(fn, logits_fn, x, B, T, rows)
  local lg = logits_fn(x)
  if not pt.is_tensor(lg) then
    error(string.format("%s: logits_fn returned %s, expected a float tensor [B*T, V] = [%d, V]", fn, type(lg), B * T), 0)
  end
  local shape = lg:shape()
  if #shape == 3 and shape[1] == B and shape[2] == T then
    lg = lg:reshape({ B * T, shape[3] })
  elseif #shape ~= 2 or shape[1] ~= B * T then
    error(string.format("%s: logits_fn returned a tensor of shape %s for inputs [%d, %d]; expected [%d, V] "
      .. "(one row per input position, B*T rows)", fn, shape_str(lg), B, T, B * T), 0)
  end
  local dt = lg:dtype()
  if dt ~= "f32" and dt ~= "f64" and dt ~= "bf16" and dt ~= "f16" then
    error(string.format("%s: logits_fn returned %s logits; expected a float tensor", fn, dt), 0)
  end
  if rows then
    local idx = pt.tensor(rows, "i64")
    if lg:device() ~= "cpu" then idx = idx:to(lg:device()) end
    lg = lg:index_select(1, idx)
  end
  -- f32 for the ledger; on a GPU it stays there (ledger:score computes the NLLs on the device and
  -- copies only them)
  if lg:dtype() ~= "f32" then lg = lg:to("f32") end
  if not lg:is_contiguous() then lg = lg:contiguous() end
  return lg
end

local function run_plan(fn, val, logits_fn, c, plan, batch_seqs, ledger)
  if type(logits_fn) ~= "function" and not (getmetatable(logits_fn) or {}).__call then
    error(fn .. ": logits_fn must be a function (tokens i64 [B, T] --> logits [B*T, V]), got " .. type(logits_fn), 0)
  end
  local lo = plan.count * c.rank // c.world
  local hi = plan.count * (c.rank + 1) // c.world -- windows [lo, hi) of this rank (0-based)
  local T = c.T
  local scored = 0
  local score_opts = { softcap = c.softcap, temperature = c.temperature }
  pt.no_grad(function()
    local first = lo
    while first < hi do
      local last = math.min(first + batch_seqs, hi) - 1
      local B = last - first + 1
      -- fast path: B full windows back to back, every row scored (standard eval, stride = T)
      local ws0 = plan.window(first)
      local dense = true
      for k = first, last do
        local ws, wlen, from = plan.window(k)
        if from ~= 0 or wlen ~= T or ws ~= ws0 + (k - first) * T then
          dense = false
          break
        end
      end
      local positions, lg, n
      if dense then
        n = B * T
        positions = pt.arange(ws0 + 1, ws0 + 1 + n)
        local x = val.tokens:tensor(ws0, ws0 + n):reshape({ B, T })
        lg = batch_logits(fn, logits_fn, x, B, T, nil)
      else
        local rows = {}
        positions = {}
        for k = first, last do
          local ws, wlen, from = plan.window(k)
          local b = k - first
          for j = from, wlen - 1 do
            positions[#positions + 1] = ws + j + 1
            rows[#rows + 1] = b * T + j
          end
        end
        n = #positions
        local x = batch_inputs(val.tokens, plan, first, last, T)
        lg = batch_logits(fn, logits_fn, x, B, T, rows)
      end
      ledger:score(positions, lg, score_opts)
      scored = scored + n
      first = last + 1
    end
  end)
  return lo, hi, scored
end

local function open_ledger(fn, val, c, opts, legal)
  if opts.ledger ~= nil then
    if #opts.ledger ~= c.N then
      error(string.format("%s: opts.ledger covers %d tokens but the validation set %s has %d; open it over "
        .. "val.tokens (data.ledger(val.tokens, val.tables))", fn, #opts.ledger, c.name, c.N), 3)
    end
    local mode = opts.ledger:report().legal_mode
    if not legal and mode then
      error(fn .. ": records_quirk re-scores the final targets, which a legal-mode ledger refuses; pass a "
        .. "ledger opened with legal=false (data.ledger(tokens, tables, {legal = false})) or leave opts.ledger unset", 3)
    end
    return opts.ledger, false
  end
  return data.ledger(val.tokens, val.tables, { legal = legal, name = c.name }), true
end

local function finish(c, opts, label, ledger, fresh, t0, extra)
  local r = ledger:report()
  local res = {
    loss = r.loss, bpb = r.bpb, report = r, line = data.format_bpb(r, label),
    eval_time_ms = (clock() - t0) * 1000, seq_len = c.T,
  }
  for k, v in pairs(extra) do res[k] = v end
  if fresh then ledger:close() else res.ledger = ledger end
  if c.log then c.log(string.format("%s eval_time:%.0fms", res.line, res.eval_time_ms)) end
  return res
end

--- Standard non-overlapping evaluation (spec §1.4): the first floor((N-1)/T)·T + 1 tokens, windows
--  of T inputs, every target of them scored once. opts: seq_len (T, required), batch_seqs (windows
--  per forward, default 65536 // T), softcap (30), temperature (1), rank (0), world (1), ledger,
--  label ("standard"), log (print; false = silent).
function eval.standard(val, logits_fn, opts)
  local fn = "eval.standard"
  local c
  c, opts = common(fn, val, opts)
  if c.M < c.T then
    error(string.format("%s: validation set %s has %d tokens, fewer than one window of T=%d+1; use a "
      .. "smaller eval_seq_len (at most %d)", fn, c.name, c.N, c.T, math.max(c.M, 0)), 2)
  end
  local batch_seqs = check_int(fn, opts, "batch_seqs", 1, math.max(1, eval.STANDARD_BATCH_TOKENS // c.T))
  local t0 = clock()
  local plan = eval.standard_plan(c.M, c.T)
  local ledger, fresh = open_ledger(fn, val, c, opts, true)
  local ok, lo, hi, scored = pcall(run_plan, fn, val, logits_fn, c, plan, batch_seqs, ledger)
  if not ok then
    if fresh then ledger:close() end
    error(lo, 0)
  end
  if fresh then
    local r = ledger:report()
    local want = (hi - lo) * c.T
    if r.scored_once ~= want or r.scored_multiple ~= 0 or r.scored_never ~= c.M - want then
      error(string.format("%s: internal error: %d windows should score %d targets once, the ledger counts %d "
        .. "once, %d more than once, %d never", fn, hi - lo, want, r.scored_once, r.scored_multiple, r.scored_never))
    end
  end
  return finish(c, opts, opts.label or "standard", ledger, fresh, t0,
    { windows = hi - lo, scored = scored, tokens_used = plan.count * c.T + 1 })
end

--- Sliding-window evaluation (spec §1.5). opts: seq_len (T), stride (s, 1..T, required), batch_seqs
--  (32), softcap (30), temperature (1), rank, world, ledger, label ("sliding"), log, and
--  records_quirk: false (default) scores every target exactly once; true (or "1539") / "598"
--  reproduces the records' tail windows that re-score the final targets (spec §1.5), through a ledger
--  opened with legal = false so the duplicates are counted and the verdict says illegal. That mode
--  exists only to compare numbers with the records.
function eval.sliding(val, logits_fn, opts)
  local fn = "eval.sliding"
  local c
  c, opts = common(fn, val, opts)
  if c.M < 1 then
    error(string.format("%s: validation set %s has %d tokens; at least 2 are needed (one target)", fn, c.name, c.N), 2)
  end
  local s = check_int(fn, opts, "stride", 1, nil, "the number of targets each window scores, 1..seq_len, e.g. 64")
  if s > c.T then
    error(string.format("%s: opts.stride = %d is larger than seq_len = %d; use a stride in 1..%d", fn, s, c.T, c.T), 2)
  end
  local quirk = opts.records_quirk
  if quirk ~= nil and quirk ~= false and quirk ~= true and quirk ~= "1539" and quirk ~= "598" then
    error(string.format("%s: opts.records_quirk must be false, true (= \"1539\") or \"598\", got %s", fn,
      tostring(quirk)), 2)
  end
  if quirk == false then quirk = nil end
  local batch_seqs = check_int(fn, opts, "batch_seqs", 1, eval.SLIDING_BATCH_SEQS)
  local t0 = clock()
  local plan = eval.sliding_plan(c.M, c.T, s, quirk)
  local ledger, fresh = open_ledger(fn, val, c, opts, not quirk)
  local ok, lo, hi, scored = pcall(run_plan, fn, val, logits_fn, c, plan, batch_seqs, ledger)
  if not ok then
    if fresh then ledger:close() end
    error(lo, 0)
  end
  if fresh and not quirk and c.world == 1 then
    local r = ledger:report()
    if r.scored_once ~= r.targets or r.scored_never ~= 0 or r.scored_multiple ~= 0 then
      error(string.format("%s: internal error: stride %d at T=%d left %d of %d targets scored once, %d never, %d "
        .. "more than once", fn, s, c.T, r.scored_once, r.targets, r.scored_never, r.scored_multiple))
    end
  end
  local label = opts.label or (quirk and "sliding_records_quirk" or "sliding")
  return finish(c, opts, label, ledger, fresh, t0,
    { windows = hi - lo, scored = scored, stride = s, records_quirk = quirk or false })
end

return eval
