--- proteus.json — a small JSON encoder and decoder for run results and metrics (RFC 8259).
--
--   local json = require "proteus.json"
--   json.encode({b = 1, a = {1.5, json.null, "x"}})       --> {"a":[1.5,null,"x"],"b":1}
--   json.encode(t, {indent = 2})                            -- pretty, one member per line
--   json.encode(json.object({"step", "loss"}, {loss = 0.5, step = 3}))   --> {"step":3,"loss":0.5}
--   json.decode('{"a": [1, 2.0, null]}')                   --> {a = {1, 2.0, json.null}}
--
-- Encoding rules:
--   * key order is stable: keys named by json.object(order, t) first, in that order, then the rest
--     sorted; plain tables: all keys sorted. Keys must be strings.
--   * a table whose keys are exactly 1..n (n >= 1) is an array; json.array(t) marks one (also empty);
--     an empty unmarked table is {}.
--   * integers (math.type "integer") are written as integers; floats with the shortest of
--     %.15g/%.16g/%.17g that reads back to the same double (full precision), with ".0" added when
--     that text would read as an integer, so a float decodes as a float; NaN and ±inf become null.
--   * json.null is null; strings are escaped (", \, control characters); bytes >= 0x80 are passed
--     through (strings are expected to be UTF-8).
--   * cycles, functions, userdata, non-string keys and mixed tables are errors naming the path.
-- Decoding: objects --> tables, arrays --> tables marked as arrays, null --> json.null, numbers
-- without '.', 'e' or 'E' that fit --> integers, others --> floats; errors give the byte offset.
--
-- Tests: tests/lua/test_run.lua.
local json = {}

json.null = setmetatable({}, { __name = "json.null", __tostring = function() return "null" end })

local ARRAY = { __jsonarray = true }

--- Marks t as a JSON array (also when empty) and returns it.
function json.array(t)
  return setmetatable(t or {}, ARRAY)
end

--- Marks t as a JSON object whose keys in `order` come first, in that order. Returns t.
function json.object(order, t)
  return setmetatable(t or {}, { __jsonorder = order })
end

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(ch)
    return escapes[ch] or (ch:byte() < 0x20 or ch:byte() == 0x7f) and string.format("\\u%04x", ch:byte()) or ch
  end) .. '"'
end

--- The text of a number: integers as integers, floats round-tripping, non-finite as null.
function json.number(x)
  if math.type(x) == "integer" then return string.format("%d", x) end
  if x ~= x or x == math.huge or x == -math.huge then return "null" end
  local s
  for _, fmt in ipairs { "%.15g", "%.16g", "%.17g" } do
    s = string.format(fmt, x)
    if tonumber(s) == x then break end
  end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

local function is_array(t)
  local mt = getmetatable(t)
  if mt == ARRAY then return true, #t end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n, n
end

local encode_value

