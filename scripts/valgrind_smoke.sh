#!/usr/bin/env bash
# scripts/valgrind_smoke.sh — Valgrind memcheck on a smoke run (tests/valgrind/smoke.lua: tokenizer,
# shards, 2 training steps of a tiny GPT, an evaluation through the ledger, safetensors, artifacts
# with every codec). Issue 13.
#
#   bash scripts/valgrind_smoke.sh [SCRIPT.lua [args...]]    # default: tests/valgrind/smoke.lua
#
# Builds a plain (unsanitized) CPU binary in build-valgrind/ with -O1 -g, runs it under
# valgrind --tool=memcheck with one OpenMP/OpenBLAS thread and the suppressions in
# tests/valgrind/proteus.supp, and fails (exit 1) on any memory error or on memory "definitely" or
# "indirectly" lost. "still reachable" blocks (Lua state of libraries, OpenBLAS/OpenMP pools kept
# until exit) are reported but allowed. The full log is left in build-valgrind/memcheck.log.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v valgrind >/dev/null; then
  echo "valgrind_smoke.sh: valgrind is not installed (Debian: apt-get install valgrind)" >&2
  exit 77
fi
dir=build-valgrind
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DPROTEUS_CUDA=OFF -DPROTEUS_MPI=OFF >/dev/null
cmake --build "$dir" -j"$(nproc 2>/dev/null || echo 2)" --target proteus >/dev/null
script=${1:-tests/valgrind/smoke.lua}
[ $# -gt 0 ] && shift
log="$dir/memcheck.log"
export PROTEUS_HOME=$PWD OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
set +e
valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --track-origins=yes --num-callers=30 \
  --suppressions=tests/valgrind/proteus.supp --log-file="$log" \
  "$dir/proteus" "$script" "$@"
rc=$?
set -e
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|still reachable|suppressed:" "$log" || true
if [ $rc -ne 0 ]; then
  echo "valgrind_smoke.sh: FAILED (exit $rc); see $log" >&2
  exit 1
fi
echo "valgrind_smoke.sh: memcheck clean on $script"
