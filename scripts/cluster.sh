#!/usr/bin/env bash
# A local agentkv cluster in one command: N agentkv nodes (each starts its own
# llama-server) on loopback ports, one shared memory directory, and a load
# balancer in front (nginx by default, configs/nginx.conf; or HAProxy,
# configs/haproxy.cfg), all run as the current user, no root needed.
#
#   scripts/cluster.sh up N [options]   start (or complete) the cluster; safe to re-run
#   scripts/cluster.sh status [--dir D] each node and the balancer, with /readyz
#   scripts/cluster.sh down [--dir D]   stop everything `up` started (the memory stays)
#   scripts/cluster.sh lb-config nginx|haproxy --port P [--hash-balance-factor F] NODE_PORT...
#                                       print configs/<balancer> for these loopback nodes
#
# Options of up:
#   --base-port P   the balancer listens on P, node i on P+i (default 8090)
#   --dir D         state: pid files, logs, the memory directory (default
#                   ${TMPDIR:-/tmp}/agentkv-cluster-<uid>)
#   --balancer B    nginx (default) or haproxy
#   --hash-balance-factor F
#                   haproxy's bounded load (default 150, as configs/haproxy.cfg;
#                   0: plain consistent hashing)
#   --private-memory
#                   each node its own memory directory (no --node-id): the
#                   cluster without shared memory, for comparison
#   --slots S       slots per node (default 2)
#   --ctx-size C    llama-server's --ctx-size, over all its slots (default 2048)
#   --threads T     llama-server's --threads (default 1)
#   -m, --model M   GGUF (default: the test model setup wrote)
#   --agentkv BIN   (default build/agentkv)
#   --llama-server BIN
#                   (default: agentkv's, the one setup installed)
#   -- ARGS         more `agentkv serve` options for every node
# A node that runs already is kept as it is (`down` first to change its
# options); nodes above N that an earlier `up` started are stopped.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AGENTKV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentkv}
DIR=${TMPDIR:-/tmp}/agentkv-cluster-$(id -u)
BASE_PORT=8090
BALANCER=nginx
FACTOR=150
PRIVATE=0
SLOTS=2
CTX=2048
THREADS=1
MODEL=$CACHE/models/agentkv-test.gguf
AGENTKV=$ROOT/build/agentkv
LLAMA_SERVER=""
NODE_ARGS=()
READY_TIMEOUT=${AGENTKV_CLUSTER_READY_TIMEOUT:-180}

die() { echo "cluster.sh: $*" >&2; exit 1; }
usage() { sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

# True if pid file $1 names a live process whose command line contains $2.
alive() {
  local pid
  [ -f "$1" ] && pid=$(cat "$1") && [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2"
}

# The HTTP status of GET $1, 000 if nothing answers.
http_status() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true; }

# configs/nginx.conf or configs/haproxy.cfg with these nodes and this port.
lb_config() {
  local kind=$1 port=$2 factor=$3; shift 3
  case "$kind" in
    nginx)
      awk -v port="$port" -v nodes="$*" '
        /^[ \t]*server[ \t]+[^ \t{]+:[0-9]+/ {
          if (!done) {
            match($0, /^[ \t]*/); indent = substr($0, 1, RLENGTH)
            rest = $0; sub(/^[ \t]*server[ \t]+[^ \t]+/, "", rest)
            n = split(nodes, p, " ")
            for (i = 1; i <= n; i++) print indent "server 127.0.0.1:" p[i] rest
            done = 1
          }
          next
        }
        /^[ \t]*listen[ \t]/ { match($0, /^[ \t]*/); print substr($0, 1, RLENGTH) "listen 127.0.0.1:" port ";"; next }
        { print }' "$ROOT/configs/nginx.conf" ;;
    haproxy)
      awk -v port="$port" -v nodes="$*" -v factor="$factor" '
        /^[ \t]*server[ \t]+[^ \t]+[ \t]+[^ \t]+:[0-9]+/ {
          if (!done) {
            match($0, /^[ \t]*/); indent = substr($0, 1, RLENGTH)
            rest = $0; sub(/^[ \t]*server[ \t]+[^ \t]+[ \t]+[^ \t]+/, "", rest)
            n = split(nodes, p, " ")
            for (i = 1; i <= n; i++) print indent "server node-" i " 127.0.0.1:" p[i] rest
            done = 1
          }
          next
        }
        /^[ \t]*bind[ \t]/ { match($0, /^[ \t]*/); print substr($0, 1, RLENGTH) "bind 127.0.0.1:" port; next }
        /^[ \t]*hash-balance-factor[ \t]/ {
          if (factor == "") print
          else if (factor != "0") { match($0, /^[ \t]*/); print substr($0, 1, RLENGTH) "hash-balance-factor " factor }
          next
        }
        { print }' "$ROOT/configs/haproxy.cfg" ;;
    *) die "lb-config: nginx or haproxy, not '$kind'" ;;
  esac
}

