#!/usr/bin/python3
"""lora_ttt_ref.py — PyTorch reference of per-document LoRA TTT steps (spec parameter-golf.md §3.7, §6.1).

    /usr/bin/python3 tests/reference/lora_ttt_ref.py --config proteus_v9 --cfg '{"num_layers": 3, ...}' \
        --weights W.safetensors --lora L.safetensors --steps S.safetensors --out OUT.safetensors \
        [--lrs '{"q": 0.01, "v": 0.01, "head": 0.01, "bias": 0.01}'] [--betas 0.9,0.95] [--eps 1e-10]

The model is tests/reference/gpt_ref.py's GPTRef (imported, not copied) with the TTT adapters added the
way lua/lib/proteus/nn.lua's hooks add them:
  * per physical block i: q += (h A_qᵀ) B_qᵀ and v += (h A_vᵀ) B_vᵀ on the block's normalised input h,
    before the head reshape / RMS / RoPE (§3.7); A [B, r, d], B [B, out, r], one adapter per batch element;
  * optional per-block bias b_i [B, 1, d] added to the residual stream after block i (DeepQuant §6.1;
    in the encoder after the block's output was pushed on the skip stack, as nn.lua does);
  * LM head: logits += (h A_hᵀ) B_hᵀ on the final normalised hidden state, before the softcap.
Files:
  --lora: q.<i>.A, q.<i>.B, v.<i>.A, v.<i>.B, head.A, head.B and optionally bias.<i> (f32), the initial adapters.
  --steps: x<k>, y<k> (integer [B, T]) and w<k> (f32 [B, T]) for k = 1 .. K: one TTT step each.
Each step: loss = Σ w · softcapped-CE(logits, y) (the per-document chunk mean of §3.7 is w = 1/len on the
chunk's positions), backward, one torch.optim.Adam step (param groups q, v, head, bias with --lrs; betas,
eps; no weight decay). The output file holds "loss" [K] and, for every step k, "step<k>.<name>" = every
adapter after that step. Float32 on the CPU. Used by tests/lua/test_ttt.lua.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import configs  # noqa: E402
import gpt_ref  # noqa: E402


def lora(x, A, B):
    """(x Aᵀ) Bᵀ per batch element: x [B, T, in], A [B, r, in], B [B, out, r] -> [B, T, out]."""
    return torch.bmm(torch.bmm(x, A.transpose(1, 2)), B.transpose(1, 2))


class LoraGPT(gpt_ref.GPTRef):
    def __init__(self, c, P, L):
        super().__init__(c, P)
        if c["parallel_start"] is not None:
            raise ValueError("lora_ttt_ref.py: parallel lanes (#1539) are not covered by this reference")
        self.L = L

    def attn(self, i, h, tokens):
        c, P, L = self.c, self.P, self.L
        b = "blocks.%d." % i
        B, T, _ = h.shape
        H, Hkv, D = c["num_heads"], c["num_kv_heads"], c["head_dim"]
        q = h @ P[b + "attn.c_q.weight"].t() + lora(h, L["q.%d.A" % i], L["q.%d.B" % i])
        k = h @ P[b + "attn.c_k.weight"].t()
        v = h @ P[b + "attn.c_v.weight"].t() + lora(h, L["v.%d.A" % i], L["v.%d.B" % i])
        if c["ve_dim"] > 0 and i in c["ve_layers"]:
            idx = c["ve_layers"].index(i)
            ve = F.embedding(tokens, P["ve_shared.embed.weight"]) @ P["ve_shared.proj.weight"].t()
            v = v + ve * (P["ve_shared.scale"] * P["ve_layer_scales"][idx])
        q = gpt_ref.rms(q.reshape(B, T, H, D), c["rms_eps"])
        k = gpt_ref.rms(k.reshape(B, T, Hkv, D), c["rms_eps"])
        v = v.reshape(B, T, Hkv, D)
        q = gpt_ref.rotary(q, c["rope_dims"], c["rope_base"], c["rope_train_seq_len"])
        k = gpt_ref.rotary(k, c["rope_dims"], c["rope_base"], c["rope_train_seq_len"])
        q = q * P[b + "attn.q_gain"][None, None, :, None]
        y = gpt_ref.causal_attention(q, k, v)
        if i in c["xsa_layers"]:
            y = gpt_ref.xsa(y, v)
        return y.reshape(B, T, c["model_dim"]) @ P[b + "attn.proj.weight"].t()

    def bias(self, i, x):
        key = "bias.%d" % i
        return x + self.L[key] if key in self.L else x

    def hidden(self, tokens):
        c, P = self.c, self.P
        eps = c["rms_eps"]
        x = F.embedding(tokens, P["tok_emb.weight"])
        if c["bigram_vocab_size"] > 0:
            bk = gpt_ref.bigram_hash(tokens, c["bigram_vocab_size"])
            bg = F.embedding(bk, P["bigram.embed.weight"]) @ P["bigram.proj.weight"].t()
            x = x + P["bigram.scale"] * bg
        x = gpt_ref.rms(x, eps)
        if c["smear_gate"]:
            x = gpt_ref.smear_gate(x, P["smear.gate"])
        x0 = x
        L = c["num_layers"]
        n_skip = min(L // 2, L - L // 2)
        virt = self.virtual_layers()
        n_enc = len(virt) // 2
        stack = []
        for v in range(n_enc):
            x = self.block(virt[v], x, x0, tokens)
            stack.append(x)
            x = self.bias(virt[v], x)
        for j in range(len(virt) - n_enc):
            p = virt[n_enc + j]
            if stack and j < n_skip:
                x = self.skip_add(j, x, stack.pop())
            x = self.block(p, x, x0, tokens)
            x = self.bias(p, x)
        return gpt_ref.rms(x, eps)

    def logits(self, tokens):
        c = self.c
        h = self.hidden(tokens)
        B, T, d = h.shape
        z = h.reshape(B * T, d) @ self.P["tok_emb.weight"].t()
        return z + lora(h, self.L["head.A"], self.L["head.B"]).reshape(B * T, -1)

    def ttt_loss(self, x, y, w):
        z = self.logits(x)
        cap = self.c["logit_softcap"]
        if cap and cap > 0:
            z = cap * torch.tanh(z / cap)
        nll = F.cross_entropy(z, y.reshape(-1), reduction="none")
        return (nll * w.reshape(-1)).sum()


def group_of(name):
    return name.split(".")[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch reference of LoRA TTT steps")
    ap.add_argument("--config", required=True)
    ap.add_argument("--cfg", default="{}", help="JSON object of config overrides")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--lora", required=True)
    ap.add_argument("--steps", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lrs", default='{"q": 0.01, "v": 0.01, "head": 0.01, "bias": 0.01}')
    ap.add_argument("--betas", default="0.9,0.95")
    ap.add_argument("--eps", type=float, default=1e-10)
    args = ap.parse_args(argv)
    try:
        c = configs.full_config(args.config, json.loads(args.cfg))
        P, _ = gpt_ref.load_params(c, args.weights, torch.float32)
        for t in P.values():
            t.requires_grad_(False)
        L = {k: v.to(torch.float32).clone().requires_grad_(True) for k, v in gpt_ref.read_safetensors(args.lora).items()}
        S = gpt_ref.read_safetensors(args.steps)
    except (ValueError, KeyError, OSError) as e:
        print("lora_ttt_ref.py: error: %s" % (e.args[0] if e.args else e), file=sys.stderr)
        return 1
    lrs = json.loads(args.lrs)
    b1, b2 = (float(v) for v in args.betas.split(","))
    names = sorted(L)
    groups = []
    for g in ("q", "v", "head", "bias"):
        ps = [L[n] for n in names if group_of(n) == g]
        if ps:
            groups.append({"params": ps, "lr": lrs[g]})
    opt = torch.optim.Adam(groups, betas=(b1, b2), eps=args.eps, weight_decay=0.0)
    model = LoraGPT(c, P, L)
    K = 0
    while ("x%d" % (K + 1)) in S:
        K += 1
    if K == 0:
        print("lora_ttt_ref.py: error: %s holds no x1, y1, w1" % args.steps, file=sys.stderr)
        return 1
    out, losses = {}, []
    for k in range(1, K + 1):
        x, y, w = S["x%d" % k].to(torch.int64), S["y%d" % k].to(torch.int64), S["w%d" % k].to(torch.float32)
        loss = model.ttt_loss(x, y, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
        for n in names:
            out["step%d.%s" % (k, n)] = L[n].detach().clone()
    out["loss"] = torch.tensor(losses, dtype=torch.float32)
    gpt_ref.write_safetensors(args.out, out)
    print(json.dumps({"steps": K, "loss": losses}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
