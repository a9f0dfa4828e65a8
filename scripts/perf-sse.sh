#!/usr/bin/env bash
# Encryption at rest: 1 GiB PUT and GET with curl, plain and with SSE-S3 (AES-256-GCM per
# chunk), on one drive, in the same run; prints medians of PERF_RUNS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/basalt}
PORT=${PORT:-9950}
EP=http://127.0.0.1:$PORT
RUNS=${PERF_RUNS:-3}
DIR=$(mktemp -d /tmp/basalt-perf-sse.XXXXXX)
export AWS_ACCESS_KEY_ID=perfadmin AWS_SECRET_ACCESS_KEY=perfsecret123
source scripts/perf-lib.sh
trap 'stop_server; rm -rf "$DIR"' EXIT
unset AWS_CA_BUNDLE

SIGN=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
head -c 1073741824 /dev/urandom >"$DIR/1g.bin"
start_basalt --data "$DIR/data"
curl -sf -X PUT "${SIGN[@]}" $EP/perf >/dev/null

for mode in plain sse-s3; do
  extra=()
  [ "$mode" = sse-s3 ] && extra=(-H "x-amz-server-side-encryption: AES256")
  put=$(for i in $(seq $RUNS); do curl -sf -o /dev/null -w '%{speed_upload}\n' "${SIGN[@]}" "${extra[@]}" -T "$DIR/1g.bin" $EP/perf/$mode-$i; done | median | mbps)
  get=$(for i in $(seq $RUNS); do curl -sf -o /dev/null -w '%{speed_download}\n' "${SIGN[@]}" $EP/perf/$mode-$i; done | median | mbps)
  echo "$mode: PUT 1 GiB $put MB/s, GET 1 GiB $get MB/s"
done
echo "peak server RSS: $(peak_rss_mib) MiB"