# Reads what an earlier `up` recorded: N, BASE_PORT, BALANCER.
load_state() {
  [ -f "$DIR/cluster.env" ] || return 1
  # shellcheck disable=SC1091
  . "$DIR/cluster.env"
}

start_node() {
  local i=$1 port=$2
  local node=$DIR/node-$i memory
  mkdir -p "$node"
  if alive "$node/agentkv.pid" "--node-id node-$i" || alive "$node/agentkv.pid" "--port $port "; then
    echo "node-$i: running (pid $(cat "$node/agentkv.pid"), port $port)"
    return
  fi
  local id_args=(--node-id "node-$i")
  memory=$DIR/memory
  if [ "$PRIVATE" = 1 ]; then id_args=(); memory=$node/memory; fi
  mkdir -p "$memory"
  local llama_args=()
  [ -z "$LLAMA_SERVER" ] || llama_args=(--llama-server "$LLAMA_SERVER")
  # The node writes its own pid, then becomes agentkv in a session of its
  # own: a Ctrl-C in this terminal later does not reach it.
  # shellcheck disable=SC2016  # expanded by that shell, not this one
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$node/agentkv.pid" \
    "$AGENTKV" serve --port "$port" "${id_args[@]}" --memory-dir "$memory" \
    --slots "$SLOTS" -m "$MODEL" "${llama_args[@]}" --llama-log "$node/llama-server.log" \
    "${NODE_ARGS[@]}" \
    -- --ctx-size "$CTX" --threads "$THREADS" >>"$node/agentkv.log" 2>&1 </dev/null &
  echo "node-$i: starting on port $port"
}

