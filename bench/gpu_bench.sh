#!/usr/bin/env bash
# bench/gpu_bench.sh — issue 11's benchmark in ONE command: proteus against PyTorch on the same work,
#   1 a PROTEUS v9 training step at the v9 shapes (T = 1024, 96 sequences; bench/gpt_step.lua
#     device=cuda step=train, PyTorch: tests/reference's model with bf16 autocast, torch.compile, flash SDPA),
#   2 the v9 LoRA TTT evaluation (bench/ttt_eval.lua: ttt.lora_eval; PyTorch: bench/ttt_eval_torch.py),
#   3 causal GQA attention forward+backward at T = 2048, D = 64 (proteus: bench/gpu_attention.lua's
#     flash kernel; PyTorch: flash SDPA, bench/gpt_step_torch.py --attn-bench),
# then ONE markdown table (bench/flops.lua table): per workload ms, tokens/s of each side, the ratio
# proteus/PyTorch of tokens/s and the MFU of each side against the device's bf16 dense peak (named in
# the table), ready to paste into bench/RESULTS.md with the date and device.
#
#   bash bench/gpu_bench.sh [build_dir]                        # GPU (default build dir: build-gpu)
#   bash bench/gpu_bench.sh --device cpu --small [build_dir]   # CPU check mode, tiny shapes, < 1 min
#                                                              # (default build dir: build); no speed claim
#   BENCH_TIME_LIMIT=280 bash bench/gpu_bench.sh build-gpu     # everything within 280 s (0 = no limit)
#
# Environment: BENCH_TIME_LIMIT (seconds for all three parts, default 0 = none; split 55/30/15 % over
# the parts, time a part leaves unused goes to the next; inside a part PyTorch gets about half and
# proteus stops timing after a fifth — each then reports what it timed), BENCH_OUT (folder for the
# JSON, logs and table.md; default a new temporary folder), PEAK_TFLOPS (MFU peak; default by device
# name), TORCH=0 (proteus only), TTT_COMPILE=1 (PyTorch TTT under torch.compile), TTT_ROUNDS,
# REPS / WARMUP / TORCH_WARMUP (training step), GRAPH=1 (proteus's step replayed from a CUDA graph),
# COMPUTE=f32|bf16 (proteus's compute dtype; default bf16 on CUDA), PROTEUS_TEST_PYTHON (the Python with torch; else
# the first of python3, /opt/torch/.venv/bin/python3, /usr/bin/python3 that imports torch — with CUDA
# on the GPU), PT_PYTHON_LD_LIBRARY_PATH (set by scripts/device_check.sh: Python's library path).
# A missing PyTorch, a part that fails or times out: its cells say "not measured (why)", never a number.
# Exit: 0 when every part's proteus side ran, 77 when the GPU run finds no CUDA device, else 1.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
DEVICE=cuda SMALL=0 BUILD=""
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=${2:-}; shift 2 ;;
    --device=*) DEVICE=${1#--device=}; shift ;;
    --small) SMALL=1; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    -*) echo "gpu_bench.sh: unknown option '$1' (--device cpu|cuda, --small, --help)" >&2; exit 2 ;;
    *) BUILD=$1; shift ;;
  esac
done
case $DEVICE in cpu|cuda) ;; *) echo "gpu_bench.sh: --device must be cpu or cuda, got '$DEVICE'" >&2; exit 2 ;; esac
if [ "$SMALL" = 1 ] && [ "$DEVICE" != cpu ]; then echo "gpu_bench.sh: --small is the CPU check mode (--device cpu --small)" >&2; exit 2; fi
[ -n "$BUILD" ] || { [ "$DEVICE" = cuda ] && BUILD=build-gpu || BUILD=build; }
export PROTEUS_HOME=${PROTEUS_HOME:-$PWD}
BIN=$BUILD/proteus
if [ ! -x "$BIN" ]; then
  echo "gpu_bench.sh: $BIN not found; build first: cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release$([ "$DEVICE" = cuda ] && echo ' -DPROTEUS_CUDA=ON') && cmake --build $BUILD -j" >&2
  exit 1
fi
if [ "$DEVICE" = cuda ]; then
  if ! "$BIN" -e 'os.exit(require("proteus.cuda").is_available() and 0 or 1)'; then
    echo "gpu_bench.sh: skip: no CUDA device ($("$BIN" -e 'print(require("proteus.cuda").unavailable_reason())'))"
    exit 77
  fi
  DEVNAME=$("$BIN" -e 'print(require("proteus.cuda").device_name())')
else
  DEVNAME="CPU, $(nproc) cores, no GPU$([ "$SMALL" = 1 ] && echo ', small check mode (no speed claim)')"
