#!/usr/bin/env bash
# Runs a cargo command for wasm32-unknown-unknown with whichever wasm std this machine has:
# rustup's target if installed, else Debian's rustc-web with -Zbuild-std (see `make setup`).
# Both paths build into target/wasm, so the output's place does not depend on the toolchain.
# Usage: scripts/wasm-cargo.sh build|clippy [cargo args...]
# With WASM_LINT=1, `build` also lints the crate with clippy (-D warnings) as it compiles it, so a
# test run needs no second, check-only pass over the dependencies.
# With GLASSBOX_WASM_THREADS=1 it builds the variant with shared memory (atomics), whose CPU
# kernels run on Web Workers: std is then rebuilt with those features (-Zbuild-std, which needs
# rust-src), into target/wasm-threads.
set -euo pipefail
subcommand="$1"
shift
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+simd128"
target_dir=target/wasm
build_std=()
if [ "${GLASSBOX_WASM_THREADS:-}" = 1 ]; then
  # The memory is imported (wasm-bindgen's glue creates it shared, and hands it to each worker) and
  # may grow to wasm32's 4 GiB as the unshared build's does; each thread sets up its own
  # thread-local storage through the __tls exports.
  RUSTFLAGS+=" -C target-feature=+atomics,+bulk-memory,+mutable-globals"
  for arg in --shared-memory --import-memory --max-memory=4294967296 \
    --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base; do
    RUSTFLAGS+=" -C link-arg=$arg"
  done
  export RUSTC_BOOTSTRAP=1
  target_dir=target/wasm-threads
  build_std=(-Zbuild-std=std,panic_abort)
fi
# GLASSBOX_WASM_TOOLCHAIN=debian forces the fallback, to test it on a machine that has both.
if [ "${GLASSBOX_WASM_TOOLCHAIN:-}" != debian ] \
  && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
  && { [ ${#build_std[@]} = 0 ] || rustup component list --installed 2>/dev/null | grep -qx rust-src; }; then
  if [ "${WASM_LINT:-}" = 1 ] && [ "$subcommand" = build ]; then
    RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver)
    export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
  fi
  exec cargo "$subcommand" --target wasm32-unknown-unknown "${build_std[@]}" --target-dir "$target_dir" "$@"
elif [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
  export PATH="/usr/bin:$PATH" RUSTC_BOOTSTRAP=1
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=lld-16
  if [ "$subcommand" = clippy ] && [ ! -x /usr/bin/cargo-clippy ]; then
    # Debian ships no clippy for rustc-web: type-check the wasm-only code instead.
    echo "wasm-cargo: no clippy for Debian's toolchain; running cargo check" >&2
    subcommand=check
    args=()
    for a in "$@"; do [ "$a" = -- ] && break; args+=("$a"); done
    set -- "${args[@]}"
  fi
  if [ "${WASM_LINT:-}" = 1 ] && [ "$subcommand" = build ]; then
    echo "wasm-cargo: no clippy for Debian's toolchain; the build type-checks the wasm-only code" >&2
  fi
  exec /usr/bin/cargo "$subcommand" --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
    --target-dir "$target_dir" "$@"
else
  echo "wasm-cargo: no wasm32 std found; run \`make setup\`" >&2
  exit 1
fi
