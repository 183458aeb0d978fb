#!/usr/bin/env bash
# sweep_test.sh: `repro sweep` with the local runner and `repro merge`, through the CLI with real
# processes and real signals: ranges and points files, resources in --list-params, resume (finished
# points skipped, --force), --status (text and JSON), a failing point that does not stop the others,
# a worker killed with SIGKILL, the sweep itself killed with SIGTERM (nothing finished is lost and a
# re-run finishes only what is missing), and merging task registries (idempotent, half-written and
# corrupt files refused, every metric point carried bit for bit).
set -u
REPRO=${REPRO:-bin/repro}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; checks=0
check() { checks=$((checks+1)); if eval "$2"; then :; else echo "FAIL: $1"; fails=$((fails+1)); fi; }
q() { sqlite3 "$db" "$1"; }
fx=tests/runners/hold.lua
db=$tmp/r.db
# Wait (up to 30 s) until the SQL condition holds.
wait_for() { for _ in $(seq 300); do [ "$(q "$1")" = 1 ] && return 0; sleep 0.1; done; return 1; }

check "--list-params shows resources" "$REPRO run $fx --list-params | grep -q 'resources: threads 1, memory 256M, gpu 0, time 5 min'"
check "bad resources are refused" "! $REPRO exec /dev/stdin <<<'require(\"repro.experiment\").define{name=\"x\", run=function() end, resources={threads=0}}' 2>$tmp/err && grep -q 'resources.threads' $tmp/err"

# Ranges and a points file: 2 lines x value=1..3 -> 6 points, seeds from the file.
printf '# seed per line\nseed=1\nseed=2 fail=false\n' > "$tmp/points"
id=$("$REPRO" sweep $fx --db "$db" --jobs 2 --points "$tmp/points" value=1..3 2>"$tmp/err"); rc=$?
check "points file x range runs 6 points" "[ $rc = 0 ] && [ \"\$(q \"select count(*) from runs where status='finished' and sweep_id=$id\")\" = 6 ]"
check "seeds come from the points file" "[ \"\$(q \"select group_concat(distinct seed) from (select seed from runs order by seed)\")\" = 1,2 ]"
check "runs are tagged with sweep and point" "[ \"\$(q \"select count(distinct sweep_point) from runs where sweep_id=$id\")\" = 6 ]"
check "every run has a uuid" "[ \"\$(q \"select count(distinct uuid) from runs where length(uuid)=32\")\" = 6 ]"
check "a bad range is a usage error" "$REPRO sweep $fx --db $db value=3..1 2>$tmp/err; [ \$? = 2 ] && grep -q 'value=3..1' $tmp/err"
check "a bad param names the point" "$REPRO sweep $fx --db $db value=1,x 2>$tmp/err; [ \$? = 2 ] && grep -q \"point 1: param 'value'\" $tmp/err"

# Resume: the same sweep again runs nothing; --force runs everything again.
id2=$("$REPRO" sweep $fx --db "$db" --jobs 2 --points "$tmp/points" value=1..3 2>"$tmp/err"); rc=$?
check "re-run skips finished points" "[ $rc = 0 ] && [ \"\$(q 'select count(*) from runs')\" = 6 ] && grep -q '6 already finished' $tmp/err"
check "--status: all finished, exit 0" "$REPRO sweep --status $id2 --db $db >$tmp/st && grep -q '6 points: 6 finished' $tmp/st"
"$REPRO" sweep --status $id2 --db "$db" --json > "$tmp/st.json"
check "--status --json" "[ \"\$(sqlite3 :memory: \"select json_extract(readfile('$tmp/st.json'), '\$.sweep.id') || '/' || (select count(*) from json_each(readfile('$tmp/st.json'), '\$.points') where json_extract(value, '\$.status') = 'finished')\")\" = $id2/6 ]"
"$REPRO" sweep $fx --db "$db" --force value=1 >/dev/null 2>&1
check "--force runs a finished point again" "[ \"\$(q \"select count(*) from runs where json_extract(params_json,'\$.value')=1 and seed=1\")\" = 2 ]"

# A failing point does not stop the others; the sweep exits 1 and says which point failed.
"$REPRO" sweep $fx --db "$db" --jobs 1 value=7 fail=true,false >/dev/null 2>"$tmp/err"; rc=$?
check "failed point: exit 1, others finish" "[ $rc = 1 ] && [ \"\$(q \"select group_concat(status) from (select status from runs where json_extract(params_json,'\$.value')=7 order by id)\")\" = failed,finished ]"
check "failed point is reported with its log" "grep -q 'point 0 failed (exit 1): .*failing on purpose' $tmp/err"

# Kill a worker with SIGKILL: its run ends 'killed', the other points finish, a re-run runs only it.
touch "$tmp/hold"
"$REPRO" sweep $fx --db "$db" --jobs 2 value=11,12,13 hold="$tmp/hold" >/dev/null 2>"$tmp/err" & sp=$!
wait_for "select count(*)=2 from runs where status='running' and json_extract(params_json,'\$.value') between 11 and 13"
victim=$(q "select pid from runs where status='running' and json_extract(params_json,'\$.value')=11")
check "a worker of point 0 runs" "[ -n \"$victim\" ]"
kill -KILL "$victim"; sleep 0.3; rm -f "$tmp/hold"
wait $sp; rc=$?
check "killed worker: sweep exits 1" "[ $rc = 1 ]"
check "killed worker: its run is marked killed" "[ \"\$(q \"select status || ':' || (error like '%signal 9%') from runs where pid=$victim\")\" = killed:1 ]"
check "killed worker: other points finished" "[ \"\$(q \"select count(*) from runs where status='finished' and json_extract(params_json,'\$.value') between 11 and 13\")\" = 2 ]"
before=$(q "select count(*) from runs")
"$REPRO" sweep $fx --db "$db" --jobs 2 value=11,12,13 hold="$tmp/hold" >/dev/null 2>&1; rc=$?
check "re-run after a killed worker runs only the missing point" "[ $rc = 0 ] && [ \$(q 'select count(*) from runs') = \$((before+1)) ]"

