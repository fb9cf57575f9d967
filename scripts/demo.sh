#!/usr/bin/env bash
# The demo node: starts the real node (installing what is missing), builds the
# agent and its built-in plugins, and runs `wasmlet run` in the foreground on
# the example manifests in host/wasmlet/demo (copied to target/demo/manifests;
# drop, edit or remove files there while it runs). Watch it with
#   target/debug/wasmlet pods        # or: curl -s localhost:10255/pods
# Ctrl-C stops the agent; its pods keep running (a restarted agent adopts
# them). `scripts/node.sh down` stops the node and removes every pod.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/node.sh up
eval "$(scripts/node.sh env)"
scripts/build-plugins.sh
cargo build --locked -q -p wasmlet

echo
echo "== wasmlet runtime-info"
target/debug/wasmlet runtime-info

mkdir -p target/demo/manifests target/demo/logs
cp host/wasmlet/demo/*.yaml target/demo/manifests/

cat <<'NOTE'

== wasmlet run (Ctrl-C to stop; pods keep running)
   manifests: target/demo/manifests   plugins: target/plugins
   in another terminal:  target/debug/wasmlet pods
                         target/debug/wasmlet logs -f web-demo
                         curl -s localhost:10255/pods | python3 -m json.tool
                         curl -s localhost:10255/metrics/probes

NOTE
exec target/debug/wasmlet run \
  --node-name demo \
  --static-pod-path "$PWD/target/demo/manifests" \
  --plugin-dir "$PWD/target/plugins" \
  --pod-logs-dir "$PWD/target/demo/logs" \
  --file-check-frequency 20s
