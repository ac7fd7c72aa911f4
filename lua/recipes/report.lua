-- lua/recipes/report.lua — the summary of one or more run directories: a table from results.json
-- and the loss and BPB curves from metrics.jsonl drawn to a PNG with gnuplot (several runs overlay).
--
--   build/proteus lua/recipes/report.lua run=runs/quickstart_demo_20261123-194214
--   build/proteus lua/recipes/report.lua run=runs/a run=runs/b out=compare.png
--   build/proteus lua/recipes/report.lua run=runs/a plot=false          # the table only
--
-- Arguments (key=value; run= may repeat):
--   run=DIR        a run directory written by proteus.run (results.json + metrics.jsonl)
--   out=PNG        the picture; default DIR/curves.png for one run, compare.png (current directory)
--                  for several
--   plot=false     print the table only (gnuplot not needed)
--   gnuplot=PATH   the gnuplot executable (default: `gnuplot` on PATH; Debian gnuplot-nox, which
--                  scripts/setup.sh installs)
--
-- What is drawn (docs/results.md describes the files):
--   left:  train_loss per step (lines) and val_loss at each validation (points), nats per token
--   right: val_bpb at each validation (metrics.jsonl) and the final BPBs of results.json
--          (pre_quant, roundtrip, sliding, ttt) as points at the run's last step
-- A run dir without results.json or metrics.jsonl is an error naming the missing file.
-- Tested by tests/lua/test_report.lua.
local json = require "proteus.json"

local USAGE = "usage: proteus lua/recipes/report.lua run=RUN_DIR [run=RUN_DIR2 ...] [out=PNG] [plot=false]"

