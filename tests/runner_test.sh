#!/usr/bin/env bash
# runner_test.sh: tests/run_all.sh (what `make test` runs) counts and explains its skips: on a planted
# suite of one passing, one skipping (a tool), one skipping (a mirror asset) and one failing program, it
# ends with "N passed, N failed, N skipped" alone on the last line, lists each skip's reason, exits
# non-zero on the failure, and under REPRO_REQUIRE_MIRROR=1 counts the mirror skip as a failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$here/check.sh"

mkdir -p "$tmp/build/tests" "$tmp/tests"
cd "$tmp"
mk() { printf '#!/bin/sh\n%s\n' "$2" > "$1"; chmod +x "$1"; }
# (out1 and out2 without REPRO_REQUIRE_MIRROR, whatever the caller set: CI sets it)
mk build/tests/test_a 'echo "ok a: 3 checks, 0 failed"'
mk build/tests/test_b 'echo "skip: gnuplot is not installed"; echo "ok b"'
mk build/tests/test_c 'echo "skip [mirror]: stories260K.bin not in REPRO_MIRROR"; echo "ok c"'
printf 'echo "not ok d"; exit 3\n' > tests/d_test.sh

REPRO_REQUIRE_MIRROR=0 bash "$here/run_all.sh" build /bin/false > out1 2>&1; rc1=$?
check "a failing program makes the run fail" "[ $rc1 -ne 0 ]"
check "closing line counts programs and skips" "[ \"\$(tail -n 1 out1)\" = '3 passed, 1 failed, 2 skipped' ]"
check "each skip's reason is listed" "grep -q 'test_b: skip: gnuplot is not installed' out1 && grep -q 'test_c: skip \[mirror\]: stories260K.bin' out1"
check "the failure is named" "grep -q 'FAILED: tests/d_test.sh (exit 3)' out1"

rm tests/d_test.sh
REPRO_REQUIRE_MIRROR=0 bash "$here/run_all.sh" build /bin/false > out2 2>&1; rc2=$?
check "skips alone pass" "[ $rc2 -eq 0 ] && [ \"\$(tail -n 1 out2)\" = '3 passed, 0 failed, 2 skipped' ]"
REPRO_REQUIRE_MIRROR=1 bash "$here/run_all.sh" build /bin/false > out3 2>&1; rc3=$?
check "REPRO_REQUIRE_MIRROR=1: a mirror skip fails, a tool skip does not" \
  "[ $rc3 -ne 0 ] && [ \"\$(tail -n 1 out3)\" = '2 passed, 1 failed, 2 skipped' ] && grep -q 'FAILED: build/tests/test_c skipped 1 check' out3"
[ $fails -eq 0 ] || { echo "--- runner output:"; cat out1 out3; } >&2
checks_done runner_test.sh
