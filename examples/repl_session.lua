-- examples/repl_session.lua — a REPL session you can paste, line by line, at the `proteus` prompt,
-- or run whole as a script. Globals on purpose: at the prompt every line is its own chunk, so a
-- `local` would be gone by the next line.
--
--   build/proteus                                   # then paste the lines below
--   build/proteus examples/repl_session.lua         # the same, as a script
--   build/proteus -i < examples/repl_session.lua    # the same, fed to the REPL
--
-- At the prompt an expression prints itself (`x` is enough; here `print(x)` so a script prints too),
-- Tab completes (`pt.ra<Tab>`, `x:tr<Tab>`), `help(x)` explains x, `reload "proteus.nn"` re-reads an
-- edited module. tests/lua/test_examples.lua runs this file both ways.
pt = require "proteus"
F = require "proteus.functional"
nn = require "proteus.nn"
help = help or require("proteus.repl").help -- the REPL defines help; a script borrows it

pt.manual_seed(42)
x = pt.randn({ 2, 3 })
print(x)
print(x:shape()[1], x:shape()[2], x:dtype(), x:device())
print(x[1])                -- t[1] is the first row: positions are 1-based
print(x:transpose(1, 2))   -- dims are 1-based too; -1 is the last
print(x:sum(-1))

-- autograd: a leaf that requires grad, a scalar, backward
w = pt.tensor({ { 1, 2 }, { 3, 4 } }, { requires_grad = true })
y = (w * w):sum()
y:backward()
print(w.grad)              -- d/dw sum(w²) = 2w

-- a fused op and its docstring
h = F.rms_norm(pt.randn({ 2, 4, 8 }))
print(h:pow(2):mean(-1))   -- ≈ 1 per row after RMS normalisation
help(F.rms_norm)

-- a tiny GPT, its loss on random tokens (≈ ln 1024 ≈ 6.93 at init)
model = nn.GPT { vocab_size = 1024, num_layers = 2, model_dim = 64, num_heads = 4, num_kv_heads = 2 }
tok = pt.randint(0, 1024, { 2, 33 })
loss = model:forward(tok:narrow(2, 1, 32), tok:narrow(2, 2, 32))
print(string.format("params %d  loss %.4f", model:num_params(), loss:item()))
help(nn.GPT)
