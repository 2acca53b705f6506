#!/usr/bin/env bash
# Builds what changed and runs every test: unit, component (fake
# llama-server) and integration (real llama-server + test model).
# Run scripts/setup.sh once first. Extra arguments go to ctest,
# e.g. scripts/test.sh -L unit
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cmake --build "$ROOT/build" -j"$(nproc)" >/dev/null
ctest --test-dir "$ROOT/build" --output-on-failure "$@"
