#!/usr/bin/env bash
# scripts/fuzz.sh — build and run the libFuzzer targets of tests/fuzz/ (issue 13).
#
#   bash scripts/fuzz.sh                     # build build-fuzz/fuzz_{shard,sptok,safetensors,artifact,codec,checkpoint}
#   bash scripts/fuzz.sh TARGET SECONDS      # build, then fuzz one target (shard|sptok|safetensors|checkpoint|
#                                            # artifact|codec) for SECONDS; new inputs go to
#                                            # build-fuzz/corpus/TARGET, crashes to build-fuzz/crashes/
#   bash scripts/fuzz.sh --all SECONDS       # the same for every target, one after the other
#   bash scripts/fuzz.sh --ci                # build, then ctest -L fuzz: each target 18 s (CI: 6 x 18 s < 2 min)
#   bash scripts/fuzz.sh --run-one BIN SEED_DIR SECONDS   # what each ctest entry runs
#
# The targets are compiled by clang with -fsanitize=fuzzer-no-link,address,undefined on the whole
# core (CMake option PROTEUS_FUZZ, build dir build-fuzz/, CPU only, no MPI). The seed corpora under
# tests/fuzz/corpus/ are only read; a crash prints the reproducer's path: turn it into a test in
# tests/c/test_fuzz_regressions.c (docs/errors.md says how). A run prints libFuzzer's final stats
# (execs, coverage) and exits non-zero on any crash, leak, UB, or single allocation over 1 GiB
# (-malloc_limit_mb=1024: how an allocation sized by a hostile header shows up).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=build-fuzz
targets="shard sptok safetensors artifact codec checkpoint"

run_one() { # BIN SEED_DIR SECONDS
  local bin=$1 seed=$2 secs=$3 name work crashes log rc
  name=$(basename "$bin")
  crashes="$(dirname "$bin")/crashes/$name"
  work="$(dirname "$bin")/corpus/${name#fuzz_}"
  mkdir -p "$crashes" "$work"
  log=$(mktemp)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  set +e
  # first dir: where new coverage goes (scratch); second: the checked-in seeds (read only)
  "$bin" "$work" "$seed" -max_total_time="$secs" -timeout=10 -rss_limit_mb=3072 -malloc_limit_mb=1024 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$crashes/" >"$log" 2>&1
  rc=$?
  set -e
  grep -E "(INFO: seed corpus|DONE|stat::|Done [0-9]+ runs)" "$log" || true
  if [ $rc -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz.sh: $name FAILED (exit $rc); reproducers in $crashes" >&2
  else
    echo "fuzz.sh: $name ok ($secs s)"
  fi
  rm -f "$log"
  return $rc
}

build() {
  if ! command -v clang >/dev/null; then
    echo "fuzz.sh: clang is needed (Debian: apt-get install clang)" >&2
    exit 1
  fi
  local flags="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -Wno-pass-failed"
  CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DPROTEUS_CUDA=OFF -DPROTEUS_MPI=OFF \
    -DPROTEUS_FUZZ=ON -DPROTEUS_FUZZ_SECONDS="${PROTEUS_FUZZ_SECONDS:-18}" \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  local t list=""
  for t in $targets; do list="$list --target fuzz_$t"; done
  # shellcheck disable=SC2086
  cmake --build "$dir" -j"$(nproc 2>/dev/null || echo 2)" $list
}

case "${1:-}" in
  --run-one)
    run_one "$2" "$3" "$4"
    ;;
  --ci)
    build
    ctest --test-dir "$dir" -L fuzz --output-on-failure
    ;;
  --all)
    build
    fail=0
    for t in $targets; do run_one "$root/$dir/fuzz_$t" "$root/tests/fuzz/corpus/$t" "${2:-60}" || fail=1; done
    exit $fail
    ;;
  "")
    build
    ;;
  *)
    build
    run_one "$root/$dir/fuzz_$1" "$root/tests/fuzz/corpus/$1" "${2:-60}"
    ;;
esac
