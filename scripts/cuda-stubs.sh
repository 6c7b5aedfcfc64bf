#!/usr/bin/env bash
# Link-time stand-ins for the CUDA libraries candle links (libcuda, cuBLAS, cuBLASLt, cuRAND,
# NVRTC; the CUDA runtime is the real one from .venv-cuda), so `cargo build --features cuda` links on a machine without CUDA. Each stub exports
# every function cudarc declares for its library and carries the real library's soname: the
# binary then loads the real libraries on the GPU machine. Nothing here ever runs.
# Usage: scripts/cuda-stubs.sh OUT_DIR
set -euo pipefail
out=${1:?usage: scripts/cuda-stubs.sh OUT_DIR}
cudarc=$(cargo metadata --format-version 1 --features cuda 2>/dev/null |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc").rsplit("/", 1)[0])')
mkdir -p "$out"
stub() { # library, soname, cudarc module
  local c="$out/$1.c"
  grep -oP '^pub unsafe fn \K\w+' "$cudarc/src/$3/sys/mod.rs" | sort -u | sed 's/.*/void &(void) {}/' >"$c"
  cc -shared -fPIC -o "$out/$1.so" -Wl,-soname,"$2" "$c"
}
stub libcuda libcuda.so.1 driver
stub libcublas libcublas.so.13 cublas
stub libcublasLt libcublasLt.so.13 cublaslt
stub libcurand libcurand.so.10 curand
stub libnvrtc libnvrtc.so.13 nvrtc
# candle's MoE kernels are a static library built by nvcc that calls the CUDA runtime: link the
# real libcudart from the pinned PyPI runtime (the GPU machine has its own copy).
cudart=$(find "$PWD/.venv-cuda" -name 'libcudart.so.13' | head -n1)
[ -n "$cudart" ] || { echo "cuda-stubs: no libcudart.so.13 in .venv-cuda; run make cuda-toolkit" >&2; exit 1; }
ln -sf "$cudart" "$out/libcudart.so"
echo "$out: $(ls "$out"/*.so | wc -l) libraries to link against"
