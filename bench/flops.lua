--- bench/flops.lua — model FLOP counts, device peaks, model FLOP utilisation (MFU) and the results table
--- of the GPU benchmark (issue 11). A module for bench/gpt_step.lua and bench/ttt_eval.lua, and a
--- command that prints the table bench/gpu_bench.sh ends with:
--
--   local flops = dofile("bench/flops.lua")
--   flops.train_step(cfg, B, T)                    -- FLOPs of one training step (formula below)
--   flops.ttt_plan(doc_lens, settings)             -- the chunk steps ttt.lora_eval runs on those documents
--   flops.ttt_eval(cfg, plan, settings)            -- FLOPs of that LoRA TTT evaluation
--   flops.peak("NVIDIA H100 80GB HBM3", nil)       -- 989, "H100 SXM: bf16 dense, datasheet"
--
--   build/proteus bench/flops.lua table step=S.json ttt=T.json attn=A.log attn_torch=AT.json \
--       [device=NAME] [date=...] [peak_tflops=auto] [step_why=...] [ttt_why=...] [attn_why=...] [attn_torch_why=...]
--       [torch_why=...] [out=table.md]
--
-- cfg is an nn.GPT config (model.cfg: model_dim, num_layers, num_heads, num_kv_heads, head_dim,
-- mlp_hidden, vocab_size, bigram_vocab_size, bigram_dim). Counted (multiply-add = 2 FLOPs), as in
-- the usual "model FLOPs" convention: the matmuls only (no norms, softmax, elementwise, embedding
-- look-ups, optimizer), nothing recomputed counted twice.
--   W = weights per token in matmuls = L·(2d² + 2·kvd·d + 2·hid·d) + V·d (tied LM head) + d·bigram_dim
--   training step (B sequences of T):   6·W·B·T  +  6·L·B·T²·d
--     (forward 2·W per token, backward 4·W; causal attention: QKᵀ and PV over the causal half,
--      2·T²·d per sequence and layer forward, twice that backward)
--   LoRA TTT evaluation (spec §3.7), per chunk step of R documents in a window of width Wc (padded, as
--   computed), Wl = LoRA weights per token = L·(r·d + d·r + r·d + kvd·r) + rh·(d + V):
--     forward (scoring, and the training forward):       2·(W + Wl)·R·Wc + 2·L·R·Wc²·d
--     backward (chunks that train; base weights frozen: input gradients of every matmul, both
--     gradients of the LoRA matmuls):                   2·W·R·Wc + 4·Wl·R·Wc + 4·L·R·Wc²·d
--     a short document of P predictions (base model, one forward): 2·W·P + 2·L·P²·d
--   attention alone (B, H heads, T, D), FlashAttention-2's convention: forward 4·B·H·T²·D / 2,
--     forward+backward 3.5× that (bench/gpu_attention.lua counts the same)
-- MFU = FLOPs / seconds / peak. Peaks: bf16 dense tensor-core datasheet values (see PEAKS); the
-- device name selects one, `peak_tflops=` overrides; an unknown device gets no MFU (it says why).
local M = {}

--- The config overrides of the benches' CPU check mode (small=1): PROTEUS v9's architecture (BigramHash,
--  SmearGate, depth scale, U-Net skips, GQA) shrunk to 2 layers of width 64; the vocabulary stays 1024.
M.small_overrides = { num_layers = 2, model_dim = 64, num_heads = 4, num_kv_heads = 2, mlp_hidden = 128,
  bigram_vocab_size = 64, bigram_dim = 16 }

--- Datasheet bf16 dense peaks (TFLOP/s, no sparsity), matched against the CUDA device name in order.
M.PEAKS = {
  { pattern = "NVL", tflops = nil, what = "the NVL (PCIe, lower-power) variants are not in this table" },
  { pattern = "H200", tflops = 989, what = "H200: bf16 dense, datasheet (same SXM tensor cores as H100 SXM)" },
  { pattern = "H100 PCIe", tflops = 756, what = "H100 PCIe: bf16 dense, datasheet" },
  { pattern = "H100 80GB HBM3", tflops = 989, what = "H100 SXM: bf16 dense, datasheet" },
  { pattern = "H100 SXM", tflops = 989, what = "H100 SXM: bf16 dense, datasheet" },
  { pattern = "A100", tflops = 312, what = "A100: bf16 dense, datasheet" },
}

