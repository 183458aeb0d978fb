#!/usr/bin/env bash
# jamba_test.sh: experiments/jamba_table1.lua's smoke preset through the real CLI: the run finishes, every
# exact Table 1 target passes (the counts are exact), and the Figure 2 ratios are recorded as not
# reproducible with the bound's value beside the paper's. experiments/jamba_throughput.lua's smoke preset
# finishes with its figures, targets and batch sweep recorded (its verdicts depend on timing, so are not checked).
# experiments/jamba_ablation.lua's smoke preset (tiny models trained a few steps on tinyshakespeare from
# the mirror) finishes with a held-out log-prob per byte for every variant, near the uniform -ln 256
# after three steps, and its 7 targets recorded (the shape verdicts of 3 steps mean nothing, so are not
# checked). experiments/jamba_icl.lua's smoke preset finishes with an accuracy and its standard error for
# each task and variant, in [0, 1], the format task's in-format shares, and its 7 targets recorded (whether a
# model learns is checked in jamba_test.lua, not here: 4 steps teach nothing).
. "$(dirname "$0")/cli_test_lib.sh"
db=$REPRO_DB
mkdir -p "$(dirname "$db")"
id=$("$REPRO" run experiments/jamba_table1.lua --preset smoke --db "$db" 2>"$tmp/err")
check "jamba_table1 smoke finishes" "[ $? -eq 0 ] && [ -n '$id' ]"
check "no failed target" "[ \"\$(q \"select count(*) from targets where run_id=$id and status='fail'\")\" -eq 0 ]"
check "exact targets pass" "[ \"\$(q \"select count(*) from targets where run_id=$id and kind='exact' and status='pass'\")\" -ge 20 ]"
check "Figure 2 ratios not reproducible" "[ \"\$(q \"select count(*) from targets where run_id=$id and status='not_reproducible'\")\" -eq 3 ]"
check "Jamba total recorded exactly" "[ \"\$(q \"select cast(value as integer) from summaries where run_id=$id and name='jamba-v0.1_total_params'\")\" = 51570323328 ]"
id2=$("$REPRO" run experiments/jamba_throughput.lua --preset smoke --db "$db" 2>"$tmp/err2")
check "jamba_throughput smoke finishes" "[ $? -eq 0 ] && [ -n '$id2' ]"
check "throughput targets recorded" "[ \"\$(q \"select count(*) from targets where run_id=$id2\")\" -eq 4 ]"
check "decode ratio logged" "[ \"\$(q \"select count(*) from summaries where run_id=$id2 and name='decode_ratio_at_max_context'\")\" -eq 1 ]"
check "machine load and FMA peak recorded" "[ \"\$(q \"select count(*) from summaries where run_id=$id2 and ((name='fma_peak_gflops_1thread' and value > 0) or name='max_load1_during_sweep' or (name='min_core_share_during_sweep' and value > 0))\")\" -eq 3 ]"
check "batch sweep summarised" "[ \"\$(q \"select count(*) from summaries where run_id=$id2 and name='batch_ratio_at_max_batch'\")\" -eq 1 ]"
if [ -f "${REPRO_MIRROR:-/nonexistent}/tinyshakespeare/input.txt" ]; then
  id3=$("$REPRO" run experiments/jamba_ablation.lua --preset smoke --db "$db" 2>"$tmp/err3")
  check "jamba_ablation smoke finishes" "[ $? -eq 0 ] && [ -n '$id3' ]"
  check "ablation targets recorded" "[ \"\$(q \"select count(*) from targets where run_id=$id3\")\" -eq 7 ]"
  check "held-out log-prob of 6 variants, near -ln 256" "[ \"\$(q \"select count(*) from summaries where run_id=$id3 and name like 'heldout_logprob_per_byte/%' and value between -6.5 and -4.5\")\" -eq 6 ]"
  [ $fails -eq 0 ] || cat "$tmp/err3" >&2
else
  echo "skip [mirror]: jamba_ablation smoke needs tinyshakespeare in REPRO_MIRROR"
fi
id4=$("$REPRO" run experiments/jamba_icl.lua --preset smoke --db "$db" 2>"$tmp/err4")
check "jamba_icl smoke finishes" "[ $? -eq 0 ] && [ -n '$id4' ]"
check "icl targets recorded" "[ \"\$(q \"select count(*) from targets where run_id=$id4\")\" -eq 7 ]"
check "icl accuracy of 2 tasks x 3 variants, with standard errors" "[ \"\$(q \"select count(*) from summaries where run_id=$id4 and name like 'icl_accuracy/%' and value between 0 and 1 and stderr >= 0 and n > 0\")\" -eq 6 ]"
check "in-format share of the format task" "[ \"\$(q \"select count(*) from summaries where run_id=$id4 and name like 'in_format/format/%'\")\" -eq 3 ]"
[ $fails -eq 0 ] || cat "$tmp/err4" >&2
[ $fails -eq 0 ] || cat "$tmp/err2" >&2
[ $fails -eq 0 ] || cat "$tmp/err" >&2
echo "$([ $fails -eq 0 ] && echo ok || echo 'not ok') jamba_test.sh: $checks checks, $fails failed"
[ $fails -eq 0 ]
