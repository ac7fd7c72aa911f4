-- tests/lua/test_examples.lua — every script in examples/ runs, as a user would run it
-- (build/proteus examples/NAME.lua ARGS, a child process, in a temporary working directory), and
-- prints what it promises. A new example without an entry here fails `every_example_is_tested`.
--
--   build/proteus tests/run.lua tests/lua/test_examples.lua [--match custom_op]
--
-- The binary is $PROTEUS_BIN, else the interpreter running this test (arg[-1]).
-- quickstart.lua is skipped unless PROTEUS_TEST_SLOW=1: it has steps= but no knob that shrinks its
-- evaluation over the whole validation stream (about 1.5 minutes on 2 cores even at steps=2);
-- scripts/demo.sh runs it in full. export_to_pytorch.lua's comparison needs Debian's python3-torch
-- (/usr/bin/python3); without it the example says so and the test skips with that line.
local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")

local testing = require "proteus.testing"
local q = testing.shell_quote
local function sh_line(cmd)
  local p = io.popen(cmd)
  local s = p:read("l")
  p:close()
  return s
end
local function abs(p)
  if p:sub(1, 1) == "/" then return p end
  return sh_line("pwd") .. "/" .. p
end
local root = abs(here .. "../..")
local function proteus_bin() return testing.proteus_bin("test_examples") end

-- runs `proteus [flags] examples/NAME.lua args` in a fresh temporary directory; returns ok, output, dir
local function example(name, args, opts)
  opts = opts or {}
  local dir = sh_line("mktemp -d /tmp/proteus_test_examples_XXXXXX")
  local cmd = string.format("cd %s && OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} %s %s %s %s 2>&1", q(dir),
    q(proteus_bin()), opts.flags or "", opts.stdin and "" or q(root .. "/examples/" .. name), args or "")
  if opts.stdin then cmd = cmd .. " < " .. q(root .. "/examples/" .. name) end
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok = p:close()
  return ok and true or false, out, dir
end
local function cleanup(dir) os.execute("rm -rf " .. q(dir)) end
local function has(out, s) assert(out:find(s, 1, true), "expected '" .. s .. "' in the output:\n" .. out) end

local tests = {}

tests.custom_op = function()
  local ok, out, dir = example("custom_op.lua")
  cleanup(dir)
  assert(ok, out)
  has(out, "gradcheck: gelu passes")
  has(out, "gradcheck: geglu(a, b) = gelu(a)·b passes for both inputs")
  has(out, " -0.0036 -0.1588 -0.1543  0.0000  0.1497  0.8412  2.4849")
end

tests.custom_schedule = function()
  local ok, out, dir = example("custom_schedule.lua", "steps=8 warmup=2 floor=0.1")
  cleanup(dir)
  assert(ok, out)
  has(out, "   1    0.5000")
  has(out, "   3    1.0000")
  -- step 8: cosine at t = 5 of total 6, floor 0.1: 0.1 + 0.9 (1 + cos(5π/6)) / 2
  has(out, string.format("   8  %8.4f", 0.1 + 0.9 * (1 + math.cos(5 * math.pi / 6)) / 2))
  has(out, "trained 8 steps")
  local bad = example("custom_schedule.lua", "stepz=3")
  assert(not bad)
end

tests.safetensors_export = function()
  local ok, out, dir = example("safetensors_export.lua", "out=w/model.safetensors")
  assert(ok, out)
  has(out, "saved 26 tensors (141961 parameters) to w/model.safetensors")
  has(out, "  tok_emb.weight               f32    [1024, 64]")
  has(out, "max |difference| = 0")
  local f = io.open(dir .. "/w/model.safetensors", "rb")
  assert(f, "no file written")
  local n = string.unpack("<I8", f:read(8))
  local header = f:read(n)
  f:close()
  assert(header:find('"tok_emb.weight":{"dtype":"F32","shape":[1024,64]', 1, true), header:sub(1, 300))
  cleanup(dir)
end

tests.export_to_pytorch = function(T)
  local ok, out, dir = example("export_to_pytorch.lua", "steps=2 dir=out")
  cleanup(dir)
  assert(ok, out)
  has(out, "exported out/model.safetensors (141961 parameters)")
  if out:find("PyTorch not available", 1, true) then T.skip(out:match("(PyTorch not available[^\n]*)")) end
  local a, b = out:match("proteus loss ([%d%.]+)%s+PyTorch loss ([%d%.]+)")
  assert(a and b, out)
  assert(math.abs(tonumber(a) - tonumber(b)) / tonumber(b) < 1e-5, out)
  has(out, "the model trained in proteus gives the same loss in PyTorch")
