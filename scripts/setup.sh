#!/usr/bin/env bash
# Sets agentkv up from nothing on Debian/Ubuntu, idempotently:
#   1. the Debian packages it builds and tests with (and chromium, for the
#      status page's browser test);
#   2. the pinned llama.cpp source (a git clone of the pinned tag where the
#      network allows, else the bundle shipped in the npm package
#      node-llama-cpp), cached outside the repo;
#   3. llama-server: an existing one ($AGENTKV_LLAMA_SERVER, --llama-server,
#      or on PATH) if present, else built from that source, cached by commit;
#   4. the random-weight test models (and with --bench-model the 1.1B-shaped
#      benchmark model), written with gguf-py from that source;
#   5. a check that llama-server runs every one of those models on this CPU
#      (scripts/llama_check.py): a build that dies (SIGILL: built for another
#      CPU, or AMX failing in this VM) is replaced by the next that runs:
#      native, native without AMX, native with --no-repack, x86-64-v3;
#   6. agentkv itself, in ./build.
# A re-run finds everything cached and takes seconds.
#
# Usage: scripts/setup.sh [--bench-model] [--kleidiai] [--llama-server PATH] [--skip-packages]
#   --kleidiai  on aarch64, build llama-server with Arm's KleidiAI kernels
#               (-DGGML_CPU_KLEIDIAI=ON; CMake downloads KleidiAI, so this needs
#               the network); elsewhere it says so and builds without
#        scripts/setup.sh --build-llama VARIANT   (native, noamx or x86-64-v3)
#               builds that llama-server and prints its path
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
BUILD_ONLY=""

while [ $# -gt 0 ]; do
  case "$1" in
    --bench-model) BENCH_MODEL=1 ;;
    --kleidiai) KLEIDIAI=1 ;;
    --skip-packages) SKIP_PACKAGES=1 ;;
    --llama-server) LLAMA_SERVER=$2; shift ;;
    --build-llama) BUILD_ONLY=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

install_packages() {
  local pkgs=(build-essential cmake git pkg-config ca-certificates
              libcpp-httplib-dev nlohmann-json3-dev libspdlog-dev libcli11-dev
              libgtest-dev libsystemd-dev libxxhash-dev libssl-dev python3-numpy
              clang  # scripts/fuzz.sh (libFuzzer) and scripts/lint.sh threads
              prometheus   # for promtool, which checks our /metrics in the tests
              help2man lintian  # scripts/package.sh: the man page, the packages' check
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

# Builds llama-server and llama-quantize into a directory keyed by commit
# and variant, and prints that directory:
#   native        -march=native (GGML_NATIVE), the fastest where it runs
#   noamx         native without AMX: GCC 12 miscompiles ggml's AMX kernels
#                 (docs/operations.md, "Any CPU"); GCC's explicit -mno-* flags win over
#                 -march=native whatever their order
#   x86-64-v3     portable: AVX2, FMA, F16C, BMI2; no AVX-512, no AMX
build_llama() {
  local src=$1 variant=${2:-native} commit build flags=() suffix=""
  commit=$(git -C "$src" rev-parse --short=7 HEAD)
  if [ "$KLEIDIAI" = 1 ]; then
    if [ "$(uname -m)" = aarch64 ]; then
      flags+=(-DGGML_CPU_KLEIDIAI=ON)
      suffix=-kleidiai
    else  # ggml's CMake refuses KleidiAI on anything but AArch64
      say "llama.cpp: KleidiAI is for aarch64; this is $(uname -m), building without it" >&2
    fi
  fi
  case "$variant" in
    native) ;;
    noamx) flags+=("-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
                   "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16") ;;
    x86-64-v3) flags+=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON
                       -DGGML_F16C=ON -DGGML_BMI2=ON) ;;
    *) echo "setup.sh: unknown llama-server variant $variant" >&2; return 2 ;;
  esac
  [ "$variant" = native ] || suffix=$suffix-$variant
  build=$CACHE/llama.cpp/build-$commit$suffix
  if [ ! -x "$build/bin/llama-server" ] || [ ! -x "$build/bin/llama-quantize" ]; then
    say "llama.cpp: building llama-server ($variant) at $commit (4 to 7 minutes on 2 cores)" >&2
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
  # The test model in Q4_0: quantized weights take other kernels (repacked,
  # or AMX) than f16 ones, and a build must be checked on both.
  if [ -n "$bin" ] && [ ! -f "$models/agentkv-test-q4_0.gguf" ]; then
    "$bin/llama-quantize" "$models/agentkv-test.gguf" "$models/agentkv-test-q4_0.gguf" Q4_0 \
      >/dev/null 2>&1
  fi
  if [ "$BENCH_MODEL" = 1 ] && [ ! -f "$models/agentkv-bench-q4_0.gguf" ]; then
    say "models: writing the benchmark model (1.1B shape, Q4_0)"
    /usr/bin/python3 "$ROOT/scripts/make_model.py" --llama-src "$src" --shape bench \
      --out "$models/agentkv-bench-f16.gguf"
    "$bin/llama-quantize" "$models/agentkv-bench-f16.gguf" \
      "$models/agentkv-bench-q4_0.gguf" Q4_0 >/dev/null 2>&1
    rm -f "$models/agentkv-bench-f16.gguf"
  fi
  # Little compute and much KV a token, for the slow-disk scenario (f16).
  if [ "$BENCH_MODEL" = 1 ] && [ ! -f "$models/agentkv-disk.gguf" ]; then
    say "models: writing the slow-disk model (24 KiB of KV a token)"
    /usr/bin/python3 "$ROOT/scripts/make_model.py" --llama-src "$src" --shape disk \
      --out "$models/agentkv-disk.gguf"
  fi
}

