#!/usr/bin/env bash
# tests/cli/test_repl_tmux.sh — drives the proteus REPL through a real terminal (tmux): an
# expression, a multi-line function then a call, an error (REPL stays alive), Ctrl-C during
# `while true do end` (back to the prompt), another expression, Tab completion, Ctrl-C at the
# prompt, history written to $PROTEUS_HISTORY, and Ctrl-D exiting with code 0.
#
#   bash tests/cli/test_repl_tmux.sh build/proteus      (ctest runs it as repl_tmux)
#
# Exit code 77 (ctest: skipped) when tmux is not installed.
set -u
P=${1:-build/proteus}
case "$P" in /*) ;; *) P="$PWD/$P" ;; esac
[ -x "$P" ] || { echo "test_repl_tmux: no executable at $P (build first)"; exit 1; }
if ! command -v tmux >/dev/null 2>&1; then
  echo "SKIP: tmux is not installed (Debian: apt-get install tmux; scripts/setup.sh lists it)"
  exit 77
fi
TMP=$(mktemp -d)
SOCK="pt-repl-test-$$"
S=repl
T() { tmux -L "$SOCK" "$@"; }
trap 'T kill-server >/dev/null 2>&1; rm -rf "$TMP"' EXIT

n=0; failed=0
pane() { T capture-pane -p -J -S -500 -t "$S" 2>/dev/null; }
# wait_for "what" regex [seconds]: polls the pane until a line matches (grep -E)
wait_for() {
  n=$((n + 1))
  local deadline=$((SECONDS + ${3:-15}))
  while [ $SECONDS -lt $deadline ]; do
    if pane | grep -qE -- "$2"; then echo "ok $n - $1"; return 0; fi
    sleep 0.1
  done
  failed=$((failed + 1))
  echo "not ok $n - $1 (no line matching /$2/ within ${3:-15}s); the terminal shows:"
  pane | sed 's/^/    | /'
  return 1
}
count() { pane | grep -cE -- "$1"; }
send() { T send-keys -t "$S" -l "$1"; T send-keys -t "$S" Enter; }

cd "$TMP"
T new-session -d -s "$S" -x 160 -y 50 \
  "env PROTEUS_HISTORY='$TMP/history' TERM=xterm '$P'; echo \"REPL EXITED rc=\$?\"; sleep 60" || {
  echo "not ok - tmux could not start a session"; exit 1; }

wait_for "banner" '^proteus [0-9]+\.[0-9]+\.[0-9]+ \(Lua 5\.4'
wait_for "first prompt" '^> ?$'

send '1+2'
wait_for "expression 1+2 prints 3" '^3$'

send 'function twice(a)'
wait_for "continuation prompt" '^>> ?$'
send 'return a*2'
send 'end'
send 'twice(21)'
wait_for "multi-line function then a call" '^42$'

send 'error("boom-" .. 7)'
wait_for "error message shown" 'proteus: stdin:1: boom-7'
send '"alive" .. "!"'
wait_for "REPL alive after an error" '^alive!$'

send 'while true do end'
sleep 0.7
T send-keys -t "$S" C-c
wait_for "Ctrl-C interrupts the loop" 'interrupted!'
send '6*7+100'
wait_for "expression after Ctrl-C" '^142$'

T send-keys -t "$S" -l 'string.rev'
T send-keys -t "$S" Tab
T send-keys -t "$S" -l '("abc")'
T send-keys -t "$S" Enter
wait_for "Tab completes string.rev to string.reverse" '^cba$'

T send-keys -t "$S" -l 'dropped_by_ctrl_c + '
sleep 0.3
# ^C and the next line in one send-keys: they reach the terminal together, so the REPL wakes with
# keys to read and SIGINT pending at once; the keys after ^C must start a new line, not be dropped
T send-keys -t "$S" C-c '"after " .. "ctrl-c"' Enter
wait_for "Ctrl-C at the prompt drops the line" '^after ctrl-c$'
n=$((n + 1))
if [ "$(count 'dropped_by_ctrl_c')" -le 1 ] && ! pane | grep -q "attempt to perform arithmetic"; then
  echo "ok $n - the dropped line was not run"
else failed=$((failed + 1)); echo "not ok $n - the dropped line was run"; pane | sed 's/^/    | /'; fi

T send-keys -t "$S" C-d
wait_for "Ctrl-D exits with code 0" '^REPL EXITED rc=0$'
n=$((n + 1))
if grep -q '1+2' "$TMP/history" 2>/dev/null && grep -q 'twice(21)' "$TMP/history"; then
  echo "ok $n - history written to \$PROTEUS_HISTORY"
else failed=$((failed + 1)); echo "not ok $n - history file $TMP/history lacks the inputs:"; cat "$TMP/history" 2>&1 | sed 's/^/    | /'; fi

echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
