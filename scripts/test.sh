#!/usr/bin/env bash
# Builds what changed and runs every test: unit, component (fake
# llama-server) and integration (real llama-server + test model).
# Run scripts/setup.sh once first. Extra arguments go to ctest,
# e.g. scripts/test.sh -L unit
#
#   --llama-args "ARGS"  every llama-server the tests start gets ARGS after
#                        its own (later ones win), e.g. "--no-repack
#                        --threads 1": the tests then see a cache directory
#                        of their own whose llama-server is a wrapper that
#                        adds them, and the models setup wrote
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LLAMA_ARGS=""
if [ "${1:-}" = --llama-args ]; then
  LLAMA_ARGS=$2
  shift 2
fi
cmake --build "$ROOT/build" -j"$(nproc)" >/dev/null
if [ -n "$LLAMA_ARGS" ]; then
  cache=${AGENTKV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentkv}
  real=$(readlink -f "${AGENTKV_LLAMA_SERVER:-$cache/bin/llama-server}")
  variant=$(mktemp -d /tmp/agentkv-llama-args.XXXXXX)
  trap 'rm -rf "$variant"' EXIT
  mkdir -p "$variant/bin"
  ln -s "$cache/models" "$variant/models"
  ln -s "$cache/llama.cpp" "$variant/llama.cpp"  # its source, which a test reads
  # The chosen build may itself be a wrapper (setup's fallback): run it.
  printf '#!/bin/sh\nexec %q "$@" %s\n' "$real" "$LLAMA_ARGS" >"$variant/bin/llama-server"
  chmod +x "$variant/bin/llama-server"
  echo "llama-server for these tests: $real ... $LLAMA_ARGS"
  export AGENTKV_CACHE_DIR=$variant
  unset AGENTKV_LLAMA_SERVER
fi
ctest --test-dir "$ROOT/build" --output-on-failure "$@"
