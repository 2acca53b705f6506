#!/usr/bin/env bash
# The packages under a real systemd (#29): a Debian 12 root made with
# debootstrap, booted with systemd-nspawn (its own network namespace: only
# loopback, as the unit allows), the amd64 packages installed into it with
# dpkg as an operator would, and then, through the unit:
#   1. the packages of an earlier commit (AGENTKV_UPGRADE_FROM, default
#      d36b5bc, the first with packages) serve two agents, left on disk;
#   2. `dpkg -i` of this tree's packages over them: the service is stopped,
#      upgraded, started again, the agents restored, the conffile's edits
#      kept; every step below runs this tree's version;
#   3. its post-install without a model leaves the unit stopped and enabled,
#      with one line that says what to do; the port taken, or llama-server
#      missing, stops a start at once (exit 78), with no restart;
#   4. `systemctl start` with the test model, returning agents restored;
#   5. `systemctl restart` keeps their memory;
#   6. `systemctl stop` saves a dirty agent within TimeoutStopSec;
#   7. the journal holds agentkv's lines as JSON objects;
#   8. the sandbox holds: the service cannot write outside /var/lib/agentkv,
#      and its memory files are private to it;
#   9. llama-server killed inside the unit is restarted by agentkv, agentkv
#      killed by systemd, each time with the agent's memory kept.
# Each step prints how long it took; any failed check stops the script with
# exit 1 and the journal's tail.
#
# Usage: scripts/systemd-check.sh [WORK_DIR]   (as root; default
# /var/tmp/agentkv-systemd-check). Installs debootstrap and systemd-container
# when missing; caches the debootstrapped root in ~/.cache/agentkv (or
# $AGENTKV_CACHE_DIR) as a tarball, so a re-run skips the download.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${1:-/var/tmp/agentkv-systemd-check}
CACHE=${AGENTKV_CACHE_DIR:-$HOME/.cache/agentkv}
FROM=${AGENTKV_UPGRADE_FROM:-d36b5bc}
MIRROR=${AGENTKV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
MODEL=${AGENTKV_TEST_MODEL:-$CACHE/models/agentkv-test.gguf}
DIR=$WORK/root
T0=$SECONDS
STEP_T0=$SECONDS
NSPAWN_PID=""

# shellcheck source=scripts/check_lib.sh
. "$ROOT/scripts/check_lib.sh"
fail() {
  printf '\033[31mFAILED: %s\033[0m\n' "$*" >&2
  if [ -n "$NSPAWN_PID" ]; then
    in_root journalctl -u agentkv --no-pager -n 40 >&2 || true
  fi
  exit 1
}

# Commands in the booted container: every namespace (in_root) or only its
# network, with this machine's own programs (in_net).
leader() { pgrep -P "$NSPAWN_PID" | head -n 1; }
in_root() { nsenter -t "$(leader)" -m -u -i -n -p -r -w -- "$@"; }
in_net() { nsenter -t "$(leader)" -n -- "$@"; }
cleanup() {
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    kill -TERM "$NSPAWN_PID" 2>/dev/null || true  # nspawn powers the container off
    for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$NSPAWN_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# One turn of agent $1: its conversation so far ($WORK/conversation-$1.json)
# and the new message $2, as a framework sends it; $3: X-Agent-Next. Prints
# the answer's placement, then the tokens llama-server prefilled for it
# (timings.prompt_n), and adds the message and the answer to the
# conversation.
turn() {
  local agent=$1 message=$2 next=${3:-}
  local conversation=$WORK/conversation-$agent.json headers placement
  conversation_request "$conversation" "$message" >"$WORK/request.json"
  headers=$(mktemp)
  in_net curl -sS --fail-with-body -D "$headers" -o "$WORK/answer.json" \
    -H "X-Agent-Id: $agent" ${next:+-H "X-Agent-Next: $next"} -H 'Content-Type: application/json' \
    --data-binary @"$WORK/request.json" http://127.0.0.1:8090/v1/chat/completions >/dev/null || {
    cat "$WORK/answer.json" >&2
    fail "$agent's turn: the request failed"
  }
  placement=$(placement_of <"$headers")
  rm -f "$headers"
  echo "$placement $(conversation_record "$conversation" "$WORK/request.json" "$WORK/answer.json")"
}
# expect_placement "PLACEMENT PREFILLED" WANT WHAT: a restored agent must
# prefill only its new message (a few words: under 60 tokens), not its
# whole conversation again.
expect_placement() {
  local got=$1 want=$2 what=$3
  [ "${got%% *}" = "$want" ] || fail "$what: placement ${got%% *}, expected $want"
  if [ "$want" = restored ] && [ "${got#* }" -ge 60 ]; then
    fail "$what: restored, but ${got#* } tokens prefilled: its memory was not in the file"
  fi
  pass "$what: $want, ${got#* } tokens prefilled"
}
admin() { in_net curl -sS --fail "http://127.0.0.1:8090$1"; }
json_field() { /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }
unit_prop() { in_root systemctl show -p "$1" --value agentkv; }

[ "$(id -u)" = 0 ] || { echo "systemd-check.sh: run as root (debootstrap, nspawn)" >&2; exit 2; }
[ "$(dpkg --print-architecture)" = amd64 ] || { echo "systemd-check.sh: amd64 only so far" >&2; exit 2; }
[ -r "$MODEL" ] || { echo "systemd-check.sh: no test model at $MODEL: run scripts/setup.sh" >&2; exit 2; }

say "tools: debootstrap, systemd-nspawn"
missing=()
for p in debootstrap systemd-container; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "packages: this tree's, and $FROM's (the earlier version to upgrade from)"
mkdir -p "$WORK"
rm -f "$WORK"/conversation-*.json  # a run's agents start afresh, as its root does
# AGENTKV_SYSTEMD_CHECK_REUSE=1: the packages of the last run, if any (to
# iterate on this script; not for a verdict on a new commit).
if [ "${AGENTKV_SYSTEMD_CHECK_REUSE:-0}" != 1 ] || ! ls "$WORK"/new/agentkv_*.deb "$WORK"/old/agentkv_*.deb >/dev/null 2>&1; then
  bash "$ROOT/scripts/package.sh" "$WORK/new" >/dev/null
  rm -rf "$WORK/old-src"
  git -C "$ROOT" worktree prune
  git -C "$ROOT" worktree add --detach -f "$WORK/old-src" "$FROM" >/dev/null 2>&1 ||
    fail "cannot check out $FROM (a shallow clone? set AGENTKV_UPGRADE_FROM)"
  bash "$WORK/old-src/scripts/package.sh" "$WORK/old" >/dev/null
  git -C "$ROOT" worktree remove --force "$WORK/old-src"
fi
new_version=$(dpkg-deb -f "$WORK"/new/agentkv_*.deb Version)
old_version=$(dpkg-deb -f "$WORK"/old/agentkv_*.deb Version)
dpkg --compare-versions "$new_version" gt "$old_version" ||
  fail "$new_version does not upgrade $old_version"
pass "agentkv $old_version, then $new_version"

step "a Debian 12 root"
base=$CACHE/systemd-check-bookworm-amd64.tar
if [ ! -r "$base" ]; then
  rm -rf "$WORK/base"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$WORK/base" "$MIRROR" >/dev/null
  tar -C "$WORK/base" -cf "$base.tmp" . && mv "$base.tmp" "$base"
  rm -rf "$WORK/base"
fi
rm -rf "$DIR" && mkdir -p "$DIR"
tar -C "$DIR" -xf "$base"
# The packages' libraries, from Debian, while the root still has a network
# (the booted container has only loopback).
deps=$(for deb in "$WORK"/new/*.deb "$WORK"/old/*.deb; do dpkg-deb -f "$deb" Depends; echo ,; done |
  sed -e 's/([^)]*)//g' -e 's/,/ /g' | tr -s ' \n' '\n\n' | grep -v '^agentkv' | sort -u | paste -sd' ' -)
cp /etc/resolv.conf "$DIR/etc/resolv.conf"
chroot "$DIR" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $deps" >/dev/null
mkdir -p "$DIR/srv/packages"
cp "$WORK"/old/*.deb "$DIR/srv/packages/" && mkdir -p "$DIR/srv/packages/new" && cp "$WORK"/new/*.deb "$DIR/srv/packages/new/"
echo agentkv-check >"$DIR/etc/hostname"

step "boot it: systemd-nspawn --boot"
systemd-nspawn --boot --register=no --keep-unit --private-network -D "$DIR" >"$WORK/console.log" 2>&1 &
NSPAWN_PID=$!
until_ok 60 in_root systemctl is-system-running --wait || true
state=$(in_root systemctl is-system-running || true)
case "$state" in
  running | degraded) pass "systemd is $state" ;;
  *) cat "$WORK/console.log" >&2; fail "the container did not boot (state: ${state:-none})" ;;
esac
[ "$state" = running ] || in_root systemctl --failed --no-legend --plain | sed 's/^/   failed unit: /'

step "1. the earlier version ($old_version), agents on disk"
out=$(in_root sh -c 'dpkg -i /srv/packages/agentkv-llama-server_*.deb /srv/packages/agentkv_*.deb 2>&1') ||
  { echo "$out" >&2; fail "dpkg -i of $old_version's packages failed"; }
install -m 0644 "$MODEL" "$DIR/var/lib/agentkv/models/model.gguf"
# The operator's edits of the conffile: one slot, so that a second agent
# evicts the first; logs as JSON.
cat >>"$DIR/etc/default/agentkv" <<'EOF'
AGENTKV_SLOTS=1
AGENTKV_LLAMA_ARGS="--ctx-size 4096"
AGENTKV_EXTRA_ARGS="--log-format json --log-level info"
EOF
in_root systemctl start agentkv || fail "systemctl start agentkv ($old_version) failed"
pass "active, serving $(admin /admin/stats | json_field '["version"]')"
expect_placement "$(turn planner "$(words plan 300)")" cold "planner's first turn"
expect_placement "$(turn coder "$(words code 300)")" cold "coder's first turn (evicts planner)"

step "2. dpkg -i $new_version over $old_version, agents on disk"
out=$(in_root sh -c 'dpkg -i /srv/packages/new/agentkv-llama-server_*.deb /srv/packages/new/agentkv_*.deb 2>&1') ||
  { echo "$out" >&2; fail "dpkg -i of the new packages failed"; }
[ "$(unit_prop ActiveState)" = active ] || fail "the unit is $(unit_prop ActiveState) after the upgrade"
until_ok 90 in_net curl -sf http://127.0.0.1:8090/readyz || fail "not ready after the upgrade"
running=$(admin /admin/stats | json_field '["version"]')
[ "$running" = "$new_version" ] || fail "serving $running after the upgrade, not $new_version"
grep -q '^AGENTKV_SLOTS=1$' "$DIR/etc/default/agentkv" || fail "the conffile's edits were lost"
admin /metrics | grep -q '^agentkv_slots 1$' || fail "the edited slot count is not in effect"
pass "serving $running, /etc/default/agentkv kept"
mode=$(in_root stat -c %a /var/lib/private/agentkv/memory)
[ "$mode" = 700 ] || fail "the memory directory has mode $mode after the upgrade, expected 700"
pass "the memory directory is 0700 (StateDirectoryMode)"
expect_placement "$(turn planner "$(words plan2 5)")" restored "planner after the upgrade"
expect_placement "$(turn coder "$(words code2 5)")" restored "coder after the upgrade"

step "3. this version without a model, with its port taken, without llama-server"
in_root systemctl stop agentkv || fail "systemctl stop failed"
mv "$DIR/var/lib/agentkv/models/model.gguf" "$DIR/var/lib/agentkv/model.away"
out=$(in_root /var/lib/dpkg/info/agentkv.postinst configure 2>&1) || { echo "$out" >&2; fail "the post-install failed"; }
echo "$out" | grep -q '^agentkv: not started: no model at /var/lib/agentkv/models/model.gguf' ||
  { echo "$out" >&2; fail "the post-install did not say the model is missing"; }
pass "$(echo "$out" | grep '^agentkv: not started')"
[ "$(unit_prop ActiveState)" = inactive ] || fail "the unit is $(unit_prop ActiveState) without a model"
[ "$(in_root systemctl is-enabled agentkv)" = enabled ] || fail "the unit is not enabled"
pass "inactive, enabled"
mv "$DIR/var/lib/agentkv/model.away" "$DIR/var/lib/agentkv/models/model.gguf"
# The port taken: the start fails at once with 78 and is not retried.
nsenter -t "$(leader)" -n -- /usr/bin/python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 8090)); s.listen(); time.sleep(600)' &
holder=$!
until_ok 10 in_net /usr/bin/python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8090))'
if in_root systemctl start agentkv 2>/dev/null; then fail "agentkv started with its port taken"; fi
[ "$(unit_prop ActiveState)" = failed ] || fail "port taken: the unit is $(unit_prop ActiveState)/$(unit_prop SubState), not failed"
[ "$(unit_prop ExecMainStatus)" = 78 ] || fail "port taken: exit status $(unit_prop ExecMainStatus), expected 78"
[ "$(unit_prop NRestarts)" = 0 ] || fail "port taken: restarted $(unit_prop NRestarts) times"
pass "port taken: failed with 78, no restart: $(in_root journalctl -u agentkv -o cat --no-pager | grep -c 'cannot listen') message(s) 'cannot listen'"
kill "$holder" && wait "$holder" 2>/dev/null || true
in_root systemctl reset-failed agentkv
# llama-server missing (agentkv-llama-server removed): the post-install says
# so in one line, and a start fails at once with 78, not retried.
in_root dpkg -r agentkv-llama-server >/dev/null 2>&1 || fail "dpkg -r agentkv-llama-server failed"
out=$(in_root /var/lib/dpkg/info/agentkv.postinst configure 2>&1) || { echo "$out" >&2; fail "the post-install failed"; }
echo "$out" | grep -q '^agentkv: not started: no llama-server at /usr/lib/agentkv/llama-server' ||
  { echo "$out" >&2; fail "the post-install did not say llama-server is missing"; }
pass "$(echo "$out" | grep '^agentkv: not started' | cut -c1-80)..."
if in_root systemctl start agentkv 2>/dev/null; then fail "agentkv started without llama-server"; fi
[ "$(unit_prop ExecMainStatus)" = 78 ] || fail "no llama-server: exit status $(unit_prop ExecMainStatus), expected 78"
[ "$(unit_prop NRestarts)" = 0 ] || fail "no llama-server: restarted $(unit_prop NRestarts) times"
pass "no llama-server: failed with 78, no restart: $(in_root journalctl -u agentkv -o cat --no-pager | grep -c 'llama-server not found') message(s) 'llama-server not found'"
in_root systemctl reset-failed agentkv
in_root sh -c 'dpkg -i /srv/packages/new/agentkv-llama-server_*.deb' >/dev/null 2>&1 || fail "reinstalling agentkv-llama-server failed"

step "4. systemctl start; returning agents are restored"
in_root systemctl start agentkv || fail "systemctl start agentkv failed"
pass "active, serving $(admin /admin/stats | json_field '["version"]')"
expect_placement "$(turn planner "$(words plan3 5)")" restored "planner returns"
expect_placement "$(turn coder "$(words code3 5)")" restored "coder returns (evicts planner)"

step "5. systemctl restart keeps the memory"
in_root systemctl restart agentkv || fail "systemctl restart failed"
expect_placement "$(turn coder "$(words code4 5)")" restored "coder after the restart"

step "6. systemctl stop saves a dirty agent"
# X-Agent-Next: tool defers coder's turn-end save (--returning-save-delay-s):
# it is still unsaved when the stop comes.
turn coder "$(words code5 5)" tool >/dev/null
desc=$(admin /admin/agents/coder)
[ "$(echo "$desc" | json_field '["dirty"]')" = True ] || fail "coder's turn was saved at once: nothing to test"
tokens=$(echo "$desc" | json_field '["resident_tokens"]')
saved=$(echo "$desc" | json_field '["saved"]["tokens"]')
start=$SECONDS
in_root systemctl stop agentkv || fail "systemctl stop failed"
took=$((SECONDS - start))
[ "$(unit_prop Result)" = success ] || fail "the stop ended with $(unit_prop Result)"
last=$(in_root journalctl -u agentkv -o cat --no-pager _COMM=agentkv | tail -n 1)
case "$last" in *'"stopped"'*) ;; *) fail "agentkv's last line at the stop: $last" ;; esac
pass "stopped in $took s (TimeoutStopSec $(unit_prop TimeoutStopUSec)); coder was dirty: $tokens tokens in its slot, $saved on disk"
in_root systemctl start agentkv || fail "systemctl start failed"
after=$(admin /admin/agents/coder | json_field '["saved"]["tokens"]')
[ "$after" -gt "$saved" ] || fail "the stop saved nothing of coder: $after tokens on disk, as before"
pass "the stop saved coder's turn: $after tokens on disk"
got=$(turn coder "$(words code6 5)")
expect_placement "$got" restored "coder after the stop"

step "7. the journal holds JSON"
lines=$(in_root journalctl -u agentkv -o cat --no-pager _COMM=agentkv | grep -c . || true)
bad=$(in_root journalctl -u agentkv -o cat --no-pager _COMM=agentkv | grep '^{' |
  /usr/bin/python3 -c 'import json,sys
bad=0
for line in sys.stdin:
    try: json.loads(line)
    except ValueError: bad+=1
print(bad)')
json_lines=$(in_root journalctl -u agentkv -o cat --no-pager _COMM=agentkv | grep -c '^{' || true)
[ "$json_lines" -gt 0 ] && [ "$bad" = 0 ] || fail "$json_lines JSON lines, $bad unparsable"
pass "$json_lines of agentkv's $lines lines in the journal are JSON objects"

step "8. the sandbox holds"
pid=$(unit_prop MainPID)
uid=$(in_root stat -c %u "/proc/$pid")
as_service() { in_root nsenter -t "$pid" -m -S "$uid" -G "$uid" -- "$@"; }
if as_service sh -c 'echo x >/etc/agentkv-probe' 2>/dev/null; then fail "the service wrote to /etc"; fi
if as_service sh -c 'echo x >/usr/lib/agentkv/probe' 2>/dev/null; then fail "the service wrote to /usr"; fi
if as_service sh -c 'echo x >/root/probe' 2>/dev/null; then fail "the service wrote to /root"; fi
as_service sh -c 'echo x >/var/lib/agentkv/memory/probe && rm /var/lib/agentkv/memory/probe' ||
  fail "the service cannot write its own memory directory"
pass "writes to /etc, /usr, /root fail; /var/lib/agentkv/memory works"
modes=$(in_root find /var/lib/private/agentkv/memory -type f -printf '%m\n' | sort -u | paste -sd' ' -)
[ "$modes" = 600 ] || fail "memory files have modes $modes, expected 600"
pass "memory files are 0600, in /var/lib/private (dynamic user $uid)"

step "9. crashes: llama-server killed, then agentkv killed"
restarts=$(admin /metrics | sed -n 's/^agentkv_upstream_restarts_total \([0-9]*\).*/\1/p')
llama=$(pgrep -f '^/usr/lib/agentkv/llama-server' | head -n 1)
[ -n "$llama" ] || fail "no llama-server under the unit"
kill -KILL "$llama"
until_ok 60 sh -c "[ \"\$(nsenter -t $(leader) -n -- curl -s http://127.0.0.1:8090/metrics | sed -n 's/^agentkv_upstream_restarts_total \([0-9]*\).*/\1/p')\" -gt $restarts ]" ||
  fail "agentkv did not restart llama-server"
until_ok 60 in_net curl -sf http://127.0.0.1:8090/readyz || fail "not ready after llama-server's restart"
pass "llama-server restarted by agentkv"
expect_placement "$(turn planner "$(words plan4 5)")" restored "planner after llama-server's crash"
main=$(pgrep -f '^/usr/bin/agentkv serve' | head -n 1)
kill -KILL "$main"
until_ok 60 sh -c "[ \"\$(nsenter -t $(leader) -m -u -i -n -p -r -w -- systemctl show -p NRestarts --value agentkv)\" -ge 1 ]" ||
  fail "systemd did not restart agentkv"
until_ok 90 in_net curl -sf http://127.0.0.1:8090/readyz || fail "not ready after agentkv's restart"
pass "agentkv restarted by systemd ($(unit_prop NRestarts) restart)"
[ "$(pgrep -fc '^/usr/lib/agentkv/llama-server')" = 1 ] || fail "$(pgrep -fc '^/usr/lib/agentkv/llama-server') llama-servers after agentkv's restart"
expect_placement "$(turn coder "$(words code7 5)")" restored "coder after agentkv's crash"

printf '   (%d s)\n' $((SECONDS - STEP_T0))
say "systemd check passed in $((SECONDS - T0)) s"
