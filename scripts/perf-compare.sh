#!/usr/bin/env bash
# Small-object (4 KiB) PUT and GET ops/s of two basalt binaries, each on a fresh one-drive node,
# alternating new/old three times (the machine is noisy: compare the medians of one run).
#   scripts/perf-compare.sh NEW_BINARY OLD_BINARY      (OPS="get" for GETs only)
# Prints: op, which binary, ops/s, errors, p99 ms. The client is NEW_BINARY's `basalt bench`.
set -euo pipefail
NEW=$1; OLD=$2; CLIENT=$1
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-0123456789
run() { # binary op
  local dir; dir=$(mktemp -d)
  BASALT_ROOT_USER=$AWS_ACCESS_KEY_ID BASALT_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY BASALT_LOG=error \
    "$1" server --address 127.0.0.1:9520 --data "$dir" >/dev/null 2>&1 & local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:9520/health/ready >/dev/null && break; sleep 0.1; done
  "$CLIENT" bench --endpoint http://127.0.0.1:9520 --op "$2" --size 4KiB -c 32 --duration 8 --json 2>/dev/null \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["results"][-1]; print(round(r["ops_per_sec"]), r["errors"], r["p99_ms"])'
  kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
}
for op in ${OPS:-put get}; do
  for b in new old new old new old; do
    bin=$NEW; [ $b = old ] && bin=$OLD
    echo "$op $b $(run "$bin" "$op")"
  done
done
