--- bench/bench_common.lua — helpers the bench scripts share: key=value arguments, the median, the
-- child-process runs (a PyTorch side that prints JSON last; a proteus child per kernel switch that
-- prints RESULT lines) and the json= result file. Not a bench itself. A script loads it relative to
-- its own file, so the working directory does not matter:
--
--   local BC = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "bench_common.lua")
--
-- Used by bench/gpt_step.lua, bench/ttt_eval.lua, bench/gpu_attention.lua, bench/gpu_linear_act.lua and
-- bench/cpu_ops.lua; tested through them by tests/lua/test_bench_scripts.lua.
local json = require "proteus.json"
local testing = require "proteus.testing"

local BC = {}

BC.shell_quote = testing.shell_quote

-- Reads the script's `key=value` arguments (the global arg) into opts (defaults already in it); an
-- argument that is not key=value or whose key is not in the list `known` is an error naming `name`
-- (the script) and the known keys. Returns opts.
function BC.parse_args(name, opts, known)
  local is_known = {}
  for _, k in ipairs(known) do is_known[k] = true end
  for _, a in ipairs(arg or {}) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if not k or not is_known[k] then
      error(name .. ": unknown argument '" .. a .. "' (known: " .. table.concat(known, "=, ") .. "=)", 2)
    end
    opts[k] = v
  end
  return opts
end

--- proteus.cuda for a bench run on dev (a CUDA device); an error naming the bench when none is usable.
function BC.need_cuda(name, dev)
  local cuda = require "proteus.cuda"
  if not cuda.is_available() then
    error(name .. ": device=" .. dev .. " but no CUDA device is usable: " .. cuda.unavailable_reason())
  end
  return cuda
end

-- The median of a list of numbers (the mean of the middle two for an even count; the list is not changed).
function BC.median(xs)
  local s = {}
  for i, v in ipairs(xs) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return 0.5 * (s[n // 2] + s[n // 2 + 1])
end

-- Runs the shell command cmd (stderr joined to stdout) under `timeout <timeout_s>` when timeout_s > 0,
-- and decodes the JSON object that ends its output. Returns the object, nil, the output; or nil, the
-- reason (the last output line, prefixed when the timeout killed it) and the output.
function BC.run_json(cmd, timeout_s)
  local pre = tonumber(timeout_s) > 0 and ("timeout " .. timeout_s .. " ") or ""
  local f = io.popen(pre .. cmd .. " 2>&1")
  local out = f:read("a")
  local ok, _, code = f:close()
  if not ok then
    local last = out:gsub("%s+$", ""):match("([^\n]*)$")
    if code == 124 then last = "timed out after " .. timeout_s .. " s (torch_timeout=); " .. last end
    return nil, last, out
  end
  local obj = out:match("(%b{})%s*$")
  if not obj then return nil, "no JSON in its output: " .. out:gsub("%s+$", ""):match("([^\n]*)$"), out end
  return json.decode(obj), nil, out
end

-- Runs the script `script` again in a child proteus (testing.proteus_bin) with the shell-ready
-- environment prefix env ("NAME=value ...") and argument string args; the child prints one
-- "RESULT <key> <pass> <ms>" line per timing. Returns { [key .. pass] = ms }; a failed child is an
-- error naming `name` (the script) and `mode` and showing its output.
function BC.child_results(name, mode, script, env, args)
  local q = testing.shell_quote
  local p = io.popen(string.format("%s %s %s %s 2>&1", env, q(testing.proteus_bin(name)), q(script), args))
  local out = p:read("a")
  if not p:close() then error(name .. ": the " .. mode .. " child failed:\n" .. out) end
  local r = {}
  for key, pass, ms in out:gmatch("RESULT (%S+) (%w+) ([%d%.]+)") do r[key .. pass] = tonumber(ms) end
  return r
end

-- Writes result as one line of JSON to path (nothing when path is nil: no json= argument).
function BC.write_json(path, result)
  if not path then return end
  local f = assert(io.open(path, "w"))
  f:write(json.encode(result), "\n")
  f:close()
end

return BC