--- The peak (TFLOP/s) for a device name, or the override (a number or numeric string; "auto" or nil
--  = by name). Returns tflops, note; or nil, reason.
function M.peak(device_name, override)
  if override ~= nil and override ~= "" and override ~= "auto" then
    local v = tonumber(override)
    if not v or v <= 0 then
      error("flops.peak: peak_tflops must be a positive number or 'auto', got '" .. tostring(override) .. "'", 2)
    end
    return v, string.format("%g TFLOP/s (peak_tflops= given)", v)
  end
  local name = tostring(device_name or "")
  for _, p in ipairs(M.PEAKS) do
    if name:find(p.pattern, 1, true) then
      if not p.tflops then return nil, string.format("no bf16 peak for device '%s': %s (pass peak_tflops=N)", name, p.what) end
      return p.tflops, string.format("%g TFLOP/s (%s)", p.tflops, p.what)
    end
  end
  return nil, string.format("no bf16 peak known for device '%s' (pass peak_tflops=N)", name)
end

local function dims(cfg)
  if (cfg.ve_dim or 0) > 0 or cfg.recurrence or cfg.parallel_start then
    error("flops: this config has value embeddings, recurrence or parallel lanes, which the counts here do "
      .. "not cover (they cover PROTEUS v9-style models)", 3)
  end
  local d, L, V = cfg.model_dim, cfg.num_layers, cfg.vocab_size
  local hd = cfg.head_dim or d // cfg.num_heads
  local kvd = cfg.num_kv_heads * hd
  local hid = cfg.mlp_hidden or math.floor(cfg.mlp_mult * d)
  return d, L, V, kvd, hid
end

--- Weights per token that go through a matmul (forward: 2 FLOPs each).
function M.matmul_weights(cfg)
  local d, L, V, kvd, hid = dims(cfg)
  local w = L * (2 * d * d + 2 * kvd * d + 2 * hid * d) + V * d
  if (cfg.bigram_vocab_size or 0) > 0 then w = w + d * cfg.bigram_dim end
  return w
end

--- LoRA weights per token per document (spec §3.7: Q and V adapters per block, the LM head adapter).
function M.lora_weights(cfg, rank, head_rank)
  local d, L, V, kvd = dims(cfg)
  return L * (2 * rank * d + rank * d + kvd * rank) + head_rank * (d + V)
end

M.TRAIN_FORMULA = "6·W·B·T + 6·L·B·T²·d (W = matmul weights per token incl. the tied head)"
M.TTT_FORMULA = "per chunk step of R docs × width Wc: fwd 2(W+Wl)·R·Wc + 2L·R·Wc²·d, "
  .. "training bwd 2W·R·Wc + 4Wl·R·Wc + 4L·R·Wc²·d; short doc: 2W·P + 2L·P²·d"
M.ATTN_FORMULA = "fwd 2·B·H·T²·D, fwd+bwd 3.5× (FlashAttention-2 convention)"

--- FLOPs of one training step of B sequences of length T.
function M.train_step(cfg, B, T)
  local d, L = dims(cfg)
  return 6.0 * M.matmul_weights(cfg) * B * T + 6.0 * L * B * T * T * d
end

