#!/usr/bin/env bash
# Runs every fuzz target (host/fuzz) from its committed seeds for a bounded
# number of executions: seconds each by default, as in CI. `scripts/fuzz.sh
# 1000000` is a real run. Installs a nightly toolchain and cargo-fuzz if
# missing. A crash leaves its input in host/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../host/fuzz"
runs=${1:-100000}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo fuzz --version 2>/dev/null | grep -q ' 0\.13\.' ||
  cargo install cargo-fuzz --version '^0.13' --locked

# No sanitizer (safe Rust; what is wanted is panics and overflows, so debug
# assertions are on), optimised: a build and every run take minutes, not tens.
flags=(--fuzz-dir . --sanitizer none --debug-assertions -O)
cargo +nightly fuzz build "${flags[@]}"
for target in manifest quantity pod_view cri_answer; do
  corpus=$(mktemp -d)
  log=$corpus.log
  if ! cargo +nightly fuzz run "${flags[@]}" "$target" "$corpus" "seeds/$target" -- \
    -runs="$runs" -max_len=8192 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $target failed (its input is in host/fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  echo "fuzz $target: $(grep -E '^Done' "$log")"
  rm -rf "$corpus" "$log"
done
