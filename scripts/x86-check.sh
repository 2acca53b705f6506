#!/usr/bin/env bash
# Proves portable x86-64 binaries on a CPU without AVX-512 from any x86-64
# Debian/Ubuntu machine, idempotently: what a user who builds on one machine
# and deploys on an older one gets.
#   1. qemu-user (qemu-user-static) from the distribution's packages;
#   2. the portable llama-server (x86-64-v3: AVX, AVX2, FMA, F16C, BMI2; no
#      AVX-512, no AMX) from scripts/setup.sh --build-llama x86-64-v3, cached
#      by setup in ~/.cache/agentkv/llama.cpp/build-<commit>-x86-64-v3;
#   3. agentkv and its tests built with -march=x86-64-v3 into build-x86-64-v3/
#      (a native build: CMAKE_CROSSCOMPILING_EMULATOR makes ctest run every
#      test binary, and the tests run agentkv, under qemu);
#   4. a check that none of these binaries holds an AVX-512 (zmm or mask
#      registers, EVEX-only registers or forms), AVX-VNNI or AMX instruction;
#   5. under qemu-x86_64 with a Haswell CPU (AVX2, no AVX-512): the unit and
#      component tests, and the integration tests listed in INTEGRATION below
#      with the portable llama-server on the test models (--all-integration:
#      every one).
# A re-run finds the builds cached and only runs the checks and the tests.
#
# qemu's TCG implements no AVX-512 at all (7.2 added AVX2), and the Haswell
# model reports none, so glibc's and ggml's run-time choices take the AVX2
# paths, and any AVX-512 instruction executed, in our code or a library's,
# dies by SIGILL. Emulation proves correctness only: never read a speed from
# it. Not proved: a real pre-AVX-512 CPU's timing and memory behaviour, other
# CPU vendors' quirks, or a deploy machine with other shared libraries (the
# binaries run on this machine's glibc, libstdc++ and libgomp).
#
# Usage: scripts/x86-check.sh [--skip-packages] [--all-integration] [--no-tests]
# Needs the pinned llama.cpp source and the test models that scripts/setup.sh
# caches; runs setup.sh first (native build included) when they are missing.
# Cache: $AGENTKV_CACHE_DIR, else $XDG_CACHE_HOME/agentkv, else ~/.cache/agentkv
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AGENTKV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentkv}
V3=$CACHE/x86-64-v3
BUILD=$ROOT/build-x86-64-v3
# Haswell less what TCG cannot give a process (PCID, x2APIC, TSC deadline,
# INVPCID: kernel features; TSX): the CPU qemu runs is the same as with plain
# Haswell, without six warnings on every start of every binary.
CPU=${AGENTKV_X86_CPU:-Haswell-noTSX,-pcid,-x2apic,-tsc-deadline,-invpcid}
JOBS=${AGENTKV_JOBS:-$(nproc)}
NICE=(nice -n 19)  # a heavy build must not starve whatever else runs here
SKIP_PACKAGES=0
ALL_INTEGRATION=0
RUN_TESTS=1
QEMU=""

# Integration tests run under emulation by default (as scripts/arm64-check.sh):
# returning agents, the bit-exact restore, crash recovery (agentkv killed,
# llama-server crashed or restarted), damaged memory, a graceful stop, the
# binary as a user runs it; and a llama-server outliving agentkv.
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
  'OrphanTest.'  # every one (ChildRecordTest.*, its unit half, runs with the unit tests)
)

# Tests not run under emulation, each with its reason ('name|reason'). None:
# the other integration tests are left out only for time (--all-integration
# runs them). Sanitizer builds and fuzzing are not attempted under emulation
# (qemu-user does not give AddressSanitizer and ThreadSanitizer the
# address-space layout they need); nor are the cluster and browser tests.
SKIPPED=()

while [ $# -gt 0 ]; do
  case "$1" in
    --skip-packages) SKIP_PACKAGES=1 ;;
    --all-integration) ALL_INTEGRATION=1 ;;
    --no-tests) RUN_TESTS=0 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "x86-check.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'x86-check.sh: %s\n' "$*" >&2; exit 1; }

