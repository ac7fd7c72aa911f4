#!/usr/bin/python3
"""quant_ref.py — the quantization schemes of proteus.quant written independently in PyTorch from the
spec (../shared/spec/parameter-golf.md §2.5, §3.6, §3.9, §4.5, §5.4), for tests/lua/test_quant.lua.

    /usr/bin/python3 tests/reference/quant_ref.py IN.safetensors OUT.safetensors

IN holds test weights "<case>.w" (2-D f32), optional Hessians "<case>.H" (f32 [cols, cols]), and for
the magnitude-pruning case "prune.p<i>" (the 2-D weights) and "prune.idx" (i64, the sample positions
into the concatenation of |w| drawn by proteus with pt.randperm), with metadata {"prune_frac": "0.05"}.
OUT gets, per case and scheme, "<case>.<scheme>.q" (i8) and "<case>.<scheme>.s" (f16 scales), the
chosen percentiles as "<case>.<scheme>.p" (f32), and for pruning "prune.thr" (f32 [1]) and the
pruned "prune.p<i>". Exit 77 when torch is missing (the test skips).

Numerics, as the records' PyTorch code: f32 math; torch.quantile (linear interpolation); torch.round
(half to even); clean_per_row schemes quantize with the f32 scale and store fp16; the #1539 family
(SDClip, GPTQ) quantizes with the fp16-rounded scale; error criteria use the stored fp16 scale and
are summed in float64.
"""
import json
import struct
import sys

try:
    import torch
except ImportError:
    sys.exit(77)

DT = {"F32": torch.float32, "F16": torch.float16, "I8": torch.int8, "I64": torch.int64, "F64": torch.float64}
DT_NAME = {v: k for k, v in DT.items()}
LITE = [0.999, 0.9995, 0.9999, 0.99999, 1.0]
CLIP_Q = 0.9999984


