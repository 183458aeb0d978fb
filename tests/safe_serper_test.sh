#!/usr/bin/env bash
# safe_serper_test.sh: the shipped SAFE experiments on their default search path (search=serper, the
# paper's) end to end, against a loopback Serper- and OpenAI-compatible fixture (tests/safe_fixture.py)
# that injects faults: 429s and 500s (HTTP-level retries, recorded as net_retries), Serper answers without
# "organic" (failures to retry, never cached as "no results"), a generation whose body is not JSON (its
# prompt still leaves a record with the error; summaries say how many responses were rated), and a server
# whose every generation fails (the run still finishes). Needs python3 and the mirror's longfact data.
set -u
REPRO=${REPRO:-bin/repro}
REPRO=$(cd "$(dirname "$REPRO")" && pwd)/$(basename "$REPRO")
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${REPRO_MIRROR:-}" ] || [ ! -f "$REPRO_MIRROR/longfact/longfact-objects_benchmark250.jsonl" ]; then
  echo "skip [mirror]: safe_serper_test needs longfact in REPRO_MIRROR"; exit 0
fi
command -v python3 >/dev/null || { echo "skip: python3 not installed: no Serper fixture"; exit 0; }
command -v sqlite3 >/dev/null || { echo "skip: sqlite3 not installed: records not read"; exit 0; }
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
. "$(dirname "$0")/check.sh"

start_fixture() {   # start_fixture MODE: sets pid and port
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
  SAFE_FIXTURE_STATS="$tmp/stats-$1.json" python3 "$here/safe_fixture.py" "$1" >"$tmp/fx.out" 2>"$tmp/fx-$1.err" &
  pid=$!
  port=
  for _ in $(seq 1 100); do port=$(sed -n 's/^listening on //p' "$tmp/fx.out" 2>/dev/null); [ -n "$port" ] && break; sleep 0.1; done
  [ -n "$port" ] || { echo "fixture did not start:" >&2; cat "$tmp/fx-$1.err" >&2; exit 1; }
}
db=$tmp/repro.db
q() { sqlite3 "$db" "$1"; }
summary() { q "select printf('%g', value) from summaries where run_id=$1 and name='$2'"; }
run_exp() {   # run_exp NAME SCRIPT key=value...: the run id in $rid, exit code in $rc
  local name=$1 script=$2; shift 2
  SAFE_TEST_SERPER_KEY=test-key "$REPRO" run "experiments/$script" --db "$db" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  rc=$?
  rid=$(q "select max(id) from runs"); rid=${rid:-0}
}
common() {
  echo "base_url=http://127.0.0.1:$port/v1 search=serper search_url=http://127.0.0.1:$port/search search_key_env=SAFE_TEST_SERPER_KEY" \
       "api_key_env= cache=$tmp/cache-$1.db index=$tmp/bm25.db n_queries=1 max_retries=1 max_failures=4 http_retries=8 timeout=20 concurrency=2"
}

# 1. safe_f1k: three benchmark prompts; the second ("Berlin Wall") never gets a parseable response
start_fixture faults
# shellcheck disable=SC2046
run_exp f1k safe_f1k.lua n_prompts=3 models=fixture-model $(common f1k)
check "safe_f1k over Serper finishes (exit 0)" "[ $rc -eq 0 ] || { cat $tmp/f1k.err >&2; false; }"
check "every prompt leaves a record" "[ \"\$(q \"select count(*) from records where run_id=$rid and kind='safe_response'\")\" = 3 ]"
check "the failed generation's record carries its error" \
  "q \"select data_json from records where run_id=$rid and key='fixture-model/2'\" | grep -q '\"error\":\"chat completion: response is not JSON'"
check "summaries say 2 of 3 responses were rated" \
  "[ \"\$(summary $rid fixture-model/responses_rated)\" = 2 ] && [ \"\$(summary $rid fixture-model/responses_failed)\" = 1 ] && [ \"\$(q \"select n from summaries where run_id=$rid and name='fixture-model/f1_64'\")\" = 2 ]"
check "facts got real labels through Serper" "[ \"\$(summary $rid fixture-model/supported)\" != '' ] && [ \"\$(summary $rid fixture-model/facts_failed)\" = 0 ]"
net=$(summary "$rid" cache/net_retries)
check "HTTP-level retries are recorded (run summary and per-response records)" \
  "[ \"\${net:-0}\" -gt 0 ] && q \"select data_json from records where run_id=$rid and key='fixture-model/1'\" | grep -q '\"net_retries\":'"
check "malformed Serper answers were retried (transport failures recorded)" \
  "q \"select data_json from records where run_id=$rid and key='fixture-model/1'\" | grep -Eq '\"transport_failures\":[1-9]'"
check "no malformed answer was cached as 'no results'" \
  "[ \"\$(sqlite3 $tmp/cache-f1k.db \"select count(*) from sqlite_master\")\" -gt 0 ] && ! sqlite3 $tmp/cache-f1k.db .dump | grep -q 'No good search result'"
check "the fixture did inject each fault" \
  "python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(not (s[\"faults_http\"] > 0 and s[\"malformed_search\"] > 0 and s[\"bad_chat_body\"] > 0))' $tmp/stats-faults.json"

# 2. safe_vs_human on the same path (rates FActScore's human-split facts)
# shellcheck disable=SC2046
run_exp human safe_vs_human.lua n_pairs=1 max_facts=2 $(common human)
check "safe_vs_human over Serper finishes with its facts rated" \
  "[ $rc -eq 0 ] && [ \"\$(summary $rid facts_rated)\" = 2 ] && [ \"\$(summary $rid net_retries)\" != '' ] || { cat $tmp/human.err >&2; false; }"

# 3. every generation fails: the run finishes, says none was rated, and keeps every prompt's record
start_fixture allfail
# shellcheck disable=SC2046
run_exp allfail safe_f1k.lua n_prompts=2 models=fixture-model $(common allfail)
check "all generations failing is no crash (exit 0, status finished)" \
  "[ $rc -eq 0 ] && [ \"\$(q \"select status from runs where id=$rid\")\" = finished ] || { cat $tmp/allfail.err >&2; false; }"
check "...with 0 responses rated and both prompts recorded" \
  "[ \"\$(summary $rid fixture-model/responses_rated)\" = 0 ] && [ \"\$(q \"select count(*) from records where run_id=$rid\")\" = 2 ]"

# 4. an unknown option for the Serper backend can no longer come from the plugin: bm25-only keys stay out
check "the default search (serper) no longer rejects the plugin's options" "! grep -q 'unknown' $tmp/f1k.err"
checks_done safe_serper_test.sh
