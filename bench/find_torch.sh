# bench/find_torch.sh — sourced by bench/gpu_bench.sh and bench/run_gpu.sh (not run on its own): finds the
# Python that imports torch. In: $1 = the probe (Python code that prints torch's version and fails when
# the torch is unusable, e.g. without CUDA on a GPU run). Out: PY (the interpreter, empty when none
# passed), TORCH_NOTE ("PyTorch V (path)", or why each candidate failed), pyenv (the env prefix to run
# Python with: LD_LIBRARY_PATH=$PT_PYTHON_LD_LIBRARY_PATH when scripts/device_check.sh set it, so Python
# never loads proteus's carried libraries). Candidates in order: $PROTEUS_TEST_PYTHON, python3 on PATH,
# /opt/torch/.venv/bin/python3, /usr/bin/python3.
# pt_torch_use: when PY was found, exports PROTEUS_TEST_PYTHON for proteus's child processes — PY itself,
# or a wrapper that runs it with pyenv's library path.
# shellcheck shell=bash disable=SC2034  # PY, TORCH_NOTE, pyenv are read by the sourcing script
pyenv=()
if [ -n "${PT_PYTHON_LD_LIBRARY_PATH+x}" ]; then pyenv=(env "LD_LIBRARY_PATH=$PT_PYTHON_LD_LIBRARY_PATH"); fi
PY="" TORCH_NOTE=""
for cand in "${PROTEUS_TEST_PYTHON:-}" "$(command -v python3 || true)" /opt/torch/.venv/bin/python3 /usr/bin/python3; do
  [ -n "$cand" ] && [ -x "$cand" ] || continue
  if v=$("${pyenv[@]}" "$cand" -c "$1" 2>&1); then
    PY=$cand
    TORCH_NOTE="PyTorch ${v##*$'\n'} ($cand)"
    break
  else
    TORCH_NOTE="$TORCH_NOTE${TORCH_NOTE:+; }$cand: $(echo "$v" | tail -n 1)"
  fi
done

pt_torch_use() {
  [ -n "$PY" ] || return 0
  if [ ${#pyenv[@]} -gt 0 ]; then
    local wrap
    wrap=$(mktemp -d)/python3
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$PT_PYTHON_LD_LIBRARY_PATH" "$PY" > "$wrap"
    chmod +x "$wrap"
    PY=$wrap
  fi
  export PROTEUS_TEST_PYTHON=$PY
}
