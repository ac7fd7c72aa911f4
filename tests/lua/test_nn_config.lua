-- tests/lua/test_nn_config.lua — nn.GPT refuses bad configs with a message naming the key.
--
--   build/proteus tests/run.lua tests/lua/test_nn_config.lua
local nn = require "proteus.nn"

return {
  unknown_key_suggests_nearest = function(T)
    T.raises(function() nn.GPT { num_heds = 8 } end, "unknown key 'num_heds' (did you mean 'num_heads'?)")
  end,
  heads_must_divide_width = function(T)
    T.raises(function() nn.GPT { model_dim = 500, num_heads = 8 } end, "num_heads=8 does not divide model_dim=500")
  end,
  kv_heads_must_divide_heads = function(T)
    T.raises(function() nn.GPT { num_heads = 8, num_kv_heads = 3 } end, "num_kv_heads=3 does not divide num_heads=8")
  end,
  bad_enums = function(T)
    T.raises(function() nn.GPT { mlp_act = "gelu" } end, "mlp_act='gelu'")
    T.raises(function() nn.GPT { skip_mode = "x" } end, "skip_mode='x'")
    T.raises(function() nn.GPT { init = "xavier" } end, "init='xavier'")
    T.raises(function() nn.GPT { rope_dims = 7 } end, "rope_dims=7 must be even")
  end,
  to_moves_and_casts_parameters = function(T)
    local pt = require "proteus"
    local m = nn.GPT { num_layers = 2, model_dim = 64, num_heads = 4, num_kv_heads = 2 }
    local before = m:get("blocks.0.attn.c_q.weight"):clone()
    m:to("cpu", "f64")
    local w = m:get("blocks.0.attn.c_q.weight")
    T.eq(w:dtype(), "f64")
    T.eq(w.requires_grad, true)
    T.eq((w - before:to("f64")):abs():max():item(), 0)
    local x = pt.randint(0, 1024, { 1, 8 })
    local loss = m:forward(x, x)
    T.eq(loss:dtype(), "f64")
    loss:backward()
    T.eq(w.grad:dtype(), "f64")
  end,
  untied_head_is_refused = function(T)
    T.raises(function() nn.GPT { tie_embeddings = false } end, "tie_embeddings=false is not implemented")
  end,
}
