#!/usr/bin/env bash
# tests/cli/test_kill_checkpoint.sh — checkpoints survive crashes: a tiny training run (proteus.train)
# that writes a checkpoint after every step is killed with SIGKILL at random moments, ROUNDS times
# (50 by default); after each kill the last checkpoint must load and restore into a fresh model, and
# the next start resumes from it (its step never goes back). Then Ctrl-C (SIGINT): the run writes a
# checkpoint, says how to resume, exits 0, and the resumed run finishes.
#
#   bash tests/cli/test_kill_checkpoint.sh build/proteus [ROUNDS]     (ctest runs it as kill_checkpoint)
#
# Prints "ok N - what" / "not ok N - what" per check and exits 1 if any failed. Bounded to ~60 s:
# the kill rounds stop early when 45 s have passed.
set -u
P=${1:-build/proteus}
ROUNDS=${2:-50}
case "$P" in /*) ;; *) P="$PWD/$P" ;; esac
[ -x "$P" ] || { echo "test_kill_checkpoint: no executable at $P (build first)"; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
unset PROTEUS_HOME LUA_PATH LUA_PATH_5_4

n=0; failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; [ $# -gt 1 ] && echo "    $2"; }

# the training run: resumes from ck.safetensors when it exists
cat > "$TMP/run.lua" <<'EOF'
local pt = require "proteus"
local nn = require "proteus.nn"
local optim = require "proteus.optim"
local data = require "proteus.data"
local train = require "proteus.train"
local path, max_steps = arg[1], tonumber(arg[2])
pt.manual_seed(1)
local model = nn.GPT { vocab_size = 1024, num_layers = 1, model_dim = 16, num_heads = 2, num_kv_heads = 1, mlp_mult = 2 }
local muon, adam = {}, {}
for name, p in model:named_parameters() do
  if name:match("^blocks%.") and p:dim() == 2 then muon[#muon + 1] = p else adam[#adam + 1] = p end
end
local f = io.open(path, "rb")
if f then f:close() end
local res = train.run { model = model, stream = data.stream(data.paths().train), seq_len = 16, batch_seqs = 2,
  optimizers = { optim.AdamW { params = adam, lr = 0.01 }, optim.Muon { params = muon, lr = 0.01 } },
  max_steps = max_steps, log_every = 0, progress = false, ema = { decay = 0.99, every = 1 },
  checkpoint = { path = path, every = 1 }, resume = f and path or nil }
print("done " .. res.steps .. " " .. res.stopped)
EOF

# the check: the checkpoint loads and restores into a fresh model; prints its step
cat > "$TMP/check.lua" <<'EOF'
local pt = require "proteus"
local nn = require "proteus.nn"
local optim = require "proteus.optim"
local ckpt = require "proteus.checkpoint"
local model = nn.GPT { vocab_size = 1024, num_layers = 1, model_dim = 16, num_heads = 2, num_kv_heads = 1, mlp_mult = 2 }
local named = {}
for name, p in model:named_parameters() do named[#named + 1] = { name, p } end
local c = ckpt.load(arg[1])
ckpt.restore(c, { model = model, ema = optim.EMA { params = named } })
print(c.step)
EOF

CK="$TMP/ck.safetensors"
start=$SECONDS
last=0
loaded=0
rounds=0
for ((i = 1; i <= ROUNDS; i++)); do
  if ((SECONDS - start >= 45)); then break; fi
  "$P" "$TMP/run.lua" "$CK" 1000000 >"$TMP/out" 2>&1 &
  pid=$!
  if ((i == 1)); then # the first round waits for the first checkpoint (slow starts, sanitizers)
    for _ in $(seq 1 400); do [ -e "$CK" ] && break; sleep 0.05; done
  fi
  sleep "$(printf '0.%03d' $((RANDOM % 400 + 100)))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rounds=$i
  if [ ! -e "$CK" ]; then bad "kill $i: no checkpoint at all" "$(cat "$TMP/out")"; break; fi
  step=$("$P" "$TMP/check.lua" "$CK" 2>&1)
  if ! [[ "$step" =~ ^[0-9]+$ ]]; then
    bad "kill $i: the checkpoint loads" "$step"
    break
  fi
  if ((step < last)); then bad "kill $i: step went back from $last to $step"; break; fi
  last=$step
  loaded=$((loaded + 1))
done
stale=$(ls "$TMP" | grep -c '\.tmp\.' || true)
if ((loaded > 0 && loaded == rounds)); then
  ok "$rounds kills with SIGKILL: the last checkpoint loaded after each of $loaded ($stale killed mid-write), reached step $last"
else
  bad "kills: only $loaded of $rounds left a loadable checkpoint" "$(cat "$TMP/out")"
fi
rm -f "$TMP"/*.tmp.*

# Ctrl-C: a checkpoint, a message naming resume=, exit 0; then the resumed run finishes
rm -f "$CK"
"$P" "$TMP/run.lua" "$CK" 1000000 >"$TMP/out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -e "$CK" ] && break; sleep 0.05; done
sleep 0.2
kill -INT "$pid"
wait "$pid"
rc=$?
out=$(cat "$TMP/out")
if [ "$rc" = 0 ] && [[ "$out" == *"interrupted at step "*"resume=$CK"* ]]; then
  ok "SIGINT: exit 0 with the resume message"
else
  bad "SIGINT: exit 0 with the resume message" "rc=$rc out=$out"
fi
step=$("$P" "$TMP/check.lua" "$CK" 2>&1)
if [[ "$step" =~ ^[0-9]+$ ]] && [[ "$out" == *"interrupted at step $step/"* ]]; then
  ok "SIGINT: the checkpoint holds the interrupted step ($step)"
else
  bad "SIGINT: the checkpoint holds the interrupted step" "check: $step; out: $out"
fi
target=$((step + 3))
out=$("$P" "$TMP/run.lua" "$CK" "$target" 2>&1)
if [[ "$out" == *"resume: step $step/$target from $CK"* ]] && [[ "$out" == *"done $target max_steps"* ]]; then
  ok "resumed after SIGINT and finished at step $target"
else
  bad "resumed after SIGINT and finished" "$out"
fi

echo "$((n - failed)) passed, $failed failed ($((SECONDS - start)) s)"
[ "$failed" = 0 ]
