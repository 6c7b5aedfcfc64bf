#!/usr/bin/env bash
# Runs a command with the pinned nvcc from .venv-cuda (installed by `make cuda-toolkit`) on PATH,
# set up for candle's CUDA kernels on a machine with no GPU: compute capability 9.0 (H100/H200)
# and cudarc told the CUDA version rather than asking a driver.
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc=$(find .venv-cuda -path '*/nvidia/cu13/bin/nvcc' -type f 2>/dev/null | head -n1)
[ -n "$nvcc" ] || { echo "cuda-env: no nvcc in .venv-cuda; run make cuda-toolkit" >&2; exit 1; }
export PATH="$PWD/$(dirname "$nvcc"):$PATH"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
# candle-kernels' build compiles its kernels with cudaforge, which uses half the cores unless told.
export CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)}
exec "$@"
