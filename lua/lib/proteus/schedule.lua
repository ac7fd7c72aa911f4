--- proteus.schedule — learning-rate multipliers, momentum warmup and the step predicates of the
--- records (spec /work/shared/spec/parameter-golf.md §2.4, §3.4, §4.3, §5.3). Pure functions of the
--- counters you pass: an optimizer's step(lr_mul) takes their result.
--
--   local sched = require "proteus.schedule"
--   local m = sched.wallclock_warmdown{elapsed_ms = t, step = s, warmdown_iters = 1200, max_ms = 600000}
--   opt:step(m)
--   muon:set("momentum", sched.momentum_warmup(s, 0.85, 0.95, 500))
--   if sched.qat_due(m, 0.15) then ... end ; if sched.swa_due(m, s) then swa:add() end
--
-- Cosine "per step / per chunk / per epoch" is the same function of the counter passed as t.
-- Tests: build/proteus tests/run.lua tests/lua/test_schedule.lua
local schedule = {}

local function num(what, v)
  if type(v) ~= "number" or v ~= v then
    error(string.format("schedule: %s must be a number, got %s", what, tostring(v)), 3)
  end
  return v
end

--- §2.4 wallclock-aware warmdown (baseline, PROTEUS, DeepQuant). o = {elapsed_ms, step,
--- warmdown_iters, max_ms = 600000 (nil/false/0: no wallclock cap), iterations (for no cap)}.
---   cap:    step_ms = elapsed/max(step,1); wd_ms = warmdown_iters·step_ms; rem = max(max_ms − elapsed, 0)
---           lr_mul = rem/wd_ms if rem ≤ wd_ms else 1   (wd_ms floored at 1e-9 as the records do)
---   no cap: lr_mul = max((iterations − step)/warmdown_iters, 0) for step ≥ iterations − warmdown_iters,
---           else 1
--- warmdown_iters ≤ 0 means no warmdown (1).
function schedule.wallclock_warmdown(o)
  local wd_iters = num("warmdown_iters", o.warmdown_iters)
  if wd_iters <= 0 then return 1.0 end
  local step = num("step", o.step)
  local max_ms = o.max_ms
  if max_ms == nil then max_ms = 600000 end
  if max_ms == false or max_ms == 0 then
    local iters = num("iterations (needed without a wallclock cap)", o.iterations)
    return schedule.iteration_warmdown { step = step, iterations = iters, warmdown_iters = wd_iters }
  end
  local elapsed = num("elapsed_ms", o.elapsed_ms)
  local step_ms = elapsed / math.max(step, 1)
  local wd_ms = wd_iters * step_ms
  local rem = math.max(num("max_ms", max_ms) - elapsed, 0.0)
  if rem <= wd_ms then return rem / math.max(wd_ms, 1e-9) end
  return 1.0
end

--- §4.3 fraction-of-time warmdown (#1539): frac = elapsed_ms/max_ms; 1 while frac ≤ hold, then
--- max(1 − (frac − hold)/(1 − hold), floor). o = {elapsed_ms, max_ms = 600000, hold = 0.28, floor = 0}.
function schedule.fraction_warmdown(o)
  local max_ms = num("max_ms", o.max_ms or 600000)
  local hold = num("hold", o.hold or 0.28)
  local floor = num("floor", o.floor or 0.0)
  local frac = num("elapsed_ms", o.elapsed_ms) / max_ms
  if frac <= hold then return 1.0 end
  return math.max(1.0 - (frac - hold) / (1.0 - hold), floor)
end

--- §5.3 iteration warmdown (#598): lr_mul = (iterations − step)/warmdown_iters for
--- step ≥ iterations − warmdown_iters (never below 0), else 1. o = {step, iterations, warmdown_iters}.
function schedule.iteration_warmdown(o)
  local step, iters, wd = num("step", o.step), num("iterations", o.iterations), num("warmdown_iters", o.warmdown_iters)
  if wd <= 0 then return 1.0 end
  if step >= iters - wd then return math.max((iters - step) / wd, 0.0) end
  return 1.0
end

--- Cosine from 1 at t = 0 to floor at t = total (held at floor after): floor + (1 − floor)·(1 + cos(π·t/total))/2.
--- o = {t, total, floor = 0}. t counts steps, chunks or epochs, whichever the caller passes.
function schedule.cosine(o)
  local t, total, floor = num("t", o.t), num("total", o.total), num("floor", o.floor or 0.0)
  if total <= 0 then error("schedule.cosine: total must be > 0, got " .. tostring(total), 2) end
  local x = math.min(math.max(t, 0) / total, 1.0)
  return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * x))
end

--- Linear momentum warmup: from → to over `steps` steps, then `to` (records: 0.92 → 0.99 over 1500;
--- baseline 0.85 → 0.95 over 500).
function schedule.momentum_warmup(step, from, to, steps)
  num("step", step)
  num("from", from)
  num("to", to)
  num("steps", steps)
  if steps <= 0 then return to end
  local frac = math.min(step / steps, 1.0)
  return (1.0 - frac) * from + frac * to
end

--- Late QAT switch (§4.3, §5.3): on once lr_mul < threshold (0.15 in the records).
function schedule.qat_due(lr_mul, threshold)
  return num("lr_mul", lr_mul) < (threshold or 0.15)
end

--- SWA snapshot predicate (§3.4): lr_mul < threshold (0.2) and step % every (50) == 0.
function schedule.swa_due(lr_mul, step, threshold, every)
  return num("lr_mul", lr_mul) < (threshold or 0.2) and num("step", step) % (every or 50) == 0
end

--- §2.4 stop rule: after a step, stop when the accumulated training time reached the cap.
function schedule.should_stop(elapsed_ms, max_ms)
  max_ms = max_ms or 600000
  return max_ms > 0 and num("elapsed_ms", elapsed_ms) >= max_ms
end

return schedule
