-- tests/run.lua — the Lua test runner.
--
--   build/proteus tests/run.lua tests/lua/test_x.lua [more files...] [--match SUBSTRING]
--
-- A test file is a chunk that returns its tests, either
--   * a table name -> function (run in sorted name order), or
--   * a list of {name, function} (run in the given order).
-- Each test runs inside xpcall with a traceback. It passes if it returns, fails if it raises.
-- The runner prints one line per test and a last line, exactly once:
--   ok NAME  |  not ok NAME (then the error and traceback, indented)  |  skip NAME: reason
--   N passed, N failed, N skipped
-- and exits 1 if any test failed (or a file could not be loaded), 130 on Ctrl-C, else 0.
--
-- Helpers: every test function (and the file chunk, as `...`) receives a table T with
--   T.skip(reason)              skip this test (same as error({skip = reason}) ), e.g. no GPU
--   T.eq(got, want [, what])    deep equality; the error shows both values and the first difference
--   T.near(got, want, tol [, what])  |got - want| <= tol for numbers
--   T.raises(fn, substring)     fn must raise an error whose message contains substring (plain
--                               text); returns the message
-- Plain assert/error work as well.
--
--   return {
--     adds = function(T) T.eq(1 + 1, 2) end,
--     cuda = function(T) if not has_gpu then T.skip("no CUDA device") end ... end,
--   }

local files, match = {}, nil
do
  local i = 1
  while i <= #arg do
    if arg[i] == "--match" then
      match = arg[i + 1]
      i = i + 2
    else
      files[#files + 1] = arg[i]
      i = i + 1
    end
  end
end
if #files == 0 then
  io.stderr:write("usage: proteus tests/run.lua FILE.lua [FILE.lua...] [--match SUBSTRING]\n")
  os.exit(2)
end

local ok_host, host = pcall(require, "proteus._host")
if not ok_host then host = nil end

-- ---- helpers given to the tests ----

local T = {}

function T.skip(reason)
  error({ skip = tostring(reason or "skipped") }, 0)
end

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

-- Returns nil if equal, else a description of the first difference.
local function diff(a, b, path, seen)
  if a == b then return nil end
  if type(a) ~= "table" or type(b) ~= "table" then
    if type(a) == "number" and type(b) == "number" and a ~= a and b ~= b then return nil end -- NaN
    return string.format("%s: got %s, want %s", path, show(a), show(b))
  end
  seen = seen or {}
  if seen[a] == b then return nil end
  seen[a] = b
  for k, v in pairs(b) do
    local d = diff(a[k], v, path .. "[" .. show(k) .. "]", seen)
    if d then return d end
  end
  for k, v in pairs(a) do
    if b[k] == nil then
      return string.format("%s[%s]: got %s, want nil", path, show(k), show(v))
    end
  end
  return nil
end

function T.eq(got, want, what)
  local d = diff(got, want, what or "value")
  if d then error(d, 2) end
end

function T.near(got, want, tol, what)
  if type(got) ~= "number" or type(want) ~= "number" or not (math.abs(got - want) <= tol) then
    error(string.format("%s: got %s, want %s (tolerance %g)", what or "value", show(got), show(want), tol), 2)
  end
end

function T.raises(fn, substring)
  local ok, err = pcall(fn)
  if ok then error("expected an error containing " .. show(substring) .. ", but none was raised", 2) end
  local msg = tostring(err)
  if substring and not msg:find(substring, 1, true) then
    error("expected an error containing " .. show(substring) .. ", got: " .. msg, 2)
  end
  return msg
end

-- ---- running ----

local passed, failed, skipped = 0, 0, 0

local function handler(e)
  if type(e) == "table" and e.skip then return e end
  return debug.traceback(tostring(e), 2)
end

local function indent(s)
  return "    " .. tostring(s):gsub("\n", "\n    ")
end

local function fail(name, msg)
  failed = failed + 1
  print("not ok " .. name)
  print(indent(msg))
end

local function interrupted()
  if host and host.interrupted() then
    print("interrupted")
    print(string.format("%d passed, %d failed, %d skipped", passed, failed, skipped))
    os.exit(130)
  end
end

-- Returns the list of {name, fn} of a file, or nil and an error.
local function collect(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, tests = xpcall(chunk, handler, T)
  if not ok then return nil, type(tests) == "table" and ("skip: " .. tostring(tests.skip)) or tests end
  if type(tests) ~= "table" then
    return nil, path .. " returned " .. type(tests) .. ", expected a table of tests"
  end
  local list = {}
  if #tests > 0 then
    for i, t in ipairs(tests) do
      if type(t) ~= "table" or type(t[1]) ~= "string" or type(t[2]) ~= "function" then
        return nil, string.format("%s: entry %d is not {name, function}", path, i)
      end
      list[#list + 1] = { t[1], t[2] }
    end
  else
    for name, fn in pairs(tests) do
      if type(name) ~= "string" or type(fn) ~= "function" then
        return nil, string.format("%s: entry %s is a %s, expected name = function", path, show(name), type(fn))
      end
      list[#list + 1] = { name, fn }
    end
    table.sort(list, function(a, b) return a[1] < b[1] end)
  end
  return list
end

for _, path in ipairs(files) do
  print("# " .. path)
  local list, err = collect(path)
  if not list then
    fail(path, err)
  else
    for _, t in ipairs(list) do
      local name, fn = t[1], t[2]
      if not match or name:find(match, 1, true) then
        local ok, e = xpcall(fn, handler, T)
        if ok then
          passed = passed + 1
          print("ok " .. name)
        elseif type(e) == "table" and e.skip then
          skipped = skipped + 1
          print("skip " .. name .. ": " .. tostring(e.skip))
        else
          fail(name, e)
        end
        io.stdout:flush()
        collectgarbage()
        interrupted()
      end
    end
  end
end

print(string.format("%d passed, %d failed, %d skipped", passed, failed, skipped))
os.exit(failed > 0 and 1 or 0, true)
