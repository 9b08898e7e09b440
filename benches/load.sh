#!/usr/bin/env bash
# Builds the release binary and runs the end-to-end load measurement
# (private Redis, same-run baseline, hookd, local sink). See benches/load.rs
# for the knobs, e.g. `E2E_SECONDS=60 SOAK_SECONDS=600 benches/load.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
cargo bench --bench load
