#!/usr/bin/env bash
# Proves agentkv on Arm64 from an x86-64 Debian/Ubuntu machine, idempotently:
#   1. the cross toolchain, qemu-user and the arm64 (multiarch) packages of
#      agentkv's dependencies;
#   2. llama-server at the pinned commit, cross-built for aarch64, cached in
#      ~/.cache/agentkv/arm64 keyed by commit and target;
#   3. agentkv and its tests, cross-built for aarch64 into build-arm64/ with
#      cmake/aarch64-linux-gnu.cmake;
#   4. under qemu-user: the unit and component tests, and the integration
#      tests listed in INTEGRATION below with the aarch64 llama-server on the
#      test model (--all-integration: every one);
#   5. scripts/graviton.sh --dry-run checked against the unit it installs,
#      and configs/agentkv.service verified (systemd-analyze) with the
#      aarch64 binaries where graviton.sh puts them.
# A re-run finds the builds cached and only runs the tests.
#
# Emulation proves correctness only: never read a speed from it. Not built
# here: KleidiAI (-DGGML_CPU_KLEIDIAI=ON makes CMake download its sources at
# configure time, so it needs the network, and only Arm hardware can say it
# helps), SVE and i8mm kernels (the target is armv8.2-a+dotprod+fp16, the
# Graviton 2 baseline, which qemu-user runs).
#
# Usage: scripts/arm64-check.sh [--skip-packages] [--all-integration] [--no-tests]
#        scripts/arm64-check.sh --print-llama-server  (steps 1 and 2 only; prints
#        the aarch64 llama-server's path, for scripts/package.sh --arch arm64)
# Needs the pinned llama.cpp source and the test models that scripts/setup.sh
# caches; runs setup.sh first (x86 build included) when they are missing.
# Cache: $AGENTKV_CACHE_DIR, else $XDG_CACHE_HOME/agentkv, else ~/.cache/agentkv
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AGENTKV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentkv}
ARM=$CACHE/arm64
BUILD=$ROOT/build-arm64
TOOLCHAIN=$ROOT/cmake/aarch64-linux-gnu.cmake
MARCH=${AGENTKV_ARM64_MARCH:-armv8.2-a+dotprod+fp16}
JOBS=${AGENTKV_JOBS:-$(nproc)}
NICE=(nice -n 19)  # a heavy build must not starve whatever else runs here
SKIP_PACKAGES=0
ALL_INTEGRATION=0
RUN_TESTS=1
PRINT_LLAMA=0

# Integration tests run under emulation by default: returning agents, the
# bit-exact restore, crash recovery (agentkv killed, llama-server crashed or
# restarted), damaged memory, a graceful stop, the binary as a user runs it.
INTEGRATION=(
  'RealLlamaTest.TheTestModelsOutputDependsOnItsContext'
  'RealLlamaTest.ReturningAgentsReuseAsMuchKVAsAgentsThatWereNeverEvicted'
  'RealLlamaTest.AConversationRestoredBetweenTurnsGeneratesTheSameTokens'
  'Families/ModelFamily.AReturningAgentIsRestoredWithItsWholeContext/llama'
  'DurabilityTest.AgentkvKilledAfterASaveRestoresTheSavedMemoryOnRestart'
  'DurabilityTest.DamagedMemoryFallsBackToAPrefillWithTheSameAnswer'
  'DurabilityTest.AgentsContinueThroughALlamaServerRestart'
  'Supervision.ACrashedLlamaServerIsRestartedWhileRequestsWait'
  'GracefulStop.ASignalToTheWholeProcessGroupStillSavesTheDirtyAgentWithinTheDeadline'
  'ServeBinary.ServesTheDemoModelAndExitsCleanlyOnSigterm'
)

# Tests not run under emulation, each with its reason ('name|reason'). None:
# every unit and component test passed under qemu-user 7.2 here, and so did
# the integration tests above; the other integration tests are left out only
# for time (--all-integration runs them). Sanitizer builds and fuzzing are not
# attempted under emulation (qemu-user does not give AddressSanitizer and
# ThreadSanitizer the address-space layout they need).
SKIPPED=()

while [ $# -gt 0 ]; do
  case "$1" in
    --skip-packages) SKIP_PACKAGES=1 ;;
    --all-integration) ALL_INTEGRATION=1 ;;
    --no-tests) RUN_TESTS=0 ;;
    --print-llama-server) PRINT_LLAMA=1 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "arm64-check.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'arm64-check.sh: %s\n' "$*" >&2; exit 1; }

