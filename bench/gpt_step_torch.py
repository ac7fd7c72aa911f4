#!/usr/bin/python3
"""bench/gpt_step_torch.py — PyTorch side of bench/gpt_step.lua: a step of the PROTEUS v9 model
(tests/reference/gpt_ref.py's GPTRef, the reference the parity tests use) on the weights and tokens that
gpt_step.lua wrote, timed with the same protocol (warm-up steps, then `reps` timed steps, median).

    /usr/bin/python3 bench/gpt_step_torch.py --weights W.safetensors --tokens T.safetensors \
        [--config proteus_v9] [--threads 2] [--reps 5] [--warmup 1]                  # CPU, as before
    python3 bench/gpt_step_torch.py --weights W --tokens T --device cuda \
        [--amp bf16|none] [--compile 1|0] [--attn flash|ref] [--step train|fwdbwd] [--reps 5] [--warmup 3]
    python3 bench/gpt_step_torch.py --attn-bench [--device cuda] [--B 8] [--T 2048] [--H 8] [--Hkv 4] [--D 64]

--cfg '{"num_layers": 2, ...}' overrides config keys (bench/flops.lua's small_overrides in the CPU check
mode of bench/gpu_bench.sh --device cpu --small).
--attn-bench times causal GQA attention alone, forward and forward+backward (the PyTorch column of the
attention row of bench/gpu_bench.sh; proteus's is bench/gpu_attention.lua): on CUDA bf16 through flash
SDPA only (as below), on the CPU f32 through the reference's written-out softmax (torch 1.13 has no
SDPA); inputs [B, T, H, D] as proteus's F.attention takes them; CUDA-event (CPU: wall clock) medians of
--reps runs after --warmup. Prints {"B", "T", "H", "Hkv", "D", "dtype", "fwd_ms", "fwdbwd_ms",
"setup_line", "torch", "device"}.

CPU (the default, used by bench/run_cpu.sh): float32 forward+backward, the reference exactly as written.
CUDA (bench/run_gpu.sh): the records' setup for a v9 training step on one GPU — fp32 master weights,
forward under bf16 autocast (every matmul in bf16, as the records' CastedLinear does), the causal
attention through PyTorch's flash SDPA (`--attn flash`: only the flash backend is enabled, so a case it
cannot run is an error, never a quiet switch to another kernel; GQA through enable_gqa when this
PyTorch's flash kernel takes it, else K/V heads repeated — the JSON says which), the loss function under
torch.compile (`--compile 1`), and with `--step train` (the CUDA default) the optimizer step too:
clip_grad_norm_(0.3), fused AdamW for the tied embedding (lr 0.03) and the block scalars (lr 0.02),
Muon for the 2-D block matrices (lr 0.02, μ 0.99, Nesterov, NS5 in bf16 compiled, decoupled wd 0.04),
as spec §3.4 (schedules fixed at their plateau values; bigram.* and smear.gate in no optimizer).
On CUDA the two model-level helpers of gpt_ref.py that build CPU tensors (rotary's cos/sin tables,
the causal mask) and bf16_round (a .item()) are replaced by device-side equivalents of the same math.

Prints one JSON object: {"loss" (the last step's), "first_loss" (the first step's, before any update),
"times": [seconds per step...], "median", "threads", "device", "torch", "setup", "first_step_s",
"peak_mem_bytes"}. Run through bench/gpt_step.lua (or
bench/run_cpu.sh / bench/run_gpu.sh), which prints the comparison table.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import configs  # noqa: E402
import gpt_ref  # noqa: E402


# ---------------------------------------------------------------------------------------------------
# Device-side replacements for the reference's CPU-only helpers (same formulas)
# ---------------------------------------------------------------------------------------------------
_ROPE = {}


def _rope_tables(T, r, base, train_len, device):
    key = (T, r, float(base), train_len, str(device))
    if key not in _ROPE:
        b = gpt_ref.rope_base(float(base), r, T, train_len)
        inv_freq = 1.0 / (b ** (torch.arange(0, r, 2, dtype=torch.float32) / r))
        ang = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
        _ROPE[key] = (ang.cos().to(device), ang.sin().to(device))
    return _ROPE[key]


def rotary_dev(x, r, base, train_len):
    """gpt_ref.rotary with the cos/sin tables built once on x's device (computed on the CPU in f32, as there)."""
    T = x.shape[1]
    cos, sin = _rope_tables(T, r, base, train_len, x.device)
    cos = cos.to(x.dtype)[None, :, None, :]
    sin = sin.to(x.dtype)[None, :, None, :]
    h = r // 2
    x1, x2, rest = x[..., :h], x[..., h:r], x[..., r:]
    return torch.cat([x1 * cos + x2 * sin, -x1 * sin + x2 * cos, rest], dim=-1)


