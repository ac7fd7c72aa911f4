-- examples/hello.lua — the smallest proteus script: arguments, key=value overrides, the host
-- clock, and polling Ctrl-C between the steps of a (pretend) training loop.
--
--   build/proteus examples/hello.lua                  # 5 steps
--   build/proteus examples/hello.lua steps=50 name=you
--   build/proteus -i examples/hello.lua               # then stay at the REPL
--
-- Press Ctrl-C during the loop: the loop notices between steps, reports, and exits with 130.

local host = require "proteus._host"

-- key=value arguments (the recipe config library does this properly; this is the idea)
local opts = { steps = 5, name = "world" }
for i = 1, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if not k then error("hello.lua: argument " .. i .. " '" .. arg[i] .. "' is not key=value", 0) end
  if opts[k] == nil then error("hello.lua: unknown option '" .. k .. "' (known: steps, name)", 0) end
  opts[k] = type(opts[k]) == "number" and assert(tonumber(v), k .. " must be a number, got " .. v) or v
end

print(string.format("hello, %s, from proteus %s (lua/lib at %s)", opts.name, host.version, host.home()))

host.trap_interrupt(true) -- Ctrl-C sets a flag; we stop cleanly between steps
local t0 = host.clock()
local x = 0.0
for step = 1, opts.steps do
  for i = 1, 200000 do x = x + 1 / (i * i) end -- a step's worth of work
  if host.interrupted() then
    print(string.format("interrupted at step %d; a recipe would checkpoint here", step))
    os.exit(130)
  end
  print(string.format("step %d/%d  x=%.6f  %.3fs", step, opts.steps, x / step, host.clock() - t0))
end
host.trap_interrupt(false)
