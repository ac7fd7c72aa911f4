#!/usr/bin/python3
"""bench/ttt_eval_torch.py — PyTorch side of bench/ttt_eval.lua: PROTEUS v9's per-document LoRA TTT
evaluation (spec parameter-golf.md §3.7, score first then train, one epoch) on the rounds of documents,
weights, LoRA initialisation and settings that ttt_eval.lua wrote, timed round by round.

    python3 bench/ttt_eval_torch.py --weights W.safetensors --data D.safetensors \\
        --settings '{"chunk_size": 256, "eval_seq_len": 1024, "batch_docs": 64, "short_doc_len": 512, ...}' \\
        [--config proteus_v9] [--cfg '{...overrides}'] [--warmup 1] [--rounds 5] [--device cpu|cuda]
        [--amp none|bf16] [--attn ref|flash] [--compile 0|1] [--threads 2] [--time-limit 0]

The model is tests/reference/lora_ttt_ref.py's LoraGPT (gpt_ref.py's GPTRef with the §3.7 adapters:
per block Q and V deltas (x Aᵀ) Bᵀ on the block's normalised input, the LM-head delta before the
softcap; one adapter set per batch element), imported, not copied. The loop is the algorithm of
lua/lib/proteus/ttt.lua's lora_eval with epochs = 1 on one rank:
  * documents: every BOS (id 1) starts one, which runs to and includes the next BOS (data.docs);
    documents shorter than min_doc_len dropped;
  * short documents (len < short_doc_len): the base model, one forward over the document, scored;
  * long documents sorted by chunk count nc = (len − 2) // chunk + 1 (stable), in batches of
    batch_docs; per batch a fresh LoRA set (A = the --data file's init rows 1..B, B = 0) and a fresh
    Adam (groups q, v, head; lr, betas, eps, no weight decay); per chunk index c: the documents with
    nc > c, each its window [max(0, ce − window), ce) right-padded with token 0 to width
    min((c+1)·chunk, window); forward with the LoRA (autograd on iff the batch's last document has a
    chunk after c); the chunk's positions SCORED (softcapped cross-entropy, summed); then, when
    training, loss = Σ_docs [c < nc − 1]·mean NLL of the document's chunk, backward, one Adam step.
Timing: --warmup rounds first (untimed), then up to --rounds timed rounds (wall clock, device
synchronised at both ends); --time-limit S stops after S seconds once one round is timed.
CUDA (the defaults there): an fp32 model under bf16 autocast with flash SDPA only (bench/gpt_step_torch.py's
helpers), uncompiled as the record's TTT model was (§3.7); --compile 1 wraps the LoRA and base
forwards in torch.compile(dynamic=True) (the window width and the number of active documents change
from chunk to chunk). CPU (the defaults there): float32, the reference's written-out attention.

Files: --weights: the state dict (gpt_ref.load_params); --data: "round<k>" (1-D int64 token streams,
k = 0 .. warmup+rounds−1, round 0 first) and the LoRA A init "q.<i>.A", "v.<i>.A" [batch_docs, r, d],
"head.A" [batch_docs, rh, d] (the same A that ttt_eval.lua gives proteus).
Prints one JSON object: {"rounds": [{"seconds", "loss", "nll_sum", "scored", "trained", "steps",
"short_docs", "long_docs", "batches"}...], "warmup", "times", "median", "first_round_s", "device",
"torch", "setup", "setup_line", "threads"}.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
sys.path.insert(0, HERE)
import configs  # noqa: E402
import gpt_ref  # noqa: E402
import gpt_step_torch  # noqa: E402  (device-side helpers, flash SDPA)
import lora_ttt_ref  # noqa: E402

BOS = 1


class BenchGPT(lora_ttt_ref.LoraGPT):
    """LoraGPT whose adapters can be switched off (self.L = None: the base model, for short documents)."""

    def attn(self, i, h, tokens):
        if self.L is None:
            return gpt_ref.GPTRef.attn(self, i, h, tokens)
        return lora_ttt_ref.LoraGPT.attn(self, i, h, tokens)

    def bias(self, i, x):
        return x if self.L is None else lora_ttt_ref.LoraGPT.bias(self, i, x)

    def logits(self, tokens):
        if self.L is None:
            h = self.hidden(tokens)
            return h.reshape(-1, self.c["model_dim"]) @ self.P["tok_emb.weight"].t()
        return lora_ttt_ref.LoraGPT.logits(self, tokens)


def docs_of(tokens):
    """data.docs: (start, len) of every document; len includes the next BOS; the last runs to the end."""
    bos = (tokens == BOS).nonzero().flatten().tolist()
    out = []
    for j, s in enumerate(bos):
        n = bos[j + 1] - s + 1 if j + 1 < len(bos) else len(tokens) - s
        if n >= 2:
            out.append((s, n))
    return out


def nll_of(z, y, cap):
    z = z.float()
    if cap and cap > 0:
        z = cap * torch.tanh(z / cap)
    return F.cross_entropy(z, y, reduction="none")


def run_round(model, fwd, tokens, S, A, dev, amp_dtype):
    """One lora_eval over a token stream (module docstring). Returns the round's counts and NLL sum."""
    C, W, nb = S["chunk_size"], S["eval_seq_len"], S["batch_docs"]
    short_len, min_len = S["short_doc_len"], S.get("min_doc_len", 2)
    lr, betas, eps = S["lr"], tuple(S["betas"]), S["eps"]
    cap = model.c["logit_softcap"]
    L = model.c["num_layers"]
    short, long = [], []
    for order, (s, n) in enumerate(d for d in docs_of(tokens) if d[1] >= min_len):
        doc = {"start": s, "P": n - 1, "nc": (n - 2) // C + 1, "order": order}
        (short if n < short_len else long).append(doc)
    long.sort(key=lambda d: (d["nc"], d["order"]))
    tok_dev = tokens.to(dev)
    nll_sum = torch.zeros((), dtype=torch.float64, device=dev)
    st = {"scored": 0, "trained": 0, "steps": 0, "short_docs": len(short), "long_docs": len(long), "batches": 0}

    def autocast():
        if amp_dtype is None:
            return torch.autocast(device_type="cpu", enabled=False)
        return torch.autocast(device_type=dev.type, dtype=amp_dtype)

    # short documents: the base model, one forward each
    with torch.no_grad():
        for d in short:
            a, P = d["start"], d["P"]
            with autocast():
                z = fwd(tok_dev[a:a + P].reshape(1, P), None)
            nll_sum += nll_of(z, tok_dev[a + 1:a + 1 + P], cap).sum()
            st["scored"] += P
    # long documents: batches with a fresh LoRA and Adam each
    for first in range(0, len(long), nb):
        batch = long[first:first + nb]
        Bn = len(batch)
        st["batches"] += 1
        Lp = {}
        for i in range(L):
            Lp["q.%d.A" % i] = A["q.%d.A" % i][:Bn].to(dev).clone().requires_grad_(True)
            Lp["q.%d.B" % i] = torch.zeros(Bn, model.c["model_dim"], A["q.%d.A" % i].shape[1], device=dev, requires_grad=True)
            Lp["v.%d.A" % i] = A["v.%d.A" % i][:Bn].to(dev).clone().requires_grad_(True)
            kvd = model.c["num_kv_heads"] * model.c["head_dim"]
            Lp["v.%d.B" % i] = torch.zeros(Bn, kvd, A["v.%d.A" % i].shape[1], device=dev, requires_grad=True)
        Lp["head.A"] = A["head.A"][:Bn].to(dev).clone().requires_grad_(True)
        Lp["head.B"] = torch.zeros(Bn, model.c["vocab_size"], A["head.A"].shape[1], device=dev, requires_grad=True)
        groups = [{"params": [Lp[k] for k in sorted(Lp) if k.split(".")[0] == g], "lr": lr} for g in ("q", "v", "head")]
        opt = torch.optim.Adam(groups, lr=lr, betas=betas, eps=eps, weight_decay=0.0)
        max_nc = batch[-1]["nc"]
        for c in range(max_nc):
            lo = 0
            while batch[lo]["nc"] <= c:
                lo += 1
            Wc = min((c + 1) * C, W)
            train_any = max_nc - 1 > c
            R = Bn - lo
            x = torch.zeros(R, Wc, dtype=torch.int64)
            rows, tgt, wts = [], [], []
            for r, d in enumerate(batch[lo:]):
                cs = c * C
                ce = min(cs + C, d["P"])
                ws = max(0, ce - W)
                a = d["start"]
                x[r, :ce - ws] = tokens[a + ws:a + ce]
                rows.append(torch.arange(r * Wc + cs - ws, r * Wc + ce - ws))
                tgt.append(tokens[a + cs + 1:a + ce + 1])
                n = ce - cs
                trains = c < d["nc"] - 1
                wts.append(torch.full((n,), 1.0 / n if trains else 0.0))
                st["scored"] += n
                if trains:
                    st["trained"] += n
            rows_d = torch.cat(rows).to(dev)
            y = torch.cat(tgt).to(dev)
            Lv = {k: v[lo:] for k, v in Lp.items()}
            with torch.set_grad_enabled(train_any):
                with autocast():
                    z = fwd(x.to(dev), Lv)
                nll = nll_of(z.index_select(0, rows_d), y, cap)
            nll_sum += nll.detach().sum()  # SCORE, before the update
            if train_any:
                loss = (nll * torch.cat(wts).to(dev)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                st["steps"] += 1
    st["nll_sum"] = float(nll_sum)
    st["loss"] = st["nll_sum"] / max(st["scored"], 1)
    return st


def main():
    ap = argparse.ArgumentParser(description="time PROTEUS v9's LoRA TTT evaluation in PyTorch")
    ap.add_argument("--config", default="proteus_v9")
    ap.add_argument("--cfg", default="{}", help="JSON object of config overrides")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--settings", required=True, help="JSON: chunk_size, eval_seq_len, batch_docs, short_doc_len, "
                    "min_doc_len, lora_rank, head_rank, lr, betas, eps")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", choices=["none", "bf16"], default=None)
    ap.add_argument("--attn", choices=["ref", "flash"], default=None)
    ap.add_argument("--compile", type=int, choices=[0, 1], default=0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--time-limit", type=float, default=0.0)
    a = ap.parse_args()
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("ttt_eval_torch.py: --device cuda but torch.cuda.is_available() is false (torch %s)" % torch.__version__)
    torch.set_num_threads(a.threads)
    amp = a.amp or ("bf16" if cuda else "none")
    attn = a.attn or ("flash" if cuda else "ref")
    amp_dtype = torch.bfloat16 if amp == "bf16" else None
    S = json.loads(a.settings)
    c = configs.full_config(a.config, json.loads(a.cfg))
    P, names = gpt_ref.load_params(c, a.weights, torch.float32)
    D = gpt_ref.read_safetensors(a.data)
    nround = a.warmup + a.rounds
    streams = []
    for k in range(nround):
        if "round%d" % k not in D:
            raise SystemExit("ttt_eval_torch.py: %s has no round%d (warmup %d + rounds %d)" % (a.data, k, a.warmup, a.rounds))
        streams.append(D["round%d" % k].to(torch.int64))
    A = {k: v.to(torch.float32) for k, v in D.items() if k.endswith(".A")}
    setup = {"amp": amp, "attn": attn, "compile": a.compile}
    P = {n: P[n].detach().to(dev) for n in names}  # base weights frozen (§3.7)
    # the reference's CPU-only helpers replaced by device-side ones of the same math (on the CPU too,
    # so the CPU check mode runs this code): rotary tables built once per length, bf16(1/√(i+1)) looked up
    gpt_ref.rotary = gpt_step_torch.rotary_dev
    table = {}
    for i in range(c["num_layers"]):
        v = 1.0 / math.sqrt(i + 1)
        table[v] = gpt_ref.bf16_round(v)
    gpt_ref.bf16_round = table.__getitem__
    if cuda and attn == "ref":
        raise SystemExit("ttt_eval_torch.py: --attn ref builds its causal mask on the CPU; use --attn flash on CUDA")
    if attn == "flash":
        if not cuda:
            raise SystemExit("ttt_eval_torch.py: --attn flash needs --device cuda")
        gpt_step_torch.flash_only()
        gqa, why = gpt_step_torch.probe_flash_gqa(dev, amp_dtype or torch.bfloat16, c["num_heads"], c["num_kv_heads"],
                                                  c["head_dim"])
        setup["attention"] = "flash SDPA, " + ("enable_gqa" if gqa else "K/V heads repeated (flash+enable_gqa: %s)" % why)
        gpt_ref.causal_attention = gpt_step_torch.make_sdpa_attention(amp_dtype, gqa)
    setup.setdefault("attention", "reference softmax (written out)")
    model = BenchGPT(c, P, None)

    def fwd(x, Lv):
        model.L = Lv
        return model.logits(x)
    if a.compile:
        if not hasattr(torch, "compile"):
            raise SystemExit("ttt_eval_torch.py: --compile 1 needs torch >= 2.0 (this is %s)" % torch.__version__)
        fwd = torch.compile(fwd, dynamic=True)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    rounds, times, first = [], [], None
    t_begin = time.perf_counter()
    for k in range(nround):
        if a.time_limit > 0 and times and time.perf_counter() - t_begin > a.time_limit:
            break
        sync()
        t0 = time.perf_counter()
        r = run_round(model, fwd, streams[k], S, A, dev, amp_dtype)
        sync()
        r["seconds"] = time.perf_counter() - t0
        r["warmup"] = k < a.warmup
        rounds.append(r)
        if k == 0:
            first = r["seconds"]
        if k >= a.warmup:
            times.append(r["seconds"])
        print("round %d%s: %.3f s loss %.7f steps %d" % (k, " (warm-up)" if k < a.warmup else "", r["seconds"], r["loss"],
                                                         r["steps"]), file=sys.stderr, flush=True)
    if not times:
        raise SystemExit("ttt_eval_torch.py: no timed round (warmup %d, rounds %d)" % (a.warmup, a.rounds))
    line = "PyTorch %s (%s)" % (torch.__version__, ", ".join([
        "fp32 model, %s" % ("bf16 autocast" if amp_dtype else "f32"), setup["attention"],
        "torch.compile(dynamic=True)" if a.compile else "uncompiled (as the record's TTT)",
        "CPU %d threads" % torch.get_num_threads() if not cuda else "CUDA"]))
    out = {"rounds": rounds, "warmup": a.warmup, "times": times, "median": statistics.median(times), "first_round_s": first,
           "device": torch.cuda.get_device_name(dev) if cuda else "cpu", "torch": torch.__version__, "setup": setup,
           "setup_line": line, "threads": torch.get_num_threads()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
