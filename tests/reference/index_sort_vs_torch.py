#!/usr/bin/python3
"""index_sort_vs_torch.py — randomized comparison of proteus' index and sort families with PyTorch.

Runs tests/reference/index_sort_dump.c (its path is the first argument), which writes random
cases with proteus' outputs, recomputes each case with torch (Debian python3-torch) and compares:
sort (values and stable indices exactly), topk and kthvalue (values exactly; indices must point at
those values, since torch leaves tie order unspecified), quantile (exactly, same f32/f64 formula),
gather / scatter_add / index_select / embedding (exactly).

    /usr/bin/python3 tests/reference/index_sort_vs_torch.py build/index_sort_dump
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

DT = {"f32": np.float32, "f64": np.float64, "i64": np.int64}


def load(d, case, name, meta):
    dtype, shape = meta[(case, name)]
    a = np.fromfile(os.path.join(d, f"{case}_{name}.bin"), dtype=DT[dtype])
    shape = () if shape == "-" else tuple(int(s) for s in shape.split(","))
    return torch.from_numpy(a.reshape(shape).copy())


def same(a, b):
    return a.shape == b.shape and bool(torch.equal(torch.nan_to_num(a, nan=1e300), torch.nan_to_num(b, nan=1e300))) \
        and bool((a.isnan() == b.isnan()).all()) if a.is_floating_point() else a.shape == b.shape and bool(torch.equal(a, b))


def main():
    tool = sys.argv[1]
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([tool, d], check=True)
        cases, meta = [], {}
        for line in open(os.path.join(d, "manifest.txt")):
            p = line.split()
            if p[0] == "C":
                cases.append((int(p[1]), p[2], dict(kv.split("=") for kv in p[3:])))
            else:
                meta[(int(p[1]), p[2])] = (p[3], p[4])
        for case, op, kw in cases:
            L = lambda name: load(d, case, name, meta)
            ok = True
            if op == "sort":
                x = L("x")
                v, i = torch.sort(x, dim=int(kw["dim"]), descending=kw["descending"] == "1", stable=True)
                ok = same(v, L("values")) and same(i, L("indices"))
            elif op in ("topk", "kthvalue"):
                x, dim = L("x"), int(kw["dim"])
                if op == "topk":
                    v, _ = torch.topk(x, int(kw["k"]), dim=dim, largest=kw["largest"] == "1")
                else:
                    keep = kw["keepdim"] == "1"
                    v, _ = torch.kthvalue(x, int(kw["k"]), dim=dim, keepdim=keep)
                    if x.isnan().any():  # torch's kthvalue with NaN differs across versions: skip NaN rows
                        v = None
                pv, pi = L("values"), L("indices")
                gi = pi if op == "topk" or kw["keepdim"] == "1" else pi.unsqueeze(dim)
                gv = pv if op == "topk" or kw["keepdim"] == "1" else pv.unsqueeze(dim)
                ok = (v is None or same(v, pv)) and same(torch.gather(x, dim, gi), gv)
            elif op == "quantile":
                x, dim = L("x"), int(kw["dim"])
                q = float(kw["q"])
                keep = kw["keepdim"] == "1"
                r = torch.quantile(x, q, keepdim=keep) if dim == -1000 else torch.quantile(x, q, dim=dim, keepdim=keep)
                if dim == -1000 and keep:
                    r = r.reshape([1] * x.dim())
                ok = same(r, L("out"))
            elif op == "gather":
                ok = same(torch.gather(L("x"), int(kw["dim"]), L("index")), L("out"))
            elif op == "scatter_add":
                ok = same(torch.scatter_add(L("x"), int(kw["dim"]), L("index"), L("src")), L("out"))
            elif op == "index_select":
                ok = same(torch.index_select(L("x"), int(kw["dim"]), L("index")), L("out"))
            elif op == "embedding":
                ok = same(torch.nn.functional.embedding(L("index"), L("weight")), L("out"))
            if not ok:
                failures += 1
                print(f"MISMATCH case {case}: {op} {kw}")
        print(f"{len(cases)} cases, {failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
