#!/usr/bin/env bash
# Builds agentkv with sanitizers and runs every test under them.
#   scripts/sanitize.sh asan   # AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   scripts/sanitize.sh tsan   # ThreadSanitizer (build-tsan/)
# Extra arguments go to ctest. Needs scripts/setup.sh to have run once.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:-asan}
shift || true
case "$kind" in
  asan) sanitize=address,undefined
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
        export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ;;
  tsan) sanitize=thread
        # cpp-httplib comes from Debian as an uninstrumented shared library:
        # races TSan cannot see through it are suppressed there, nowhere else.
        export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tests/tsan.supp" ;;
  *) echo "usage: $0 asan|tsan [ctest args]" >&2; exit 2 ;;
esac
build="$ROOT/build-$kind"
cmake -S "$ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DAGENTKV_SANITIZE="$sanitize" >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
ctest --test-dir "$build" --output-on-failure "$@"
