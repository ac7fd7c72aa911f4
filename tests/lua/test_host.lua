-- tests/lua/test_host.lua — the host module proteus._host (interrupt flag, clock, paths), module
-- lookup, the REPL helpers of proteus.repl, and the runner's own helpers.
--
--   build/proteus tests/run.lua tests/lua/test_host.lua
--
-- The interrupt tests send SIGINT to this process (kill -INT $PPID from a child shell).

local host = require "proteus._host"
local repl = require "proteus.repl"

local function send_sigint()
  local p = assert(io.popen("kill -INT $PPID"))
  p:close()
end

local function tmpdir()
  local p = assert(io.popen("mktemp -d"))
  local d = p:read("l")
  p:close()
  return d
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

return {
  version_is_semver = function(T)
    T.eq(type(host.version), "string")
    assert(host.version:match("^%d+%.%d+%.%d+$"), "version " .. host.version)
  end,

  clock_is_monotonic_seconds = function(T)
    local t0 = host.clock()
    T.eq(math.type(t0), "float")
    local t1 = host.clock()
    assert(t1 >= t0, "clock went back: " .. t0 .. " then " .. t1)
    local p = assert(io.popen("sleep 0.2"))
    p:close()
    local dt = host.clock() - t1
    assert(dt >= 0.19 and dt < 5, "sleep 0.2 measured as " .. dt .. " s")
  end,

  isatty_checks_its_argument = function(T)
    T.eq(type(host.isatty(0)), "boolean")
    T.eq(host.isatty(1000), false) -- not an open descriptor
    T.raises(function() host.isatty(-1) end, "file descriptor out of range")
    T.raises(function() host.isatty("x") end, "number expected")
  end,

  home_is_first_on_package_path = function(T)
    local home = host.home()
    assert(home:match("lua/lib$"), "home() = " .. home)
    local f = io.open(home .. "/proteus/repl.lua")
    assert(f, "no proteus/repl.lua under home() = " .. home)
    f:close()
    T.eq(package.path:sub(1, #home + 7), home .. "/?.lua;")
    assert(package.path:find(home .. "/?/init.lua", 1, true), package.path)
    T.eq(type(package.preload["proteus._host"]), "function")
  end,

  interrupt_raises_in_running_chunk = function(T)
    host.clear_interrupt()
    T.eq(host.interrupted(), false)
    local ok, err = pcall(function()
      send_sigint()
      for _ = 1, 1e9 do end -- the hook fires within this loop
      return "not interrupted"
    end)
    T.eq(ok, false, "pcall status")
    assert(tostring(err):find("interrupted!", 1, true), "error was: " .. tostring(err))
    T.eq(host.interrupted(), true)
    host.clear_interrupt()
    T.eq(host.interrupted(), false)
  end,

  interrupt_trap_mode_only_sets_flag = function(T)
    host.clear_interrupt()
    T.eq(host.trap_interrupt(true), false)
    local steps = 0
    send_sigint()
    for _ = 1, 1000 do -- a "training loop" polling between steps
      if host.interrupted() then break end
      steps = steps + 1
    end
    T.eq(host.interrupted(), true)
    T.eq(steps, 0)
    T.eq(host.trap_interrupt(false), true)
    host.clear_interrupt()
    T.eq(host.interrupted(), false)
  end,

  reload_picks_up_edited_module = function(T)
    local dir = tmpdir()
    write(dir .. "/pt_reload_probe.lua", "return {value = 1}")
    local saved = package.path
    package.path = dir .. "/?.lua;" .. package.path
    T.eq(require("pt_reload_probe").value, 1)
    write(dir .. "/pt_reload_probe.lua", "return {value = 2}")
    T.eq(require("pt_reload_probe").value, 1) -- cached
    T.eq(repl.reload("pt_reload_probe").value, 2)
    T.eq(package.loaded.pt_reload_probe.value, 2)
    package.loaded.pt_reload_probe = nil
    package.path = saved
    os.remove(dir .. "/pt_reload_probe.lua")
    os.remove(dir)
    T.raises(function() repl.reload(42) end, "expected a module name")
  end,

  install_defines_only_reload_and_help = function(T)
    local env = {}
    repl.install(env)
    T.eq(env, { reload = repl.reload, help = repl.help })
    T.eq(rawget(_G, "reload"), nil) -- scripts do not get the REPL globals
  end,

  complete_globals_fields_and_methods = function(T)
    local methods = { shape = function() end, shard = 5, size = function() end }
    local env = setmetatable({
      pt = { zeros = function() end, zero_ = 1, ones = 2, sub = { deep = 3 } },
      t = setmetatable({}, { __index = methods }),
      s = "text",
    }, { __index = _G })
    T.eq(repl.complete("pt.ze", env), { "pt.zero_", "pt.zeros" })
    T.eq(repl.complete("t:sh", env), { "t:shape" }) -- ':' lists functions only
    T.eq(repl.complete("t.sh", env), { "t.shape", "t.shard" })
    T.eq(repl.complete("pt.sub.d", env), { "pt.sub.deep" })
    T.eq(repl.complete("s:up", env), { "s:upper" }) -- strings through their metatable
    T.eq(repl.complete("pri", env), { "print" })
    T.eq(repl.complete("whi", env), { "while" })
    -- an __index function with the methods in the metatable's __methods (the tensor binding)
    env.u = setmetatable({}, { __index = function() return nil end, numel = function() end,
                               __methods = { mean = function() end, max = function() end, dim = 2 } })
    T.eq(repl.complete("u:m", env), { "u:max", "u:mean" })
    T.eq(repl.complete("u:n", env), { "u:numel" })
    T.eq(repl.complete("u.d", env), { "u.dim" })
    T.eq(repl.complete("nope.x", env), {})
    T.eq(repl.complete("x[1].y", env), {})
  end,

  help_uses_docstrings_else_fields = function(T)
    local mod = { __doc = { "A probe module.", f = "f(x) -> x + 1" }, f = function(x) return x + 1 end, g = 2 }
    package.loaded["pt_help_probe"] = mod
    T.eq(repl.doc(mod), "A probe module.\n  f: f(x) -> x + 1\nother fields: g")
    T.eq(repl.doc(mod.f), "pt_help_probe.f: f(x) -> x + 1")
    T.eq(repl.doc("pt_help_probe"), repl.doc(mod))
    package.loaded["pt_help_probe"] = nil
    T.eq(repl.doc({ a = 1, b = 2 }), "fields: a b")
    T.eq(repl.doc(3), "integer: 3")
    assert(repl.doc(function() end):find("test_host.lua:%d+ %(no docstring%)"), repl.doc(function() end))
    assert(repl.doc("no.such.module"):find("no module named 'no.such.module'", 1, true))
    assert(repl.doc():find("reload", 1, true))
  end,

  help_and_complete_on_a_tensor = function(T)
    local ok, pt = pcall(require, "proteus")
    if not ok or type(pt) ~= "table" or not pt.zeros then T.skip("proteus tensors not available: " .. tostring(pt)) end
    local t = pt.zeros(2, 3)
    local env = setmetatable({ t = t }, { __index = _G })
    local words = repl.complete("t:resh", env)
    T.eq(words, { "t:reshape" })
    assert(repl.doc(t):find("reshape", 1, true), repl.doc(t))
  end,

  runner_helpers_report_values = function(T)
    local msg = T.raises(function() T.eq({ 1, { 2, 3 } }, { 1, { 2, 4 } }) end, "value[2][2]: got 3, want 4")
    assert(msg:find("got 3, want 4", 1, true))
    T.raises(function() T.eq("a", "b", "name") end, 'name: got "a", want "b"')
    T.near(0.1 + 0.2, 0.3, 1e-12)
    T.raises(function() T.near(1.0, 1.1, 0.01) end, "got 1.0, want 1.1")
    T.raises(function() T.raises(function() end, "x") end, "but none was raised")
    T.eq(0 / 0, 0 / 0) -- NaN equals NaN for tests
  end,
}
