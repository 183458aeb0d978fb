#!/usr/bin/env bash
# blas_core_test.sh: every command runs OpenBLAS's AVX2 kernels on an AVX2 CPU although Debian's OpenBLAS
# falls back to SSE3 ones on CPUs it does not know (cli/blas_core.c re-executes with
# OPENBLAS_CORETYPE=Haswell): with the variable unset, `repro env --json` names an AVX2 kernel set and
# records the variable; a user's own choice is kept; arguments and exit codes survive the re-exec.
set -u
REPRO=${REPRO:-bin/repro}
fail=0
check() { if eval "$1"; then :; else echo "FAIL blas_core_test: $2"; fail=1; fi; }
command -v python3 >/dev/null || { echo "skip: python3 not installed"; exit 0; }
field() {   # field KEY: from the JSON on stdin, environment.KEY, or environment.variables.KEY
  python3 -c 'import json,sys; e=json.load(sys.stdin)["environment"]; k=sys.argv[1]; print(e.get(k, e.get("variables", {}).get(k, "")))' "$1"
}
out=$(env -u OPENBLAS_CORETYPE "$REPRO" env --json)
blas=$(field blas <<<"$out")
check '[ -n "$blas" ]' "repro env --json records no blas (got: ${out:0:300})"
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  check 'grep -qiwE "haswell|zen|skylakex|cooperlake|sapphirerapids" <<<"$blas"' \
        "AVX2 CPU, OPENBLAS_CORETYPE unset: OpenBLAS runs '$blas', not an AVX2 kernel set"
else
  echo "skip: this CPU has no AVX2 and FMA: the kernel choice is OpenBLAS's own"
fi
pres=$(OPENBLAS_CORETYPE=Prescott "$REPRO" env --json)
check 'grep -qw Prescott <<<"$(field blas <<<"$pres")" && [ "$(field OPENBLAS_CORETYPE <<<"$pres")" = Prescott ]' \
      "a user's OPENBLAS_CORETYPE=Prescott was not kept: $(field blas <<<"$pres")"
v=$(env -u OPENBLAS_CORETYPE "$REPRO" --version)
check '[ "${v#repro }" != "$v" ]' "repro --version after the re-exec printed '$v'"
env -u OPENBLAS_CORETYPE "$REPRO" no-such-command >/dev/null 2>&1
code=$?
check '[ $code -eq 2 ]' "repro no-such-command after the re-exec exited $code (want 2)"
[ $fail -eq 0 ] && echo "ok blas_core_test"
exit $fail
