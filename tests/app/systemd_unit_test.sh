#!/usr/bin/env bash
# Checks configs/agentkv.service with `systemd-analyze verify`.
#
# verify refuses a unit whose ExecStart binary is missing, and a plain run
# would also load the host's units. So the unit is checked inside a
# throwaway root (--root) holding only the unit, a stub
# /usr/local/bin/agentkv and stub targets. verify reports unknown keys and
# unparsable values as warnings with exit status 0, so any line naming the
# unit counts as a failure too.
#
# With AGENTKV_UNIT_AGENTKV and AGENTKV_UNIT_LLAMA_SERVER set (as
# scripts/arm64-check.sh does with its aarch64 builds), those binaries take
# the places scripts/graviton.sh installs them to, instead of the stub.
#
# Usage: tests/app/systemd_unit_test.sh   (skips, exit 0, without systemd-analyze)
set -euo pipefail

if ! command -v systemd-analyze >/dev/null; then
  echo "systemd_unit_test: systemd-analyze not installed, skipping"
  exit 0
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
UNIT=$ROOT/configs/agentkv.service

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

mkdir -p "$TMP/usr/local/bin" "$TMP/etc/systemd/system"
if [ -n "${AGENTKV_UNIT_AGENTKV:-}" ]; then
  install -m755 "$AGENTKV_UNIT_AGENTKV" "$TMP/usr/local/bin/agentkv"
  install -m755 "${AGENTKV_UNIT_LLAMA_SERVER:?with AGENTKV_UNIT_AGENTKV}" \
    "$TMP/usr/local/bin/llama-server"
else
  printf '#!/bin/sh\nexit 0\n' >"$TMP/usr/local/bin/agentkv"
  chmod 755 "$TMP/usr/local/bin/agentkv"
fi
# Without sysinit.target in the root verify cannot build the start job;
# the others are the unit's own dependencies.
for target in sysinit.target basic.target shutdown.target network-online.target \
              multi-user.target; do
  printf '[Unit]\nDescription=stub %s\n' "$target" >"$TMP/etc/systemd/system/$target"
done
cp "$UNIT" "$TMP/etc/systemd/system/agentkv.service"

status=0
output=$(systemd-analyze verify --man=no --root="$TMP" agentkv.service 2>&1) || status=$?
[ -z "$output" ] || printf '%s\n' "$output"

if [ "$status" -eq 0 ] && ! grep -q 'agentkv' <<<"$output"; then
  echo "PASS systemd-analyze verify configs/agentkv.service"
  echo "1 passed, 0 failed"
else
  echo "FAIL systemd-analyze verify configs/agentkv.service (exit status $status)"
  echo "0 passed, 1 failed"
  exit 1
fi
