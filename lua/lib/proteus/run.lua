--- proteus.run — a run directory: the log, the metrics stream and results.json.
--
--   local run = require "proteus.run"
--   local r <close> = run.open{recipe = "baseline", preset = "demo"}   -- runs/baseline_demo_20260101-120000/
--   r:log("step:10/20 train_loss:3.2100")         -- printed and appended to run.log (flushed)
--   r:log_metrics{step = 10, train_loss = 3.21}    -- one JSON object per line in metrics.jsonl (flushed)
--   r:log_bpb(report, "final_roundtrip")           -- a BPB line with the ledger's verdict (data.format_bpb)
--   r:write_results{seed = 1337, train = {...}, eval = {...}, artifact = {...}, ledger = {...}}
--   r:path("model.ptz")                            -- a file inside the run directory
--
-- run.open{recipe=, preset=, run_dir=nil, runs_root="runs", time=os.time(), quiet=false}: the
-- directory is run_dir when given (created if missing, reused if present), else
-- <runs_root>/<recipe>_<preset>_<YYYYmmdd-HHMMSS> (a suffix -2, -3, ... when that name is taken).
-- quiet = true writes log lines to run.log only.
--
-- results.json is written atomically (results.json.tmp, then os.rename) with every field of
-- run.RESULTS_SCHEMA present (JSON null where a stage did not run); docs/results.md describes the
-- fields one by one. Values are type-checked; errors name the field, the value and what to do.
--
-- Tests: tests/lua/test_run.lua (build/proteus tests/run.lua tests/lua/test_run.lua).
local json = require "proteus.json"
local data = require "proteus.data"

local run = {}

run.LOG_FILE = "run.log"
run.METRICS_FILE = "metrics.jsonl"
run.RESULTS_FILE = "results.json"
run.ARTIFACT_LIMIT = 16000000 -- bytes of code + compressed model allowed by the challenge

--- results.json: the fields in the order they are written; kinds: str, int, num, bool, or a group.
run.RESULTS_SCHEMA = {
  { "recipe", "str" }, { "preset", "str" }, { "seed", "int" }, { "device", "str" },
  { "world_size", "int" }, { "params", "int" },
  { "train", { { "steps", "int" }, { "train_time_ms", "num" }, { "step_avg_ms", "num" }, { "tokens", "int" } } },
  { "eval", { { "pre_quant_bpb", "num" }, { "roundtrip_bpb", "num" }, { "sliding_bpb", "num" },
    { "ttt_bpb", "num" }, { "val_loss", "num" } } },
  { "artifact", { { "model_bytes", "int" }, { "code_bytes", "int" }, { "total_bytes", "int" }, { "limit", "int" },
    { "fits", "bool" } } },
  { "ledger", { { "verdict", "str" }, { "targets", "int" }, { "scored_once", "int" }, { "scored_never", "int" },
    { "scored_multiple", "int" }, { "trained_before_scored", "int" }, { "nll_rescaled", "int" } } },
}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function is_dir(path)
  local ok = os.execute("test -d " .. shell_quote(path))
  return ok == true
end

local function mkdir_p(path, what)
  if is_dir(path) then return end
  if os.execute("mkdir -p " .. shell_quote(path) .. " 2>/dev/null") ~= true or not is_dir(path) then
    error(string.format("run.open: cannot create the %s %s (check that its parent is writable)", what, path), 3)
  end
end

local function safe_name(s)
  return (tostring(s):gsub("[^%w%._%-]", "_"))
end

-- ---------------------------------------------------------------------------------------------
-- results: schema check and filling
-- ---------------------------------------------------------------------------------------------

local function describe(v)
  if type(v) == "string" then return string.format("%q (a string)", v) end
  return string.format("%s (a %s)", tostring(v), type(v))
end

