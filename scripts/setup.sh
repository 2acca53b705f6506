#!/usr/bin/env bash
# Sets agentkv up from nothing on Debian/Ubuntu, idempotently:
#   1. the Debian packages it builds and tests with (and chromium, for the
#      status page's browser test);
#   2. the pinned llama.cpp source (a git clone of the pinned tag where the
#      network allows, else the bundle shipped in the npm package
#      node-llama-cpp), cached outside the repo;
#   3. llama-server: an existing one ($AGENTKV_LLAMA_SERVER, --llama-server,
#      or on PATH) if present, else built from that source, cached by commit;
#   4. the random-weight test model (and with --bench-model the 1.1B-shaped
#      benchmark model), written with gguf-py from that source;
#   5. agentkv itself, in ./build.
# A re-run finds everything cached and takes seconds.
#
# Usage: scripts/setup.sh [--bench-model] [--kleidiai] [--llama-server PATH] [--skip-packages]
#   --kleidiai  on aarch64, build llama-server with Arm's KleidiAI kernels
#               (-DGGML_CPU_KLEIDIAI=ON; CMake downloads KleidiAI, so this needs
#               the network); elsewhere it says so and builds without
# Cache: $AGENTKV_CACHE_DIR, else $XDG_CACHE_HOME/agentkv, else ~/.cache/agentkv
set -euo pipefail

LLAMA_TAG=v0.5.0                      # llama.cpp release pinned by node-llama-cpp 3.22.1
LLAMA_REPO=https://github.com/ggml-org/llama.cpp.git
NPM_BUNDLE_PACKAGE=node-llama-cpp@3.22.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AGENTKV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentkv}
JOBS=$(nproc)
BENCH_MODEL=0
KLEIDIAI=0
SKIP_PACKAGES=0
LLAMA_SERVER=${AGENTKV_LLAMA_SERVER:-}

while [ $# -gt 0 ]; do
  case "$1" in
    --bench-model) BENCH_MODEL=1 ;;
    --kleidiai) KLEIDIAI=1 ;;
    --skip-packages) SKIP_PACKAGES=1 ;;
    --llama-server) LLAMA_SERVER=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

