#!/usr/bin/env bash
# scripts/setup.sh — install the Debian packages proteus needs to build, test and run.
#
#   bash scripts/setup.sh          # installs what is missing (as root), says what it did
#   bash scripts/setup.sh --check  # only lists what is missing, exit 1 if anything is
#
# Both README commands call this first. Packages:
#   build:   cmake gcc make pkg-config liblua5.4-dev libzstd-dev libbrotli-dev zlib1g-dev
#            libopenblas-dev (GEMM + LAPACK) libcjson-dev libedit-dev (BSD line editor, not readline)
#   data:    sentencepiece (spm_encode, to turn text into token shards)
#   tests:   python3-torch python3-numpy (PyTorch parity tests on the CPU), openmpi-bin libopenmpi-dev
#            (2-rank CPU tests), clang + libomp-dev (libFuzzer; clang's OpenMP), valgrind (memcheck
#            smoke), tmux (REPL test)
#   reports: gnuplot-nox (loss/BPB curves to PNG)
set -euo pipefail
PKGS=(cmake gcc make pkg-config liblua5.4-dev libzstd-dev libbrotli-dev zlib1g-dev libopenblas-dev
      libcjson-dev libedit-dev sentencepiece python3-torch python3-numpy openmpi-bin libopenmpi-dev
      clang libomp-dev valgrind tmux gnuplot-nox)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} Debian packages present"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "setup: missing: ${missing[*]}"; exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup: missing Debian packages: ${missing[*]}" >&2
  echo "setup: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
