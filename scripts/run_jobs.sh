#!/usr/bin/env bash
# Runs `gfn train` jobs read from stdin, JOBS at a time (default 2): each line is
#   OUT_DIR CONFIG [ARGUMENTS ...]      (whitespace separates the words; none may contain any)
# A finished job (OUT_DIR/log.h5, and OUT_DIR.out ending with the run's summary) is skipped, so an
# interrupted comparison resumes where it stopped; each job's console output goes to OUT_DIR.out.
# Used by scripts/*_comparison.sh.
set -euo pipefail
export GFN=${GFN:-build/bin/gfn}
job() {
  local dir=$1 config=$2
  shift 2
  if [ -f "$dir/log.h5" ] && { [ ! -e "$dir.out" ] || grep -q '^run ' "$dir.out"; }; then
    echo "skip $dir (done)"
    return 0
  fi
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  if "$GFN" train "$config" --out "$dir" "$@" > "$dir.out" 2>&1; then echo "done $dir"; else echo "FAILED $dir (see $dir.out)"; fi
}
export -f job
xargs -P "${JOBS:-2}" -L 1 bash -c 'job "$@"' _