install_packages() {
  local pkgs=(build-essential cmake git pkg-config ca-certificates
              libcpp-httplib-dev nlohmann-json3-dev libspdlog-dev libcli11-dev
              libgtest-dev libgmock-dev python3-numpy
              clang  # scripts/fuzz.sh (libFuzzer) and scripts/lint.sh threads
              prometheus   # for promtool, which checks our /metrics in the tests
              nginx haproxy curl)  # scripts/cluster.sh and the cluster tests
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  if [ ${#missing[@]} -eq 0 ]; then
    say "packages: all present"
  else
    say "packages: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
    # Installing nginx or haproxy starts them as system services (nginx on
    # port 80); agentkv's cluster runs instances of its own: the services
    # this installed are stopped and disabled.
    for svc in nginx haproxy; do
      if [[ " ${missing[*]} " == *" $svc "* ]] && [ -d /run/systemd/system ]; then
        $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
      fi
    done
  fi
  install_browser
  # libFuzzer's runtime (libclang_rt.fuzzer) is in libclang-rt-<N>-dev for
  # the installed clang N (14 on Debian 12, 18 on Ubuntu 24.04), which clang
  # only recommends: --no-install-recommends leaves it out.
  local major rt
  major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
  rt=libclang-rt-$major-dev
  if ! dpkg-query -W -f='${Status}' "$rt" 2>/dev/null | grep -q "install ok installed"; then
    say "packages: installing $rt (libFuzzer for scripts/fuzz.sh)"
    [ ${#missing[@]} -gt 0 ] || $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "$rt" >/dev/null
  fi
}

# A browser for the status page's test (tests/browser/): a Chromium or Chrome
# already on PATH, or $AGENTKV_CHROMIUM; else Debian's chromium package, or on
# Ubuntu (whose chromium package is only a snap) the chromium snap where snap
# runs. Without one the test is skipped, or fails under CI=true.
install_browser() {
  local b sudo=""
  for b in ${AGENTKV_CHROMIUM:-} chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null; then say "browser: $(command -v "$b")"; return; fi
  done
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  if grep -q '^ID=debian' /etc/os-release 2>/dev/null; then
    say "browser: installing chromium (for the status page's test)"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  elif command -v snap >/dev/null && $sudo snap install chromium >/dev/null 2>&1; then
    say "browser: installed the chromium snap (for the status page's test)"
  else
    say "browser: none found; install Chromium or Google Chrome for the browser test"
  fi
}

# Prints the path of the pinned llama.cpp source tree, fetching it if needed.
llama_source() {
  local src=$CACHE/llama.cpp/src-$LLAMA_TAG
  if [ -f "$src/CMakeLists.txt" ]; then echo "$src"; return; fi
  local tmp
  tmp=$(mktemp -d)
  if timeout 120 git clone -q --depth 1 --branch "$LLAMA_TAG" "$LLAMA_REPO" "$tmp/src" 2>/dev/null; then
    say "llama.cpp: cloned $LLAMA_TAG" >&2
  else
    say "llama.cpp: no git access, using the bundle in $NPM_BUNDLE_PACKAGE" >&2
    if ! command -v npm >/dev/null; then
      local sudo=""
      [ "$(id -u)" -eq 0 ] || sudo=sudo
      $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq npm >/dev/null
    fi
    (cd "$tmp" && npm pack --silent "$NPM_BUNDLE_PACKAGE" >/dev/null && tar xzf node-llama-cpp-*.tgz)
    git clone -q "$tmp/package/llama/gitRelease.bundle" "$tmp/src" 2>/dev/null
  fi
  mkdir -p "$CACHE/llama.cpp"
  rm -rf "$src"
  mv "$tmp/src" "$src"
  rm -rf "$tmp"
  echo "$src"
}

# Builds llama-server and llama-quantize into a directory keyed by commit.
build_llama() {
  local src=$1 commit build flags=() suffix=""
  commit=$(git -C "$src" rev-parse --short=7 HEAD)
  if [ "$KLEIDIAI" = 1 ]; then
    if [ "$(uname -m)" = aarch64 ]; then
      flags+=(-DGGML_CPU_KLEIDIAI=ON)
      suffix=-kleidiai
    else  # ggml's CMake refuses KleidiAI on anything but AArch64
      say "llama.cpp: KleidiAI is for aarch64; this is $(uname -m), building without it" >&2
    fi
  fi
  build=$CACHE/llama.cpp/build-$commit$suffix
  if [ ! -x "$build/bin/llama-server" ] || [ ! -x "$build/bin/llama-quantize" ]; then
    say "llama.cpp: building llama-server at $commit (4 to 7 minutes on 2 cores)" >&2
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
      -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF "${flags[@]}" ${LLAMA_CMAKE_FLAGS:-} >/dev/null
    cmake --build "$build" -j"$JOBS" --target llama-server llama-quantize >/dev/null
  fi
  echo "$build/bin"
}

write_models() {
  local src=$1 bin=$2 models=$CACHE/models
  mkdir -p "$models"
  if [ ! -f "$models/agentkv-test.gguf" ]; then
    say "models: writing the test model"
    /usr/bin/python3 "$ROOT/scripts/make_model.py" --llama-src "$src" --shape test \
      --out "$models/agentkv-test.gguf"
  fi
  if [ ! -f "$models/agentkv-test-b.gguf" ]; then  # another model, for fingerprint tests
    /usr/bin/python3 "$ROOT/scripts/make_model.py" --llama-src "$src" --shape test --seed 4321 \
      --out "$models/agentkv-test-b.gguf"
  fi
  # One small model per family agentkv is tested on (a few seconds each).
  for arch in qwen3 qwen3moe gemma3 gpt-oss mamba2 granitehybrid; do
    if [ ! -f "$models/agentkv-test-$arch.gguf" ]; then
      say "models: writing the $arch test model"
      /usr/bin/python3 "$ROOT/scripts/make_model.py" --llama-src "$src" --arch "$arch" \
        --shape test --out "$models/agentkv-test-$arch.gguf"
    fi
  done
  ln -sfn agentkv-test.gguf "$models/demo.gguf"
  if [ "$BENCH_MODEL" = 1 ] && [ ! -f "$models/agentkv-bench-q4_0.gguf" ]; then
    say "models: writing the benchmark model (1.1B shape, Q4_0)"
    /usr/bin/python3 "$ROOT/scripts/make_model.py" --llama-src "$src" --shape bench \
      --out "$models/agentkv-bench-f16.gguf"
    "$bin/llama-quantize" "$models/agentkv-bench-f16.gguf" \
      "$models/agentkv-bench-q4_0.gguf" Q4_0 >/dev/null 2>&1
    rm -f "$models/agentkv-bench-f16.gguf"
  fi
}

main() {
  [ "$SKIP_PACKAGES" = 1 ] || install_packages
  mkdir -p "$CACHE/bin"
  local src bin
  src=$(llama_source)
  if [ -z "$LLAMA_SERVER" ] && command -v llama-server >/dev/null \
     && [ "$(command -v llama-server)" != "$CACHE/bin/llama-server" ]; then
    LLAMA_SERVER=$(command -v llama-server)
  fi
  if [ -n "$LLAMA_SERVER" ] && [ "$BENCH_MODEL" = 0 ] && [ "$KLEIDIAI" = 0 ]; then
    say "llama-server: using $LLAMA_SERVER"
    ln -sfn "$(readlink -f "$LLAMA_SERVER")" "$CACHE/bin/llama-server"
    bin=""
  else
    bin=$(build_llama "$src")
    if [ "$KLEIDIAI" = 1 ]; then LLAMA_SERVER=""; fi  # the build just made, not another
    ln -sfn "${LLAMA_SERVER:-$bin/llama-server}" "$CACHE/bin/llama-server"
  fi
  say "llama-server: $CACHE/bin/llama-server -> $(readlink "$CACHE/bin/llama-server")"
  write_models "$src" "$bin"

  say "agentkv: building"
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build" -j"$JOBS" >/dev/null
  say "ready: $ROOT/build/agentkv serve  (demo model: $CACHE/models/demo.gguf)"
}

main
