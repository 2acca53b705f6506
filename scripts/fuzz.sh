#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (address and undefined
# sanitizers, agentkv_core instrumented too) in build-fuzz/, then runs each
# for SECONDS (default 60) from its seed corpus fuzz/corpus/<target>/.
# New inputs go to build-fuzz/corpus/<target>/ (the seeds stay as they
# are); a crash or failed invariant is written to build-fuzz/artifacts/
# and the script fails. Prints libFuzzer's executions for each target.
#
# Usage: scripts/fuzz.sh [SECONDS]      e.g. scripts/fuzz.sh 3600 for a long run
# AGENTKV_FUZZ_SEED=N fixes libFuzzer's seed: the same inputs in the same
# order, so a bounded run (CI's) is reproducible; unset, each run differs.
# Reproduce a finding: build-fuzz/fuzz/<target> build-fuzz/artifacts/<file>
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_EACH=${1:-60}
BUILD=$ROOT/build-fuzz
cd "$ROOT"

CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DAGENTKV_FUZZ=ON -DAGENTKV_BUILD_TESTS=OFF \
  -DAGENTKV_SANITIZE=fuzzer-no-link,address,undefined >/dev/null
targets=()
for dir in fuzz/corpus/*/; do targets+=("$(basename "$dir")"); done
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}" >/dev/null

mkdir -p "$BUILD/artifacts"
status=0
for t in "${targets[@]}"; do
  mkdir -p "$BUILD/corpus/$t"
  log=$BUILD/$t.log
  dict=()
  seed=()
  [ -n "${AGENTKV_FUZZ_SEED:-}" ] && seed=(-seed="$AGENTKV_FUZZ_SEED")
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  echo "== $t: fuzzing for ${SECONDS_EACH} s"
  if ! "$BUILD/fuzz/$t" -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 \
       -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-" "${dict[@]}" "${seed[@]}" \
       "$BUILD/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
    status=1
    echo "== $t: FINDING (see $log and $BUILD/artifacts/)"
    grep -E "ERROR|invariant failed|SUMMARY|runtime error" "$log" | head -20 || true
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  per_s=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[^ ]+' "$log" | tail -1 || true)
  echo "== $t: ${execs:-?} executions (${per_s:-?}/s), ${cov:-no stats}"
done
exit $status
