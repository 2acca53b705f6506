#!/usr/bin/env bash
# Style and static checks, as CI runs them:
#   scripts/lint.sh format   # clang-format --dry-run on our sources
#   scripts/lint.sh tidy     # clang-tidy with .clang-tidy on src/ (needs build/)
#   scripts/lint.sh threads  # clang build: lock annotations checked, -Werror=thread-safety
#   scripts/lint.sh          # all three
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
what=${1:-all}
files() { git ls-files 'src/*.cpp' 'src/*.h' 'include/*.h' 'tests/*.cpp' 'tests/*.h' 'fuzz/*.cpp'; }
if [ "$what" = format ] || [ "$what" = all ]; then
  files | xargs clang-format --dry-run --Werror
  echo "format: clean"
fi
if [ "$what" = tidy ] || [ "$what" = all ]; then
  [ -f build/compile_commands.json ] || cmake -S . -B build >/dev/null
  git ls-files 'src/*.cpp' | xargs -P "$(nproc)" -n 4 clang-tidy -p build --quiet 2>/dev/null
  echo "tidy: clean"
fi
if [ "$what" = threads ] || [ "$what" = all ]; then
  CC=clang CXX=clang++ cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Debug -DAGENTKV_BUILD_TESTS=ON >/dev/null
  cmake --build build-clang -j"$(nproc)" >/dev/null
  echo "threads: clean"
fi
