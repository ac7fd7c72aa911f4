--- bench/cpu_fused.lua — what the fused GPT ops (issue 11) change on the CPU: one PROTEUS v9 forward +
-- backward at T = 256, batch 4 (bench/gpt_step.lua's CPU shape) with fused_norms and fused_mlp on and
-- off, in ONE process, alternating the two models step by step so load changes hit both alike; the
-- same weights and tokens, so the losses must be equal (they are the same bits on the CPU). Prints the
-- median of each and the ratio fused / unfused.
--
--   build/proteus bench/cpu_fused.lua [reps=7] [warmup=1] [B=4] [T=256] [config=proteus_v9]
local pt = require "proteus"
local nn = require "proteus.nn"
local host = require "proteus._host"
local here = debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$")
local BC = dofile(here .. "bench_common.lua")
local G = dofile(here .. "../tests/lua/gpt_configs.lua")

local opts = BC.parse_args("cpu_fused", { reps = "7", warmup = "1", B = "4", T = "256", config = "proteus_v9" },
  { "reps", "warmup", "B", "T", "config" })
local reps, warmup = math.tointeger(tonumber(opts.reps)), math.tointeger(tonumber(opts.warmup))
local B, T = math.tointeger(tonumber(opts.B)), math.tointeger(tonumber(opts.T))
local base = G.configs[opts.config] or error("cpu_fused: unknown config '" .. opts.config .. "'")

local function model(fused)
  pt.manual_seed(1234)
  return nn.GPT(G.with(base, { fused_norms = fused, fused_mlp = fused }))
end
local m = { [true] = model(true), [false] = model(false) }
pt.manual_seed(7)
local xy = pt.randint(0, m[true].cfg.vocab_size, { B, T + 1 })
local x, y = xy:narrow(2, 1, T):contiguous(), xy:narrow(2, 2, T):contiguous()

local times, loss = { [true] = {}, [false] = {} }, {}
for i = 1, warmup + reps do
  for _, fused in ipairs { true, false } do
    m[fused]:zero_grad()
    collectgarbage()
    local t0 = host.clock()
    local l = m[fused]:forward(x, y)
    l:backward()
    local dt = host.clock() - t0
    loss[fused] = l:item()
    if i > warmup then times[fused][#times[fused] + 1] = dt end
  end
end
local a, b = BC.median(times[true]), BC.median(times[false])
print(string.format("cpu_fused: %s, B=%d T=%d, fwd+bwd, median of %d after %d warm-up, %s threads", opts.config, B, T,
  reps, warmup, os.getenv("OMP_NUM_THREADS") or "default"))
print(string.format("  fused   (fused_norms, fused_mlp)  %.3f s  loss %.7f", a, loss[true]))
print(string.format("  unfused                           %.3f s  loss %.7f", b, loss[false]))
print(string.format("  fused / unfused = %.3f; losses %s", a / b, loss[true] == loss[false] and "equal" or "DIFFER"))