end

tests.evaluate_artifact = function()
  local ok, out, dir = example("evaluate_artifact.lua", "tokens=2048 dir=art")
  assert(ok, out)
  has(out, "wrote art/model.ptz: ")
  has(out, "art/model.ptz: recipe evaluate_artifact, 22 tensors")
  local pre = tonumber(out:match("the model before quantization: val_bpb ([%d%.]+)"))
  local post = tonumber(out:match("the artifact: val_bpb ([%d%.]+) over 2048 targets %(ledger legal%)"))
  assert(pre and post, out)
  assert(math.abs(pre - post) < 0.01, "int8 quantization moves the BPB by less than 0.01: " .. pre .. " vs " .. post)
  -- and the saved file on its own
  local h = io.popen(string.format("cd %s && %s %s artifact=art/model.ptz tokens=1024 2>&1", q(dir),
    q(proteus_bin()), q(root .. "/examples/evaluate_artifact.lua")))
  local out2 = h:read("a")
  assert(h:close(), out2)
  assert(out2:find("the artifact: val_bpb [%d%.]+ over 1024 targets"), out2)
  assert(not out2:find("wrote ", 1, true), "artifact= evaluates the given file without making one")
  cleanup(dir)
end

tests.repl_session_as_script = function()
  local ok, out, dir = example("repl_session.lua")
  cleanup(dir)
  assert(ok, out)
  has(out, "2\t3\tf32\tcpu")
  has(out, "  2.0000  4.0000\n  6.0000  8.0000")
  has(out, "proteus.functional.rms_norm: F.rms_norm(x, eps?, scale?) -> proteus.Tensor")
  has(out, "proteus.nn.GPT: nn.GPT(cfg) -> proteus.GPT")
  assert(out:match("params %d+  loss 6%.9"), out)
end

tests.repl_session_pasted = function()
  -- the same file fed line by line to the REPL: no line may fail
  local ok, out, dir = example("repl_session.lua", nil, { flags = "-i", stdin = true })
  cleanup(dir)
  assert(ok, out)
  assert(not out:find("stack traceback", 1, true) and not out:find("proteus:", 1, true), out)
  has(out, "  2.0000  4.0000\n  6.0000  8.0000")
  has(out, "proteus.nn.GPT: nn.GPT(cfg) -> proteus.GPT")
end

tests.hello = function()
  local ok, out, dir = example("hello.lua", "steps=2 name=test")
  cleanup(dir)
  assert(ok, out)
  has(out, "hello, test, from proteus")
  has(out, "step 2/2")
end

tests.quickstart = function(T)
  if os.getenv("PROTEUS_TEST_SLOW") ~= "1" then
    T.skip("quickstart.lua has no knob to shrink its evaluation (the whole validation stream, ~1.5 min on "
      .. "2 cores even at steps=2); set PROTEUS_TEST_SLOW=1 to run it, scripts/demo.sh runs it in full")
  end
  local ok, out, dir = example("quickstart.lua", "steps=2 log_every=1")
  assert(ok, out)
  has(out, "step:2/2 train_loss:")
  has(out, "[ledger LEGAL:")
  local rdir = out:match("results: (%S+)/results.json")
  assert(rdir, out)
  -- and the report of that run
  local rep = io.popen(string.format("cd %s && %s %s run=%s plot=false 2>&1", q(dir), q(proteus_bin()),
    q(root .. "/lua/recipes/report.lua"), q(rdir))):read("a")
  assert(rep:find("\nsteps%s+2\n"), rep)
  cleanup(dir)
end

tests.every_example_is_tested = function()
  local p = io.popen("ls " .. q(root .. "/examples"))
  local missing = {}
  for name in p:lines() do
    local key = name:match("^(.*)%.lua$")
    if key and not tests[key] and not tests[key .. "_as_script"] then missing[#missing + 1] = name end
  end
  p:close()
  assert(#missing == 0, "examples with no test in tests/lua/test_examples.lua: " .. table.concat(missing, ", "))
end

return tests
