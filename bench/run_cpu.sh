#!/usr/bin/env bash
# bench/run_cpu.sh — the CPU benchmarks against PyTorch, side by side, same thread count on both sides:
# bench/cpu_ops.lua (GPT-shaped ops, fwd+bwd, each vs bench/cpu_ops_torch.py) and bench/gpt_step.lua
# (PROTEUS v9 forward+backward at T=256, batch 4, vs tests/reference/gpt_ref.py via bench/gpt_step_torch.py).
#
#   bash bench/run_cpu.sh [build_dir] [threads]      # defaults: build, 2 (this dev machine's cores)
#   REPS=5 bash bench/run_cpu.sh build-bench 2       # gpt_step repetitions (median is reported)
#
# OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are set for both programs and the PyTorch scripts call
# torch.set_num_threads with the same number. OMP_WAIT_POLICY is left as the caller has it (unset =
# libgomp's default spinning); set OMP_WAIT_POLICY=passive to measure the passive policy (both sides
# use OpenMP, so both see it). Results and the machine's load: bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
THREADS=${2:-2}
REPS=${REPS:-5}
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
if [ ! -x "$BUILD/proteus" ]; then
  echo "run_cpu.sh: $BUILD/proteus not found; build first: cmake -S . -B $BUILD && cmake --build $BUILD -j" >&2
  exit 1
fi
echo "# $(date -Is)  $(uptime | sed 's/.*load/load/')  threads=$THREADS  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
"$BUILD/proteus" bench/cpu_ops.lua
"$BUILD/proteus" bench/gpt_step.lua reps="$REPS"
echo "# done $(uptime | sed 's/.*load/load/')"
