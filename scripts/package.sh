#!/usr/bin/env bash
# Builds agentkv's Debian packages for this machine's architecture and checks
# them with lintian:
#   agentkv_<version>_<arch>.deb               /usr/bin/agentkv, the systemd
#       unit, /etc/default/agentkv (a conffile), the man page, examples
#   agentkv-llama-server_<version>_<arch>.deb  llama-server at the pinned
#       commit, built for the portable baseline (x86-64-v3 on amd64: AVX2,
#       no AVX-512 or AMX), as /usr/lib/agentkv/llama-server
# into build-package/ (or OUT_DIR), with Debian's hardening flags
# (dpkg-buildflags). <version> is git's (cmake/version.cmake):
# <project version>+<commits>.g<commit>, so a later commit upgrades an
# earlier one. lintian must find no error; the warnings it may give are in
# packaging/deb/lintian-overrides, each with its reason.
#
# Usage: scripts/package.sh [OUT_DIR]
# Needs scripts/setup.sh's packages (help2man, lintian, dpkg-dev) and its
# llama.cpp source cache; builds the portable llama-server if it is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/build-package}
JOBS=$(nproc)
arch=$(dpkg --print-architecture)

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

case "$arch" in
  amd64) variant=x86-64-v3 ;;
  *) echo "package.sh: $arch: only amd64 is packaged by this script so far" >&2; exit 2 ;;
esac
say "llama-server: the $variant build"
llama=$(bash "$ROOT/scripts/setup.sh" --build-llama "$variant")
# CPack strips the files it builds, not a binary handed to it: strip a copy.
mkdir -p "$OUT"
strip --strip-unneeded -o "$OUT/llama-server" "$llama"
llama=$OUT/llama-server

say "agentkv: building in $OUT"
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cmake -S "$ROOT" -B "$OUT" -DCMAKE_BUILD_TYPE=None -DAGENTKV_BUILD_TESTS=OFF \
  -DCMAKE_CXX_FLAGS="$(dpkg-buildflags --get CXXFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
  -DCMAKE_EXE_LINKER_FLAGS="$(dpkg-buildflags --get LDFLAGS)" \
  -DAGENTKV_PACKAGE_LLAMA_SERVER="$llama" >/dev/null
cmake --build "$OUT" -j"$JOBS" >/dev/null
rm -f "$OUT"/*.deb
(cd "$OUT" && cpack -G DEB >/dev/null)
# The package's version and its binary's must agree (a commit made during
# the build could part them: cpack reads the version before it rebuilds).
deb=$(ls "$OUT"/agentkv_*.deb)
unpacked=$(mktemp -d)
dpkg-deb -x "$deb" "$unpacked"
built=$("$unpacked/usr/bin/agentkv" --version)
rm -rf "$unpacked"
if [ "$built" != "$(dpkg-deb -f "$deb" Version)" ]; then
  echo "package.sh: $deb holds agentkv $built: build again" >&2
  exit 1
fi

say "lintian"
# Overrides cannot ride inside a CPack package's tree, so they are passed
# here: each line of packaging/deb/lintian-overrides is a tag and its reason.
suppress=$({ grep -v '^#' "$ROOT/packaging/deb/lintian-overrides" || true; } | cut -d' ' -f1 | paste -sd, -)
lintian --fail-on error,warning ${suppress:+--suppress-tags "$suppress"} "$OUT"/*.deb
ls -1 "$OUT"/*.deb
