--- proteus.data — token shards, training streams, documents, the tokenizer's BPB byte tables and
--- the score-first ledger over the validation stream.
--
--   local data = require "proteus.data"
--   local paths = data.paths()                      -- bundled sample, or data.paths{data_path=..., tokenizer_path=...}
--   local stream = data.stream(paths.train)         -- baseline stream (spec §2.4), resumable:
--   local xy = stream:next_batch(n, rank, world)    --   Tokens of n+1: x = [0, n), y = [1, n]
--   local shard, offset = stream:pos(); stream:set_pos(shard, offset)
--   local val = data.open_val{vocab = 1024, legal = true}  -- {ledger, tokens, tokenizer, tables}
--   val.ledger:score(positions, logits, {softcap = 30})     -- logits: f32 tensor [n, V]
--   val.ledger:grant(a, b)                          -- tokens of targets [a, b), only once scored
--   print(data.format_bpb(val.ledger:report(), "final"))
--
-- Positions are 0-based token indices (spec convention): target t predicts token t from token t-1,
-- t = 1 .. N-1. Tokens:get(i), Tokens:sub(a, b) use the same indices, [a, b) half-open.
-- C side: src/bindings/data.c ("proteus._data") and src/bindings/ledger.c ("proteus._ledger").
-- Tests: tests/lua/test_data.lua.
local D = require "proteus._data"
local Lg = require "proteus._ledger"

local data = {}

data.BOS = D.BOS
data.read = D.read                 -- concatenation of a sorted glob of shards --> Tokens
data.read_shard = D.read_shard     -- one shard --> Tokens
data.shard_info = D.shard_info     -- validated token count of one shard
data.list = D.list                 -- sorted paths and counts of a glob
data.tokens = D.tokens             -- Tokens from a Lua table or a packed little-endian uint16 string
data.stream = D.stream             -- the baseline training stream over a glob
data.tokenizer = D.tokenizer       -- a SentencePiece .model, read natively
data.sha256 = D.sha256
data.sha256_file = D.sha256_file

--- The repository root (where data/ lives): PROTEUS_HOME, else derived from the Lua library path.
function data.root()
  local env = os.getenv("PROTEUS_HOME")
  if env and env ~= "" then return env end
  local ok, host = pcall(require, "proteus._host")
  if ok and host.home then
    local home = host.home()
    local root = home and home:gsub("/+$", ""):gsub("/?lua/lib$", "")
    if root and root ~= "" then return root end
  end
  return "."
end

--- Paths of the train and val shard globs and the tokenizer.
--  opts.data_path: a folder in the challenge layout (data/datasets/fineweb10B_sp1024/) holding
--  fineweb_train_*.bin and fineweb_val_*.bin; opts.tokenizer_path: the .model file.
--  Without them: the bundled sample (data/sample/) and sp1024 tokenizer (data/tokenizers/).
function data.paths(opts)
  opts = opts or {}
  local root = data.root()
  local dir = opts.data_path or (root .. "/data/sample")
  dir = dir:gsub("/+$", "")
  return {
    train = opts.train_files or (dir .. "/fineweb_train_*.bin"),
    val = opts.val_files or (dir .. "/fineweb_val_*.bin"),
    tokenizer = opts.tokenizer_path or (root .. "/data/tokenizers/fineweb_1024_bpe.model"),
  }
end

--- Documents of a token buffer (spec §3.7): a list of {start = s, len = n} (0-based starts; a
--  document covers [s, s+n) which includes the next document's BOS).
function data.docs(tokens)
  local starts, lens = tokens:docs()
  local out = {}
  for i = 1, #starts do out[i] = { start = starts[i], len = lens[i] } end
  return out
end

--- Opens a ledger over a Tokens buffer. tok_or_tables: a Tokenizer (byte tables are built with
--  opts.vocab = the model's V) or ByteTables. opts.legal defaults to true.
function data.ledger(tokens, tok_or_tables, opts)
  opts = opts or {}
  local tables = tok_or_tables
  if type(tok_or_tables.byte_tables) == "function" then
    tables = tok_or_tables:byte_tables(opts.vocab or 0)
  end
  local legal = opts.legal
  if legal == nil then legal = true end
  return Lg.open(tokens, tables, { legal = legal, name = opts.name })
end

--- Loads the validation stream and the tokenizer and opens the ledger over it.
--  opts: data_path / val_files / tokenizer_path (see data.paths), vocab (model V, default the
--  tokenizer's), legal (default true). Returns {ledger, tokens, tokenizer, tables, paths}.
function data.open_val(opts)
  opts = opts or {}
  local paths = data.paths(opts)
  local tok = D.tokenizer(paths.tokenizer)
  local tables = tok:byte_tables(opts.vocab or 0)
  local tokens = D.read(paths.val)
  local name = paths.val:match("[^/]*$")
  local legal = opts.legal
  if legal == nil then legal = true end
  local ledger = Lg.open(tokens, tables, { legal = legal, name = name })
  return { ledger = ledger, tokens = tokens, tokenizer = tok, tables = tables, paths = paths }
end

--- The ledger fields that go into results.json.
function data.ledger_summary(r)
  return {
    verdict = r.verdict, targets = r.targets, scored_once = r.scored_once,
    scored_never = r.scored_never, scored_multiple = r.scored_multiple,
    trained_before_scored = r.trained_before_scored, nll_rescaled = r.nll_rescaled,
    nll_external = r.nll_external, duplicate_scorings = r.duplicate_scorings,
  }
end

--- One line with a BPB and the ledger's verdict beside it (every BPB is printed with its verdict).
function data.format_bpb(r, label)
  local s = string.format("%sval_loss:%.8f val_bpb:%.8f [ledger %s: %d targets, %d scored once, %d never, "
    .. "%d more than once, %d trained before scored, %d rescaled",
    label and (label .. " ") or "", r.loss, r.bpb, r.verdict:upper(), r.targets, r.scored_once,
    r.scored_never, r.scored_multiple, r.trained_before_scored, r.nll_rescaled)
  if r.nll_external > 0 then s = s .. string.format(", %d NLLs supplied externally", r.nll_external) end
  return s .. "]"
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Tokenizes a text file with Debian's `spm_encode` (one document per line) and returns Tokens in
--  the challenge's export layout: BOS + tokens for every non-empty line.
function data.encode_file(text_path, model_path)
  model_path = model_path or data.paths().tokenizer
  local cmd = "spm_encode --output_format=id --model=" .. shell_quote(model_path) .. " < " .. shell_quote(text_path)
  local p = io.popen(cmd, "r")
  if not p then error("data.encode_file: cannot run spm_encode (Debian package sentencepiece)", 2) end
  local ids = {}
  for line in p:lines() do
    if line:match("%d") then
      ids[#ids + 1] = D.BOS
      for id in line:gmatch("%d+") do ids[#ids + 1] = tonumber(id) end
    end
  end
  local ok, _, code = p:close()
  if not ok then
    error(string.format("data.encode_file: spm_encode failed (exit %s) on %s with model %s "
      .. "(is the sentencepiece package installed?)", tostring(code), text_path, model_path), 2)
  end
  return D.tokens(ids)
end

return data