def read_st(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        t = torch.frombuffer(bytearray(buf[base + a:base + b]), dtype=DT[h["dtype"]]) if b > a else \
            torch.empty(0, dtype=DT[h["dtype"]])
        out[name] = t.reshape(h["shape"]).clone()
    return out, meta


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.numpy().tobytes() if t.dtype != torch.float16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": DT_NAME[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hj = json.dumps(header).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def row_err(w, q, s16):
    d = w.double() - q.double() * s16.double()[:, None]
    return (d * d).sum(1)


def int_row_clip(w, p, qmax):
    clip = torch.quantile(w.abs(), p, dim=1)
    s32 = (clip / qmax).clamp_min(1.0 / qmax)
    q = torch.clamp(torch.round(torch.clamp(w, -clip[:, None], clip[:, None]) / s32[:, None]), -qmax, qmax)
    return q.to(torch.int8), s32.half(), clip, s32


def gptq_lite_row(w):
    cands = [int_row_clip(w, p, 31) for p in LITE]
    errs = torch.stack([row_err(w, c[0], c[1]) for c in cands])
    best = errs.argmin(0)
    rows = torch.arange(w.shape[0])
    clip = torch.stack([c[2] for c in cands])[best, rows]
    s32 = torch.stack([c[3] for c in cands])[best, rows]
    q = torch.clamp(torch.round(torch.clamp(w, -clip[:, None], clip[:, None]) / s32[:, None]), -31, 31)
    return q.to(torch.int8), s32.half(), torch.tensor([LITE[i] for i in best.tolist()], dtype=torch.float32)


def gptq_lite_tensor(w):
    best = None
    for p in LITE:
        clip = torch.quantile(w.abs(), p, dim=1)
        s32 = (clip / 31).clamp_min(1.0 / 31)
        q = torch.clamp(torch.round(w / s32[:, None]), -32, 31).to(torch.int8)
        e = row_err(w, q, s32.half()).sum().item()
        if best is None or e < best[0]:
            best = (e, q, s32.half(), p)
    return best[1], best[2], torch.tensor([best[3]], dtype=torch.float32)


def int8_tensor(w):
    amax = w.abs().max()
    s32 = amax / 127 if amax.item() > 0 else torch.tensor(1.0)
    q = torch.clamp(torch.round(w / s32), -127, 127).to(torch.int8)
    return q, s32.reshape(1).half()


def sdclip_scale(w, k, qmax):
    return (k * w.std(dim=1) / qmax).clamp_min(1.0 / qmax).half()


def sdclip(w, k, qmax):
    s16 = sdclip_scale(w, k, qmax)
    q = torch.clamp(torch.round(w / s16.float()[:, None]), -qmax, qmax).to(torch.int8)
    return q, s16


def gptq(w, H, k=12.85, qmax=31, damp=0.01, block=128):
    """§4.5: dead columns, second damping, descending-diag permutation, U = chol_upper(H^-1), sweep."""
    R, C = w.shape
    s16 = sdclip_scale(w, k, qmax)
    s = s16.float()
    H = H.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W = w.clone()
    W[:, dead] = 0
    H.diagonal().add_(damp * H.diagonal().double().mean().float())
    perm = sorted(range(C), key=lambda j: (-H[j, j].item(), j))
    perm = torch.tensor(perm)
    inv = torch.argsort(perm)
    W = W[:, perm].clone()
    H = H[perm][:, perm]
    U = torch.linalg.cholesky(torch.linalg.inv(H), upper=True)
    Q = torch.zeros(R, C, dtype=torch.int8)
    for i1 in range(0, C, block):
        i2 = min(i1 + block, C)
        E = torch.zeros(R, i2 - i1)
        for j in range(i1, i2):
            q = torch.clamp(torch.round(W[:, j] / s), -qmax, qmax)
            Q[:, j] = q.to(torch.int8)
            e = (W[:, j] - q * s) / U[j, j]
            E[:, j - i1] = e
            W[:, j + 1:i2] -= e[:, None] * U[j, j + 1:i2][None, :]
        if i2 < C:
            W[:, i2:] -= E @ U[i1:i2, i2:]
    return Q[:, inv], s16


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    ins, meta = read_st(sys.argv[1])
    out = {}
    cases = sorted({k[:-2] for k in ins if k.endswith(".w")})
    for c in cases:
        w = ins[c + ".w"].float()
        q, s, _, _ = int_row_clip(w, CLIP_Q, 127)
        out[c + ".int8_row_clip.q"], out[c + ".int8_row_clip.s"] = q, s
        q, s, _, _ = int_row_clip(w, CLIP_Q, 31)
        out[c + ".int6_row_clip.q"], out[c + ".int6_row_clip.s"] = q, s
        q, s, p = gptq_lite_row(w)
        out[c + ".int6_gptq_lite_row.q"], out[c + ".int6_gptq_lite_row.s"], out[c + ".int6_gptq_lite_row.p"] = q, s, p
        q, s, p = gptq_lite_tensor(w)
        out[c + ".int6_gptq_lite_tensor.q"], out[c + ".int6_gptq_lite_tensor.s"] = q, s
        out[c + ".int6_gptq_lite_tensor.p"] = p
        q, s = int8_tensor(w)
        out[c + ".int8_tensor.q"], out[c + ".int8_tensor.s"] = q, s
        q, s = sdclip(w, 12.85, 31)
        out[c + ".int6_sdclip.q"], out[c + ".int6_sdclip.s"] = q, s
        q, s = sdclip(w, 20.0, 127)
        out[c + ".int8_sdclip.q"], out[c + ".int8_sdclip.s"] = q, s
        if c + ".H" in ins:
            q, s = gptq(w, ins[c + ".H"].float())
            out[c + ".int6_gptq.q"], out[c + ".int6_gptq.s"] = q, s
    if "prune.idx" in ins:
        frac = float(meta["prune_frac"])
        ps = [ins[k] for k in sorted((k for k in ins if k.startswith("prune.p")), key=lambda k: int(k[7:]))]
        allabs = torch.cat([p.abs().flatten() for p in ps])
        sample = allabs[ins["prune.idx"]].sort().values
        n = sample.numel()
        thr = sample[min(int(frac * n), n - 1)]
        out["prune.thr"] = thr.reshape(1)
        for i, p in enumerate(ps):
            out["prune.p%d" % (i + 1)] = torch.where(p.abs() < thr, torch.zeros_like(p), p)
    write_st(sys.argv[2], out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
