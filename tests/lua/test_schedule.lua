-- tests/lua/test_schedule.lua — proteus.schedule at the edges (first step, start of warmdown, exactly
-- at the cap, past the cap) against the formulas of spec §2.4, §3.4, §4.3, §5.3.
--
--   build/proteus tests/run.lua tests/lua/test_schedule.lua
local sched = require "proteus.schedule"

local function wc(step, elapsed, extra)
  local o = { step = step, elapsed_ms = elapsed, warmdown_iters = 1200, max_ms = 600000 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return sched.wallclock_warmdown(o)
end

return {
  wallclock_warmdown_edges = function(T)
    T.eq(wc(0, 0), 1.0)            -- first step: no timing yet
    T.eq(wc(1, 100), 1.0)          -- 100 ms/step: warmdown spans 120 s
    T.eq(wc(4799, 479900), 1.0)    -- rem 120100 > wd 120000
    T.eq(wc(4800, 480000), 1.0)    -- start of warmdown: rem == wd_ms -> rem/wd = 1
    T.eq(wc(4801, 480100), 119900 / 120000)
    T.eq(wc(5400, 540000), 0.5)
    T.eq(wc(6000, 600000), 0.0)    -- exactly at the cap
    T.eq(wc(6005, 600500), 0.0)    -- past the cap
    -- step_ms follows the measured average: 200 ms/step doubles the warmdown window
    T.eq(wc(2000, 400000), 200000 / (1200 * 200))
    T.eq(wc(10, 1000, { warmdown_iters = 0 }), 1.0)
  end,

  wallclock_warmdown_without_cap_is_iteration_based = function(T)
    local function it(step)
      return sched.wallclock_warmdown { step = step, warmdown_iters = 1200, max_ms = false, iterations = 20000 }
    end
    T.eq(it(0), 1.0)
    T.eq(it(18799), 1.0)
    T.eq(it(18800), 1.0)
    T.eq(it(18801), 1199 / 1200)
    T.eq(it(20000), 0.0)
    T.eq(it(20100), 0.0)
    T.raises(function() sched.wallclock_warmdown { step = 1, warmdown_iters = 10, max_ms = 0 } end,
      "iterations (needed without a wallclock cap) must be a number")
  end,

  fraction_warmdown_edges = function(T)
    local function fw(ms, floor) return sched.fraction_warmdown { elapsed_ms = ms, floor = floor } end
    T.eq(fw(0), 1.0)
    T.eq(fw(168000), 1.0)                       -- frac = 0.28 exactly: still 1
    T.eq(fw(168600), 1.0 - (168600 / 600000 - 0.28) / 0.72)
    T.near(fw(384000), 0.5, 1e-15)              -- frac 0.64: halfway
    T.eq(fw(600000), 0.0)                       -- at the cap
    T.eq(fw(700000), 0.0)                       -- past the cap, floor 0
    T.eq(fw(700000, 0.1), 0.1)                  -- floor
    T.eq(fw(0, 0.1), 1.0)
  end,

  iteration_warmdown_598 = function(T)
    local function iw(step) return sched.iteration_warmdown { step = step, iterations = 7000, warmdown_iters = 3500 } end
    T.eq(iw(0), 1.0)
    T.eq(iw(3499), 1.0)
    T.eq(iw(3500), 1.0)
    T.eq(iw(3501), 3499 / 3500)
    T.eq(iw(6476), 524 / 3500)   -- the step where #598 switched QAT on (lr_mul 0.1497)
    T.eq(iw(7000), 0.0)
    T.eq(iw(7100), 0.0)
    T.eq(sched.qat_due(iw(6476), 0.15), true)
    T.eq(sched.qat_due(iw(6475), 0.15), false) -- 525/3500 = 0.15 is not < 0.15
  end,

  cosine_with_floor = function(T)
    local function cs(t, floor) return sched.cosine { t = t, total = 100, floor = floor } end
    T.eq(cs(0), 1.0)
    T.near(cs(50), 0.5, 1e-15)
    T.eq(cs(100), 0.0)
    T.eq(cs(150), 0.0)
    T.eq(cs(100, 0.1), 0.1)
    T.near(cs(50, 0.1), 0.55, 1e-15)
    T.eq(cs(-5, 0.1), 1.0)
    T.raises(function() sched.cosine { t = 1, total = 0 } end, "total must be > 0")
  end,

  momentum_warmup_edges = function(T)
    T.eq(sched.momentum_warmup(0, 0.92, 0.99, 1500), 0.92)
    T.near(sched.momentum_warmup(750, 0.92, 0.99, 1500), 0.955, 1e-15)
    T.eq(sched.momentum_warmup(1500, 0.92, 0.99, 1500), 0.99)
    T.eq(sched.momentum_warmup(3000, 0.92, 0.99, 1500), 0.99)
    T.near(sched.momentum_warmup(250, 0.85, 0.95, 500), 0.90, 1e-15)
    T.eq(sched.momentum_warmup(10, 0.85, 0.95, 0), 0.95)
  end,

  swa_and_stop_predicates = function(T)
    T.eq(sched.swa_due(0.19, 50), true)
    T.eq(sched.swa_due(0.2, 50), false)
    T.eq(sched.swa_due(0.1, 51), false)
    T.eq(sched.swa_due(0.1, 6400), true)
    T.eq(sched.swa_due(0.1, 60, 0.2, 20), true)
    T.eq(sched.should_stop(599999.9), false)
    T.eq(sched.should_stop(600000), true)
    T.eq(sched.should_stop(10, 0), false)
    T.raises(function() sched.qat_due(0 / 0) end, "lr_mul must be a number")
  end,
}
