#!/usr/bin/env bash
# train_smollm2_test.sh: experiments/train_smollm2.lua's smoke preset through the real CLI (a tiny Llama
# trained from scratch on tinyshakespeare's characters, seconds): the run finishes, its shape target (held-out
# loss below the character unigram entropy of the training windows) passes, the held-out loss is logged before
# training and at every evaluation (steps 0, 20, 40, 60), falls, and the loss figure is recorded.
[ -n "${REPRO_MIRROR:-}" ] && [ -f "$REPRO_MIRROR/tinyshakespeare/input.txt" ] ||
  { echo "skip [mirror]: train_smollm2_test needs tinyshakespeare in REPRO_MIRROR"; exit 0; }
. "$(dirname "$0")/cli_test_lib.sh"
points() { q "select coalesce(sum(m.n), 0) from metrics m join metric_names k on k.id = m.name_id where m.run_id = $1 and k.name = '$2'"; }
id=$("$REPRO" run experiments/train_smollm2.lua --preset smoke 2>"$tmp/err")
check "train_smollm2 smoke finishes" "[ $? -eq 0 ] && [ -n '$id' ]"
check "its target passes" "[ \"\$(q \"select count(*) from targets where run_id=$id and kind='shape' and status='pass'\")\" -eq 1 ]"
check "held-out loss at 4 evaluations" "[ \"\$(points $id heldout_loss)\" -eq 4 ]"
check "held-out loss falls" "[ \"\$(q \"select (select value from summaries where run_id=$id and name='heldout_loss_after') < (select value from summaries where run_id=$id and name='heldout_loss_before')\")\" -eq 1 ]"
check "60 training losses logged" "[ \"\$(points $id train_loss)\" -eq 60 ]"
check "loss figure recorded" "[ \"\$(q \"select count(*) from figures where run_id=$id and name='loss'\")\" -eq 1 ]"
[ $fails -eq 0 ] || cat "$tmp/err" >&2
echo "$([ $fails -eq 0 ] && echo ok || echo 'not ok') train_smollm2_test.sh: $checks checks, $fails failed"
[ $fails -eq 0 ]
