#!/usr/bin/env bash
# scripts/device_check.sh — proves and measures the CUDA backend on a lent GPU in ONE run (issues 10, 11),
# inside a time budget (default 480 s), most important evidence first. A failing step never stops the
# later ones; each step is bounded by `timeout`. Run from anywhere; it works in the repository root.
#
#   scripts/device_check.sh              # on the GPU machine (the device tool: `run`, timeout_s 600)
#   scripts/device_check.sh --dry-run    # here, without a GPU (DEVICE_CHECK_DRY=1 too): builds with CUDA
#                                        # (-j2), runs every step; the GPU steps report "skip"
#   scripts/device_check.sh --pack       # here: build the carried fallback binaries (see "Build" below)
#
# Steps (logs in "$OUT"/<step>.log when $OUT is set, else device_check_out/):
#   1 env       nvidia-smi, nvcc --version, compute-sanitizer, PyTorch, host
#   2 build     proteus with CUDA (Release, -j16, build-devcheck/; an existing one is reused when it was
#               configured for this checkout). When this machine cannot build proteus (no Lua 5.4 /
#               OpenBLAS / cJSON / libedit / zstd / brotli dev files: the GPU image has none of these,
#               as far as is known) the carried bundle build-devbundle/proteus-cuda-bundle.tar.xz is
#               used: proteus + the CUDA C tests + their non-CUDA shared libraries, built here by
#               `--pack`; cuBLAS, cuBLASLt and NCCL are found on the GPU machine (CUDA toolkit or
#               PyTorch's nvidia-* packages). A bundle built from other sources than the checkout's is
#               reported in the summary (source hash of CMakeLists.txt, src/, tests/c/).
#   3 suite     the GPU suite: test_cuda_alloc, test_cuda_elementwise, every tests/gpu/test_*.lua,
#               one line per test (passed/failed/skipped, seconds), each test bounded (90 s)
#   4 memcheck  compute-sanitizer memcheck (PT_CUDA_SYNC=1) on the C tests and $MEMCHECK_LUA
#               (default: test_fused test_index), each bounded (60 s)
#   5 train     the 50-step v9-style CPU-vs-GPU training comparison (tests/gpu/test_train_step.lua with
#               PT_GPU_STEPS=50, through scripts/gpu_train_curve.lua, which also saves both loss curves)
#   6 bench     bench/gpu_bench.sh: proteus vs PyTorch on a v9 training step (T = 1024, 96 sequences),
#               the v9 LoRA TTT evaluation and attention at T = 2048 (bench/gpu_attention.lua), one table
#   7 summary   "$OUT"/summary.md: every result in a form to paste into bench/RESULTS.md; also printed
# What comes back from $OUT is limited to 8 files, so $OUT holds exactly: summary.md, env.log,
# build.log, suite.log, memcheck.log, train.log, bench.log and logs.tar.gz (per-test and memcheck
# logs, the loss-curve CSV, the benchmark JSON and table). Without $OUT everything stays in device_check_out/.
#
# Environment: DEVICE_CHECK_BUDGET (seconds for all steps, default 480), DEVICE_CHECK_BUILD (build
# dir, default build-devcheck), DEVICE_CHECK_USE_BUNDLE=1 (skip the source build, use the bundle),
# DEVICE_CHECK_BUNDLE (bundle path), JOBS (default 16; 2 in --dry-run), MEMCHECK_LUA, B/T/REPS/WARMUP/
# TTT_ROUNDS (bench sizes, see bench/gpu_bench.sh). docs/gpu.md explains every output.
# Exit status: 0 when every step that ran passed or skipped, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
export PROTEUS_HOME=$ROOT
# the library path before the bundle's libraries are added: bench/run_gpu.sh runs Python with it, so
# PyTorch never loads the bundle's (older, Debian-built) zlib, libgomp, ...
export PT_PYTHON_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}

DRY=${DEVICE_CHECK_DRY:-0}
PACK=0
for a in "$@"; do
  case $a in
    --dry-run) DRY=1 ;;
    --pack) PACK=1 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "device_check.sh: unknown argument '$a' (--dry-run, --pack, --help)" >&2; exit 2 ;;
  esac
done

