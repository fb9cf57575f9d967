#!/usr/bin/env bash
# Builds wasmlet's plugins as WebAssembly components (wasm32-wasip2) and puts
# each example's .wasm next to its manifest, so the plugin directories under
# plugins/ are ready to load and to test (`wasmlet plugin test DIR`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# cargo reads .cargo/config.toml from the working directory, not from
# --manifest-path: name the target explicitly.
cargo build --locked --release --manifest-path plugins/Cargo.toml --workspace --target wasm32-wasip2

out=plugins/target/wasm32-wasip2/release
for manifest in plugins/examples/*/*.toml; do
  case $manifest in */Cargo.toml) continue ;; esac
  name=$(basename "$manifest" .toml)
  crate=$(basename "$(dirname "$manifest")")
  cp "$out/${crate//-/_}.wasm" "$(dirname "$manifest")/$name.wasm"
done
