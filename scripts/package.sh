#!/usr/bin/env bash
# Builds agentkv's Debian packages for this machine's architecture, or for
# arm64 from an amd64 machine (cross-built), and checks them with lintian:
#   agentkv_<version>_<arch>.deb               /usr/bin/agentkv, the systemd
#       unit, /etc/default/agentkv (a conffile), the man page, examples
#   agentkv-llama-server_<version>_<arch>.deb  llama-server at the pinned
#       commit, built for the portable baseline (x86-64-v3 on amd64: AVX2,
#       no AVX-512 or AMX; armv8.2-a+dotprod+fp16 on arm64, Graviton 2's), as
#       /usr/lib/agentkv/llama-server
# into build-package/ (or OUT_DIR), with Debian's hardening flags
# (dpkg-buildflags). <version> is git's (cmake/version.cmake):
# <project version>+<commits>.g<commit>, so a later commit upgrades an
# earlier one. lintian must find no error; the warnings it may give are in
# packaging/deb/lintian-overrides, each with its reason.
#
# Usage: scripts/package.sh [--arch arm64] [OUT_DIR]
# Needs scripts/setup.sh's packages (help2man, lintian, dpkg-dev) and its
# llama.cpp source cache; builds the portable llama-server if it is missing.
# --arch arm64 on amd64: the cross toolchain, the arm64 libraries and the
# aarch64 llama-server come from scripts/arm64-check.sh (installed and
# built by it when missing); the binary runs under qemu-user for its man
# page and its version. OUT_DIR defaults to build-package (build-package-arm64).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=$(nproc)
host=$(dpkg --print-architecture)
arch=$host
if [ "${1:-}" = --arch ]; then
  arch=${2:?package.sh: --arch needs amd64 or arm64}
  shift 2
fi

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

cross=()  # the cmake arguments of a cross build
run=()    # what runs a binary built for $arch here
strip="strip"
cc=gcc
case "$host/$arch" in
  amd64/amd64)
    OUT=${1:-$ROOT/build-package}
    say "llama-server: the x86-64-v3 build"
    llama=$(bash "$ROOT/scripts/setup.sh" --build-llama x86-64-v3)
    ;;
  amd64/arm64)
    OUT=${1:-$ROOT/build-package-arm64}
    say "llama-server: the aarch64 cross build (scripts/arm64-check.sh)"
    llama=$(bash "$ROOT/scripts/arm64-check.sh" --print-llama-server)
    cross=(-DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake")
    run=(qemu-aarch64-static)
    strip=aarch64-linux-gnu-strip
    cc=aarch64-linux-gnu-gcc
    ;;
  *) echo "package.sh: $arch packages on $host: not done by this script so far" >&2; exit 2 ;;
esac
# Debian's build flags, and dpkg-shlibdeps' library paths, for $arch.
in_arch() { CC=$cc dpkg-architecture -a"$arch" -c "$@"; }
# CPack strips the files it builds, not a binary handed to it: strip a copy.
mkdir -p "$OUT"
"$strip" --strip-unneeded -o "$OUT/llama-server" "$llama"
llama=$OUT/llama-server

say "agentkv: building in $OUT"
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
cmake -S "$ROOT" -B "$OUT" "${cross[@]}" -DCMAKE_BUILD_TYPE=None -DAGENTKV_BUILD_TESTS=OFF \
  -DCMAKE_CXX_FLAGS="$(in_arch dpkg-buildflags --get CXXFLAGS) $(in_arch dpkg-buildflags --get CPPFLAGS)" \
  -DCMAKE_EXE_LINKER_FLAGS="$(in_arch dpkg-buildflags --get LDFLAGS)" \
  -DAGENTKV_PACKAGE_LLAMA_SERVER="$llama" >/dev/null
cmake --build "$OUT" -j"$JOBS" >/dev/null
rm -f "$OUT"/*.deb
(cd "$OUT" && in_arch cpack -G DEB >/dev/null)
# The package's version and its binary's must agree (a commit made during
# the build could part them: cpack reads the version before it rebuilds).
deb=$(ls "$OUT"/agentkv_*_"$arch".deb)
unpacked=$(mktemp -d)
dpkg-deb -x "$deb" "$unpacked"
built=$("${run[@]}" "$unpacked/usr/bin/agentkv" --version)
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
