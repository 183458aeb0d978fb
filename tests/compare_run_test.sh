#!/usr/bin/env bash
# compare_run_test.sh: `repro compare A B --run` makes, at the commit without runs, the same runs as the
# other commit holds (script, preset, seed and params), so the groups meet and numbers are compared; and
# a comparison in which no group met exits non-zero saying it compared nothing. A two-commit git
# repository in a temporary folder stands for the project; `make` is replaced by a stand-in that puts
# this build's binary in the worktree (building the real tree would take minutes).
. "$(dirname "$0")/cli_test_lib.sh"
here=$(pwd)
repo=$tmp/repo
mkdir -p "$repo/experiments" "$tmp/fakebin"
ln -s "$here/harness" "$repo/harness"
cat > "$repo/experiments/tiny.lua" <<'LUA'
local experiment = require("repro.experiment")
return experiment.define { name = "tiny",
  params = { n = { type = "integer", default = 3 }, mode = { type = "string", default = "a" } },
  presets = { smoke = { n = 2 }, demo = { n = 5 } },
  run = function(ctx, p) ctx:summary("score", p.n * (p.mode == "b" and 2 or 1), { better = "higher" }) end }
LUA
cat > "$tmp/fakebin/make" <<EOF2
#!/bin/sh
# stand-in for 'make -s -C WT ... bin/repro': copy the binary under test into WT/bin
while [ \$# -gt 0 ]; do [ "\$1" = -C ] && wt=\$2; shift; done
mkdir -p "\$wt/bin" && cp "$REPRO" "\$wt/bin/repro"
EOF2
chmod +x "$tmp/fakebin/make"
git -C "$repo" init -q && git -C "$repo" -c user.email=t@t -c user.name=t add -A && git -C "$repo" -c user.email=t@t -c user.name=t commit -qm one
c1=$(git -C "$repo" rev-parse HEAD)
echo "-- second" >> "$repo/experiments/tiny.lua"
git -C "$repo" -c user.email=t@t -c user.name=t commit -qam two
c2=$(git -C "$repo" rev-parse HEAD)
export REPRO_ROOT=$repo

(cd "$repo" && "$REPRO" run experiments/tiny.lua --preset demo --seed 4 mode=b >/dev/null 2>"$tmp/err")
check "a run at the second commit" "[ \"\$(q \"select count(*) from runs where git_commit='$c2' and status='finished'\")\" = 1 ]"
(cd "$repo" && PATH="$tmp/fakebin:$PATH" "$REPRO" compare "$c1" "$c2" --run >"$tmp/out" 2>"$tmp/err"); rc=$?
check "compare --run exits 0 (no regression)" "[ $rc -eq 0 ]"
check "--run made the first commit's run with the same preset, seed and params" \
  "[ \"\$(q \"select preset || ' ' || seed || ' ' || params_json from runs where git_commit='$c1'\")\" = 'demo 4 {\"mode\":\"b\",\"n\":5}' ]"
check "the groups met: one compared" "grep -q '1 group compared' $tmp/out && grep -q 'summary *score' $tmp/out"

# Runs at both commits, but with other params: nothing compared is an error.
sqlite3 "$REPRO_DB" "delete from runs where git_commit='$c1'"
(cd "$repo" && git checkout -q "$c1" && "$REPRO" run experiments/tiny.lua --preset smoke >/dev/null 2>&1 && git checkout -q -)
(cd "$repo" && "$REPRO" compare "$c1" "$c2" >"$tmp/out" 2>"$tmp/err"); rc=$?
check "nothing compared: non-zero exit" "[ $rc -ne 0 ]"
check "nothing compared: said plainly" "grep -q 'compared nothing' $tmp/err && ! grep -q '0 regressions' $tmp/out"

echo "compare_run_test: $((checks-fails))/$checks checks passed"
[ "$fails" -eq 0 ]
