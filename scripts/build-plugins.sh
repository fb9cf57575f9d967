#!/usr/bin/env bash
# Builds wasmlet's plugins as WebAssembly components (wasm32-wasip2) and puts
# each example's .wasm next to its manifest, so the plugin directories under
# plugins/ are ready to load and to test (`wasmlet plugin test DIR`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# rust-toolchain.toml names the target, but rustup does not always add targets
# to a toolchain that is already installed.
rustup target add wasm32-wasip2 >/dev/null

# From plugins/, so that plugins/.cargo/config.toml (target, link flags) applies.
(cd plugins && cargo build --locked --release --workspace)

out=plugins/target/wasm32-wasip2/release
for manifest in plugins/examples/*/*.toml plugins/builtin/*/*.toml; do
  case $manifest in */Cargo.toml) continue ;; esac
  [ -f "$(dirname "$manifest")/Cargo.toml" ] || continue # not a Rust plugin
  name=$(basename "$manifest" .toml)
  crate=$(basename "$(dirname "$manifest")")
  cp "$out/${crate//-/_}.wasm" "$(dirname "$manifest")/$name.wasm"
done

# For a plugin written in a language other than Rust (its source `$1`, beside
# its manifest): sets `dir`, `world` (the manifest's kind) and `out` (the
# component), and fails when the component is newer than the source and the WIT.
stale() {
  dir=$(dirname "$1")
  local name
  name=$(basename "$dir")
  world=$(sed -n 's/^kind *= *"\(.*\)"/\1/p' "$dir/$name.toml")
  out=$dir/$name.wasm
  [ ! -f "$out" ] || [ -n "$(find "$1" wit -newer "$out" -print -quit)" ]
}

# Python plugins (plugins/*/*/app.py): componentize-py from PyPI, in a
# virtualenv of the project's own. Rebuilt when the app or the WIT changed.
componentize=0.25.1
venv=target/py
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -q "$componentize"; then
  # --clear: a venv that stopped working (e.g. the checkout moved) is rebuilt.
  python3 -m venv --clear "$venv" 2>/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv --clear "$venv"
  }
  "$venv/bin/pip" install -q "componentize-py==$componentize"
fi
for app in plugins/examples/*/app.py plugins/testing/*/app.py; do
  [ -e "$app" ] && stale "$app" || continue
  echo "componentize-py: $dir ($world)"
  "$venv/bin/componentize-py" -d wit -w "$world" componentize app -p "$dir" -o "$out" >/dev/null
done

# JavaScript plugins (plugins/*/*/app.js): componentize-js from npm, pinned by
# plugins/js-toolchain's package-lock.json, installed into target/js with the
# machine's Node.js (Debian's, if there is none). Rebuilt when the app or the
# WIT changed.
js=target/js
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x "$js/node_modules/.bin/componentize-js" ] ||
  ! cmp -s plugins/js-toolchain/package-lock.json "$js/package-lock.json"; then
  rm -rf "$js"
  mkdir -p "$js"
  cp plugins/js-toolchain/package.json plugins/js-toolchain/package-lock.json "$js/"
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
for app in plugins/examples/*/app.js plugins/testing/*/app.js; do
  [ -e "$app" ] && stale "$app" || continue
  echo "componentize-js: $dir ($world)"
  # No HTTP: an admission plugin's world does not import it.
  "$js/node_modules/.bin/componentize-js" "$app" --wit wit -n "$world" \
    -d http fetch-event -o "$out" >/dev/null
done

# Flat plugin directories, as the agent loads them: the built-in plugins
# (the demo node's), and the examples.
for set in builtin:target/plugins examples:target/example-plugins; do
  src=plugins/${set%%:*} dst=${set#*:}
  rm -rf "$dst"
  mkdir -p "$dst"
  for manifest in "$src"/*/*.toml; do
    case $manifest in */Cargo.toml) continue ;; esac
    name=$(basename "$manifest" .toml)
    cp "$manifest" "$(dirname "$manifest")/$name.wasm" "$dst/"
  done
done
