-- tests/lua/test_report.lua — lua/recipes/report.lua: the summary table of results.json, the PNG of
-- the curves in metrics.jsonl (one run and two overlaid), and its errors (a missing file, no gnuplot,
-- a bad metrics line). Run dirs are written with proteus.run itself, so the report reads what runs write.
--
--   build/proteus tests/run.lua tests/lua/test_report.lua
--
-- The report runs as a child process (build/proteus lua/recipes/report.lua ...): the binary is
-- $PROTEUS_BIN, else the interpreter running this test (arg[-1]). The PNG tests skip, saying so,
-- when gnuplot is not installed (scripts/setup.sh installs gnuplot-nox).
local run = require "proteus.run"

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local root = here .. "../../"
local REPORT = root .. "lua/recipes/report.lua"

local testing = require "proteus.testing"
local q = testing.shell_quote

local function proteus_bin() return testing.proteus_bin("test_report") end

-- runs the report with args; returns ok, output (stdout + stderr)
local function report(args)
  local p = io.popen(q(proteus_bin()) .. " " .. q(REPORT) .. " " .. args .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok and true or false, out
end

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/proteus_test_report_XXXXXX")
  local d = p:read("l")
  p:close()
  return d
end

local function have_gnuplot()
  local p = io.popen("command -v gnuplot 2>/dev/null")
  local s = p:read("a")
  p:close()
  return s:match("%S") ~= nil
end

local function png_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local head = f:read(24)
  f:close()
  if not head or head:sub(1, 8) ~= "\137PNG\r\n\26\n" then return nil end
  return string.unpack(">I4", head, 17), string.unpack(">I4", head, 21) -- IHDR width, height
end

-- a finished run: 5 training steps, two validations, results with a pre-quant and a sliding BPB
local function make_run(dir, base, opts)
  opts = opts or {}
  local R = run.open { recipe = "unit", preset = "smoke", run_dir = dir, quiet = true }
  for s = 1, 5 do R:log_metrics { step = s, train_loss = base - 0.25 * s, train_time_ms = 100.0 * s } end
  R:log_metrics { step = 3, val_loss = base - 0.5, val_bpb = base / 2 }
  R:log_metrics { step = 5, val_loss = base - 1.0, val_bpb = base / 2 - 0.25 }
  if not opts.no_results then
    R:write_results {
      seed = 7, device = "cpu", world_size = 1, params = 123456,
      train = { steps = 5, train_time_ms = 500.0, step_avg_ms = 100.0, tokens = 40960 },
      eval = { pre_quant_bpb = 1.5, sliding_bpb = 1.4375, val_loss = 2.25 },
      ledger = { verdict = "legal", targets = 1000, scored_once = 990, scored_never = 10, scored_multiple = 0,
        trained_before_scored = 0, nll_rescaled = 0 },
    }
  end
  R:close()
  return dir
end

local function row(out, name)
  return ("\n" .. out):match("\n" .. name:gsub("%p", "%%%0") .. "%s+([^\n]*)")
end

return {
  table_and_png_of_one_run = function(T)
    local d = make_run(tmpdir() .. "/run_a", 4.0)
    local ok, out = report("run=" .. q(d))
    if not have_gnuplot() then
      assert(not ok and out:find("scripts/setup.sh", 1, true), out)
      T.skip("gnuplot is not installed (scripts/setup.sh installs gnuplot-nox); the table part is tested by table_only")
    end
    assert(ok, out)
    T.eq(row(out, "run"), "run_a")
    T.eq(row(out, "recipe"), "unit")
    T.eq(row(out, "preset"), "smoke")
    T.eq(row(out, "params"), "123,456")
    T.eq(row(out, "steps"), "5")
    T.eq(row(out, "train_time"), "0.5s")
    T.eq(row(out, "tokens"), "40,960")
    T.eq(row(out, "last train_loss"), "2.7500")
    T.eq(row(out, "best val_bpb (log)"), "1.7500")
    T.eq(row(out, "pre_quant_bpb"), "1.5000")
    T.eq(row(out, "roundtrip_bpb"), "-")
    T.eq(row(out, "sliding_bpb"), "1.4375")
    T.eq(row(out, "val_loss"), "2.2500")
    T.eq(row(out, "ledger"), "LEGAL (990/1,000 scored once)")
    local w, h = png_size(d .. "/curves.png")
    assert(w, "no PNG at " .. d .. "/curves.png\n" .. out)
    T.eq({ w, h }, { 1400, 560 })
    assert(out:find("curves: " .. d .. "/curves.png", 1, true), out)
  end,

  two_runs_overlay = function(T)
    if not have_gnuplot() then T.skip("gnuplot is not installed (scripts/setup.sh installs gnuplot-nox)") end
    local base = tmpdir()
    local a, b = make_run(base .. "/a", 4.0), make_run(base .. "/b", 5.0)
    local png = base .. "/cmp.png"
    local ok, out = report("run=" .. q(a) .. " run=" .. q(b) .. " out=" .. q(png))
    assert(ok, out)
    assert(row(out, "run"):match("^a%s+b$"), out)
    assert(row(out, "last train_loss"):match("^2%.7500%s+3%.7500$"), out)
    assert(png_size(png), "no PNG at " .. png)
    assert(out:find("2 runs", 1, true), out)
  end,

  table_only = function(T)
    local d = make_run(tmpdir() .. "/run_t", 4.0)
    local ok, out = report("run=" .. q(d) .. " plot=false gnuplot=/nonexistent/gnuplot")
    assert(ok, out)
    T.eq(row(out, "sliding_bpb"), "1.4375")
    T.eq(io.open(d .. "/curves.png"), nil)
  end,

  missing_results_names_the_file = function(T)
    local d = make_run(tmpdir() .. "/unfinished", 4.0, { no_results = true })
    local ok, out = report("run=" .. q(d))
    assert(not ok, out)
    assert(out:find("results.json not found: " .. d .. "/results.json", 1, true), out)
  end,

  missing_metrics_names_the_file = function(T)
    local d = make_run(tmpdir() .. "/nometrics", 4.0)
    os.remove(d .. "/metrics.jsonl")
    local ok, out = report("run=" .. q(d))
    assert(not ok, out)
    assert(out:find("metrics.jsonl not found: " .. d .. "/metrics.jsonl", 1, true), out)
  end,

  not_a_directory = function(T)
    local ok, out = report("run=/nonexistent/run_dir")
    assert(not ok, out)
    assert(out:find("/nonexistent/run_dir/results.json", 1, true), out)
  end,

  bad_metrics_line_names_file_and_line = function(T)
    local d = make_run(tmpdir() .. "/badline", 4.0)
    local f = assert(io.open(d .. "/metrics.jsonl", "a"))
    f:write("{\"step\": 6, \"train_loss\": \n")
    f:close()
    local ok, out = report("run=" .. q(d))
    assert(not ok, out)
    assert(out:find(d .. "/metrics.jsonl line 8", 1, true), out)
  end,

  no_gnuplot_says_run_setup = function(T)
    local d = make_run(tmpdir() .. "/nognuplot", 4.0)
    local ok, out = report("run=" .. q(d) .. " gnuplot=/nonexistent/gnuplot")
    assert(not ok, out)
    assert(out:find("gnuplot not found ('/nonexistent/gnuplot'): run scripts/setup.sh", 1, true), out)
  end,

  argument_errors = function(T)
    local ok, out = report("")
    assert(not ok and out:find("no run directory given", 1, true), out)
    ok, out = report("runs=x")
    assert(not ok and out:find("unknown key 'runs'", 1, true), out)
    ok, out = report("x")
    assert(not ok and out:find("argument 1 'x' is not key=value", 1, true), out)
  end,
}