# Kill the sweep itself (SIGTERM) while point 0 runs and points 1-2 wait: the running run ends killed,
# the unstarted points are marked killed, what finished stays; a re-run finishes exactly the rest.
"$REPRO" sweep $fx --db "$db" --jobs 1 value=21 hold="$tmp/hold2" >/dev/null 2>&1   # point 0 of the next sweep, done
touch "$tmp/hold2"
"$REPRO" sweep $fx --db "$db" --jobs 1 value=21,22,23,24 hold="$tmp/hold2" >/dev/null 2>&1 & sp=$!
check "first point finished before the kill" "wait_for \"select count(*)=1 from runs where status='running' and json_extract(params_json,'\$.value')=22\""
sid=$(q "select max(id) from sweeps")
kill -TERM $sp; wait $sp; rc=$?; rm -f "$tmp/hold2"
check "killed sweep exits 130" "[ $rc = 130 ]"
check "killed sweep: running run ended killed" "[ \"\$(q \"select status from runs where json_extract(params_json,'\$.value')=22\")\" = killed ]"
"$REPRO" sweep --status $sid --db "$db" >"$tmp/st"; rc=$?
check "killed sweep: --status shows finished/killed, exit 1" "[ $rc = 1 ] && grep -q '4 points: 1 finished, 0 failed, 3 killed' $tmp/st"
"$REPRO" sweep $fx --db "$db" --jobs 1 value=21,22,23,24 hold="$tmp/hold2" >/dev/null 2>"$tmp/err"; rc=$?
check "re-run after a killed sweep finishes only the missing 3" "[ $rc = 0 ] && grep -q '4 points, 1 already finished, 3 to run' $tmp/err && [ \"\$(q \"select count(*) from runs where status='finished' and json_extract(params_json,'\$.value') between 21 and 24\")\" = 4 ]"

# Merge: task registries into a fresh main registry; again (idempotent); half-written and corrupt refused.
mkdir -p "$tmp/tasks"
for i in 1 2 3; do "$REPRO" run $fx --seed $i value=$i --db "$tmp/tasks/task-$i.db" >/dev/null 2>&1; done
main=$tmp/main.db
"$REPRO" merge "$tmp/tasks" --db "$main" >"$tmp/out"; rc=$?
check "merge: 3 runs added" "[ $rc = 0 ] && [ \"\$(sqlite3 $main 'select count(*) from runs')\" = 3 ] && grep -q '3 runs added' $tmp/out"
for i in 1 2 3; do
  u=$(sqlite3 "$tmp/tasks/task-$i.db" "select uuid from runs")
  a=$(sqlite3 "$tmp/tasks/task-$i.db" "select hex(m.steps)||hex(m.vals)||n.name from metrics m join metric_names n on n.id=m.name_id")
  b=$(sqlite3 "$main" "select hex(m.steps)||hex(m.vals)||n.name from metrics m join metric_names n on n.id=m.name_id join runs r on r.id=m.run_id where r.uuid='$u'")
  check "merge: run $i's metric points bit for bit" "[ -n \"$a\" ] && [ \"$a\" = \"$b\" ]"
done
check "merge: summaries follow their runs" "[ \"\$(sqlite3 $main 'select group_concat(s.value) from (select s.value from summaries s join runs r on r.id=s.run_id order by r.seed) s')\" = 1.0,2.0,3.0 ]"
"$REPRO" merge "$tmp/tasks" --db "$main" --json >"$tmp/out"; rc=$?
check "merge again adds nothing" "[ $rc = 0 ] && [ \"\$(sqlite3 $main 'select count(*) from runs')\" = 3 ] && [ \"\$(sqlite3 :memory: \"select json_extract(readfile('$tmp/out'), '\$.runs_added') || '/' || json_extract(readfile('$tmp/out'), '\$.runs_skipped')\")\" = 0/3 ]"
"$REPRO" run $fx --seed 9 --db "$tmp/tasks/task-4.db" >/dev/null 2>&1
sqlite3 "$tmp/tasks/task-4.db" "update runs set status='running'"
head -c 8192 /dev/urandom > "$tmp/tasks/task-5.db"
"$REPRO" run $fx --seed 6 --db "$tmp/tasks/task-6.db" >/dev/null 2>&1
"$REPRO" merge "$tmp/tasks" --db "$main" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "merge: half-written file reported, not merged" "[ $rc = 1 ] && grep -q 'task-4.db: half-written' $tmp/err && [ \"\$(sqlite3 $main 'select count(*) from runs where seed=9')\" = 0 ]"
check "merge: corrupt file reported" "grep -q 'task-5.db' $tmp/err"
check "merge: the good file beside them merged" "[ \"\$(sqlite3 $main 'select count(*) from runs where seed=6')\" = 1 ]"

echo "$([ $fails = 0 ] && echo ok || echo 'not ok') sweep_test: $checks checks, $fails failed"
[ $fails = 0 ]
