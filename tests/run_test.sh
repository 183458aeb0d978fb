#!/usr/bin/env bash
# run_test.sh: the run lifecycle through the real CLI (design.md §2): a finished run with its metrics,
# figures and targets; bad params, missing scripts and syntax errors record nothing and exit 2;
# a Lua error marks the run failed with file:line and a traceback; SIGTERM marks it killed and keeps
# what was logged; 4 concurrent writers lose no row; a corrupt database and a read-only results folder
# get clear errors; without gnuplot the run is still recorded and the figure marked not rendered.
. "$(dirname "$0")/cli_test_lib.sh"

# A finished run of the example.
id=$("$REPRO" run experiments/example.lua --preset smoke 2>"$tmp/err")
check "example finishes (exit 0)" "[ $? -eq 0 ] && [ -n '$id' ]"
check "status finished" "[ \"\$(q \"select status from runs where id=$id\")\" = finished ]"
check "metrics recorded" "[ \"\$(q \"select sum(n) from metrics where run_id=$id\")\" -gt 10 ]"
check "targets recorded" "[ \"\$(q \"select count(*) from targets where run_id=$id\")\" -eq 4 ]"
check "commit recorded" "[ \"\$(q \"select length(git_commit) from runs where id=$id\")\" -ge 7 ]"
check "figures written" "ls $tmp/results/figures/example_pi/run-$id/rmse.gp >/dev/null 2>&1"
# Same seed, same numbers; another seed, other numbers.
id2=$("$REPRO" run experiments/example.lua --preset smoke 2>/dev/null)
id3=$("$REPRO" run experiments/example.lua --preset smoke --seed 7 2>/dev/null)
s() { q "select value from summaries where run_id=$1 and name='convergence_slope'"; }
check "seeded runs repeat" "[ \"\$(s $id)\" = \"\$(s $id2)\" ] && [ -n \"\$(s $id)\" ]"
check "other seed differs" "[ \"\$(s $id)\" != \"\$(s $id3)\" ]"

# Bad inputs: exit 2, clear message, nothing recorded.
before=$(q "select count(*) from runs")
"$REPRO" run experiments/example.lua nn=3 2>"$tmp/err"; rc=$?
check "unknown param exit 2" "[ $rc -eq 2 ]"
check "unknown param lists valid ones" "grep -q \"unknown param 'nn'\" $tmp/err && grep -q 'repeats (integer' $tmp/err"
"$REPRO" run experiments/example.lua n=abc 2>"$tmp/err"; rc=$?
check "wrong type exit 2" "[ $rc -eq 2 ] && grep -q 'expects an integer' $tmp/err"
"$REPRO" run "$tmp/missing.lua" 2>"$tmp/err"; rc=$?
check "missing script" "[ $rc -eq 2 ] && grep -q 'cannot open script' $tmp/err"
printf 'local x = \nreturn {' > "$tmp/syntax.lua"
"$REPRO" run "$tmp/syntax.lua" 2>"$tmp/err"; rc=$?
check "syntax error names file:line" "[ $rc -eq 2 ] && grep -q 'syntax.lua:2' $tmp/err"
check "bad inputs record nothing" "[ \"\$(q 'select count(*) from runs')\" = $before ]"

# A Lua error: failed, with the error and a traceback naming file:line; logged metrics kept.
cat > "$tmp/boom.lua" <<'EOF'
local experiment = require("repro.experiment")
return experiment.define { name = "boom", run = function(ctx)
  for i = 1, 100 do ctx:log("x", i, i * 0.5) end
  local t = nil
  return t.field
end }
EOF
fid=$("$REPRO" run "$tmp/boom.lua" 2>"$tmp/err"); rc=$?
check "failed run exits 1" "[ $rc -eq 1 ]"
check "failed status" "[ \"\$(q \"select status from runs where id=$fid\")\" = failed ]"
check "error has file:line" "q \"select error from runs where id=$fid\" | grep -q 'boom.lua:5'"
check "traceback kept" "q \"select traceback from runs where id=$fid\" | grep -q 'stack traceback'"
check "metrics before the error kept" "[ \"\$(q \"select sum(n) from metrics where run_id=$fid\")\" = 100 ]"

# SIGTERM: killed, metrics logged before the signal kept.
cat > "$tmp/slow.lua" <<'EOF'
local experiment = require("repro.experiment")
return experiment.define { name = "slow", run = function(ctx)
  local i = 0
  while true do i = i + 1; ctx:log("tick", i, i); if i == 50 then io.stderr:write("ready\n") end end
end }
EOF
"$REPRO" run "$tmp/slow.lua" >"$tmp/kid" 2>"$tmp/kerr" &
pid=$!
# (wait up to 60 s for the run to start: under ASan on a loaded 2-core machine start-up alone can pass 5 s)
for _ in $(seq 600); do grep -q ready "$tmp/kerr" 2>/dev/null && break; sleep 0.1; done
kill -TERM $pid; wait $pid; rc=$?
kid=$(q "select max(id) from runs where experiment='slow'")
check "killed exit 130" "[ $rc -eq 130 ]"
check "killed status" "[ \"\$(q \"select status from runs where id=$kid\")\" = killed ]"
check "metrics before the signal kept" "[ \"\$(q \"select sum(n) from metrics where run_id=$kid\")\" -ge 50 ]"