# True where -march=native turns AMX on and the compiler is GCC before 13:
# GCC 12's _tile_loadconfig declares that it reads 8 bytes, so the stores
# that fill ggml's tile configuration are dropped as dead, the configuration
# loaded is empty, and the first tile instruction raises SIGILL (docs/operations.md,
# "Any CPU"). clang 14 never compiles ggml's AMX path (its macro is
# __AMXINT8__, not __AMX_INT8__).
native_amx_miscompiled() {
  [ "$(uname -m)" = x86_64 ] || return 1
  local cc=${CC:-cc} major
  "$cc" --version 2>/dev/null | head -1 | grep -qiE 'gcc|g\+\+' || return 1
  major=$("$cc" -dumpversion 2>/dev/null | cut -d. -f1)
  [ -n "$major" ] && [ "$major" -lt 13 ] || return 1
  echo | "$cc" -march=native -dM -E - 2>/dev/null | grep -q '__AMX_INT8__'
}

# The models setup wrote, as --model arguments for scripts/llama_check.py.
check_models() {
  local models=$CACHE/models m
  for m in agentkv-test agentkv-test-q4_0 agentkv-test-qwen3 agentkv-test-qwen3moe \
           agentkv-test-gemma3 agentkv-test-gpt-oss agentkv-test-mamba2 \
           agentkv-test-granitehybrid agentkv-bench-q4_0 agentkv-disk; do
    if [ -f "$models/$m.gguf" ]; then printf -- '--model\n%s\n' "$models/$m.gguf"; fi
  done
}