BUILD=${DEVICE_CHECK_BUILD:-build-devcheck}
BUNDLE=${DEVICE_CHECK_BUNDLE:-build-devbundle/proteus-cuda-bundle.tar.xz}
BUNDLE_DIR=$ROOT/build-devcheck-bundle
if [ "$DRY" = 1 ]; then JOBS=${JOBS:-2}; else JOBS=${JOBS:-16}; fi
BUDGET=${DEVICE_CHECK_BUDGET:-480}
CUDA_TESTS="test_cuda_alloc test_cuda_elementwise"

# ------------------------------------------------------------------------------------ helpers
src_hash() { # hash of what is compiled into the binaries
  (cd "$ROOT" && find CMakeLists.txt src tests/c -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' \
    -o -name '*.cuh' -o -name 'CMakeLists.txt' \) | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
}

find_nvcc() { command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; }; }

# Directories where a CUDA library (cuBLAS, NCCL, ...) may live on the GPU machine.
lib_search_dirs() {
  local d py
  for d in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
           /usr/local/cuda-*/lib64 /usr/local/cuda-*/lib /usr/local/lib /usr/lib/x86_64-linux-gnu; do
    [ -d "$d" ] && echo "$d"
  done
  for py in python3 /opt/torch/.venv/bin/python3 /usr/bin/python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    d=$("$py" -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null) || continue
    [ -d "$d" ] && find "$d" -maxdepth 3 -type d \( -name lib -o -name lib64 \) 2>/dev/null
  done
}

find_lib() { # NAME (e.g. libnccl.so.2) -> first path
  local d
  while read -r d; do
    if [ -e "$d/$1" ]; then echo "$d/$1"; return 0; fi
  done < <(lib_search_dirs)
  return 1
}

find_nccl_header() {
  local d
  for d in /usr/local/cuda/include /usr/include /usr/local/include; do
    [ -f "$d/nccl.h" ] && { echo "$d"; return 0; }
  done
  while read -r d; do
    [ -f "$d/../include/nccl.h" ] && { (cd "$d/../include" && pwd); return 0; }
  done < <(lib_search_dirs)
  return 1
}

# Adds to LD_LIBRARY_PATH the directories of the libraries ldd reports missing for $1.
resolve_libs() {
  local bin=$1 miss lib p
  miss=$(ldd "$bin" 2>/dev/null | awk '/not found/{print $1}' | sort -u)
  for lib in $miss; do
    if p=$(find_lib "$lib"); then
      LD_LIBRARY_PATH="$(dirname "$p")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      export LD_LIBRARY_PATH
      echo "  $lib -> $p"
    else
      echo "  $lib: NOT FOUND on this machine"
    fi
  done
  miss=$(ldd "$bin" 2>/dev/null | awk '/not found/{print $1}' | sort -u | tr '\n' ' ')
  if [ -n "$miss" ]; then echo "  still missing: $miss"; return 1; fi
  return 0
}

# ------------------------------------------------------------------------------------ --pack
if [ "$PACK" = 1 ]; then
  PB=${DEVICE_CHECK_PACK_BUILD:-build-devpack}
  NVCC=$(find_nvcc) || { echo "device_check.sh --pack: nvcc not found" >&2; exit 1; }
  echo "== --pack: building $PB (CUDA, MPI off, Release, -j${JOBS})"
  cmake -S . -B "$PB" -DCMAKE_BUILD_TYPE=Release -DPROTEUS_CUDA=ON -DPROTEUS_MPI=OFF >/dev/null || exit 1
  cmake --build "$PB" -j"$JOBS" --target proteus $CUDA_TESTS || exit 1
  stage=$(mktemp -d)
  mkdir -p "$stage/lib"
  cp "$PB/proteus" "$stage/"
  for t in $CUDA_TESTS; do cp "$PB/$t" "$stage/"; done
  # every shared library except the C runtime (always there, newer on the GPU image) and the big CUDA
  # libraries that the GPU machine has (cuBLAS, cuBLASLt, NCCL; cudart is small and travels)
  ldd "$PB/proteus" | awk '/=>/{print $3}' | grep -v -E '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so|ld-linux|libcublas|libcublasLt|libnccl' \
    | while read -r l; do cp -L "$l" "$stage/lib/"; done
  {
    echo "source_hash $(src_hash)"
    echo "built $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release; echo "$PRETTY_NAME"), glibc $(ldd --version | head -1 | awk '{print $NF}')"
    echo "nvcc $("$NVCC" --version | tail -1)"
    echo "git $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
    echo "expects_on_device $(ldd "$PB/proteus" | awk '/=>/{print $1}' | grep -E 'libcublas|libnccl' | tr '\n' ' ')"
  } > "$stage/MANIFEST"
  mkdir -p "$(dirname "$BUNDLE")"
  tar -cJf "$BUNDLE" -C "$stage" .
  rm -rf "$stage"
  echo "== wrote $BUNDLE ($(du -h "$BUNDLE" | cut -f1)); carry its folder: run(..., carry=[\"$(dirname "$BUNDLE")\"])"
  cat <(tar -xJOf "$BUNDLE" ./MANIFEST)
  exit 0
