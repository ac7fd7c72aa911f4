-- tests/lua/test_run.lua — proteus.run (run directories, run.log, metrics.jsonl, results.json) and
-- proteus.json (the encoder and decoder they use).
--
--   build/proteus tests/run.lua tests/lua/test_run.lua
local json = require "proteus.json"
local run = require "proteus.run"
local data = require "proteus.data"

local function tmpdir()
  local p = assert(io.popen("mktemp -d"))
  local d = p:read("l")
  p:close()
  return d
end

local function rm_rf(d)
  assert(d:match("^/tmp/"), d)
  os.execute("rm -rf '" .. d .. "'")
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function lines(path)
  local out = {}
  for l in io.lines(path) do out[#out + 1] = l end
  return out
end

return {
  json_encode_exact = function(T)
    T.eq(json.encode({ b = 1, a = { 1.5, json.null, "x" } }), '{"a":[1.5,null,"x"],"b":1}')
    T.eq(json.encode(json.object({ "step", "loss" }, { loss = 0.5, step = 3, aux = true })),
      '{"step":3,"loss":0.5,"aux":true}')
    T.eq(json.encode({}), "{}")
    T.eq(json.encode(json.array {}), "[]")
    T.eq(json.encode("q\"\\\n\t\1\127é"), '"q\\"\\\\\\n\\t\\u0001\\u007fé"')
    -- numbers: integers as integers, floats at full precision, floats stay floats, non-finite -> null
    T.eq(json.number(42), "42")
    T.eq(json.number(-9007199254740993), "-9007199254740993")
    T.eq(json.number(0.1), "0.1")
    T.eq(json.number(1 / 3), "0.3333333333333333")
    T.eq(json.number(2 / 3), "0.6666666666666666")
    T.eq(json.number(0.1 + 0.2), "0.30000000000000004")
    T.eq(json.number(3.0), "3.0")
    T.eq(json.number(1e300), "1e+300")
    T.eq(json.number(-0.0), "-0.0")
    T.eq(json.number(0 / 0), "null")
    T.eq(json.number(math.huge), "null")
    for _, x in ipairs { math.pi, 1 / 3, 2.5e-310, 123456.789, -1.7976931348623157e308, 5e-324 } do
      T.eq(tonumber(json.number(x)), x)
    end
    T.eq(json.encode({ a = { b = 1 } }, { indent = 2 }), '{\n  "a": {\n    "b": 1\n  }\n}')
  end,

  json_encode_errors = function(T)
    local t = {}
    t.self = t
    T.raises(function() json.encode(t) end, "json.encode: value.self refers to itself (a cycle)")
    T.raises(function() json.encode({ a = { print } }) end, "json.encode: value.a[1] is a function")
    T.raises(function() json.encode({ [1] = 1, x = 2 }) end, "has a number key 1; object keys must be strings")
    T.raises(function() json.encode({ [true] = 1 }) end, "has a boolean key true")
  end,

  json_decode_round_trip = function(T)
    local v = json.decode(' {"a": [1, 2.0, null, -1.5e3, true, false, "\\u00e9\\ud83d\\ude00\\n"], "b": {}, "c": []} ')
    T.eq(math.type(v.a[1]), "integer")
    T.eq(math.type(v.a[2]), "float")
    T.eq(v.a[3], json.null)
    T.eq({ v.a[4], v.a[5], v.a[6], v.a[7] }, { -1500.0, true, false, "é😀\n" })
    T.eq(json.encode(v.c), "[]")
    T.eq(json.encode(v.b), "{}")
    local orig = { x = { 1, 2, { y = "z", w = 0.1 } }, n = json.null, f = 1e-7, big = 9007199254740993 }
    local back = json.decode(json.encode(orig, { indent = 3 }))
    T.eq(json.encode(back), json.encode(orig))
    T.eq(back.big, 9007199254740993)
    T.eq(math.type(json.decode("12345678901234567890")), "float") -- too large for an integer
    for _, bad in ipairs { { "[1,]", "byte 4" }, { "01", "malformed number at byte 1" }, { '{"a" 1}', "expected ':' at byte 6" },
      { "[1] x", "trailing characters at byte 5" }, { '"abc', "unterminated string" }, { "1.", "trailing characters" },
      { '"\\ud800"', "unpaired UTF-16 surrogate" }, { "nul", "malformed number" } } do
      T.raises(function() json.decode(bad[1]) end, bad[2])
    end
  end,

  run_dir_default_name_and_files = function(T)
    local root = tmpdir()
    local t = os.time { year = 2026, month = 3, day = 19, hour = 7, min = 5, sec = 9 }
    local r = run.open { recipe = "baseline", preset = "demo", runs_root = root .. "/runs", time = t, quiet = true }
    T.eq(r.dir, root .. "/runs/baseline_demo_20260319-070509")
    T.eq(r.name, "baseline_demo_20260319-070509")
    -- a second run in the same second gets its own folder
    local r2 = run.open { recipe = "baseline", preset = "demo", runs_root = root .. "/runs", time = t, quiet = true }
    T.eq(r2.dir, root .. "/runs/baseline_demo_20260319-070509-2")
    local r3 = run.open { recipe = "v9 lora/ttt", runs_root = root .. "/runs", time = t, quiet = true }
    T.eq(r3.name, "v9_lora_ttt_default_20260319-070509")
    r:log("step:%d/%d train_loss:%.4f", 1, 20, 3.25)
    r:log("plain line")
    r:log_metrics { step = 1, train_loss = 3.25, lr = 0.04, tokens = 8192 }
    r:log_metrics { train_loss = 3.0, step = 2, lr = 0.04, tokens = 16384 }
    -- written and flushed before close
    T.eq(lines(r:path("run.log")), { "step:1/20 train_loss:3.2500", "plain line" })
    T.eq(lines(r:path("metrics.jsonl")), {
      '{"step":1,"lr":0.04,"tokens":8192,"train_loss":3.25}',
      '{"step":2,"lr":0.04,"tokens":16384,"train_loss":3.0}',
    })
    T.eq(json.decode(lines(r:path("metrics.jsonl"))[2]).train_loss, 3.0)
    r:close()
    r:close() -- idempotent
    T.raises(function() r:log("late") end, "was closed")
    r2:close()
    r3:close()
    rm_rf(root)
  end,

  run_dir_override_and_errors = function(T)
    local root = tmpdir()
    do
      local r <close> = run.open { recipe = "x", preset = "smoke", run_dir = root .. "/mine/a/", quiet = true }
      T.eq(r.dir, root .. "/mine/a")
      r:log("first")
    end
    local r = run.open { recipe = "x", preset = "smoke", run_dir = root .. "/mine/a", quiet = true }
    r:log("second") -- an existing run_dir is reused; the log is appended to
    T.eq(lines(r:path("run.log")), { "first", "second" })
    T.raises(function() r:log_metrics(3) end, "run:log_metrics: expected a table like {step = 1, train_loss = 3.2}, got number")
    T.raises(function() r:log_metrics { step = 1, f = print } end, "run:log_metrics: json.encode: value.f is a function")
    r:close()
    T.raises(function() run.open { preset = "demo" } end, "run.open: recipe is required")
    T.raises(function() run.open { recipe = "x", run_dir = "" } end, "run.open: run_dir must be a directory path")
    local f = assert(io.open(root .. "/file", "wb"))
    f:close()
    T.raises(function() run.open { recipe = "x", run_dir = root .. "/file/sub", quiet = true } end,
      "run.open: cannot create the run directory " .. root .. "/file/sub")
    rm_rf(root)
  end,

  results_json_all_fields = function(T)
    local root = tmpdir()
    local r = run.open { recipe = "baseline", preset = "demo", run_dir = root .. "/run", quiet = true }
    local report = { verdict = "legal", targets = 117936, scored_once = 117936, scored_never = 0, scored_multiple = 0,
      trained_before_scored = 0, nll_rescaled = 0, nll_external = 0, duplicate_scorings = 0 }
    local path, written = r:write_results {
      seed = 1337, device = "cpu", world_size = 1, params = 17059912,
      train = { steps = 20, train_time_ms = 1234.5, step_avg_ms = 61.725, tokens = 163840 },
      eval = { pre_quant_bpb = 1.2345678901234567, roundtrip_bpb = 1.25 },
      artifact = { model_bytes = 15000000, code_bytes = 47686 },
      ledger = data.ledger_summary(report),
    }
    T.eq(path, root .. "/run/results.json")
    T.eq(exists(path .. ".tmp"), false)
    local text = slurp(path)
    T.eq(text, table.concat({
      '{',
      '  "recipe": "baseline",',
      '  "preset": "demo",',
      '  "seed": 1337,',
      '  "device": "cpu",',
      '  "world_size": 1,',
      '  "params": 17059912,',
      '  "train": {',
      '    "steps": 20,',
      '    "train_time_ms": 1234.5,',
      '    "step_avg_ms": 61.725,',
      '    "tokens": 163840',
      '  },',
      '  "eval": {',
      '    "pre_quant_bpb": 1.2345678901234567,',
      '    "roundtrip_bpb": 1.25,',
      '    "sliding_bpb": null,',
      '    "ttt_bpb": null,',
      '    "val_loss": null',
      '  },',
      '  "artifact": {',
      '    "model_bytes": 15000000,',
      '    "code_bytes": 47686,',
      '    "total_bytes": 15047686,',
      '    "limit": 16000000,',
      '    "fits": true',
      '  },',
      '  "ledger": {',
      '    "verdict": "legal",',
      '    "targets": 117936,',
      '    "scored_once": 117936,',
      '    "scored_never": 0,',
      '    "scored_multiple": 0,',
      '    "trained_before_scored": 0,',
      '    "nll_rescaled": 0,',
      '    "duplicate_scorings": 0,',
      '    "nll_external": 0',
      '  },',
      '  "run_dir": "' .. root .. '/run"',
      '}',
      '',
    }, "\n"))
    local back = run.read_results(path)
    T.eq(back.eval.pre_quant_bpb, 1.2345678901234567)
    T.eq(back.eval.ttt_bpb, json.null)
    T.eq(back.artifact.fits, true)
    T.eq(written.artifact.total_bytes, 15047686)
    -- rewriting replaces the file whole (no stale fields), and an over-limit artifact does not fit
    r:write_results { artifact = { model_bytes = 16000000, code_bytes = 1, limit = 16000000 }, seed = 7.0 }
    back = run.read_results(path)
    T.eq({ back.seed, back.artifact.total_bytes, back.artifact.fits, back.train.steps, back.ledger.verdict },
      { 7, 16000001, false, json.null, json.null })
    T.eq(math.type(back.seed), "integer")
    r:close()
    rm_rf(root)
  end,

  results_json_type_errors = function(T)
    local root = tmpdir()
    local r = run.open { recipe = "baseline", preset = "demo", run_dir = root, quiet = true }
    T.raises(function() r:write_results { seed = 1.5 } end,
      "run:write_results: results.json: seed must be an integer, got 1.5 (a number)")
    T.raises(function() r:write_results { train = { steps = "ten" } } end,
      'results.json: train.steps must be an integer, got "ten" (a string)')
    T.raises(function() r:write_results { eval = 1.2 } end, "results.json: eval must be a table, got 1.2 (a number)")
    T.raises(function() r:write_results { eval = { sliding_bpb = "1.1" } } end,
      'results.json: eval.sliding_bpb must be a number, got "1.1" (a string)')
    T.raises(function() r:write_results { artifact = { fits = 1 } } end, "results.json: artifact.fits must be true or false")
    T.raises(function() r:write_results { ledger = { verdict = "ok" } } end,
      'results.json: ledger.verdict must be "legal" or "illegal", got "ok" (a string)')
    T.raises(function() r:write_results { recipe = 3 } end, "results.json: recipe must be a string, got 3 (a number)")
    T.raises(function() r:write_results(5) end, "run:write_results: expected a table of results, got number")
    T.eq(exists(root .. "/results.json"), false) -- nothing written on error
    -- NaN (nothing scored) is written as null
    r:write_results { eval = { val_loss = 0 / 0 } }
    T.eq(run.read_results(root .. "/results.json").eval.val_loss, json.null)
    r:close()
    rm_rf(root)
  end,

  log_bpb_prints_the_verdict = function(T)
    local root = tmpdir()
    local r = run.open { recipe = "baseline", preset = "demo", run_dir = root, quiet = true }
    local tok = data.tokenizer(data.paths().tokenizer)
    local led = data.ledger(data.tokens { 1, 5, 6, 7 }, tok, { legal = false })
    local pt = require "proteus"
    led:score({ 1, 2, 3 }, pt.zeros({ 3, 8 }))
    led:score({ 3 }, pt.zeros({ 1, 8 }))
    local line = r:log_bpb(led:report(), "final")
    T.eq(line, string.format("final val_loss:%.8f val_bpb:%.8f [ledger ILLEGAL: 3 targets, 2 scored once, 0 never, "
      .. "1 more than once, 0 trained before scored, 0 rescaled]", math.log(8), led:report().bpb))
    T.eq(lines(root .. "/run.log"), { line })
    r:close()
    rm_rf(root)
  end,
}
