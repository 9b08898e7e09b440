#!/usr/bin/env bash
# Builds the release binary and runs the end-to-end load measurement
# (private Redis, same-run baseline, hookd, local sink). See benches/load.rs
# for the knobs, e.g. `E2E_SECONDS=60 SOAK_SECONDS=600 benches/load.sh`.
# `benches/load.sh --instructions` counts instructions per event under
# callgrind instead (repeatable on a noisy machine; needs valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  echo "wrk not found: the closed-loop phases use the in-repo driver," >&2
  echo "which costs the shared CPUs more (apt-get install wrk)" >&2
fi
cargo build --release --locked
if [[ " $* " == *" --instructions "* ]] && ! command -v valgrind >/dev/null; then
  echo "--instructions needs valgrind (apt-get install valgrind)" >&2
  exit 1
fi
cargo bench --bench load -- "$@"
