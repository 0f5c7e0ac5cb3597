# Sourced by perf/run and perf/broadcast-sends: the servers under test, and starting and
# stopping one. Each server starts fresh on a free port, pinned to CPU 0, and is stopped
# by PID (also on exit: the caller's EXIT trap calls stop_server).

# Where cargo builds (perf/run builds there): CARGO_TARGET_DIR if set, as perf/ab-flags.
bin=${CARGO_TARGET_DIR:-target}/release
declare -A server_cmd=(
  [connectme-uring]="$bin/bench-server --driver uring --shards 1"
  [connectme-epoll]="$bin/bench-server --driver epoll --shards 1"
  [tokio-tungstenite]="$bin/tokio-tungstenite-server"
  [fastwebsockets]="$bin/fastwebsockets-server"
)

# add_flush_server MS: adds connectme-uring-flush<MS>ms, the engine with an MS ms flush delay.
add_flush_server() {
  server_cmd[connectme-uring-flush$1ms]="$bin/bench-server --driver uring --shards 1 --flush-delay-ms $1"
}
add_flush_server 20

# uws: uWebSockets (issue 15), built outside the repository by perf/uws/build
# (perf/uws/README.md); a server only when UWS_BIN names its binary.
if [ -n "${UWS_BIN:-}" ]; then
  server_cmd[uws]=$UWS_BIN
fi

server_pid=
port=${port:-19500}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_server NAME: starts it on the next free port after $port (which it updates) and
# waits until it accepts; sets server_pid.
start_server() {
  port=$((port + 1)); while port_open $port; do port=$((port + 1)); done
  taskset -c 0 ${server_cmd[$1]} --addr 127.0.0.1:$port >/dev/null 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do port_open $port && break; sleep 0.05; done
}

stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=
}

# Whether this machine allows io_uring (connectme-uring* servers need it).
uring_available() { $bin/bench-server --driver uring --shards 1 --check-driver >/dev/null 2>&1; }

# runnable NAME...: the servers among NAME... that this machine can run, one per line
# (the connectme-uring ones only where io_uring is allowed, uws only when UWS_BIN is set
# to an executable).
runnable() {
  local name
  for name in "$@"; do
    if [[ $name == connectme-uring* ]] && ! uring_available; then
      echo "perf: io_uring unavailable here, skipping $name" >&2
      continue
    fi
    if [ "$name" = uws ] && [ ! -x "${UWS_BIN:-}" ]; then
      echo "perf: UWS_BIN is not set to an executable (perf/uws/README.md), skipping uws" >&2
      continue
    fi
    echo "$name"
  done
}
