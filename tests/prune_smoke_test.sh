#!/usr/bin/env bash
# prune_smoke_test.sh: the prune experiments' smoke presets (stories260K, seconds) through the real CLI: both
# runs finish, record their figures and targets (the paper's MMLU collapse fractions as not reproducible), log
# one normalized-loss point per (rule, n), healed loss and accuracy before and after per (rule, n), and the
# LoRA-rank sweep; the unpruned normalized loss lies in (0, 1) (better than uniform guessing), and dropping
# three of five layers is worse than dropping none.
# Verdicts of the shape targets are recorded, not checked (they are the findings). Skips without the mirror.
set -u
[ -f "${REPRO_MIRROR:-/nonexistent}/stories260K/stories260K.bin" ] || { echo "skip [mirror]: stories260K not in the mirror"; echo "ok prune_smoke_test"; exit 0; }
. tests/cli_test_lib.sh
db=$REPRO_DB
points() { q "select coalesce(sum(m.n), 0) from metrics m join metric_names k on k.id = m.name_id where m.run_id = $1 and k.name like '$2'"; }
id=$("$REPRO" run experiments/prune_angular.lua --preset smoke --db "$db" 2>"$tmp/err")
check "prune_angular smoke finishes" "[ $? -eq 0 ] && [ -n '$id' ]"
check "angular: 3 targets" "[ \"\$(q \"select count(*) from targets where run_id=$id\")\" -eq 3 ]"
check "angular: heat maps and l* figures" "[ \"\$(q \"select count(*) from figures where run_id=$id\")\" -eq 6 ]"
check "angular: l*/L for n = 1..4" "[ \"\$(points $id l_star_depth_fraction)\" -eq 4 ]"
check "angular: l*(n) for n = 1..5" "[ \"\$(points $id l_star)\" -eq 5 ]"
id2=$("$REPRO" run experiments/prune_curves.lua --preset smoke --db "$db" 2>"$tmp/err2")
check "prune_curves smoke finishes" "[ $? -eq 0 ] && [ -n '$id2' ]"
check "curves: MMLU collapse fractions not reproducible" "[ \"\$(q \"select count(*) from targets where run_id=$id2 and status='not_reproducible'\")\" -eq 4 ]"
check "curves: a loss point per n for each rule" "[ \"\$(points $id2 'loss_norm_%')\" -eq 16 ]"
check "curves: unpruned loss better than uniform" "[ \"\$(q \"select value > 0 and value < 1 from summaries where run_id=$id2 and name='loss_norm_unpruned'\")\" = 1 ]"
check "curves: dropping 3 layers costs more than none" "[ \"\$(q \"select (select value from summaries where run_id=$id2 and name='loss_norm_heuristic_at_max_n') > (select value from summaries where run_id=$id2 and name='loss_norm_unpruned')\")\" = 1 ]"
check "curves: healed loss recorded (n = 0, 2 for two rules)" "[ \"\$(q \"select count(*) from summaries where run_id=$id2 and name like 'healed_loss_norm_%_after' and value > 0 and value < 2\")\" -eq 4 ]"
check "curves: accuracy before and after healing per (rule, n)" "[ \"\$(points $id2 'healed_acc_arc_easy_%')\" -eq 8 ]"
check "curves: healed figures (loss, accuracy, rank sweep)" "[ \"\$(q \"select count(*) from figures where run_id=$id2 and name in ('healed_loss','healed_acc_arc_easy','rank_sweep_loss','rank_sweep_acc')\")\" -eq 4 ]"
check "curves: rank sweep at ranks 2 and 4" "[ \"\$(q \"select count(*) from summaries where run_id=$id2 and name like 'rank_sweep_loss_norm_r%' and value > 0 and value < 2\")\" -eq 2 ]"
check "curves: healing and rank targets recorded" "[ \"\$(q \"select count(*) from targets where run_id=$id2 and (name like 'healing %' or name like '%LoRA rank%')\")\" -eq 4 ]"
check "curves: bad ns is a clear error" "! \"$REPRO\" run experiments/prune_curves.lua --preset smoke --db \"$db\" ns=0,7 2>\"$tmp/err3\" >/dev/null && grep -q 'ns holds 7, outside \[0, 5)' \"$tmp/err3\""
[ $fails -eq 0 ] || cat "$tmp/err" "$tmp/err2" >&2
echo "$([ $fails -eq 0 ] && echo ok || echo 'not ok') prune_smoke_test: $checks checks, $fails failed"
[ $fails -eq 0 ]
