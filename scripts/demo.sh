#!/usr/bin/env bash
# scripts/demo.sh — the README's main command: install what is missing, build, run the main job.
#
#   bash scripts/demo.sh [key=value ...]
#
# The main job is the PROTEUS v9 recipe on the bundled sample, CPU-sized (preset=demo). Until that
# recipe lands it runs examples/quickstart.lua, which trains a small model on the bundled sample
# and reports BPB through the score-first ledger.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs" >/dev/null
if [ -f lua/recipes/v9_lora_ttt.lua ]; then
  exec build/proteus lua/recipes/v9_lora_ttt.lua preset=demo "$@"
else
  exec build/proteus examples/quickstart.lua "$@"
fi
