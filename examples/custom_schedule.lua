-- examples/custom_schedule.lua — a learning-rate schedule written in Lua and handed to the training
-- loop: linear warmup, then a cosine decay to a floor (proteus.schedule.cosine), on a tiny GPT.
--
--   build/proteus examples/custom_schedule.lua [steps=12] [warmup=4] [floor=0.1]
--
-- train.run calls lr_schedule(ctx) before every step with ctx = {step (steps done so far, 0 first),
-- elapsed_ms, max_steps, max_wallclock_ms} and multiplies every optimizer group's lr by the result.
-- Any Lua function of those counters is a schedule; the records' schedules are in proteus.schedule
-- (wallclock_warmdown, fraction_warmdown, iteration_warmdown, cosine, momentum_warmup).
-- Runs in a few seconds on a CPU; tests/lua/test_examples.lua runs it.
local pt = require "proteus"
local nn = require "proteus.nn"
local data = require "proteus.data"
local optim = require "proteus.optim"
local sched = require "proteus.schedule"
local train = require "proteus.train"

local cfg = { steps = 12, warmup = 4, floor = 0.1 }
for _, a in ipairs(arg or {}) do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if not k or cfg[k] == nil then error("custom_schedule: unknown argument '" .. a .. "' (steps=, warmup=, floor=)", 0) end
  cfg[k] = assert(tonumber(v), k .. " must be a number")
end

-- the schedule: a pure function of the step counter
local function warmup_cosine(ctx)
  if ctx.step < cfg.warmup then return (ctx.step + 1) / cfg.warmup end
  return sched.cosine { t = ctx.step - cfg.warmup, total = ctx.max_steps - cfg.warmup, floor = cfg.floor }
end

-- record what the loop asked for, to print the curve next to the losses
local used = {}
local function recorded(ctx)
  local m = warmup_cosine(ctx)
  used[ctx.step + 1] = m
  return m
end

pt.manual_seed(1)
local model = nn.GPT { vocab_size = 1024, num_layers = 2, model_dim = 64, num_heads = 4, num_kv_heads = 2, mlp_mult = 2 }
local opt = optim.AdamW { params = model:parameters(), lr = 0.01, betas = { 0.9, 0.95 }, weight_decay = 0 }
local res = train.run {
  model = model, optimizers = { opt }, stream = data.stream(data.paths().train),
  seq_len = 64, batch_seqs = 4, max_steps = cfg.steps, lr_schedule = recorded,
  log_every = 1000, checkpoint = false,
}

print(string.format("%4s  %8s  %s", "step", "lr_mul", "bar"))
for s, m in ipairs(used) do
  print(string.format("%4d  %8.4f  %s", s, m, string.rep("#", math.floor(m * 40 + 0.5))))
end
-- the warmup rises linearly to 1, the cosine ends just above the floor
assert(math.abs(used[1] - 1 / cfg.warmup) < 1e-12, "first step of warmup")
assert(math.abs(used[cfg.warmup + 1] - 1) < 1e-12, "the cosine starts at 1")
assert(used[#used] > cfg.floor and used[#used] < 0.2, "the cosine ends near the floor")
print(string.format("trained %d steps in %.0f ms; lr_mul went %.2f -> 1 -> %.3f", res.steps, res.train_time_ms,
  used[1], used[#used]))
