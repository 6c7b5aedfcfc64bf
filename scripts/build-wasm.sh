#!/usr/bin/env bash
# Builds the wasm library and generates the npm package's JS bindings into pkg/.
# Usage: scripts/build-wasm.sh [dev|release]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-release}"
case "$profile" in
  dev) flags=() out=debug ;;
  release) flags=(--release) out=release ;;
  *) echo "build-wasm: profile must be dev or release, not $profile" >&2; exit 2 ;;
esac
scripts/wasm-cargo.sh build --lib --features webgpu "${flags[@]}"
wasm="target/wasm/wasm32-unknown-unknown/$out/glassbox.wasm"
.tools/bin/wasm-bindgen --target web --out-dir pkg --out-name glassbox "$wasm"
node scripts/jspi-glue.mjs pkg/glassbox.js pkg/glassbox.d.ts
echo "build-wasm: pkg/ built from $wasm"
