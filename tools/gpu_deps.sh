#!/usr/bin/env bash
# gpu_deps.sh: fetch, on a machine with apt (this project's CPU machines, Debian bookworm), the .deb packages
# of the libraries the full build links besides CUDA (Lua 5.4, SQLite, libcurl, OpenBLAS, zlib headers) and
# the libraries they load, into .gpu-deps/ (git-ignored). A GPU machine whose image lacks them (nothing can be
# fetched there) gets the folder carried with the working tree; tools/gpu_check.sh then unpacks it into
# .gpu-deps/root (never into /) and builds against it with an rpath, so the full build, bin/repro and the
# registry runs work there too. The C library, the compiler's runtime and other base packages are not fetched:
# every machine has them (bookworm's glibc 2.36 is older than the GPU image's, so these libraries load there).
# Exit: 0 fetched (or already there), 1 apt-get failed.
set -eu
cd "$(dirname "$0")/.."
dir=.gpu-deps
pkgs="liblua5.4-0 liblua5.4-dev libsqlite3-0 libsqlite3-dev libcurl4 libcurl4-openssl-dev zlib1g-dev
  libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0
  libbrotli1 libcom-err2 libffi8 libgmp10 libgnutls30 libgssapi-krb5-2 libhogweed6 libidn2-0 libk5crypto3
  libkeyutils1 libkrb5-3 libkrb5support0 libldap-2.5-0 libnettle8 libnghttp2-14 libp11-kit0 libpsl5 librtmp1
  libsasl2-2 libsasl2-modules-db libdb5.3 libssh2-1 libssl3 libtasn1-6 libunistring2 libzstd1"
mkdir -p "$dir"
# shellcheck disable=SC2086
(cd "$dir" && apt-get download $pkgs) || { echo "gpu_deps: apt-get download failed (apt-get update first?)" >&2; exit 1; }
echo "gpu_deps: $(ls "$dir"/*.deb | wc -l) packages, $(du -sh "$dir" | cut -f1) in $dir (carry it: run(carry=[\"$dir\"]))"
