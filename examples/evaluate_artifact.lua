-- examples/evaluate_artifact.lua — evaluate a saved artifact (the quantized, compressed model file
-- of a submission) on its own: read it, rebuild the model from the config stored inside, load the
-- dequantized weights, and score BPB through the ledger. Without artifact=, it first makes one: a
-- tiny GPT trained a few steps, quantized by the baseline policy (int8 per row) and packed with zstd.
--
--   build/proteus examples/evaluate_artifact.lua                                   # make one, evaluate it
--   build/proteus examples/evaluate_artifact.lua artifact=runs/x/model.ptz tokens=0  # all validation tokens
--
-- Arguments: artifact=PATH (a PTZ1 file of proteus.artifact; its metadata holds the config), tokens=N
-- (score the first N validation targets; default 8192, 0 = all of them), dir= (where a made artifact
-- goes, default runs/evaluate_artifact), seq_len= (default 128).
-- The format: docs/artifact.md. tests/lua/test_examples.lua runs this file.
local pt = require "proteus"
local nn = require "proteus.nn"
local data = require "proteus.data"
local eval = require "proteus.eval"
local optim = require "proteus.optim"
local quant = require "proteus.quant"
local artifact = require "proteus.artifact"

local opts = { artifact = "", tokens = 8192, dir = "runs/evaluate_artifact", seq_len = 128 }
for _, a in ipairs(arg or {}) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k or opts[k] == nil then
    error("evaluate_artifact: unknown argument '" .. a .. "' (artifact=, tokens=, dir=, seq_len=)", 0)
  end
  opts[k] = type(opts[k]) == "number" and assert(math.tointeger(tonumber(v)), k .. " must be an integer") or v
end

local val = data.open_val { vocab = 1024 }
-- a slice of the validation stream for a quick look; tokens=0 scores everything, as a submission does
local function slice()
  if opts.tokens == 0 or opts.tokens + 1 >= #val.tokens then return val end
  return { tokens = val.tokens:sub(0, opts.tokens + 1), tables = val.tables }
end
local function score(model, label)
  return pt.no_grad(function()
    return eval.standard(slice(), function(x) return model:logits(x) end,
      { seq_len = opts.seq_len, batch_seqs = 8, label = label })
  end)
end

local path = opts.artifact
if path == "" then
  -- make an artifact: a tiny model, a few AdamW steps, the baseline quantization policy
  os.execute("mkdir -p '" .. opts.dir:gsub("'", "'\\''") .. "'")
  path = opts.dir .. "/model.ptz"
  local config = { vocab_size = 1024, num_layers = 2, model_dim = 64, num_heads = 4, num_kv_heads = 2, mlp_mult = 2 }
  pt.manual_seed(11)
  local model = nn.GPT(config)
  local opt = optim.AdamW { params = model:parameters(), lr = 0.01, betas = { 0.9, 0.95 }, weight_decay = 0 }
  local stream = data.stream(data.paths().train)
  for _ = 1, 5 do
    local tok = stream:next_batch(4 * 64, 0, 1):tensor(0, 4 * 64 + 1, "i64")
    local loss = model:forward(tok:narrow(1, 1, 256):reshape({ 4, 64 }), tok:narrow(1, 2, 256):reshape({ 4, 64 }))
    loss:backward()
    opt:step()
    opt:zero_grad()
  end
  local info = artifact.write(path, model, quant.policy.baseline,
    { recipe = "evaluate_artifact", config = config, codec = "zstd", level = 19 })
  print(string.format("wrote %s: %d bytes (%s)", path, info.model_bytes, table.concat(info.account.lines, "; ")))
  local before = score(model, "pre_quant")
  print(string.format("the model before quantization: val_bpb %.4f", before.bpb))
end

-- evaluate the file on its own: everything needed is inside it
local _, meta = artifact.load(path)
assert(type(meta.config) == "table", path .. ": the artifact stores no config; which model is it?")
print(string.format("%s: recipe %s, %d tensors", path, tostring(meta.recipe), #meta.names))
local model = nn.GPT(meta.config)
artifact.load_into(model, path)
local r = score(model, "artifact")
print(string.format("the artifact: val_bpb %.4f over %d targets (ledger %s)", r.bpb, r.report.scored_once, r.report.verdict))
assert(r.report.verdict == "legal" and r.bpb > 0 and r.bpb < 20, "a finite BPB through a legal ledger")
