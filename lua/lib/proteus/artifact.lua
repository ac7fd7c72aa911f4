--- proteus.artifact — a model quantized by a proteus.quant policy, packed into the PTZ1 container
-- (docs/artifact.md), with the size accounting of the 16,000,000-byte cap; and loading it back.
--
--   local artifact = require "proteus.artifact"
--   local bytes, info = artifact.pack(model, quant.policy.proteus_as_run,
--     {codec = "zstd", level = 22, shuffle = false, recipe = "v9_lora_ttt", config = cfg,
--      tokenizer_sha256 = sha})                    -- info: sizes, int6 packing measurement, schemes
--   local info = artifact.write("run/model.ptz", model, policy, opts)   -- atomic; errors over the cap
--   local tensors, meta = artifact.load("run/model.ptz")                -- name -> dequantized f32
--   artifact.load_into(model, "run/model.ptz", {recipe = "v9_lora_ttt"})
--
-- Size accounting (artifact.account): model bytes (the artifact file) + code bytes (the recipe file
-- and every Lua library file the run loaded: package.loaded names mapped to files with
-- package.searchpath, counted as bytes of UTF-8 text) against 16,000,000. The C host's size is
-- reported on its own line (host_bytes) and not counted, as the records count their script and not
-- the Python interpreter. Over the cap, write() raises an error that shows the breakdown, unless
-- opts.allow_over = true (then info.fits = false).
--
-- int6 packing: with opts.int6_packing = "auto" (default) both forms are packed (6-bit, 4 values in
-- 3 bytes; and one byte per value) and the smaller file is kept; info.int6_packing records both sizes.
-- Tests: tests/lua/test_artifact_model.lua.
local pt = require "proteus"
local quant = require "proteus.quant"
local codec = require "proteus.codec"
local A = require "proteus._artifact"
local Q = require "proteus._quant"

local artifact = {}

artifact.CAP = 16000000

local function entries_of(results, packed6)
  local es = {}
  for i, r in ipairs(results) do
    local e = { name = r.name, scheme = r.scheme, shape = r.shape, orig_dtype = r.orig_dtype }
    if r.q then
      e.dtype = "i8"
      e.data = codec.tensor_bytes(r.q:contiguous())
      e.scale_dtype = r.scale:dtype()
      e.scales = codec.tensor_bytes(r.scale:contiguous())
      if packed6 and r.scheme == "int6_per_row" then
        e.data = codec.pack_int6(e.data)
        e.packed6 = true
      end
    else
      e.dtype = r.data:dtype()
      e.data = codec.tensor_bytes(r.data)
    end
    es[i] = e
  end
  return es
end

local function extra_of(results, policy)
  local per = {}
  for _, r in ipairs(results) do
    local m = r.meta or {}
    local item = { method = m.method }
    if m.percentile then item.percentile = m.percentile end
    if m.k then item.k = m.k end
    per[r.name] = item
  end
  return { quant = { policy = policy.name, section = policy.section, tensors = per } }
end

local function policy_of(p)
  if type(p) == "string" then return quant.policy[p] or error("artifact: unknown policy '" .. p .. "'", 3) end
  if type(p) ~= "table" or not p.large then error("artifact: expected a quant.policy table", 3) end
  return p
end

