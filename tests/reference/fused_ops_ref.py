#!/usr/bin/python3
"""fused_ops_ref.py — PyTorch parity of the fused ops (proteus.functional, src/kernels/fused.c).

Runs `proteus tests/reference/fused_ops_dump.lua OUT.json` (inputs, outputs, upstream gradients and input
gradients of every op in f32), recomputes each case with PyTorch from the same inputs (implemented here
from the spec, parameter-golf.md §2.1–§5.2, with plain torch ops and autograd) and compares in f32:
    err = max|proteus − torch| / max(max|torch|, 1e-6)    per tensor, must be < 1e-5.
Integer outputs (bigram_hash) must match exactly.

Run:  /usr/bin/python3 tests/reference/fused_ops_ref.py build/proteus      (ctest: ref_fused_ops)
Exit: 0 all match, 1 a mismatch or proteus failed, 77 no torch (skipped).
"""
import json
import math
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:  # Debian's python3-torch missing: skip, do not fail
    print("skip: torch is not importable by", sys.executable)
    sys.exit(77)

TOL = 1e-5


def tens(d, requires_grad=False):
    dt = {"f32": torch.float32, "f64": torch.float64, "i64": torch.int64}[d["dtype"]]
    t = torch.tensor(d["data"], dtype=dt).reshape(d["shape"])
    if requires_grad and t.is_floating_point():
        t.requires_grad_(True)
    return t


# ---- references (f32, from the spec) ----
def rms_norm(x, p):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + p["eps"]) * p["scale"]


def rotary(x, p):
    B, T, H, D = x.shape
    r, base, train_len, off = int(p["dims"]), p["base"], int(p["train_len"]), int(p["offset"])
    if train_len > 0 and T > train_len:  # NTK base scaling, §2.2
        base = base * (T / train_len) ** (r / (r - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, r, 2, dtype=torch.float32) / r))
    t = torch.arange(off, off + T, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)
    cos, sin = freqs.cos()[None, :, None, :], freqs.sin()[None, :, None, :]
    x1, x2, rest = x[..., : r // 2], x[..., r // 2 : r], x[..., r:]
    return torch.cat((x1 * cos + x2 * sin, -x1 * sin + x2 * cos, rest), dim=-1)


def attention(q, k, v, p):
    B, T, H, D = q.shape
    rep = H // k.shape[2]
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
    s = qh @ kh.transpose(-1, -2) / math.sqrt(D)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    return (torch.softmax(s, dim=-1) @ vh).transpose(1, 2)


def xsa(y, v, p):  # §4.2
    rep = y.shape[2] // v.shape[2]
    vn = torch.nn.functional.normalize(v, dim=-1).repeat_interleave(rep, dim=2)
    return y - (y * vn).sum(-1, keepdim=True) * vn


def softcap_ce(logits, targets, p):
    cap = p["softcap"]
    z = cap * torch.tanh(logits / cap) if cap > 0 else logits
    V = z.shape[-1]
    nll = torch.nn.functional.cross_entropy(z.reshape(-1, V), targets.reshape(-1), reduction="none")
    return nll.mean() if p["reduction"] == "mean" else nll.reshape(targets.shape)


def bigram_hash(tokens, p):  # §3.2, int32 arithmetic as the reference code
    t = tokens.to(torch.int32)
    mod = int(p["buckets"]) - 1
    out = torch.empty_like(t)
    out[..., 0] = mod
    out[..., 1:] = torch.bitwise_xor(36313 * t[..., 1:], 27191 * t[..., :-1]) % mod
    return out.long()


def smear_gate(x, g, p):
    s = torch.sigmoid(g)
    prev = torch.nn.functional.pad(x[:, :-1], (0, 0, 1, 0))
    return (1 - s) * x + s * prev


OPS = {
    "rms_norm": lambda i, p: rms_norm(i["x"], p),
    "rotary": lambda i, p: rotary(i["x"], p),
    "attention": lambda i, p: attention(i["q"], i["k"], i["v"], p),
    "xsa": lambda i, p: xsa(i["y"], i["v"], p),
    "relu2": lambda i, p: torch.relu(i["x"]).square(),
    "leaky_relu2": lambda i, p: torch.nn.functional.leaky_relu(i["x"], p["slope"]).square(),
    "star_relu": lambda i, p: torch.relu(i["x"]).square() * i["scale"] + i["bias"],
    "softcap_cross_entropy": lambda i, p: softcap_ce(i["logits"], i["targets"], p),
    "bigram_hash": lambda i, p: bigram_hash(i["tokens"], p),
    "smear_gate": lambda i, p: smear_gate(i["x"], i["gate"], p),
    "lora": lambda i, p: (i["x"] @ i["A"].transpose(1, 2)) @ i["B"].transpose(1, 2),
}


def rel_err(got, want):
    got, want = got.double(), want.double()
    return (got - want).abs().max().item() / max(want.abs().max().item(), 1e-6)


def main():
    proteus = sys.argv[1] if len(sys.argv) > 1 else "build/proteus"
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory(prefix="proteus_fused_") as tmp:
        path = os.path.join(tmp, "fused_ops.json")
        r = subprocess.run([proteus, os.path.join(here, "fused_ops_dump.lua"), path], capture_output=True, text=True)
        if r.returncode != 0:
            print("proteus failed:", r.stdout, r.stderr)
            return 1
        with open(path) as f:
            cases = json.load(f)["cases"]
    torch.set_grad_enabled(True)
    bad = 0
    for c in cases:
        inputs = {k: tens(v, requires_grad=True) for k, v in c["inputs"].items()}
        want = OPS[c["op"]](inputs, c["params"])
        got = tens(c["output"])
        if not want.is_floating_point():
            ok = torch.equal(got, want)
            print(f"{'ok' if ok else 'MISMATCH':8s} {c['name']:22s} output exact: {ok}")
            bad += not ok
            continue
        errs = {"output": rel_err(got, want.detach())}
        if c["grad_out"] is not None:
            want.backward(tens(c["grad_out"]))
            for k, g in c["grads"].items():
                errs["d" + k] = rel_err(tens(g), inputs[k].grad)
        worst = max(errs.values())
        ok = worst < TOL
        bad += not ok
        detail = "  ".join(f"{k} {v:.1e}" for k, v in errs.items())
        print(f"{'ok' if ok else 'MISMATCH':8s} {c['name']:22s} {detail}")
    print(f"{len(cases) - bad} of {len(cases)} cases within {TOL:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
