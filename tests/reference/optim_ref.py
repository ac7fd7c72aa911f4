#!/usr/bin/python3
"""optim_ref.py — PyTorch reference for proteus.optim (tests/lua/test_optim.lua drives it).

    /usr/bin/python3 tests/reference/optim_ref.py CASE_FILE RESULT_FILE
    /usr/bin/python3 tests/reference/optim_ref.py --selftest

AdamW, Adam and SGD are torch.optim's own single-tensor implementations (foreach=False). Muon is
written here from the spec (/work/shared/spec/parameter-golf.md §2.3, §3.4, §4.3): momentum with
Nesterov, Newton–Schulz with the quintic (3.4445, −4.7750, 2.0315) or the Polar Express per-step
tuples, optional MuonEq-R row normalisation, shape factor √max(1, rows/cols), decoupled weight decay,
update rounded to bf16 ("scaled": bf16(f·u), "unit": bf16(u) then f applied with lr).

Exchange format (plain text, one record per line, floats as C99/Python hex floats so f32 values
round-trip exactly):
    config KEY=VALUE KEY=VALUE ...          optimizer kind and hyper-parameters (numbers or words)
    lr_mul v1 v2 ... vSTEPS                  per-step multiplier of every group's lr
    param NAME d1,d2,.. x1 x2 ...            initial parameter (row-major)
    grad STEP NAME d1,d2,.. x1 x2 ...        gradient of NAME at STEP (1-based)
The result file holds `param NAME ...` (after all steps) and `state NAME.KEY ...` (exp_avg,
exp_avg_sq, momentum_buffer) in the same layout.
"""
import sys

try:
    import torch
except ImportError:  # ctest treats 77 as "skipped"
    print("optim_ref: torch is not installed for " + sys.executable)
    sys.exit(77)


def parse(path):
    cfg, lr_mul, params, grads = {}, [], {}, {}
    order = []
    with open(path) as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "config":
                for kv in tok[1:]:
                    k, v = kv.split("=", 1)
                    try:
                        cfg[k] = float.fromhex(v) if v.startswith(("0x", "-0x")) else float(v)
                    except ValueError:
                        cfg[k] = v
            elif tok[0] == "lr_mul":
                lr_mul = [float.fromhex(x) for x in tok[1:]]
            elif tok[0] == "param":
                name, shape = tok[1], [int(d) for d in tok[2].split(",")]
                params[name] = torch.tensor([float.fromhex(x) for x in tok[3:]], dtype=torch.float32).reshape(shape)
                order.append(name)
            elif tok[0] == "grad":
                step, name, shape = int(tok[1]), tok[2], [int(d) for d in tok[3].split(",")]
                grads[(step, name)] = torch.tensor([float.fromhex(x) for x in tok[4:]],
                                                   dtype=torch.float32).reshape(shape)
            else:
                raise ValueError(f"{path}: unknown record {tok[0]!r}")
    return cfg, lr_mul, params, order, grads


NS5 = [(3.4445, -4.7750, 2.0315)]
POLAR_EXPRESS = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]


def newton_schulz(G, steps, coeffs, bf16, row_norm):
    """Orthogonalise the last two dims of G (spec §2.3/§4.3).

    bf16=True reproduces the records' CUDA numerics: tensors are stored in bf16 and every op computes
    in f32 ("opmath": Python-float coefficients stay f32, GEMMs accumulate in f32) and rounds its
    result to bf16. It is written with explicit R() roundings on f32 tensors because torch 1.13's CPU
    bf16 kernels differ from CUDA's (they round Python scalars to bf16 first and the bf16 GEMM does not
    accumulate in f32)."""
    if bf16:
        def R(t):
            return t.bfloat16().float()
    else:
        def R(t):
            return t
    X = R(G.float().clone())
    tr = G.size(-2) > G.size(-1)
    if tr:
        X = X.mT
    if row_norm:
        X = R(X / R(X.norm(dim=-1, keepdim=True)).clamp_min(1e-7))
    X = R(X / R(R(X.norm(dim=(-2, -1), keepdim=True)) + 1e-7))
    for k in range(steps):
        a, b, c = coeffs[0] if len(coeffs) == 1 else coeffs[k]
        A = R(X @ X.mT)
        B = R(R(b * A) + R(c * R(A @ A)))
        X = R(R(a * X) + R(B @ X))
    if tr:
        X = X.mT
    return X


def muon_step(p, g, buf, lr, mu, nesterov, wd, factor, steps, coeffs, bf16, row_norm, rnd):
    buf.mul_(mu).add_(g)
    u = g.add(buf, alpha=mu) if nesterov else buf
    u = newton_schulz(u, steps, coeffs, bf16, row_norm)
    if factor <= 0:
        factor = max(1.0, p.size(-2) / p.size(-1)) ** 0.5
    alpha = -lr
    if rnd == "scaled":
        u = (u * factor).bfloat16().float()
    elif rnd == "unit":
        u = u.bfloat16().float()
        alpha = -lr * factor
    else:
        u = u.float() * factor
    p.mul_(1 - lr * wd)
    p.add_(u, alpha=alpha)


