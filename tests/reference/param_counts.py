#!/usr/bin/python3
"""param_counts.py — parameter counts of the reference GPT configs against the submissions' logs.

    /usr/bin/python3 tests/reference/param_counts.py        # prints one line per config; exit 1 on a mismatch

Counts come from gpt_ref.param_shapes (the state-dict names and shapes written from the spec) for every
config of configs.py and are compared with configs.EXPECTED_PARAMS: baseline 17,059,912 (§2.1),
PROTEUS v9 26,829,913 (§3.1), #598 27,030,108 (§5.1), #1539 36,311,132 (§4). It also checks the
breakdowns the spec gives (#598 block 2,364,424; #1539 embedding, banks, block scalars, VE).
Needs no torch beyond what gpt_ref imports. The proteus side is tests/lua/test_param_counts.lua.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import configs  # noqa: E402
import gpt_ref  # noqa: E402


def count(shapes, pred):
    return sum(math.prod(s) for n, s in shapes if pred(n))


def main():
    bad = 0
    for name in sorted(configs.CONFIGS):
        c = configs.full_config(name)
        n = gpt_ref.num_params(c)
        want = configs.EXPECTED_PARAMS[name]
        ok = n == want
        bad += not ok
        print("%-16s %12s  %s (expected %s)" % (name, format(n, ","), "ok" if ok else "MISMATCH", format(want, ",")))
    # breakdowns stated in the spec
    s598 = gpt_ref.param_shapes(configs.full_config("pr598"))
    s1539 = gpt_ref.param_shapes(configs.full_config("pr1539"))
    checks = [
        ("#598 block 0", count(s598, lambda n: n.startswith("blocks.0.")), 2364424),
        ("#1539 embedding", count(s1539, lambda n: n == "tok_emb.weight"), 4194304),
        ("#1539 banks", count(s1539, lambda n: n.startswith("blocks.") and n.endswith(".weight")), 31719424),
        ("#1539 block scalars", count(s1539, lambda n: n.startswith("blocks.") and not n.endswith(".weight")), 22616),
        ("#1539 VE", count(s1539, lambda n: n.startswith("ve_")), 371715),
    ]
    for what, got, want in checks:
        ok = got == want
        bad += not ok
        print("%-20s %12s  %s (expected %s)" % (what, format(got, ","), "ok" if ok else "MISMATCH", format(want, ",")))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