fi

# ------------------------------------------------------------------------------------ the check
if [ -n "${OUT:-}" ]; then
  OUTD=$OUT
  WORK=$(mktemp -d /tmp/device_check.XXXXXX)
else
  OUTD=$ROOT/device_check_out
  rm -rf "$OUTD"
  WORK=$OUTD/detail
fi
mkdir -p "$OUTD" "$WORK"
T_START=$(date +%s)
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
STEPS=() RESULTS=() SECS=()
SUITE_ROWS=() MEM_ROWS=()
BIN="" BUILD_NOTE="" HAVE_GPU=0 DEVICE="none" TRAIN_TXT="" BENCH_TXT="" ATTN_TXT="" FAILED=0

elapsed() { echo $(( $(date +%s) - T_START )); }
# seconds a step may take: its cap, or what is left of the budget (minus 5 s for the summary)
step_limit() { local left=$(( BUDGET - $(elapsed) - 5 )); (( $1 < left )) && echo "$1" || echo "$left"; }
left_s() { local l=$(( STEP_END - $(date +%s) )); (( l < 1 )) && l=1; echo "$l"; }
min() { (( $1 < $2 )) && echo "$1" || echo "$2"; }

write_summary() {
  local f=$OUTD/summary.md i
  {
    echo "## Device check — $DATE, $DEVICE"
    echo
    echo "Command: \`scripts/device_check.sh$([ "$DRY" = 1 ] && echo ' --dry-run')\` (budget ${BUDGET} s, took $(elapsed) s so far)."
    echo "Source: hash $(src_hash), git $(git rev-parse --short HEAD 2>/dev/null || echo '(no .git on this machine)'). Binaries: ${BUILD_NOTE:-none}."
    [ "$DRY" = 1 ] && echo "**Dry run**: no GPU; the GPU steps report skip. Nothing here is a GPU measurement."
    echo
    echo "| step | result | seconds |"
    echo "|---|---|---|"
    for i in "${!STEPS[@]}"; do echo "| ${STEPS[$i]} | ${RESULTS[$i]} | ${SECS[$i]} |"; done
    if [ ${#SUITE_ROWS[@]} -gt 0 ]; then
      echo
      echo "### GPU suite (scripts/device_check.sh step 3; the same tests as scripts/gpu_tests.sh with SANITIZE=0)"
      echo
      echo "| test | result | passed / failed / skipped | seconds |"
      echo "|---|---|---|---|"
      printf '%s\n' "${SUITE_ROWS[@]}"
    fi
    if [ ${#MEM_ROWS[@]} -gt 0 ]; then
      echo
      echo "### compute-sanitizer memcheck (PT_CUDA_SYNC=1, --report-api-errors no; C tests with --leak-check full)"
      echo
      echo "| target | result | seconds |"
      echo "|---|---|---|"
      printf '%s\n' "${MEM_ROWS[@]}"
    fi
    if [ -n "$TRAIN_TXT" ]; then
      echo
      echo "### 50-step training, CUDA vs CPU (tests/gpu/test_train_step.lua, PT_GPU_STEPS=50, via scripts/gpu_train_curve.lua)"
      echo
      echo '```'
      echo "$TRAIN_TXT"
      echo '```'
    fi
    if [ -n "$BENCH_TXT" ]; then
      echo
      echo "### proteus vs PyTorch: training step, LoRA TTT evaluation, attention (bench/gpu_bench.sh)"
      echo
      echo "$BENCH_TXT"
    fi
    if [ -n "$ATTN_TXT" ]; then
      echo
      echo "### Attention (bench/gpu_attention.lua)"
      echo
      echo '```'
      echo "$ATTN_TXT"
      echo '```'
    fi
  } > "$f.tmp" && mv "$f.tmp" "$f"
}

record() { # name result seconds
  STEPS+=("$1") RESULTS+=("$2") SECS+=("$3")
  case $2 in FAIL*|*FAIL*|timeout*|"not run"*) FAILED=1 ;; esac
  printf '[device_check %4ss] %-9s %s (%s s)\n' "$(elapsed)" "$1" "$2" "$3"
  write_summary
}

# Runs step function $2 with cap $3 seconds; its output goes to $OUTD/$1.log; it sets RES.
run_step() {
  local name=$1 fn=$2 cap=$3 lim t0
  lim=$(step_limit "$cap")
  if (( lim < 10 )); then record "$name" "not run (time budget of ${BUDGET} s spent)" 0; return; fi
  t0=$(date +%s)
  STEP_END=$(( t0 + lim ))
  RES=""
  echo "== $name (limit ${lim} s, $(date -u +%H:%M:%SZ))" >> "$OUTD/$name.log"
  "$fn" >> "$OUTD/$name.log" 2>&1
  record "$name" "${RES:-FAIL (no result)}" "$(( $(date +%s) - t0 ))"
}

finish() {
  trap - EXIT
  write_summary
  if [ -n "${OUT:-}" ]; then
    tar -czf "$OUTD/logs.tar.gz" -C "$WORK" . 2>/dev/null
    rm -rf "$WORK"
  fi
}
trap finish EXIT
trap 'exit 143' TERM INT

# ------------------------------------------------------------------------------------ 1 env
step_env() {
  local c
  for c in "nvidia-smi" \
           "nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv" \
           "$(find_nvcc || echo nvcc) --version" \
           "compute-sanitizer --version" \
           "python3 -c 'import sys, torch; print(sys.executable, torch.__version__, torch.cuda.is_available())'" \
           "uname -a" "nproc" "free -g" "df -h ." "ldd --version" "cmake --version" "ninja --version" \
           "pkg-config --modversion lua5.4 libzstd libbrotlienc zlib openblas libcjson libedit"; do
    echo "\$ $c"
    timeout "$(left_s)" bash -c "$c" 2>&1 | head -n 40
  done
  local q name drv mem nv
  q=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
  nv=$( (find_nvcc >/dev/null && "$(find_nvcc)" --version | grep -o 'release [0-9.]*' | head -1) || echo 'no nvcc')
  if [ -n "$q" ]; then
    IFS=',' read -r name drv mem <<< "$q"
    DEVICE="$name (driver${drv}, ${mem# }), nvcc ${nv#release }"
    RES=ok
  else
    DEVICE="no GPU (nvidia-smi found none), nvcc ${nv#release }"
    RES=$([ "$DRY" = 1 ] && echo "ok (dry run: no GPU)" || echo "FAIL: nvidia-smi shows no GPU")
  fi
}

# ------------------------------------------------------------------------------------ 2 build
build_deps_ok() {
  command -v cmake >/dev/null || { echo "no cmake"; return 1; }
  find_nvcc >/dev/null || { echo "no nvcc"; return 1; }
  command -v pkg-config >/dev/null || { echo "no pkg-config"; return 1; }
  local m missing=""
  for m in lua5.4 libzstd libbrotlienc libbrotlidec zlib openblas libcjson libedit; do
    pkg-config --exists "$m" || missing="$missing $m"
  done
  [ -z "$missing" ] || { echo "missing dev packages (pkg-config):$missing"; return 1; }
}

try_build() {
  local cache=$BUILD/CMakeCache.txt home gen=() extra=() nlib ninc
  if [ -f "$cache" ]; then
    home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$cache")
    if [ "$home" != "$ROOT" ]; then
      echo "$BUILD was configured for $home, not $ROOT: configuring afresh"
      rm -rf "$BUILD"
    fi
  fi
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    command -v ninja >/dev/null && gen=(-G Ninja)
    # CMakeLists.txt looks for libnccl.so and nccl.h in the usual system places only; PyTorch's
    # nvidia-nccl package has libnccl.so.2 and its header elsewhere: name them when needed
    local d found=0
    for d in /usr/local/cuda/lib64 /usr/local/lib /usr/lib/x86_64-linux-gnu; do [ -e "$d/libnccl.so" ] && found=1; done
    if [ $found = 0 ] || ! find_nccl_header >/dev/null; then
      if nlib=$(find_lib libnccl.so.2) && ninc=$(find_nccl_header); then
        extra=(-DNCCL_LIB="$nlib" -DNCCL_INC="$ninc")
        echo "NCCL: $nlib, headers $ninc"
      else
        echo "NCCL: not found (libnccl.so.2 and nccl.h); the configure step will say so"
      fi
    fi
    echo "\$ cmake -S . -B $BUILD ${gen[*]} -DCMAKE_BUILD_TYPE=Release -DPROTEUS_CUDA=ON -DPROTEUS_MPI=OFF ${extra[*]}"
    timeout "$(left_s)" cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DPROTEUS_CUDA=ON \
      -DPROTEUS_MPI=OFF "${extra[@]}" || return 1
  fi
  echo "\$ cmake --build $BUILD -j$JOBS --target proteus $CUDA_TESTS"
  timeout "$(left_s)" cmake --build "$BUILD" -j"$JOBS" --target proteus $CUDA_TESTS || return 1
  resolve_libs "$BUILD/proteus" || return 1
}

use_bundle() {
  [ -f "$BUNDLE" ] || { echo "no bundle at $BUNDLE (make one here with scripts/device_check.sh --pack and carry its folder)"; return 1; }
  rm -rf "$BUNDLE_DIR" && mkdir -p "$BUNDLE_DIR"
  if ! tar -xJf "$BUNDLE" -C "$BUNDLE_DIR" 2>/dev/null; then
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$BUNDLE" "$BUNDLE_DIR" || return 1
  fi
  cat "$BUNDLE_DIR/MANIFEST"
  export LD_LIBRARY_PATH="$BUNDLE_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  resolve_libs "$BUNDLE_DIR/proteus" || return 1
  local bh; bh=$(awk '/^source_hash/{print $2}' "$BUNDLE_DIR/MANIFEST")
  BUNDLE_NOTE="carried bundle ($(sed -n 's/^built //p' "$BUNDLE_DIR/MANIFEST"))"
  if [ "$bh" != "$(src_hash)" ]; then
    BUNDLE_NOTE="$BUNDLE_NOTE — WARNING: built from other sources (bundle $bh, checkout $(src_hash)); rebuild it with --pack"
  fi
}

step_build() {
  local why
  if [ "${DEVICE_CHECK_USE_BUNDLE:-0}" != 1 ]; then
    if why=$(build_deps_ok); then
      if try_build; then
        BIN=$ROOT/$BUILD
        BUILD_NOTE="built here in $BUILD (-j$JOBS)"
      else
        echo "source build failed (above); trying the carried bundle"
      fi
    else
      echo "cannot build here: $why; using the carried bundle"
    fi
  fi
  if [ -z "$BIN" ] && use_bundle; then BIN=$BUNDLE_DIR; BUILD_NOTE=$BUNDLE_NOTE; fi
  if [ -z "$BIN" ]; then RES="FAIL: no proteus binary (source build impossible or failed, no usable bundle)"; return; fi
  if ! "$BIN/proteus" -e 'local c = require("proteus.cuda"); assert(c.built, "proteus built without CUDA")'; then
    RES="FAIL: $BIN/proteus does not run or lacks CUDA"; BIN=""; return
  fi
  if "$BIN/proteus" -e 'os.exit(require("proteus.cuda").is_available() and 0 or 1)'; then
    HAVE_GPU=1
    "$BIN/proteus" -e 'local c = require("proteus.cuda"); local i = c.device_info(0)
      print(string.format("proteus sees %s, sm_%d%d, %d SMs, %.1f GiB", i.name, i.major, i.minor, i.sm_count, i.total_bytes / 2^30))'
  else
    echo "proteus: no usable CUDA device: $("$BIN/proteus" -e 'print(require("proteus.cuda").unavailable_reason())')"
  fi
  RES="ok: $BUILD_NOTE"
  [ "$HAVE_GPU" = 1 ] || RES="$RES; no usable GPU"
}

# ------------------------------------------------------------------------------------ 3 suite
suite_row() { SUITE_ROWS+=("| $1 | $2 | $3 | $4 |"); }

step_suite() {
  local t f n rc t0 last res counts pass=0 fail=0 skip=0 log
  for t in $CUDA_TESTS; do
    log=$WORK/suite_$t.log
    t0=$(date +%s)
    timeout -k 5 "$(min 90 "$(left_s)")" "$BIN/$t" > "$log" 2>&1; rc=$?
    cat "$log"
    last=$(grep -E '^[0-9]+ passed' "$log" | tail -1)
    case $rc in
      0) res=pass; pass=$((pass + 1)) ;;
      77) res=skip; skip=$((skip + 1)) ;;
      124|137) res="FAIL (timeout)"; fail=$((fail + 1)) ;;
      *) res="FAIL (exit $rc)"; fail=$((fail + 1)) ;;
    esac
    suite_row "$t" "$res" "${last:-—}" "$(( $(date +%s) - t0 ))"
  done
  for f in tests/gpu/test_*.lua; do
    n=$(basename "$f" .lua)
    log=$WORK/suite_$n.log
    t0=$(date +%s)
    if (( $(left_s) < 3 )); then suite_row "$n" "not run (step time spent)" "—" 0; fail=$((fail + 1)); continue; fi
    timeout -k 5 "$(min 90 "$(left_s)")" "$BIN/proteus" tests/run.lua "$f" > "$log" 2>&1; rc=$?
    cat "$log"
    last=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$log" | tail -1)
    counts=$(echo "$last" | sed -E 's/([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \/ \2 \/ \3/')
    if [ $rc -eq 0 ] && [ -n "$last" ]; then
      if echo "$last" | grep -qE '^0 passed, 0 failed'; then res=skip; skip=$((skip + 1))
      elif echo "$last" | grep -qE ', 0 skipped$'; then res=pass; pass=$((pass + 1))
      else res="pass (some skipped)"; pass=$((pass + 1)); fi
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then res="FAIL (timeout)"; fail=$((fail + 1))
    else res="FAIL (exit $rc)"; fail=$((fail + 1)); fi
    suite_row "$n" "$res" "${counts:-—}" "$(( $(date +%s) - t0 ))"
  done
  RES="$pass pass, $fail fail, $skip skip (of $((pass + fail + skip)) tests)"
  [ $fail -eq 0 ] && [ $pass -eq 0 ] && RES="skip: no device ($skip test files skipped)"
  [ $fail -gt 0 ] && RES="FAIL: $RES"
}

