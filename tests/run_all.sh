#!/usr/bin/env bash
# run_all.sh BUILD REPRO: the whole test suite (what `make test` runs): every C test binary, every fuzz
# target over its kept corpus and crashers, every Lua test through the host, every tests/*_test.sh.
# Skips are counted, never silent: a test that cannot check something prints a line
#   skip: REASON             (a tool or condition is missing), or
#   skip [mirror]: REASON    (a data-mirror asset or reference file is missing), or
#   skip [gpu]: REASON       (no GPU at run time, or a build without CUDA: never counted as passed)
# and the runner lists every reason at the end. With REPRO_REQUIRE_MIRROR=1 (CI) a [mirror] skip fails the
# program that printed it. The last line is exactly "N passed, N failed, N skipped" (test programs passed,
# test programs failed, checks skipped), which CI tooling parses; before it, the slowest programs' wall
# times (CI runs the suite three times within its budget). Exits non-zero on any failure.
set -u
build=$1; repro=$2
passed=0; failed=0; skipped=0
skips=""
times=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# run NAME CMD...: run one test program, show its output, count it and its skips.
run() {
  local name=$1; shift
  local t0=$SECONDS
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  times="$times$((SECONDS - t0)) $name"$'\n'
  local s mirror_skips=0
  while IFS= read -r s; do
    skipped=$((skipped+1))
    skips="$skips  $name: $s"$'\n'
    case "$s" in "skip [mirror]:"*) mirror_skips=$((mirror_skips+1));; esac
  done < <(grep -E '^skip( \[(mirror|gpu)\])?: ' "$log")
  if [ "$rc" -eq 0 ] && [ "${REPRO_REQUIRE_MIRROR:-0}" = 1 ] && [ "$mirror_skips" -gt 0 ]; then
    echo "FAILED: $name skipped $mirror_skips check(s) for a missing mirror asset (REPRO_REQUIRE_MIRROR=1)"
    rc=1
  elif [ "$rc" -ne 0 ]; then
    echo "FAILED: $name (exit $rc)"
  fi
  if [ "$rc" -eq 0 ]; then passed=$((passed+1)); else failed=$((failed+1)); fi
}

for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  run "$t" "$t"
done
for f in "$build"/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f"); name=${name#fuzz_}
  files=$(find tests/fuzz/corpus/"$name" tests/fuzz/crashers -type f -name "*" 2>/dev/null | grep -E "corpus/$name/|crashers/$name-" || true)
  # shellcheck disable=SC2086
  run "fuzz replay $name" bash -c '"$0" "$@" >/dev/null && echo "ok fuzz replay '"$name"'"' "$f" $files
done
for t in tests/*_test.lua; do
  [ -f "$t" ] || continue
  run "$t" "$repro" exec "$t"
done
for t in tests/*_test.sh; do
  [ -f "$t" ] || continue
  run "$t" env REPRO="$repro" bash "$t"
done
echo "== slowest test programs (seconds) =="
printf '%s' "$times" | sort -rn | head -8
if [ "$skipped" -gt 0 ]; then
  echo "== skipped checks and why =="
  printf '%s' "$skips"
fi
echo "== $passed of $((passed+failed)) test programs passed =="
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
