-- lua/recipes/make_shards.lua — text or JSONL documents to parameter-golf token shards, tokenized with
-- a SentencePiece model through Debian's `spm_encode` (package sentencepiece).
--
--   proteus lua/recipes/make_shards.lua input=corpus.txt out=data/mine
--   proteus lua/recipes/make_shards.lua input='dump/*.jsonl' out=data/mine field=text val_docs=1000
--   proteus lua/recipes/make_shards.lua input=docs.jsonl out=data/sp8192 model=tokenizers/fineweb_8192_bpe.model
--   proteus lua/recipes/make_shards.lua help            # every option with its default
--
-- Options (key=value; docs/cli.md "Making shards" has the full description):
--   input=FILE_OR_GLOB  the input file(s); a glob is expanded by the shell's rules and sorted by name
--   out=DIR             where the shards go (created if missing)
--   model=PATH          the SentencePiece .model; default the bundled sp1024 (data/tokenizers/)
--   format=auto|text|jsonl  text: one document per line, blank lines skipped; jsonl: one JSON object
--                       per line, the document in `field`; auto: jsonl for *.jsonl / *.json, else text
--   field=text          the JSONL member holding the document's text
--   val_docs=50000      the first N documents go to the validation shards (the challenge's 50,000)
--   shard_tokens=100000000  tokens per shard (the challenge's SHARD_SIZE)
--   prefix=fineweb      shard names <prefix>_val_000000.bin, <prefix>_train_000000.bin, ...
--   overwrite=false     replace the <prefix>_{val,train}_*.bin shards already in out
--   spm_encode=spm_encode  the encoder executable (a name looked up on PATH, or a path)
--
-- Output (spec §1.2, as the challenge's export writes it): each document is BOS (id 1) followed by its
-- token ids, no EOS, documents back to back. The first val_docs documents fill the val shards, the
-- rest the train shards; a shard is cut at exactly shard_tokens tokens (a document may continue in
-- the next shard of the same split) and the last val shard is cut where the train documents begin.
-- Shards are numbered from 000000 per split. Line breaks inside a JSONL text become spaces before
-- encoding (spm_encode reads one document per line); the challenge's nmt_nfkc normalizer maps
-- them to spaces anyway, so the ids are those of the whole text.
--
-- Atomic: the shards are written into a temporary folder inside out and renamed into place only when
-- every input has been tokenized; a failed run leaves out as it was (overwrite=true deletes the old
-- shards just before the renames).
-- Tested by tests/lua/test_make_shards.lua.
local config = require "proteus.config"
local data = require "proteus.data"
local json = require "proteus.json"
local host = require "proteus._host"

local USAGE = "usage: proteus lua/recipes/make_shards.lua input=FILE_OR_GLOB out=DIR [model=PATH] "
  .. "[format=auto|text|jsonl] [field=text] [val_docs=N] [shard_tokens=N] [prefix=fineweb] [overwrite=1]"

local def = config.define {
  name = "make_shards", default_preset = "default",
  defaults = {
    input = "", out = "", model = "", format = "auto", field = "text", val_docs = 50000,
    shard_tokens = 100000000, prefix = "fineweb", overwrite = false, spm_encode = "spm_encode",
  },
  doc = {
    input = "text or JSONL file, or a glob of them (required)",
    out = "folder for the shards, created if missing (required)",
    model = "SentencePiece .model; empty = the bundled sp1024",
    format = "auto | text (one document per line) | jsonl (one object per line); auto: by extension",
    field = "JSONL member holding the document text",
    val_docs = "the first N documents go to the val shards (challenge: 50000)",
    shard_tokens = "tokens per shard (challenge: 100000000)",
    prefix = "shard names <prefix>_val_000000.bin, <prefix>_train_000000.bin",
    overwrite = "replace <prefix>_{val,train}_*.bin already in out",
    spm_encode = "the SentencePiece encoder executable (name on PATH or a path)",
  },
  presets = { default = {} },
}

local function fail(fmt, ...)
  error("make_shards: " .. string.format(fmt, ...), 0)
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- 1234567 -> "1,234,567"
local function commas(n)
  local s = tostring(math.tointeger(n) or n)
  local sign, digits = s:match("^(-?)(%d+)$")
  if not digits then return s end
  return sign .. digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
end

local function say(fmt, ...)
  io.stdout:write("make_shards: ", string.format(fmt, ...), "\n")
  io.stdout:flush()
end

-- output of a shell command (stdout), and whether it exited 0
local function sh(cmd)
  local p = io.popen(cmd, "r")
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

-- Regular files matching a pattern, sorted by name (bytewise). The pattern reaches the shell as data,
-- never as code: `set --` makes it $1, and with IFS empty an unquoted $1 undergoes pathname
-- expansion and nothing else. Only shell builtins run (no PATH lookup).
local function glob_files(pattern)
  local out = sh("set -- " .. q(pattern) .. "; IFS=; for f in $1; do [ -f \"$f\" ] && printf '%s\\n' \"$f\"; done; true")
  local files = {}
  for line in out:gmatch("[^\n]+") do files[#files + 1] = line end
  table.sort(files)
  return files
end

local function is_dir(path)
  local _, ok = sh("test -d " .. q(path))
  return ok
end

local function exists(path)
  local _, ok = sh("test -e " .. q(path))
  return ok
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

local function last_lines(path, n)
  local f = io.open(path, "rb")
  if not f then return "" end
  local lines = {}
  for l in f:lines() do
    if l:match("%S") then lines[#lines + 1] = l end
  end
  f:close()
  local from = math.max(1, #lines - n + 1)
  return table.concat(lines, " | ", from)
end

-- ---- options ----
for _, a in ipairs(arg or {}) do
  if a == "help" or a == "--help" or a == "-h" then
    print(USAGE)
    print("options (key=value; the environment is not read):")
    for _, key in ipairs(def.keys) do
      print(string.format("  %-13s %-11s %s", key, config.show(def.defaults[key]), def.doc[key]))
    end
    return
  end
end
local cfg = config.resolve(def, arg or {}, false, { has_gpu = false })

if cfg.input == "" then fail("input=FILE_OR_GLOB is required (plain text, one document per line, or JSONL)\n%s", USAGE) end
if cfg.out == "" then fail("out=DIR is required (the folder the shards are written to)\n%s", USAGE) end
if cfg.format ~= "auto" and cfg.format ~= "text" and cfg.format ~= "jsonl" then
  fail("format=%s is not one of auto, text, jsonl", cfg.format)
end
if cfg.field == "" then fail("field= must name the JSONL member holding the text (e.g. field=text)") end
if cfg.val_docs < 0 then fail("val_docs=%d must be >= 0 (0: no validation shard)", cfg.val_docs) end
if cfg.shard_tokens < 1 or cfg.shard_tokens > 2147483647 then
  fail("shard_tokens=%d must be in 1 .. 2147483647 (the header's int32 count)", cfg.shard_tokens)
end
if not cfg.prefix:match("^[%w_%.%-]+$") then
  fail("prefix=%s may hold only letters, digits, '_', '.' and '-' (it starts every shard's file name)", cfg.prefix)
end
local out_dir = cfg.out:gsub("(.)/+$", "%1")

-- ---- inputs ----
local inputs = glob_files(cfg.input)
if #inputs == 0 then
  if cfg.input:find("[%*%?%[]") then
    fail("input=%s matches no file", cfg.input)
  elseif is_dir(cfg.input) then
    fail("input=%s is a folder; give a file or a glob such as input='%s/*.jsonl'", cfg.input,
      (cfg.input:gsub("/+$", "")))
  else
    fail("input file %s not found", cfg.input)
  end
end
local formats = {}
for i, path in ipairs(inputs) do
  local f = io.open(path, "rb")
  if not f then fail("input file %s cannot be read", path) end
  f:close()
  local fmt = cfg.format
  if fmt == "auto" then fmt = (path:lower():match("%.jsonl$") or path:lower():match("%.json$")) and "jsonl" or "text" end
  formats[i] = fmt
end

-- ---- spm_encode and the model ----
local spm = cfg.spm_encode
do
  local found
  if spm:find("/", 1, true) then
    local _, ok = sh("test -f " .. q(spm) .. " && test -x " .. q(spm))
    found = ok
  else
    local out, ok = sh("command -v " .. q(spm) .. " 2>/dev/null")
    found = ok and out:match("%S") ~= nil
  end
  if not found then
    fail("%s not found%s: install Debian's sentencepiece package (apt-get install sentencepiece) or pass "
      .. "spm_encode=PATH", spm, spm:find("/", 1, true) and " or not executable" or " on PATH")
  end
end

local model = cfg.model ~= "" and cfg.model or data.paths().tokenizer
do
  local f = io.open(model, "rb")
  if not f then fail("model %s not found (model=PATH of a SentencePiece .model)", model) end
  f:close()
end
-- the native reader (src/host/sptok.c) refuses a model of more than 65,536 pieces: ids past 65535
-- do not fit the shards' uint16
local ok_tok, tok = pcall(data.tokenizer, model)
if not ok_tok then
  if tostring(tok):find("more than 65536 pieces", 1, true) then
    fail("model %s has more than 65,536 pieces: shard token ids are uint16 (0 .. 65535), so at most 65,536 "
      .. "pieces fit", model)
  end
  fail("model %s is not a SentencePiece model: %s", model, tostring(tok))
end
local vocab = tok:vocab_size()
local model_sha = tok:sha256()
tok:release()

-- ---- the output folder ----
if exists(out_dir) and not is_dir(out_dir) then fail("out=%s exists and is not a folder", out_dir) end
do
  local _, ok = sh("mkdir -p " .. q(out_dir) .. " 2>/dev/null")
  if not ok or not is_dir(out_dir) then fail("cannot create the output folder %s", out_dir) end
end
local old = {}
for _, split in ipairs { "val", "train" } do
  for _, p in ipairs(glob_files(out_dir .. "/" .. cfg.prefix .. "_" .. split .. "_*.bin")) do old[#old + 1] = p end
end
table.sort(old)
if #old > 0 and not cfg.overwrite then
  fail("%s already holds %d %s_*.bin shard%s (%s%s); pass overwrite=1 to replace them, or choose another out= "
    .. "or prefix=", out_dir, #old, cfg.prefix, #old == 1 and "" or "s", old[1]:match("[^/]*$"),
    #old > 1 and ", ..." or "")
end

local tmp
do
  local out, ok = sh("mktemp -d " .. q(out_dir .. "/.make_shards.XXXXXX") .. " 2>&1")
  tmp = out:match("^([^\n]+)")
  if not ok or not tmp or not is_dir(tmp) then fail("cannot create a temporary folder in %s: %s", out_dir, out) end
end

-- ---- the shard writer ----
local BOS = data.BOS
local t0 = host.clock()
local st = {
  split = cfg.val_docs > 0 and "val" or "train",
  pieces = {}, pending = 0,             -- packed little-endian uint16 strings of the shard being filled
  index = { val = 0, train = 0 },
  docs = { val = 0, train = 0 }, tokens = { val = 0, train = 0 }, nshards = { val = 0, train = 0 },
  written = {},                         -- {name =, tokens =, bytes =}
  last_report = host.clock(),
}

local function flush()
  if st.pending == 0 then return end
  local name = string.format("%s_%s_%06d.bin", cfg.prefix, st.split, st.index[st.split])
  local toks = data.tokens(table.concat(st.pieces))
  st.pieces, st.pending = {}, 0
  toks:check_vocab(vocab, name)
  toks:write(tmp .. "/" .. name)
  local n = #toks
  toks:release()
  st.index[st.split] = st.index[st.split] + 1
  st.nshards[st.split] = st.nshards[st.split] + 1
  st.written[#st.written + 1] = { name = name, tokens = n, bytes = 1024 + 2 * n }
  say("wrote %s: %s tokens", name, commas(n))
end

-- one document: its packed tokens (BOS first) and its token count
local function add_doc(s, n)
  local split = (st.docs.val < cfg.val_docs) and "val" or "train"
  if split ~= st.split then
    flush()
    st.split = split
  end
  st.docs[split] = st.docs[split] + 1
  st.tokens[split] = st.tokens[split] + n
  local off = 0
  while n - off > 0 do
    local room = cfg.shard_tokens - st.pending
    local take = math.min(room, n - off)
    st.pieces[#st.pieces + 1] = (off == 0 and take == n) and s or s:sub(2 * off + 1, 2 * (off + take))
    st.pending = st.pending + take
    off = off + take
    if st.pending == cfg.shard_tokens then flush() end
  end
  local now = host.clock()
  if now - st.last_report >= 10 then
    st.last_report = now
    local docs, toks = st.docs.val + st.docs.train, st.tokens.val + st.tokens.train
    say("%s documents, %s tokens so far (%.0f tokens/s)", commas(docs), commas(toks), toks / (now - t0))
  end
end

-- string.pack formats for k uint16 values, cached
local FMT = setmetatable({}, { __index = function(t, k)
  local f = "<" .. string.rep("I2", k)
  t[k] = f
  return f
end })
local CHUNK = 4096

local ids = {}
-- packs ids[1..n] (ids[1] is BOS) into a little-endian uint16 string
local function pack(n)
  if n <= CHUNK then return string.pack(FMT[n], table.unpack(ids, 1, n)) end
  local parts = {}
  for i = 1, n, CHUNK do
    local j = math.min(n, i + CHUNK - 1)
    parts[#parts + 1] = string.pack(FMT[j - i + 1], table.unpack(ids, i, j))
  end
  return table.concat(parts)
end

-- Runs spm_encode on text_path (one document per line, `lines` of them) and adds its documents.
-- keep_empty: a line with no tokens is a document of BOS alone (JSONL); else it is skipped (text).
local function encode(text_path, lines, keep_empty, label)
  local errf = tmp .. "/spm_encode.err"
  local p = io.popen(q(spm) .. " --output_format=id --model=" .. q(model) .. " < " .. q(text_path) .. " 2>" .. q(errf))
  local got, docs, toks = 0, 0, 0
  for line in p:lines() do
    got = got + 1
    local n = 1
    ids[1] = BOS
    for id in line:gmatch("%d+") do
      n = n + 1
      ids[n] = tonumber(id)
    end
    if n > 1 or keep_empty then
      local ok, s = pcall(pack, n)
      if not ok then
        p:close()
        fail("%s: spm_encode gave a token id outside 0 .. 65535 on line %d (%s)", label, got, tostring(s))
      end
      add_doc(s, n)
      docs, toks = docs + 1, toks + n
    end
  end
  local ok, _, code = p:close()
  if not ok then
    fail("spm_encode failed (exit %s) on %s with model %s: %s", tostring(code), label, model, last_lines(errf, 3))
  end
  if got ~= lines then
    fail("spm_encode returned %d lines for the %d lines of %s; the ids cannot be matched to documents",
      got, lines, label)
  end
  return docs, toks
end

local function count_lines(path)
  local n = 0
  for _ in io.lines(path, "L") do n = n + 1 end
  return n
end

local function is_object(v)
  if type(v) ~= "table" or v == json.null then return false end
  local mt = getmetatable(v)
  return not (mt and mt.__jsonarray)
end

local function json_type(v)
  if v == json.null then return "null" end
  if type(v) == "table" then return is_object(v) and "an object" or "an array" end
  if type(v) == "boolean" then return "a boolean" end
  if type(v) == "number" then return "a number" end
  return "a " .. type(v)
end

-- JSONL --> a text file of the field's texts, one per line; returns its path and line count
local function extract_jsonl(path)
  local dst = tmp .. "/docs.txt"
  local w = assert(io.open(dst, "wb"))
  local lineno, n = 0, 0
  for line in io.lines(path) do
    lineno = lineno + 1
    if line:match("%S") then
      local ok, v = pcall(json.decode, line)
      if not ok then
        w:close()
        fail("%s:%d: not valid JSON (%s); format=jsonl expects one JSON object per line", path, lineno,
          (tostring(v):gsub("^.-:%d+: ", "")))
      end
      if not is_object(v) then
        w:close()
        fail("%s:%d: the line is %s, not a JSON object; format=jsonl expects one object per line with the text in \"%s\"",
          path, lineno, json_type(v), cfg.field)
      end
      local text = v[cfg.field]
      if text == nil then
        local keys = {}
        for k in pairs(v) do keys[#keys + 1] = k end
        table.sort(keys)
        local hint = #keys > 0 and string.format(" (its fields: %s%s)", table.concat(keys, ", ", 1, math.min(#keys, 8)),
          #keys > 8 and ", ..." or "") or " (it is empty)"
        w:close()
        fail("%s:%d: the object has no field \"%s\"%s; pass field=NAME", path, lineno, cfg.field, hint)
      end
      if type(text) ~= "string" then
        w:close()
        fail("%s:%d: field \"%s\" is %s, not a string", path, lineno, cfg.field, json_type(text))
      end
      w:write((text:gsub("[\r\n]", " ")), "\n")
      n = n + 1
    end
  end
  w:close()
  return dst, n
end

-- ---- run ----
local function run()
  say("%d input file%s, model %s (vocab %d), out %s, val_docs=%d, shard_tokens=%s", #inputs, #inputs == 1 and "" or "s",
    model, vocab, out_dir, cfg.val_docs, commas(cfg.shard_tokens))
  -- the encoder works with this model (a file the native reader accepts may still be refused by it)
  do
    local probe = tmp .. "/probe.txt"
    local f = assert(io.open(probe, "wb"))
    f:write("probe\n")
    f:close()
    local errf = tmp .. "/spm_encode.err"
    local _, ok = sh(q(spm) .. " --output_format=id --model=" .. q(model) .. " < " .. q(probe) .. " >/dev/null 2>" .. q(errf))
    if not ok then fail("%s cannot use model %s: %s", spm, model, last_lines(errf, 3)) end
  end
  for i, path in ipairs(inputs) do
    local t1 = host.clock()
    local docs, toks
    if formats[i] == "jsonl" then
      local txt, n = extract_jsonl(path)
      docs, toks = encode(txt, n, true, path)
      os.remove(txt)
    else
      docs, toks = encode(path, count_lines(path), false, path)
    end
    say("%s (%s): %s documents, %s tokens, %.1f s", path, formats[i], commas(docs), commas(toks), host.clock() - t1)
  end
  flush()
  local ndocs = st.docs.val + st.docs.train
  if ndocs == 0 then fail("the input holds no document (%s)", cfg.input) end
  if cfg.val_docs > 0 and st.docs.train == 0 then
    fail("all %s documents went to validation (val_docs=%d) and none is left for training; pass val_docs=N "
      .. "below %s (val_docs=0: no validation shard)", commas(ndocs), cfg.val_docs, commas(ndocs))
  end
  -- into place: old shards out (overwrite=true), new ones renamed in
  for _, pth in ipairs(old) do
    local ok, err = os.remove(pth)
    if not ok then fail("cannot remove the old shard %s: %s", pth, tostring(err)) end
  end
  for _, s in ipairs(st.written) do
    local ok, err = os.rename(tmp .. "/" .. s.name, out_dir .. "/" .. s.name)
    if not ok then fail("cannot move %s into %s: %s", s.name, out_dir, tostring(err)) end
  end
end

local ok, err = pcall(run)
os.execute("rm -rf -- " .. q(tmp))
if not ok then error(err, 0) end

local bytes = 0
for _, s in ipairs(st.written) do bytes = bytes + s.bytes end
local ndocs, ntoks = st.docs.val + st.docs.train, st.tokens.val + st.tokens.train
say("done in %.1f s", host.clock() - t0)
print(string.format("  documents  %s (val %s, train %s)", commas(ndocs), commas(st.docs.val), commas(st.docs.train)))
print(string.format("  tokens     %s (val %s, train %s; one BOS per document included)", commas(ntoks),
  commas(st.tokens.val), commas(st.tokens.train)))
print(string.format("  shards     %d (val %d, train %d) in %s", #st.written, st.nshards.val, st.nshards.train, out_dir))
print(string.format("  bytes      %s", commas(bytes)))
print(string.format("  tokenizer  %s (vocab %d, sha256 %s)", model, vocab, model_sha))
if cfg.prefix == "fineweb" then
  print(string.format("  recipes    data_path=%s tokenizer_path=%s", out_dir, model))
else
  print(string.format("  recipes    read fineweb_*.bin from data_path=; these are %s_*.bin (prefix=%s)", cfg.prefix, cfg.prefix))
end