fi
OUTDIR=${BENCH_OUT:-$(mktemp -d /tmp/gpu_bench.XXXXXX)}
mkdir -p "$OUTDIR"
LIMIT=${BENCH_TIME_LIMIT:-0}
START=$(date +%s)
DATE=$(date -u +%Y-%m-%d\ %H:%MZ)
export PYTHONUNBUFFERED=1

# ---- the Python with torch (CUDA-capable on the GPU)
PY="" TORCH_NOTE="" TORCH_ARG=torch=1 pyenv=()
if [ "$DEVICE" = cuda ]; then
  probe='import torch; assert torch.cuda.is_available(), "torch.cuda.is_available() is False"; print(torch.__version__)'
else
  probe='import torch; print(torch.__version__)'
fi
if [ "${TORCH:-1}" = 0 ]; then
  TORCH_NOTE="TORCH=0"
else
  # shellcheck source=bench/find_torch.sh
  . "$(dirname "$0")/find_torch.sh" "$probe"
fi
if [ -z "$PY" ]; then
  echo "gpu_bench.sh: PyTorch$([ "$DEVICE" = cuda ] && echo ' with CUDA') NOT FOUND — its columns stay empty (${TORCH_NOTE:-no python3 found})"
  TORCH_ARG=torch=0
  TORCH_WHY="PyTorch not found: $(echo "${TORCH_NOTE:-no python3}" | cut -c1-120)"
  [ "${TORCH:-1}" = 0 ] && TORCH_WHY="TORCH=0"
else
  pt_torch_use
  echo "gpu_bench.sh: $TORCH_NOTE"
fi
echo "gpu_bench.sh: $DATE, $DEVNAME, build $BUILD, output in $OUTDIR, time limit ${LIMIT} s (0 = none)"

# ---- time: a part gets SHARE/REMAINING_SHARES of what is left, at least MIN_PART s while that is
# left (the parts run most important first); 0 = no limit
MIN_PART=20
part_limit() {
  if [ "$LIMIT" -le 0 ]; then echo 0; return; fi
  local left=$(( LIMIT - ($(date +%s) - START) )) lim
  (( left < 0 )) && left=0
  lim=$(( left * $1 / $2 ))
  (( lim < MIN_PART )) && lim=$(( left < MIN_PART ? left : MIN_PART ))
  echo "$lim"
}
pct() { echo $(( $1 * $2 / 100 )); }
# the line before a Lua traceback, else the last non-empty line
last_error() {
  awk '/^stack traceback:/ { if (prev != "") { print prev; found = 1; exit } } NF { prev = $0 } END { if (!found) print prev }' "$1" | cut -c1-160
}
# run_part NAME LIMIT CMD...: output to the terminal and $OUTDIR/NAME.log; sets RC and WHY (when it failed)
run_part() {
  local name=$1 lim=$2
  shift 2
  echo "== $name: $*$([ "$lim" -gt 0 ] && echo " (limit $lim s)")"
  if [ "$lim" -gt 0 ]; then
    timeout -k 5 "$lim" "$@" 2>&1 | tee "$OUTDIR/$name.log"
  else
    "$@" 2>&1 | tee "$OUTDIR/$name.log"
  fi
  RC=${PIPESTATUS[0]}
  WHY=""
  case $RC in
    0) ;;
    124|137) WHY="timed out after $lim s" ;;
    *) WHY="exit $RC: $(last_error "$OUTDIR/$name.log")" ;;
  esac
}
FAILED=()

# ---- 1 training step
STEP_JSON=$OUTDIR/step.json STEP_WHY=""
rm -f "$STEP_JSON"
lim=$(part_limit 55 100)
if [ "$LIMIT" -gt 0 ] && [ "$lim" -lt "$MIN_PART" ]; then
  STEP_WHY="not run: bench time limit spent"
else
  if [ "$DEVICE" = cuda ]; then
    args=(device=cuda "B=${B:-96}" "T=${T:-1024}" "reps=${REPS:-5}" "warmup=${WARMUP:-2}" step=train
          "torch_warmup=${TORCH_WARMUP:-3}")
  elif [ "$SMALL" = 1 ]; then
    args=(small=1 step=train)
  else
    args=(step=train "reps=${REPS:-3}")
  fi
  # GRAPH=1: proteus's step captured once into a CUDA graph and replayed (bench/gpt_step.lua graph=1)
  [ "${GRAPH:-0}" = 1 ] && [ "$DEVICE" = cuda ] && args+=(graph=1)
  [ -n "${COMPUTE:-}" ] && args+=("compute=$COMPUTE")
  args+=("$TORCH_ARG" "json=$STEP_JSON" "peak_tflops=${PEAK_TFLOPS:-auto}")
  [ "$lim" -gt 0 ] && args+=("torch_timeout=$(pct "$lim" 55)" "time_limit=$(pct "$lim" 20)")
  run_part step "$lim" "$BIN" bench/gpt_step.lua "${args[@]}"
  [ "$RC" -ne 0 ] && FAILED+=("train step")
  [ -s "$STEP_JSON" ] || STEP_WHY=${WHY:-no result}
