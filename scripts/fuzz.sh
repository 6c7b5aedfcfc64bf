#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) under libFuzzer, seeded from the committed fixtures
# (and fuzz/seeds where no fixture fits), until FUZZ_RUNS executions or FUZZ_SECONDS seconds,
# whichever comes first, with a 2 GB memory cap and a 1 s limit per input; prints one summary
# line per target for FUZZING.md.
# Usage: scripts/fuzz.sh [target ...]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${FUZZ_RUNS:-1000000}
seconds=${FUZZ_SECONDS:-3600}
fixtures=tests/fixtures

seeds() {
  case "$1" in
    gguf_header) echo "$fixtures"/vocab-*.gguf "$fixtures"/llama3-tiny-q8_0.gguf "$fixtures"/mmproj-tiny.gguf "$fixtures"/kernel-blocks.gguf ;;
    model_load) echo "$fixtures"/llama3-tiny-q8_0.gguf "$fixtures"/mistral-tiny-f16.gguf "$fixtures"/qwen2-tiny-f32.gguf ;;
    tokenizer_gguf) echo "$fixtures"/vocab-*.gguf ;;
    tokenizer_json) echo models/all-MiniLM-L6-v2/tokenizer.json ;;
    chat_template) echo "" ;;
    image) echo "$fixtures"/preprocess-input.png "$fixtures"/shapes-scene-2-3.png ;;
    gbx_index) echo fuzz/seeds/gbx_index/*.gbx ;;
    jsonl_rows) echo tests/data/fmd_claims.jsonl ;;
  esac
}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(gguf_header model_load tokenizer_gguf tokenizer_json chat_template image gbx_index jsonl_rows)
fi

cargo +nightly fuzz build --sanitizer none -O
for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus"
  for seed in $(seeds "$target"); do
    if [ -f "$seed" ]; then cp -n "$seed" "$corpus/seed-$(basename "$seed")"; fi
  done
  if [ "$target" = chat_template ]; then
    # The chat templates of the models glassbox runs, as they appear in their files.
    .venv-reference/bin/python - "$corpus" <<'PY' 2>/dev/null || true
import sys, gguf, glob, os
for path in glob.glob("tests/fixtures/*.gguf") + glob.glob("models/*.gguf"):
    try:
        field = gguf.GGUFReader(path).fields.get("tokenizer.chat_template")
    except Exception:
        continue
    if field is not None:
        text = bytes(field.parts[field.data[0]])
        open(os.path.join(sys.argv[1], "seed-" + os.path.basename(path) + ".jinja"), "wb").write(text)
PY
  fi
  log=fuzz/artifacts/$target.log
  mkdir -p fuzz/artifacts/"$target"
  set +e
  cargo +nightly fuzz run --sanitizer none -O "$target" "$corpus" -- \
    -runs="$runs" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=1 -print_final_stats=1 \
    -artifact_prefix=fuzz/artifacts/"$target"/ >"$log" 2>&1
  status=$?
  set -e
  executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  findings=$(find fuzz/artifacts/"$target" -type f | wc -l)
  echo "| $target | $executions | $coverage | $findings | exit $status |"
done
