#!/usr/bin/env bash
# tests/cli/test_dist_mpirun.sh — proteus.dist across 2 processes under Open MPI's mpirun (CPU):
# collectives (f32/f64/bf16/i64 sum/avg/max/min, reduce_scatter, all_gather, broadcast, bucketed
# gradient all-reduce, parallel Muon equal to Muon); 10 training steps of a smoke-size GPT on 2 ranks
# equal to 1 process with the same global batch (plain data-parallel Muon and round-robin Muon,
# relative < 1e-5); a 2-rank standard and sliding evaluation with the same BPB and merged ledger as 1
# rank; a target scored on two ranks refused by the merge; `proteus --nproc 2`; a killed rank ends
# the job; a stopped (hung) rank makes the other exit through the watchdog with its message; a rank
# whose script fails inside dist.main ends every rank at once; a recipe (baseline smoke) on 2 ranks
# against 1 process: the same BPBs and ledger, one artifact and results.json written by rank 0, and
# the recipe's evaluation steps on one artifact equal on 1 and 2 ranks; LoRA TTT (ttt.lora_eval) on 2
# ranks, contiguous and zigzag, equal to 1 process, a target scored on both ranks refused.
#
#   bash tests/cli/test_dist_mpirun.sh build/proteus        (ctest runs it as dist_mpirun)
#
# Exit 77 (skipped) when mpirun is missing or proteus was built without MPI. Prints "ok N - what" /
# "not ok N - what"; exits 1 if any check failed. About 40 s; every mpirun is bounded by `timeout`.
# mpirun options: --allow-run-as-root (containers run as root) --oversubscribe (2 ranks on any
# machine) --bind-to none; Open MPI's defaults (shared-memory transport) work in a container.
set -u
P=${1:-build/proteus}
case "$P" in /*) ;; *) P="$PWD/$P" ;; esac
[ -x "$P" ] || { echo "test_dist_mpirun: no executable at $P (build first)"; exit 1; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W="$ROOT/tests/cli/dist_worker.lua"
command -v mpirun > /dev/null || { echo "skip: mpirun not found (Debian: openmpi-bin libopenmpi-dev)"; exit 77; }
if [ "$("$P" -e 'io.write(tostring(require("proteus.dist").has_mpi()))')" != "true" ]; then
  echo "skip: this proteus was built without MPI (install libopenmpi-dev and reconfigure)"
  exit 77
fi
export PROTEUS_HOME="$ROOT" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# Under AddressSanitizer (scripts/test.sh --sanitize sets ASAN_OPTIONS), Open MPI's own never-freed
# memory would fail every rank at exit: suppress leaks inside the MPI libraries only (tests/lsan_mpi.supp),
# with full unwinding so that the suppression sees the MPI frames.
if [ -n "${ASAN_OPTIONS:-}" ]; then
  export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
  export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$ROOT/tests/lsan_mpi.supp:print_suppressions=0"
fi
unset PROTEUS_DIST PROTEUS_DIST_TIMEOUT
MR=(mpirun -np 2 --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && MR+=(--allow-run-as-root)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

n=0; failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; [ $# -gt 1 ] && echo "$2" | sed 's/^/    /'; }
run() { # run DESC CMD...: ok when CMD exits 0, else show its output
  local desc=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$desc"; else bad "$desc (exit $?)" "$out"; fi
}

# 1. collectives on 2 ranks
run "collectives on 2 ranks (sum/avg/max/min, reduce_scatter, all_gather, broadcast, buckets, parallel Muon)" \
  timeout 60 "${MR[@]}" "$P" "$W" collectives

# 2. training: 1 process with grad_accum 2 vs 2 ranks (same global batch of 4 sequences)
for m in plain roundrobin; do
  run "train $m Muon: 1 process, 10 steps" timeout 60 "$P" "$W" train "$TMP/w1_$m.st" $m 2
  run "train $m Muon: mpirun -np 2, 10 steps" timeout 60 "${MR[@]}" "$P" "$W" train "$TMP/w2_$m.st" $m 1
  run "train $m Muon: 2-rank weights equal 1-process weights (relative < 1e-5)" \
    "$P" "$W" compare "$TMP/w1_$m.st" "$TMP/w2_$m.st" 1e-5
done

# 3. evaluation: same BPB (relative 1e-11: f64 sums in another order) and the same merged ledger
run "eval: 1 rank" timeout 60 "$P" "$W" eval "$TMP/e1.txt"
run "eval: 2 ranks" timeout 60 "${MR[@]}" "$P" "$W" eval "$TMP/e2.txt"
if [ -s "$TMP/e1.txt" ] && [ -s "$TMP/e2.txt" ]; then
  if out=$(awk 'NR == FNR { a[FNR] = $0; next }
    { split(a[FNR], x, " "); if ($1 == "ledger") { if ($0 != a[FNR]) { print "ledger digest: " a[FNR] " vs " $0; bad = 1 } ; next }
      for (i = 3; i <= 8; i++) if (x[i] != $i) { print "line " FNR " field " i ": " x[i] " vs " $i; bad = 1 }
      for (i = 1; i <= 2; i++) { d = x[i] - $i; if (d < 0) d = -d; if (d > 1e-11 * x[i]) { print "line " FNR " bpb/loss " x[i] " vs " $i; bad = 1 } } }
    END { exit bad }' "$TMP/e1.txt" "$TMP/e2.txt"); then
    ok "eval: 2-rank BPB, loss, ledger counts and merged per-position ledger equal 1 rank's (standard and sliding)"
  else
    bad "eval: 2 ranks differ from 1 rank" "$out"
  fi
else
  bad "eval: no result files"
fi

# 4. a target scored on two ranks is a violation of the merged ledger
run "ledger merge across ranks refuses a target scored on both ranks (legal), counts it (legal=false)" \
  timeout 60 "${MR[@]}" "$P" "$W" overlap

# 5. proteus --nproc 2 launches 2 ranks through mpirun
out=$(cd "$TMP" && timeout 60 "$P" --nproc 2 -e 'local d = require "proteus.dist"; print("rank " .. d.rank() .. " of " .. d.world_size() .. " " .. d.backend())' 2>&1)
if echo "$out" | grep -q "rank 0 of 2 mpi" && echo "$out" | grep -q "rank 1 of 2 mpi"; then
  ok "proteus --nproc 2 starts ranks 0 and 1 of 2 (mpi)"
else
  bad "proteus --nproc 2" "$out"
fi

# 6. dead ranks. (a) SIGKILL one rank: mpirun ends the other and says which rank died
hang() { # hang LOG TIMEOUT: starts the hang mode in the background; sets HPID
  DIST_WORKER_TIMEOUT=$2 timeout 60 "${MR[@]}" -x DIST_WORKER_TIMEOUT "$P" "$W" hang > "$1" 2>&1 &
  HPID=$!
  for _ in $(seq 1 100); do
    [ "$(grep -c '^ready rank' "$1")" = 2 ] && return 0
    sleep 0.1
  done
  return 1
}
victim() { sed -n 's/^ready rank 1 pid \([0-9]*\)$/\1/p' "$1"; }
wait_for() { # wait_for PID SECONDS: 0 when PID ended in time
  local i
  for i in $(seq 1 $(($2 * 10))); do kill -0 "$1" 2> /dev/null || return 0; sleep 0.1; done
  return 1
}
if hang "$TMP/kill.log" 30; then
  t0=$(date +%s)
  kill -KILL "$(victim "$TMP/kill.log")"
  if wait_for "$HPID" 20; then
    wait "$HPID"; rc=$?
    if [ "$rc" != 0 ] && grep -q "rank 1 .*exited on signal 9" "$TMP/kill.log"; then
      ok "a killed rank ends the job within $(( $(date +%s) - t0 )) s (exit $rc, mpirun names rank 1 and signal 9)"
    else
      bad "killed rank: exit $rc without the expected message" "$(cat "$TMP/kill.log")"
    fi
  else
    kill -KILL "$HPID" 2> /dev/null; bad "killed rank: the job still runs after 20 s" "$(cat "$TMP/kill.log")"
  fi
else
  kill -KILL "$HPID" 2> /dev/null; bad "killed rank: ranks never became ready" "$(cat "$TMP/kill.log")"
fi

# (b) SIGSTOP one rank (a hang the launcher cannot see): rank 0's watchdog ends it after 3 s
if hang "$TMP/stop.log" 3; then
  t0=$(date +%s)
  V=$(victim "$TMP/stop.log")
  kill -STOP "$V"
  if wait_for "$HPID" 20; then
    wait "$HPID"; rc=$?
    el=$(( $(date +%s) - t0 ))
    if [ "$rc" = 124 ] && grep -q "proteus.dist: rank 0 of 2 (pid [0-9]*): all_reduce(sum, f32) did not complete within 3 s; a peer rank died or hangs" "$TMP/stop.log" && [ "$el" -le 15 ]; then
      ok "a hung rank: the other exits through the watchdog after ${el} s with exit 124 and its message"
    else
      bad "hung rank: exit $rc after ${el} s without the watchdog message" "$(cat "$TMP/stop.log")"
    fi
  else
    kill -KILL "$HPID" 2> /dev/null; bad "hung rank: the job still runs after 20 s" "$(cat "$TMP/stop.log")"
  fi
  kill -KILL "$V" 2> /dev/null
else
  kill -KILL "$HPID" 2> /dev/null; bad "hung rank: ranks never became ready" "$(cat "$TMP/stop.log")"
fi

# (c) a Lua error on one rank inside dist.main ends every rank at once (MPI_Abort)
t0=$(date +%s)
out=$(timeout 30 "${MR[@]}" "$P" "$W" fail 2>&1); rc=$?
el=$(( $(date +%s) - t0 ))
if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ "$el" -le 10 ] && echo "$out" | grep -q "deliberate failure on rank 1" \
   && echo "$out" | grep -q "ending every rank (MPI_Abort)"; then
  ok "a failing rank inside dist.main ends every rank in ${el} s (exit $rc)"
else
  bad "failing rank: exit $rc after ${el} s" "$out"
fi

# 7. a recipe on 2 ranks (proteus.recipe): baseline.lua preset=smoke in one process with 2 micro-steps and
# on 2 ranks with 1 (the same global batch: the same training, weights equal up to f32 rounding, so
# the BPBs agree to ~1e-10 relative; 1e-9 allowed); rank 0 alone writes model.ptz and results.json into
# the shared run directory. Then the recipe's eval steps on ONE artifact with 1 and 2 ranks (windows
# split, ledgers merged): equal to 1e-11 relative (f64 sums in another order).
RA="$TMP/recipe1" RB="$TMP/recipe2"
run "recipe baseline smoke: 1 process, grad_accum_steps=2" \
  timeout 60 "$P" "$ROOT/lua/recipes/baseline.lua" preset=smoke grad_accum_steps=2 run_dir="$RA" quiet=true
run "recipe baseline smoke: mpirun -np 2, grad_accum_steps=1" \
  timeout 60 "${MR[@]}" "$P" "$ROOT/lua/recipes/baseline.lua" preset=smoke grad_accum_steps=1 run_dir="$RB" quiet=true
run "recipe: 2-rank pre_quant/roundtrip BPB equal 1 process's (relative 1e-9), same ledger counts, world_size 2" \
  "$P" "$W" results_compare "$RA/results.json" "$RB/results.json" 1e-9
files=$(cd "$RB" 2> /dev/null && ls -A | sort | tr '\n' ' ')
if [ "$files" = "metrics.jsonl model.ptz results.json run.log " ] && [ "$(grep -c '^pre_quant ' "$RB/run.log")" = 1 ] \
   && [ "$(grep -c '^train: ' "$RB/run.log")" = 1 ]; then
  ok "recipe on 2 ranks: one model.ptz, one results.json, no stray files, run.log written once (rank 0)"
else
  bad "recipe on 2 ranks: run directory holds: $files" "$(cat "$RB/run.log" 2> /dev/null)"
fi
run "recipe eval steps on one artifact: 1 process" timeout 60 "$P" "$W" recipe_eval "$RA/model.ptz" "$TMP/reval1"
run "recipe eval steps on one artifact: mpirun -np 2" \
  timeout 60 "${MR[@]}" "$P" "$W" recipe_eval "$RA/model.ptz" "$TMP/reval2"
run "recipe eval steps: 2-rank roundtrip and sliding BPB equal 1 rank's (relative 1e-11), same ledger counts" \
  "$P" "$W" results_compare "$TMP/reval1/results.json" "$TMP/reval2/results.json" 1e-11

# 8. LoRA TTT (ttt.lora_eval, spec §3.7, §6.2) on 2 ranks: each rank adapts on and scores its documents
# (contiguous split, or DeepQuant's zigzag), the ledgers are merged, every rank returns the whole set's
# BPB. LoRA is per document and (lora_seed) each document's init comes from its own seed, so a
# document's result does not depend on its batch: with 1 document per batch the batches are the same
# as in one process (relative 1e-11: f64 sums in another order); with 4 per batch they differ, and
# only the batch shape moves the last bits of the logits (relative 1e-9). Every target scored exactly
# once across the ranks; a target scored on both ranks is refused by the merge.
for b in 1 4; do
  for how in contiguous zigzag; do
    run "ttt $how, $b doc(s) per batch: 1 process" timeout 60 "$P" "$W" ttt "$TMP/t1_${b}_$how.txt" $b $how
    run "ttt $how, $b doc(s) per batch: mpirun -np 2" timeout 60 "${MR[@]}" "$P" "$W" ttt "$TMP/t2_${b}_$how.txt" $b $how
    if [ "$b" = 1 ]; then tol=1e-11; st=steps; else tol=1e-9; st=; fi
    run "ttt $how, $b doc(s) per batch: 2-rank BPB equals 1 process's (relative $tol), same merged ledger counts" \
      "$P" "$W" ttt_compare "$TMP/t1_${b}_$how.txt" "$TMP/t2_${b}_$how.txt" $tol $st
  done
done
run "ttt: both ranks scoring rank 0's documents is refused by the merge (legal), counted (legal=false)" \
  timeout 60 "${MR[@]}" "$P" "$W" ttt_overlap

echo "$n checks, $failed failed"
[ "$failed" = 0 ]