fi

# ---- 2 LoRA TTT evaluation
TTT_JSON=$OUTDIR/ttt.json TTT_WHY=""
rm -f "$TTT_JSON"
lim=$(part_limit 30 45)
if [ "$LIMIT" -gt 0 ] && [ "$lim" -lt "$MIN_PART" ]; then
  TTT_WHY="not run: bench time limit spent"
else
  if [ "$DEVICE" = cuda ]; then
    args=(device=cuda "rounds=${TTT_ROUNDS:-5}" "compile=${TTT_COMPILE:-0}")
  elif [ "$SMALL" = 1 ]; then
    args=(small=1)
  else
    args=("rounds=${TTT_ROUNDS:-2}")
  fi
  args+=("$TORCH_ARG" "json=$TTT_JSON" "peak_tflops=${PEAK_TFLOPS:-auto}")
  [ "$lim" -gt 0 ] && args+=("torch_timeout=$(pct "$lim" 50)" "time_limit=$(pct "$lim" 20)")
  run_part ttt "$lim" "$BIN" bench/ttt_eval.lua "${args[@]}"
  [ "$RC" -ne 0 ] && FAILED+=("LoRA TTT")
  [ -s "$TTT_JSON" ] || TTT_WHY=${WHY:-no result}
fi

# ---- 3 attention, T = 2048, D = 64 (H = 8 on Hkv = 4, B = 8: bench/gpu_attention.lua's shapes)
ATTN_LOG=$OUTDIR/attention.log ATTN_WHY="" ATTN_T_JSON=$OUTDIR/attn_torch.json ATTN_T_WHY=""
rm -f "$ATTN_T_JSON"
lim=$(part_limit 15 15)
if [ "$LIMIT" -gt 0 ] && [ "$lim" -lt "$MIN_PART" ]; then
  ATTN_WHY="not run: bench time limit spent" ATTN_T_WHY="not run: bench time limit spent"
else
  half=$([ "$lim" -gt 0 ] && echo $(( lim / 2 )) || echo 0)
  if [ "$DEVICE" = cuda ]; then
    run_part attention "$half" "$BIN" bench/gpu_attention.lua T=2048 simple=0
    [ "$RC" -ne 0 ] && { FAILED+=("attention"); ATTN_WHY=$WHY; }
    tshape=(--device cuda --B 8 --T 2048 --H 8 --Hkv 4 --D 64)
  else
    ATTN_WHY="CPU run: bench/gpu_attention.lua needs a CUDA device"
    if [ "$SMALL" = 1 ]; then tshape=(--device cpu --B 1 --T 256 --H 4 --Hkv 2 --D 16 --reps 2 --warmup 1)
    else tshape=(--device cpu --B 1 --T 2048 --H 8 --Hkv 4 --D 64 --reps 3 --warmup 1); fi
  fi
  if [ -n "$PY" ]; then
    run_part attn_torch "$half" "$PY" bench/gpt_step_torch.py --attn-bench "${tshape[@]}"
    if [ "$RC" -eq 0 ]; then tail -n 1 "$OUTDIR/attn_torch.log" > "$ATTN_T_JSON"; else ATTN_T_WHY=$WHY; fi
  else
    ATTN_T_WHY=$TORCH_WHY
  fi
fi

# ---- the table
echo
echo "== table ($OUTDIR/table.md)"
targs=(table "step=$STEP_JSON" "ttt=$TTT_JSON" "attn=$ATTN_LOG" "attn_torch=$ATTN_T_JSON" "device=$DEVNAME"
       "date=$DATE" "peak_tflops=${PEAK_TFLOPS:-auto}" "out=$OUTDIR/table.md")
[ -n "$STEP_WHY" ] && targs+=("step_why=$STEP_WHY")
[ -n "$TTT_WHY" ] && targs+=("ttt_why=$TTT_WHY")
[ -n "$ATTN_WHY" ] && targs+=("attn_why=$ATTN_WHY")
[ -n "$ATTN_T_WHY" ] && targs+=("attn_torch_why=$ATTN_T_WHY")
[ -z "$PY" ] && targs+=("torch_why=$TORCH_WHY")
echo
if ! "$BIN" bench/flops.lua "${targs[@]}"; then
  echo "gpu_bench.sh: FAIL: the table could not be made (bench/flops.lua)"
  exit 1
fi
echo
echo "gpu_bench.sh: done in $(( $(date +%s) - START )) s$([ ${#FAILED[@]} -gt 0 ] && echo "; FAILED: ${FAILED[*]}")"
[ ${#FAILED[@]} -eq 0 ] || exit 1
exit 0
