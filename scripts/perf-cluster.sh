#!/usr/bin/env bash
# 4 KiB PUT/GET ops/s and 64 MiB PUT/GET MB/s through a 3-node cluster (127.0.0.1-3, one drive
# each, ec:2+1, metadata replicated by Raft) against one node (one drive), in one run, three
# rounds each (ROUNDS), alternating. Failover figures: scripts/perf-failover.py.
# Usage: [ROUNDS=3] [OPS='4KiB-put 4KiB-get 64MiB-put 64MiB-get'] [CLIENTS=32] scripts/perf-cluster.sh [binary]
# Prints per line: setup, round, op, ops/s, MB/s, errors, p99 ms. BENCH_NODE=2 sends the cluster
# load to node 2 (a follower, usually) instead of node 1. CLIENTS: concurrent clients for 4 KiB.
set -euo pipefail
BIN=${1:-target/release/basalt}
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-0123456789
export BASALT_ROOT_USER=$AWS_ACCESS_KEY_ID BASALT_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY BASALT_LOG=error
export BASALT_CLUSTER_SECRET=perf-cluster-secret-0123456789
PIDS=()
stop() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }
trap stop EXIT
ready() { for _ in $(seq 300); do curl -sf "http://$1/health/ready" >/dev/null && return; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }
one_node() {
  local dir; dir=$(mktemp -d)
  "$BIN" server --address 127.0.0.1:9520 --data "$dir" >/dev/null 2>&1 & PIDS+=($!)
  ready 127.0.0.1:9520
}
cluster() {
  local dir; dir=$(mktemp -d)
  for i in 1 2 3; do
    "$BIN" server --node-name n$i --address 127.0.0.$i:9520 --rpc-address 127.0.0.$i:9620 \
      --peers 127.0.0.1:9620,127.0.0.2:9620,127.0.0.3:9620 --bootstrap-expect 3 \
      --data "$dir/n$i/data" --meta-dir "$dir/n$i/meta" >/dev/null 2>&1 & PIDS+=($!)
  done
  for i in 1 2 3; do ready 127.0.0.$i:9520; done
}
bench() { # op size concurrency [objects]
  "$BIN" bench --endpoint "http://$TARGET:9520" --op "$1" --size "$2" -c "$3" --objects "${4:-256}" --duration 8 --json 2>/dev/null \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["results"][-1]; print(round(r["ops_per_sec"]), round(r.get("mb_per_sec", 0)), r["errors"], r["p99_ms"])'
}
for round in $(seq "${ROUNDS:-3}"); do
  for setup in one_node cluster; do
    $setup
    TARGET=127.0.0.1
    [ "$setup" = cluster ] && TARGET=127.0.0.${BENCH_NODE:-1}
    for op in ${OPS:-4KiB-put 4KiB-get 64MiB-put 64MiB-get}; do
      case $op in
        4KiB-put) echo "$setup round $round $op $(bench put 4KiB "${CLIENTS:-32}")" ;;
        4KiB-get) echo "$setup round $round $op $(bench get 4KiB "${CLIENTS:-32}")" ;;
        64MiB-put) echo "$setup round $round $op $(bench put 64MiB 2)" ;;
        64MiB-get) echo "$setup round $round $op $(bench get 64MiB 2 4)" ;;
      esac
    done
    stop
  done
done