install_packages() {
  local pkgs=(g++-aarch64-linux-gnu qemu-user-static cmake pkg-config git
              nlohmann-json3-dev libcli11-dev python3
              libgomp1:arm64  # llama-server's OpenMP at run time (see the toolchain file)
              libspdlog-dev:arm64 libfmt-dev:arm64 libgtest-dev:arm64 libsystemd-dev:arm64 libxxhash-dev:arm64
              libcpp-httplib-dev:arm64 libssl-dev:arm64 zlib1g-dev:arm64 libbrotli-dev:arm64)
  local missing=() p sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "packages: all present"; return; fi
  say "packages: installing ${missing[*]}"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $sudo dpkg --add-architecture arm64
  fi
  ubuntu_ports "$sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# Debian's mirrors carry arm64; Ubuntu's main archive does not (arm64 lives on
# ports.ubuntu.com), so there the existing sources are limited to amd64 and
# ports is added for arm64. Written for GitHub's ubuntu-24.04 runner (deb822
# sources); not run on Ubuntu here.
ubuntu_ports() {
  local sudo=$1 list=/etc/apt/sources.list.d/agentkv-arm64-ports.sources f
  [ -r /etc/os-release ] && . /etc/os-release
  [ "${ID:-}" = ubuntu ] && [ ! -e "$list" ] || return 0
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] && ! grep -q '^Architectures:' "$f" || continue
    $sudo sed -i '/^Types:/a Architectures: amd64' "$f"
  done
  if [ -f /etc/apt/sources.list ]; then
    $sudo sed -i -E -e '/arch=/!s/^deb \[/deb [arch=amd64 /' \
      -e 's/^deb (https?|mirror)/deb [arch=amd64] \1/' /etc/apt/sources.list
  fi
  printf '%s\n' 'Types: deb' 'URIs: http://ports.ubuntu.com/ubuntu-ports' \
    "Suites: $VERSION_CODENAME $VERSION_CODENAME-updates $VERSION_CODENAME-security" \
    'Components: main universe' 'Architectures: arm64' \
    'Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg' | $sudo tee "$list" >/dev/null
}

# The pinned source and test models come from scripts/setup.sh's cache.
llama_source() {
  local tag src
  tag=$(sed -n 's/^LLAMA_TAG=\([^[:space:]#]*\).*/\1/p' "$ROOT/scripts/setup.sh" | head -n 1)
  src=$CACHE/llama.cpp/src-$tag
  if [ ! -f "$src/CMakeLists.txt" ] || [ ! -f "$CACHE/models/agentkv-test.gguf" ]; then
    say "llama.cpp source or test models missing: running scripts/setup.sh" >&2
    bash "$ROOT/scripts/setup.sh" >&2
  fi
  echo "$src"
}

# Cross-builds llama-server into a directory keyed by commit and target and
# prints the path of the binary.
build_llama() {
  local src=$1 commit build
  commit=$(git -C "$src" rev-parse --short=7 HEAD)
  build=$ARM/llama-$commit-$MARCH
  if [ ! -x "$build/bin/llama-server" ]; then
    say "llama.cpp: cross-building llama-server $commit for aarch64 ($MARCH, no KleidiAI)" >&2
    # GGML_NATIVE=OFF: -mcpu=native would mean this x86 host. KleidiAI OFF:
    # its sources are downloaded at configure time (see the header).
    "${NICE[@]}" cmake -S "$src" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
      -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
      -DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH="$MARCH" -DGGML_CPU_KLEIDIAI=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
      -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF >/dev/null
    "${NICE[@]}" cmake --build "$build" -j"$JOBS" --target llama-server >/dev/null
  fi
  echo "$build/bin/llama-server"
}

# An aarch64 binary cannot be exec'd here without binfmt_misc, which a
# container rarely has: agentkv starts llama-server through this wrapper. No
# qemu -L: the arm64 libraries, ld.so included, must all be the multiarch
# packages' (cmake/aarch64-linux-gnu.cmake says why).
# $ARM/home is the cache agentkv and the tests see (AGENTKV_CACHE_DIR): its
# bin/llama-server is the wrapper, its models the shared test models.
write_wrapper() {
  local binary=$1 home=$ARM/home qemu
  qemu=$(command -v qemu-aarch64-static) || die "qemu-aarch64-static not found"
  mkdir -p "$home/bin"
  cat >"$home/bin/llama-server.tmp" <<EOF
#!/bin/sh
# The aarch64 llama-server under qemu-user (written by scripts/arm64-check.sh).
exec $qemu $binary "\$@"
EOF
  chmod 755 "$home/bin/llama-server.tmp"
  mv "$home/bin/llama-server.tmp" "$home/bin/llama-server"
  ln -sfn "$CACHE/models" "$home/models"
  file -L "$binary" | grep -q 'ARM aarch64' || die "$binary is not an aarch64 binary"
  local version
  version=$("$home/bin/llama-server" --version 2>&1) \
    || die "the aarch64 llama-server does not run under qemu: $version"
  say "llama-server (aarch64, under qemu-user): $(grep -m1 '^version' <<<"$version")" >&2
}

