#!/usr/bin/python3
"""gpt_ref.py — PyTorch reference of the parameter-golf GPT family, written from the spec.

    /usr/bin/python3 tests/reference/gpt_ref.py --config NAME --weights W.safetensors \
        --tokens T.safetensors [--set KEY=JSON ...] [--out OUT.json] [--grads G.safetensors] [--dtype f32|f64]
    /usr/bin/python3 tests/reference/gpt_ref.py --config NAME --shapes      # names and shapes as JSON

Models (spec ../shared/spec/parameter-golf.md): the baseline (§2.1, RoPE §2.2), PROTEUS v9 (§3.2–3.3,
with and without XSA), #1539 (§4.1–4.2, recurrence on and off, parallel lanes) and #598 (§5.1–5.2),
selected by the configs of configs.py (proteus.nn's key names; `--set` overrides one key with a JSON
value, e.g. --set num_layers=4 --set 'xsa_layers=[2,3]').

Weights: a safetensors file holding exactly the state-dict names and shapes of param_shapes(cfg)
(lua/lib/proteus/nn.lua registers the same); any missing, extra or mis-shaped name is an error naming it.
Tokens: a safetensors file with integer tensors "x" and "y" of shape [B, T] (inputs and targets).
The run is in float32 on the CPU (or float64 with --dtype f64); it computes the mean softcapped
cross-entropy and its gradient with respect to every parameter, then prints a JSON object
{"loss", "params", "hash", "grads": {name: {"norm", "sum", "shape"}}} (also written to --out) and,
with --grads, writes the gradients (same names, the run's dtype) to a safetensors file.
`hash` is the SHA-256 of the loss and gradients' bytes (f32, state-dict order): equal hashes mean
bit-identical runs of this script.

Written with Debian's torch 1.13 in mind: no F.rms_norm (RMS written out, eps = FLT_EPSILON), no
SDPA GQA (kv heads repeated), the causal softmax attention written out. The minimal safetensors reader
and writer here do not use the `safetensors` package. Used by tests/lua/test_gpt_parity.lua.
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import configs  # noqa: E402

# ---------------------------------------------------------------------------------------------------
# safetensors (minimal)
# ---------------------------------------------------------------------------------------------------
ST_DTYPES = {"F32": torch.float32, "F64": torch.float64, "BF16": torch.bfloat16, "F16": torch.float16,
             "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "U16": None, "I8": torch.int8,
             "U8": torch.uint8, "BOOL": torch.bool}
TO_ST = {v: k for k, v in ST_DTYPES.items() if v is not None}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: file too short for a safetensors header (%d bytes)" % (path, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("%s: header length %d exceeds the file size %d" % (path, n, len(data)))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        st = info["dtype"]
        shape = info["shape"]
        a, b = info["data_offsets"]
        raw = bytearray(data[base + a:base + b])
        if st == "U16":  # token ids: widen to int64
            t = torch.frombuffer(raw, dtype=torch.int16).to(torch.int64) & 0xFFFF if raw else torch.zeros(0, dtype=torch.int64)
        else:
            dt = ST_DTYPES.get(st)
            if dt is None:
                raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, st))
            t = torch.frombuffer(raw, dtype=dt) if raw else torch.zeros(0, dtype=dt)
        out[name] = t.reshape(shape).clone()
    return out


def write_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        t = t.detach().contiguous()
        b = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": TO_ST[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------
# Parameter names and shapes (the state dict)
# ---------------------------------------------------------------------------------------------------
def param_shapes(c):
    """Ordered list of (name, shape) of the trainable parameters (no buffers), spec state-dict names."""
    d, V, L = c["model_dim"], c["vocab_size"], c["num_layers"]
    kvd = c["num_kv_heads"] * c["head_dim"]
    hid = c["mlp_hidden"]
    n_skip = min(L // 2, L - L // 2)
    if not c["tie_embeddings"]:
        raise ValueError("gpt_ref.py: untied embeddings (tie_embeddings=false) are in no config of the spec")
    s = [("tok_emb.weight", [V, d])]
    if c["bigram_vocab_size"] > 0:
        s += [("bigram.embed.weight", [c["bigram_vocab_size"], c["bigram_dim"]]),
              ("bigram.proj.weight", [d, c["bigram_dim"]]),
              ("bigram.scale", [])]
    if c["smear_gate"]:
        s.append(("smear.gate", [d]))
    if c["ve_dim"] > 0:
        s += [("ve_shared.embed.weight", [V, c["ve_dim"]]),
              ("ve_shared.proj.weight", [kvd, c["ve_dim"]]),
              ("ve_shared.scale", []),
              ("ve_layer_scales", [len(c["ve_layers"])])]
    s.append(("skip_weights", [n_skip, d]))
    if c["skip_mode"] == "gated":
        s.append(("skip_gates", [n_skip, d]))
    for i in range(L):
        b = "blocks.%d." % i
        s += [(b + "attn_scale", [d]), (b + "mlp_scale", [d]), (b + "resid_mix", [2, d]),
              (b + "attn.c_q.weight", [d, d]), (b + "attn.c_k.weight", [kvd, d]),
              (b + "attn.c_v.weight", [kvd, d]), (b + "attn.proj.weight", [d, d]),
              (b + "attn.q_gain", [c["num_heads"]]),
              (b + "mlp.fc.weight", [hid, d]), (b + "mlp.proj.weight", [d, hid])]
        if c["mlp_act"] == "star_relu":
            s += [(b + "mlp.scale", [hid]), (b + "mlp.bias", [hid])]
    if c["parallel_start"] is not None:
        s.append(("lane_merge", []))
    return s


def num_params(c):
    return sum(math.prod(shape) for _, shape in param_shapes(c))


# ---------------------------------------------------------------------------------------------------
# The model (functional over a name -> tensor dict)
# ---------------------------------------------------------------------------------------------------
def rms(x, eps, lam=None):
    y = x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return y if lam is None else y * lam


def rope_base(base, r, T, train_len):
    """NTK base scaling of §2.2: base·(T/train_len)^(r/(r−2)) when T exceeds the rope training length."""
    if train_len and T > train_len:
        return base * (T / train_len) ** (r / (r - 2))
    return base


def rotary(x, r, base, train_len):
    """x [B,T,H,D]; RoPE on the first r dims, halves (x1 = dims 0..r/2−1, x2 = r/2..r−1), §2.2 signs."""
    T = x.shape[1]
    b = rope_base(float(base), r, T, train_len)
    inv_freq = 1.0 / (b ** (torch.arange(0, r, 2, dtype=torch.float32) / r))
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv_freq)
    cos = ang.cos().to(x.dtype)[None, :, None, :]
    sin = ang.sin().to(x.dtype)[None, :, None, :]
    h = r // 2
    x1, x2, rest = x[..., :h], x[..., h:r], x[..., r:]
    return torch.cat([x1 * cos + x2 * sin, -x1 * sin + x2 * cos, rest], dim=-1)


def causal_attention(q, k, v):
    """q [B,T,H,D], k, v [B,T,Hkv,D] -> [B,T,H,D]; query head h reads kv head h // (H/Hkv); scale 1/√D."""
    B, T, H, D = q.shape
    rep = H // k.shape[2]
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B,H,T,D]
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D))
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    y = torch.softmax(s, dim=-1) @ v
    return y.transpose(1, 2)


