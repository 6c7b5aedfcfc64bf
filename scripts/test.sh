#!/usr/bin/env bash
# `make test`. The native tests, the wasm build (which lints the crate for wasm32 as it compiles
# it) and the browser tests run one after another, each keeping the cores busy most of the time.
# The native lints (rustfmt; clippy with every feature, whose CUDA kernels nvcc compiles for
# minutes) run beside them from the start at the lowest CPU priority, so they take the cycles the
# others leave idle (single-crate compiles, links, waits on the browser) instead of a phase of
# their own. Each phase's wall time goes to .tools/phase-times, printed at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools
rm -f .tools/phase-times
lint_log=.tools/native-lint.log

# Its own process group (job control on), so that a failure elsewhere stops cargo and nvcc with
# it; not its own session: Linux's autogroup scheduler shares the CPU equally between sessions
# whatever their nice values, so a session of its own would take half the cores.
set -m
nice -n 19 scripts/phase.sh "native lint" make --no-print-directory fmt-check check-cuda >"$lint_log" 2>&1 &
lint=$!
set +m
trap 'kill -TERM -- "-$lint" 2>/dev/null' EXIT

scripts/phase.sh "native tests" make --no-print-directory native-build test-native &&
  WASM_LINT=1 scripts/phase.sh "wasm build+lint" make --no-print-directory WASM_PROFILE=dev web &&
  scripts/phase.sh "browser tests" make --no-print-directory WASM_PROFILE=dev browser-tests
status=$?

if [ "$status" = 0 ]; then
  echo "make test: waiting for the native lints (running since the start; log: $lint_log)"
  wait "$lint"
  status=$?
  trap - EXIT
fi
echo "---- native lints (rustfmt, clippy --features cuda,webgpu,lab) ----"
cat "$lint_log"
echo "make test: phase times (the native lints ran beside the others, at low priority)"
cat .tools/phase-times
exit "$status"