def make_sdpa_attention(amp_dtype, gqa):
    """causal_attention through F.scaled_dot_product_attention (scale 1/√D, query head h reads kv head
    h // (H/Hkv)). Inputs are cast to the autocast dtype (the records cast q_gain to q's dtype, so their
    q, k, v are all bf16; flash needs one 16-bit dtype)."""
    import torch.nn.functional as F

    def attn(q, k, v):
        if amp_dtype is not None:
            q, k, v = q.to(amp_dtype), k.to(amp_dtype), v.to(amp_dtype)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B,H,T,D]
        if gqa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            rep = q.shape[1] // k.shape[1]
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return y.transpose(1, 2)
    return attn


def flash_only():
    """Enables only the flash SDPA backend, so SDPA raises instead of using another kernel."""
    torch.backends.cuda.enable_flash_sdp(True)
    torch.backends.cuda.enable_mem_efficient_sdp(False)
    torch.backends.cuda.enable_math_sdp(False)
    if hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        torch.backends.cuda.enable_cudnn_sdp(False)


def probe_flash_gqa(device, dtype, H, Hkv, D):
    """True when this PyTorch's flash backend takes enable_gqa (checked on a small random problem)."""
    import torch.nn.functional as F
    q = torch.randn(1, H, 128, D, device=device, dtype=dtype)
    k = torch.randn(1, Hkv, 128, D, device=device, dtype=dtype)
    try:
        F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
        torch.cuda.synchronize()
        return True, ""
    except (RuntimeError, TypeError) as e:
        return False, str(e).splitlines()[0][:160]


# ---------------------------------------------------------------------------------------------------
# The v9 optimizers (spec §2.3, §3.4) for --step train
# ---------------------------------------------------------------------------------------------------
def ns5(G, steps=5):
    """Newton–Schulz quintic of spec §2.3: bf16, X/(‖X‖_F+1e-7), transposed when rows > cols."""
    a, b, c = 3.4445, -4.7750, 2.0315
    X = G.bfloat16()
    X = X / (X.norm() + 1e-7)
    tr = G.size(0) > G.size(1)
    if tr:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if tr else X


class Muon:
    """Muon with decoupled weight decay as PROTEUS v9 runs it on one rank: buf ← μ·buf + g, u = g + μ·buf,
    u ← bf16(NS5(u)·√max(1, rows/cols)), W ← W(1 − lr·wd) − lr·u."""

    def __init__(self, params, lr, momentum, wd, ns):
        self.params, self.lr, self.mu, self.wd, self.ns = params, lr, momentum, wd, ns
        self.bufs = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self):
        for p, buf in zip(self.params, self.bufs):
            g = p.grad
            if g is None:
                continue
            buf.mul_(self.mu).add_(g)
            u = g.add(buf, alpha=self.mu)
            u = (self.ns(u) * math.sqrt(max(1.0, p.size(0) / p.size(1)))).bfloat16()
            p.mul_(1 - self.lr * self.wd)
            p.add_(u.to(p.dtype), alpha=-self.lr)


def v9_optimizers(P, names, device, compile_ns):
    emb = [P[n] for n in names if n == "tok_emb.weight"]
    mats = [P[n] for n in names if n.startswith("blocks.") and P[n].dim() == 2 and "resid_mix" not in n]
    scal = [P[n] for n in names if (n.startswith("blocks.") and (P[n].dim() < 2 or "resid_mix" in n))
            or n == "skip_weights"]
    kw = {"fused": True} if device.type == "cuda" else {}
    a1 = torch.optim.AdamW(emb, lr=0.03, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.04, **kw)
    a2 = torch.optim.AdamW(scal, lr=0.02, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.04, **kw)
    ns = torch.compile(ns5) if compile_ns else ns5
    mu = Muon(mats, lr=0.02, momentum=0.99, wd=0.04, ns=ns)
    allp = [P[n] for n in names]

    def step():
        torch.nn.utils.clip_grad_norm_(allp, 0.3)
        a1.step()
        mu.step()
        a2.step()
    return step