local function encode_table(t, path, seen, indent, depth, out)
  if seen[t] then error("json.encode: " .. path .. " refers to itself (a cycle)", 0) end
  seen[t] = true
  local nl, pad, padin, sep = "", "", "", ":"
  if indent then
    nl = "\n"
    pad = string.rep(" ", indent * depth)
    padin = string.rep(" ", indent * (depth + 1))
    sep = ": "
  end
  local arr, n = is_array(t)
  if arr then
    if n == 0 then
      out[#out + 1] = "[]"
    else
      out[#out + 1] = "[" .. nl
      for i = 1, n do
        out[#out + 1] = padin
        encode_value(t[i], path .. "[" .. i .. "]", seen, indent, depth + 1, out)
        out[#out + 1] = (i < n and "," or "") .. nl
      end
      out[#out + 1] = pad .. "]"
    end
  else
    local keys, listed = {}, {}
    local mt = getmetatable(t)
    local order = mt and mt.__jsonorder
    if order then
      for _, k in ipairs(order) do
        if t[k] ~= nil and not listed[k] then
          keys[#keys + 1] = k
          listed[k] = true
        end
      end
    end
    local rest = {}
    for k in pairs(t) do
      if type(k) ~= "string" then
        error(string.format("json.encode: %s has a %s key %s; object keys must be strings (or use 1..n for an "
          .. "array)", path, type(k), tostring(k)), 0)
      end
      if not listed[k] then rest[#rest + 1] = k end
    end
    table.sort(rest)
    table.move(rest, 1, #rest, #keys + 1, keys)
    if #keys == 0 then
      out[#out + 1] = "{}"
    else
      out[#out + 1] = "{" .. nl
      for i, k in ipairs(keys) do
        out[#out + 1] = padin .. quote(k) .. sep
        encode_value(t[k], path .. "." .. k, seen, indent, depth + 1, out)
        out[#out + 1] = (i < #keys and "," or "") .. nl
      end
      out[#out + 1] = pad .. "}"
    end
  end
  seen[t] = nil
end

encode_value = function(v, path, seen, indent, depth, out)
  local tv = type(v)
  if v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    out[#out + 1] = json.number(v)
  elseif tv == "string" then
    out[#out + 1] = quote(v)
  elseif tv == "table" then
    encode_table(v, path, seen, indent, depth, out)
  else
    error(string.format("json.encode: %s is a %s, which JSON cannot hold", path, tv), 0)
  end
end

--- Encodes v as JSON text. opts.indent: spaces per level (pretty output), default compact.
function json.encode(v, opts)
  local out = {}
  encode_value(v, "value", {}, opts and opts.indent, 0, out)
  return table.concat(out)
end

-- ---------------------------------------------------------------------------------------------
-- decoder
-- ---------------------------------------------------------------------------------------------

local function fail(s, i, what)
  error(string.format("json.decode: %s at byte %d (near %q)", what, i, s:sub(i, i + 15)), 0)
end

local function skip(s, i)
  return s:find("[^ \t\r\n]", i) or #s + 1
end

local decode_value

local function decode_string(s, i)
  -- s:sub(i, i) == '"'
  local out = {}
  local j = i + 1
  while true do
    local k = s:find('["\\%c]', j)
    if not k then fail(s, i, "unterminated string") end
    out[#out + 1] = s:sub(j, k - 1)
    local ch = s:sub(k, k)
    if ch == '"' then return table.concat(out), k + 1 end
    if ch ~= "\\" then fail(s, k, "control character in a string") end
    local e = s:sub(k + 1, k + 1)
    local simple = ({ ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" })[e]
    if simple then
      out[#out + 1] = simple
      j = k + 2
    elseif e == "u" then
      local hex = s:match("^%x%x%x%x", k + 2)
      if not hex then fail(s, k, "bad \\u escape") end
      local cp = tonumber(hex, 16)
      j = k + 6
      if cp >= 0xD800 and cp <= 0xDBFF then
        local lo = s:match("^\\u(%x%x%x%x)", j)
        local lv = lo and tonumber(lo, 16)
        if not lv or lv < 0xDC00 or lv > 0xDFFF then fail(s, k, "unpaired UTF-16 surrogate") end
        cp = 0x10000 + (cp - 0xD800) * 0x400 + (lv - 0xDC00)
        j = j + 6
      elseif cp >= 0xDC00 and cp <= 0xDFFF then
        fail(s, k, "unpaired UTF-16 surrogate")
      end
      out[#out + 1] = utf8.char(cp)
    else
      fail(s, k, "bad escape")
    end
  end
end

decode_value = function(s, i, depth)
  if depth > 512 then fail(s, i, "nesting deeper than 512") end
  i = skip(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    local t = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "}" then return t, i + 1 end
    while true do
      if s:sub(i, i) ~= '"' then fail(s, i, "expected a string key") end
      local k
      k, i = decode_string(s, i)
      i = skip(s, i)
      if s:sub(i, i) ~= ":" then fail(s, i, "expected ':'") end
      local v
      v, i = decode_value(s, i + 1, depth + 1)
      t[k] = v
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "}" then return t, i + 1 end
      if d ~= "," then fail(s, i, "expected ',' or '}'") end
      i = skip(s, i + 1)
    end
  elseif c == "[" then
    local t = json.array({})
    i = skip(s, i + 1)
    if s:sub(i, i) == "]" then return t, i + 1 end
    while true do
      local v
      v, i = decode_value(s, i, depth + 1)
      t[#t + 1] = v
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "]" then return t, i + 1 end
      if d ~= "," then fail(s, i, "expected ',' or ']'") end
      i = i + 1
    end
  elseif c == '"' then
    return decode_string(s, i)
  elseif s:sub(i, i + 3) == "true" then
    return true, i + 4
  elseif s:sub(i, i + 4) == "false" then
    return false, i + 5
  elseif s:sub(i, i + 3) == "null" then
    return json.null, i + 4
  else
    local int = s:match("^-?%d+", i)
    if not int or int:match("^-?0%d") then fail(s, i, "unexpected character or malformed number") end
    local j = i + #int
    local frac = s:match("^%.%d+", j) or ""
    j = j + #frac
    local exp = s:match("^[eE][-+]?%d+", j) or ""
    local num = int .. frac .. exp
    local v
    if not num:find("[%.eE]") then v = math.tointeger(tonumber(num)) end
    if v == nil then v = tonumber(num) + 0.0 end
    return v, i + #num
  end
end

--- Decodes one JSON text; trailing non-space characters are an error.
function json.decode(s)
  if type(s) ~= "string" then error("json.decode: expected a string, got " .. type(s), 2) end
  local v, i = decode_value(s, 1, 0)
  i = skip(s, i)
  if i <= #s then fail(s, i, "trailing characters") end
  return v
end

--- Reads and decodes a JSON file; errors name the path.
function json.read(path)
  local f, err = io.open(path, "rb")
  if not f then error("json.read: cannot open " .. tostring(err), 2) end
  local s = f:read("a")
  f:close()
  local ok, v = pcall(json.decode, s)
  if not ok then error(path .. ": " .. v, 2) end
  return v
end

return json
