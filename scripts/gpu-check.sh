#!/usr/bin/env bash
# The GPU check: the CUDA and WebGPU backends against the CPU (20 prompts: top-1 and top-10
# heads) on SmolLM2 and, when `make gemma3` fetched it, on Gemma 3 270M's K-quants; prefill and
# decode speed with decode's share of the memory-bandwidth roofline, for SmolLM2 and a 1B
# synthetic model; and the WebGPU kernel tests, through Vulkan when a driver is there.
#
# The GPU machine has no Rust toolchain and reaches no registry, so the binaries are built here
# and travel in .gpu/ with the model (split in two: one transfer is limited to 64 MiB), and
# Gemma 3 in five parts when it was fetched:
#
#   scripts/gpu-check.sh prepare   here: builds with --features cuda,webgpu,lab, linking against
#                                  stubs of the CUDA libraries (scripts/cuda-stubs.sh), and packs
#                                  .gpu/bin.tar.xz, .gpu/inputs/, .gpu/model-a, .gpu/model-b and
#                                  .gpu/gemma3-part-00 … 04
#   scripts/gpu-check.sh run [all|webgpu]
#                                  on the GPU machine, in the repository root: loads the real
#                                  CUDA libraries, runs everything (or the WebGPU checks alone),
#                                  writes reports to $OUT (or .gpu/out) and prints a summary
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA3=models/gemma3/gemma-3-270m-q4_k_m.gguf
PEERS=${PEERS:-../shared/peers}
# 1B parameters at Q4_0, Llama-3.2-1B's shape with SmolLM2's vocabulary.
SYNTH_SHAPE=(--layers 16 --width 2048 --ffn-width 8192 --heads 32 --kv-heads 8)

