#!/usr/bin/env bash
# What trace export costs: 4 KiB PUT and GET (basalt bench, 32 clients) against one node
# without --otlp-endpoint and one exporting every request's spans to a local collector (a
# Python HTTP server answering 200 to each batch), alternating, ROUNDS rounds (default 3);
# prints each round and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/basalt}
PORT=${PORT:-9960}
COLLECTOR_PORT=${COLLECTOR_PORT:-9961}
EP=http://127.0.0.1:$PORT
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-8}
DIR=$(mktemp -d /tmp/basalt-perf-trace.XXXXXX)
export AWS_ACCESS_KEY_ID=perfadmin AWS_SECRET_ACCESS_KEY=perfsecret123
source scripts/perf-lib.sh
unset AWS_CA_BUNDLE

python3 - "$COLLECTOR_PORT" <<'PY' &
import http.server, sys
class Collector(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Collector).serve_forever()
PY
collector=$!
trap 'stop_server; kill $collector 2>/dev/null; rm -rf "$DIR"' EXIT

ops() {
  "$BIN" bench --endpoint $EP --op "$1" --size 4KiB --duration "$SECONDS_EACH" --json 2>/dev/null |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)["results"][-1]["ops_per_sec"]))'
}
for round in $(seq "$ROUNDS"); do
  for mode in off on; do
    rm -rf "$DIR/data" "$DIR/meta"
    extra=()
    [ "$mode" = on ] && extra=(--otlp-endpoint "http://127.0.0.1:$COLLECTOR_PORT")
    start_basalt --data "$DIR/data" --meta-dir "$DIR/meta" "${extra[@]}"
    put=$(ops put)
    get=$(ops get)
    stop_server
    echo "round $round $mode put $put get $get" | tee -a "$DIR/results"
  done
done
for mode in off on; do
  put=$(awk -v m=$mode '$3 == m {print $5}' "$DIR/results" | median)
  get=$(awk -v m=$mode '$3 == m {print $7}' "$DIR/results" | median)
  echo "median $mode: 4 KiB PUT $put ops/s, GET $get ops/s"
done