def attn_bench(a):
    """--attn-bench: causal GQA attention alone (see the module docstring)."""
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("gpt_step_torch.py: --device cuda but torch.cuda.is_available() is false (torch %s)" % torch.__version__)
    torch.set_num_threads(a.threads)
    B, T, H, Hkv, D = a.B, a.T, a.H, a.Hkv, a.D
    dtype = torch.bfloat16 if cuda else torch.float32
    g = torch.Generator().manual_seed(T)
    q, k, v, gy = (torch.randn(B, T, h, D, generator=g).to(dev, dtype) for h in (H, Hkv, Hkv, H))
    if cuda:
        flash_only()
        gqa, why = probe_flash_gqa(dev, dtype, H, Hkv, D)
        attn = make_sdpa_attention(None, gqa)
        setup = "flash SDPA, bf16, " + ("enable_gqa" if gqa else "K/V heads repeated (flash+enable_gqa: %s)" % why)
    else:
        attn = gpt_ref.causal_attention
        setup = "reference softmax attention (written out), f32, CPU %d threads" % torch.get_num_threads()
    warmup = a.warmup if a.warmup is not None else 3

    def timed(fn):
        ts = []
        for i in range(warmup + a.reps):
            if cuda:
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                fn()
                e1.record()
                torch.cuda.synchronize()
                dt = e0.elapsed_time(e1)
            else:
                t0 = time.perf_counter()
                fn()
                dt = (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                ts.append(dt)
        return statistics.median(ts)

    def fwd():
        with torch.no_grad():
            attn(q, k, v)
    qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))

    def fwdbwd():
        qg.grad = kg.grad = vg.grad = None
        attn(qg, kg, vg).backward(gy)
    out = {"B": B, "T": T, "H": H, "Hkv": Hkv, "D": D, "dtype": str(dtype).replace("torch.", ""),
           "fwd_ms": timed(fwd), "fwdbwd_ms": timed(fwdbwd), "reps": a.reps, "warmup": warmup,
           "setup_line": "%s (torch %s)" % (setup, torch.__version__), "torch": torch.__version__,
           "device": torch.cuda.get_device_name(dev) if cuda else "cpu"}
    print(json.dumps(out))
    return 0


