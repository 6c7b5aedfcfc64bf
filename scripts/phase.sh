#!/usr/bin/env bash
# Runs a command as one named phase of `make test` and appends its wall time to $PHASE_TIMES
# (default .tools/phase-times), which `make test` and `.ci/run` print at their end.
# Usage: scripts/phase.sh NAME COMMAND [ARGS...]
set -uo pipefail
name="$1"
shift
times="${PHASE_TIMES:-.tools/phase-times}"
mkdir -p "$(dirname "$times")"
start=$(date +%s)
"$@"
status=$?
printf '%-16s %5d s%s\n' "$name" $(( $(date +%s) - start )) "$([ $status = 0 ] || echo "  (failed: $status)")" >> "$times"
exit $status
