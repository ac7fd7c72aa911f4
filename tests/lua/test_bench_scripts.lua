--- tests/lua/test_bench_scripts.lua — the GPU benchmark's scripts, proven on the CPU (issue 11):
--- bench/flops.lua's FLOP counts, peaks, attention-output parser and results table; bench/ttt_eval.lua's
--- CPU check mode; bench/gpu_bench.sh --device cpu --small end to
--- end (training step, LoRA TTT evaluation, attention, the table).
--
--   build/proteus tests/run.lua tests/lua/test_bench_scripts.lua [--match table]
--
-- The PyTorch sides run when PROTEUS_TEST_PYTHON (default /usr/bin/python3, Debian's python3-torch)
-- imports torch; otherwise the end-to-end test runs with TORCH=0 and checks that the PyTorch cells
-- say "not measured (...)" (the reason is printed). With torch, the LoRA TTT losses of the two sides
-- must agree (same documents, weights and LoRA init, both f32): the PyTorch loop is checked against
-- ttt.lua. Timings are printed, never asserted. About 10–20 s on 2 busy cores.
local json = require "proteus.json"
local testing = require "proteus.testing"

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local root = here .. "../../"
local flops = dofile(root .. "bench/flops.lua")
local G = dofile(here .. "gpt_configs.lua")
local q = testing.shell_quote
local PY = os.getenv("PROTEUS_TEST_PYTHON") or "/usr/bin/python3"

local function nn_cfg(name, extra)
  local nn = require "proteus.nn"
  return nn.gpt_config(G.with(G.configs[name], extra))
end

local function run(cmd)
  local f = assert(io.popen(cmd .. " 2>&1"))
  local out = f:read("a")
  local ok, _, code = f:close()
  return out, ok, code
end

local torch_checked, torch_ok, torch_why = false, false, nil
local function have_torch()
  if not torch_checked then
    torch_checked = true
    local out, ok = run(PY .. " -c 'import torch; print(torch.__version__)'")
    torch_ok = ok
    torch_why = ok and nil or (PY .. " cannot import torch: " .. out:gsub("%s+$", ""):sub(-120))
  end
  return torch_ok, torch_why
end

local function read(path)
  local f = assert(io.open(path, "r"), "cannot open " .. path)
  local s = f:read("a")
  f:close()
  return s
end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. q(p)))
  return p
end

local tests = {}

