#!/usr/bin/env bash
# deps_test.sh: tools/deps.sh, the set-up that `make demo` and `make test` run, with apt-get, sudo, id and
# dpkg-query replaced by recording fakes on PATH (nothing is installed): --test asks for every program the
# tests call (curl, chromium, sqlite3, python3, gnuplot, git); as root it runs apt-get itself; as a user
# with sudo it goes through sudo; without either it prints the exact apt-get line (exit 1 when a build
# package is missing, 0 when only test tools are); `make test` runs deps.sh --test before building.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/check.sh"

mkdir -p "$tmp/bin"
fake() { printf '#!/bin/sh\n%s\n' "$2" > "$tmp/bin/$1"; chmod +x "$tmp/bin/$1"; }
fake apt-get 'echo "apt-get $*" >> "$LOG"'
fake id 'echo "$FAKE_UID"'
# dpkg-query: every package in $HAVE is installed, no other
fake dpkg-query 'p=$3; case " $HAVE " in *" $p "*) printf "install ok installed";; *) exit 1;; esac'
run() {   # run UID HAVE [sudo] -- deps.sh args: output in $tmp/out, apt-get calls in $tmp/log, exit in $rc
  local uid=$1 have=$2 with_sudo=$3; shift 3
  rm -f "$tmp/bin/sudo" "$tmp/log"; : > "$tmp/log"
  [ "$with_sudo" = sudo ] && fake sudo 'echo "sudo $*" >> "$LOG"; [ "$1" = -n ] && shift; "$@"'
  PATH="$tmp/bin:$PATH" LOG="$tmp/log" FAKE_UID=$uid HAVE="$have" bash "$root/tools/deps.sh" "$@" > "$tmp/out" 2>&1 < /dev/null
  rc=$?
}
base="build-essential pkg-config git liblua5.4-dev lua5.4 libluajit-5.1-dev luajit libsqlite3-dev sqlite3 libcurl4-openssl-dev libopenblas-dev zlib1g-dev gnuplot-nox python3 ca-certificates"

run 0 "$base curl chromium" none --test
check "nothing missing: no apt-get, exit 0" "[ $rc -eq 0 ] && [ ! -s $tmp/log ]"
run 0 "" none --test
check "--test asks for every program the tests call" \
  "(for p in curl chromium sqlite3 python3 gnuplot-nox git; do grep -q \"install .* \$p\\b\" $tmp/log || exit 1; done)"
check "as root: apt-get update then install, no sudo" "[ $rc -eq 0 ] && head -n 1 $tmp/log | grep -q '^apt-get update' && ! grep -q sudo $tmp/log"
run 1000 "$base" sudo --test
check "as a user with sudo: through sudo, only what is missing" \
  "[ $rc -eq 0 ] && grep -q '^sudo apt-get update' $tmp/log && grep -q 'apt-get install -y --no-install-recommends curl chromium$' $tmp/log"
run 1000 "$base" none --test
check "no root, no sudo, only test tools missing: the exact line, exit 0" \
  "[ $rc -eq 0 ] && grep -qx 'run as root: apt-get update && apt-get install -y --no-install-recommends curl chromium' $tmp/out && [ ! -s $tmp/log ]"
run 1000 "" none
check "no root, no sudo, build packages missing: the exact line, exit 1" "[ $rc -eq 1 ] && grep -q '^run as root: apt-get update && apt-get install -y --no-install-recommends build-essential' $tmp/out"
fake apt-get 'echo "apt-get $*" >> "$LOG"; case "$1" in install) exit 100;; esac'
run 0 "" none
check "a failing apt-get is exit 1 naming the line" "[ $rc -eq 1 ] && grep -q '^failed: apt-get install' $tmp/out"
run 0 "" none --nonsense
check "an unknown option is a usage error (exit 2) naming it" "[ $rc -eq 2 ] && grep -q \"unknown option '--nonsense'\" $tmp/out"
check "make test runs deps.sh --test before building" \
  "make -C '$root' -n test 2>/dev/null | grep -v "^make" | head -n 1 | grep -q 'tools/deps.sh --test'"
check "make demo runs deps.sh" "make -C '$root' -n demo 2>/dev/null | grep -q 'tools/deps.sh'"
checks_done deps_test.sh
