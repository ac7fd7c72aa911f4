-- tests/lua/test_make_shards.lua — lua/recipes/make_shards.lua: text and JSONL round trips read back with
-- the shard reader (ids equal to spm_encode's own output, BOS before every document, the val/train cut,
-- exact shard cuts), the bundled sample rebuilt from the shared KJV corpus, and every refusal (missing
-- input, missing spm_encode, bad model, bad JSONL lines named file:line, shards already in out, a
-- vocabulary over uint16, unknown options).
--
--   build/proteus tests/run.lua tests/lua/test_make_shards.lua
--
-- The recipe runs as a child process: the binary is $PROTEUS_BIN, else the interpreter running this
-- test (arg[-1]). Tests that tokenize skip, saying so, when spm_encode (Debian package sentencepiece)
-- is not installed; the sp8192 and KJV tests skip when ../shared/data is not next to the repository.
local data = require "proteus.data"

local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local root = here .. "../../"
local RECIPE = root .. "lua/recipes/make_shards.lua"
local SP1024 = root .. "data/tokenizers/fineweb_1024_bpe.model"
local SHARED = root .. "../shared/data/"

local testing = require "proteus.testing"
local q = testing.shell_quote

local function proteus_bin() return testing.proteus_bin("test_make_shards") end

-- runs the recipe with args (a shell-ready string); env: a prefix such as "PATH=/x"
local function make(args, env)
  local cmd = (env and ("env " .. env .. " ") or "") .. q(proteus_bin()) .. " " .. q(RECIPE) .. " " .. args .. " 2>&1"
  local p = io.popen(cmd)
  local out = p:read("a")
  local ok = p:close()
  return ok and true or false, out
end

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/proteus_test_make_shards_XXXXXX")
  local d = p:read("l")
  p:close()
  return d
end

local function rmdir(d) os.execute("rm -rf -- " .. q(d)) end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
  return path
end

local function have(cmd)
  local p = io.popen("command -v " .. cmd .. " 2>/dev/null")
  local s = p:read("a")
  p:close()
  return s:match("%S") ~= nil
end

