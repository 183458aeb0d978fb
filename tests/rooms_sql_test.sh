#!/usr/bin/env bash
# rooms_sql_test.sh: only harness/db/ speaks SQL (design.md §1). Outside it no harness C file calls
# sqlite3_*, includes <sqlite3.h>, or holds SQL text; report, compare and plot read the registry through
# db/'s functions. (Plugins may keep their own tables through rp_db_sqlite; they are not checked here.)
set -u
cd "$(dirname "$0")/.." || exit 1
fail=0
calls=$(grep -l 'sqlite3_\|<sqlite3.h>' -r harness --include='*.c' --include='*.h' | grep -v '^harness/db/' || true)
if [ -n "$calls" ]; then echo "FAIL rooms_sql: SQLite used outside harness/db/: $calls"; fail=1; fi
sql=$(grep -nE '"[^"]*\b(SELECT|INSERT INTO|UPDATE [a-z_]+ SET|DELETE FROM|CREATE TABLE|PRAGMA) ' -r harness --include='*.c' \
      | grep -v '^harness/db/' || true)
if [ -n "$sql" ]; then echo "FAIL rooms_sql: SQL text outside harness/db/:"; echo "$sql"; fail=1; fi
[ "$fail" -eq 0 ] && echo "ok rooms_sql"
exit "$fail"
