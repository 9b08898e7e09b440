#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each). Not part of
# .ci/run. Needs `cargo install cargo-fuzz`; libFuzzer's flags need nightly
# features, enabled here on the stable toolchain with RUSTC_BOOTSTRAP.
#   fuzz/run.sh            # 60 s per target
#   fuzz/run.sh 600        # 10 min per target
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in signature_headers extractors stored_formats; do
  echo "== fuzzing $target for ${seconds}s"
  cargo fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048
done
