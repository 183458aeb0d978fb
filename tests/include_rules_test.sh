#!/usr/bin/env bash
# include_rules_test.sh: the rooms of design.md §1, checked from the sources' #include lines.
#   engine (harness/tensor, harness/nn, harness/model): quoted includes only from tensor/, nn/, model/,
#     util/ (so nothing of cli/, lua/, db/, net/, assets/, eval/, serve/, plugins/, plot/, report/,
#     compare/), and none of lua.h / lauxlib.h / lualib.h / luajit.h / sqlite3.h / curl/curl.h;
#   util (harness/util): quoted includes only from util/ (it sits below everything);
#   plugins (plugins/*): nothing from cli/ or serve/ (a plugin knows the engine, not the host's commands).
# Every break is printed as file:line: the include and the rule. The test then plants a break in a copy
# of the engine and checks that the checker catches it, so it cannot pass by checking nothing.
set -u
root=${1:-.}

# check ROOT: prints breaks, returns 1 if any.
check() {
  local r=$1 bad=0 f line n inc
  for f in "$r"/harness/tensor/*.[ch] "$r"/harness/tensor/cuda/*.cu* "$r"/harness/tensor/cuda/*.h "$r"/harness/nn/*.[ch] "$r"/harness/model/*.[ch] \
           "$r"/harness/util/*.[ch] "$r"/plugins/*/*.[ch]; do
    [ -f "$f" ] || continue
    local rel=${f#"$r"/}
    while IFS=: read -r n line; do
      inc=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*//' <<<"$line")
      case $rel in
        harness/tensor/*|harness/nn/*|harness/model/*)
          case $inc in
            \"tensor/*|\"nn/*|\"model/*|\"util/*) ;;
            \"*) echo "$rel:$n: $inc: the engine includes only tensor/, nn/, model/, util/"; bad=1 ;;
            \<lua.h\>|\<lauxlib.h\>|\<lualib.h\>|\<luajit.h\>|\<sqlite3.h\>|\<curl/curl.h\>)
              echo "$rel:$n: $inc: the engine knows nothing of Lua, SQLite or HTTP"; bad=1 ;;
          esac ;;
        harness/util/*)
          case $inc in
            \"util/*) ;;
            \"*) echo "$rel:$n: $inc: util/ includes only util/"; bad=1 ;;
          esac ;;
        plugins/*)
          case $inc in
            \"cli/*|\"harness/cli/*|\"serve/*|\"harness/serve/*)
              echo "$rel:$n: $inc: plugins do not include cli/ or serve/"; bad=1 ;;
          esac ;;
      esac
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include' "$f")
  done
  return $bad
}

fails=0
if ! check "$root"; then echo "FAIL: include rules broken (above)" >&2; fails=$((fails+1)); fi

# The checker must catch planted breaks, one per rule.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/harness/nn" "$tmp/harness/util" "$tmp/plugins/p"
printf '/* planted */\n#include "nn/llama.h"\n#include "db/registry.h"\n' > "$tmp/harness/nn/planted.c"
out=$(check "$tmp"); rc=$?
if [ $rc -eq 0 ] || ! grep -q 'harness/nn/planted.c:3: "db/registry.h"' <<<"$out"; then
  echo "FAIL: a planted engine break was not reported with its file and line (got: $out)" >&2; fails=$((fails+1)); fi
rm -f "$tmp/harness/nn/planted.c"
printf '#include <sqlite3.h>\n' > "$tmp/harness/nn/planted.h"
if check "$tmp" >/dev/null; then echo "FAIL: a planted <sqlite3.h> in the engine was not caught" >&2; fails=$((fails+1)); fi
rm -f "$tmp/harness/nn/planted.h"
printf '#include "serve/serve.h"\n' > "$tmp/plugins/p/planted.c"
if check "$tmp" >/dev/null; then echo "FAIL: a planted serve/ include in a plugin was not caught" >&2; fails=$((fails+1)); fi
rm -f "$tmp/plugins/p/planted.c"
printf '#include "net/http.h"\n' > "$tmp/harness/util/planted.c"
if check "$tmp" >/dev/null; then echo "FAIL: a planted net/ include in util/ was not caught" >&2; fails=$((fails+1)); fi

echo "$([ $fails = 0 ] && echo ok || echo 'not ok') include_rules_test: the tree and 4 planted breaks, $fails failed"
[ $fails = 0 ]
