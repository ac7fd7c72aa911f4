--- tests/lua/test_gpt_parity.lua — nn.GPT against the PyTorch reference written from the spec.
--
--   build/proteus tests/run.lua tests/lua/test_gpt_parity.lua [--match parity_pr598]
--
-- For every config of tests/lua/gpt_configs.lua (baseline, PROTEUS v9 with and without XSA, #1539 with
-- recurrence off and on, #598) and three variants (sigmoid skips, and NTK RoPE scaling, which the full
-- configs do not reach at T = 128; the baseline at T = 1100 > 1024, where it must NOT scale): build the
-- model with nn.GPT at full size (pt.manual_seed per test), move every parameter off its init
-- (p += 0.05·N(0,1), so the zero-initialised projections and the BigramHash table carry gradient),
-- save the weights with proteus.safetensors, draw tokens x, y [2, 128], and run tests/reference/gpt_ref.py
-- (Debian's /usr/bin/python3 with torch, f32, CPU) on the same files. The reference refuses weights
-- whose names or shapes differ from the spec's state dict, so a pass also
-- means nn.lua's names and shapes are the spec's. Asserted: the loss (relative difference < 1e-5) and
-- every parameter's gradient (relative Frobenius error ‖g − g_ref‖/‖g_ref‖ < 1e-4 per tensor).
-- Also runs the reference's self-test (gpt_ref.py --selftest) and param_counts.py.
-- Skipped, with the reason, when /usr/bin/python3 cannot import torch (PROTEUS_TEST_PYTHON names
-- another interpreter). Takes about 4 minutes on 2 cores (full-size models, PyTorch start-up).
local pt = require "proteus"
local nn = require "proteus.nn"
local st = require "proteus.safetensors"

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local G = dofile(here .. "gpt_configs.lua")
local root = here .. "../../"
local PY = os.getenv("PROTEUS_TEST_PYTHON") or "/usr/bin/python3" -- Debian's, with python3-torch
local REF = root .. "tests/reference/gpt_ref.py"

local B, TT = 2, 128
local LOSS_TOL, GRAD_TOL = 1e-5, 1e-4

local torch_ok, torch_why
local function need_torch(T)
  if torch_ok == nil then
    local f = io.popen(PY .. " -c 'import torch; print(torch.__version__)' 2>&1")
    local out = f:read("a")
    local ok = f:close()
    torch_ok = ok and true or false
    torch_why = out:gsub("%s+$", ""):match("([^\n]*)$") -- the last line: the ImportError
  end
  if not torch_ok then
    T.skip(PY .. " cannot import torch (" .. torch_why:sub(-120) .. "); install Debian's python3-torch")
  end
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- JSON for the --set overrides (numbers, booleans, strings, lists)
local function json(v)
  local t = type(v)
  if t == "boolean" then return v and "true" or "false" end
  if t == "number" then
    if math.type(v) == "integer" then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if t == "string" then return string.format("%q", v) end
  if t == "table" then
    local parts = {}
    for i = 1, #v do parts[i] = json(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  error("test_gpt_parity: cannot write a " .. t .. " as JSON")
end

local function tmpbase()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local function tokens(vocab, seed, B, TT)
  math.randomseed(seed)
  local xs, ys = {}, {}
  for b = 1, B do
    local row = {}
    for t = 1, TT + 1 do row[t] = math.random(0, vocab - 1) end
    xs[b], ys[b] = {}, {}
    for t = 1, TT do
      xs[b][t] = row[t]
      ys[b][t] = row[t + 1]
    end
  end
  return pt.tensor(xs, "i64"), pt.tensor(ys, "i64")
end

local rel_err = require("proteus.testing").rel -- ‖a − b‖ / ‖b‖ in f64

-- Runs one parity check: config `name` plus `overrides` (given to both sides); opts: seed, B, T.
local function parity(T, name, overrides, opts)
  opts = opts or {}
  need_torch(T)
  local cfg = G.with(G.configs[name], overrides)
  if pt.manual_seed then pt.manual_seed(opts.seed or 1234) end
  local model = nn.GPT(cfg)
  local vocab = model.cfg.vocab_size
  pt.no_grad(function()
    for _, p in model:named_parameters() do
      p:add_(pt.randn(p:shape()) * 0.05)
    end
  end)
  local x, y = tokens(vocab, opts.seed or 1234, opts.B or B, opts.T or TT)
  local base = tmpbase()
  local wpath, tpath, gpath = base .. "-w.safetensors", base .. "-t.safetensors", base .. "-g.safetensors"
  local ok, err = pcall(function()
    local weights = {}
    for n, p in model:named_parameters() do weights[n] = p:detach() end
    st.save(wpath, weights)
    st.save(tpath, { x = x, y = y })
    local sets = {}
    for k, v in pairs(overrides or {}) do sets[#sets + 1] = "--set " .. shell_quote(k .. "=" .. json(v)) end
    table.sort(sets)
    local cmd = table.concat({ PY, shell_quote(REF), "--config", name, table.concat(sets, " "),
      "--weights", shell_quote(wpath), "--tokens", shell_quote(tpath), "--grads", shell_quote(gpath),
      "--quiet", "2>&1" }, " ")
    local f = io.popen(cmd)
    local out = f:read("a")
    local rc_ok, _, code = f:close()
    assert(rc_ok, string.format("reference failed (exit %s): %s\n%s", tostring(code), cmd, out))

    local loss = model:forward(x, y)
    loss:backward()
    local ref, meta = st.load(gpath)
    local ref_loss = tonumber(meta.loss)
    assert(ref_loss, "reference gradients file has no loss in its metadata: " .. gpath)
    local l = loss:item()
    local lrel = math.abs(l - ref_loss) / math.abs(ref_loss)

    local worst, worst_name, bad = 0, "-", {}
    local n_seen = 0
    for n, p in model:named_parameters() do
      n_seen = n_seen + 1
      local r = ref[n]
      assert(r, "the reference wrote no gradient for " .. n)
      T.eq(p:shape(), r:shape(), "gradient shape of " .. n)
      local g = p.grad
      local e
      if g == nil then
        e = r:norm():item() == 0 and 0 or math.huge
      else
        e = rel_err(g:to("f32"), r:to("f32"))
      end
      if e > worst then worst, worst_name = e, n end
      if not (e < GRAD_TOL) then bad[#bad + 1] = string.format("%s (rel %.3g)", n, e) end
    end
    local n_ref = 0
    for _ in pairs(ref) do n_ref = n_ref + 1 end
    T.eq(n_ref, n_seen, "number of gradient tensors (reference vs proteus)")
    print(string.format("    %-15s loss %.7f ref %.7f (rel %.2g); %d grads, worst rel %.2g (%s)",
      name, l, ref_loss, lrel, n_seen, worst, worst_name))
    assert(lrel < LOSS_TOL, string.format("%s: loss %.9g vs reference %.9g, relative difference %.3g >= %g",
      name, l, ref_loss, lrel, LOSS_TOL))
    assert(#bad == 0, string.format("%s: %d gradients differ from the reference by >= %g: %s",
      name, #bad, GRAD_TOL, table.concat(bad, ", ")))
  end)
  os.remove(wpath)
  os.remove(tpath)
  os.remove(gpath)
  if not ok then error(err, 0) end
end

local tests = {}

tests[#tests + 1] = { "configs_match_python", function(T)
  -- the reference's configs.py and gpt_configs.lua must be the same tables
  local f = io.popen(PY .. " " .. shell_quote(root .. "tests/reference/configs.py") .. " --lua 2>&1")
  local src = f:read("a")
  local ok, _, code = f:close()
  if not ok then
    if code == 127 then T.skip(PY .. " is not installed") end
    error("configs.py --lua failed (exit " .. tostring(code) .. "): " .. src)
  end
  local py = assert(load(src, "=configs.py --lua", "t", {}))()
  T.eq(py, G.configs, "configs.py vs gpt_configs.lua")
end }

-- the reference's own checks of its building blocks against the spec (RoPE convention and NTK bases,
-- XSA, GQA, BigramHash, SmearGate, depth scale, virtual layers) and its parameter counts
tests[#tests + 1] = { "reference_selftest", function(T)
  need_torch(T)
  for _, script in ipairs { "gpt_ref.py --selftest", "param_counts.py" } do
    local f = io.popen(PY .. " " .. root .. "tests/reference/" .. script .. " 2>&1")
    local out = f:read("a")
    local ok, _, code = f:close()
    assert(ok, string.format("%s failed (exit %s):\n%s", script, tostring(code), out))
    assert(not out:find("FAIL", 1, true) and not out:find("MISMATCH", 1, true), script .. ":\n" .. out)
  end
end }

for _, name in ipairs(G.names) do
  tests[#tests + 1] = { "parity_" .. name, function(T) parity(T, name) end }
end

-- #1539 with SIGMOID_SKIPS=1 (σ(w) skips), NTK RoPE on 16 dims active at T = 128 (train length 64),
-- recurrence on; the 1024 vocabulary keeps it quick.
tests[#tests + 1] = { "parity_variant_sigmoid_skips_ntk", function(T)
  parity(T, "pr1539_recur", { skip_mode = "sigmoid", rope_train_seq_len = 64, vocab_size = 1024 }, { seed = 77 })
end }

-- PROTEUS with XSA and NTK RoPE on all 64 dims (base 50,000 scaled at T = 128 > 64).
tests[#tests + 1] = { "parity_variant_proteus_ntk", function(T)
  parity(T, "proteus_v9_xsa", { rope_train_seq_len = 64 }, { seed = 99 })
end }

-- The baseline has no NTK scaling (§2.2): at T = 1100 > 1024 RoPE must keep base 10,000 (two layers
-- keep the long sequence quick).
tests[#tests + 1] = { "parity_variant_baseline_long_no_ntk", function(T)
  parity(T, "baseline", { num_layers = 2 }, { seed = 5, B = 1, T = 1100 })
end }

return tests
