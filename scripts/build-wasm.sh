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
# Two builds: glassbox (one thread) and glassbox-threads (shared memory; the kernels on Web Workers).
for variant in glassbox glassbox-threads; do
  if [ "$variant" = glassbox ]; then threads=0 dir=target/wasm; else threads=1 dir=target/wasm-threads; fi
  GLASSBOX_WASM_THREADS=$threads scripts/wasm-cargo.sh build --lib --features webgpu "${flags[@]}"
  wasm="$dir/wasm32-unknown-unknown/$out/glassbox.wasm"
  .tools/bin/wasm-bindgen --target web --out-dir pkg --out-name "$variant" "$wasm"
  node scripts/jspi-glue.mjs "pkg/$variant.js" "pkg/$variant.d.ts"
  echo "build-wasm: pkg/$variant.js built from $wasm"
done