def run(cfg, lr_mul, params, order, grads):
    kind = cfg["kind"]
    steps = int(cfg["steps"])
    ps = [params[n].clone().requires_grad_(False) for n in order]
    state = {}
    if kind in ("adamw", "adam", "sgd"):
        for p in ps:
            p.requires_grad_(True)
        base_lr = cfg["lr"]
        if kind == "adamw":
            opt = torch.optim.AdamW(ps, lr=base_lr, betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
                                    weight_decay=cfg["weight_decay"], foreach=False,
                                    maximize=cfg.get("maximize", "false") == "true")
        elif kind == "adam":
            opt = torch.optim.Adam(ps, lr=base_lr, betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"],
                                   weight_decay=0, foreach=False)
        else:
            opt = torch.optim.SGD(ps, lr=base_lr, momentum=cfg["momentum"], dampening=cfg["dampening"],
                                  weight_decay=cfg["weight_decay"], nesterov=cfg["nesterov"] == "true",
                                  foreach=False)
        for s in range(1, steps + 1):
            for group in opt.param_groups:
                group["lr"] = base_lr * lr_mul[s - 1]
            for n, p in zip(order, ps):
                p.grad = grads[(s, n)].clone()
            opt.step()
        for n, p in zip(order, ps):
            for k, v in opt.state[p].items():
                if k != "step" and v is not None:
                    state[n + "." + k] = v
        return {n: p.detach() for n, p in zip(order, ps)}, state
    if kind == "muon":
        coeffs = NS5 if cfg["coeffs"] == "ns5" else POLAR_EXPRESS
        ns_steps = int(cfg["ns_steps"])
        bufs = [torch.zeros_like(p) for p in ps]
        for s in range(1, steps + 1):
            lr = cfg["lr"] * lr_mul[s - 1]
            for n, p, b in zip(order, ps, bufs):
                muon_step(p, grads[(s, n)], b, lr, cfg["momentum"], cfg["nesterov"] == "true",
                          cfg["weight_decay"], cfg["factor"], ns_steps, coeffs, cfg["ns_dtype"] == "bf16",
                          cfg["row_norm"] == "true", cfg["round"])
        for n, b in zip(order, bufs):
            state[n + ".momentum_buffer"] = b
        return {n: p for n, p in zip(order, ps)}, state
    if kind == "ns":
        coeffs = NS5 if cfg["coeffs"] == "ns5" else POLAR_EXPRESS
        out = {}
        for n in order:
            out[n] = newton_schulz(params[n], int(cfg["ns_steps"]), coeffs, cfg["ns_dtype"] == "bf16",
                                   cfg["row_norm"] == "true").float()
        return out, {}
    raise ValueError(f"unknown optimizer kind {kind!r}")


def write_tensor(f, tag, name, t):
    t = t.detach().float().contiguous()
    shape = ",".join(str(d) for d in t.shape) if t.dim() > 0 else "1"
    f.write(f"{tag} {name} {shape} " + " ".join(float(x).hex() for x in t.reshape(-1).tolist()) + "\n")


def selftest():
    """NS acts on singular values only: svals(NS(G)) = p(svals(G)/||G||_F) with p the composed
    polynomial x -> a x + b x^3 + c x^5 of each step. Checks the reference against that identity."""
    torch.manual_seed(0)
    for shape, steps, coeffs, row_norm in (((16, 32), 5, NS5, False), ((32, 16), 5, NS5, False),
                                           ((3, 24, 8), 4, POLAR_EXPRESS, False)):
        G = torch.randn(*shape, dtype=torch.float64)
        s_in = torch.linalg.svdvals(G)
        s_in = s_in / G.norm(dim=(-2, -1), keepdim=True).squeeze(-1)
        y = s_in.clone()
        for k in range(steps):
            a, b, c = coeffs[0] if len(coeffs) == 1 else coeffs[k]
            y = a * y + b * y ** 3 + c * y ** 5
        s_out = torch.linalg.svdvals(newton_schulz(G.float(), steps, coeffs, False, row_norm).double())
        err = (s_out.sort(dim=-1).values - y.sort(dim=-1).values).abs().max().item()
        assert err < 1e-4, (shape, err)
    print("optim_ref selftest ok")


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--selftest":
        selftest()
        return
    if len(sys.argv) != 3:
        sys.exit("usage: optim_ref.py CASE_FILE RESULT_FILE")
    cfg, lr_mul, params, order, grads = parse(sys.argv[1])
    torch.set_num_threads(1)
    out, state = run(cfg, lr_mul, params, order, grads)
    with open(sys.argv[2], "w") as f:
        for n in order:
            write_tensor(f, "param", n, out[n])
        for k, v in state.items():
            write_tensor(f, "state", k, v)


if __name__ == "__main__":
    main()