--- Packs quantize_model results (a list) into artifact bytes. Returns bytes, info.
function artifact.pack_results(results, policy, opts)
  opts = opts or {}
  policy = policy_of(policy)
  local name = opts.codec or policy.codec or "zstd"
  local level = opts.level or (name == policy.codec and policy.level) or codec.max_level(name)
  local shuffle = opts.shuffle
  if shuffle == nil then shuffle = (name == policy.codec) and policy.shuffle or false end
  local meta = { recipe = opts.recipe or "", config = opts.config or {}, extra = extra_of(results, policy),
    tokenizer_sha256 = opts.tokenizer_sha256 or "" }
  local mode = opts.int6_packing or "auto"
  local has6 = false
  for _, r in ipairs(results) do if r.scheme == "int6_per_row" then has6 = true end end
  local bytes, packing
  local measured = {}
  if mode == "auto" and has6 then
    local b1 = A.pack(entries_of(results, false), meta, name, level, shuffle)
    local b6 = A.pack(entries_of(results, true), meta, name, level, shuffle)
    measured = { bytes_per_value = #b1, packed6 = #b6 }
    if #b6 < #b1 then bytes, packing = b6, "packed6" else bytes, packing = b1, "bytes_per_value" end
  elseif mode == "packed6" or mode == "bytes_per_value" or mode == "auto" then
    bytes = A.pack(entries_of(results, mode == "packed6"), meta, name, level, shuffle)
    packing = has6 and (mode == "auto" and "bytes_per_value" or mode) or "none"
    if has6 then measured[packing] = #bytes end
  else
    error("artifact: int6_packing must be \"auto\", \"packed6\" or \"bytes_per_value\", got " .. tostring(mode), 2)
  end
  local sizes = A.sizes(bytes)
  local schemes = {}
  for _, r in ipairs(results) do schemes[r.scheme] = (schemes[r.scheme] or 0) + 1 end
  return bytes, { model_bytes = #bytes, codec = name, level = level, shuffle = shuffle and true or false,
    int6_packing = { chosen = packing, sizes = measured }, sizes = sizes, schemes = schemes, policy = policy.name }
end

--- Quantizes model by policy and packs it. opts: codec, level, shuffle, recipe, config,
-- tokenizer_sha256, hessians (GPTQ policy), int6_packing. Returns bytes, info (info.results holds the
-- quantized tensors).
function artifact.pack(model, policy, opts)
  policy = policy_of(policy)
  local results = quant.quantize_model(model, policy, opts)
  local bytes, info = artifact.pack_results(results, policy, opts)
  info.results = results
  return bytes, info
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

--- The code files of this run: the recipe (opts.recipe_path, default arg[0]) and every Lua module in
-- package.loaded that package.searchpath finds on package.path. Returns a sorted list of {path, bytes}.
function artifact.code_files(recipe_path)
  local seen, files = {}, {}
  local function add(p)
    if p and not seen[p] then
      local n = file_size(p)
      if n then seen[p] = true; files[#files + 1] = { path = p, bytes = n } end
    end
  end
  add(recipe_path)
  for name in pairs(package.loaded) do
    if type(name) == "string" then add(package.searchpath(name, package.path)) end
  end
  table.sort(files, function(a, b) return a.path < b.path end)
  return files
end

--- Size accounting for a model of model_bytes. opts: recipe_path (default arg[0]), host_path (default
-- arg[-1]), cap (16,000,000). Returns {model_bytes, code_bytes, code_files, host_bytes, total, cap,
-- fits, lines}.
function artifact.account(model_bytes, opts)
  opts = opts or {}
  local recipe = opts.recipe_path
  if recipe == nil and arg then recipe = arg[0] end
  local files = artifact.code_files(recipe)
  local code = 0
  for _, f in ipairs(files) do code = code + f.bytes end
  local host = opts.host_path or (arg and arg[-1])
  local host_bytes = host and file_size(host) or nil
  local cap = opts.cap or artifact.CAP
  local total = model_bytes + code
  local lines = {
    string.format("model bytes: %d", model_bytes),
    string.format("code bytes: %d (%d files: the recipe and the Lua library files this run loaded)", code, #files),
    string.format("total: %d of %d (%s by %d)", total, cap, total <= cap and "under" or "OVER", math.abs(cap - total)),
    string.format("C host (not counted): %s", host_bytes and (host_bytes .. " bytes, " .. host) or "unknown"),
  }
  return { model_bytes = model_bytes, code_bytes = code, code_files = files, host_bytes = host_bytes,
    host_path = host, total = total, cap = cap, fits = total <= cap, lines = lines }
end

--- Packs and writes the artifact atomically after checking the cap. Returns info with info.account.
function artifact.write(path, model, policy, opts)
  opts = opts or {}
  local bytes, info = artifact.pack(model, policy, opts)
  local acc = artifact.account(#bytes, opts)
  info.account = acc
  if not acc.fits and not opts.allow_over then
    error(string.format("artifact %s: over the %d-byte cap:\n  %s", path, acc.cap, table.concat(acc.lines, "\n  ")), 2)
  end
  Q.write_atomic(path, bytes)
  info.path = path
  return info
end

--- Dequantized f32 tensor of an unpacked entry (the function the stored integers and scales define).
function artifact.entry_tensor(e)
  if e.scheme == "int6_per_row" or e.scheme == "int8_per_row" or e.scheme == "int8_per_tensor" then
    local n = 1
    for _, d in ipairs(e.shape) do n = n * d end
    local raw = e.packed6 and codec.unpack_int6(e.data, n) or e.data
    local q = codec.tensor_from_bytes(raw, "i8", e.shape)
    local ns = e.scheme == "int8_per_tensor" and 1 or e.shape[1]
    local s = codec.tensor_from_bytes(e.scales, e.scale_dtype, { ns })
    return Q.dequant(q, s)
  end
  return codec.tensor_from_bytes(e.data, e.dtype, e.shape):to("f32")
end

--- Reads an artifact: name -> dequantized f32 tensor, and meta (recipe, config, extra, sizes,
-- names in file order as meta.names).
function artifact.load(path)
  local entries, meta = A.read(path)
  local out, names = {}, {}
  for i, e in ipairs(entries) do
    out[e.name] = artifact.entry_tensor(e)
    names[i] = e.name
  end
  meta.names = names
  meta.entries = entries
  return out, meta
end

--- Loads an artifact into a model's parameters (in place). opts.recipe: refuse an artifact written by
-- another recipe. Every model parameter must be present with its shape; extra tensors are refused.
function artifact.load_into(model, path, opts)
  opts = opts or {}
  local tensors, meta = artifact.load(path)
  if opts.recipe and meta.recipe ~= opts.recipe then
    error(string.format("artifact %s was written by recipe '%s', not '%s'", path, tostring(meta.recipe), opts.recipe), 2)
  end
  local seen = {}
  for name, p in model:named_parameters() do
    local t = tensors[name]
    if not t then
      error(string.format("artifact %s has no tensor %s (an artifact of another recipe or config?)", path, name), 2)
    end
    local ps, ts = table.concat(p:shape(), "x"), table.concat(t:shape(), "x")
    if ps ~= ts then
      error(string.format("artifact %s: tensor %s has shape %s, the model's is %s (another config?)", path, name, ts, ps), 2)
    end
    seen[name] = true
  end
  for _, name in ipairs(meta.names) do
    if not seen[name] then
      error(string.format("artifact %s holds tensor %s, which the model does not have (another recipe or config?)",
        path, name), 2)
    end
  end
  pt.no_grad(function()
    for name, p in model:named_parameters() do p:copy_(tensors[name]) end
  end)
  return meta
end

return artifact
