-- examples/export_to_pytorch.lua — train a small GPT for a few steps in proteus, export its weights
-- as safetensors with the PyTorch state-dict names of the spec, run the same model in PyTorch
-- (tests/reference/gpt_ref.py, a model written from the spec) on the same tokens, and compare the
-- losses.
--
--   build/proteus examples/export_to_pytorch.lua [steps=3] [dir=runs/export_to_pytorch] [python=/usr/bin/python3]
--
-- Needs Debian's python3-torch (scripts/setup.sh installs it) under /usr/bin/python3; without it the
-- example says so and stops after the export. Files written to dir: model.safetensors (the weights;
-- metadata "config" holds the config as JSON), tokens.safetensors (x, y), torch.json (PyTorch's loss).
-- The same comparison for the five full-size configs and every gradient is tests/lua/test_gpt_parity.lua;
-- tests/lua/test_examples.lua runs this file.
local pt = require "proteus"
local nn = require "proteus.nn"
local data = require "proteus.data"
local optim = require "proteus.optim"
local st = require "proteus.safetensors"
local json = require "proteus.json"

local opts = { steps = 3, dir = "runs/export_to_pytorch", python = "/usr/bin/python3" }
for _, a in ipairs(arg or {}) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k or opts[k] == nil then error("export_to_pytorch: unknown argument '" .. a .. "' (steps=, dir=, python=)", 0) end
  opts[k] = k == "steps" and assert(math.tointeger(tonumber(v)), "steps must be an integer") or v
end
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
os.execute("mkdir -p " .. q(opts.dir))

-- a small model with the PROTEUS switches; keys are proteus.nn's (the reference reads the same keys)
local config = { vocab_size = 1024, num_layers = 2, model_dim = 64, num_heads = 4, num_kv_heads = 2, mlp_mult = 2,
  rope_base = 50000, init = "orthogonal", depth_scale = true, bigram_vocab_size = 512, bigram_dim = 32,
  smear_gate = true }
pt.manual_seed(5)
local model = nn.GPT(config)

-- a few training steps, so the exported weights are trained ones (zero-initialised projections move)
local stream = data.stream(data.paths().train)
local opt = optim.AdamW { params = model:parameters(), lr = 0.01, betas = { 0.9, 0.95 }, weight_decay = 0 }
local B, T = 4, 64
local function batch()
  local tok = stream:next_batch(B * T, 0, 1):tensor(0, B * T + 1, "i64")
  return tok:narrow(1, 1, B * T):reshape({ B, T }), tok:narrow(1, 2, B * T):reshape({ B, T })
end
for s = 1, opts.steps do
  local x, y = batch()
  local loss = model:forward(x, y)
  loss:backward()
  opt:step()
  opt:zero_grad()
  print(string.format("step %d  train_loss %.4f", s, loss:item()))
end

-- the loss in proteus on held-out tokens
local x, y = batch()
local loss = pt.no_grad(function() return model:forward(x, y):item() end)

-- export: weights (state-dict names), tokens
local wpath, tpath, opath = opts.dir .. "/model.safetensors", opts.dir .. "/tokens.safetensors", opts.dir .. "/torch.json"
local weights = {}
for name, p in model:named_parameters() do weights[name] = p:detach() end
st.save(wpath, weights, { config = json.encode(config) })
st.save(tpath, { x = x, y = y })
print(string.format("exported %s (%d parameters) and %s", wpath, model:num_params(), tpath))

-- PyTorch: the reference model with the same config keys (--set KEY=JSON over the baseline's)
local probe = io.popen(q(opts.python) .. " -c 'import torch' 2>&1")
local why = probe:read("a")
if not probe:close() then
  print("PyTorch not available under " .. opts.python .. " (" .. (why:match("([^\n]+)\n?$") or "?")
    .. "); install Debian's python3-torch (scripts/setup.sh) to run the comparison")
  return
end
local here = debug.getinfo(1, "S").source:sub(2):gsub("[^/]*$", "")
local ref = here .. "../tests/reference/gpt_ref.py"
local sets = {}
for k, v in pairs(config) do sets[#sets + 1] = "--set " .. q(k .. "=" .. json.encode(v)) end
table.sort(sets)
local cmd = table.concat({ q(opts.python), q(ref), "--config baseline", table.concat(sets, " "), "--weights", q(wpath),
  "--tokens", q(tpath), "--out", q(opath), "--quiet", "2>&1" }, " ")
local p = io.popen(cmd)
local out = p:read("a")
if not p:close() then error("export_to_pytorch: PyTorch could not run the exported model:\n" .. cmd .. "\n" .. out, 0) end
local torch_loss = json.read(opath).loss

local rel = math.abs(loss - torch_loss) / math.abs(torch_loss)
print(string.format("proteus loss %.7f   PyTorch loss %.7f   relative difference %.2e", loss, torch_loss, rel))
assert(rel < 1e-5, "the exported model gives the same loss in PyTorch")
print("the model trained in proteus gives the same loss in PyTorch")
