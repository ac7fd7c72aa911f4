#!/usr/bin/env bash
# scripts/test.sh — the README's test command: install what is missing, build, run every test.
#
#   bash scripts/test.sh              # Release build (CUDA backend compiled when nvcc exists), ctest
#   bash scripts/test.sh --sanitize   # CPU build under AddressSanitizer + UndefinedBehaviorSanitizer
#
# GPU tests (ctest label "gpu") build everywhere and skip without a device; run them on a GPU machine
# with scripts/gpu_tests.sh. Build dirs: build/ and build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

jobs=$(nproc 2>/dev/null || echo 2)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DPROTEUS_SANITIZE=ON -DPROTEUS_CUDA=OFF >/dev/null
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:allocator_may_return_null=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  # OpenBLAS/OpenMP threads are not what is under test here, and one thread keeps the run short
  export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
else
  dir=build
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
# zero warnings: fail the build on any compiler warning
log=$(mktemp)
if ! cmake --build "$dir" -j"$jobs" 2>&1 | tee "$log"; then
  echo "test.sh: build failed" >&2
  exit 1
fi
if grep -E "warning:" "$log" >/dev/null; then
  echo "test.sh: the build printed warnings (the project keeps them at zero):" >&2
  grep -E "warning:" "$log" >&2
  exit 1
fi
rm -f "$log"
ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 900