build_agentkv() {
  say "agentkv: cross-building for aarch64 into $BUILD"
  "${NICE[@]}" cmake -S "$ROOT" -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  "${NICE[@]}" cmake --build "$BUILD" -j"$JOBS" >/dev/null
  file "$BUILD/agentkv" | grep -q 'ARM aarch64' || die "$BUILD/agentkv is not an aarch64 binary"
}

# Runs ctest on one label under the emulator; prints its summary line.
run_ctest() {
  local label=$1; shift
  local exclude log=$ARM/ctest-$label.log status=0
  exclude=$(skip_regex)
  say "tests under qemu-user: $label"
  AGENTKV_CACHE_DIR=$ARM/home \
  AGENTKV_LLAMA_SERVER=$ARM/home/bin/llama-server \
  AGENTKV_TEST_MODEL=$ARM/home/models/agentkv-test.gguf \
  AGENTKV_TEST_MODEL_B=$ARM/home/models/agentkv-test-b.gguf \
    ctest --test-dir "$BUILD" -L "$label" ${exclude:+-E "$exclude"} --output-on-failure \
      "$@" >"$log" 2>&1 || status=$?
  grep -E 'tests passed|Total Test time' "$log" || true
  if [ "$status" -ne 0 ]; then
    grep -E '^\s+[0-9]+ - |\*\*\*' "$log" >&2 || true
    die "$label tests failed under qemu-user (log: $log)"
  fi
}

skip_regex() {
  local entry out=""
  for entry in "${SKIPPED[@]}"; do out+="${out:+|}^${entry%%|*}\$"; done
  printf '%s' "$out"
}

# Anchored at the start only: a parameterized test's ctest name goes on with
# '  # GetParam() = ...', and CMake's regex allows too few groups for '( |$)'.
integration_regex() {
  local t out=""
  for t in "${INTEGRATION[@]}"; do out+="${out:+|}^${t}"; done
  printf '%s' "$out"
}

run_tests() {
  run_ctest unit
  run_ctest component
  if [ "$ALL_INTEGRATION" = 1 ]; then
    run_ctest integration
  else
    run_ctest integration -R "$(integration_regex)"
  fi
  if [ ${#SKIPPED[@]} -gt 0 ]; then
    say "skipped under emulation:"
    local entry
    for entry in "${SKIPPED[@]}"; do printf '  %s: %s\n' "${entry%%|*}" "${entry#*|}"; done
  fi
}

# scripts/graviton.sh as far as a non-Arm machine without systemd allows: its
# --dry-run against the unit (tests/app/graviton_dry_run_test.sh, also in the
# unit tests above), and the unit verified by systemd-analyze with the aarch64
# agentkv and llama-server where graviton.sh installs them.
check_graviton() {
  local server=$1 exposure
  say "graviton.sh: --dry-run against configs/agentkv.service"
  bash "$ROOT/tests/app/graviton_dry_run_test.sh" | tail -n 1
  if ! command -v systemd-analyze >/dev/null; then
    say "systemd-analyze not installed: configs/agentkv.service not verified"
    return
  fi
  say "systemd-analyze verify with the aarch64 binaries in /usr/local/bin"
  AGENTKV_UNIT_AGENTKV=$BUILD/agentkv AGENTKV_UNIT_LLAMA_SERVER=$server \
    bash "$ROOT/tests/app/systemd_unit_test.sh" | tail -n 1
  exposure=$(systemd-analyze security --offline=yes "$ROOT/configs/agentkv.service" 2>&1 \
    | sed -n 's/.*Overall exposure level for [^:]*: //p') || true
  echo "systemd-analyze security --offline=yes: exposure ${exposure:-not available}"
}

main() {
  [ "$(uname -m)" = x86_64 ] || say "warning: written for an x86-64 host; this is $(uname -m)"
  [ "$SKIP_PACKAGES" = 1 ] || install_packages >&2
  mkdir -p "$ARM"
  local src server
  src=$(llama_source)
  server=$(build_llama "$src")
  if [ "$PRINT_LLAMA" = 1 ]; then
    echo "$server"
    return
  fi
  write_wrapper "$server"
  build_agentkv
  [ "$RUN_TESTS" = 0 ] || run_tests
  check_graviton "$server"
  say "arm64 check passed"
}

# One line: bash has read all of it before main runs, so editing this file
# during a run cannot change what the run does next.
main; exit
