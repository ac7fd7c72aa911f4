#!/usr/bin/python3
"""bench/cpu_ops_torch.py — PyTorch side of bench/cpu_ops.lua: the same GPT-shaped ops (v9 shapes at
T = 256, batch 4), forward+backward, same timing protocol (warm-up, `reps` runs of `iters` iterations,
median per iteration). Written the way tests/reference/gpt_ref.py writes them for torch 1.13.

    /usr/bin/python3 bench/cpu_ops_torch.py [--threads 2] [--reps 7] [--iters 5] [--only a,b]

Prints one JSON object {"threads", "median": {case: seconds}}. Run through bench/cpu_ops.lua (or
bench/run_cpu.sh), which prints the comparison table.
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

B, T, C, H, HKV, D, M, V = 4, 256, 512, 8, 4, 64, 1536, 1024
EPS = 1.1920928955078125e-07  # FLT_EPSILON, as F.rms_norm in proteus


def leaf(shape, scale=1.0):
    return (torch.randn(*shape) * scale).requires_grad_(True)


def attention(q, k, v):
    # q [B,T,H,D], k/v [B,T,Hkv,D]: causal softmax attention with kv heads repeated (GQA)
    rep = q.shape[2] // k.shape[2]
    q, k, v = q.transpose(1, 2), k.repeat_interleave(rep, 2).transpose(1, 2), v.repeat_interleave(rep, 2).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) / (q.shape[-1] ** 0.5)
    mask = torch.ones(s.shape[-2], s.shape[-1], dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    return (torch.softmax(s, -1) @ v).transpose(1, 2)


def case_linear():
    x, w, g = leaf((B * T, C)), leaf((M, C), 0.04), torch.randn(B * T, M)
    return lambda: (x @ w.t()).backward(g), [x, w]


def case_lm_head():
    x, w, g = leaf((B * T, C)), leaf((V, C), 0.04), torch.randn(B * T, V)
    return lambda: (x @ w.t()).backward(g), [x, w]


def case_rms_norm():
    x, g = leaf((B, T, C)), torch.randn(B, T, C)
    return lambda: (x * torch.rsqrt(x.square().mean(-1, keepdim=True) + EPS)).backward(g), [x]


def case_softmax():
    x, g = leaf((B, H, T, T)), torch.randn(B, H, T, T)
    return lambda: torch.softmax(x, -1).backward(g), [x]


def case_attention():
    q, k, v, g = leaf((B, T, H, D)), leaf((B, T, HKV, D)), leaf((B, T, HKV, D)), torch.randn(B, T, H, D)
    return lambda: attention(q, k, v).backward(g), [q, k, v]


def case_softcap_ce():
    z, y = leaf((B * T, V), 3.0), torch.randint(0, V, (B * T,))
    return lambda: F.cross_entropy(30.0 * torch.tanh(z / 30.0), y).backward(), [z]


def case_relu2():
    x, g = leaf((B, T, M)), torch.randn(B, T, M)
    return lambda: torch.relu(x).square().backward(g), [x]


def case_bcast_mul_add():
    x, s, y, g = leaf((B, T, C)), leaf((C,)), leaf((B, T, C)), torch.randn(B, T, C)
    return lambda: (x * s + y).backward(g), [x, s, y]


def case_permute_copy():
    x, g = leaf((B, T, H, D)), torch.randn(B, H, T, D)
    return lambda: x.permute(0, 2, 1, 3).contiguous().backward(g), [x]


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}


def main():
    ap = argparse.ArgumentParser(description="PyTorch side of bench/cpu_ops.lua")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    names = [n for n in a.only.split(",") if n] or list(CASES)
    med = {}
    for n in names:
        if n not in CASES:
            raise SystemExit("cpu_ops_torch.py: unknown case %r (known: %s)" % (n, ", ".join(CASES)))
        fn, leaves = CASES[n]()

        def step():
            fn()
            for t in leaves:
                t.grad = None

        step()
        ts = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            for _ in range(a.iters):
                step()
            ts.append((time.perf_counter() - t0) / a.iters)
        med[n] = statistics.median(ts)
    print(json.dumps({"threads": torch.get_num_threads(), "median": med}))


if __name__ == "__main__":
    main()