--- The work of ttt.lora_eval (one epoch, one rank) on documents of the given data.docs lengths
--  (each includes the next document's BOS), replicating its batching: documents shorter than
--  short_doc_len take the short path (one base-model forward of P = len − 1 predictions); the others
--  sorted by chunk count nc = (len − 2) // chunk + 1 (stable), in batches of batch_docs; per batch
--  and chunk index c < max nc: the R documents with nc > c, window width min((c+1)·chunk, window),
--  a training step when the batch's last document has a chunk after c.
--  settings: chunk_size, eval_seq_len, batch_docs, short_doc_len, min_doc_len (2).
--  Returns {short = {P...}, steps = {{rows, width, train}...}, batches, train_steps, scored, trained,
--  short_tokens, long_tokens, long_docs, short_docs}.
function M.ttt_plan(doc_lens, s)
  local C, W, nb = s.chunk_size, s.eval_seq_len, s.batch_docs
  local short_len, min_len = s.short_doc_len, s.min_doc_len or 2
  local plan = { short = {}, steps = {}, batches = 0, train_steps = 0, scored = 0, trained = 0, short_tokens = 0,
    long_tokens = 0, long_docs = 0, short_docs = 0 }
  local long = {}
  for i, len in ipairs(doc_lens) do
    if len >= min_len then
      if len < short_len then
        plan.short[#plan.short + 1] = len - 1
        plan.short_tokens = plan.short_tokens + len - 1
      else
        long[#long + 1] = { P = len - 1, nc = (len - 2) // C + 1, order = i }
      end
    end
  end
  table.sort(long, function(a, b)
    if a.nc ~= b.nc then return a.nc < b.nc end
    return a.order < b.order
  end)
  plan.short_docs, plan.long_docs = #plan.short, #long
  plan.scored = plan.short_tokens
  for first = 1, #long, nb do
    local last = math.min(first + nb - 1, #long)
    plan.batches = plan.batches + 1
    local max_nc = long[last].nc
    for c = 0, max_nc - 1 do
      local rows, scored, trained = 0, 0, 0
      for k = first, last do
        local d = long[k]
        if d.nc > c then
          rows = rows + 1
          local n = math.min(c * C + C, d.P) - c * C
          scored = scored + n
          if c < d.nc - 1 then trained = trained + n end
        end
      end
      local train = max_nc - 1 > c
      plan.steps[#plan.steps + 1] = { rows = rows, width = math.min((c + 1) * C, W), train = train }
      plan.scored, plan.trained = plan.scored + scored, plan.trained + trained
      plan.long_tokens = plan.long_tokens + scored
      if train then plan.train_steps = plan.train_steps + 1 end
    end
  end
  return plan
end

--- FLOPs of a ttt_plan (settings: lora_rank, head_rank).
function M.ttt_eval(cfg, plan, s)
  local d, L = dims(cfg)
  local w = M.matmul_weights(cfg)
  local wl = M.lora_weights(cfg, s.lora_rank, s.head_rank or s.lora_rank)
  local f = 0.0
  for _, P in ipairs(plan.short) do f = f + 2.0 * w * P + 2.0 * L * P * P * d end
  for _, st in ipairs(plan.steps) do
    local R, Wc = st.rows, st.width
    f = f + 2.0 * (w + wl) * R * Wc + 2.0 * L * R * Wc * Wc * d
    if st.train then f = f + 2.0 * w * R * Wc + 4.0 * wl * R * Wc + 4.0 * L * R * Wc * Wc * d end
  end
  return f
end

--- FLOPs of causal attention (pass "fwd" or "fwdbwd").
function M.attention(B, H, T, D, pass)
  local f = 2.0 * B * H * T * T * D
  return pass == "fwd" and f or 3.5 * f
end

-- ---------------------------------------------------------------------------------------------
-- the results table
-- ---------------------------------------------------------------------------------------------

local function read_file(path)
  local f = path and io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Reads a bench JSON file; returns the table, or nil and why.
function M.read_json(path, why)
  if why and why ~= "" then return nil, why end
  if not path or path == "" then return nil, "not run" end
  local s = read_file(path)
  if not s or s:match("^%s*$") then return nil, "no result file (" .. path .. ")" end
  local json = require "proteus.json"
  local ok, v = pcall(json.decode, s)
  if not ok then return nil, "unreadable result file " .. path .. ": " .. tostring(v) end
  return v
end

--- The flash row of bench/gpu_attention.lua's output for (T, pass): ms, B, H, D; or nil, why.
function M.parse_gpu_attention(text, T, pass)
  if not text then return nil, "no output" end
  local B, H, Hkv, D = text:match("B=(%d+) H=(%d+) Hkv=(%d+) D=(%d+)")
  for line in text:gmatch("[^\n]+") do
    local t, p, rest = line:match("^%s*(%d+)%s+(%a+)%s+(.*)$")
    if t and tonumber(t) == T and p == pass then
      local _, flash = rest:match("^(%S+)%s+([%d%.]+)")
      if flash and B then
        return { ms = tonumber(flash), B = tonumber(B), H = tonumber(H), Hkv = tonumber(Hkv), D = tonumber(D) }
      end
    end
  end
  local last = text:gsub("%s+$", ""):match("([^\n]*)$") or ""
  return nil, string.format("no T=%d %s row in its output (last line: %s)", T, pass, last:sub(1, 160))
end

local function fmt_int(n)
  local s = string.format("%.0f", n)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end
M.fmt_int = fmt_int

local function cell_mfu(flops, sec, peak)
  if not flops or not sec then return "—" end
  local tf = flops / sec / 1e12
  if not peak then return string.format("n/a (%.3g TFLOP/s)", tf) end
  return string.format("%.1f%% (%.3g TFLOP/s)", 100 * tf / peak, tf)
end

-- one table row: r = {name, tokens, flops, p_sec, t_sec, p_why, t_why}
local function row(r, peak)
  local c = { r.name }
  if r.p_sec then
    c[#c + 1] = string.format("%.2f", r.p_sec * 1e3)
    c[#c + 1] = fmt_int(r.tokens / r.p_sec)
  else
    c[#c + 1] = "not measured (" .. (r.p_why or "?") .. ")"
    c[#c + 1] = "—"
  end
  if r.t_sec then
    c[#c + 1] = string.format("%.2f", r.t_sec * 1e3)
    c[#c + 1] = fmt_int(r.tokens / r.t_sec)
  else
    c[#c + 1] = "not measured (" .. (r.t_why or "?") .. ")"
    c[#c + 1] = "—"
  end
  c[#c + 1] = (r.p_sec and r.t_sec) and string.format("%.3f", r.t_sec / r.p_sec) or "—"
  c[#c + 1] = r.p_sec and cell_mfu(r.flops, r.p_sec, peak) or "—"
  c[#c + 1] = r.t_sec and cell_mfu(r.flops, r.t_sec, peak) or "—"
  return "| " .. table.concat(c, " | ") .. " |"
end

local function err_of(side, fallback)
  if type(side) == "table" and side.error then return tostring(side.error) end
  return fallback
end

--- The markdown table of the three workloads. o: step, ttt, attn_torch (decoded JSON or nil),
--  step_why, ttt_why, attn_torch_why (why one is missing), attn (gpu_attention.lua's output text or
--  nil), attn_why, torch_why (why no PyTorch side ran at all: replaces the per-row reasons), device,
--  date, peak_tflops ("auto" or a number). Returns the text.
function M.results_table(o)
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  local device = o.device
  if not device or device == "" then
    device = (o.step and o.step.device) or (o.ttt and o.ttt.device) or "unknown device"
  end
  local peak, peak_note = M.peak(device, o.peak_tflops)
  add(string.format("### proteus vs PyTorch — %s, %s", o.date or os.date("!%Y-%m-%d %H:%MZ"), device))
  add("")
  add("MFU against " .. (peak and peak_note or ("no peak (" .. peak_note .. "): MFU cells give TFLOP/s only")) .. ".")
  add("")
  add("| workload | proteus ms | proteus tokens/s | PyTorch ms | PyTorch tokens/s | proteus/PyTorch tokens/s | proteus MFU | PyTorch MFU |")
  add("|---|---|---|---|---|---|---|---|")
  local notes = {}
  -- training step
  do
    local s = o.step
    local r = { name = "train step", p_why = o.step_why or "no result", t_why = o.step_why or "no result" }
    if s then
      r.name = string.format("%s (B=%d, T=%d)", s.step == "fwdbwd" and "forward+backward" or "train step", s.B, s.T)
      r.tokens, r.flops = s.B * s.T, s.flops_per_step
      if s.proteus and s.proteus.median_s then r.p_sec = s.proteus.median_s else r.p_why = err_of(s.proteus, "no proteus result") end
      if s.pytorch and s.pytorch.median then r.t_sec = s.pytorch.median
      else r.t_why = o.torch_why or err_of(s.pytorch, "no PyTorch result") end
      notes[#notes + 1] = string.format("train step: %s, %s params, %s tokens/step; proteus: %s (%d timed steps); "
        .. "PyTorch: %s; FLOPs/step %.4g = %s.", s.config, fmt_int(s.params or 0), fmt_int(r.tokens),
        s.proteus and ((s.proteus.dtype or "?") .. " weights, " .. (s.proteus.compute or "?") .. " compute") or "?",
        s.proteus and s.proteus.times and #s.proteus.times or 0,
        s.pytorch and s.pytorch.setup_line or "not run", r.flops, M.TRAIN_FORMULA)
    end
    add(row(r, peak))
  end
  -- LoRA TTT evaluation
  do
    local t = o.ttt
    local r = { name = "LoRA TTT eval", p_why = o.ttt_why or "no result", t_why = o.ttt_why or "no result" }
    if t then
      local st = t.settings or {}
      r.name = string.format("LoRA TTT eval (%d docs/round, batch %d, chunk %d, window %d)", (t.plan.long_docs or 0)
        + (t.plan.short_docs or 0), st.batch_docs or 0, st.chunk_size or 0, st.eval_seq_len or 0)
      r.tokens, r.flops = t.tokens_per_round, t.flops_per_round
      if t.proteus and t.proteus.median_s then r.p_sec = t.proteus.median_s else r.p_why = err_of(t.proteus, "no proteus result") end
      if t.pytorch and t.pytorch.median then r.t_sec = t.pytorch.median
      else r.t_why = o.torch_why or err_of(t.pytorch, "no PyTorch result") end
      notes[#notes + 1] = string.format("LoRA TTT eval: ms per round of %d long + %d short documents = %s scored "
        .. "tokens, %d chunk steps (%d train); rank %d, lr %g; proteus: %s; PyTorch: %s; FLOPs/round %.4g "
        .. "(%s).", t.plan.long_docs, t.plan.short_docs, fmt_int(r.tokens), t.plan.steps, t.plan.train_steps,
        st.lora_rank or 0, st.lr or 0, t.proteus and t.proteus.setup_line or "?",
        t.pytorch and t.pytorch.setup_line or "not run", r.flops, M.TTT_FORMULA)
    end
    add(row(r, peak))
  end
  -- attention (proteus: bench/gpu_attention.lua's flash row at T = 2048; PyTorch: gpt_step_torch.py --attn-bench)
  do
    local r = {}
    local a, why = nil, o.attn_why
    if not why then a, why = M.parse_gpu_attention(o.attn, 2048, "fwdbwd") end
    local at = o.attn_torch
    local B, H, T, D = 8, 8, 2048, 64
    if a then B, H, D = a.B, a.H, a.D; r.p_sec = a.ms / 1e3 else r.p_why = why or "no result" end
    if at and at.fwdbwd_ms then
      if a and (at.B ~= B or at.H ~= H or at.D ~= D or at.T ~= T) then
        r.t_why = string.format("shapes differ from proteus's (B=%s H=%s T=%s D=%s)", at.B, at.H, at.T, at.D)
      else
        B, H, T, D = at.B, at.H, at.T, at.D
        r.t_sec = at.fwdbwd_ms / 1e3
      end
      notes[#notes + 1] = "attention: proteus: the flash kernel (bench/gpu_attention.lua, bf16); PyTorch: " .. (at.setup_line or "?")
        .. "; FLOPs " .. M.ATTN_FORMULA .. "."
    else
      r.t_why = o.torch_why or o.attn_torch_why or err_of(at, "no PyTorch result")
    end
    local Hkv = (at and at.Hkv) or (a and a.Hkv) or H // 2
    r.name = string.format("attention fwd+bwd (B=%d, H=%d/%d, T=%d, D=%d)", B, H, Hkv, T, D)
    r.tokens, r.flops = B * T, M.attention(B, H, T, D, "fwdbwd")
    add(row(r, peak))
  end
  add("")
  for _, n in ipairs(notes) do add("* " .. n) end
  add("* ratio = PyTorch time / proteus time for the same work (> 1: proteus faster); tokens/s = tokens of the "
    .. "row's unit of work / its median time.")
  return table.concat(lines, "\n")
end

-- ---------------------------------------------------------------------------------------------
-- command line: build/proteus bench/flops.lua table KEY=VALUE...
-- ---------------------------------------------------------------------------------------------
local as_script = arg and arg[0] and arg[0]:match("flops%.lua$")
if as_script and arg[1] == "table" then
  local o = {}
  local known = { step = 1, ttt = 1, attn = 1, attn_torch = 1, device = 1, date = 1, peak_tflops = 1, step_why = 1,
    ttt_why = 1, attn_why = 1, attn_torch_why = 1, torch_why = 1, out = 1 }
  for i = 2, #arg do
    local k, v = arg[i]:match("^([%w_]+)=(.*)$")
    if not k or not known[k] then error("flops.lua table: unknown argument '" .. arg[i] .. "'") end
    o[k] = v
  end
  local function nonempty(v) return v ~= "" and v or nil end
  local opts = { device = o.device, date = o.date, peak_tflops = o.peak_tflops or "auto", attn_why = nonempty(o.attn_why),
    torch_why = nonempty(o.torch_why) }
  opts.step, opts.step_why = M.read_json(o.step, o.step_why)
  opts.ttt, opts.ttt_why = M.read_json(o.ttt, o.ttt_why)
  opts.attn_torch, opts.attn_torch_why = M.read_json(o.attn_torch, o.attn_torch_why)
  if not opts.attn_why then
    opts.attn = read_file(o.attn)
    if not opts.attn then opts.attn_why = "no output file " .. tostring(o.attn) end
  end
  local text = M.results_table(opts)
  print(text)
  if o.out and o.out ~= "" then
    local f = assert(io.open(o.out, "w"))
    f:write(text, "\n")
    f:close()
  end
  return M
elseif as_script then
  error("usage: proteus bench/flops.lua table step=S.json ttt=T.json attn=A.log attn_torch=AT.json [device=] [date=] [peak_tflops=]")
end

return M
