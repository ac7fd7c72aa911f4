#!/usr/bin/python3
"""test_ops_torch.py — checks proteus's reductions, softmax, matmul and linear algebra against PyTorch.

tests/reference/ops_dump.c writes random inputs, proteus's outputs and the gradients of
loss = sum(out * w) (format documented at its top); this script recomputes everything with torch
(Debian python3-torch, CPU) and compares: f64 to 1e-10 relative, f32 to 1e-5, indices exactly.

    /usr/bin/python3 tests/reference/test_ops_torch.py build/ops_dump     # runs the dumper itself
    /usr/bin/python3 tests/reference/test_ops_torch.py --file ops.txt     # checks an existing dump

Run by ctest as `ref_ops_torch` (a block at the end of CMakeLists.txt). Exit status 1 on any mismatch,
77 (skipped) when torch is not installed.
"""
import math
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:  # ctest treats 77 as skipped
    print("skip: PyTorch (Debian python3-torch) is not installed for /usr/bin/python3")
    sys.exit(77)

DT = {"f32": torch.float32, "f64": torch.float64, "i64": torch.int64}


def parse(path):
    cases, cur = [], None
    with open(path) as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "case":
                cur = {"name": tok[1], "op": tok[2], "t": {}}
                for kv in tok[3:]:
                    k, v = kv.split("=", 1)
                    cur[k] = v
            elif tok[0] == "tensor":
                tag, dt, nd = tok[1], tok[2], int(tok[3])
                shape = [int(x) for x in tok[4:4 + nd]]
                vals = [float(x) for x in tok[4 + nd:]]
                t = torch.tensor(vals, dtype=torch.float64).reshape(shape)
                cur["t"][tag] = t.to(DT[dt])
            elif tok[0] == "end":
                cases.append(cur)
                cur = None
    return cases


def compute(c, a, b):
    op = c["op"]
    dims = [int(x) for x in c["dims"].split(",")] if c["dims"] else None
    keep = c["keep"] == "1"
    dim, p, corr = int(c["dim"]), float(c["p"]), int(c["corr"])
    d = dims if dims is not None else list(range(a.dim()))
    if op == "sum":
        return {"y": a.sum(dim=d, keepdim=keep)}
    if op == "mean":
        return {"y": a.mean(dim=d, keepdim=keep)}
    if op in ("max", "min"):
        v, i = (torch.max if op == "max" else torch.min)(a, dim=dim, keepdim=keep)
        return {"y": v, "idx": i}
    if op == "argmax":
        return {"idx": torch.argmax(a, dim=dim, keepdim=keep)}
    if op == "norm":
        return {"y": torch.linalg.vector_norm(a, ord=p, dim=d, keepdim=keep)}
    if op == "var":
        return {"y": torch.var(a, dim=d, correction=corr, keepdim=keep)}
    if op == "std":
        return {"y": torch.std(a, dim=d, correction=corr, keepdim=keep)}
    if op == "softmax":
        return {"y": torch.softmax(a, dim=dim)}
    if op == "log_softmax":
        return {"y": torch.log_softmax(a, dim=dim)}
    if op == "matmul":
        return {"y": torch.matmul(a, b)}
    if op == "qr":
        q, r = torch.linalg.qr(a)
        return {"q": q, "r": r}
    if op == "cholesky":
        return {"y": torch.linalg.cholesky(a, upper=c["upper"] == "1")}
    if op == "inverse":
        return {"y": torch.linalg.inv(a)}
    raise ValueError("unknown op " + op)


def close(name, tag, got, want, failures):
    if got.shape != want.shape:
        failures.append(f"{name}.{tag}: shape {list(got.shape)} vs torch {list(want.shape)}")
        return
    if got.dtype == torch.int64 or want.dtype == torch.int64:
        if not torch.equal(got.to(torch.int64), want.to(torch.int64)):
            failures.append(f"{name}.{tag}: indices differ: {got.flatten().tolist()[:8]} vs {want.flatten().tolist()[:8]}")
        return
    tol = 1e-10 if want.dtype == torch.float64 else 1e-5
    g, w = got.double(), want.detach().double()
    err = ((g - w).abs() / (1 + w.abs())).max().item() if w.numel() else 0.0
    if not err <= tol:
        failures.append(f"{name}.{tag}: max relative error {err:.3g} > {tol}")


def main():
    args = sys.argv[1:]
    tmp = None
    if args and args[0] == "--file":
        path = args[1]
    elif args:
        fd, tmp = tempfile.mkstemp(suffix=".txt", prefix="ops_dump_")
        os.close(fd)
        subprocess.run([args[0], tmp], check=True)
        path = tmp
    else:
        print(__doc__)
        return 2
    try:
        cases = parse(path)
    finally:
        if tmp:
            os.unlink(tmp)
    failures = []
    for c in cases:
        t = c["t"]
        a = t["a"].clone().requires_grad_("ga" in t)
        b = t["b"].clone().requires_grad_("gb" in t) if "b" in t else None
        out = compute(c, a, b)
        for tag, want in out.items():
            if tag not in t:
                failures.append(f"{c['name']}: proteus wrote no '{tag}'")
                continue
            close(c["name"], tag, t[tag], want, failures)
        if "ga" in t:
            loss = (out["y"] * t["w"]).sum()
            loss.backward()
            close(c["name"], "ga", t["ga"], a.grad, failures)
            if b is not None:
                close(c["name"], "gb", t["gb"], b.grad, failures)
        print(f"checked {c['name']} ({c['op']})")
    ops = sorted({c["op"] for c in cases})
    print(f"{len(cases)} cases over {len(ops)} ops: {', '.join(ops)}")
    if len(cases) == 0:
        failures.append("no cases in the dump")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
