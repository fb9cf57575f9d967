#!/usr/bin/env bash
# The demo node on its embedded defaults: starts the real node (installing what is
# missing), shows the runtime as wasmlet sees it, and runs a smoke pod through it.
# The node stays up afterwards; `scripts/node.sh down` stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/node.sh up
eval "$(scripts/node.sh env)"
scripts/build-plugins.sh
cargo build --locked -q -p wasmlet
cargo build --locked -q -p wasmlet-tests --example smoke_pod

echo
echo "== wasmlet runtime-info"
target/debug/wasmlet runtime-info
echo
echo "== plugins (target/plugins)"
target/debug/wasmlet plugin list target/plugins
echo
echo "== an admission decision: plugins/examples/pods/unlabelled.yaml"
target/debug/wasmlet plugin run target/plugins/py-baseline.toml --pod plugins/examples/pods/unlabelled.yaml
echo
echo "== smoke pod"
target/debug/examples/smoke_pod
echo
echo "The node is still running (scripts/node.sh down stops it)."
