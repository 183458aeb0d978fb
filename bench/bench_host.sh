#!/usr/bin/env bash
# bench_host.sh REPRO: start-up and logging cost of the host, as whole commands (medians of repeated
# runs): `repro --help` and an empty experiment run (targets: under 50 ms each), and metric points per
# second logged from Lua through ctx:log into SQLite (target: at least 1,000,000 per second).
set -u
REPRO=${1:-bin/repro}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export REPRO_DB=$tmp/repro.db
median_ms() {  # median wall time in ms of running "$@" 21 times
  for _ in $(seq 21); do
    s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000 ))
  done | sort -n | sed -n 11p | awk '{printf "%.2f", $1 / 1000}'
}
cat > "$tmp/empty.lua" <<'EOF2'
return require("repro.experiment").define { name = "empty", run = function() end }
EOF2
cat > "$tmp/log.lua" <<'EOF2'
return require("repro.experiment").define { name = "log", params = { n = { type = "integer", default = 2000000 } },
  run = function(ctx, p)
    local t0 = os.clock()
    for i = 1, p.n do ctx:log("loss", i, 1 / i) end
    ctx:summary("seconds_cpu", os.clock() - t0)
  end }
EOF2
help=$(median_ms "$REPRO" --help)
empty=$(median_ms "$REPRO" run "$tmp/empty.lua")
s=$(date +%s%N); "$REPRO" run "$tmp/log.lua" >/dev/null 2>&1; e=$(date +%s%N)
rate=$(awk -v ns=$((e - s)) 'BEGIN { printf "%.0f", 2000000 / (ns / 1e9) }')
printf 'host  repro --help          %8s ms   target 50 ms   ratio %s\n' "$help" "$(awk -v a="$help" 'BEGIN{printf "%.2f", a/50}')"
printf 'host  empty run (recorded) %8s ms   target 50 ms   ratio %s\n' "$empty" "$(awk -v a="$empty" 'BEGIN{printf "%.2f", a/50}')"
printf 'host  Lua ctx:log -> SQLite %7s points/s (whole run incl. start-up)   target 1000000   ratio %s\n' "$rate" "$(awk -v a="$rate" 'BEGIN{printf "%.2f", a/1e6}')"
