#!/usr/bin/env bash
# deps.sh [--test] [--fuzz]: install the Debian packages repro needs when they are missing, then exit 0.
#   (no flag)  what building and `make demo` need;
#   --test     also every program the test suite calls (make test runs this): curl (safe_test.sh), chromium
#              (the report's browser check); sqlite3, python3, gnuplot and git are in the base set;
#   --fuzz     also clang and its libFuzzer runtime (make fuzz).
# How: as root it runs apt-get itself; otherwise through sudo when sudo works without a password, or on a
# terminal where sudo can ask for one; otherwise it prints the exact apt-get line to run as root and exits
# 1 when a build package is missing, 0 with a warning when only test or fuzz tools are (their tests then
# skip, and `make test` lists why). A failed apt-get exits 1 naming the line.
set -u
test=0; fuzz=0
for a in "$@"; do
  case "$a" in
    --test) test=1;; --fuzz) fuzz=1;; --yes) ;;   # --yes: accepted for old callers; apt-get always runs with -y
    -h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0;;
    *) echo "deps.sh: unknown option '$a' (valid: --test, --fuzz, --help)" >&2; exit 2;;
  esac
done
base="build-essential pkg-config git liblua5.4-dev lua5.4 libluajit-5.1-dev luajit libsqlite3-dev sqlite3 \
libcurl4-openssl-dev libopenblas-dev zlib1g-dev gnuplot-nox python3 ca-certificates"
extra=""
[ "$test" = 1 ] && extra="$extra curl chromium"
[ "$fuzz" = 1 ] && extra="$extra clang libclang-rt-14-dev"
missing=""; missing_base=0
for p in $base $extra; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
    case " $base " in *" $p "*) missing_base=1;; esac
  fi
done
[ -z "$missing" ] && exit 0
line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ]; then sudo=""
elif command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then sudo="sudo"
else
  echo "repro needs these Debian packages:$missing"
  echo "run as root: apt-get update && $line"
  if [ "$missing_base" = 1 ]; then exit 1; fi
  echo "(only test tools are missing: the tests that need them skip and say so)"
  exit 0
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive $line >/dev/null || { echo "failed: ${sudo:+sudo }$line"; exit 1; }
