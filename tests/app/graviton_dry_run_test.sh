#!/usr/bin/env bash
# Checks scripts/graviton.sh without an Arm host or systemd: its --dry-run
# prints the commands a real run executes (run() prints exactly what it would
# execute), so the printed commands are checked against the unit they serve:
#   - llama-server is built with KleidiAI and without GGML_NATIVE=OFF;
#   - agentkv and llama-server are installed where configs/agentkv.service
#     runs them, the unit where systemd reads it, the models directory is the
#     one the unit's default model is in and inside its StateDirectory;
#   - daemon-reload and enable come after the unit is installed; the service
#     is restarted only with --start, and last;
#   - every setting /etc/default/agentkv offers is one the unit reads;
#   - a real run on anything but aarch64 stops before changing anything.
#
# Usage: tests/app/graviton_dry_run_test.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCRIPT=$ROOT/scripts/graviton.sh
UNIT=$ROOT/configs/agentkv.service
failures=0
checks=0

check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  checks=$((checks + 1))
  if "$@"; then echo "PASS $what"; else echo "FAIL $what"; failures=$((failures + 1)); fi
}

unit_env() {  # the default of Environment=NAME=value in the unit
  sed -n "s/^Environment=\"\?$1=\([^\"]*\)\"\?$/\1/p" "$UNIT" | head -n 1
}
exec_binary() { sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$UNIT"; }
state_dir() { sed -n 's/^StateDirectory=\([^ ]*\).*/\1/p' "$UNIT"; }

dry=$(bash "$SCRIPT" --dry-run)
dry_start=$(bash "$SCRIPT" --dry-run --start)
commands=$(grep '^+ ' <<<"$dry" || true)

line_of() {  # the line number of the first command matching an ERE, else 0
  local n
  n=$(grep -n -m1 -E "$1" <<<"$commands" | cut -d: -f1)
  echo "${n:-0}"
}

# Destinations of `install -mMODE SRC DEST`, by the source's file name.
installed_to() { sed -n "s|^+ install -m[0-9]* [^ ]*/$1 \([^ ]*\)$|\1|p" <<<"$commands"; }

check "the dry run says it changes nothing" grep -q '^== dry run on' <<<"$dry"
check "llama-server is configured with KleidiAI" \
  grep -qE '^\+ cmake -S .* -DGGML_CPU_KLEIDIAI=ON' <<<"$commands"
check "llama-server is tuned for the host it is built on (GGML_NATIVE not off)" \
  bash -c '! grep -q -- "-DGGML_NATIVE=OFF" <<<"$1"' _ "$commands"
check "llama-server is installed where the unit runs it ($(unit_env AGENTKV_LLAMA_SERVER))" \
  test "$(installed_to llama-server)" = "$(unit_env AGENTKV_LLAMA_SERVER)"
check "agentkv is installed where ExecStart runs it ($(exec_binary))" \
  test "$(installed_to agentkv)" = "$(exec_binary)"
check "the unit is installed into /etc/systemd/system" \
  test "$(installed_to agentkv.service)" = /etc/systemd/system/agentkv.service
model_dir=$(dirname "$(unit_env AGENTKV_MODEL)")
check "the models directory made is the one of the unit's default model ($model_dir)" \
  grep -qx "+ mkdir -p $model_dir" <<<"$commands"
check "the models directory is inside the StateDirectory" \
  test "${model_dir#/var/lib/$(state_dir)/}" != "$model_dir"
unit_line=$(line_of '^\+ install -m644 .*agentkv\.service ')
reload_line=$(line_of '^\+ systemctl daemon-reload$')
enable_line=$(line_of '^\+ systemctl enable agentkv\.service$')
check "daemon-reload and enable follow the unit's installation" \
  test "$unit_line" -gt 0 -a "$reload_line" -gt "$unit_line" -a "$enable_line" -gt "$reload_line"
check "the service is not started without --start" \
  bash -c '! grep -q "systemctl \(re\)\?start" <<<"$1"' _ "$commands"
check "with --start the service is restarted, last" \
  test "$(grep '^+ ' <<<"$dry_start" | tail -n 1)" = "+ systemctl restart agentkv.service"

# Every AGENTKV_ setting the defaults file offers must be one the unit reads.
offered=$(sed -n 's/^    #\(AGENTKV_[A-Z_]*\)=.*/\1/p' <<<"$dry" | sort -u)
unread=""
for v in $offered; do grep -qE "\\\$\\{?$v\\}?" "$UNIT" || unread+=" $v"; done
check "the defaults file offers only settings the unit reads (offered: $(echo $offered))" \
  test -n "$offered" -a -z "$unread"

if [ "$(uname -m)" != aarch64 ]; then
  status=0
  out=$(bash "$SCRIPT" 2>&1) || status=$?
  check "a real run on $(uname -m) stops before changing anything" \
    bash -c '[ "$1" -eq 1 ] && grep -qE "needs aarch64|run as root" <<<"$2" && ! grep -q "^+ " <<<"$2"' \
    _ "$status" "$out"
fi

echo "$((checks - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
