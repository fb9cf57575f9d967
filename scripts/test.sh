#!/usr/bin/env bash
# Every check of wasmlet, on a fresh machine or a used one: installs what is
# missing, starts the real node (containerd + registry), runs the formatter,
# clippy and all tests against it, and stops the node again if it started it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A clean CI build gains nothing from incremental state, which would take
# gigabytes of the machine's disk (and the node reports disk pressure).
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
fi

started_node=
if ! scripts/node.sh status; then
  started_node=1
fi
scripts/node.sh up
if [ -n "$started_node" ]; then
  trap 'scripts/node.sh down' EXIT
fi
eval "$(scripts/node.sh env)"

scripts/build-plugins.sh

# promtool checks /metrics in the tests: unpacked from Debian's prometheus
# package, not installed (so no service starts).
promtool=target/tools/prometheus/usr/bin/promtool
if [ ! -x "$promtool" ]; then
  mkdir -p target/tools
  (cd target/tools && { apt-get download prometheus >/dev/null 2>&1 \
     || { apt-get update -qq && apt-get download prometheus >/dev/null; }; })
  dpkg-deb -x target/tools/prometheus_*.deb target/tools/prometheus
fi
export WASMLET_PROMTOOL=$PWD/$promtool

cargo fmt --all --check
cargo fmt --all --check --manifest-path plugins/Cargo.toml
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd plugins && cargo clippy --locked --workspace -- -D warnings)
# The wasmlet binary also serves the teardown (runtime-reset).
cargo build --workspace --locked
# The plugins' pure logic, natively (their components are tested through the host).
(cd plugins && cargo test --locked --workspace --target "$(rustc -vV | sed -n 's/^host: //p')")
cargo test --workspace --locked
# Every fuzz target, for a few seconds each (a real run: scripts/fuzz.sh 1000000).
scripts/fuzz.sh

# Teardown is part of what is tested: `down` fails if anything leaked.
if [ -n "$started_node" ]; then
  trap - EXIT
  scripts/node.sh down
fi