install_packages() {
  local pkgs=(qemu-user-static binutils cmake pkg-config git build-essential
              nlohmann-json3-dev libcli11-dev libspdlog-dev libgtest-dev libsystemd-dev libxxhash-dev libssl-dev
              libcpp-httplib-dev python3)
  local missing=() p sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "packages: all present"; return; fi
  say "packages: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# The pinned source and test models come from scripts/setup.sh's cache.
need_setup() {
  local tag src
  tag=$(sed -n 's/^LLAMA_TAG=\([^[:space:]#]*\).*/\1/p' "$ROOT/scripts/setup.sh" | head -n 1)
  src=$CACHE/llama.cpp/src-$tag
  if [ ! -f "$src/CMakeLists.txt" ] || [ ! -f "$CACHE/models/agentkv-test.gguf" ]; then
    say "llama.cpp source or test models missing: running scripts/setup.sh"
    "${NICE[@]}" bash "$ROOT/scripts/setup.sh"
  fi
}

# setup.sh builds (or finds cached) the portable llama-server and prints its
# path on its last line.
build_llama() {
  local server
  say "llama.cpp: the portable llama-server (scripts/setup.sh --build-llama x86-64-v3)" >&2
  server=$("${NICE[@]}" bash "$ROOT/scripts/setup.sh" --build-llama x86-64-v3 | tail -n 1)
  [ -x "$server" ] || die "setup.sh --build-llama x86-64-v3 printed no llama-server: '$server'"
  echo "$server"
}

# Instructions a Haswell lacks, counted in objdump -d's text (AT&T syntax,
# symbol names removed): zmm and mask registers, registers 16-31 and
# broadcasts (EVEX only), a few AVX-512-only mnemonics, AVX-VNNI and AMX.
# Prints "<beyond-v3> <ymm>": the second shows AVX2 is used at all.
count_instructions() {
  objdump -d --no-show-raw-insn "$1" | awk -F'\t' '
    NF >= 2 && $1 ~ /^ *[0-9a-f]+:$/ {
      insn = $2; gsub(/<[^>]*>/, "", insn)
      if (insn ~ /%zmm|%k[0-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])|\{1to|vpternlog|vperm[it]2|vpdpbusd|vpdpwssd|%tmm|tdpb|tileload/) bad++
      else if (insn ~ /%ymm/) ymm++
    }
    END { printf "%d %d\n", bad, ymm }'
}

# With --needs-avx2, a binary with no ymm instruction fails: ggml's kernels
# must be the AVX2 ones, not a baseline x86-64 build.
check_instructions() {
  local binary=$1 needs_avx2=${2:-} counts bad ymm
  counts=$(count_instructions "$binary") || die "objdump -d $binary failed"
  read -r bad ymm <<<"$counts"
  [ "$bad" -eq 0 ] || die "$binary has $bad AVX-512, AVX-VNNI or AMX instructions (objdump -d)"
  [ -z "$needs_avx2" ] || [ "$ymm" -gt 0 ] \
    || die "$binary has no AVX2 instruction: not an x86-64-v3 build"
  echo "  $(basename "$binary"): 0 AVX-512/AVX-VNNI/AMX instructions, $ymm on ymm registers"
}

# agentkv starts llama-server through this script, so llama-server too runs
# under qemu. $V3/home is the cache agentkv and the tests see
# (AGENTKV_CACHE_DIR): its bin/llama-server is the wrapper, its models the
# shared test models.
write_wrapper() {
  local binary=$1 home=$V3/home version
  mkdir -p "$home/bin"
  cat >"$home/bin/llama-server.tmp" <<EOF
#!/bin/sh
# The x86-64-v3 llama-server under qemu-user on a Haswell (written by scripts/x86-check.sh).
exec $QEMU -cpu $CPU $binary "\$@"
EOF
  chmod 755 "$home/bin/llama-server.tmp"
  mv "$home/bin/llama-server.tmp" "$home/bin/llama-server"
  ln -sfn "$CACHE/models" "$home/models"
  version=$("$home/bin/llama-server" --version 2>&1) \
    || die "the x86-64-v3 llama-server does not run under qemu ($CPU): $version"
  say "llama-server (x86-64-v3, under qemu-user): $(grep -m1 '^version' <<<"$version")"
}

build_agentkv() {
  local policy=()
  # CMake 3.28 and later honour the emulator only in a cross build, unless
  # CMP0158 is OLD (older ones have no such policy and warn of the variable).
  if cmake --help-policy CMP0158 >/dev/null 2>&1; then
    policy=(-DCMAKE_POLICY_DEFAULT_CMP0158=OLD)
  fi
  say "agentkv: building with -march=x86-64-v3 into $BUILD"
  "${NICE[@]}" cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS=-march=x86-64-v3 "-DCMAKE_CROSSCOMPILING_EMULATOR=$QEMU;-cpu;$CPU" \
    "${policy[@]}" >/dev/null
  "${NICE[@]}" cmake --build "$BUILD" -j"$JOBS" >/dev/null
}

# Every test binary's ctest command must start with qemu, and the tests must
# start agentkv through the emulated wrapper (tests/CMakeLists.txt).
check_emulated() {
  local commands bare
  commands=$(ctest --test-dir "$BUILD" -N -V | sed -n 's/^[0-9]*: Test command: //p' \
             | grep -E '/(unit|component|integration)_tests"' || true)
  [ -n "$commands" ] || die "ctest lists no test of unit_tests, component_tests or integration_tests"
  bare=$(grep -vF "$QEMU \"-cpu\" \"$CPU\" " <<<"$commands" || true)
  [ -z "$bare" ] || die "ctest runs a test binary without qemu: $(head -n 1 <<<"$bare")"
  grep -qF "\"$QEMU\" \"-cpu\" \"$CPU\"" "$BUILD/tests/agentkv-emulated" \
    || die "$BUILD/tests/agentkv-emulated does not run agentkv under qemu"
  "$QEMU" -cpu "$CPU" "$BUILD/tests/unit_tests" --gtest_list_tests >/dev/null \
    || die "unit_tests does not run under qemu ($CPU)"
  echo "  ctest: each of $(wc -l <<<"$commands") tests runs as '$QEMU -cpu $CPU <binary>'," \
       "and they start agentkv the same way"
}

declare -A PASSED TOTAL
FAILED_LABELS=()

# Runs ctest on one label under the emulator and records its counts.
run_ctest() {
  local label=$1; shift
  local exclude log=$V3/ctest-$label.log status=0 summary total failed
  exclude=$(skip_regex)
  say "tests under qemu-user ($CPU): $label"
  AGENTKV_CACHE_DIR=$V3/home \
  AGENTKV_LLAMA_SERVER=$V3/home/bin/llama-server \
  AGENTKV_TEST_MODEL=$V3/home/models/agentkv-test.gguf \
  AGENTKV_TEST_MODEL_B=$V3/home/models/agentkv-test-b.gguf \
    ctest --test-dir "$BUILD" -L "$label" ${exclude:+-E "$exclude"} --output-on-failure \
      "$@" >"$log" 2>&1 || status=$?
  grep -E 'tests passed|Total Test time' "$log" || true
  summary=$(grep -E 'tests passed, [0-9]+ tests? failed out of' "$log" | tail -n 1)
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"${summary:-x out of 0}")
  failed=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"${summary:-x 0 tests failed}")
  TOTAL[$label]=$total
  PASSED[$label]=$((total - failed))
  if [ "$status" -ne 0 ] || [ "$total" -eq 0 ]; then
    grep -E '^\s+[0-9]+ - |\*\*\*' "$log" >&2 || true
    echo "x86-check.sh: $label tests failed under qemu-user (log: $log)" >&2
    FAILED_LABELS+=("$label")
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
  local t listed
  for t in OrphanTest ChildRecordTest; do
    listed=$(ctest --test-dir "$BUILD" -N -R "^$t\\." | sed -n 's/^Total Tests: //p')
    echo "  $t.*: ${listed:-0} in this build"
  done
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