local function need_spm(T)
  if not have("spm_encode") then T.skip("spm_encode is not installed (Debian package sentencepiece)") end
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- spm_encode's own ids of every line of a file: a list of lists (one per line, empty lines included)
local function spm_lines(path, model)
  local p = io.popen("spm_encode --output_format=id --model=" .. q(model) .. " < " .. q(path))
  local out = {}
  for line in p:lines() do
    local ids = {}
    for id in line:gmatch("%d+") do ids[#ids + 1] = tonumber(id) end
    out[#out + 1] = ids
  end
  assert(p:close(), "spm_encode failed on " .. path)
  return out
end

-- the challenge's export layout of a list of documents' ids: BOS + ids, back to back
local function stream(docs)
  local s = {}
  for _, ids in ipairs(docs) do
    s[#s + 1] = data.BOS
    for _, id in ipairs(ids) do s[#s + 1] = id end
  end
  return s
end

local function concat(...)
  local r = {}
  for _, t in ipairs { ... } do for _, v in ipairs(t) do r[#r + 1] = v end end
  return r
end

-- file names in a folder, sorted (dot files included)
local function ls(dir)
  local p = io.popen("ls -A " .. q(dir))
  local r = {}
  for l in p:lines() do r[#r + 1] = l end
  p:close()
  table.sort(r)
  return r
end

local function summary(out, key)
  return out:match("\n  " .. key .. "%s+([^\n]*)")
end

local TEXT = table.concat({
  "The quick brown fox jumps over the lazy dog.",
  "",
  "In 1999, 42 people wrote café menus — naïve résumés.",
  "   ",
  "Tabs\tand  double  spaces are normalized.",
  "Short.",
  "The last line has no line break",
}, "\n")

-- a protobuf ModelProto with n NORMAL pieces (field 1: SentencePiece {piece = 1, type = 3})
local function varint(n)
  local b = {}
  repeat
    local x = n % 128
    n = n // 128
    b[#b + 1] = string.char(n > 0 and x + 128 or x)
  until n == 0
  return table.concat(b)
end

local function fake_model(n)
  local parts = {}
  for i = 1, n do
    local piece = "p" .. i
    local inner = "\10" .. varint(#piece) .. piece .. "\24\1"
    parts[i] = "\10" .. varint(#inner) .. inner
  end
  return table.concat(parts)
end

return {
  text_round_trip = function(T)
    need_spm(T)
    local d = tmpdir()
    local txt = write(d .. "/corpus.txt", TEXT)
    local ok, out = make("input=" .. q(txt) .. " out=" .. q(d .. "/out") .. " val_docs=2 model=" .. q(SP1024))
    assert(ok, out)
    local lines = spm_lines(txt, SP1024)
    T.eq(#lines, 7, "spm_encode lines")
    local docs = {}
    for _, ids in ipairs(lines) do if #ids > 0 then docs[#docs + 1] = ids end end
    T.eq(#docs, 5, "non-blank lines") -- the empty and the whitespace-only lines are no documents
    T.eq(ls(d .. "/out"), { "fineweb_train_000000.bin", "fineweb_val_000000.bin" })
    local val = data.read(d .. "/out/fineweb_val_*.bin")
    local train = data.read(d .. "/out/fineweb_train_*.bin")
    T.eq(val:totable(), stream { docs[1], docs[2] })
    T.eq(train:totable(), stream { docs[3], docs[4], docs[5] })
    T.eq(#data.docs(val), 2)
    T.eq(#data.docs(train), 3)
    local ntok = #val + #train
    T.eq(ntok, #stream(docs))
    T.eq(summary(out, "documents"), "5 (val 2, train 3)")
    T.eq(summary(out, "tokens"), string.format("%d (val %d, train %d; one BOS per document included)", ntok, #val, #train))
    T.eq(summary(out, "shards"), "2 (val 1, train 1) in " .. d .. "/out")
    local bytes = tostring(2 * 1024 + 2 * ntok):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
    T.eq(summary(out, "bytes"), bytes)
    -- the header: magic, version, count
    local f = assert(io.open(d .. "/out/fineweb_val_000000.bin", "rb"))
    local magic, version, count = string.unpack("<i4i4i4", f:read(12))
    f:close()
    T.eq({ magic, version, count }, { 20240520, 1, #val })
    rmdir(d)
  end,

  jsonl_round_trip = function(T)
    need_spm(T)
    local d = tmpdir()
    local texts = {
      "First document: plain ASCII text.",
      "Second one spans\ntwo lines and has a \"quote\".",
      "",
      "Unicode é and \u{1F600} (an emoji through byte fallback).",
      "Numbers 3.14159 and 2026-12-04.",
    }
    local json = require "proteus.json"
    local lines = {}
    for i, t in ipairs(texts) do lines[#lines + 1] = json.encode { id = i, body = t } end
    table.insert(lines, 3, "   ") -- a blank line is skipped
    local jl = write(d .. "/docs.jsonl", table.concat(lines, "\n") .. "\n")
    local ok, out = make("input=" .. q(jl) .. " out=" .. q(d .. "/out") .. " field=body val_docs=1")
    assert(ok, out)
    assert(out:find("docs.jsonl (jsonl): 5 documents", 1, true), out) -- format=auto by the extension
    -- what spm_encode gives for the same texts, one per line (line breaks as spaces)
    local plain = {}
    for i, t in ipairs(texts) do plain[i] = t:gsub("\n", " ") end
    local expect = spm_lines(write(d .. "/plain.txt", table.concat(plain, "\n") .. "\n"), SP1024)
    T.eq(#expect, 5)
    T.eq(#expect[3], 0, "the empty text")
    local val = data.read(d .. "/out/fineweb_val_*.bin")
    local train = data.read(d .. "/out/fineweb_train_*.bin")
    T.eq(val:totable(), stream { expect[1] })
    T.eq(train:totable(), stream { expect[2], expect[3], expect[4], expect[5] }) -- the empty text is BOS alone
    T.eq(summary(out, "documents"), "5 (val 1, train 4)")
    rmdir(d)
  end,

  jsonl_sp8192 = function(T)
    need_spm(T)
    local model = SHARED .. "tokenizers/fineweb_8192_bpe.model"
    if not exists(model) then T.skip("no sp8192 model at " .. model) end
    local d = tmpdir()
    local texts = { "Tokenizers with larger vocabularies merge more.", "A second, longer document about shards." }
    local jl = write(d .. "/a.txt", '{"text": "' .. texts[1] .. '"}\n{"text": "' .. texts[2] .. '"}\n')
    local ok, out = make("input=" .. q(jl) .. " format=jsonl out=" .. q(d .. "/out") .. " val_docs=1 model=" .. q(model))
    assert(ok, out)
    assert(out:find("(vocab 8192", 1, true), out)
    local expect = spm_lines(write(d .. "/plain.txt", table.concat(texts, "\n") .. "\n"), model)
    local all = concat(data.read(d .. "/out/fineweb_val_*.bin"):totable(), data.read(d .. "/out/fineweb_train_*.bin"):totable())
    T.eq(all, stream(expect))
    local max = 0
    for _, v in ipairs(all) do max = math.max(max, v) end
    assert(max >= 1024, "expected sp8192 ids above 1023, max " .. max)
    rmdir(d)
  end,

  shards_cut_at_shard_tokens = function(T)
    need_spm(T)
    local d = tmpdir()
    local txt = write(d .. "/c.txt", TEXT .. "\n")
    local ok, out = make("input=" .. q(txt) .. " out=" .. q(d .. "/out") .. " val_docs=2 shard_tokens=7 prefix=tiny")
    assert(ok, out)
    local docs = {}
    for _, ids in ipairs(spm_lines(txt, SP1024)) do if #ids > 0 then docs[#docs + 1] = ids end end
    local want_val, want_train = stream { docs[1], docs[2] }, stream { docs[3], docs[4], docs[5] }
    local vp, vc = data.list(d .. "/out/tiny_val_*.bin")
    local tp, tc = data.list(d .. "/out/tiny_train_*.bin")
    T.eq(#vp, (#want_val + 6) // 7)
    T.eq(#tp, (#want_train + 6) // 7)
    for i = 1, #vc - 1 do T.eq(vc[i], 7, "val shard " .. i) end
    for i = 1, #tc - 1 do T.eq(tc[i], 7, "train shard " .. i) end
    T.eq(vp[1]:match("[^/]*$"), "tiny_val_000000.bin")
    T.eq(tp[#tp]:match("[^/]*$"), string.format("tiny_train_%06d.bin", #tp - 1))
    T.eq(data.read(d .. "/out/tiny_val_*.bin"):totable(), want_val)
    T.eq(data.read(d .. "/out/tiny_train_*.bin"):totable(), want_train)
    assert(out:find("read fineweb_*.bin from data_path=; these are tiny_*.bin", 1, true), out)
    rmdir(d)
  end,

  glob_of_inputs_in_name_order = function(T)
    need_spm(T)
    local d = tmpdir()
    write(d .. "/b.txt", "Second file, first line.\n")
    write(d .. "/a.txt", "First file.\nAnother line of the first file.\n")
    local ok, out = make("input=" .. q(d .. "/*.txt") .. " out=" .. q(d .. "/out") .. " val_docs=0")
    assert(ok, out)
    local expect = concat(spm_lines(d .. "/a.txt", SP1024), spm_lines(d .. "/b.txt", SP1024))
    T.eq(data.read(d .. "/out/fineweb_train_*.bin"):totable(), stream(expect))
    T.eq(ls(d .. "/out"), { "fineweb_train_000000.bin" }) -- val_docs=0: no val shard, no temporary left
    rmdir(d)
  end,

  rebuilds_the_bundled_sample = function(T)
    need_spm(T)
    local corpus = SHARED .. "corpus/kjv_chapters.jsonl"
    if not exists(corpus) then T.skip("no KJV corpus at " .. corpus) end
    local d = tmpdir()
    -- make_sample.py put the last 119 chapters in val; with val_docs=0 everything is one train stream
    local ok, out = make("input=" .. q(corpus) .. " out=" .. q(d) .. " val_docs=0")
    assert(ok, out)
    local mine = data.read(d .. "/fineweb_train_*.bin")
    local sample = root .. "data/sample/"
    local want = data.read(sample .. "fineweb_train_*.bin")
    local val = data.read(sample .. "fineweb_val_*.bin")
    T.eq(#mine, #want + #val)
    assert(mine:sub(0, #want):bytes() == want:bytes(), "train part differs from data/sample")
    assert(mine:sub(#want, #mine):bytes() == val:bytes(), "val part differs from data/sample")
    T.eq(summary(out, "documents"), "1,189 (val 0, train 1,189)")
    rmdir(d)
  end,

  overwrite_replaces_old_shards = function(T)
    need_spm(T)
    local d = tmpdir()
    local txt = write(d .. "/c.txt", TEXT)
    local outd = d .. "/out"
    local ok, out = make("input=" .. q(txt) .. " out=" .. q(outd) .. " val_docs=1 shard_tokens=5")
    assert(ok, out)
    local before = ls(outd)
    assert(#before > 2, out)
    ok, out = make("input=" .. q(txt) .. " out=" .. q(outd) .. " val_docs=1")
    assert(not ok, out)
    assert(out:find("already holds " .. #before .. " fineweb_*.bin shards (fineweb_train_000000.bin, ...); pass overwrite=1",
      1, true), out)
    T.eq(ls(outd), before, "a refused run leaves out as it was")
    ok, out = make("input=" .. q(txt) .. " out=" .. q(outd) .. " val_docs=1 overwrite=1")
    assert(ok, out)
    T.eq(ls(outd), { "fineweb_train_000000.bin", "fineweb_val_000000.bin" }) -- the old extra shards are gone
    rmdir(d)
  end,

  refuses_missing_input = function(T)
    local d = tmpdir()
    local ok, out = make("out=" .. q(d))
    assert(not ok and out:find("make_shards: input=FILE_OR_GLOB is required", 1, true), out)
    ok, out = make("input=" .. q(d .. "/nope.txt") .. " out=" .. q(d .. "/out"))
    assert(not ok and out:find("make_shards: input file " .. d .. "/nope.txt not found", 1, true), out)
    ok, out = make("input=" .. q(d .. "/*.jsonl") .. " out=" .. q(d .. "/out"))
    assert(not ok and out:find("input=" .. d .. "/*.jsonl matches no file", 1, true), out)
    ok, out = make("input=" .. q(d) .. " out=" .. q(d .. "/out"))
    assert(not ok and out:find("is a folder; give a file or a glob", 1, true), out)
    ok, out = make("input=" .. q(write(d .. "/x.txt", "x\n")))
    assert(not ok and out:find("make_shards: out=DIR is required", 1, true), out)
    T.eq(exists(d .. "/out"), false)
    rmdir(d)
  end,

  refuses_missing_spm_encode = function(T)
    local d = tmpdir()
    local txt = write(d .. "/c.txt", TEXT)
    local ok, out = make("input=" .. q(txt) .. " out=" .. q(d .. "/out") .. " spm_encode=/nonexistent/spm_encode")
    assert(not ok, out)
    assert(out:find("/nonexistent/spm_encode not found or not executable: install Debian's sentencepiece package", 1, true), out)
    -- looked up on PATH: an empty folder as PATH
    local empty = d .. "/empty_bin"
    os.execute("mkdir " .. q(empty))
    ok, out = make("input=" .. q(txt) .. " out=" .. q(d .. "/out"), "PATH=" .. q(empty))
    assert(not ok, out)
    assert(out:find("spm_encode not found on PATH: install Debian's sentencepiece package (apt-get install sentencepiece) "
      .. "or pass spm_encode=PATH", 1, true), out)
    rmdir(d)
  end,

  refuses_bad_model = function(T)
    local d = tmpdir()
    local txt = write(d .. "/c.txt", TEXT)
    local ok, out = make("input=" .. q(txt) .. " out=" .. q(d .. "/out") .. " model=" .. q(d .. "/none.model"))
    assert(not ok and out:find("model " .. d .. "/none.model not found", 1, true), out)
    local bad = write(d .. "/bad.model", "this is not a protobuf\255\255\255\255")
    ok, out = make("input=" .. q(txt) .. " out=" .. q(d .. "/out") .. " model=" .. q(bad))
    assert(not ok and out:find("model " .. bad .. " is not a SentencePiece model", 1, true), out)
    T.eq(exists(d .. "/out"), false)
    rmdir(d)
  end,

  refuses_spm_encode_that_rejects_the_model = function(T)
    need_spm(T)
    local d = tmpdir()
    local txt = write(d .. "/c.txt", TEXT)
    local m = write(d .. "/small.model", fake_model(16)) -- read natively, but no model spm_encode can run
    local ok, out = make("input=" .. q(txt) .. " out=" .. q(d .. "/out") .. " model=" .. q(m))
    assert(not ok and out:find("spm_encode cannot use model " .. m, 1, true), out)
    T.eq(ls(d .. "/out"), {}) -- its temporary folder is removed
    rmdir(d)
  end,

  refuses_vocab_over_uint16 = function(T)
    local d = tmpdir()
    local txt = write(d .. "/c.txt", TEXT)
    local m = write(d .. "/big.model", fake_model(65537))
    local ok, out = make("input=" .. q(txt) .. " out=" .. q(d .. "/out") .. " model=" .. q(m))
    assert(not ok, out)
    assert(out:find("model " .. m .. " has more than 65,536 pieces: shard token ids are uint16 (0 .. 65535), so at most 65,536 "
      .. "pieces fit", 1, true), out)
    rmdir(d)
  end,

  refuses_bad_jsonl_lines_by_file_and_line = function(T)
    need_spm(T)
    local d = tmpdir()
    local function run(name, body, extra)
      local p = write(d .. "/" .. name, body)
      local ok, out = make("input=" .. q(p) .. " out=" .. q(d .. "/out") .. " val_docs=0 " .. (extra or ""))
      assert(not ok, out)
      return p, out
    end
    local p, out = run("arr.jsonl", '{"text": "fine"}\n[1, 2]\n')
    assert(out:find(p .. ":2: the line is an array, not a JSON object", 1, true), out)
    p, out = run("str.jsonl", '{"text": "fine"}\n\n"just a string"\n')
    assert(out:find(p .. ":3: the line is a string, not a JSON object", 1, true), out)
    p, out = run("nofield.jsonl", '{"text": "a"}\n{"text": "b"}\n{"body": "c", "id": 3}\n')
    assert(out:find(p .. ':3: the object has no field "text" (its fields: body, id); pass field=NAME', 1, true), out)
    p, out = run("num.jsonl", '{"text": 12}\n')
    assert(out:find(p .. ':1: field "text" is a number, not a string', 1, true), out)
    p, out = run("broken.jsonl", '{"text": "a"}\n{"text": "unterminated\n')
    assert(out:find(p .. ":2: not valid JSON", 1, true), out)
    p, out = run("field.jsonl", '{"text": "a"}\n', "field=content")
    assert(out:find(p .. ':1: the object has no field "content" (its fields: text)', 1, true), out)
    T.eq(ls(d .. "/out"), {}) -- every failed run removed its temporary folder
    rmdir(d)
  end,

  refuses_unknown_and_bad_options = function(T)
    local d = tmpdir()
    local txt = write(d .. "/c.txt", TEXT)
    local base = "input=" .. q(txt) .. " out=" .. q(d .. "/out") .. " "
    local ok, out = make(base .. "val_doc=3")
    assert(not ok and out:find("unknown key 'val_doc' (argument 3) (did you mean 'val_docs'?)", 1, true), out)
    ok, out = make(base .. "shard_token=3")
    assert(not ok and out:find("did you mean 'shard_tokens'?", 1, true), out)
    ok, out = make(base .. "format=csv")
    assert(not ok and out:find("format=csv is not one of auto, text, jsonl", 1, true), out)
    ok, out = make(base .. "val_docs=many")
    assert(not ok and out:find("val_docs=many (command line) is not an integer", 1, true), out)
    ok, out = make(base .. "shard_tokens=0")
    assert(not ok and out:find("shard_tokens=0 must be in 1 .. 2147483647", 1, true), out)
    ok, out = make(base .. "prefix=a/b")
    assert(not ok and out:find("prefix=a/b may hold only", 1, true), out)
    ok, out = make("help")
    assert(ok and out:find("shard_tokens", 1, true) and out:find("100000000", 1, true), out)
    rmdir(d)
  end,

  refuses_when_no_document_is_left_for_training = function(T)
    need_spm(T)
    local d = tmpdir()
    local txt = write(d .. "/c.txt", TEXT)
    local ok, out = make("input=" .. q(txt) .. " out=" .. q(d .. "/out"))
    assert(not ok, out)
    assert(out:find("all 5 documents went to validation (val_docs=50000) and none is left for training", 1, true), out)
    T.eq(ls(d .. "/out"), {})
    ok, out = make("input=" .. q(write(d .. "/blank.txt", "\n  \n")) .. " out=" .. q(d .. "/out"))
    assert(not ok and out:find("the input holds no document", 1, true), out)
    rmdir(d)
  end,
}
