#!/usr/bin/env bash
# run_all.sh BUILD REPRO: every benchmark (what `make bench` runs): the compiled bench programs in
# BUILD/bench, then the bench/*.sh scripts with REPRO. Each prints its figures and ratios against
# references measured in the same run or named in its output.
set -u
build=$1; repro=$2
for b in "$build"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b" || echo "(exit $?)"
done
for s in bench/bench_*.sh; do
  [ -f "$s" ] || continue
  echo "== $(basename "$s")"
  bash "$s" "$repro" || echo "(exit $?)"
done
