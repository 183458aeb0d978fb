#!/usr/bin/env bash
# report_test.sh: `repro report` end to end: record runs of the example experiment into a fresh
# database, write the report, check its tables and provenance, that it is self-contained (every image a
# data: URI) and, in headless Chromium, that every image decodes (the page's script counts
# naturalWidth > 0 into <body data-images="ok/total">). A deleted PNG must turn into a note, never a
# broken image. Skips the browser part when chromium is not installed.
set -u
REPRO=${REPRO:-bin/repro}
tmp=$(mktemp -d /tmp/repro-report-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$1"; then :; else echo "FAIL report_test: $2"; fail=1; fi; }

db=$tmp/repro.db
"$REPRO" run experiments/example.lua --preset smoke --db "$db" >"$tmp/run1.log" 2>&1
check '[ $? -eq 0 ]' "first run of experiments/example.lua failed: $(tail -3 "$tmp/run1.log")"
"$REPRO" run experiments/example.lua --preset smoke --db "$db" >"$tmp/run2.log" 2>&1
check '[ $? -eq 0 ]' "second run failed"

"$REPRO" report --db "$db" --out "$tmp/report.html" >"$tmp/report.log" 2>&1
check '[ $? -eq 0 ]' "repro report failed: $(cat "$tmp/report.log")"
check '[ -s "$tmp/report.html" ] && [ -s "$tmp/report.md" ]' "report.html / report.md not written"
html=$tmp/report.html
# Only the latest run of the same experiment + params; --all shows both.
check 'grep -q "run 2 ·" "$html" && ! grep -q "run 1 ·" "$html"' "default report should show run 2 only"
check 'grep -q "pi at the largest size" "$html" && grep -q "pi at the largest size" "$tmp/report.md"' "target row missing"
check 'grep -q "class=\"pass\">pass" "$html"' "no passing status cell"
check 'grep -q "(statistical: z standard errors)" "$html" && grep -q "pi within 3 standard errors" "$tmp/report.md"' "statistical target not shown as such"
commit=$(git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
check 'grep -q "$commit" "$html"' "commit $commit not in the provenance"
nfig=$("$REPRO" show 2 --db "$db" --json | grep -c '"rendered": 1')
nimg=$(grep -o '<img ' "$html" | wc -l)
if command -v gnuplot >/dev/null; then
  check '[ "$nimg" -ge 1 ] && [ "$nimg" -eq "$nfig" ]' "expected $nfig embedded images, found $nimg"
else
  echo "skip: gnuplot not installed: no figures to embed"
fi
check '! grep -Eo "src=\"[^\"]*\"" "$html" | grep -vq "^src=\"data:image/png;base64,"' "an image is not a data: URI"
check '! grep -Eq "<link|src=\"(https?|file):" "$html"' "the page loads an external resource"

"$REPRO" report --db "$db" --all --out "$tmp/all.html" >/dev/null 2>&1
check 'grep -q "run 1 ·" "$tmp/all.html" && grep -q "run 2 ·" "$tmp/all.html"' "--all should show both runs"

# A figure whose PNG disappeared becomes a note, not a broken image.
png=$(ls "$tmp"/figures/example_pi/run-2/*.png 2>/dev/null | head -1)
if [ -n "$png" ]; then
  rm -f "$png"
  "$REPRO" report --db "$db" --out "$tmp/missing.html" >/dev/null 2>&1
  n2=$(grep -o '<img ' "$tmp/missing.html" | wc -l)
  check '[ "$n2" -eq $((nimg - 1)) ] && grep -q "not rendered or its image is missing" "$tmp/missing.html"' "missing PNG not reported as such"
fi

# Errors: usage 2, missing database 4.
"$REPRO" report --bogus >/dev/null 2>&1; check '[ $? -eq 2 ]' "unknown option should exit 2"
"$REPRO" report --db "$tmp/none/x.db" >/dev/null 2>&1; check '[ $? -eq 4 ]' "missing database should exit 4"
"$REPRO" report --help | grep -q "usage: repro report"; check '[ $? -eq 0 ]' "--help"

# The other registry commands on the same database.
check '[ "$("$REPRO" runs --json --db "$db" | grep -c "\"experiment\": \"example_pi\"")" -eq 2 ]' "repro runs --json should list 2 runs"
"$REPRO" runs --db "$db" --status finished | grep -q "example_pi"; check '[ $? -eq 0 ]' "repro runs table"
"$REPRO" show 1 --db "$db" | grep -q "pi at the largest size"; check '[ $? -eq 0 ]' "repro show lists targets"
if command -v gnuplot >/dev/null; then
  "$REPRO" plot example_pi --db "$db" --out "$tmp/replot" >/dev/null 2>&1
  check '[ $? -eq 0 ] && [ "$(ls "$tmp"/replot/*.png | wc -l)" -eq "$nfig" ] && [ "$(ls "$tmp"/replot/*.svg | wc -l)" -eq "$nfig" ]' \
        "repro plot should re-render $nfig figures from the database"
fi
REPRO_GNUPLOT=/nonexistent/gnuplot "$REPRO" plot 1 --db "$db" --out "$tmp/nognuplot" >/dev/null 2>&1
check '[ $? -eq 1 ] && [ -s "$tmp/nognuplot/rmse.gp" ] && [ -s "$tmp/nognuplot/rmse.dat" ] && ! [ -e "$tmp/nognuplot/rmse.png" ]' \
      "repro plot without gnuplot: exit 1, data and script kept"
"$REPRO" show 1 --db "$db" | grep -q "NOT rendered"; check '[ $? -eq 0 ]' "figure should be marked not rendered"
head=$(git rev-parse HEAD 2>/dev/null)
if [ -n "$head" ]; then
  "$REPRO" compare "$head" "$head" --db "$db" >"$tmp/cmp.txt" 2>&1
  check '[ $? -eq 0 ] && grep -q "0 regressions" "$tmp/cmp.txt"' "repro compare HEAD HEAD: $(tail -2 "$tmp/cmp.txt")"
fi

# Seeds: runs that differ only by seed are aggregated as mean ± standard error over the seeds (the
# latest run per seed); a repeated seed counts once, other params are another group.
check '! grep -q "Over [0-9]* seeds" "$tmp/report.md"' "two runs of one seed are not a seed aggregate"
sdb=$tmp/seeds.db
for sd in 1 2 3 3; do "$REPRO" run experiments/example.lua --preset smoke --seed $sd --db "$sdb" >/dev/null 2>&1; done
"$REPRO" run experiments/example.lua --preset smoke --seed 4 repeats=4 --db "$sdb" >/dev/null 2>&1
"$REPRO" report --db "$sdb" --out "$tmp/seeds.html" >/dev/null 2>&1
check '[ $? -eq 0 ] && grep -q "Over 3 seeds" "$tmp/seeds.md" && grep -q "Over 3 seeds" "$tmp/seeds.html"' "report should aggregate 3 seeds"
# the expected row, computed here from the registry: mean and sample std / sqrt(3) over runs 1, 2, 4
exp_row=$(sqlite3 "$sdb" "select value from summaries where name='convergence_slope' and run_id in (1,2,4)" |
  awk '{ v[NR] = $1; s += $1 } END { m = s / NR; for (i = 1; i <= NR; i++) q += (v[i] - m) ^ 2;
         printf "| convergence\\_slope | %.6g | %.3g | %d |", m, sqrt(q / (NR - 1)) / sqrt(NR), NR }')
check 'grep -qF "$exp_row" "$tmp/seeds.md"' "seed aggregate row: expected '$exp_row', got '$(grep convergence "$tmp/seeds.md" | tail -1)'"
check '[ "$(grep -c "Over [0-9]* seeds" "$tmp/seeds.md")" -eq 1 ]' "the repeats=4 run is its own group (one seed: no aggregate)"

chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$chrome" ]; then
  echo "skip: chromium not installed: report not rendered in a browser"
else
  for page in "$html" "$tmp/missing.html"; do
    [ -f "$page" ] || continue
    dom=$(timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --user-data-dir="$tmp/chrome" \
          --virtual-time-budget=10000 --dump-dom "file://$page" 2>/dev/null)
    imgs=$(printf '%s' "$dom" | grep -o '<body data-images="[0-9]*/[0-9]*"' | grep -o '[0-9]*/[0-9]*')
    ok=${imgs%/*}; total=${imgs#*/}
    check '[ -n "$imgs" ] && [ "$ok" = "$total" ] && [ "$total" -eq "$(grep -o "<img " "$page" | wc -l)" ]' \
          "chromium: $(basename "$page"): images loaded ${imgs:-?} (expected all)"
  done
fi
if [ "$fail" -eq 0 ]; then echo "ok report_test"; else echo "not ok report_test"; fi
exit "$fail"
