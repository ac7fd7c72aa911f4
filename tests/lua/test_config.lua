-- tests/lua/test_config.lua — proteus.config: precedence (defaults < preset < environment < arguments),
-- typed parsing, unknown keys with the nearest-name suggestion, type errors naming key and type,
-- the no-GPU preset rule, preset inheritance, help.
--
--   build/proteus tests/run.lua tests/lua/test_config.lua
local config = require "proteus.config"

local function def()
  return config.define {
    name = "t",
    defaults = { matrix_lr = 0.025, train_seq_len = 1024, xsa_layers = { 7, 8, 9, 10 }, gptq_lite = true,
      quant_policy = "proteus_card", lrs = { 0.5, 1.5 }, names = { "a" } },
    presets = { full = {}, demo = { train_seq_len = 128, matrix_lr = 0.02 }, smoke = { _base = "demo", gptq_lite = false } },
    doc = { matrix_lr = "Muon lr" },
  }
end

local function env(t) return function(name) return t[name] end end

return {
  precedence_preset_env_args = function(T)
    local d = def()
    local c, info = config.resolve(d, { "preset=demo" }, env {}, { has_gpu = false })
    T.eq(c.train_seq_len, 128); T.eq(c.matrix_lr, 0.02); T.eq(info.preset, "demo")
    T.eq(info.sources.matrix_lr, "preset demo")
    c, info = config.resolve(d, { "preset=demo" }, env { MATRIX_LR = "0.03" }, { has_gpu = false })
    T.eq(c.matrix_lr, 0.03); T.eq(info.sources.matrix_lr, "env MATRIX_LR")
    c, info = config.resolve(d, { "preset=demo", "matrix_lr=0.04" }, env { MATRIX_LR = "0.03" }, { has_gpu = false })
    T.eq(c.matrix_lr, 0.04); T.eq(info.sources.matrix_lr, "arg")
    T.eq(c.train_seq_len, 128) -- untouched by env/args: the preset's
    -- upper-case keys in arguments are accepted; empty environment values are ignored
    c = config.resolve(d, { "preset=full", "TRAIN_SEQ_LEN=2048" }, env { MATRIX_LR = "" })
    T.eq(c.train_seq_len, 2048); T.eq(c.matrix_lr, 0.025)
    -- getenv = false ignores the environment
    c = config.resolve(d, { "preset=full" }, false)
    T.eq(c.matrix_lr, 0.025)
  end,

  defaults_not_mutated = function(T)
    local d = def()
    local c = config.resolve(d, { "preset=full", "xsa_layers=1,2" }, false)
    T.eq(c.xsa_layers, { 1, 2 })
    T.eq(d.defaults.xsa_layers, { 7, 8, 9, 10 })
  end,

  types_parse = function(T)
    local d = def()
    local c = config.resolve(d, { "preset=full", "xsa_layers=3,4, 5", "gptq_lite=off", "train_seq_len=2e3",
      "quant_policy=proteus_as_run", "lrs=1,2.5", "names=x,y" }, false)
    T.eq(c.xsa_layers, { 3, 4, 5 }); T.eq(math.type(c.xsa_layers[1]), "integer")
    T.eq(c.gptq_lite, false); T.eq(c.train_seq_len, 2000); T.eq(math.type(c.train_seq_len), "integer")
    T.eq(c.quant_policy, "proteus_as_run"); T.eq(c.lrs, { 1.0, 2.5 }); T.eq(c.names, { "x", "y" })
    c = config.resolve(d, { "preset=full", "xsa_layers=", "matrix_lr=1" }, false)
    T.eq(#c.xsa_layers, 0); T.eq(math.type(c.matrix_lr), "float")
    for _, b in ipairs { "true", "1", "yes", "on", "TRUE" } do
      T.eq(config.resolve(d, { "preset=full", "gptq_lite=" .. b }, false).gptq_lite, true, b)
    end
  end,

  typo_suggests_nearest = function(T)
    local d = def()
    T.raises(function() config.resolve(d, { "preset=full", "matrx_lr=0.03" }, false) end,
      "unknown key 'matrx_lr' (argument 2) (did you mean 'matrix_lr'?)")
    T.raises(function() config.resolve(d, { "preset=dmeo" }, false) end, "unknown preset 'dmeo' (did you mean 'demo'?)")
    T.raises(function()
      config.define { name = "t2", defaults = { matrix_lr = 0.1 }, presets = { full = { matrx_lr = 1.0 } } }
    end, "unknown key 'matrx_lr' (in preset full) (did you mean 'matrix_lr'?)")
    T.raises(function() config.define { name = "t3", defaults = { a = 1 }, doc = { b = "x" } } end, "unknown key 'b' (in doc)")
  end,

  type_errors_name_key_and_type = function(T)
    local d = def()
    T.raises(function() config.resolve(d, { "preset=full", "train_seq_len=12.5" }, false) end,
      "train_seq_len=12.5 (command line) is not an integer")
    T.raises(function() config.resolve(d, { "preset=full", "matrix_lr=abc" }, false) end,
      "matrix_lr=abc (command line) is not a number; matrix_lr expects a number, e.g. matrix_lr=0.025")
    T.raises(function() config.resolve(d, { "preset=full" }, env { GPTQ_LITE = "maybe" }) end,
      "gptq_lite=maybe (environment variable GPTQ_LITE) is not a boolean")
    T.raises(function() config.resolve(d, { "preset=full", "xsa_layers=1,x" }, false) end,
      "xsa_layers=1,x (command line) is not a list")
    T.raises(function()
      config.define { name = "t4", defaults = { n = 1 }, presets = { full = { n = "two" } } }
    end, "n=two (preset full) is not an integer")
    T.raises(function() config.resolve(d, { "preset=full", "oops" }, false) end, "argument 2 'oops' is not key=value")
  end,

  preset_required_without_gpu = function(T)
    local d = def()
    T.raises(function() config.resolve(d, {}, false, { has_gpu = false }) end,
      "recipe t: no preset given and no CUDA device here")
    local c, info = config.resolve(d, {}, false, { has_gpu = true })
    T.eq(info.preset, "full"); T.eq(c.train_seq_len, 1024)
    local d2 = config.define { name = "e", defaults = { a = 1 }, presets = { default = {} }, default_preset = "default" }
    local _, i2 = config.resolve(d2, {}, false, { has_gpu = false })
    T.eq(i2.preset, "default")
  end,

  preset_base_inherits = function(T)
    local c = config.resolve(def(), { "preset=smoke" }, false)
    T.eq(c.train_seq_len, 128); T.eq(c.matrix_lr, 0.02); T.eq(c.gptq_lite, false)
  end,

  reserved_env_names_refused = function(T)
    T.raises(function() config.define { name = "r", defaults = { path = "" } } end,
      "knob 'path' would be overridden by the environment variable PATH")
  end,

  format_and_help = function(T)
    local d = def()
    local c, info = config.resolve(d, { "preset=demo", "gptq_lite=false" }, false)
    local s = config.format(d, c, info)
    assert(s:find("config t preset=demo", 1, true), s)
    assert(s:find("train_seq_len=128*", 1, true), s)
    assert(s:find("xsa_layers=7,8,9,10 ", 1, true) or s:find("xsa_layers=7,8,9,10\n", 1, true) or s:find("xsa_layers=7,8,9,10$"), s)
    assert(s:find("overridden: gptq_lite (arg)", 1, true), s)
    local h = config.help(d)
    assert(h:find("matrix_lr", 1, true) and h:find("Muon lr", 1, true) and h:find("smoke", 1, true), h)
    -- `help` among the arguments: resolve returns nil (after printing)
    T.eq(config.resolve(d, { "help" }, false), nil)
  end,
}
