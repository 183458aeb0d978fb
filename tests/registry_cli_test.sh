#!/usr/bin/env bash
# registry_cli_test.sh: what the registry keeps and says when things go wrong (issue 22, points 6, 8, 9),
# through the real CLI with real signals: points logged more than about a second before a SIGKILL are
# kept; SIGHUP ends a run as killed; `repro runs` marks a running run whose process is gone as lost;
# a corrupt database says corrupt; runs/show read a read-only registry; --db '' is an error; eval on a
# directory says so; show prints what a shape target checked and no n=? or nan; report shows one
# commit's runs unless asked for all (then grouped by commit).
. "$(dirname "$0")/cli_test_lib.sh"
# wait_for FILE WORD: until WORD shows in FILE (at most 30 s).
wait_for() { for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# 235 points over about 2 s, then computing without logging: a SIGKILL 1.5 s later keeps all 235
# (before the time-based flush, the 8,192-point batch was never reached and none were kept).
cat > "$tmp/slow.lua" <<'LUA'
local experiment = require("repro.experiment")
local function busy(s) local t = os.clock(); while os.clock() - t < s do end end
return experiment.define { name = "slow", run = function(ctx)
  for i = 1, 235 do ctx:log("tick", i, i); busy(0.008) end
  io.stderr:write("ready\n")
  while true do busy(0.01) end
end }
LUA
"$REPRO" run "$tmp/slow.lua" >/dev/null 2>"$tmp/kerr" &
pid=$!
wait_for "$tmp/kerr" ready; sleep 1.5
kill -KILL $pid; wait $pid 2>/dev/null
kid=$(q "select max(id) from runs where experiment='slow'")
kept=$(q "select coalesce(sum(n), 0) from metrics where run_id=$kid")
echo "points kept after SIGKILL: $kept of 235"
case "$REPRO" in
  *luajit*)   # JIT-compiled Lua runs no count hook: points of the last ~0.5 s before a stretch without
              # logging wait for the next log call (known limit, see harness/lua/state.c); the rest are kept
    check "SIGKILL keeps the points logged before the last half second of logging (LuaJIT)" "[ '$kept' -ge 170 ]" ;;
  *) check "SIGKILL keeps the points logged over a second before it" "[ '$kept' = 235 ]" ;;
esac
check "a SIGKILLed run is still recorded running" "[ \"\$(q \"select status from runs where id=$kid\")\" = running ]"
"$REPRO" runs >"$tmp/runs" 2>"$tmp/runs_err"
check "repro runs shows the dead run as lost" "grep -E \"^$kid +slow +lost\" $tmp/runs >/dev/null"
check "repro runs says it marked it" "grep -q 'marked 1 run lost' $tmp/runs_err"
check "lost is stored, with why" "[ \"\$(q \"select status from runs where id=$kid\")\" = lost ] && q \"select error from runs where id=$kid\" | grep -q 'is gone'"
check "--status lost filters" "\"$REPRO\" runs --status lost --json | grep -q '\"id\": $kid'"

# SIGHUP (a closed terminal) ends the run as killed, keeping its points.
"$REPRO" run "$tmp/slow.lua" >/dev/null 2>"$tmp/herr" &
pid=$!
wait_for "$tmp/herr" ready
hid=$(q "select max(id) from runs where experiment='slow'")
check "a live run stays running in repro runs" "\"$REPRO\" runs | grep -E \"^$hid +slow +running\" >/dev/null"
kill -HUP $pid; wait $pid; rc=$?
check "SIGHUP exits 130" "[ $rc -eq 130 ]"
check "SIGHUP: status killed" "[ \"\$(q \"select status from runs where id=$hid\")\" = killed ]"
check "SIGHUP: points kept" "[ \"\$(q \"select sum(n) from metrics where run_id=$hid\")\" = 235 ]"

# show: a shape target says what it checked; no 'nan' and no 'n=?'.
id=$("$REPRO" run experiments/example.lua --preset smoke 2>/dev/null)
"$REPRO" show "$id" >"$tmp/show"
check "show: shape target says whether the claim held" "grep -q \"error shrinks as n^-1/2 *shape: the paper's claim held\" $tmp/show"
check "show: no nan" "! grep -q 'nan' $tmp/show"
check "show: no n=?" "! grep -q 'n=?' $tmp/show"
check "show: an exact target's numbers" "grep -q 'paper 3.14159, reproduced' $tmp/show"

