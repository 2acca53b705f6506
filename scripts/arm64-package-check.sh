#!/usr/bin/env bash
# The arm64 packages in an arm64 Debian 12 root, from an x86-64 machine (#29):
#   1. scripts/package.sh --arch arm64 builds agentkv_<version>_arm64.deb and
#      agentkv-llama-server_<version>_arm64.deb (cross-built, lintian-clean);
#   2. a Debian 12 arm64 root: debootstrap's foreign stage here, its second
#      stage run inside the root under qemu-user-static (binfmt_misc, with
#      the F flag: the emulator is opened here, not looked up in the root);
#   3. the packages' Depends from Debian, then `dpkg -i` of both packages;
#   4. in the root (chroot, every arm64 binary under qemu-user): agentkv
#      and llama-server answer --version with the package's version and the
#      pinned llama.cpp, `agentkv serve` with the test model serves one
#      turn of one agent, saves it at the turn's end (a memory file), and a
#      second start restores it for the agent's next turn.
# Each step prints how long it took; a failed check stops with exit 1.
#
# Emulation proves the packages install and run, never a speed.
#
# Usage: scripts/arm64-package-check.sh [WORK_DIR]  (as root; default
# /var/tmp/agentkv-arm64-package-check). The Debian root is cached as a
# tarball in ~/.cache/agentkv (or $AGENTKV_CACHE_DIR); the packages are
# reused from WORK_DIR/debs with AGENTKV_ARM64_CHECK_REUSE=1. A qemu-aarch64
# binfmt_misc entry this script registers is removed at its end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${1:-/var/tmp/agentkv-arm64-package-check}
CACHE=${AGENTKV_CACHE_DIR:-$HOME/.cache/agentkv}
MIRROR=${AGENTKV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
MODEL=${AGENTKV_TEST_MODEL:-$CACHE/models/agentkv-test.gguf}
BINFMT=/proc/sys/fs/binfmt_misc
DIR=$WORK/root
PORT=18090
STEP_T0=$SECONDS
REGISTERED=0
MOUNTED=()
SERVE_PID=""

# shellcheck source=scripts/check_lib.sh
. "$ROOT/scripts/check_lib.sh"
fail() {
  printf '\033[31mFAILED: %s\033[0m\n' "$*" >&2
  [ ! -f "$WORK/serve.log" ] || tail -n 30 "$WORK/serve.log" >&2
  exit 1
}

stop_serve() {
  [ -n "$SERVE_PID" ] || return 0
  kill -TERM "$SERVE_PID" 2>/dev/null || true
  wait "$SERVE_PID" 2>/dev/null || true
  SERVE_PID=""
}
cleanup() {
  stop_serve
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTED[i]}" 2>/dev/null || true; done
  if [ "$REGISTERED" = 1 ]; then echo -1 >"$BINFMT/qemu-aarch64" 2>/dev/null || true; fi
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "arm64-package-check.sh: run as root (debootstrap, chroot, binfmt_misc)" >&2; exit 2; }
[ "$(dpkg --print-architecture)" = amd64 ] || { echo "arm64-package-check.sh: written for an amd64 host" >&2; exit 2; }
[ -r "$MODEL" ] || { echo "arm64-package-check.sh: no test model at $MODEL: run scripts/setup.sh" >&2; exit 2; }

say "tools: debootstrap, qemu-user-static"
missing=()
for p in debootstrap qemu-user-static curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# arm64 programs in the root run through binfmt_misc: mounted and an
# aarch64 entry registered if this machine has none (a container rarely has).
[ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT" ||
  fail "binfmt_misc cannot be mounted here: arm64 programs cannot run in the root"
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -r "$conf" ] || fail "$conf missing (qemu-user-static)"
  grep -v '^#' "$conf" | head -n 1 >"$BINFMT/register"
  REGISTERED=1
fi
grep -q '^flags:.*F' "$BINFMT/qemu-aarch64" || fail "the qemu-aarch64 binfmt entry lacks the F flag"
pass "binfmt_misc: $(sed -n 's/^interpreter //p' "$BINFMT/qemu-aarch64") for aarch64"

step "1. the arm64 packages (scripts/package.sh --arch arm64)"
mkdir -p "$WORK"
if [ "${AGENTKV_ARM64_CHECK_REUSE:-0}" != 1 ] || ! ls "$WORK"/debs/agentkv_*_arm64.deb >/dev/null 2>&1; then
  bash "$ROOT/scripts/package.sh" --arch arm64 "$WORK/debs" >"$WORK/package.log" 2>&1 ||
    { tail -n 30 "$WORK/package.log" >&2; fail "package.sh --arch arm64 failed (log: $WORK/package.log)"; }
fi
deb=$(ls "$WORK"/debs/agentkv_*_arm64.deb)
llama_deb=$(ls "$WORK"/debs/agentkv-llama-server_*_arm64.deb)
version=$(dpkg-deb -f "$deb" Version)
[ "$(dpkg-deb -f "$llama_deb" Architecture)" = arm64 ] || fail "$llama_deb is not arm64"
pass "$(basename "$deb"), $(basename "$llama_deb") ($(du -h "$llama_deb" | cut -f1))"