# ------------------------------------------------------------------------------------ 4 memcheck
step_memcheck() {
  local SAN t n f log rc t0 errs res nerr=0 nclean=0 flags
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ "$HAVE_GPU" != 1 ]; then RES="skip: no device"; return; fi
  if [ ! -x "$SAN" ]; then RES="FAIL: compute-sanitizer not found"; return; fi
  flags=(--tool memcheck --error-exitcode 99 --report-api-errors no)
  local items=()
  for t in $CUDA_TESTS; do items+=("c:$t"); done
  for n in ${MEMCHECK_LUA:-test_fused test_index}; do items+=("lua:$n"); done
  for t in "${items[@]}"; do
    n=${t#*:}
    log=$WORK/memcheck_$n.log
    t0=$(date +%s)
    if (( $(left_s) < 5 )); then MEM_ROWS+=("| $n | not run (step time spent) | 0 |"); continue; fi
    if [ "${t%%:*}" = c ]; then
      PT_CUDA_SYNC=1 timeout -k 5 "$(min 60 "$(left_s)")" "$SAN" "${flags[@]}" --leak-check full "$BIN/$n" > "$log" 2>&1; rc=$?
    else
      PT_CUDA_SYNC=1 timeout -k 5 "$(min 60 "$(left_s)")" "$SAN" "${flags[@]}" "$BIN/proteus" tests/run.lua "tests/gpu/$n.lua" > "$log" 2>&1; rc=$?
    fi
    tail -n 30 "$log"
    errs=$(grep -E 'ERROR SUMMARY' "$log" | tail -1 | sed 's/^=* *//')
    case $rc in
      0) res="clean (${errs:-no summary line})"; nclean=$((nclean + 1)) ;;
      99) res="ERRORS: ${errs:-see log}"; nerr=$((nerr + 1)) ;;
      124|137) res="timeout (${errs:-unfinished}) — not a verdict"; nerr=$((nerr + 1)) ;;
      *) res="FAIL exit $rc (${errs:-no summary}); test failure under the sanitizer?"; nerr=$((nerr + 1)) ;;
    esac
    MEM_ROWS+=("| $n | $res | $(( $(date +%s) - t0 )) |")
  done
  RES="$nclean clean, $nerr not clean (of ${#items[@]})"
  [ $nerr -gt 0 ] && RES="FAIL: $RES"
}

