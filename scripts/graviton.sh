#!/usr/bin/env bash
# Installs agentkv as a systemd service on an AWS Graviton (Arm64) host
# running Ubuntu 24.04, idempotently. Run as root from a checkout:
#   1. the Debian packages agentkv and llama.cpp build with;
#   2. llama.cpp at the tag pinned in scripts/setup.sh, in /opt/agentkv/llama.cpp;
#   3. llama-server built with Arm's KleidiAI kernels -> /usr/local/bin/llama-server;
#   4. agentkv built from this checkout (build-release/) -> /usr/local/bin/agentkv;
#   5. configs/agentkv.service -> /etc/systemd/system/agentkv.service, and
#      /etc/default/agentkv with commented defaults if there is none;
#   6. systemctl daemon-reload and enable. The service is started only with
#      --start: it needs a model first.
# A re-run rebuilds only what changed and keeps /etc/default/agentkv.
#
# Usage: sudo scripts/graviton.sh [--start] [--dry-run]
#   --start    (re)start agentkv at the end; fails if the model is missing
#   --dry-run  print the commands instead of running them (any machine, no root)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LLAMA_DIR=/opt/agentkv/llama.cpp
LLAMA_BUILD=$LLAMA_DIR/build-release
AGENTKV_BUILD=$ROOT/build-release
UNIT=/etc/systemd/system/agentkv.service
DEFAULTS=/etc/default/agentkv
MODELS=/var/lib/agentkv/models
DEFAULT_MODEL=$MODELS/model.gguf
JOBS=$(nproc)
DRY_RUN=0
START=0

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --start) START=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "graviton.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '== %s\n' "$*"; }
die() { printf 'graviton.sh: %s\n' "$*" >&2; exit 1; }

# Runs a command, or with --dry-run prints it, shell-quoted.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

# Reads NAME=value from scripts/setup.sh, so the pin lives in one place.
pinned() {
  sed -n "s/^$1=\([^[:space:]#]*\).*/\1/p" "$ROOT/scripts/setup.sh" | head -n 1
}
LLAMA_TAG=$(pinned LLAMA_TAG)
LLAMA_REPO=$(pinned LLAMA_REPO)
if [ -z "$LLAMA_TAG" ] || [ -z "$LLAMA_REPO" ]; then
  die "cannot read LLAMA_TAG and LLAMA_REPO from $ROOT/scripts/setup.sh"
fi

preflight() {
  local arch
  arch=$(uname -m)
  if [ "$DRY_RUN" = 1 ]; then
    say "dry run on $arch: nothing is changed"
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0)"
  # ggml's CMake refuses GGML_CPU_KLEIDIAI on anything but AArch64.
  [ "$arch" = aarch64 ] || die "this is $arch; KleidiAI needs aarch64 (elsewhere use scripts/setup.sh)"
  [ -d /run/systemd/system ] || die "systemd is not running; nothing to install the service into"
  grep -qs 'VERSION_ID="24.04"' /etc/os-release \
    || say "warning: written for Ubuntu 24.04; continuing"
}