# repro eval stops between items on SIGINT and records the run as killed.
if [ -n "${REPRO_MIRROR:-}" ] && [ -f "$REPRO_MIRROR/stories260K/stories260K.bin" ]; then
  "$REPRO" eval stories260K hellaswag --limit 5000 >/dev/null 2>"$tmp/eerr" &
  pid=$!
  for _ in $(seq 600); do [ "$(q "select count(*) from runs where experiment='eval' and status='running'")" = 1 ] && break; sleep 0.1; done
  sleep 1; kill -INT $pid; wait $pid; rc=$?
  check "eval interrupted exits 130" "[ $rc -eq 130 ]"
  check "eval run recorded as killed" "[ \"\$(q \"select status from runs where experiment='eval' order by id desc limit 1\")\" = killed ]"
fi

# Four concurrent writers into one database: no row lost.
cat > "$tmp/writer.lua" <<'EOF'
local experiment = require("repro.experiment")
return experiment.define { name = "writer", params = { k = { type = "integer", default = 0 } }, run = function(ctx, p)
  for i = 1, 20000 do ctx:log("w", i, p.k) end
  ctx:summary("done", 1)
end }
EOF
for k in 1 2 3 4 5 6; do "$REPRO" run "$tmp/writer.lua" k=$k >/dev/null 2>&1 & done
wait
check "6 writers all finished" "[ \"\$(q \"select count(*) from runs where experiment='writer' and status='finished'\")\" = 6 ]"
check "no metric row lost" "[ \"\$(q \"select sum(m.n) from metrics m join runs r on r.id=m.run_id where r.experiment='writer'\")\" = 120000 ]"

# Without gnuplot on PATH: the run is recorded, the figure marked not rendered, data + script kept.
mkdir -p "$tmp/nognuplot"; for t in sqlite3 git sh cat; do p=$(command -v $t) && ln -sf "$p" "$tmp/nognuplot/$t"; done
nid=$(PATH=$tmp/nognuplot "$REPRO" run experiments/example.lua --preset smoke 2>"$tmp/err"); rc=$?
check "no gnuplot: run finishes" "[ $rc -eq 0 ] && [ \"\$(q \"select status from runs where id=$nid\")\" = finished ]"
check "no gnuplot: figures not rendered" "[ \"\$(q \"select count(*) from figures where run_id=$nid and rendered=0\")\" = 5 ]"
check "no gnuplot: message" "grep -q 'not rendered' $tmp/err"

# A corrupt database file and a read-only results folder: clear errors, exit code 6 / non-zero.
head -c 4096 /dev/urandom > "$tmp/corrupt.db"
"$REPRO" run experiments/example.lua --preset smoke --db "$tmp/corrupt.db" 2>"$tmp/err"; rc=$?
check "corrupt db refused" "[ $rc -ne 0 ] && grep -qi 'corrupt.db' $tmp/err"
# (root ignores file modes, so as root a folder under /proc, read-only for everyone, stands in)
mkdir -p "$tmp/ro"; chmod a-w "$tmp/ro"
ro=$tmp/ro; [ "$(id -u)" = 0 ] && ro=/proc/repro-ro
"$REPRO" run experiments/example.lua --preset smoke --db "$ro/repro.db" 2>"$tmp/err"; rc=$?
check "read-only folder refused" "[ $rc -ne 0 ] && grep -q '$ro' $tmp/err"

# A sweep: the product of values, seeds as --seed, one run per point.
"$REPRO" sweep experiments/example.lua --preset smoke --jobs 2 --db "$tmp/sweep.db" seed=1,2,3 repeats=4,8 >/dev/null 2>&1; rc=$?
check "sweep runs every point" "[ $rc -eq 0 ] && [ \"\$(sqlite3 $tmp/sweep.db \"select count(*) || '/' || count(distinct seed) || '/' || count(distinct params_json) from runs where status='finished'\")\" = 6/3/2 ]"

# A database from a newer schema is refused, untouched.
cp "$REPRO_DB" "$tmp/newer.db"; sqlite3 "$tmp/newer.db" "pragma user_version=999"
"$REPRO" run experiments/example.lua --preset smoke --db "$tmp/newer.db" 2>"$tmp/err"; rc=$?
check "newer schema refused" "[ $rc -ne 0 ] && grep -q 'newer' $tmp/err && [ \"\$(sqlite3 $tmp/newer.db 'pragma user_version')\" = 999 ]"

# Secrets in the environment never reach the database.
sid=$(MY_API_KEY=sekrit-value-123 OPENAI_API_KEY=sekrit-value-456 "$REPRO" run experiments/example.lua --preset smoke 2>/dev/null)
check "secret masked in env" "! sqlite3 $REPRO_DB .dump | grep -q sekrit-value && q \"select env_json from runs where id=$sid\" | grep -q 'MY_API_KEY'"

# Same seed on the other Lua runtime gives the same numbers.
other=""; case "$REPRO" in *-luajit) other=${REPRO%-luajit};; *) other=$REPRO-luajit;; esac
if [ -x "$other" ]; then
  oid=$("$other" run experiments/example.lua --preset smoke 2>/dev/null)
  check "same numbers on both Lua runtimes" "[ \"\$(s $id)\" = \"\$(s $oid)\" ]"
fi

echo "$([ $fails = 0 ] && echo ok || echo 'not ok') run_test: $checks checks, $fails failed"
[ $fails = 0 ]
