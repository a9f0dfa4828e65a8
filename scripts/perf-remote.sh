#!/usr/bin/env bash
# Drives on other nodes against local drives, in the same run: 1 GiB PUT and GET with curl on
# six local drives (ec:4+2), then on two local drives plus four served by two
# `basalt drive-server` processes on 127.0.0.2 and 127.0.0.3, over mutual TLS and over plain
# HTTP/2. Everything is on this machine's loopback and disk, so the figures show the cost of
# the node-to-node path (TLS, HTTP/2, copies), not of a network. Prints Markdown.
#
#   PERF_DIR   scratch directory on the disk under test (default: ./target/perf-remote)
#   PERF_RUNS  repetitions per figure, the median is reported (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
unset AWS_CA_BUNDLE
BIN=$PWD/target/release/basalt
DIR=${PERF_DIR:-$PWD/target/perf-remote}
RUNS=${PERF_RUNS:-3}
PORT=9420
export AWS_ACCESS_KEY_ID=perf-user AWS_SECRET_ACCESS_KEY=perf-secret-0123456789
export BASALT_CLUSTER_SECRET=perf-cluster-secret-0123456789
EP=http://127.0.0.1:$PORT
SIGN=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")

[ -x "$BIN" ] || cargo build --release
rm -rf "$DIR" && mkdir -p "$DIR/pki"
. scripts/perf-lib.sh
node_pids=()
stop_nodes() { for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; node_pids=(); }
trap 'stop_server; stop_nodes; true' EXIT

# A cluster CA and one node certificate for the loopback addresses.
(
  cd "$DIR/pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=perf CA" -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=node" \
    -keyout node.key -out node.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3\n' >ext.cnf
  openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -out node.pem 2>/dev/null
)
TLS=(--cluster-tls-cert "$DIR/pki/node.pem" --cluster-tls-key "$DIR/pki/node.key" --cluster-tls-ca "$DIR/pki/ca.pem")

start_nodes() { # tls|plain
  local flags=()
  [ "$1" = tls ] && flags=("${TLS[@]}")
  for n in 2 3; do
    BASALT_LOG=warn "$BIN" drive-server --address 127.0.0.$n:$((PORT + n)) "${flags[@]}" \
      --drive x="$DIR/n$n-x" --drive y="$DIR/n$n-y" >>"$DIR/nodes.log" 2>&1 &
    node_pids+=($!)
  done
  for n in 2 3; do
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.$n/$((PORT + n))) 2>/dev/null && break; sleep 0.1; done
  done
}

put_get() { # prints "put get"
  curl -sf -X PUT "${SIGN[@]}" $EP/perf >/dev/null
  local put get
  put=$(for i in $(seq $RUNS); do curl -sf -o /dev/null -w '%{speed_upload}\n' "${SIGN[@]}" -T "$DIR/1g.bin" $EP/perf/1g-$i; done | median | mbps)
  get=$(for i in $(seq $RUNS); do curl -sf -o /dev/null -w '%{speed_download}\n' "${SIGN[@]}" $EP/perf/1g-$i; done | median | mbps)
  echo "$put $get"
}

echo "## Remote-drive run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores"
echo
head -c 1073741824 /dev/urandom >"$DIR/1g.bin"

start_basalt --data "$DIR/l{1...6}" --meta-dir "$DIR/meta" --scrub-interval off
read -r local_put local_get < <(put_get)
local_rss=$(peak_rss_mib)
stop_server

results=()
for mode in tls plain; do
  rm -rf "$DIR"/l* "$DIR"/n* "$DIR/meta"
  scheme=http; flags=()
  [ "$mode" = tls ] && { scheme=https; flags=("${TLS[@]}"); }
  start_nodes "$mode"
  start_basalt --data "$DIR/l1" --data "$DIR/l2" \
    --data $scheme://127.0.0.2:$((PORT + 2))/x --data $scheme://127.0.0.2:$((PORT + 2))/y \
    --data $scheme://127.0.0.3:$((PORT + 3))/x --data $scheme://127.0.0.3:$((PORT + 3))/y \
    --redundancy ec:4+2 --meta-dir "$DIR/meta" --scrub-interval off "${flags[@]}"
  read -r put get < <(put_get)
  results+=("$put $get $(peak_rss_mib)")
  stop_server; stop_nodes
done
read -r tls_put tls_get tls_rss <<<"${results[0]}"
read -r plain_put plain_get plain_rss <<<"${results[1]}"

pct() { awk "BEGIN{printf \"%.0f%%\", 100*$1/$2}"; }
echo "| 1 GiB, one stream (curl), ec:4+2, medians of $RUNS | six local drives | 2 local + 4 remote, mutual TLS | ratio | 2 local + 4 remote, plain HTTP/2 | ratio |"
echo "|---|---|---|---|---|---|"
echo "| PUT | $local_put MB/s | $tls_put MB/s | $(pct "$tls_put" "$local_put") | $plain_put MB/s | $(pct "$plain_put" "$local_put") |"
echo "| GET | $local_get MB/s | $tls_get MB/s | $(pct "$tls_get" "$local_get") | $plain_get MB/s | $(pct "$plain_get" "$local_get") |"
echo "| coordinator peak RSS | $local_rss MiB | $tls_rss MiB | | $plain_rss MiB | |"
