#!/usr/bin/env bash
# run_all.sh BUILD REPRO: the whole test suite (what `make test` runs): every C test binary, every fuzz
# target over its kept corpus and crashers, every Lua test through the host. Exits non-zero on any failure.
set -u
build=$1; repro=$2
fail=0; n=0
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  n=$((n+1))
  if ! "$t"; then echo "FAILED: $t"; fail=$((fail+1)); fi
done
for f in "$build"/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f"); name=${name#fuzz_}
  files=$(find tests/fuzz/corpus/"$name" tests/fuzz/crashers -type f -name "*" 2>/dev/null | grep -E "corpus/$name/|crashers/$name-" || true)
  n=$((n+1))
  # shellcheck disable=SC2086
  if ! "$f" $files >/dev/null; then echo "FAILED: fuzz replay $name"; fail=$((fail+1)); else echo "ok fuzz replay $name"; fi
done
for t in tests/*_test.lua; do
  [ -f "$t" ] || continue
  n=$((n+1))
  if ! "$repro" exec "$t"; then echo "FAILED: $t"; fail=$((fail+1)); fi
done
for t in tests/*_test.sh; do
  [ -f "$t" ] || continue
  n=$((n+1))
  if ! REPRO="$repro" bash "$t"; then echo "FAILED: $t"; fail=$((fail+1)); fi
done
echo "== $((n-fail))/$n test programs passed =="
[ "$fail" -eq 0 ]