-- the v9 training step: W = 11·(2·512² + 2·256·512 + 2·1536·512) + 1024·512 + 512·128 = 26,542,080
-- weights per token; B = 96, T = 1024: 6·W·B·T + 6·11·96·1024²·512 = 1.906e13 (docs/gpu.md's number)
tests[#tests + 1] = { "flops_train_step_v9", function(T)
  local c = nn_cfg("proteus_v9")
  T.eq(flops.matmul_weights(c), 26542080)
  local want = 6.0 * 26542080 * 96 * 1024 + 6.0 * 11 * 96 * 1024 * 1024 * 512
  T.eq(flops.train_step(c, 96, 1024), want)
  T.near(flops.train_step(c, 96, 1024) / 1e13, 1.9056, 1e-3)
  -- LoRA weights per token and document: 11·(2·8·512 + 8·512 + 256·8) + 8·(512 + 1024) = 169,984 (spec §3.7)
  T.eq(flops.lora_weights(c, 8, 8), 169984)
  T.raises(function() flops.train_step(nn_cfg("pr598"), 1, 8) end, "value embeddings")
end }

-- lora_eval's batching replayed by hand: chunk 4, window 8, batch 2, short < 6
tests[#tests + 1] = { "flops_ttt_plan", function(T)
  local S = { chunk_size = 4, eval_seq_len = 8, batch_docs = 2, short_doc_len = 6, lora_rank = 2, head_rank = 2 }
  -- lengths (incl. next BOS): 3 short (P = 2), 14 (P 13, nc 4), 6 (P 5, nc 2), 10 (P 9, nc 3), 1 (dropped)
  local p = flops.ttt_plan({ 3, 14, 6, 10, 1 }, S)
  T.eq(p.short, { 2 })
  T.eq({ p.short_docs, p.long_docs, p.batches }, { 1, 3, 2 })
  -- sorted by nc: P5 (nc 2), P9 (nc 3) | P13 (nc 4)
  -- batch 1: c0 rows 2 w4 train, c1 rows 2 w8 train, c2 rows 1 w8 (P9's last chunk, no train)
  -- batch 2: c0..c2 rows 1 (widths 4, 8, 8) train, c3 rows 1 w8 no train
  local got = {}
  for _, s in ipairs(p.steps) do got[#got + 1] = { s.rows, s.width, s.train } end
  T.eq(got, { { 2, 4, true }, { 2, 8, true }, { 1, 8, false }, { 1, 4, true }, { 1, 8, true }, { 1, 8, true },
    { 1, 8, false } })
  T.eq(p.train_steps, 5)
  T.eq(p.scored, 2 + 5 + 9 + 13)
  -- trained: every chunk but each document's last: P5: 4; P9: 8; P13: 12
  T.eq(p.trained, 4 + 8 + 12)
  local c = nn_cfg("proteus_v9", flops.small_overrides)
  local W, Wl = flops.matmul_weights(c), flops.lora_weights(c, 2, 2)
  local d, L = c.model_dim, c.num_layers
  local want = 2.0 * W * 2 + 2.0 * L * 4 * d -- the short document
  for _, s in ipairs(p.steps) do
    want = want + 2.0 * (W + Wl) * s.rows * s.width + 2.0 * L * s.rows * s.width ^ 2 * d
    if s.train then want = want + 2.0 * W * s.rows * s.width + 4.0 * Wl * s.rows * s.width + 4.0 * L * s.rows * s.width ^ 2 * d end
  end
  T.near(flops.ttt_eval(c, p, S), want, want * 1e-12)
end }

tests[#tests + 1] = { "flops_peaks", function(T)
  T.eq((flops.peak("NVIDIA H100 80GB HBM3")), 989)
  T.eq((flops.peak("NVIDIA H200")), 989)
  T.eq((flops.peak("NVIDIA H100 PCIe")), 756)
  T.eq((flops.peak("NVIDIA A100-SXM4-80GB")), 312)
  T.eq((flops.peak("NVIDIA H200 NVL")), nil)
  local v, why = flops.peak("cpu")
  T.eq(v, nil)
  assert(why:find("peak_tflops", 1, true), why)
  T.eq((flops.peak("cpu", "500")), 500)
  T.eq((flops.peak("NVIDIA H200", "auto")), 989)
  T.raises(function() flops.peak("x", "fast") end, "positive number")
end }

-- bench/gpu_attention.lua's output format (simple=0 leaves the simple column "-")
local ATTN_OUT = [[
attention bf16, B=8 H=8 Hkv=4 D=64, NVIDIA H100 80GB HBM3, median of 10 (warmup 3)
     T  pass        simple ms      flash ms     ratio  flash TFLOP/s
  1024  fwd                 -         0.200         -         85.9
  1024  fwdbwd              -         0.700         -         85.9
  2048  fwd                 -         0.600         -        114.5
  2048  fwdbwd              -         2.000         -        120.3
]]

tests[#tests + 1] = { "flops_parse_gpu_attention", function(T)
  local a = assert(flops.parse_gpu_attention(ATTN_OUT, 2048, "fwdbwd"))
  T.eq({ a.ms, a.B, a.H, a.Hkv, a.D }, { 2.0, 8, 8, 4, 64 })
  local n, why = flops.parse_gpu_attention("gpu_attention: needs a CUDA device: none", 2048, "fwdbwd")
  T.eq(n, nil)
  assert(why:find("needs a CUDA device", 1, true), why)
end }

-- the table from hand-made results: numbers where both sides ran, "not measured (why)" elsewhere
tests[#tests + 1] = { "flops_results_table", function(T)
  local step = { B = 96, T = 1024, step = "train", config = "proteus_v9", params = 26829913, flops_per_step = 1.9e13,
    proteus = { median_s = 0.2, dtype = "f32", times = { 0.2 } },
    pytorch = { median = 0.1, setup_line = "PyTorch 2.x (bf16 autocast)" } }
  local ttt = { tokens_per_round = 100000, flops_per_round = 1e13, settings = { batch_docs = 64, chunk_size = 256,
    eval_seq_len = 1024, lora_rank = 8, lr = 0.01 }, plan = { long_docs = 64, short_docs = 32, steps = 9, train_steps = 8 },
    proteus = { error = "did not finish (killed, timed out or failed: see its log)" },
    pytorch = { median = 0.5, setup_line = "PyTorch 2.x" } }
  local text = flops.results_table { step = step, ttt = ttt, attn = ATTN_OUT, attn_torch_why = "PyTorch not found: x",
    device = "NVIDIA H100 80GB HBM3", date = "2026-12-05 10:00Z", peak_tflops = "auto" }
  print(text)
  local rows = {}
  for line in text:gmatch("[^\n]+") do
    if line:match("^| [tLa]") and not line:match("^| workload") then rows[#rows + 1] = line end
  end
  T.eq(#rows, 3)
  assert(text:find("989 TFLOP/s (H100 SXM", 1, true), "peak named")
  -- train: 98,304 tokens / 0.2 s = 491,520 tok/s; PyTorch 983,040; ratio 0.5; MFU 1.9e13/0.2/989e12 = 9.6 %
  assert(rows[1]:find("| 200.00 | 491,520 | 100.00 | 983,040 | 0.500 | 9.6% (95 TFLOP/s) | 19.2% (190 TFLOP/s) |",
    1, true), rows[1])
  assert(rows[2]:find("not measured (did not finish", 1, true), rows[2])
  assert(rows[2]:find("| 500.00 | 200,000 | — |", 1, true), rows[2])
  -- attention: proteus 2.0 ms from the parsed output; PyTorch missing with its reason
  assert(rows[3]:find("(B=8, H=8/4, T=2048, D=64) | 2.00 | 8,192,000 | not measured (PyTorch not found: x)", 1, true),
    rows[3])
  local none = flops.results_table { step_why = "timed out after 90 s", ttt_why = "not run: bench time limit spent",
    attn_why = "CPU run", attn_torch_why = "TORCH=0", device = "cpu" }
  assert(none:find("| train step | not measured (timed out after 90 s) | — | not measured (timed out after 90 s)", 1, true),
    none)
  assert(none:find("no peak", 1, true), none)
end }

-- bench/ttt_eval.lua small: ttt.lora_eval timed over 1 warm-up + 2 rounds of the same documents; every
-- round legal, the same loss (same documents, same LoRA init), its counts checked against flops.ttt_plan
tests[#tests + 1] = { "ttt_eval_small", function(T)
  local bin = testing.proteus_bin("test_bench_scripts")
  local dir = tmpdir()
  local js = dir .. "/ttt.json"
  local out, ok = run(string.format("cd %s && %s bench/ttt_eval.lua small=1 torch=0 json=%s", q(root), q(bin), q(js)))
  if not ok then error("ttt_eval.lua failed:\n" .. out) end
  assert(out:find("| proteus f32 weights, f32 compute (ttt.lora_eval)", 1, true), out)
  local res = json.decode(read(js))
  os.execute("rm -rf " .. q(dir))
  local a = res.proteus.rounds
  T.eq(#a, 3)
  for k = 1, 3 do
    T.eq(a[k].verdict, "legal")
    T.eq(a[k].steps, a[1].steps)
    assert(a[k].loss > 0 and a[k].loss < 20, "round " .. k .. " loss " .. tostring(a[k].loss))
  end
  T.eq(res.pytorch.error, "torch=0")
  T.eq(res.plan.steps, 11)
end }

-- bench/gpu_bench.sh --device cpu --small: every CPU part, and the table
tests[#tests + 1] = { "gpu_bench_cpu_small", function(T)
  local bin = testing.proteus_bin("test_bench_scripts")
  local bdir = bin:match("^(.*)/[^/]*$")
  if not bdir then T.skip("the proteus binary '" .. bin .. "' has no directory (set PROTEUS_BIN to a path)") end
  local tok, why = have_torch()
  if not tok then print("  PyTorch parts skipped: " .. why) end
  local dir = tmpdir()
  local out, ok, code = run(string.format("cd %s && BENCH_OUT=%s TORCH=%s PROTEUS_TEST_PYTHON=%s bash bench/gpu_bench.sh --device cpu --small %s",
    q(root), q(dir), tok and "1" or "0", q(PY), q(bdir)))
  if not ok then
    os.execute("rm -rf " .. q(dir))
    error("gpu_bench.sh --device cpu --small failed (exit " .. tostring(code) .. "):\n" .. out)
  end
  local tbl = read(dir .. "/table.md")
  local step = json.decode(read(dir .. "/step.json"))
  local ttt = json.decode(read(dir .. "/ttt.json"))
  os.execute("rm -rf " .. q(dir))
  print(tbl)
  local rows = {}
  for line in tbl:gmatch("[^\n]+") do
    if line:match("^| [tLa]") and not line:match("^| workload") then rows[#rows + 1] = line end
  end
  T.eq(#rows, 3)
  assert(rows[1]:match("^| train step %(B=2, T=64%) | [%d.]+ | [%d,]+ | "), rows[1])
  assert(rows[2]:match("^| LoRA TTT eval %(10 docs/round, batch 4, chunk 32, window 64%) | [%d.]+ | [%d,]+ | "), rows[2])
  assert(rows[3]:find("not measured (CPU run: bench/gpu_attention.lua needs a CUDA device)", 1, true), rows[3])
  T.eq(step.small, true)
  T.eq(ttt.small, true)
  if tok then
    -- both sides measured: numbers in the PyTorch cells and a ratio
    assert(rows[1]:match("^| [^|]+ | [%d.]+ | [%d,]+ | [%d.]+ | [%d,]+ | [%d.]+ |"), rows[1])
    assert(rows[2]:match("^| [^|]+ | [%d.]+ | [%d,]+ | [%d.]+ | [%d,]+ | [%d.]+ |"), rows[2])
    assert(rows[3]:match("| [%d.]+ | [%d,]+ | — |"), rows[3])
    -- the PyTorch TTT loop against ttt.lua: same documents, weights, LoRA init, f32 on both sides
    assert(ttt.loss_rel_diff < 1e-5, "TTT losses differ: " .. tostring(ttt.loss_rel_diff))
    T.near(step.pytorch.first_loss, step.proteus.first_loss, 1e-5 * step.proteus.first_loss, "first-step loss")
  else
    for i = 1, 3 do assert(rows[i]:find("not measured (TORCH=0)", 1, true), rows[i]) end
  end
end }

return tests
