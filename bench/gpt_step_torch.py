#!/usr/bin/python3
"""bench/gpt_step_torch.py — PyTorch side of bench/gpt_step.lua: forward+backward of the PROTEUS v9 model
(tests/reference/gpt_ref.py's GPTRef, the reference the parity tests use) on the weights and tokens that
gpt_step.lua wrote, timed with the same protocol (warm-up steps, then `reps` timed steps, median).

    /usr/bin/python3 bench/gpt_step_torch.py --weights W.safetensors --tokens T.safetensors \
        [--config proteus_v9] [--threads 2] [--reps 5] [--warmup 1]

Prints one JSON object: {"loss", "times": [seconds per step...], "median", "threads"}. Run through
bench/gpt_step.lua (or bench/run_cpu.sh), which prints the comparison table.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import configs  # noqa: E402
import gpt_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description="time GPTRef forward+backward")
    ap.add_argument("--config", default="proteus_v9")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    c = configs.full_config(a.config, {})
    P, names = gpt_ref.load_params(c, a.weights, torch.float32)
    tk = gpt_ref.read_safetensors(a.tokens)
    x, y = tk["x"].to(torch.int64), tk["y"].to(torch.int64)
    model = gpt_ref.GPTRef(c, P)
    times, loss = [], None
    for i in range(a.warmup + a.reps):
        for n in names:
            P[n].grad = None
        t0 = time.perf_counter()
        loss = model.loss(x, y)
        loss.backward()
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt)
    print(json.dumps({"loss": float(loss), "times": times, "median": statistics.median(times),
                      "threads": torch.get_num_threads()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