step "2. a Debian 12 arm64 root (debootstrap --foreign, second stage under qemu-user)"
base=$CACHE/arm64-package-check-bookworm-arm64.tar
if [ ! -r "$base" ]; then
  rm -rf "$WORK/base"
  debootstrap --arch=arm64 --foreign --variant=minbase bookworm "$WORK/base" "$MIRROR" >/dev/null
  chroot "$WORK/base" /debootstrap/debootstrap --second-stage >/dev/null ||
    fail "the second stage failed under qemu-user ($WORK/base/debootstrap/debootstrap.log)"
  tar -C "$WORK/base" -cf "$base.tmp" . && mv "$base.tmp" "$base"
  rm -rf "$WORK/base"
fi
rm -rf "$DIR" && mkdir -p "$DIR"
tar -C "$DIR" -xf "$base"
[ "$(chroot "$DIR" dpkg --print-architecture)" = arm64 ] || fail "the root is not arm64"
pass "$(chroot "$DIR" uname -m) root, Debian $(cat "$DIR/etc/debian_version")"
for m in proc sys dev; do
  mount --bind "/$m" "$DIR/$m"
  MOUNTED+=("$DIR/$m")
done

step "3. the packages' Depends from Debian, then dpkg -i"
deps=$(for d in "$deb" "$llama_deb"; do dpkg-deb -f "$d" Depends; echo ,; done |
  sed -e 's/([^)]*)//g' -e 's/,/ /g' | tr -s ' \n' '\n\n' | grep -v '^agentkv' | sort -u | paste -sd' ' -)
cp /etc/resolv.conf "$DIR/etc/resolv.conf"
chroot "$DIR" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $deps" \
  >"$WORK/apt.log" 2>&1 || { tail -n 20 "$WORK/apt.log" >&2; fail "apt-get install $deps failed in the root"; }
mkdir -p "$DIR/srv/packages"
cp "$deb" "$llama_deb" "$DIR/srv/packages/"
# No systemd runs in a chroot: the post-install's systemctl calls find
# none and say so; the unit itself is checked under systemd on amd64
# (scripts/systemd-check.sh).
chroot "$DIR" sh -c 'dpkg -i /srv/packages/agentkv-llama-server_*.deb /srv/packages/agentkv_*.deb' \
  >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; fail "dpkg -i of the arm64 packages failed"; }
chroot "$DIR" dpkg -s agentkv agentkv-llama-server | grep -q '^Status: install ok installed' ||
  fail "the packages are not installed"
pass "dpkg -i: agentkv $version and agentkv-llama-server installed"

step "4. in the root: --version, and one agent's turns served"
got=$(chroot "$DIR" /usr/bin/agentkv --version)
[ "$got" = "$version" ] || fail "agentkv --version says $got, the package $version"
file -L "$DIR/usr/bin/agentkv" | grep -q 'ARM aarch64' || fail "/usr/bin/agentkv is not an aarch64 binary"
pass "agentkv --version: $got (aarch64)"
llama_version=$(chroot "$DIR" /usr/lib/agentkv/llama-server --version 2>&1 | grep -m1 '^version') ||
  fail "llama-server --version did not answer"
pass "llama-server --version: $llama_version"
install -D -m 0644 "$MODEL" "$DIR/srv/model.gguf"

serve() {
  chroot "$DIR" /usr/bin/agentkv serve --model /srv/model.gguf \
    --llama-server /usr/lib/agentkv/llama-server --memory-dir /var/lib/agentkv/memory \
    --host 127.0.0.1 --port "$PORT" >>"$WORK/serve.log" 2>&1 &
  SERVE_PID=$!
  until_ok 300 curl -sf "http://127.0.0.1:$PORT/health" || fail "agentkv did not become ready in 300 s"
}
# One turn of agent "packaged": its conversation so far and the message $1,
# as a framework sends it. Prints the placement header and the tokens
# llama-server prefilled (timings.prompt_n), and keeps the answer.
turn() {
  local headers conversation=$WORK/conversation.json prompt_n
  conversation_request "$conversation" "$1" >"$WORK/request.json"
  headers=$(curl -sS --fail-with-body -D - -o "$WORK/answer.json" \
    -H 'X-Agent-Id: packaged' -H 'Content-Type: application/json' \
    --data-binary @"$WORK/request.json" "http://127.0.0.1:$PORT/v1/chat/completions") ||
    { cat "$WORK/answer.json" >&2; fail "the turn failed"; }
  prompt_n=$(conversation_record "$conversation" "$WORK/request.json" "$WORK/answer.json") ||
    fail "the answer is not a chat completion"
  echo "$(placement_of <<<"$headers") $prompt_n"
}
rm -f "$WORK/serve.log" "$WORK/conversation.json"
serve
read -r placement first_n <<<"$(turn "$(words word 200)")"
[ "$placement" = cold ] || fail "the first turn was $placement, not cold"
pass "first turn: 200, a chat completion, placement cold, $first_n tokens prefilled"
until_ok 120 sh -c "ls '$DIR'/var/lib/agentkv/memory/*.kv" || fail "no memory file after the turn's end"
pass "saved at the turn's end: $(ls "$DIR"/var/lib/agentkv/memory/*.kv | wc -l) memory file"
stop_serve
serve
read -r placement next_n <<<"$(turn "And now a short question.")"
[ "$placement" = restored ] || fail "after a restart the turn was $placement, not restored"
# Restored: only the new message is prefilled, not the conversation again.
[ "$next_n" -lt 60 ] || fail "restored, but $next_n tokens prefilled: its memory was not used"
pass "after a restart: placement restored, $next_n tokens prefilled (against $first_n cold)"
stop_serve
printf '   (%d s)\n' $((SECONDS - STEP_T0))
say "arm64 package check passed"
