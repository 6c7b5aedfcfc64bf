#!/usr/bin/env bash
# Runs a cargo command for wasm32-unknown-unknown with whichever wasm std this machine has:
# rustup's target if installed, else Debian's rustc-web with -Zbuild-std (see `make setup`).
# Both paths build into target/wasm, so the output's place does not depend on the toolchain.
# Usage: scripts/wasm-cargo.sh build|clippy [cargo args...]
set -euo pipefail
subcommand="$1"
shift
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+simd128"
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  exec cargo "$subcommand" --target wasm32-unknown-unknown --target-dir target/wasm "$@"
elif [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
  export PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=lld-16
  exec /usr/bin/cargo "$subcommand" --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
    --target-dir target/wasm "$@"
else
  echo "wasm-cargo: no wasm32 std found; run \`make setup\`" >&2
  exit 1
fi
