#!/usr/bin/python3
"""ledger_nll.py — reference NLLs for tests/c/test_ledger.c, computed with PyTorch in float64.

Logits are a fixed formula (no RNG): z[i, v] = 40 * sin(0.37 * i + 0.11 * v + 0.05 * i * v), V = 1024,
8 rows, targets y_i = (97 * i + 5) % 1024. Each row: softcap 30·tanh(z/30), then divided by the
temperature 0.9, then cross-entropy (natural log). The logits are rounded to float32 first, as the C
test stores them. Prints the NLLs and their sum with 17 significant digits.

    /usr/bin/python3 tests/reference/ledger_nll.py
"""
import torch

V, n = 1024, 8
i = torch.arange(n, dtype=torch.float64)[:, None]
v = torch.arange(V, dtype=torch.float64)[None, :]
z = (40 * torch.sin(0.37 * i + 0.11 * v + 0.05 * i * v)).float().double()
y = (97 * torch.arange(n) + 5) % V
capped = 30 * torch.tanh(z / 30)
nll = torch.nn.functional.cross_entropy(capped / 0.9, y, reduction="none")
for k in range(n):
    print("%.17g" % nll[k].item())
print("sum %.17g" % nll.sum().item())
