#!/usr/bin/env bash
# resume_test.sh: resumable runs (ctx:memo + `repro run --resume`). A run of 8 units of work is killed with
# SIGKILL after its third unit; the same params, seed and --resume reuse the finished units (not recomputed:
# each computed unit appends a line to a side file) and end with summaries equal, bit for bit, to those of an
# uninterrupted run, draws of math.random inside and between units included. A resume with other params, or a run without --resume, reuses nothing; a killed
# (SIGTERM) run resumes too, and a resume of a resume needs only the latest run.
. "$(dirname "$0")/cli_test_lib.sh"

cat > "$tmp/units.lua" <<'EOF2'
local experiment = require("repro.experiment")
return experiment.define { name = "units", params = {
    n = { type = "integer", default = 8, doc = "units" },
    scale = { type = "number", default = 1.5, doc = "a factor" },
    log = { type = "string", default = "", doc = "file each computed unit appends its key to" } },
  run = function(ctx, p)
    local total = 0
    for i = 1, p.n do
      local r = ctx:memo("unit/" .. i, function()
        os.execute("sleep 0.1")   -- a unit lasts >= 0.1 s on any Lua build, so the kill lands mid-run (LuaJIT ran the loop below in microseconds)
        local s = 0
        for k = 1, 200000 do s = s + math.sin(k * i * 1e-3) * p.scale end
        local fh = io.open(p.log, "a"); fh:write("unit/", i, "\n"); fh:close()
        return { value = s / 3 + math.random(), parts = { i, s, -s }, tag = "u" .. i }
      end)
      total = total + math.random()   -- draws between units: the same whether earlier units were reused or not
      ctx:summary("unit_" .. i, r.value)
      total = total + r.parts[2] + r.parts[3] + r.value
    end
    ctx:summary("total", total)
    ctx:summary("reused", ctx:reused_units())
  end }
EOF2
sv() { q "select value from summaries where run_id=$1 and name='$2'"; }
reused() { q "select cast(value as integer) from summaries where run_id=$1 and name='reused'"; }
lines() { [ -f "$1" ] && wc -l < "$1" || echo 0; }

# The uninterrupted reference.
ref=$("$REPRO" run "$tmp/units.lua" log="$tmp/ref.log" 2>"$tmp/err")
check "reference run finishes" "[ -n '$ref' ] && [ \"\$(q \"select status from runs where id=$ref\")\" = finished ]"
check "reference computes 8 units" "[ \$(lines $tmp/ref.log) -eq 8 ]"
check "reference records 8 memo units" "[ \"\$(q \"select count(*) from records where run_id=$ref and kind='memo'\")\" = 8 ]"

# Killed with SIGKILL after its third unit (the log file is a param, so it is part of the params' identity:
# both attempts use the same one).
"$REPRO" run "$tmp/units.lua" log="$tmp/a.log" >"$tmp/a.id" 2>"$tmp/err" &
pid=$!
# a unit writes its log line before its memo commits, so 4 lines mean units 1-3 are surely recorded
for _ in $(seq 1 600); do [ "$(lines "$tmp/a.log")" -ge 4 ] && break; sleep 0.05; done
kill -9 $pid; wait $pid 2>/dev/null
done_units=$(lines "$tmp/a.log")
killed=$(q "select max(id) from runs")
check "killed mid-way (4 to 7 units done)" "[ $done_units -ge 4 ] && [ $done_units -lt 8 ]"
memo_killed=$(q "select count(*) from records where run_id=$killed and kind='memo'")
check "the killed run kept its finished units (all but at most the one being committed)" "[ $memo_killed -ge 3 ] && [ $memo_killed -ge $((done_units - 1)) ]"

# Resumed: only the remaining units are computed, and the results equal the reference's.
res=$("$REPRO" run "$tmp/units.lua" log="$tmp/a.log" --resume 2>"$tmp/err")
check "resumed run finishes" "[ -n '$res' ] && [ \"\$(q \"select status from runs where id=$res\")\" = finished ]"
check "resume names the run it resumes" "grep -q \"resuming run $killed: $memo_killed finished units\" $tmp/err"
check "resumed run computes only the missing units" "[ \$(lines $tmp/a.log) -eq \$((done_units + 8 - memo_killed)) ]"
check "resumed run reports the reused units" "[ \"\$(reused $res)\" = $memo_killed ]"
check "resumed run holds all 8 units" "[ \"\$(q \"select count(*) from records where run_id=$res and kind='memo'\")\" = 8 ]"
same=$(q "select count(*) from summaries a join summaries b on a.name = b.name where a.run_id=$ref and b.run_id=$res and a.value = b.value and a.name != 'reused'")
check "resumed summaries equal the uninterrupted run's (9 of 9)" "[ '$same' = 9 ]"

# A resume of the finished resumed run reuses all 8 from it; other params or no --resume reuse nothing.
again=$("$REPRO" run "$tmp/units.lua" log="$tmp/a.log" --resume 2>/dev/null)
check "resume of a resume reuses all 8" "[ \"\$(reused $again)\" = 8 ] && [ \$(lines $tmp/a.log) -eq \$((done_units + 8 - memo_killed)) ]"
other=$("$REPRO" run "$tmp/units.lua" log="$tmp/a.log" scale=2 --resume 2>"$tmp/err")
check "other params: nothing reused" "[ \"\$(reused $other)\" = 0 ] && grep -q 'starting from scratch' $tmp/err"
check "other params: values differ" "[ \"\$(sv $other total)\" != \"\$(sv $ref total)\" ]"
plain=$("$REPRO" run "$tmp/units.lua" log="$tmp/a.log" 2>/dev/null)
check "no --resume: nothing reused" "[ \"\$(reused $plain)\" = 0 ]"
seeded=$("$REPRO" run "$tmp/units.lua" log="$tmp/a.log" --seed 2 --resume 2>/dev/null)
check "another seed: nothing reused" "[ \"\$(reused $seeded)\" = 0 ]"

# SIGTERM: the run ends killed, and resumes as well.
"$REPRO" run "$tmp/units.lua" log="$tmp/b.log" n=40 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 600); do [ "$(lines "$tmp/b.log")" -ge 2 ] && break; sleep 0.05; done
kill -TERM $pid; wait $pid; rc=$?
tid=$(q "select max(id) from runs")
check "SIGTERM: killed (exit 130)" "[ $rc -eq 130 ] && [ \"\$(q \"select status from runs where id=$tid\")\" = killed ]"
n_done=$(q "select count(*) from records where run_id=$tid and kind='memo'")
tres=$("$REPRO" run "$tmp/units.lua" log="$tmp/b.log" n=40 --resume 2>/dev/null)
check "SIGTERM: resumed reuses its units" "[ $n_done -ge 2 ] && [ \"\$(reused $tres)\" = $n_done ]"

echo "resume_test: $((checks - fails)) of $checks checks passed"
[ $fails -eq 0 ]