wait_ready() {
  local i=$1 port=$2
  local node=$DIR/node-$i deadline=$((SECONDS + READY_TIMEOUT))
  until [ "$(http_status "http://127.0.0.1:$port/readyz")" = 200 ]; do
    if [ -f "$node/agentkv.pid" ] && ! alive "$node/agentkv.pid" "agentkv"; then
      tail -5 "$node/agentkv.log" >&2
      die "node-$i exited; see $node/agentkv.log"
    fi
    [ $SECONDS -lt $deadline ] || die "node-$i not ready in ${READY_TIMEOUT} s; see $node/agentkv.log"
    sleep 0.2
  done
  # Its llama-server, so that `down` stops it even if agentkv cannot.
  sed -n 's/.*started llama-server (pid \([0-9]*\)).*/\1/p' "$node/agentkv.log" | tail -1 \
    >"$node/llama-server.pid"
}

start_nginx() {
  local lb=$DIR/nginx ports=("$@")
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || die "nginx is missing: scripts/setup.sh installs it"
  local bin; bin=$(command -v nginx || echo /usr/sbin/nginx)
  mkdir -p "$lb/tmp"
  lb_config nginx "$BASE_PORT" "" "${ports[@]}" >"$lb/agentkv.conf"
  local user=""
  # As root, nginx's workers would run as nobody, who cannot write here.
  [ "$(id -u)" -ne 0 ] || user="user $(id -un) $(id -gn);"
  cat >"$lb/nginx.conf" <<EOF
# Written by scripts/cluster.sh: configs/nginx.conf with this cluster's nodes.
$user
worker_processes 1;
pid $lb/nginx.pid;
error_log $lb/error.log;
events { worker_connections 1024; }
http {
    access_log $lb/access.log;
    client_body_temp_path $lb/tmp/body;
    proxy_temp_path $lb/tmp/proxy;
    fastcgi_temp_path $lb/tmp/fastcgi;
    uwsgi_temp_path $lb/tmp/uwsgi;
    scgi_temp_path $lb/tmp/scgi;
    include $lb/agentkv.conf;
}
EOF
  "$bin" -t -q -p "$lb" -c "$lb/nginx.conf" || die "nginx refused $lb/nginx.conf"
  if alive "$lb/nginx.pid" "nginx"; then
    "$bin" -p "$lb" -c "$lb/nginx.conf" -s reload
    echo "nginx: reloaded on port $BASE_PORT"
  else
    "$bin" -p "$lb" -c "$lb/nginx.conf"
    echo "nginx: started on port $BASE_PORT"
  fi
}

start_haproxy() {
  local lb=$DIR/haproxy ports=("$@")
  command -v haproxy >/dev/null || die "haproxy is missing: scripts/setup.sh installs it"
  mkdir -p "$lb"
  lb_config haproxy "$BASE_PORT" "$FACTOR" "${ports[@]}" >"$lb/haproxy.cfg"
  haproxy -q -c -f "$lb/haproxy.cfg" || die "haproxy refused $lb/haproxy.cfg"
  if alive "$lb/haproxy.pid" "haproxy"; then
    haproxy -D -p "$lb/haproxy.pid" -f "$lb/haproxy.cfg" -sf "$(cat "$lb/haproxy.pid")"
    echo "haproxy: reloaded on port $BASE_PORT"
  else
    haproxy -D -p "$lb/haproxy.pid" -f "$lb/haproxy.cfg"
    echo "haproxy: started on port $BASE_PORT"
  fi
}

# Stops the process of pid file $1 if it is still $2: SIGTERM, then SIGKILL
# after $3 seconds.
stop_pid() {
  local file=$1 match=$2 grace=$3 pid
  if alive "$file" "$match"; then
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$file"
}

stop_node() {
  local node=$1
  # agentkv saves its dirty agents and stops its llama-server (--stop-timeout 60 s).
  stop_pid "$node/agentkv.pid" "agentkv" 70
  stop_pid "$node/llama-server.pid" "llama-server" 10
}

cmd_up() {
  local n=$1
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "up N: N is a number of nodes"
  [ -x "$AGENTKV" ] || die "$AGENTKV is missing: run scripts/setup.sh"
  [ -f "$MODEL" ] || die "$MODEL is missing: run scripts/setup.sh"
  mkdir -p "$DIR"
  if load_state 2>/dev/null && [ "${N:-0}" -gt "$n" ]; then
    for ((i = n + 1; i <= N; i++)); do
      [ -f "$DIR/node-$i/agentkv.pid" ] && stop_node "$DIR/node-$i" && echo "node-$i: stopped"
    done
  fi
  local ports=()
  for ((i = 1; i <= n; i++)); do
    ports+=($((BASE_PORT + i)))
    start_node "$i" $((BASE_PORT + i))
  done
  printf 'N=%s\nBASE_PORT=%s\nBALANCER=%s\n' "$n" "$BASE_PORT" "$BALANCER" >"$DIR/cluster.env"
  for ((i = 1; i <= n; i++)); do wait_ready "$i" $((BASE_PORT + i)); done
  case "$BALANCER" in
    nginx) start_nginx "${ports[@]}" ;;
    haproxy) start_haproxy "${ports[@]}" ;;
    *) die "--balancer: nginx or haproxy" ;;
  esac
  echo "ready: http://127.0.0.1:$BASE_PORT/agents/{id}/v1  (state in $DIR)"
}

