-- tests/gpu/test_ledger_device.lua — ledger:score with logits on the GPU (src/bindings/ledger.c): the
-- NLLs are computed on the device against the ledger's own targets and only they come to the host. Same
-- NLLs as the CPU path (f32 softcap on the device: ~1e-6), same counts, not "external", and the
-- ledger's rules unchanged: a second scoring raises in legal mode, a target outside the logits' columns
-- is named, a temperature goes through the CPU.
--
--   build/proteus tests/run.lua tests/gpu/test_ledger_device.lua       (ctest -L gpu; scripts/gpu_tests.sh)
--   PROTEUS_GPU_TEST_DEVICE=cpu build/proteus tests/run.lua tests/gpu/test_ledger_device.lua  (harness check)
local pt = require "proteus"
local data = require "proteus.data"
local G = dofile(debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") .. "gpu_common.lua")

local full
local function ledger(legal)
  full = full or data.open_val { vocab = 1024 }
  local tok = full.tokens:sub(0, 3000)
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
}