-- ---- arguments ----
local runs, opts = {}, { out = nil, plot = "true", gnuplot = "gnuplot" }
for i, a in ipairs(arg or {}) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k then error(string.format("report: argument %d '%s' is not key=value\n%s", i, a, USAGE), 0) end
  if k == "run" then
    runs[#runs + 1] = (v:gsub("/+$", ""))
  elseif k == "out" or k == "plot" or k == "gnuplot" then
    opts[k] = v
  else
    error(string.format("report: unknown key '%s' (known: run, out, plot, gnuplot)\n%s", k, USAGE), 0)
  end
end
if #runs == 0 then error("report: no run directory given\n" .. USAGE, 0) end
if opts.plot ~= "true" and opts.plot ~= "false" then
  error("report: plot=" .. opts.plot .. " must be true or false", 0)
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function is_null(v) return v == nil or v == json.null end

-- ---- reading a run ----
local function read_file(path, what)
  local f = io.open(path, "rb")
  if not f then
    error(string.format("report: %s not found: %s (%s)", what, path, what == "results.json"
      and "proteus.run writes it when a run finishes; was this run interrupted?"
      or "proteus.run writes it while a run trains; is this a run directory?"), 0)
  end
  local s = f:read("a")
  f:close()
  return s
end

local function load_run(dir)
  local rpath, mpath = dir .. "/results.json", dir .. "/metrics.jsonl"
  local rtext = read_file(rpath, "results.json")
  local mtext = read_file(mpath, "metrics.jsonl")
  local ok, res = pcall(json.decode, rtext)
  if not ok then error("report: " .. rpath .. " is not valid JSON: " .. tostring(res), 0) end
  if type(res) ~= "table" then error("report: " .. rpath .. " does not hold a JSON object", 0) end
  local train, val = {}, {}
  local n = 0
  for line in mtext:gmatch("[^\n]+") do
    n = n + 1
    if line:match("%S") then
      local okm, m = pcall(json.decode, line)
      if not okm or type(m) ~= "table" then
        error(string.format("report: %s line %d is not a JSON object: %s", mpath, n, tostring(m)), 0)
      end
      local step = m.step
      if type(step) == "number" then
        if type(m.train_loss) == "number" then train[#train + 1] = { step, m.train_loss } end
        if type(m.val_loss) == "number" or type(m.val_bpb) == "number" then
          val[#val + 1] = { step, type(m.val_loss) == "number" and m.val_loss or 0 / 0,
            type(m.val_bpb) == "number" and m.val_bpb or 0 / 0 }
        end
      end
    end
  end
  local name = dir:match("([^/]+)$") or dir
  return { dir = dir, name = name, results = res, train = train, val = val, lines = n }
end

local loaded = {}
for i, d in ipairs(runs) do loaded[i] = load_run(d) end
do -- runs with the same directory name are labelled by their full path
  local count = {}
  for _, r in ipairs(loaded) do count[r.name] = (count[r.name] or 0) + 1 end
  for _, r in ipairs(loaded) do if count[r.name] > 1 then r.name = r.dir end end
end

-- ---- the table ----
local function get(t, ...)
  for _, k in ipairs { ... } do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  if is_null(t) then return nil end
  return t
end

local function fmt(v, f)
  if v == nil then return "-" end
  if type(v) == "boolean" then return v and "yes" or "no" end
  if type(v) == "number" and f and f ~= "," then return string.format(f, v) end
  if f == "," and math.type(v) == "integer" then -- 16000000 -> 16,000,000
    local s = tostring(v)
    local neg = s:sub(1, 1) == "-" and "-" or ""
    s = s:gsub("^-", ""):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
    return neg .. s
  end
  return tostring(v)
end

local function last(list, k) return #list > 0 and list[#list][k] or nil end
local function min_of(list, k)
  local m
  for _, e in ipairs(list) do if e[k] == e[k] and (m == nil or e[k] < m) then m = e[k] end end
  return m
end

local ROWS = {
  { "recipe", function(r) return fmt(get(r.results, "recipe")) end },
  { "preset", function(r) return fmt(get(r.results, "preset")) end },
  { "seed", function(r) return fmt(get(r.results, "seed")) end },
  { "device", function(r) return fmt(get(r.results, "device")) end },
  { "world_size", function(r) return fmt(get(r.results, "world_size")) end },
  { "params", function(r) return fmt(get(r.results, "params"), ",") end },
  { "steps", function(r) return fmt(get(r.results, "train", "steps")) end },
  { "train_time", function(r)
    local ms = get(r.results, "train", "train_time_ms")
    return ms and string.format("%.1fs", ms / 1000) or "-"
  end },
  { "step_avg_ms", function(r) return fmt(get(r.results, "train", "step_avg_ms"), "%.2f") end },
  { "tokens", function(r) return fmt(get(r.results, "train", "tokens"), ",") end },
  { "last train_loss", function(r) return fmt(last(r.train, 2), "%.4f") end },
  { "best val_bpb (log)", function(r) return fmt(min_of(r.val, 3), "%.4f") end },
  { "pre_quant_bpb", function(r) return fmt(get(r.results, "eval", "pre_quant_bpb"), "%.4f") end },
  { "roundtrip_bpb", function(r) return fmt(get(r.results, "eval", "roundtrip_bpb"), "%.4f") end },
  { "sliding_bpb", function(r) return fmt(get(r.results, "eval", "sliding_bpb"), "%.4f") end },
  { "ttt_bpb", function(r) return fmt(get(r.results, "eval", "ttt_bpb"), "%.4f") end },
  { "val_loss", function(r) return fmt(get(r.results, "eval", "val_loss"), "%.4f") end },
  { "artifact bytes", function(r) return fmt(get(r.results, "artifact", "total_bytes"), ",") end },
  { "fits 16MB", function(r) return fmt(get(r.results, "artifact", "fits")) end },
  { "ledger", function(r)
    local v = get(r.results, "ledger", "verdict")
    if not v then return "-" end
    return string.format("%s (%s/%s scored once)", v:upper(), fmt(get(r.results, "ledger", "scored_once"), ","),
      fmt(get(r.results, "ledger", "targets"), ","))
  end },
}

local cells = { { "run" } }
for _, r in ipairs(loaded) do cells[1][#cells[1] + 1] = r.name end
for _, row in ipairs(ROWS) do
  local line = { row[1] }
  for _, r in ipairs(loaded) do line[#line + 1] = row[2](r) end
  cells[#cells + 1] = line
end
local widths = {}
for _, line in ipairs(cells) do
  for j, c in ipairs(line) do widths[j] = math.max(widths[j] or 0, utf8.len(c) or #c) end
end
for i, line in ipairs(cells) do
  local parts = {}
  for j, c in ipairs(line) do
    parts[j] = c .. string.rep(" ", widths[j] - (utf8.len(c) or #c))
  end
  print((table.concat(parts, "  "):gsub("%s+$", "")))
  if i == 1 then
    local rule = {}
    for j = 1, #widths do rule[j] = string.rep("-", widths[j]) end
    print(table.concat(rule, "  "))
  end
end

if opts.plot == "false" then return end

-- ---- the picture ----
local function run_quiet(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

local gp = opts.gnuplot
do
  local ok = run_quiet("command -v " .. shell_quote(gp) .. " >/dev/null")
  if not ok then
    error(string.format("report: gnuplot not found ('%s'): run scripts/setup.sh (it installs Debian's "
      .. "gnuplot-nox), or pass plot=false for the table only", gp), 0)
  end
end
local terminal
for _, t in ipairs { "pngcairo", "png" } do
  if run_quiet(shell_quote(gp) .. " -e " .. shell_quote("set terminal " .. t)) then
    terminal = t
    break
  end
end
if not terminal then
  error("report: " .. gp .. " supports neither the pngcairo nor the png terminal: "
    .. "install gnuplot-nox (scripts/setup.sh)", 0)
end

local out = opts.out or (#loaded == 1 and (loaded[1].dir .. "/curves.png") or "compare.png")
local tmpdir
do
  local p = io.popen("mktemp -d /tmp/proteus_report_XXXXXX")
  tmpdir = p:read("l")
  p:close()
  if not tmpdir or tmpdir == "" then error("report: could not create a temporary directory with mktemp -d", 0) end
end

local function write_data(name, rows, cols)
  local path = tmpdir .. "/" .. name
  local f = assert(io.open(path, "w"))
  for _, e in ipairs(rows) do
    local parts = {}
    for j = 1, cols do
      local v = e[j]
      parts[j] = (type(v) == "number" and v == v) and string.format("%.10g", v) or "NaN"
    end
    f:write(table.concat(parts, " "), "\n")
  end
  f:close()
  return path
end

local function gq(s) -- a gnuplot single-quoted string
  return "'" .. tostring(s):gsub("'", "''") .. "'"
end

local loss_plots, bpb_plots = {}, {}
local FINALS = { "pre_quant_bpb", "roundtrip_bpb", "sliding_bpb", "ttt_bpb" }
local POINT = { pre_quant_bpb = 7, roundtrip_bpb = 5, sliding_bpb = 9, ttt_bpb = 11 }
for i, r in ipairs(loaded) do
  local color = string.format("linecolor %d", i)
  if #r.train > 0 then
    local p = write_data("train" .. i, r.train, 2)
    loss_plots[#loss_plots + 1] = string.format("%s using 1:2 with lines %s linewidth 2 title %s", gq(p), color,
      gq(r.name .. " train_loss"))
  end
  local vl, vb = {}, {}
  for _, e in ipairs(r.val) do
    if e[2] == e[2] then vl[#vl + 1] = e end
    if e[3] == e[3] then vb[#vb + 1] = e end
  end
  if #vl > 0 then
    local p = write_data("val_loss" .. i, vl, 3)
    loss_plots[#loss_plots + 1] = string.format("%s using 1:2 with linespoints %s pointtype 7 dashtype 2 title %s",
      gq(p), color, gq(r.name .. " val_loss"))
  end
  if #vb > 0 then
    local p = write_data("val_bpb" .. i, vb, 3)
    bpb_plots[#bpb_plots + 1] = string.format("%s using 1:3 with linespoints %s pointtype 7 title %s", gq(p), color,
      gq(r.name .. " val_bpb"))
  end
  local x = get(r.results, "train", "steps") or last(r.train, 1) or 0
  for _, k in ipairs(FINALS) do
    local v = get(r.results, "eval", k)
    if type(v) == "number" then
      local p = write_data("final_" .. k .. i, { { x, v } }, 2)
      bpb_plots[#bpb_plots + 1] = string.format("%s using 1:2 with points %s pointtype %d pointsize 2 title %s",
        gq(p), color, POINT[k], gq(string.format("%s %s %.4f", r.name, k, v)))
    end
  end
end

local title = #loaded == 1 and loaded[1].name or string.format("%d runs", #loaded)
local lines = {
  string.format("set terminal %s size 1400,560 noenhanced", terminal),
  "set output " .. gq(out),
  "set multiplot layout 1,2 title " .. gq("proteus: " .. title),
  "set grid", "set key top right", "set xlabel 'step'",
  "set title 'loss'", "set ylabel 'nats per token'",
}
local function empty_panel(msg)
  lines[#lines + 1] = "set xrange [0:1]"
  lines[#lines + 1] = "set yrange [0:1]"
  lines[#lines + 1] = "set label 1 " .. gq(msg) .. " at graph 0.5,0.5 center"
  lines[#lines + 1] = "plot 2 notitle"
  lines[#lines + 1] = "unset label 1"
  lines[#lines + 1] = "set autoscale"
end
if #loss_plots > 0 then lines[#lines + 1] = "plot " .. table.concat(loss_plots, ", \\\n  ")
else empty_panel("no train_loss or val_loss in metrics.jsonl") end
lines[#lines + 1] = "set title 'validation BPB (points: final results.json values)'"
lines[#lines + 1] = "set ylabel 'bits per byte'"
lines[#lines + 1] = "set offsets graph 0.05, graph 0.05, graph 0.1, graph 0.1" -- final points off the frame
if #bpb_plots > 0 then lines[#lines + 1] = "plot " .. table.concat(bpb_plots, ", \\\n  ")
else empty_panel("no BPB in metrics.jsonl or results.json") end
lines[#lines + 1] = "unset multiplot"

local script = tmpdir .. "/report.gp"
do
  local f = assert(io.open(script, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
end
local ok, gout = run_quiet(shell_quote(gp) .. " " .. shell_quote(script))
os.execute("rm -rf " .. shell_quote(tmpdir))
if not ok then error("report: gnuplot failed drawing " .. out .. ":\n" .. gout, 0) end
local f = io.open(out, "rb")
local head = f and f:read(8)
local size = f and f:seek("end") or 0
if f then f:close() end
if head ~= "\137PNG\r\n\26\n" then error("report: gnuplot wrote no PNG to " .. out .. "\n" .. gout, 0) end
print(string.format("curves: %s (%d bytes, %d run%s)", out, size, #loaded, #loaded == 1 and "" or "s"))
