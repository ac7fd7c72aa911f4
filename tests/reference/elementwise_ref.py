#!/usr/bin/python3
"""elementwise_ref.py — PyTorch side of tests/lua/test_elementwise_torch.lua: the elementwise family
(binary ops with broadcasting, ops with a scalar, unary ops, where, clamp, leaky_relu, casts to bf16/f16)
forward and backward, on inputs that proteus wrote.

    /usr/bin/python3 tests/reference/elementwise_ref.py IN.safetensors OUT.safetensors

IN holds, per case NAME: NAME.a [, NAME.b] [, NAME.c (condition, u8)] and NAME.g (the upstream gradient,
shape of the output); its metadata maps NAME to the op spec:
    bin:OP          a OP b, OP in add sub mul div pow maximum minimum eq ne lt le gt ge
    scal:OP:S:F     a OP S (F = 0) or S OP a (F = 1), OP in add sub mul div pow
    un:OP           OP(a), OP in neg exp log tanh sigmoid relu sqrt rsqrt abs sign round sin cos square
                    reciprocal
    where           where(c != 0, a, b)
    clamp:LO:HI     clamp(a, LO, HI)
    leaky:S         leaky_relu(a, S)
    cast:DT         a.to(DT) (DT bf16 | f16), output kept in DT; the gradient: (a.to(DT).to(a.dtype) * g).sum()
OUT gets NAME.y (the output) and NAME.ga / NAME.gb (gradients of a and b; none for comparisons), with
the backward y.backward(g) in the inputs' dtype. Used only by the Lua test; run in float32/float64 on
the CPU with one thread.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_ref import read_safetensors, write_safetensors  # noqa: E402

BIN = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
       "maximum": torch.maximum, "minimum": torch.minimum, "eq": torch.eq, "ne": torch.ne, "lt": torch.lt,
       "le": torch.le, "gt": torch.gt, "ge": torch.ge}
UN = {"neg": torch.neg, "exp": torch.exp, "log": torch.log, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
      "relu": torch.relu, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "abs": torch.abs, "sign": torch.sign,
      "round": torch.round, "sin": torch.sin, "cos": torch.cos, "square": torch.square,
      "reciprocal": torch.reciprocal}
CAST = {"bf16": torch.bfloat16, "f16": torch.float16}


def read_meta(path):
    import json
    import struct
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n).decode("utf-8")).get("__metadata__", {})


def run_case(spec, t):
    a = t["a"].clone().requires_grad_(True)
    b = t["b"].clone().requires_grad_(True) if "b" in t else None
    parts = spec.split(":")
    kind, grads = parts[0], True
    if kind == "bin":
        y = BIN[parts[1]](a, b)
        grads = y.is_floating_point()
    elif kind == "scal":
        s, first = float(parts[2]), parts[3] == "1"
        fn = BIN[parts[1]]
        y = fn(torch.tensor(s, dtype=a.dtype), a) if first else fn(a, s)
    elif kind == "un":
        y = UN[parts[1]](a)
    elif kind == "where":
        y = torch.where(t["c"] != 0, a, b)
    elif kind == "clamp":
        y = torch.clamp(a, float(parts[1]), float(parts[2]))
    elif kind == "leaky":
        y = F.leaky_relu(a, float(parts[1]))
    elif kind == "cast":
        y = a.to(CAST[parts[1]])
        (y.to(a.dtype) * t["g"]).sum().backward()
        return {"y": y.detach(), "ga": a.grad}
    else:
        raise ValueError("elementwise_ref.py: unknown op spec %r" % spec)
    out = {"y": y.detach()}
    if grads:
        y.backward(t["g"])
        out["ga"] = a.grad if a.grad is not None else torch.zeros_like(a)
        if b is not None:
            out["gb"] = b.grad if b.grad is not None else torch.zeros_like(b)
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    src, dst = sys.argv[1], sys.argv[2]
    tensors, meta = read_safetensors(src), read_meta(src)
    out = {}
    for name, spec in sorted(meta.items()):
        t = {k.rsplit(".", 1)[1]: v for k, v in tensors.items() if k.rsplit(".", 1)[0] == name}
        for k, v in run_case(spec, t).items():
            out[name + "." + k] = v.detach().contiguous()
    write_safetensors(dst, out, {"cases": str(len(meta))})
    return 0


if __name__ == "__main__":
    sys.exit(main())
