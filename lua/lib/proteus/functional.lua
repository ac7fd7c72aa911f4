--- proteus.functional — the fused differentiable ops of the GPT family (one autograd node each; C kernels
-- in src/kernels/fused.c and src/kernels/cpu/fused.c; facts from spec parameter-golf.md §2–§5).
--
--   local F = require "proteus.functional"
--   local h = F.rms_norm(x)                                   -- eps = FLT_EPSILON (F.RMS_EPS)
--   local q = F.rotary(q, {dims = 16, base = 10000, train_len = 1024})
--   local y = F.attention(q, k, v)                            -- causal, GQA: k, v [B,T,Hkv,D]
--   local loss = F.softcap_cross_entropy(logits, targets, {softcap = 30})
--
-- Functions (tensors are f32 or f64; token ids and targets are 0-based ids):
--   F.rms_norm(x [, eps [, scale]])      x / sqrt(mean(x², last dim) + eps) · scale (scale = ln-scale λ)
--   F.rotary(x [, opts])                 x [B,T,H,D]; opts: dims (rotary dims r, default D), base (10000),
--                                        train_len (1024; NTK base·(T/train_len)^(r/(r−2)) when T > train_len;
--                                        0 or false = off), offset (first position, 0).
--                                        Half-split pairs (j, j + r/2): out1 = x1·cos + x2·sin,
--                                        out2 = −x1·sin + x2·cos.
--   F.rotary_base(base, r, T [, train_len])   the base actually used (NTK rule), for logs and tests
--   F.attention(q, k, v [, {scale=}])    causal softmax(q kᵀ·scale) v, scale 1/√D; query head h uses kv
--                                        head ⌊h/(H/Hkv)⌋
--   F.xsa(y, v)                          y − (y·v̂)v̂, v̂ = v/max(‖v‖, 1e-12) of the head's kv group (§4.2)
--   F.relu2(x)  F.leaky_relu2(x [, slope = 0.5])  F.star_relu(x, scale, bias)  (relu(x)²·scale + bias)
--   F.softcap_cross_entropy(logits, targets [, {softcap = 30, reduction = "mean" | "none"}])
--                                        z = cap·tanh(logits/cap) (softcap 0 or false: none);
--                                        "none" gives the per-position NLL (shape of targets)
--   F.linear_softcap_cross_entropy(x, w, targets [, {softcap = 30, chunk = N, reduction = "mean" | "none"}])
--                                        = F.softcap_cross_entropy(x · wᵀ, targets) in chunks of `chunk` rows
--                                        (default: a chunk's logits ≤ 64 MiB), so the [N, V] logits never
--                                        sit in memory; x [..., C], w [V, C] (the tied embedding); the
--                                        backward recomputes each chunk (src/kernels/head_ce.c)
--   F.bigram_hash(tokens [, buckets = 2048])   i64 bucket ids, position 0 of each row -> buckets − 1 (§3.2)
--   F.smear_gate(x, gate)                (1−σ(g))⊙x + σ(g)⊙x_prev (zero before t = 0), x [B,T,C] or [T,C]
--   F.lora(x, A, B)                      (x Aᵀ) Bᵀ per batch element: x [B,T,in], A [B,r,in], B [B,out,r]
--   F.linear_relu2(x, w)  F.linear_leaky_relu2(x, w [, slope = 0.5])   relu2 / leaky_relu2 of x · wᵀ as one node
--                                        that saves h = x · wᵀ, not its output (src/kernels/linear_act.c); on
--                                        the CPU bit for bit the unfused ops; on CUDA bf16 too (PROTEUS_LINEAR_ACT)
--   F.mix_rms_norm(x, x0, wx, w0 [, eps [, scale [, x0_scale]]])   -> y, h: the GPT block's residual mix and
--                                        its norm in one pass (src/kernels/fused_norm.c):
--                                        y = x⊙wx + (x0⊙w0)·x0_scale (wx, w0 [C]; wx nil = 1),
--                                        h = F.rms_norm(y, eps, scale); on the CPU bit for bit the unfused
--                                        `x * wx + x0 * w0` (or `x + (x0 * w0) * x0_scale`) and F.rms_norm
--   F.rms_norm_rotary(x [, rope [, gain [, eps]]])   attention's q/k prologue: F.rms_norm over D, then
--                                        F.rotary(·, rope) (rope: F.rotary's options and defaults), then
--                                        × gain[h] (gain [H]: q's gain; nil for k); one node, fused backward;
--                                        on the CPU bit for bit the three unfused ops
--
-- Tests: tests/lua/test_functional.lua, tests/lua/test_head_ce.lua, tests/lua/test_fused_norm.lua;
-- PyTorch parity: tests/reference/fused_ops_ref.py.
local C = require "proteus._functional"

local F = {}
for k, v in pairs(C) do F[k] = v end

return F