# ------------------------------------------------------------------------------------ 5 train
step_train() {
  local rc
  PT_GPU_STEPS=50 timeout -k 5 "$(left_s)" "$BIN/proteus" scripts/gpu_train_curve.lua "$WORK/train_curve.csv" \
    > "$WORK/train.out" 2>&1; rc=$?
  cat "$WORK/train.out"
  case $rc in
    0) RES="pass: $(grep -E '^steps ' "$WORK/train.out" | tail -1)" ;;
    77) RES=$(grep -E '^skip' "$WORK/train.out" | head -1) ;;
    124|137) RES="FAIL (timeout)" ;;
    *) RES="FAIL: $(grep -E '^(FAIL|steps )' "$WORK/train.out" | tr '\n' ' ' | cut -c1-300)" ;;
  esac
  [ $rc -eq 77 ] || TRAIN_TXT=$(grep -vE '^\s+[0-9]+ steps, final' "$WORK/train.out" | tail -n 60)
}

# ------------------------------------------------------------------------------------ 6 bench
step_bench() {
  local rc lim bdir=$WORK/bench
  if [ "$HAVE_GPU" != 1 ]; then
    echo "(dry run / no device: bench/gpu_bench.sh reports its skip)"
  fi
  lim=$(left_s)
  mkdir -p "$bdir"
  # bench/gpu_bench.sh splits its time limit over the training step (55 %), the LoRA TTT evaluation
  # (30 %) and attention (15 %); 15 s are kept for its table
  BENCH_OUT=$bdir BENCH_TIME_LIMIT=$(( lim > 60 ? lim - 15 : lim )) REPS=${REPS:-5} WARMUP=${WARMUP:-1} \
    TTT_ROUNDS=${TTT_ROUNDS:-4} timeout -k 5 "$lim" bash bench/gpu_bench.sh "$BIN" > "$WORK/bench.out" 2>&1; rc=$?
  cat "$WORK/bench.out"
  # "workload: ratio" of each table row
  local ratios
  ratios=$(awk -F'|' '/^\| (train step|forward|LoRA TTT|attention)/ { n = $2; sub(/ \(.*/, "", n); gsub(/^ +| +$/, "", n); r = $7; gsub(/ /, "", r); printf "%s%s %s", sep, n, r; sep = ", " }' "$bdir/table.md" 2>/dev/null)
  case $rc in
    0) RES="ok: proteus/PyTorch tokens/s: ${ratios:-no table}" ;;
    77) RES="skip: $(grep -E 'skip' "$WORK/bench.out" | head -1 | cut -c1-200)" ;;
    124|137) RES="FAIL (timeout; partial numbers in bench.log)" ;;
    *) RES="FAIL (exit $rc: $(grep -E '^gpu_bench.sh: (done|FAIL)' "$WORK/bench.out" | tail -1 | cut -c1-200)); ratios: ${ratios:-no table}" ;;
  esac
  if [ -s "$bdir/table.md" ]; then
    BENCH_TXT=$(printf 'Command: `bash bench/gpu_bench.sh %s` (BENCH_TIME_LIMIT=%s)\n\n%s\n' "$BIN" "$(( lim > 60 ? lim - 15 : lim ))" \
      "$(sed '1,2d' "$bdir/table.md")")
  elif [ $rc -ne 77 ]; then
    BENCH_TXT="no table (exit $rc); see bench.log"
  fi
  if [ -s "$bdir/attention.log" ]; then
    ATTN_TXT=$(tail -n 40 "$bdir/attention.log")
  fi
}

# ------------------------------------------------------------------------------------ run
echo "device_check: $(date -u), budget ${BUDGET} s, output in $OUTD$([ "$DRY" = 1 ] && echo ', DRY RUN')"
run_step env step_env 30
run_step build step_build "${CAP_BUILD:-240}"
if [ -n "$BIN" ]; then
  run_step suite step_suite "${CAP_SUITE:-150}"
  run_step memcheck step_memcheck "${CAP_MEMCHECK:-100}"
  run_step train step_train "${CAP_TRAIN:-90}"
  run_step bench step_bench "${CAP_BENCH:-300}"
else
  for s in suite memcheck train bench; do record "$s" "not run (no binary)" 0; done
fi
finish
echo
cat "$OUTD/summary.md"
exit $FAILED
