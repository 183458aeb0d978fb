#!/usr/bin/env bash
# pack_test.sh: packed scoring (nn/pack.c: many items per forward) gives the same per-choice
# log-likelihoods as one sequence per forward (REPRO_PACK=0) within 1e-5 relative (float rounding of
# different matmul shapes; about 6e-5 absolute on sums of about 30 nats), on 60 ARC-Easy items with
# stories260K. Skips without the mirror.
set -u
REPRO=${REPRO:-bin/repro}
model=${REPRO_MIRROR:-}/stories260K/stories260K.bin
if [ -z "${REPRO_MIRROR:-}" ] || [ ! -f "$model" ]; then echo "skip: stories260K not in the mirror"; echo "ok pack_test: 0 checks"; exit 0; fi
tmp=$(mktemp -d /tmp/repro-pack-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/ll.lua" <<L
local eval, model = require("repro.eval"), require("repro.model")
local m = model.load("$model")
local r = eval.evaluate(m, eval.load("arc_easy"), { limit = 60, per_item = true })
local f = io.open(os.getenv("OUT"), "w")
for _, it in ipairs(r.items) do for _, v in ipairs(it.ll) do f:write(string.format("%.9g\n", v)) end end
f:close()
L
OUT=$tmp/packed REPRO_PACK=1 "$REPRO" exec "$tmp/ll.lua" || { echo "FAIL pack_test: packed run"; exit 1; }
OUT=$tmp/single REPRO_PACK=0 "$REPRO" exec "$tmp/ll.lua" || { echo "FAIL pack_test: unpacked run"; exit 1; }
paste "$tmp/packed" "$tmp/single" | awk '{ d = $1 - $2; if (d < 0) d = -d; a = $2 < 0 ? -$2 : $2; if (d > m) m = d; if (d / (a > 1 ? a : 1) > q) q = d / (a > 1 ? a : 1); n++ }
  END { if (n < 200 || q > 1e-5) { printf "FAIL pack_test: %d choices, max |packed - unpacked| = %g (relative %g)\n", n, m, q; exit 1 }
        printf "ok pack_test: %d choices, max |packed - unpacked| = %.2g, relative %.2g\n", n, m, q }'
