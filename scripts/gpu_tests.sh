#!/usr/bin/env bash
# gpu_tests.sh — builds proteus with the CUDA backend and runs the GPU suite: the backend's C tests
# (test_cuda_alloc, test_cuda_elementwise), `ctest -L gpu` (tests/gpu/test_*.lua), then the same
# under compute-sanitizer's memcheck when it is installed. One command:
#
#   scripts/gpu_tests.sh                 # build dir build-gpu (BUILD=dir to change), all cores
#   SANITIZE=0 scripts/gpu_tests.sh      # skip the compute-sanitizer pass
#   PT_TEST_SEED=123 scripts/gpu_tests.sh  # repeat one set of random inputs
#
# Without a GPU everything builds and the tests report "skip" (exit 77 / skip lines); the script
# then exits 0 after saying so. Exit 1 if any test fails or memcheck reports an error.
# Record a run on a real device in bench/RESULTS.md (date, device, command, summary).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
SANITIZE=${SANITIZE:-1}
export PROTEUS_HOME=$PWD
fail=0
summary=()

cmake -S . -B "$BUILD" -DPROTEUS_CUDA=ON -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build "$BUILD" -j"$(nproc)" || exit 1

run_c_test() { # name -> pass / skip / FAIL
  "$BUILD/$1"
  local rc=$?
  if [ $rc -eq 0 ]; then summary+=("$1: pass")
  elif [ $rc -eq 77 ]; then summary+=("$1: skip (no device)")
  else summary+=("$1: FAIL (exit $rc)"); fail=1; fi
}
run_c_test test_cuda_alloc
run_c_test test_cuda_elementwise

if ctest --test-dir "$BUILD" -L gpu --output-on-failure; then
  summary+=("ctest -L gpu: pass (skips show as passes when there is no device)")
else
  summary+=("ctest -L gpu: FAIL"); fail=1
fi

SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ "$SANITIZE" = 1 ] && [ -x "$SAN" ] && "$BUILD/proteus" -e 'os.exit(require("proteus.cuda").is_available() and 0 or 1)'; then
  # the backend handles CUDA API errors itself (the out-of-memory tests provoke one on purpose)
  SANFLAGS=(--tool memcheck --error-exitcode 99 --report-api-errors no)
  for t in test_cuda_alloc test_cuda_elementwise; do
    if PT_CUDA_SYNC=1 "$SAN" "${SANFLAGS[@]}" --leak-check full "$BUILD/$t" > "$BUILD/memcheck_$t.log" 2>&1; then
      summary+=("memcheck $t: clean")
    else
      summary+=("memcheck $t: ERRORS (see $BUILD/memcheck_$t.log)"); fail=1
    fi
  done
  for f in tests/gpu/test_*.lua; do
    n=$(basename "$f" .lua)
    if PT_CUDA_SYNC=1 "$SAN" "${SANFLAGS[@]}" "$BUILD/proteus" tests/run.lua "$f" > "$BUILD/memcheck_$n.log" 2>&1; then
      summary+=("memcheck $n: clean")
    else
      summary+=("memcheck $n: ERRORS (see $BUILD/memcheck_$n.log)"); fail=1
    fi
  done
else
  summary+=("compute-sanitizer: not run (SANITIZE=0, not installed, or no device)")
fi

echo
echo "== GPU suite summary ($(date -u +%Y-%m-%dT%H:%MZ)) =="
"$BUILD/proteus" -e 'local c = require "proteus.cuda"
  if c.is_available() then print("device: " .. c.device_name()) else print("device: none (" .. c.unavailable_reason() .. ")") end'
for s in "${summary[@]}"; do echo "  $s"; done
exit $fail