def xsa(y, v):
    """§4.2: y_{t,h} − (y_{t,h}·v̂)v̂, v̂ = v_{t,g}/max(‖v_{t,g}‖, 1e-12) for the head's kv group g."""
    rep = y.shape[2] // v.shape[2]
    vh = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    vh = vh.repeat_interleave(rep, dim=2)
    return y - (y * vh).sum(dim=-1, keepdim=True) * vh


def bigram_hash(tokens, buckets):
    """§3.2: b_0 = buckets−1; b_t = ((36313·tok_t) XOR (27191·tok_{t−1})) mod (buckets−1), int32."""
    t = tokens.to(torch.int32)
    out = torch.full_like(t, buckets - 1)
    h = torch.bitwise_xor(36313 * t[:, 1:], 27191 * t[:, :-1]) % (buckets - 1)
    out[:, 1:] = h
    return out.to(torch.int64)


def smear_gate(x, g):
    """§3.2: (1−σ(g))⊙x + σ(g)⊙shift(x), shift = previous position, zero at t = 0."""
    s = torch.sigmoid(g)
    prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
    return (1 - s) * x + s * prev


def bf16_round(v):
    return torch.tensor(v, dtype=torch.float32).to(torch.bfloat16).item()


class GPTRef:
    def __init__(self, c, P):
        self.c, self.P = c, P

    def virtual_layers(self):
        c = self.c
        v = list(range(c["num_layers"]))
        if c["recurrence"] and c["recurrence_layers"]:
            rl = c["recurrence_layers"]
            out = []
            for i in v:
                out.append(i)
                if i == rl[-1]:
                    out += rl
            v = out
        return v

    def attn(self, i, h, tokens):
        c, P = self.c, self.P
        b = "blocks.%d." % i
        B, T, _ = h.shape
        H, Hkv, D = c["num_heads"], c["num_kv_heads"], c["head_dim"]
        q = h @ P[b + "attn.c_q.weight"].t()
        k = h @ P[b + "attn.c_k.weight"].t()
        v = h @ P[b + "attn.c_v.weight"].t()
        if c["ve_dim"] > 0 and i in c["ve_layers"]:
            idx = c["ve_layers"].index(i)
            ve = F.embedding(tokens, P["ve_shared.embed.weight"]) @ P["ve_shared.proj.weight"].t()
            v = v + ve * (P["ve_shared.scale"] * P["ve_layer_scales"][idx])
        q = rms(q.reshape(B, T, H, D), c["rms_eps"])
        k = rms(k.reshape(B, T, Hkv, D), c["rms_eps"])
        v = v.reshape(B, T, Hkv, D)
        q = rotary(q, c["rope_dims"], c["rope_base"], c["rope_train_seq_len"])
        k = rotary(k, c["rope_dims"], c["rope_base"], c["rope_train_seq_len"])
        q = q * P[b + "attn.q_gain"][None, None, :, None]
        y = causal_attention(q, k, v)
        if i in c["xsa_layers"]:
            y = xsa(y, v)
        return y.reshape(B, T, c["model_dim"]) @ P[b + "attn.proj.weight"].t()

    def mlp(self, i, h):
        c, P = self.c, self.P
        b = "blocks.%d." % i
        a = h @ P[b + "mlp.fc.weight"].t()
        if c["mlp_act"] == "relu2":
            a = torch.relu(a).square()
        elif c["mlp_act"] == "leaky_relu2":
            a = F.leaky_relu(a, 0.5).square()
        elif c["mlp_act"] == "star_relu":
            a = torch.relu(a).square() * P[b + "mlp.scale"] + P[b + "mlp.bias"]
        else:
            raise ValueError("gpt_ref.py: mlp_act '%s' unknown" % c["mlp_act"])
        return a @ P[b + "mlp.proj.weight"].t()

    def lam(self, i):
        return 1.0 / math.sqrt(i + 1) if self.c["ln_scale"] else None

    def block(self, i, x, x0, tokens):
        c, P = self.c, self.P
        b = "blocks.%d." % i
        mix = P[b + "resid_mix"]
        ds = bf16_round(1.0 / math.sqrt(i + 1)) if c["depth_scale"] else 1.0
        y = mix[0] * x + mix[1] * x0
        att = self.attn(i, rms(y, c["rms_eps"], self.lam(i)), tokens) * P[b + "attn_scale"]
        y = y + (att * ds if ds != 1.0 else att)
        m = self.mlp(i, rms(y, c["rms_eps"], self.lam(i))) * P[b + "mlp_scale"]
        return y + (m * ds if ds != 1.0 else m)

    def skip_add(self, j, x, s):
        c, P = self.c, self.P
        w = P["skip_weights"][j]
        if c["skip_mode"] == "plain":
            return x + w * s
        if c["skip_mode"] == "sigmoid":
            return x + torch.sigmoid(w) * s
        if c["skip_mode"] == "gated":  # #598: g⊙x + (1−g)⊙(S⊙s)
            g = torch.sigmoid(P["skip_gates"][j])
            return g * x + (1 - g) * (w * s)
        raise ValueError("gpt_ref.py: skip_mode '%s' unknown" % c["skip_mode"])

    def hidden(self, tokens):
        c, P = self.c, self.P
        eps = c["rms_eps"]
        x = F.embedding(tokens, P["tok_emb.weight"])
        if c["bigram_vocab_size"] > 0:
            bk = bigram_hash(tokens, c["bigram_vocab_size"])
            bg = F.embedding(bk, P["bigram.embed.weight"]) @ P["bigram.proj.weight"].t()
            x = x + P["bigram.scale"] * bg
        x = rms(x, eps)
        if c["smear_gate"]:
            x = smear_gate(x, P["smear.gate"])
        x0 = x
        L = c["num_layers"]
        n_skip = min(L // 2, L - L // 2)  # fixed from the physical layers
        virt = self.virtual_layers()
        n_enc = len(virt) // 2
        stack = []
        for v in range(n_enc):
            x = self.block(virt[v], x, x0, tokens)
            stack.append(x)
        parallel = False
        lane0 = lane1 = None
        for j in range(len(virt) - n_enc):
            p = virt[n_enc + j]
            if stack and j < n_skip:
                s = stack.pop()
                if parallel:
                    lane0 = self.skip_add(j, lane0, s)
                else:
                    x = self.skip_add(j, x, s)
            if c["parallel_start"] is not None and p >= c["parallel_start"] and not parallel:
                lane0, lane1, parallel = x, x, True
            if parallel:
                b = "blocks.%d." % p
                mix = P[b + "resid_mix"]
                a_in = mix[0] * lane0 + mix[1] * x0
                lane0 = a_in + P[b + "attn_scale"] * self.attn(p, rms(a_in, eps, self.lam(p)), tokens)
                lane1 = lane1 + P[b + "mlp_scale"] * self.mlp(p, rms(lane1, eps, self.lam(p)))
            else:
                x = self.block(p, x, x0, tokens)
        if parallel:
            m = P["lane_merge"]
            x = m * lane0 + (1 - m) * lane1
        return rms(x, eps)

    def loss(self, tokens, targets):
        c = self.c
        h = self.hidden(tokens)
        z = h.reshape(-1, c["model_dim"]) @ self.P["tok_emb.weight"].t()
        cap = c["logit_softcap"]
        if cap and cap > 0:
            z = cap * torch.tanh(z / cap)
        return F.cross_entropy(z, targets.reshape(-1))


# ---------------------------------------------------------------------------------------------------
# Self-test of the spec formulas (--selftest)
# ---------------------------------------------------------------------------------------------------
def selftest():
    """Checks the reference's building blocks against properties and hand values from the spec."""
    torch.manual_seed(0)
    fails = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            fails.append(what)

    # §2.2: rotation by θ = t·inv_freq: q_t·k_s depends only on t − s (full and partial RoPE)
    for r in (64, 16):
        q = torch.randn(1, 1, 1, 64, dtype=torch.float64).expand(1, 8, 1, 64).contiguous()
        k = torch.randn(1, 1, 1, 64, dtype=torch.float64).expand(1, 8, 1, 64).contiguous()
        rq, rk = rotary(q, r, 10000.0, None), rotary(k, r, 10000.0, None)
        d1 = (rq[0, 5, 0] * rk[0, 3, 0]).sum()
        d2 = (rq[0, 7, 0] * rk[0, 5, 0]).sum()
        check(abs(float(d1 - d2)) < 1e-5, "rotary r=%d: relative-position invariance" % r)
        check(torch.equal(rq[..., r:], q[..., r:]), "rotary r=%d: dims >= r pass through" % r)
    # §2.2 sign convention at t = 1, j = 0 (inv_freq 1): out1 = x1 cos1 + x2 sin1, out2 = −x1 sin1 + x2 cos1
    x = torch.zeros(1, 2, 1, 4, dtype=torch.float64)
    x[0, 1, 0, 0], x[0, 1, 0, 2] = 1.0, 2.0
    o = rotary(x, 4, 10000.0, None)[0, 1, 0]
    c1, s1 = math.cos(1.0), math.sin(1.0)
    check(abs(float(o[0]) - (c1 + 2 * s1)) < 1e-6 and abs(float(o[2]) - (-s1 + 2 * c1)) < 1e-6,
          "rotary: spec §2.2 half-split sign convention")
    # §2.2 NTK base values
    check(abs(rope_base(50000.0, 64, 2048, 1024) - 102261.14) < 0.01, "NTK base PROTEUS r=64 T=2048 = 102,261.14")
    check(abs(rope_base(10000.0, 16, 2048, 1024) - 22081.79) < 0.01, "NTK base r=16 T=2048 = 22,081.79")
    check(rope_base(10000.0, 16, 1024, 1024) == 10000.0, "no NTK scaling at T = train length")
    # §4.2 XSA: the output of every head has no component along its group's v̂
    y, v = torch.randn(2, 5, 8, 64, dtype=torch.float64), torch.randn(2, 5, 4, 64, dtype=torch.float64)
    o = xsa(y, v)
    vh = F.normalize(v, dim=-1).repeat_interleave(2, dim=2)
    check(float((o * vh).sum(-1).abs().max()) < 1e-12, "xsa: output orthogonal to v-hat")
    check(torch.allclose(o - y, -((y * vh).sum(-1, keepdim=True) * vh)), "xsa: removes exactly the v-hat component")
    # §2.1 GQA: query head h uses kv head h // 2 (make kv head 1 distinct; heads 2, 3 must see it)
    q = torch.randn(1, 4, 8, 16, dtype=torch.float64)
    k = torch.randn(1, 4, 4, 16, dtype=torch.float64)
    v = torch.randn(1, 4, 4, 16, dtype=torch.float64)
    a = causal_attention(q, k, v)
    s = (q[0, :, 3] @ k[0, :, 1].t()) / 4.0
    s = s.masked_fill(torch.ones(4, 4, dtype=torch.bool).triu(1), float("-inf"))
    check(torch.allclose(a[0, :, 3], torch.softmax(s, -1) @ v[0, :, 1]), "attention: GQA head 3 -> kv 1, causal, 1/sqrt(D)")
    check(torch.allclose(a[0, 0], v[0, 0].repeat_interleave(2, dim=0)), "attention: position 0 sees only itself")
    # §3.2 BigramHash: b_0 = 2047, b_t = (36313 tok_t XOR 27191 tok_{t-1}) mod 2047
    t = torch.tensor([[5, 7, 1023], [0, 0, 1]])
    b = bigram_hash(t, 2048)
    want = [[2047, ((36313 * 7) ^ (27191 * 5)) % 2047, ((36313 * 1023) ^ (27191 * 7)) % 2047], [2047, 0, 36313 % 2047]]
    check(b.tolist() == want, "bigram hash: bucket 2047 at position 0 and the §3.2 formula")
    # §3.2 SmearGate at g = 0: 0.5·x_t + 0.5·x_{t−1}, x_{−1} = 0
    x = torch.randn(1, 3, 4, dtype=torch.float64)
    sm = smear_gate(x, torch.zeros(4, dtype=torch.float64))
    check(torch.allclose(sm[0, 0], 0.5 * x[0, 0]) and torch.allclose(sm[0, 2], 0.5 * (x[0, 2] + x[0, 1])),
          "smear gate: 50/50 blend with the previous position at g = 0")
    # §2.1 RMS with eps = FLT_EPSILON
    x = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    check(abs(float(rms(x, 1.1920929e-07)[0, 0]) - 3.0 / math.sqrt(12.5 + 1.1920929e-07)) < 1e-15, "rms: x/sqrt(mean(x^2)+eps)")
    # §3.2 depth scale bf16(1/sqrt(3)) = 0.578125
    check(bf16_round(1 / math.sqrt(3)) == 0.578125, "depth scale bf16(1/sqrt 3) = 0.578125")
    # §4.2 virtual layers with recurrence and the skip wiring example
    c = configs.full_config("pr1539_recur")
    m = GPTRef(c, {})
    check(m.virtual_layers() == [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8, 9, 10], "#1539 virtual layer list (14)")
    check(GPTRef(configs.full_config("pr1539"), {}).virtual_layers() == list(range(11)), "#1539 without recurrence")
    # parameter counts (§2.1, §3.1, §4, §5.1)
    for name, want in sorted(configs.EXPECTED_PARAMS.items()):
        check(num_params(configs.full_config(name)) == want, "param count %s = %d" % (name, want))
    print("%d failed" % len(fails))
    return 1 if fails else 0


# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------
def load_params(c, path, dtype):
    got = read_safetensors(path)
    want = param_shapes(c)
    names = [n for n, _ in want]
    missing = [n for n in names if n not in got]
    extra = sorted(set(got) - set(names))
    if missing or extra:
        raise ValueError("%s: names do not match the reference model: missing %s, extra %s"
                         % (path, missing, extra))
    P = {}
    for n, shape in want:
        t = got[n]
        if list(t.shape) != list(shape):
            raise ValueError("%s: %s has shape %s, the reference model expects %s" % (path, n, list(t.shape), shape))
        if not t.is_floating_point():
            raise ValueError("%s: %s has dtype %s, expected a float tensor" % (path, n, t.dtype))
        P[n] = t.to(dtype).requires_grad_(True)
    return P, names


def parse_sets(sets):
    out = {}
    for s in sets or []:
        if "=" not in s:
            raise ValueError("--set %r: expected KEY=JSON" % s)
        k, v = s.split("=", 1)
        out[k] = json.loads(v)
    return out


def run(args):
    c = configs.full_config(args.config, parse_sets(args.set))
    if args.shapes:
        res = {"config": args.config, "params": num_params(c),
               "shapes": [[n, s] for n, s in param_shapes(c)]}
        print(json.dumps(res))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"f32": torch.float32, "f64": torch.float64}[args.dtype]
    P, names = load_params(c, args.weights, dtype)
    tk = read_safetensors(args.tokens)
    if "x" not in tk or "y" not in tk:
        raise ValueError("%s: expected integer tensors 'x' and 'y' [B,T], found %s" % (args.tokens, sorted(tk)))
    x, y = tk["x"].to(torch.int64), tk["y"].to(torch.int64)
    if x.dim() != 2 or x.shape != y.shape:
        raise ValueError("%s: x %s and y %s must both be [B,T]" % (args.tokens, list(x.shape), list(y.shape)))
    if int(x.max()) >= c["vocab_size"] or int(x.min()) < 0:
        raise ValueError("%s: token ids outside [0, %d)" % (args.tokens, c["vocab_size"]))
    model = GPTRef(c, P)
    loss = model.loss(x, y)
    loss.backward()
    h = hashlib.sha256()
    h.update(loss.detach().to(torch.float32).numpy().tobytes())
    grads, gt = {}, {}
    for n in names:
        g = P[n].grad if P[n].grad is not None else torch.zeros_like(P[n])
        gt[n] = g.detach()
        h.update(g.detach().to(torch.float32).contiguous().numpy().tobytes())
        grads[n] = {"norm": float(g.double().norm()), "sum": float(g.double().sum()), "shape": list(g.shape)}
    res = {"config": args.config, "loss": float(loss), "params": num_params(c), "dtype": args.dtype,
           "tokens": list(x.shape), "hash": h.hexdigest(), "grads": grads}
    if args.grads:
        write_safetensors(args.grads, gt, {"loss": repr(float(loss)), "config": args.config})
    text = json.dumps(res)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if not args.quiet:
        print(text)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch reference of the parameter-golf GPT family")
    ap.add_argument("--config", help="one of: " + ", ".join(sorted(configs.CONFIGS)))
    ap.add_argument("--set", action="append", help="override a config key: KEY=JSON")
    ap.add_argument("--weights", help="safetensors with the state dict")
    ap.add_argument("--tokens", help="safetensors with x, y [B,T] token ids")
    ap.add_argument("--out", help="write the JSON result here too")
    ap.add_argument("--grads", help="write the gradients to this safetensors file")
    ap.add_argument("--dtype", default="f32", choices=["f32", "f64"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--shapes", action="store_true", help="print the parameter names and shapes and exit")
    ap.add_argument("--quiet", action="store_true", help="do not print the JSON result")
    ap.add_argument("--selftest", action="store_true", help="check the building blocks against the spec and exit")
    args = ap.parse_args(argv)
    if args.selftest:
        return selftest()
    if not args.config:
        ap.error("--config is required")
    if not args.shapes and not (args.weights and args.tokens):
        ap.error("--weights and --tokens are required (or --shapes)")
    try:
        return run(args)
    except (ValueError, KeyError, OSError) as e:
        print("gpt_ref.py: error: %s" % (e.args[0] if e.args else e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
