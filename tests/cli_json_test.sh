#!/usr/bin/env bash
# cli_json_test.sh: the user-facing contract of the registry and asset commands (runs, show, plot,
# report, compare, fetch): --help prints usage and exits 0, an unknown option exits 2 naming the option,
# every --json output parses as JSON (checked by python3's json module, an independent parser), and a
# missing database or an unknown run id exits non-zero with a message naming the path or the id.
set -u
REPRO=${REPRO:-bin/repro}
tmp=$(mktemp -d /tmp/repro-cli-json-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$1"; then :; else echo "FAIL cli_json_test: $2"; fail=1; fi; }
# Strict: NaN and Infinity (which python's json accepts by default) are not JSON.
valid_json() {
  python3 -c 'import json,sys
def bad(c): raise ValueError("not JSON: " + c)
json.load(sys.stdin, parse_constant=bad)' <"$1" 2>"$tmp/json.err"
}
have_python=1
command -v python3 >/dev/null || { have_python=0; echo "skip: python3 not installed: JSON validity not checked"; }

for cmd in runs show plot report compare fetch; do
  "$REPRO" "$cmd" --help >"$tmp/help.out" 2>&1
  check '[ $? -eq 0 ] && grep -q "usage: repro $cmd" "$tmp/help.out"' "repro $cmd --help: no usage or non-zero exit"
  "$REPRO" "$cmd" --no-such-option 1 2 >"$tmp/bad.out" 2>"$tmp/bad.err"
  code=$?
  check '[ $code -eq 2 ] && grep -q -- "--no-such-option" "$tmp/bad.err"' \
        "repro $cmd --no-such-option: exit $code (want 2), stderr: $(head -c 300 "$tmp/bad.err")"
done

# An option that needs a value, given last: exit 2 saying so.
for cmd in "runs --limit" "show 1 --db" "plot 1 --out" "report --out" "compare A B --threshold"; do
  "$REPRO" $cmd >/dev/null 2>"$tmp/val.err"
  code=$?
  check '[ $code -eq 2 ] && grep -q "option .${cmd##* }. needs a value" "$tmp/val.err"' \
        "repro $cmd: exit $code (want 2), stderr: $(head -c 300 "$tmp/val.err")"
done

# A missing database: exit 4 and the path in the message.
missing=$tmp/nowhere/repro.db
for cmd in "runs" "show 1" "plot 1" "report" "compare HEAD HEAD"; do
  "$REPRO" $cmd --db "$missing" >/dev/null 2>"$tmp/miss.err"
  code=$?
  check '[ $code -eq 4 ] && grep -q "$missing" "$tmp/miss.err"' \
        "repro $cmd on a missing database: exit $code (want 4), stderr: $(head -c 300 "$tmp/miss.err")"
done

db=$tmp/repro.db
"$REPRO" run experiments/example.lua --preset smoke --db "$db" >"$tmp/run.log" 2>&1
check '[ $? -eq 0 ]' "repro run experiments/example.lua failed: $(tail -3 "$tmp/run.log")"

# An unknown run id: exit 4 and the id in the message.
for cmd in show plot; do
  "$REPRO" $cmd 999 --db "$db" >/dev/null 2>"$tmp/unk.err"
  code=$?
  check '[ $code -eq 4 ] && grep -q "999" "$tmp/unk.err"' \
        "repro $cmd 999: exit $code (want 4), stderr: $(head -c 300 "$tmp/unk.err")"
done
"$REPRO" show abc --db "$db" >/dev/null 2>"$tmp/unk.err"
check '[ $? -eq 2 ] && grep -q "abc" "$tmp/unk.err"' "repro show abc: want exit 2 naming 'abc'"

# Every --json output is valid JSON.
if [ $have_python -eq 1 ]; then
  commit=$(git rev-parse HEAD 2>/dev/null || echo HEAD)
  n=0
  while IFS= read -r line; do
    n=$((n + 1))
    out=$tmp/json-$n.out
    eval "\"\$REPRO\" $line" >"$out" 2>"$tmp/json-$n.err"
    code=$?
    valid_json "$out"; ok=$?
    check '[ $code -le 1 ] && [ $ok -eq 0 ]' \
          "repro $line: exit $code, JSON: $(tail -1 "$tmp/json.err") in: $(head -c 200 "$out")"
  done <<EOF
runs --json --db "$db"
runs --json --db "$db" --status failed
show 1 --json --db "$db"
compare $commit $commit --json --db "$db"
fetch --list --json
EOF
  # fetch of an unknown asset still prints a JSON document (with the error) and exits non-zero.
  "$REPRO" fetch no-such-asset --json >"$tmp/fetch.out" 2>/dev/null
  code=$?
  check '[ $code -ne 0 ] && valid_json "$tmp/fetch.out" && grep -q "no-such-asset" "$tmp/fetch.out"' \
        "repro fetch no-such-asset --json: exit $code, output $(head -c 200 "$tmp/fetch.out")"
fi

[ $fail -eq 0 ] && echo "ok cli_json_test"
exit $fail
