# Helpers shared by the perf scripts (sourced). Expects BIN, PORT, EP, DIR and the root
# credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mbps() { awk '{printf "%.0f", $1/1e6}'; }

server_pid=""
# start_basalt ARGS...: a fresh server process with ARGS (after --address), logging to
# $DIR/server.log; returns once it is ready.
start_basalt() {
  stop_server
  BASALT_ROOT_USER=$AWS_ACCESS_KEY_ID BASALT_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY BASALT_LOG=warn \
    "$BIN" server --address 127.0.0.1:$PORT "$@" >>"$DIR/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -sf $EP/health/ready >/dev/null && return; sleep 0.1; done
  echo "basalt did not start" >&2; exit 1
}
stop_server() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; server_pid=""; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$server_pid/status; }
