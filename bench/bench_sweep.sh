#!/usr/bin/env bash
# bench_sweep.sh REPRO: the local runner's overhead per point for a trivial experiment (tests/runners/hold.lua:
# 10 metric points and a summary), against the same experiment run as plain `repro run`s in the same
# benchmark (the reference). Overhead per point = (sweep wall - plain runs wall) / points, target < 100 ms.
# One worker (--jobs 1) so that the two are comparable on a loaded machine; the load average is printed.
set -u
repro=${1:-bin/repro}
n=${BENCH_SWEEP_POINTS:-40}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
t0=$(now)
for i in $(seq "$n"); do "$repro" run tests/runners/hold.lua --seed "$i" --db "$tmp/plain.db" >/dev/null 2>&1 || { echo "plain run failed"; exit 1; }; done
t1=$(now)
"$repro" sweep tests/runners/hold.lua --jobs 1 --db "$tmp/sweep.db" seed=1.."$n" >/dev/null 2>&1 || { echo "sweep failed"; exit 1; }
t2=$(now)
"$repro" sweep tests/runners/hold.lua --jobs 1 --db "$tmp/sweep.db" seed=1.."$n" >/dev/null 2>&1 || { echo "resumed sweep failed"; exit 1; }
t3=$(now)
python3 - "$n" "$t0" "$t1" "$t2" "$t3" <<'PY'
import sys
n = int(sys.argv[1]); t0, t1, t2, t3 = map(float, sys.argv[2:])
plain, sweep, resume = (t1 - t0) / n * 1e3, (t2 - t1) / n * 1e3, (t3 - t2) / n * 1e3
over = sweep - plain
print(f"sweep {n} points, --jobs 1: {sweep:.1f} ms/point; plain `repro run` (reference, same run): {plain:.1f} ms/point")
print(f"sweep overhead per point: {over:.1f} ms (target < 100 ms: {'ok' if over < 100 else 'ABOVE TARGET'}); "
      f"whole point through the sweep {sweep:.1f} ms ({'ok' if sweep < 100 else 'above 100 ms'})")
print(f"re-running the finished sweep (all {n} points skipped): {resume:.2f} ms/point")
PY
