#!/usr/bin/env bash
# The CPU kernels on aarch64: the integration tests cross-compiled for aarch64-unknown-linux-gnu
# and run under QEMU's user-mode emulator: the kernel suite (the NEON products against the f64
# product and the portable path's bits) and SmolLM2's llama.cpp parity (about 2 minutes emulated;
# the model from `make setup`). Emulated, so it says nothing of their speed. Installs what it needs (rustup's target, Debian's cross linker and
# qemu-user) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
missing=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
cargo clippy --target aarch64-unknown-linux-gnu --lib -- -D warnings
cargo test --target aarch64-unknown-linux-gnu --test integration -- kernels:: \
  parity_llamacpp::next_tokens_agree_with_llama_cpp parity_llamacpp::greedy_continuations_part_only