cmd_status() {
  load_state || { echo "no cluster in $DIR"; return 0; }
  printf '%-10s %-6s %-8s %-7s %s\n' NAME PORT PID PROCESS READYZ
  for ((i = 1; i <= N; i++)); do
    local node=$DIR/node-$i port=$((BASE_PORT + i)) state=down pid=-
    [ -f "$node/agentkv.pid" ] && pid=$(cat "$node/agentkv.pid")
    alive "$node/agentkv.pid" "agentkv" && state=up
    printf '%-10s %-6s %-8s %-7s %s\n' "node-$i" "$port" "$pid" "$state" \
      "$(http_status "http://127.0.0.1:$port/readyz")"
  done
  local lb=$DIR/$BALANCER pid=- state=down
  [ -f "$lb/$BALANCER.pid" ] && pid=$(head -1 "$lb/$BALANCER.pid")
  alive "$lb/$BALANCER.pid" "$BALANCER" && state=up
  printf '%-10s %-6s %-8s %-7s %s\n' "$BALANCER" "$BASE_PORT" "$pid" "$state" \
    "$(http_status "http://127.0.0.1:$BASE_PORT/readyz")"
}

cmd_down() {
  if ! load_state; then echo "no cluster in $DIR"; return 0; fi
  for lb in nginx haproxy; do
    if [ -f "$DIR/$lb/$lb.pid" ]; then stop_pid "$DIR/$lb/$lb.pid" "$lb" 10 && echo "$lb: stopped"; fi
  done
  for node in "$DIR"/node-*; do
    [ -f "$node/agentkv.pid" ] || [ -f "$node/llama-server.pid" ] || continue
    stop_node "$node"
    echo "$(basename "$node"): stopped"
  done
  rm -f "$DIR/cluster.env"
  echo "down; agents' memory kept in $DIR/memory"
}

main() {
  [ $# -gt 0 ] || usage 2
  local cmd=$1; shift
  local n="" kind="" lb_port="" lb_nodes=()
  if [ "$cmd" = up ]; then [ $# -gt 0 ] || usage 2; n=$1; shift; fi
  if [ "$cmd" = lb-config ]; then [ $# -gt 0 ] || usage 2; kind=$1; shift; FACTOR=""; fi
  while [ $# -gt 0 ]; do
    case "$1" in
      --base-port) BASE_PORT=$2; shift ;;
      --port) lb_port=$2; shift ;;
      --dir) DIR=$2; shift ;;
      --balancer) BALANCER=$2; shift ;;
      --hash-balance-factor) FACTOR=$2; shift ;;
      --private-memory) PRIVATE=1 ;;
      --slots) SLOTS=$2; shift ;;
      --ctx-size) CTX=$2; shift ;;
      --threads) THREADS=$2; shift ;;
      -m|--model) MODEL=$2; shift ;;
      --agentkv) AGENTKV=$2; shift ;;
      --llama-server) LLAMA_SERVER=$2; shift ;;
      -h|--help) usage 0 ;;
      --) shift; NODE_ARGS=("$@"); break ;;
      [0-9]*) lb_nodes+=("$1") ;;
      *) die "unknown option $1" ;;
    esac
    shift
  done
  [ "$cmd" != up ] || mkdir -p "$DIR"
  [ ! -d "$DIR" ] || DIR=$(cd "$DIR" && pwd)
  case "$cmd" in
    up) cmd_up "$n" ;;
    status) cmd_status ;;
    down) cmd_down ;;
    lb-config)
      if [ -z "$lb_port" ] || [ ${#lb_nodes[@]} -eq 0 ]; then
        die "lb-config KIND --port P NODE_PORT..."
      fi
      lb_config "$kind" "$lb_port" "$FACTOR" "${lb_nodes[@]}" ;;
    *) usage 2 ;;
  esac
}

main "$@"