prepare() {
  make cuda-toolkit
  scripts/cuda-stubs.sh .tools/cuda-stubs
  local target=target/gpu
  export CARGO_TARGET_DIR=$target RUSTFLAGS="-L native=$PWD/.tools/cuda-stubs"
  scripts/cuda-env.sh cargo build --release --features cuda,webgpu,lab --bin glassbox
  rm -rf .gpu && mkdir -p .gpu/inputs .gpu/stage
  cp "$target/release/glassbox" .gpu/stage/glassbox
  local test
  for test in webgpu_kernels cuda_kernels; do
    scripts/cuda-env.sh cargo test --release --features cuda,webgpu,lab --test $test --no-run --message-format json |
      python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' $test | xargs -I{} cp {} .gpu/stage/$test
  done
  strip .gpu/stage/*
  tar -C .gpu/stage -cJf .gpu/bin.tar.xz glassbox webgpu_kernels cuda_kernels
  rm -rf .gpu/stage
  cp scripts/parity-prompts.txt "$PEERS/prompts/short.txt" "$PEERS/prompts/long.txt" .gpu/inputs/
  # The Vulkan loader and GL dispatch libraries: the GPU machine's NVIDIA driver ships only the
  # ICD (the device tool's README names these packages).
  (cd .gpu/inputs && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1) ||
    echo "prepare: Vulkan loader packages not downloaded; the WebGPU check will use the machine's loader if any"
  sha256sum "$MODEL" | awk '{print $1}' >.gpu/inputs/model.sha256
  git describe --always --dirty >.gpu/inputs/revision
  head -c 55M "$MODEL" >.gpu/model-a
  tail -c +$((55 * 1024 * 1024 + 1)) "$MODEL" >.gpu/model-b
  if [ -f "$GEMMA3" ]; then
    sha256sum "$GEMMA3" | awk '{print $1}' >.gpu/inputs/gemma3.sha256
    split -b 55M -d "$GEMMA3" .gpu/gemma3-part-
  fi
  du -b .gpu/bin.tar.xz .gpu/inputs .gpu/model-a .gpu/model-b .gpu/gemma3-part-* 2>/dev/null || true
}

# The directories holding the CUDA libraries the binary loads (the toolkit's, or the PyPI ones
# PyTorch brought) that the loader does not already know, for LD_LIBRARY_PATH; never a
# toolkit's link-time stubs or its forward-compatibility driver.
cuda_library_dirs() {
  local lib
  for lib in libcuda.so.1 libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
    ldconfig -p | grep -q "^[[:space:]]*$lib " && continue
    find /usr/local/nvidia /usr/local/cuda* /usr/lib /opt /usr/local/lib -name "$lib" \
      -not -path '*stubs*' -not -path '*compat*' 2>/dev/null | head -n1
  done | xargs -r -n1 dirname | sort -u | paste -sd:
}

json_field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }

run() {
  # `all`: CUDA and WebGPU; `webgpu`: the WebGPU checks alone (a shorter run).
  local what=${1:-all}
  # Reports go to $out (at most 8 files come back from the GPU machine); the rest to $work.
  local out=${OUT:-.gpu/out} work=.gpu/work
  mkdir -p "$out" "$work" .gpu/bin models
  exec > >(tee "$out/gpu-check.log") 2>&1
  [ -f .gpu/model-a ] && [ -f .gpu/model-b ] || { echo "gpu-check: .gpu/model-a and model-b are needed"; exit 1; }
  cat .gpu/model-a .gpu/model-b >"$MODEL"
  [ "$(sha256sum "$MODEL" | awk '{print $1}')" = "$(cat .gpu/inputs/model.sha256)" ] || { echo "gpu-check: the reassembled model's sha256 differs"; exit 1; }
  tar -C .gpu/bin -xJf .gpu/bin.tar.xz
  local gb=.gpu/bin/glassbox prompts=.gpu/inputs/parity-prompts.txt failed=0
  export LD_LIBRARY_PATH="$(cuda_library_dirs)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "== machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  echo "CUDA libraries from: $LD_LIBRARY_PATH"
  ldd "$gb" | grep -E 'cuda|cublas|curand|nvrtc' || true

  if [ "$what" = all ]; then
    echo "== candle's CUDA quantised matmuls against an f64 product"
    .gpu/bin/cuda_kernels --nocapture >"$work/cuda-kernels.log" 2>&1 || failed=1
    grep -E 'worst error|test result|panicked' "$work/cuda-kernels.log" | tail -n 40

    # CUDA's kernels read their input unrounded, so the CPU computing the same arithmetic is the
    # CPU with f32 weights; against the CPU's 8-bit-input kernels the two differ by that rounding.
    echo "== parity: CUDA against the CPU computing the same arithmetic, $(wc -l <$prompts) prompts"
    "$gb" --backend cuda compare-backends "$MODEL" --prompts $prompts --reference-float-weights --json >"$out/parity.json" || failed=1
    summarise_parity "$out/parity.json"
    echo "== parity with f32 weights on both"
    "$gb" --backend cuda compare-backends "$MODEL" --prompts $prompts --float-weights >"$work/parity-f32.txt" || failed=1
    cat "$work/parity-f32.txt"
    echo "== against the CPU's quantised kernels (they round their input to 8 bits; for scale, the CPU against itself with f32 weights)"
    "$gb" --backend cuda compare-backends "$MODEL" --prompts $prompts >"$work/parity-quantised.txt" 2>&1 || true
    "$gb" --backend cpu compare-backends "$MODEL" --prompts $prompts --reference-float-weights >"$work/cpu-rounding.txt" 2>&1 || true
    cat "$work/parity-quantised.txt" "$work/cpu-rounding.txt"
    gemma3_parity cuda "$out" "$prompts" || failed=1
  fi

  echo "== memory bandwidth (device-to-device copy through PyTorch)"
  local bandwidth
  bandwidth=$(python3 - <<'EOF' || echo 0
import torch, time
x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(20): y.copy_(x)
torch.cuda.synchronize()
print(2 * 20 * x.numel() / (time.perf_counter() - t))
EOF
)
  echo "bandwidth: $(python3 -c "print(f'{$bandwidth / 1e12:.2f} TB/s')")"

  echo "== WebGPU on Vulkan"
  # The loader and the GL dispatch libraries the NVIDIA driver's Vulkan ICD needs.
  for deb in .gpu/inputs/*.deb; do [ -f "$deb" ] && dpkg -x "$deb" /; done
  ldconfig
  local nvidia=/usr/local/nvidia/share vulkan=0
  [ -f $nvidia/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=$nvidia/vulkan/icd.d/nvidia_icd.json \
    __EGL_VENDOR_LIBRARY_FILENAMES=$nvidia/glvnd/egl_vendor.d/10_nvidia.json
  if ldconfig -p | grep -q libvulkan.so.1; then
    vulkan=1
    .gpu/bin/webgpu_kernels --test-threads 1 --nocapture >"$work/webgpu.log" 2>&1 || failed=1
    tail -n 12 "$work/webgpu.log"
    echo "== parity: the WebGPU backend against the CPU computing the same arithmetic"
    "$gb" --backend webgpu compare-backends "$MODEL" --prompts $prompts --reference-float-weights --json >"$out/parity-webgpu.json" || failed=1
    summarise_parity "$out/parity-webgpu.json"
    gemma3_parity webgpu "$out" "$prompts" || failed=1
  else
    echo "no Vulkan loader here: the WebGPU checks did not run" | tee "$work/webgpu.log"
  fi

  local backends=(webgpu) name model backend
  [ "$what" = all ] && backends=(cuda webgpu cpu) && "$gb" synth-model --tokenizer-from "$MODEL" "${SYNTH_SHAPE[@]}" .gpu/synthetic-1b-q4_0.gguf
  for name in smollm2 synthetic-1b; do
    model=$MODEL
    if [ "$name" = synthetic-1b ]; then
      [ "$what" = all ] || continue
      model=.gpu/synthetic-1b-q4_0.gguf
    fi
    "$gb" info --json --tensors "$model" >"$work/tensors-$name.json"
    for backend in "${backends[@]}"; do
      [ "$backend" = webgpu ] && [ "$vulkan" = 0 ] && continue
      echo "== bench $name on $backend"
      "$gb" --backend "$backend" bench "$model" --short .gpu/inputs/short.txt --long .gpu/inputs/long.txt \
        >"$work/bench-$name-$backend.json" || echo "bench $name on $backend FAILED"
    done
  done

  python3 scripts/gpu-section.py "$out" "$work" "$bandwidth" | tee "$out/gpu-section.md"
  [ "$failed" = 0 ] || { echo "gpu-check: FAILED (see above)"; exit 1; }
  echo "gpu-check: done"
}

# Gemma 3's K-quant kernels on `$1` against the CPU computing the same arithmetic (f32
# weights), when prepare packed the model: the report to $2/parity-gemma3-$1.json.
gemma3_parity() {
  local backend=$1 out=$2 prompts=$3 gb=.gpu/bin/glassbox
  ls .gpu/gemma3-part-* >/dev/null 2>&1 || { echo "== Gemma 3 parity on $backend: not packed (make gemma3, then prepare)"; return 0; }
  if [ ! -f "$GEMMA3" ]; then
    mkdir -p "$(dirname "$GEMMA3")"
    cat .gpu/gemma3-part-* >"$GEMMA3"
    [ "$(sha256sum "$GEMMA3" | awk '{print $1}')" = "$(cat .gpu/inputs/gemma3.sha256)" ] ||
      { echo "gpu-check: the reassembled Gemma 3's sha256 differs"; rm -f "$GEMMA3"; return 1; }
  fi
  echo "== Gemma 3 parity: $backend against the CPU computing the same arithmetic"
  "$gb" --backend "$backend" compare-backends "$GEMMA3" --prompts "$prompts" --reference-float-weights --json \
    >"$out/parity-gemma3-$backend.json" || return 1
  summarise_parity "$out/parity-gemma3-$backend.json"
}

summarise_parity() {
  [ -s "$1" ] && json_field "$1" \
    '"%s vs %s: top-1 equal %d/%d, head rankings equal %d/%d, max |dlogit| %.4f, max |dLPI| %.4f, resid_post by layer %s, passed %s" % (d["tested"], d["reference"], d["top1_equal"], len(d["prompts"]), d["head_rankings_equal"], len(d["prompts"]), d["max_logit_difference"], d["max_head_lpi_difference"], " ".join("%.1e" % x for x in d["resid_post_relative_difference"]), d["passed"])'
}

case "${1:-}" in
  prepare) prepare ;;
  run) run "${2:-all}" ;;
  *) echo "usage: scripts/gpu-check.sh prepare | run [all|webgpu]" >&2; exit 2 ;;
esac