install_packages() {
  local pkgs=(build-essential cmake git pkg-config libcpp-httplib-dev nlohmann-json3-dev
              libspdlog-dev libcli11-dev libgtest-dev libsystemd-dev libxxhash-dev libssl-dev python3-numpy
              ca-certificates)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "packages: all present"; return; fi
  say "packages: installing ${missing[*]}"
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

# Leaves $LLAMA_DIR a checkout of $LLAMA_TAG.
llama_source() {
  if [ -d "$LLAMA_DIR/.git" ]; then
    local head tag
    head=$(git -C "$LLAMA_DIR" rev-parse HEAD)
    tag=$(git -C "$LLAMA_DIR" rev-parse -q --verify "refs/tags/$LLAMA_TAG^{commit}" || true)
    if [ "$head" = "$tag" ]; then say "llama.cpp: $LLAMA_DIR is at $LLAMA_TAG"; return; fi
    say "llama.cpp: moving $LLAMA_DIR to $LLAMA_TAG"
    run git -C "$LLAMA_DIR" fetch -q --depth 1 origin tag "$LLAMA_TAG"
    run git -C "$LLAMA_DIR" -c advice.detachedHead=false checkout -q --detach "refs/tags/$LLAMA_TAG"
  elif [ -e "$LLAMA_DIR" ]; then
    die "$LLAMA_DIR exists but is not a git checkout; move it away"
  else
    say "llama.cpp: cloning $LLAMA_TAG into $LLAMA_DIR"
    run mkdir -p "$(dirname "$LLAMA_DIR")"
    run git -c advice.detachedHead=false clone -q --depth 1 --branch "$LLAMA_TAG" "$LLAMA_REPO" "$LLAMA_DIR"
  fi
}

# A static llama-server, so the one binary in /usr/local/bin is enough.
# KleidiAI's sources are downloaded by CMake at configure time. GGML_NATIVE
# (on by default) tunes for this CPU: build on the instance type you run.
build_llama() {
  say "llama.cpp: building llama-server with KleidiAI"
  run cmake -S "$LLAMA_DIR" -B "$LLAMA_BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_CPU_KLEIDIAI=ON -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
  run cmake --build "$LLAMA_BUILD" -j"$JOBS" --target llama-server
  run install -m755 "$LLAMA_BUILD/bin/llama-server" /usr/local/bin/llama-server
}

build_agentkv() {
  say "agentkv: building from $ROOT"
  run cmake -S "$ROOT" -B "$AGENTKV_BUILD" -DCMAKE_BUILD_TYPE=Release -DAGENTKV_BUILD_TESTS=OFF
  run cmake --build "$AGENTKV_BUILD" -j"$JOBS" --target agentkv
  run install -m755 "$AGENTKV_BUILD/agentkv" /usr/local/bin/agentkv
}

defaults_file() {
  cat <<EOF
# Settings for agentkv.service, written once by scripts/graviton.sh.
# Uncomment a line to change a default, then: systemctl restart agentkv
# Values are not shell-expanded; quote a value that holds spaces.

# The GGUF llama-server loads. The service runs as a dynamic user under
# ProtectHome=yes: the file must be world-readable and not under /home or /root.
#AGENTKV_MODEL=$DEFAULT_MODEL

# Agents whose KV stays in RAM at once (llama-server slots).
#AGENTKV_SLOTS=4

# Arguments for llama-server. --ctx-size is the total over all slots.
# Without --threads llama-server runs one thread per physical core; Graviton
# vCPUs are physical cores, and this host has $JOBS.
#AGENTKV_LLAMA_ARGS="--ctx-size 32768 --threads $JOBS"

# More agentkv flags (docs/operations.md, Flags), e.g.:
#AGENTKV_EXTRA_ARGS="--disk-budget-bytes 50000000000 --log-level info"

# The admin API has no authentication, and the unit accepts loopback
# traffic only (IPAddressDeny=any). To listen elsewhere, also allow the
# clients in a drop-in: systemctl edit agentkv
#AGENTKV_HOST=127.0.0.1
#AGENTKV_PORT=8090

#AGENTKV_LLAMA_SERVER=/usr/local/bin/llama-server
EOF
}

install_service() {
  say "service: installing $UNIT"
  run install -m644 "$ROOT/configs/agentkv.service" "$UNIT"
  if [ -e "$DEFAULTS" ]; then
    say "service: keeping $DEFAULTS"
  elif [ "$DRY_RUN" = 1 ]; then
    printf '+ write %s:\n' "$DEFAULTS"
    defaults_file | sed 's/^/    /'
  else
    say "service: writing $DEFAULTS"
    defaults_file >"$DEFAULTS"
    chmod 644 "$DEFAULTS"
  fi
  # Before the first start /var/lib/agentkv is a plain directory; systemd
  # moves it under /var/lib/private and hands it to the dynamic user then.
  run mkdir -p "$MODELS"
  run systemctl daemon-reload
  run systemctl enable agentkv.service
}

# The model the service will load: /etc/default/agentkv's, else the default.
model_path() {
  local m=""
  [ -r "$DEFAULTS" ] && m=$(sed -n 's/^AGENTKV_MODEL=//p' "$DEFAULTS" | tail -n 1 | tr -d '"')
  echo "${m:-$DEFAULT_MODEL}"
}

start_service() {
  local model
  model=$(model_path)
  if [ "$DRY_RUN" = 0 ] && [ ! -r "$model" ]; then
    die "not starting agentkv: no model at $model (set AGENTKV_MODEL in $DEFAULTS)"
  fi
  # restart, not start: a re-run has just replaced the binaries.
  run systemctl restart agentkv.service
}

next_steps() {
  cat <<EOF

agentkv is installed and enabled$([ "$START" = 1 ] && echo " and started").
Next:
  1. Put a GGUF at $DEFAULT_MODEL, or set AGENTKV_MODEL in $DEFAULTS
     (also the place for AGENTKV_SLOTS and AGENTKV_LLAMA_ARGS).
  2. systemctl start agentkv        (logs: journalctl -u agentkv -f)
  3. curl http://127.0.0.1:8090/health
EOF
}

main() {
  preflight
  install_packages
  llama_source
  build_llama
  build_agentkv
  install_service
  [ "$START" = 0 ] || start_service
  next_steps
}

main