def main():
    ap = argparse.ArgumentParser(description="time a GPTRef step (forward+backward, optionally the optimizer)")
    ap.add_argument("--config", default="proteus_v9")
    ap.add_argument("--cfg", default="{}", help="JSON object of config overrides")
    ap.add_argument("--weights")
    ap.add_argument("--tokens")
    ap.add_argument("--attn-bench", action="store_true", help="time attention alone (see the docstring)")
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--T", type=int, default=2048)
    ap.add_argument("--H", type=int, default=8)
    ap.add_argument("--Hkv", type=int, default=4)
    ap.add_argument("--D", type=int, default=64)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 1 on the CPU, 3 on CUDA)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--amp", choices=["none", "bf16"], default=None, help="autocast dtype (default: none on the CPU, bf16 on CUDA)")
    ap.add_argument("--compile", type=int, choices=[0, 1], default=None, help="torch.compile the loss (default 0 CPU, 1 CUDA)")
    ap.add_argument("--attn", choices=["ref", "flash"], default=None,
                    help="ref: the reference's written-out softmax; flash: flash SDPA only (default ref CPU, flash CUDA)")
    ap.add_argument("--step", choices=["fwdbwd", "train"], default=None, help="default fwdbwd on the CPU, train on CUDA")
    a = ap.parse_args()
    if a.attn_bench:
        return attn_bench(a)
    if not a.weights or not a.tokens:
        ap.error("--weights and --tokens are required (or --attn-bench)")
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    warmup = a.warmup if a.warmup is not None else (3 if cuda else 1)
    amp = a.amp or ("bf16" if cuda else "none")
    comp = a.compile if a.compile is not None else (1 if cuda else 0)
    attn = a.attn or ("flash" if cuda else "ref")
    stepk = a.step or ("train" if cuda else "fwdbwd")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("gpt_step_torch.py: --device cuda but torch.cuda.is_available() is false (torch %s)" % torch.__version__)
    torch.set_num_threads(a.threads)
    c = configs.full_config(a.config, json.loads(a.cfg))
    P, names = gpt_ref.load_params(c, a.weights, torch.float32)
    tk = gpt_ref.read_safetensors(a.tokens)
    x, y = tk["x"].to(torch.int64), tk["y"].to(torch.int64)
    setup = {"amp": amp, "compile": comp, "attn": attn, "step": stepk}
    amp_dtype = torch.bfloat16 if amp == "bf16" else None
    if cuda or attn != "ref":
        # move to the device and swap in the device-side helpers (the CPU default leaves gpt_ref untouched)
        P = {n: P[n].detach().to(dev).requires_grad_(True) for n in names}
        x, y = x.to(dev), y.to(dev)
        gpt_ref.rotary = rotary_dev
        # build the tables now, so a compiled trace only looks them up (key: x's own device, e.g. cuda:0)
        _rope_tables(x.shape[1], c["rope_dims"], c["rope_base"], c["rope_train_seq_len"], x.device)
        table = {}
        for i in range(c["num_layers"]):
            v = 1.0 / math.sqrt(i + 1)
            table[v] = gpt_ref.bf16_round(v)

        def bf16_round_table(v):
            return table[v]
        gpt_ref.bf16_round = bf16_round_table
        if attn == "flash":
            if not cuda:
                raise SystemExit("gpt_step_torch.py: --attn flash needs --device cuda")
            flash_only()
            gqa, why = probe_flash_gqa(dev, amp_dtype or torch.bfloat16, c["num_heads"], c["num_kv_heads"], c["head_dim"])
            setup["attention"] = "flash SDPA, " + ("enable_gqa" if gqa else "K/V heads repeated (flash+enable_gqa: %s)" % why)
            gpt_ref.causal_attention = make_sdpa_attention(amp_dtype, gqa)
        else:
            mask = {}

            def causal_ref(q, k, v):
                B, T, H, D = q.shape
                rep = H // k.shape[2]
                k = k.repeat_interleave(rep, dim=2)
                v = v.repeat_interleave(rep, dim=2)
                q, k, v = (t.transpose(1, 2) for t in (q, k, v))
                s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D))
                if T not in mask:
                    mask[T] = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
                s = s.masked_fill(mask[T], float("-inf"))
                return (torch.softmax(s, dim=-1) @ v).transpose(1, 2)
            setup["attention"] = "reference softmax (written out)"
            gpt_ref.causal_attention = causal_ref
    model = gpt_ref.GPTRef(c, P)
    loss_fn = model.loss
    if comp:
        loss_fn = torch.compile(model.loss, dynamic=False)
    opt_step = v9_optimizers(P, names, dev, comp and cuda) if stepk == "train" else None

    def sync():
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, loss, first, first_loss = [], None, None, None
    for i in range(warmup + a.reps):
        for n in names:
            P[n].grad = None
        sync()
        t0 = time.perf_counter()
        if amp_dtype is not None:
            with torch.autocast(device_type=dev.type, dtype=amp_dtype):
                lt = loss_fn(x, y)
        else:
            lt = loss_fn(x, y)
        lt.backward()
        if opt_step is not None:
            opt_step()
        sync()
        dt = time.perf_counter() - t0
        loss = float(lt)
        if i == 0:
            first, first_loss = dt, loss
        if i >= warmup:
            times.append(dt)
    out = {"loss": loss, "first_loss": first_loss, "times": times, "median": statistics.median(times),
           "threads": torch.get_num_threads()}
    if cuda or attn != "ref" or amp != "none" or comp or stepk != "fwdbwd":
        out.update({"device": torch.cuda.get_device_name(dev) if cuda else "cpu", "torch": torch.__version__,
                    "setup": setup, "first_step_s": first, "warmup": warmup,
                    "peak_mem_bytes": torch.cuda.max_memory_allocated(dev) if cuda else None})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