local function check_leaf(path, kind, v)
  if v == nil or v == json.null then return json.null end
  if kind == "str" then
    if type(v) ~= "string" then error(string.format("results.json: %s must be a string, got %s", path, describe(v)), 0) end
  elseif kind == "int" then
    local iv = math.type(v) == "integer" and v or (type(v) == "number" and math.tointeger(v))
    if not iv then
      error(string.format("results.json: %s must be an integer, got %s (round it or leave it nil for null)", path,
        describe(v)), 0)
    end
    v = iv
  elseif kind == "num" then
    if type(v) ~= "number" then error(string.format("results.json: %s must be a number, got %s", path, describe(v)), 0) end
  elseif kind == "bool" then
    if type(v) ~= "boolean" then error(string.format("results.json: %s must be true or false, got %s", path, describe(v)), 0) end
  end
  return v
end

local function fill(schema, src, path)
  if src ~= nil and type(src) ~= "table" then
    error(string.format("results.json: %s must be a table, got %s", path == "" and "the results" or path,
      describe(src)), 0)
  end
  src = src or {}
  local out, order = {}, {}
  for _, f in ipairs(schema) do
    local key, kind = f[1], f[2]
    local p = path == "" and key or (path .. "." .. key)
    order[#order + 1] = key
    if type(kind) == "table" then
      out[key] = fill(kind, src[key], p)
    else
      out[key] = check_leaf(p, kind, src[key])
    end
  end
  for k, v in pairs(src) do -- extra fields are kept (written after the schema's, sorted)
    if out[k] == nil then out[k] = v end
  end
  return json.object(order, out)
end

--- The results table as written: every schema field present (json.null where absent), values
--  checked, artifact.total_bytes = model + code and artifact.fits = total <= limit when not given,
--  artifact.limit defaulting to 16,000,000.
function run.normalize_results(tbl)
  local r = fill(run.RESULTS_SCHEMA, tbl, "")
  local a = r.artifact
  if a.limit == json.null then a.limit = run.ARTIFACT_LIMIT end
  if a.total_bytes == json.null and a.model_bytes ~= json.null and a.code_bytes ~= json.null then
    a.total_bytes = a.model_bytes + a.code_bytes
  end
  if a.fits == json.null and a.total_bytes ~= json.null then a.fits = a.total_bytes <= a.limit end
  local l = r.ledger
  if l.verdict ~= json.null and l.verdict ~= "legal" and l.verdict ~= "illegal" then
    error(string.format("results.json: ledger.verdict must be \"legal\" or \"illegal\", got %s", describe(l.verdict)), 0)
  end
  return r
end

--- Writes text to path atomically: path.tmp first, then os.rename over path.
function run.write_atomic(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then error("run: cannot write " .. tostring(err), 2) end
  local ok, werr = f:write(text)
  if ok then ok, werr = f:flush() end
  f:close()
  if not ok then
    os.remove(tmp)
    error(string.format("run: writing %s failed: %s", tmp, tostring(werr)), 2)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    error(string.format("run: cannot rename %s to %s: %s", tmp, path, tostring(rerr)), 2)
  end
end

--- Reads a results.json back (tables, json.null for null).
function run.read_results(path)
  return json.read(path)
end

-- ---------------------------------------------------------------------------------------------
-- the run object
-- ---------------------------------------------------------------------------------------------

local Run = {}
Run.__index = Run

function Run:path(name)
  return self.dir .. "/" .. name
end

local function open_append(self, name)
  local p = self:path(name)
  local f, err = io.open(p, "ab")
  if not f then error("run: cannot open " .. tostring(err), 3) end
  return f
end

--- Prints a line (unless quiet) and appends it to run.log. With more arguments: string.format.
function Run:log(line, ...)
  if select("#", ...) > 0 then line = string.format(line, ...) end
  line = tostring(line)
  if not self.quiet then print(line) end
  if self.closed then error("run:log: the run " .. self.dir .. " was closed", 2) end
  self.log_file:write(line, "\n")
  self.log_file:flush()
  return line
end

--- Logs a BPB with the ledger's verdict beside it (data.format_bpb of a ledger report).
function Run:log_bpb(report, label)
  return self:log(data.format_bpb(report, label))
end

--- Appends one metrics record (a table; "step" first, then the other keys sorted) to metrics.jsonl.
function Run:log_metrics(m)
  if type(m) ~= "table" then error("run:log_metrics: expected a table like {step = 1, train_loss = 3.2}, got "
    .. type(m), 2) end
  if self.closed then error("run:log_metrics: the run " .. self.dir .. " was closed", 2) end
  local rec = {}
  for k, v in pairs(m) do rec[k] = v end
  local ok, text = pcall(json.encode, json.object({ "step" }, rec))
  if not ok then error("run:log_metrics: " .. text, 2) end
  self.metrics_file:write(text, "\n")
  self.metrics_file:flush()
end

--- Writes results.json (see run.normalize_results); recipe and preset default to the run's.
--  Returns the path and the table as written.
function Run:write_results(tbl)
  if type(tbl) ~= "table" then error("run:write_results: expected a table of results, got " .. type(tbl), 2) end
  local src = {}
  for k, v in pairs(tbl) do src[k] = v end
  if src.recipe == nil then src.recipe = self.recipe end
  if src.preset == nil then src.preset = self.preset end
  if src.run_dir == nil then src.run_dir = self.dir end
  local ok, r = pcall(run.normalize_results, src)
  if not ok then error("run:write_results: " .. r, 2) end
  local ok2, text = pcall(json.encode, r, { indent = 2 })
  if not ok2 then error("run:write_results: " .. text, 2) end
  local path = self:path(run.RESULTS_FILE)
  run.write_atomic(path, text .. "\n")
  return path, r
end

function Run:close()
  if self.closed then return end
  self.closed = true
  self.log_file:close()
  self.metrics_file:close()
end

Run.__close = Run.close
Run.__gc = Run.close

--- Opens (creates) a run directory; see the header for the options.
function run.open(opts)
  if type(opts) ~= "table" then error("run.open: expected {recipe = NAME, preset = NAME, run_dir = nil}", 2) end
  if type(opts.recipe) ~= "string" or opts.recipe == "" then
    error("run.open: recipe is required (the recipe's name, e.g. recipe = \"baseline\"), got " .. tostring(opts.recipe), 2)
  end
  local preset = opts.preset or "default"
  if type(preset) ~= "string" or preset == "" then
    error("run.open: preset must be a non-empty string, got " .. tostring(opts.preset), 2)
  end
  local dir
  if opts.run_dir ~= nil then
    if type(opts.run_dir) ~= "string" or opts.run_dir == "" then
      error("run.open: run_dir must be a directory path, got " .. tostring(opts.run_dir), 2)
    end
    dir = opts.run_dir:gsub("(.)/+$", "%1")
    mkdir_p(dir, "run directory")
  else
    local root = (opts.runs_root or "runs"):gsub("(.)/+$", "%1")
    mkdir_p(root, "runs folder")
    local base = string.format("%s/%s_%s_%s", root, safe_name(opts.recipe), safe_name(preset),
      os.date("%Y%m%d-%H%M%S", opts.time or os.time()))
    for i = 1, 1000 do
      local cand = i == 1 and base or (base .. "-" .. i)
      -- plain mkdir fails when cand exists, so two runs in the same second get different folders
      if not is_dir(cand) and os.execute("mkdir " .. shell_quote(cand) .. " 2>/dev/null") == true then
        dir = cand
        break
      end
    end
    if not dir then error("run.open: cannot create a run directory named " .. base .. " (or -2 .. -1000)", 2) end
  end
  local self = setmetatable({ dir = dir, name = dir:match("[^/]*$"), recipe = opts.recipe, preset = preset,
    quiet = opts.quiet and true or false, closed = false }, Run)
  self.log_file = open_append(self, run.LOG_FILE)
  self.metrics_file = open_append(self, run.METRICS_FILE)
  return self
end

return run
