#!/usr/bin/python3
"""safetensors_interop.py — PyTorch <-> proteus safetensors interoperability.

    /usr/bin/python3 tests/reference/safetensors_interop.py build/proteus

1. PyTorch tensors (f32, f64, bf16, f16, i64, i32, i8, u8, bool; 0-d to 3-d, with inf, -0.0,
   subnormals and extreme integers) are written to a safetensors file by a minimal writer in this
   script (json + struct + the tensors' raw bytes; the `safetensors` pip package is not used).
2. proteus loads it (lua/lib/proteus/safetensors.lua), writes every value as text (so proteus's own
   reading of the numbers is checked, not only the bytes), and saves it again with its writer.
3. This script reads proteus's file with its own minimal reader and compares dtype, shape and the
   bytes exactly, and compares proteus's printed values with tensor.tolist() exactly.
Exit 0 on success, 1 on a mismatch, 77 (ctest: skipped) when torch is not installed.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("skip: torch is not installed for", sys.executable)
    sys.exit(77)

ST_DTYPES = {
    torch.float32: "F32", torch.float64: "F64", torch.bfloat16: "BF16", torch.float16: "F16",
    torch.int64: "I64", torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
FROM_ST = {v: k for k, v in ST_DTYPES.items()}


def raw_bytes(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def write_st(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name in sorted(tensors):
        t = tensors[name]
        b = raw_bytes(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0, "proteus header length %d is not a multiple of 8" % n
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        buf = bytearray(data[base + b:base + end])
        dt = FROM_ST[e["dtype"]]
        t = torch.frombuffer(buf, dtype=torch.uint8) if buf else torch.empty(0, dtype=torch.uint8)
        out[name] = t.view(dt).reshape(e["shape"])
    return out, meta


def make_tensors():
    g = torch.Generator().manual_seed(1234)
    f = torch.randn(3, 5, generator=g) * 3
    f[0, 0], f[0, 1], f[0, 2] = float("inf"), float("-inf"), -0.0
    f[0, 3] = 1e-40  # f32 subnormal
    return {
        "f32.mat": f,
        "f64.vec": torch.randn(7, generator=g, dtype=torch.float64) * 1e10,
        "bf16.cube": (torch.randn(2, 3, 4, generator=g) * 100).to(torch.bfloat16),
        "f16.mat": torch.tensor([[1.0, -2.5, 65504.0], [6e-8, -0.0, 0.1]], dtype=torch.float16),
        "i64.vec": torch.tensor([0, -1, 2**62, -(2**53) - 1, 123456789012345], dtype=torch.int64),
        "i32.mat": torch.randint(-2**31, 2**31 - 1, (4, 3), generator=g, dtype=torch.int32),
        "i8.vec": torch.tensor([-128, -1, 0, 1, 127], dtype=torch.int8),
        "u8.vec": torch.arange(0, 256, 17, dtype=torch.uint8),
        "bool.mask": torch.tensor([[True, False], [False, True], [True, True]]),
        "f32.scalar": torch.tensor(3.25),
        "f32.empty": torch.zeros(0, 4),
    }


LUA = r"""
local st = require "proteus.safetensors"
local src, dst, txt = arg[1], arg[2], arg[3]
local tensors, meta = st.load(src)
local out = assert(io.open(txt, "w"))
local names = {}
for k in pairs(tensors) do names[#names + 1] = k end
table.sort(names)
local function flat(v, acc)
  if type(v) == "table" then for _, x in ipairs(v) do flat(x, acc) end
  elseif type(v) == "boolean" then acc[#acc + 1] = v and "1" or "0"
  elseif math.type(v) == "integer" then acc[#acc + 1] = string.format("%d", v)
  else acc[#acc + 1] = string.format("%.17g", v) end
  return acc
end
local codec = require "proteus.codec"
for _, name in ipairs(names) do
  local t = tensors[name]
  local vals
  if t:dtype() == "i64" then
    -- t:totable() goes through doubles; read the 64-bit integers from the raw bytes exactly
    local raw, acc = codec.tensor_bytes(t), {}
    for i = 1, #raw, 8 do acc[#acc + 1] = string.format("%d", (string.unpack("<i8", raw, i))) end
    vals = acc
  else
    vals = flat(t:totable(), {})
  end
  out:write(name, " ", t:dtype(), " ", table.concat(t:shape(), "x"), " ", table.concat(vals, ","), "\n")
end
for k, v in pairs(meta) do out:write("meta ", k, " ", v, "\n") end
out:close()
st.save(dst, tensors, meta)
"""

PT_NAMES = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16", torch.float16: "f16",
            torch.int64: "i64", torch.int32: "i32", torch.int8: "i8", torch.uint8: "u8", torch.bool: "bool"}


def main():
    if len(sys.argv) < 2:
        print("usage: safetensors_interop.py PATH/TO/proteus")
        return 2
    proteus = os.path.abspath(sys.argv[1])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    tensors = make_tensors()
    meta = {"source": "pytorch", "note": "quote \" and unicode \u00e9"}
    fails = 0
    with tempfile.TemporaryDirectory() as d:
        a, b, txt, script = (os.path.join(d, x) for x in ("torch.safetensors", "proteus.safetensors", "values.txt", "rt.lua"))
        write_st(a, tensors, meta)
        with open(script, "w") as f:
            f.write(LUA)
        env = dict(os.environ, PROTEUS_HOME=root)
        r = subprocess.run([proteus, script, a, b, txt], cwd=root, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print("proteus failed:", r.returncode, r.stdout, r.stderr)
            return 1
        # proteus's reading of the values
        seen = {}
        with open(txt) as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 3)
                if parts[0] == "meta":
                    seen.setdefault("__meta__", {})[parts[1]] = line.rstrip("\n").split(" ", 2)[2]
                    continue
                seen[parts[0]] = parts[1:]
        if seen.get("__meta__") != meta:
            print("metadata differs:", seen.get("__meta__"), meta)
            fails += 1
        for name, t in tensors.items():
            dt, shape, vals = seen[name] + [""] * (3 - len(seen[name]))
            want_shape = "x".join(str(s) for s in t.shape)
            if dt != PT_NAMES[t.dtype] or shape != want_shape:
                print("%s: proteus sees %s %s, torch has %s %s" % (name, dt, shape, PT_NAMES[t.dtype], want_shape))
                fails += 1
                continue
            ref = t.reshape(-1).tolist()
            got = [x for x in vals.split(",") if x != ""]
            if t.dtype.is_floating_point:
                gotv = [float(x) for x in got]
                ref = [float(x) for x in ref]
            else:
                gotv = [int(x) for x in got]
                ref = [int(x) for x in ref]
            if gotv != ref:
                print("%s: values differ\n  proteus %s\n  torch   %s" % (name, gotv[:10], ref[:10]))
                fails += 1
        # proteus's file read back by this script
        back, bmeta = read_st(b)
        if bmeta != meta:
            print("metadata after proteus save differs:", bmeta)
            fails += 1
        if sorted(back) != sorted(tensors):
            print("names differ:", sorted(back), sorted(tensors))
            fails += 1
        for name, t in tensors.items():
            u = back.get(name)
            if u is None or u.dtype != t.dtype or list(u.shape) != list(t.shape) or raw_bytes(u) != raw_bytes(t):
                print("%s: proteus-written tensor differs (%s %s)" % (name, None if u is None else u.dtype,
                                                                     None if u is None else list(u.shape)))
                fails += 1
    print("safetensors interop: %d tensors, %d mismatches" % (len(tensors), fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