summary() {
  local label
  say "summary (qemu-user -cpu $CPU)"
  for label in unit component integration; do
    [ -n "${TOTAL[$label]:-}" ] || continue
    printf '  %-12s %d of %d passed\n' "$label" "${PASSED[$label]}" "${TOTAL[$label]}"
  done
  printf '  wall time    %dm%02ds\n' $((SECONDS / 60)) $((SECONDS % 60))
}

main() {
  [ "$(uname -m)" = x86_64 ] || die "written for an x86-64 host; this is $(uname -m)"
  [ "$SKIP_PACKAGES" = 1 ] || install_packages
  QEMU=$(command -v qemu-x86_64-static || command -v qemu-x86_64) \
    || die "qemu-x86_64 not found (package qemu-user-static)"
  mkdir -p "$V3"
  local server
  need_setup
  server=$(build_llama)
  say "instructions beyond x86-64-v3 (objdump -d)"
  check_instructions "$server" --needs-avx2
  write_wrapper "$server"
  build_agentkv
  say "agentkv (x86-64-v3): instructions beyond x86-64-v3 and tests under qemu"
  local binary
  for binary in agentkv tests/unit_tests tests/component_tests tests/integration_tests; do
    check_instructions "$BUILD/$binary"
  done
  check_emulated
  [ "$RUN_TESTS" = 0 ] || run_tests
  summary
  [ ${#FAILED_LABELS[@]} -eq 0 ] || die "failed under qemu-user: ${FAILED_LABELS[*]}"
  say "x86-64-v3 check passed"
}

# One line: bash has read all of it before main runs, so editing this file
# during a run cannot change what the run does next.
main; exit
