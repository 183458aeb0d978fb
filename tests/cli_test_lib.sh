# cli_test_lib.sh: what the CLI shell tests share (sourced, not run): REPRO as an absolute path, a
# temporary folder $tmp removed at exit (read-only bits lifted first), a registry REPRO_DB inside it,
# check NAME CONDITION (counts checks and failures), and q SQL (a query on that registry).
set -u
REPRO=${REPRO:-bin/repro}
REPRO=$(cd "$(dirname "$REPRO")" && pwd)/$(basename "$REPRO")
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
export REPRO_DB=$tmp/results/repro.db
fails=0; checks=0
check() { checks=$((checks+1)); if ! eval "$2"; then fails=$((fails+1)); echo "FAIL: $1" >&2; fi; }
q() { sqlite3 "$REPRO_DB" "$1"; }
