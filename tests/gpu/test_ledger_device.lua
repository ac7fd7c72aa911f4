-- tests/gpu/test_ledger_device.lua — ledger:score with logits on the GPU (src/bindings/ledger.c): the
-- NLLs are computed on the device against the ledger's own targets and only they come to the host. Same
-- NLLs as the CPU path (f32 softcap on the device: ~1e-6), same counts, not "external", and the
-- ledger's rules unchanged: a second scoring raises in legal mode, a target outside the logits' columns
-- is named, a temperature goes through the CPU (the same NLLs as the CPU tensor's, to the bit); rescale
-- in a non-legal ledger counted and applied as on the CPU; a NaN or an infinity in the logits ends as
-- on the CPU (the error naming the lowest bad row, or, where the cap makes it finite, the same NLLs).
--
--   build/proteus tests/run.lua tests/gpu/test_ledger_device.lua       (ctest -L gpu; scripts/gpu_tests.sh)
--   PROTEUS_GPU_TEST_DEVICE=cpu build/proteus tests/run.lua tests/gpu/test_ledger_device.lua  (harness check)
local pt = require "proteus"
local data = require "proteus.data"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local full
local function val()
  full = full or data.open_val { vocab = 1024 }
  return full
end

local function ledger(legal)
  local tok = val().tokens:sub(0, 3000)
  return data.ledger(tok, full.tables, { legal = legal, name = "ledger_device" })
end

local function positions(a, b)
  local p = {}
  for t = a, b - 1 do p[#p + 1] = t end
  return p
end

return {
  device_nll_matches_cpu = function(T)
    G.need_device(T)
    pt.manual_seed(G.SEED)
    local pos = positions(1, 2001)
    local lg = pt.randn({ #pos, 1024 }) * 8
    for _, opts in ipairs { { softcap = 30 }, { softcap = 0 }, { softcap = 15, nll = true } } do
      local a, b = ledger(true), ledger(true)
      local sa, na = a:score(pos, lg, opts)
      local sb, nb = b:score(pos, lg:to(G.DEV), opts)
      local r = math.abs(sa - sb) / sa
      assert(r < 1e-6, string.format("seed %d softcap %s: Σ NLL %.9f on %s vs %.9f on the CPU (rel %.2g)", G.SEED,
        tostring(opts.softcap), sb, G.DEV, sa, r))
      local ra, rb = a:report(), b:report()
      for _, k in ipairs { "scored_once", "scored_never", "token_count", "byte_sum", "nll_external", "verdict" } do
        T.eq(rb[k], ra[k], "report " .. k)
      end
      T.eq(rb.nll_external, 0, "device NLLs are the ledger's own, not external")
      if opts.nll then
        T.eq(#nb, #na)
        for i = 1, #na do assert(math.abs(na[i] - nb[i]) <= 1e-5 * math.max(1, na[i]), "row " .. i) end
      end
    end
  end,

  rules_hold_on_the_device = function(T)
    G.need_device(T)
    local l = ledger(true)
    local lg = pt.randn({ 10, 1024 }):to(G.DEV)
    l:score(positions(1, 11), lg, { softcap = 30 })
    T.raises(function() l:score(positions(10, 20), lg, { softcap = 30 }) end, "is scored a second time")
    T.eq(l:report().scored_once, 10, "the failing call changed nothing")
    T.raises(function() l:score(positions(20, 30), pt.randn({ 10, 4 }):to(G.DEV), {}) end,
      "is outside the logits' 4 columns")
    T.raises(function() l:score(positions(20, 30), lg, { rescale = 0.98 }) end, "NLL rescaled by 0.98")
    -- a temperature: computed on the CPU from a copy, same rules
    local s = l:score(positions(30, 40), lg, { softcap = 30, temperature = 0.9 })
    assert(s > 0, "temperature path scored")
    T.eq(l:report().scored_once, 20)
  end,

  -- rescale in a non-legal ledger (counted, not refused): the device's NLLs times the factor, as on the
  -- CPU; a second scoring of the same targets is counted alike
  rescale_in_a_non_legal_ledger_matches_cpu = function(T)
    G.need_device(T)
    pt.manual_seed(G.SEED)
    local pos = positions(1, 1001)
    local lg = pt.randn({ #pos, 1024 }) * 8
    local a, b = ledger(false), ledger(false)
    for round = 1, 2 do
      local opts = { softcap = 30, rescale = round == 1 and 0.98 or 1.25, nll = true }
      local sa, na = a:score(pos, lg, opts)
      local sb, nb = b:score(pos, lg:to(G.DEV), opts)
      local what = string.format("seed %d rescale %g", G.SEED, opts.rescale)
      local r = math.abs(sa - sb) / sa
      assert(r < 1e-6, string.format("%s: Σ NLL %.9f on %s vs %.9f on the CPU (rel %.2g)", what, sb, G.DEV, sa, r))
      T.eq(#nb, #na, what .. " NLL count")
      for i = 1, #na do
        assert(math.abs(na[i] - nb[i]) <= 1e-5 * math.max(1, na[i]),
          string.format("%s: row %d NLL %.9g on %s vs %.9g on the CPU", what, i, nb[i], G.DEV, na[i]))
      end
      local ra, rb = a:report(), b:report()
      for _, k in ipairs { "scored_once", "scored_never", "scored_multiple", "duplicate_scorings", "token_count",
        "byte_sum", "nll_rescaled", "nll_external", "verdict", "legal" } do
        T.eq(rb[k], ra[k], what .. " report " .. k)
      end
      T.eq(rb.nll_rescaled, round * #pos, what .. ": every target counted as rescaled")
      T.eq(rb.verdict, "illegal", what .. " verdict")
      assert(math.abs(rb.loss - ra.loss) <= 1e-6 * ra.loss, string.format("%s: loss %.9f on %s vs %.9f on the CPU",
        what, rb.loss, G.DEV, ra.loss))
    end
    -- the factor is applied to the device's own NLLs: the same call without it, times the factor
    local c = ledger(false)
    local s1 = c:score(pos, lg:to(G.DEV), { softcap = 30 })
    local s2 = ledger(false):score(pos, lg:to(G.DEV), { softcap = 30, rescale = 0.98 })
    assert(math.abs(s2 - 0.98 * s1) <= 1e-12 * s1, string.format("seed %d: rescaled Σ %.12f vs 0.98 × %.12f", G.SEED,
      s2, s1))
  end,

  -- a NaN or an infinity in the logits: the device path ends as the CPU path does (an error naming the
  -- lowest bad row and its position, nothing committed; or, where the cap makes the value finite, the
  -- same NLLs). The CPU's outcome is asserted as well, so the cases test what they say.
  nan_and_inf_logits_as_on_the_cpu = function(T)
    G.need_device(T)
    pt.manual_seed(G.SEED)
    local V, pos = 1024, positions(1, 9)
    local tok = val().tokens -- the ledger's tokens: ledger() takes tokens 0 .. 2999 of these
    local function target(row) return tok:get(pos[row + 1]) end -- row 0-based
    local cases = {
      -- what, { {row, col ("target" or a column), value} ... }, softcap, error row (nil: scores)
      { "NaN off target, capped", { { 3, 5, 0 / 0 }, { 6, 7, 0 / 0 } }, 30, 3 },
      { "NaN at the target, uncapped", { { 5, "target", 0 / 0 } }, 0, 5 },
      { "+inf uncapped", { { 2, 9, math.huge } }, 0, 2 },
      { "+inf capped (cap·tanh(inf) = cap)", { { 2, 9, math.huge } }, 30, nil },
      { "-inf off target, uncapped", { { 4, "off", -math.huge } }, 0, nil },
      { "-inf at the target, uncapped", { { 4, "target", -math.huge } }, 0, 4 },
      { "-inf at the target, capped", { { 4, "target", -math.huge } }, 30, nil },
    }
    local base = pt.randn({ #pos, V }) * 4
    for _, c in ipairs(cases) do
      local what = string.format("%s (seed %d)", c[1], G.SEED)
      local lg = base:clone()
      for _, e in ipairs(c[2]) do
        local row, col = e[1], e[2]
        if col == "target" then
          col = target(row)
        elseif col == "off" then
          col = (target(row) + 1) % V
        end
        assert(col ~= target(row) or e[2] == "target", what .. ": the column must not be the target")
        lg:flat_set(row * V + col + 1, e[3])
      end
      local function outcome(logits)
        local l = ledger(true)
        local ok, s, nll = pcall(function() return l:score(pos, logits, { softcap = c[3], nll = true }) end)
        return { ok = ok, s = s, nll = nll, msg = not ok and tostring(s) or nil, scored = l:report().scored_once }
      end
      local oc, od = outcome(lg), outcome(lg:to(G.DEV))
      -- the CPU's behaviour, as the case states it
      if c[4] then
        assert(not oc.ok, what .. ": the CPU path scored; expected an error")
      else
        assert(oc.ok, what .. ": the CPU path raised: " .. tostring(oc.msg))
      end
      -- the device's, as the CPU's
      assert(od.ok == oc.ok, string.format("%s: the CPU path %s, the %s path %s", what,
        oc.ok and "scored" or ("raised: " .. oc.msg), G.DEV, od.ok and "scored" or ("raised: " .. od.msg)))
      if c[4] then
        local named = string.format("row %d (position %d)", c[4], pos[c[4] + 1])
        for _, o in ipairs { { "the CPU", oc }, { G.DEV, od } } do
          assert(o[2].msg:find(named, 1, true) and o[2].msg:find("the logits hold NaN or infinity", 1, true),
            string.format("%s: the error on %s does not name %s and the NaN: %s", what, o[1], named, o[2].msg))
          T.eq(o[2].scored, 0, what .. ": the failing call on " .. o[1] .. " committed nothing")
        end
      else
        T.eq(od.scored, #pos, what .. " scored on " .. G.DEV)
        for i = 1, #pos do
          local a, b = oc.nll[i], od.nll[i]
          assert(a == a and b == b and math.abs(a - b) <= 1e-5 * math.max(1, a),
            string.format("%s: row %d NLL %.9g on %s vs %.9g on the CPU", what, i - 1, b, G.DEV, a))
        end
      end
    end
  end,

  -- a temperature: the device tensor goes through the CPU (on a copy), so the Σ NLL and every NLL are
  -- those of the CPU tensor with the same options, to the bit
  temperature_matches_cpu = function(T)
    G.need_device(T)
    pt.manual_seed(G.SEED)
    local pos = positions(1, 501)
    local lg = pt.randn({ #pos, 1024 }) * 8
    for _, opts in ipairs { { temperature = 0.9, softcap = 30, nll = true }, { temperature = 1.3, nll = true } } do
      local a, b = ledger(true), ledger(true)
      local sa, na = a:score(pos, lg, opts)
      local sb, nb = b:score(pos, lg:to(G.DEV), opts)
      local what = string.format("seed %d temperature %g", G.SEED, opts.temperature)
      assert(sb == sa, string.format("%s: Σ NLL %.17g on %s vs %.17g on the CPU", what, sb, G.DEV, sa))
      T.eq(nb, na, what .. " NLLs")
      local ra, rb = a:report(), b:report()
      for _, k in ipairs { "scored_once", "token_count", "byte_sum", "nll_sum", "nll_external", "verdict" } do
        T.eq(rb[k], ra[k], what .. " report " .. k)
      end
      -- and the temperature is applied: not the NLLs at temperature 1
      local s1 = ledger(true):score(pos, lg, { softcap = opts.softcap })
      assert(math.abs(s1 - sa) > 1e-3 * sa, what .. ": the temperature changed nothing")
    end
  end,
}
