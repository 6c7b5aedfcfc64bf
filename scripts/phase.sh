#!/usr/bin/env bash
# Runs a command as one named phase of `make test` and appends its wall time to
# .tools/phase-times, which `.ci/run` prints at its end.
# Usage: scripts/phase.sh NAME COMMAND [ARGS...]
set -uo pipefail
name="$1"
shift
mkdir -p .tools
start=$(date +%s)
"$@"
status=$?
printf '%-16s %5d s%s\n' "$name" $(( $(date +%s) - start )) "$([ $status = 0 ] || echo "  (failed: $status)")" >> .tools/phase-times
exit $status
