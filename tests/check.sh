# check.sh: the assertions the shell tests share (source it; the shell twin of check.h).
# check NAME EXPR evaluates EXPR, counts it, and names it on stderr when it fails; checks_done FILE prints
# the closing "ok|not ok FILE: N checks, N failed" line and returns non-zero when any check failed.
fails=0; checks=0
check() { checks=$((checks+1)); if ! eval "$2"; then fails=$((fails+1)); echo "FAIL: $1" >&2; fi; }
checks_done() { echo "$( [ "$fails" -eq 0 ] && echo ok || echo not ok ) $1: $checks checks, $fails failed"; [ "$fails" -eq 0 ]; }
