#!/usr/bin/env bash
# task_file_test.sh: a task added as one data file (no C change) is scored by `repro eval NAME`: a fixture
# task file in a $REPRO_TASKS folder (its prompt and choices as templates over a JSON-lines file beside
# it) must give the same scores as the same items built from Lua data (eval.task), whose prompts are
# written out by hand here; bad task files fail with the file and field named. Skips the scoring without
# the mirror's stories260K.
set -u
REPRO=${REPRO:-bin/repro}
tmp=$(mktemp -d /tmp/repro-task-file-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0; n=0
check() { n=$((n+1)); if eval "$1"; then :; else echo "FAIL task_file_test: $2"; fail=1; fi; }

mkdir -p "$tmp/tasks"
cat >"$tmp/tasks/capitals.json" <<'J'
{
  "task": "capitals",
  "description": "a fixture: which city is the capital",
  "local": true,
  "split": "test",
  "format": "jsonl",
  "data": "capitals.jsonl",
  "prompt": "Q: What is the capital of {country}?\nA:",
  "choices": ["{a}", "{b}", "{c}"],
  "gold": "label",
  "metric": ["acc", "acc_norm"],
  "fewshot": "items"
}
J
cat >"$tmp/tasks/capitals.jsonl" <<'J'
{"country": "France", "a": "Paris", "b": "Lyon", "c": "Nice", "label": 0}
{"country": "Italy", "a": "Milan", "b": "Rome", "c": "Turin", "label": 1}
{"country": "Japan", "a": "Osaka", "b": "Kyoto", "c": "Tokyo", "label": 2}
{"country": "Peru", "a": "Lima", "b": "Cusco", "c": "Arequipa", "label": 0}
{"country": "Iceland", "a": "Reykjavík", "b": "Akureyri", "c": "Höfn", "label": 0}
J
export REPRO_TASKS="$tmp/tasks"

# The registry lists it, and loads it with the templates filled in.
cat >"$tmp/load.lua" <<'L'
local eval = require("repro.eval")
local listed = false
for _, n in ipairs(eval.tasks()) do if n == "capitals" then listed = true end end
assert(listed, "capitals not in eval.tasks()")
local t = eval.load("capitals")
assert(t:size() == 5 and t:name() == "capitals", "size/name")
local it = t:item(5)
assert(it.context == "Q: What is the capital of Iceland?\nA:", "context: " .. tostring(it.context))
assert(it.choices[1] == "Reykjavík" and it.choices[3] == "Höfn" and it.gold == 1, "choices/gold")
print("ok")
L
out=$("$REPRO" exec "$tmp/load.lua" 2>&1)
check '[ "$out" = ok ]' "eval.load of the task file: $out"

model=${REPRO_MIRROR:-}/stories260K/stories260K.bin
if [ -n "${REPRO_MIRROR:-}" ] && [ -f "$model" ]; then
  "$REPRO" eval "$model" capitals --json --no-record >"$tmp/eval.json" 2>"$tmp/eval.err"
  check '[ $? -eq 0 ]' "repro eval capitals failed: $(cat "$tmp/eval.err")"
  # The same items from Lua data: the prompts written out by hand, scored by the same model.
  cat >"$tmp/same.lua" <<L
local eval, model, json = require("repro.eval"), require("repro.model"), require("repro.json")
local m = model.load("$model")
local rows = { { "France", { "Paris", "Lyon", "Nice" }, 0 }, { "Italy", { "Milan", "Rome", "Turin" }, 1 },
               { "Japan", { "Osaka", "Kyoto", "Tokyo" }, 2 }, { "Peru", { "Lima", "Cusco", "Arequipa" }, 0 },
               { "Iceland", { "Reykjavík", "Akureyri", "Höfn" }, 0 } }
local items = {}
for i, r in ipairs(rows) do items[i] = { context = "Q: What is the capital of " .. r[1] .. "?\nA:", choices = r[2], gold = r[3] + 1 } end
local r = eval.evaluate(m, eval.task { name = "by_hand", kind = "mc", items = items })
local f = json.decode(io.open("$tmp/eval.json"):read("a"))
local a, b = f.metrics.acc.value, f.metrics.acc_norm.value
assert(f.n == 5 and f.task == "capitals", "repro eval's n/task")
assert(math.abs(a - r.acc) < 1e-12 and math.abs(b - r.acc_norm) < 1e-12,
       string.format("task file acc %g/%g vs by hand %g/%g", a, b, r.acc, r.acc_norm))
print("ok")
L
  out=$("$REPRO" exec "$tmp/same.lua" 2>&1)
  check '[ "$out" = ok ]' "task file vs the same items by hand: $out"
else
  echo "skip: REPRO_MIRROR/stories260K not found: scoring of the fixture task skipped"
fi

# Bad task files: exit 3 (bad data), naming the file and the field.
sed 's/"fewshot": "items"/"fewshot": "items", "promt": "x"/' "$tmp/tasks/capitals.json" >"$tmp/tasks/typo.json"
sed -i 's/"task": "capitals"/"task": "typo"/' "$tmp/tasks/typo.json"
"$REPRO" eval "$model" typo --no-record >/dev/null 2>"$tmp/err"; rc=$?
check '[ $rc -eq 3 ] && grep -q "typo.json: field promt: not a key of a jsonl task file" "$tmp/err"' "unknown key: rc $rc, $(cat "$tmp/err")"
sed 's/"task": "capitals"/"task": "other"/' "$tmp/tasks/capitals.json" >"$tmp/tasks/misnamed.json"
"$REPRO" eval "$model" misnamed --no-record >/dev/null 2>"$tmp/err"; rc=$?
check '[ $rc -eq 3 ] && grep -q "misnamed.json: field task: \"other\" is not the file" "$tmp/err"' "task name mismatch: rc $rc, $(cat "$tmp/err")"
sed 's/"label": 1}/"label": 7}/' "$tmp/tasks/capitals.jsonl" >"$tmp/tasks/capitals.jsonl.bad" && mv "$tmp/tasks/capitals.jsonl.bad" "$tmp/tasks/capitals.jsonl"
"$REPRO" eval "$model" capitals --no-record >/dev/null 2>"$tmp/err"; rc=$?
check '[ $rc -eq 3 ] && grep -q "capitals.jsonl: line 2: field label: 7 is not an integer in \[0, 2\]" "$tmp/err"' "bad gold: rc $rc, $(cat "$tmp/err")"
"$REPRO" eval "$model" ../etc/passwd --no-record >/dev/null 2>"$tmp/err"; rc=$?
check '[ $rc -ne 0 ] && grep -q "letters, digits" "$tmp/err"' "a path as task name: rc $rc"

if [ "$fail" -eq 0 ]; then echo "ok task_file_test: $n checks"; else exit 1; fi