# report: by default the latest commit's runs only; --all-commits shows each commit in its own section.
id2=$("$REPRO" run experiments/example.lua --preset smoke repeats=4 2>/dev/null)   # other params: the old default showed both
q "update runs set git_commit='feedfacefeedfacefeedfacefeedfacefeedface' where id=$id"
"$REPRO" report --out "$tmp/rep/latest.html" >/dev/null 2>&1; rc=$?
check "report: default exits 0" "[ $rc -eq 0 ]"
check "report: default shows only the latest commit's run" "grep -q 'run $id2 ·' $tmp/rep/latest.html && ! grep -q 'run $id ·' $tmp/rep/latest.html"
check "report: says which commit" "grep -q 'latest commit with finished runs' $tmp/rep/latest.md"
"$REPRO" report --all-commits --out "$tmp/rep/all.html" >/dev/null 2>&1
check "report --all-commits: both runs, grouped by commit" "grep -q 'run $id ·' $tmp/rep/all.html && grep -q 'run $id2 ·' $tmp/rep/all.html && [ \"\$(grep -c '^## commit' $tmp/rep/all.md)\" -eq 2 ]"
"$REPRO" report --commit feedface --out "$tmp/rep/old.html" >/dev/null 2>&1
check "report --commit C: that commit's run" "grep -q 'run $id ·' $tmp/rep/old.html && ! grep -q 'run $id2 ·' $tmp/rep/old.html"
check "report: a shape target says whether its claim held" "grep -q 'shape: the claim held' $tmp/rep/latest.md"

# --db '' is an error, never the default database.
for cmd in runs "show 1" report plot\ 1 "compare A B"; do
  # shellcheck disable=SC2086
  "$REPRO" $cmd --db '' >/dev/null 2>"$tmp/err"; rc=$?
  check "repro $cmd --db '': exit 2" "[ $rc -eq 2 ] && grep -q \"database path is empty\" $tmp/err"
done
"$REPRO" run experiments/example.lua --db '' >/dev/null 2>"$tmp/err"; rc=$?
check "repro run --db '': exit 2" "[ $rc -eq 2 ] && grep -q 'database path is empty' $tmp/err"
"$REPRO" runs --db "$tmp" >/dev/null 2>"$tmp/err"; rc=$?
check "--db DIR says directory" "[ $rc -eq 2 ] && grep -q 'is a directory' $tmp/err"

# repro eval DIR says the model is a directory.
"$REPRO" eval "$tmp" arc_easy --no-record >/dev/null 2>"$tmp/err"; rc=$?
check "eval DIR: says directory" "[ $rc -ne 0 ] && grep -q 'is a directory' $tmp/err && ! grep -q \"asset ''\" $tmp/err"

# A damaged runs page (rows read as missing): show says corrupt, not "no run with id".
cp "$REPRO_DB" "$tmp/corrupt.db"
page=$(sqlite3 "$tmp/corrupt.db" "select rootpage from sqlite_master where name='runs'")
psize=$(sqlite3 "$tmp/corrupt.db" "pragma page_size")
python3 - "$tmp/corrupt.db" "$page" "$psize" <<'PY'
import sys
path, page, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:            # an empty table-leaf page where the runs were
    f.seek((page - 1) * size); f.write(b"\x0d" + b"\x00" * (size - 1))
PY
"$REPRO" show 1 --db "$tmp/corrupt.db" >/dev/null 2>"$tmp/err"; rc=$?
check "corrupt: show says corrupt (exit 3)" "[ $rc -eq 3 ] && grep -q 'corrupt' $tmp/err && ! grep -q 'no run with id' $tmp/err"

# A read-only registry file, and one in a read-only folder: runs and show read it (as a user who
# cannot write; root can write anything, so as root the check runs as nobody).
mkdir -p "$tmp/ro/dir"
cp "$REPRO_DB" "$tmp/ro/file.db"; cp "$REPRO_DB" "$tmp/ro/dir/repro.db"
chmod 444 "$tmp/ro/file.db" "$tmp/ro/dir/repro.db"; chmod 555 "$tmp/ro/dir"; chmod 755 "$tmp" "$tmp/ro"
as_reader=""
if [ "$(id -u)" = 0 ]; then
  if command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups "$REPRO" --help >/dev/null 2>&1; then
    as_reader="setpriv --reuid=65534 --regid=65534 --clear-groups"
  else
    echo "skip: read-only registry checks (root, and no user that can run $REPRO)"
  fi
fi
if [ "$(id -u)" != 0 ] || [ -n "$as_reader" ]; then
  for db in "$tmp/ro/file.db" "$tmp/ro/dir/repro.db"; do
    $as_reader "$REPRO" runs --db "$db" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "runs on read-only $db" "[ $rc -eq 0 ] && grep -q example_pi $tmp/out"
    $as_reader "$REPRO" show "$id" --db "$db" >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "show on read-only $db" "[ $rc -eq 0 ] && grep -q example_pi $tmp/out"
  done
fi

echo "registry_cli_test: $((checks-fails))/$checks checks passed"
[ "$fails" -eq 0 ]
