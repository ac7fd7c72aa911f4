#!/usr/bin/env bash
# bench/run_gpu.sh — the GPU training-step benchmark of issue 11 in one run: proteus and the PyTorch
# reference model (tests/reference/gpt_ref.py on CUDA, bf16 autocast, torch.compile, flash SDPA) on
# the same v9 weights and tokens, a full training step (forward, backward, clip, AdamW + Muon) at the v9
# shapes (T = 1024, 96 sequences), printed side by side: ms/step, tokens/s, MFU, ratio proteus/PyTorch.
# bench/gpt_step.lua does the work (device=cuda); this script finds the Python that has torch.
# The whole issue-11 benchmark (this step, the LoRA TTT evaluation and attention, one table) is
# bench/gpu_bench.sh; this script runs the training step alone.
#
#   bash bench/run_gpu.sh [build_dir]                 # default build dir: build-gpu
#   B=96 T=1024 REPS=5 WARMUP=2 TORCH_WARMUP=3 TORCH_TIMEOUT=300 bash bench/run_gpu.sh build-gpu
#   JSON=out.json bash bench/run_gpu.sh               # also write the numbers as JSON
#   PROTEUS_TIME_LIMIT=120 ...                        # proteus stops timing after 120 s (>= 1 timed step)
#   STEP=fwdbwd ...                                   # forward+backward only on both sides
#   DTYPE=bf16 ...                                    # proteus weights in bf16 (needs bf16 kernels for every op)
#   COMPUTE=f32 ...                                   # proteus's compute dtype (default bf16 on CUDA)
#   GRAPH=1 ...                                       # proteus's step captured once in a CUDA graph, replayed
#   PEAK_TFLOPS=989 ...                               # MFU peak (default: by device name, bench/flops.lua)
#
# PyTorch: the first of $PROTEUS_TEST_PYTHON, python3 on PATH, /opt/torch/.venv/bin/python3,
# /usr/bin/python3 that imports torch with CUDA available is used. Without one the proteus side still
# runs and the PyTorch column says why it is empty (never a made-up number).
# Exit 0 when the proteus side ran, 77 when there is no CUDA device (nothing timed), else 1.
# Record results in bench/RESULTS.md (date, device, command, table); docs/gpu.md explains the columns.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BUILD=${1:-build-gpu}
export PROTEUS_HOME=${PROTEUS_HOME:-$PWD}
if [ ! -x "$BUILD/proteus" ]; then
  echo "run_gpu.sh: $BUILD/proteus not found; build first: cmake -S . -B $BUILD -DPROTEUS_CUDA=ON -DCMAKE_BUILD_TYPE=Release && cmake --build $BUILD -j" >&2
  exit 1
fi
if ! "$BUILD/proteus" -e 'os.exit(require("proteus.cuda").is_available() and 0 or 1)'; then
  echo "run_gpu.sh: skip: no CUDA device ($("$BUILD/proteus" -e 'print(require("proteus.cuda").unavailable_reason())'))"
  exit 77
fi

# PT_PYTHON_LD_LIBRARY_PATH (set by scripts/device_check.sh): the library path Python must run with
# (without the directory of proteus's carried libraries)
# shellcheck source=bench/find_torch.sh
. "$(dirname "$0")/find_torch.sh" 'import torch; assert torch.cuda.is_available(), "torch.cuda.is_available() is False"; print(torch.__version__)'
TORCH_ARG=torch=1
if [ -z "$PY" ]; then
  echo "run_gpu.sh: PyTorch with CUDA NOT FOUND — the PyTorch column stays empty (${TORCH_NOTE:-no python3 found})"
  TORCH_ARG=torch=0
else
  pt_torch_use
  echo "run_gpu.sh: $TORCH_NOTE"
fi

args=(device=cuda "B=${B:-96}" "T=${T:-1024}" "reps=${REPS:-5}" "warmup=${WARMUP:-2}" "step=${STEP:-train}"
      "torch_warmup=${TORCH_WARMUP:-3}" "torch_timeout=${TORCH_TIMEOUT:-300}" "$TORCH_ARG")
[ -n "${DTYPE:-}" ] && args+=("dtype=$DTYPE")
[ -n "${COMPUTE:-}" ] && args+=("compute=$COMPUTE")
[ "${GRAPH:-0}" = 1 ] && args+=(graph=1)
[ -n "${PROTEUS_TIME_LIMIT:-}" ] && args+=("time_limit=$PROTEUS_TIME_LIMIT")
[ -n "${JSON:-}" ] && args+=("json=$JSON")
[ -n "${PEAK_TFLOPS:-}" ] && args+=("peak_tflops=$PEAK_TFLOPS")
echo "# $(date -u +%Y-%m-%dT%H:%MZ)  $BUILD/proteus bench/gpt_step.lua ${args[*]}"
export PYTHONUNBUFFERED=1
"$BUILD/proteus" bench/gpt_step.lua "${args[@]}"
