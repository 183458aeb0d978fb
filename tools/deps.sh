#!/usr/bin/env bash
# deps.sh [--yes] [--test]: install the Debian packages repro needs when they are missing (as root or
# through sudo), or print the exact apt-get line to run. --test adds what the test suite uses
# (chromium for the report check, clang for fuzzing). Exits 0 when everything is present afterwards.
set -u
yes=0; test=0
for a in "$@"; do case "$a" in --yes) yes=1;; --test) test=1;; esac; done
pkgs="build-essential pkg-config git liblua5.4-dev lua5.4 libluajit-5.1-dev luajit libsqlite3-dev sqlite3 \
libcurl4-openssl-dev curl libopenblas-dev zlib1g-dev gnuplot-nox python3 ca-certificates"
[ "$test" = 1 ] && pkgs="$pkgs chromium clang libclang-rt-14-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo"; else
  echo "repro needs these Debian packages:$missing"; echo "run: sudo apt-get update && sudo $line"; exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq && $sudo $line >/dev/null || { echo "failed: $line"; exit 1; }