# What decides whether a check made earlier still holds: the llama.cpp
# commit, this CPU, and the models.
check_key() {
  {
    echo "$1"
    uname -m
    grep -m1 -E '^(model name|flags|Features)' /proc/cpuinfo || true
    ls -lL "$CACHE"/models/*.gguf  # -L: setup relinks demo.gguf each run
  } | sha256sum | cut -c1-16
}

# Points $CACHE/bin/llama-server at the first llama-server that runs every
# model here: a symlink, or a two-line script that adds the arguments the
# chosen candidate needs (exec: its pid is llama-server's).
pick_llama() {
  local commit=$1 given=$2 models key choice
  mapfile -t models < <(check_models)
  key=$(check_key "$commit ${given:-built}")
  if [ -f "$CACHE/bin/llama-check" ] && [ "$(head -1 "$CACHE/bin/llama-check")" = "$key" ] \
     && [ -e "$CACHE/bin/llama-server" ]; then
    say "llama-server: checked before on this CPU ($(sed -n 2p "$CACHE/bin/llama-check"))"
    return
  fi
  say "llama-server: checking that it runs each model on this CPU"
  local candidates=()
  if [ -n "$given" ]; then
    candidates+=(--candidate "given::echo $(printf %q "$given")::")
  else
    local build="bash $(printf %q "$ROOT/scripts/setup.sh")"
    [ "$KLEIDIAI" = 0 ] || build="$build --kleidiai"
    build="$build --build-llama"
    if native_amx_miscompiled; then
      say "llama-server: this GCC miscompiles ggml's AMX kernels (docs/operations.md, Any CPU): building without AMX first"
      candidates+=(--candidate "noamx::$build noamx::" --candidate "native::$build native::")
    else
      candidates+=(--candidate "native::$build native::")
      if [ "$(uname -m)" = x86_64 ]; then
        candidates+=(--candidate "noamx::$build noamx::")
      fi
    fi
    candidates+=(--candidate "native-no-repack::$build native::--no-repack")
    if [ "$(uname -m)" = x86_64 ]; then
      candidates+=(--candidate "x86-64-v3::$build x86-64-v3::")
    fi
  fi
  if ! choice=$(/usr/bin/python3 "$ROOT/scripts/llama_check.py" pick "${models[@]}" \
                "${candidates[@]}"); then
    if [ -n "$given" ]; then
      echo "setup.sh: $given does not run here (above); leave out --llama-server (and" \
           "\$AGENTKV_LLAMA_SERVER) to have setup build one that does" >&2
    fi
    exit 1
  fi
  local name server args
  IFS=$'\t' read -r name server args <<<"$choice"
  rm -f "$CACHE/bin/llama-server"
  if [ -z "$args" ]; then
    ln -sfn "$server" "$CACHE/bin/llama-server"
  else
    printf '#!/bin/sh\n# scripts/setup.sh: %s runs here only with %s\nexec %q %s "$@"\n' \
      "$server" "$args" "$server" "$args" >"$CACHE/bin/llama-server"
    chmod +x "$CACHE/bin/llama-server"
  fi
  printf '%s\n%s: %s %s\n' "$key" "$name" "$server" "$args" >"$CACHE/bin/llama-check"
  say "llama-server: '$name' runs every model here: $server $args"
}

main() {
  if [ -n "$BUILD_ONLY" ]; then  # one variant, for scripts/llama_check.py
    local bin
    bin=$(build_llama "$(llama_source)" "$BUILD_ONLY")
    echo "$bin/llama-server"
    return
  fi
  [ "$SKIP_PACKAGES" = 1 ] || install_packages
  mkdir -p "$CACHE/bin"
  local src bin commit
  src=$(llama_source)
  commit=$(git -C "$src" rev-parse --short=7 HEAD)
  if [ -z "$LLAMA_SERVER" ] && command -v llama-server >/dev/null \
     && [ "$(command -v llama-server)" != "$CACHE/bin/llama-server" ]; then
    LLAMA_SERVER=$(command -v llama-server)
  fi
  if [ -n "$LLAMA_SERVER" ] && [ "$BENCH_MODEL" = 0 ] && [ "$KLEIDIAI" = 0 ]; then
    say "llama-server: using $LLAMA_SERVER"
    LLAMA_SERVER=$(readlink -f "$LLAMA_SERVER")
    bin=""
  else
    local first=native
    if native_amx_miscompiled; then first=noamx; fi
    bin=$(build_llama "$src" "$first")
    if [ "$KLEIDIAI" = 1 ]; then LLAMA_SERVER=""; fi  # the build just made, not another
  fi
  write_models "$src" "$bin"
  pick_llama "$commit" "$LLAMA_SERVER"
  say "llama-server: $CACHE/bin/llama-server -> $(sed -n 2p "$CACHE/bin/llama-check")"

  say "agentkv: building"
  cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build" -j"$JOBS" >/dev/null
  say "ready: $ROOT/build/agentkv serve  (demo model: $CACHE/models/demo.gguf)"
}

main
