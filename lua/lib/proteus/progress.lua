--- proteus.progress — the live progress line of a training run: step, loss, tokens/s, training time
--- against the wallclock cap and the time left. On a terminal one line is redrawn in place (at most
--- `redraw_s` apart); when stdout is not a terminal (a log file, CI) a plain line is printed every
--- `plain_every_s` seconds instead, so logs stay readable.
--
--   local progress = require "proteus.progress"
--   local p = progress.new{total_steps = 20000, max_ms = 600000, tokens_per_step = 524288}
--   p:update{step = 120, elapsed_ms = 10320, loss = 3.21, lr_mul = 1}
--   p:clear()      -- before printing an ordinary line (erases the live line on a terminal)
--   p:finish()     -- ends the live line
--   progress.format{step = 120, total_steps = 20000, elapsed_ms = 10320, max_ms = 600000, ...} -> string
--
-- Options of new: total_steps, max_ms (nil: no cap), tokens_per_step, out = io.stdout,
-- tty = nil (auto: proteus._host.isatty(1)), redraw_s = 0.1, plain_every_s = 60, clock = host.clock.
-- Tests: tests/lua/test_train.lua (progress_format, progress_plain).
local host = require "proteus._host"

local progress = {}

--- "1h02m", "9m18s", "42.1s".
function progress.duration(s)
  if s ~= s or s == math.huge then return "?" end
  if s < 0 then s = 0 end
  if s < 60 then return string.format("%.1fs", s) end
  if s < 3600 then return string.format("%dm%02ds", math.floor(s / 60), math.floor(s % 60)) end
  return string.format("%dh%02dm", math.floor(s / 3600), math.floor(s % 3600 / 60))
end

--- "950", "12.3k", "4.56M".
function progress.count(x)
  if x >= 1e6 then return string.format("%.2fM", x / 1e6) end
  if x >= 1e4 then return string.format("%.1fk", x / 1e3) end
  return string.format("%.0f", x)
end

--- Estimated seconds left: the smaller of (steps left × average step time) and (cap − elapsed).
function progress.remaining_s(o)
  local left = math.huge
  if o.step and o.step > 0 and o.total_steps then
    left = (o.total_steps - o.step) * (o.elapsed_ms / o.step) / 1000
  end
  if o.max_ms then left = math.min(left, math.max(o.max_ms - o.elapsed_ms, 0) / 1000) end
  return left
end

--- The text of the line for o = {step, total_steps, elapsed_ms, max_ms?, loss?, lr_mul?, tokens_per_step?}.
function progress.format(o)
  local parts = { string.format("step %d/%d", o.step, o.total_steps or 0) }
  if o.loss then parts[#parts + 1] = string.format("loss %.4f", o.loss) end
  if o.tokens_per_step and o.elapsed_ms > 0 then
    parts[#parts + 1] = progress.count(o.step * o.tokens_per_step / (o.elapsed_ms / 1000)) .. " tok/s"
  end
  local t = progress.duration(o.elapsed_ms / 1000)
  if o.max_ms then t = t .. "/" .. progress.duration(o.max_ms / 1000) end
  parts[#parts + 1] = "train " .. t
  parts[#parts + 1] = "left ~" .. progress.duration(progress.remaining_s(o))
  if o.lr_mul then parts[#parts + 1] = string.format("lr_mul %.3f", o.lr_mul) end
  return table.concat(parts, " | ")
end

local Progress = {}
Progress.__index = Progress

function progress.new(o)
  o = o or {}
  local tty = o.tty
  if tty == nil then tty = host.isatty(1) end
  local clock = o.clock or host.clock
  -- plain lines start one interval in (the log's own step lines cover the start)
  return setmetatable({ total_steps = o.total_steps, max_ms = o.max_ms, tokens_per_step = o.tokens_per_step,
    out = o.out or io.stdout, tty = tty, redraw_s = o.redraw_s or 0.1, plain_every_s = o.plain_every_s or 60,
    clock = clock, last_draw = (not tty) and clock() or nil, shown = false }, Progress)
end

--- Redraws (terminal) or prints (plain, when due) the line for s = {step, elapsed_ms, loss, lr_mul}.
function Progress:update(s)
  local now = self.clock()
  local every = self.tty and self.redraw_s or self.plain_every_s
  if self.last_draw and now - self.last_draw < every then return false end
  self.last_draw = now
  local line = progress.format { step = s.step, total_steps = self.total_steps, elapsed_ms = s.elapsed_ms,
    max_ms = self.max_ms, loss = s.loss, lr_mul = s.lr_mul, tokens_per_step = self.tokens_per_step }
  if self.tty then
    self.out:write("\r", line, "\27[K")
    self.shown = true
  else
    self.out:write("progress: ", line, "\n")
  end
  self.out:flush()
  return true
end

--- Erases the live line (terminal only) so an ordinary line can be printed.
function Progress:clear()
  if self.tty and self.shown then
    self.out:write("\r\27[K")
    self.out:flush()
    self.shown = false
  end
end

function Progress:finish() self:clear() end

return progress
