#!/usr/bin/env bash
# Measures the erasure-coded data path against the single-drive one in the same run: 1 GiB PUT
# and GET with curl on one drive and on six drives (ec:4+2), GET with two of the six drives
# removed, and heal throughput after two empty replacement drives are put in their place.
# Also runs the codec benchmark. Prints Markdown for docs/PERFORMANCE.md.
#
#   PERF_DIR   scratch directory on the disk under test (default: ./target/perf-ec)
#   PERF_RUNS  repetitions per figure, the median is reported (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
unset AWS_CA_BUNDLE
BIN=$PWD/target/release/basalt
DIR=${PERF_DIR:-$PWD/target/perf-ec}
RUNS=${PERF_RUNS:-3}
PORT=9410
export AWS_ACCESS_KEY_ID=perf-user AWS_SECRET_ACCESS_KEY=perf-secret-0123456789
export BASALT_ROOT_USER=$AWS_ACCESS_KEY_ID BASALT_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY
EP=http://127.0.0.1:$PORT
SIGN=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")

[ -x "$BIN" ] || cargo build --release
rm -rf "$DIR" && mkdir -p "$DIR"
. scripts/perf-lib.sh
start_server() { # drives...
  local args=()
  for d in "$@"; do args+=(--data "$d"); done
  start_basalt "${args[@]}" --meta-dir "$DIR/meta" --scrub-interval off
}
trap 'stop_server; true' EXIT

put_get() { # label: PUTs and GETs RUNS objects of 1 GiB, prints "put get rss"
  curl -sf -X PUT "${SIGN[@]}" $EP/perf >/dev/null
  local put get
  put=$(for i in $(seq $RUNS); do curl -sf -o /dev/null -w '%{speed_upload}\n' "${SIGN[@]}" -T "$DIR/1g.bin" $EP/perf/1g-$i; done | median | mbps)
  get=$(for i in $(seq $RUNS); do curl -sf -o /dev/null -w '%{speed_download}\n' "${SIGN[@]}" $EP/perf/1g-$i; done | median | mbps)
  echo "$put $get $(peak_rss_mib)"
}

echo "## Erasure-coding run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores"
echo
dd_runs=$(for _ in $(seq $RUNS); do
  dd if=/dev/zero of="$DIR/dd.bin" bs=4M count=256 conv=fdatasync 2>&1 | awk -F', ' '/copied/ {print $NF}' | awk '{v=$1; u=$2; if (u ~ /^GB/) v*=1000; print v}'
  rm -f "$DIR/dd.bin"
done | median)
head -c 1073741824 /dev/urandom >"$DIR/1g.bin"

rm -rf "$DIR/meta" "$DIR/single"
start_server "$DIR/single"
read -r single_put single_get single_rss < <(put_get)
stop_server; rm -rf "$DIR/single" "$DIR/meta"

drives=("$DIR"/d{1..6})
start_server "${drives[@]}"
read -r ec_put ec_get ec_rss < <(put_get)
rm -rf "$DIR/d2" "$DIR/d5"
degraded_get=$(for i in $(seq $RUNS); do curl -sf -o /dev/null -w '%{speed_download}\n' "${SIGN[@]}" $EP/perf/1g-$i; done | median | mbps)
mkdir "$DIR/d2" "$DIR/d5"
heal_json=$("$BIN" admin heal --endpoint $EP --json 2>/dev/null)
heal=$(echo "$heal_json" | python3 -c "import json,sys; r=json.load(sys.stdin); s=(r['finished_ms']-r['started_ms'])/1000; print(f\"{r['bytes_rebuilt']/1e6/s:.0f} {r['bytes_rebuilt']/1e6:.0f} {s:.1f} {r['bytes_checked']/1e6:.0f}\")")
read -r heal_mbps heal_mb heal_s checked_mb <<<"$heal"
stop_server

echo "dd conv=fdatasync (same disk): $dd_runs MB/s"
echo
echo "| 1 GiB, one stream (curl), medians of $RUNS | one drive (none) | six drives (ec:4+2) | ratio |"
echo "|---|---|---|---|"
echo "| PUT | $single_put MB/s | $ec_put MB/s | $(awk "BEGIN{printf \"%.0f%%\", 100*$ec_put/$single_put}") |"
echo "| GET | $single_get MB/s | $ec_get MB/s | $(awk "BEGIN{printf \"%.0f%%\", 100*$ec_get/$single_get}") |"
echo "| GET, 2 of 6 drives removed (decoding every chunk) | | $degraded_get MB/s | $(awk "BEGIN{printf \"%.0f%%\", 100*$degraded_get/$ec_get}") of healthy |"
echo "| server peak RSS | $single_rss MiB | $ec_rss MiB | |"
echo
echo "Heal after two empty replacement drives: $heal_mb MB of shards rebuilt in $heal_s s ($heal_mbps MB/s rebuilt; $checked_mb MB of shards read and verified)."
echo
echo '```'
cargo bench -q -p basalt-object --bench hot_paths 2>/dev/null
echo '```'
