#!/usr/bin/env bash
# Measures single-node Basalt against baselines taken in the same run (raw disk write with dd,
# nginx serving the same bytes), with `basalt bench` and curl. Prints Markdown for
# docs/PERFORMANCE.md. Needs a release build, curl and nginx (installed with apt if missing).
#
#   PERF_DIR      scratch directory on the disk under test (default: ./target/perf)
#   PERF_RUNS     repetitions per figure, the median is reported (default 3)
#   LIST_OBJECTS  objects for the LIST figures (default 1000000; 0 skips them)
set -euo pipefail
cd "$(dirname "$0")/.."
unset AWS_CA_BUNDLE
BIN=$PWD/target/release/basalt
DIR=${PERF_DIR:-$PWD/target/perf}
RUNS=${PERF_RUNS:-3}
LIST_OBJECTS=${LIST_OBJECTS:-1000000}
PORT=9400
NGINX_PORT=9401
export AWS_ACCESS_KEY_ID=perf-user AWS_SECRET_ACCESS_KEY=perf-secret-0123456789
EP=http://127.0.0.1:$PORT
SIGN=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")

[ -x "$BIN" ] || cargo build --release
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
rm -rf "$DIR" && mkdir -p "$DIR/www"

. scripts/perf-lib.sh
start_server() { rm -rf "$DIR/data"; start_basalt --data "$DIR/data"; }
trap 'stop_server; [ -f "$DIR/nginx.pid" ] && kill $(cat "$DIR/nginx.pid") 2>/dev/null; true' EXIT

echo "## Run of $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(uname -r)"
echo

# ---- baselines ----
dd_runs=$(for _ in $(seq $RUNS); do
  dd if=/dev/zero of="$DIR/dd.bin" bs=4M count=256 conv=fdatasync 2>&1 | awk -F', ' '/copied/ {print $NF}' | awk '{v=$1; u=$2; if (u ~ /^GB/) v*=1000; print v}'
  rm -f "$DIR/dd.bin"
done | median)
head -c 1073741824 /dev/urandom >"$DIR/www/1g.bin"
cat >"$DIR/nginx.conf" <<NGINX
daemon on; pid $DIR/nginx.pid; error_log $DIR/nginx-error.log; worker_processes 2;
events { worker_connections 1024; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$NGINX_PORT; root $DIR/www; } }
NGINX
"$NGINX" -c "$DIR/nginx.conf"
nginx_get=$(for _ in $(seq $RUNS); do curl -s -o /dev/null -w '%{speed_download}\n' http://127.0.0.1:$NGINX_PORT/1g.bin; done | median | mbps)
# Cold reads (page cache dropped first; needs root): what the disk gives nginx.
drop_caches() { sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null; }
if [ -w /proc/sys/vm/drop_caches ]; then
  nginx_cold=$(for _ in $(seq $RUNS); do drop_caches; curl -s -o /dev/null -w '%{speed_download}\n' http://127.0.0.1:$NGINX_PORT/1g.bin; done | median | mbps)
else
  nginx_cold=""
fi
cat "$DIR/www/1g.bin" >/dev/null # cached again: the PUTs read it

# ---- large objects, one stream ----
start_server
curl -sf -X PUT "${SIGN[@]}" $EP/perf >/dev/null
put_1g=$(for i in $(seq $RUNS); do curl -sf -o /dev/null -w '%{speed_upload}\n' "${SIGN[@]}" -T "$DIR/www/1g.bin" $EP/perf/1g-$i; done | median | mbps)
rss_put_1g=$(peak_rss_mib)
# Shards are dropped from the page cache once durable, so the first GET reads the disk; the
# second is served from the cache, as nginx's warm figure is.
get_cold=$(for i in $(seq $RUNS); do drop_caches; curl -sf -o /dev/null -w '%{speed_download}\n' "${SIGN[@]}" $EP/perf/1g-$i; done | median | mbps)
get_1g=$(for i in $(seq $RUNS); do
  curl -sf -o /dev/null "${SIGN[@]}" $EP/perf/1g-$i # the first read fills the page cache
  curl -sf -o /dev/null -w '%{speed_download}\n' "${SIGN[@]}" $EP/perf/1g-$i
done | median | mbps)
rss_get_1g=$(peak_rss_mib)

echo "| figure | Basalt | baseline | ratio | server peak RSS |"
echo "|---|---|---|---|---|"
echo "| PUT 1 GiB, one stream (curl) | $put_1g MB/s | dd conv=fdatasync $dd_runs MB/s | $(awk "BEGIN{printf \"%.0f%%\", 100*$put_1g/$dd_runs}") | $rss_put_1g MiB |"
echo "| GET 1 GiB, one stream (curl), warm | $get_1g MB/s | nginx warm $nginx_get MB/s | $(awk "BEGIN{printf \"%.0f%%\", 100*$get_1g/$nginx_get}") | $rss_get_1g MiB |"
[ -n "$nginx_cold" ] && echo "| GET 1 GiB, one stream (curl), cold (page cache dropped) | $get_cold MB/s | nginx cold $nginx_cold MB/s | $(awk "BEGIN{printf \"%.0f%%\", 100*$get_cold/$nginx_cold}") | |"

bench() { "$BIN" bench --endpoint $EP --json "$@"; }
field() { python3 -c "import json,sys; r=json.load(sys.stdin)['results']; print([x for x in r if x['op']=='$1'][0]['$2'])"; }

# ---- large objects, 8 streams of 64 MiB ----
start_server
put8=$(for _ in $(seq $RUNS); do bench --op put --size 64MiB -c 8 --count 16 --bucket big8 | field put mb_per_sec; done | median)
rss_put8=$(peak_rss_mib)
get8=$(for _ in $(seq $RUNS); do bench --op get --size 64MiB -c 8 --count 32 --objects 8 --bucket big8g | field get mb_per_sec; done | median)
rss_get8=$(peak_rss_mib)
echo "| PUT 8×64 MiB streams (basalt bench) | $(printf %.0f $put8) MB/s | dd $dd_runs MB/s | $(awk "BEGIN{printf \"%.0f%%\", 100*$put8/$dd_runs}") | $rss_put8 MiB |"
echo "| GET 8×64 MiB streams (basalt bench) | $(printf %.0f $get8) MB/s | nginx $nginx_get MB/s | $(awk "BEGIN{printf \"%.0f%%\", 100*$get8/$nginx_get}") | $rss_get8 MiB |"

# ---- small objects ----
start_server
put4k=$(for _ in $(seq $RUNS); do bench --op put --size 4KiB -c 32 --duration 10 --bucket small | field put ops_per_sec; done | median)
put4k_p99=$(bench --op put --size 4KiB -c 32 --duration 10 --bucket small | field put p99_ms)
rss_put4k=$(peak_rss_mib)
get4k=$(for _ in $(seq $RUNS); do bench --op get --size 4KiB -c 32 --duration 10 --objects 1000 --bucket smallg | field get ops_per_sec; done | median)
get4k_p99=$(bench --op get --size 4KiB -c 32 --duration 10 --objects 1000 --bucket smallg | field get p99_ms)
rss_get4k=$(peak_rss_mib)
echo "| PUT 4 KiB, 32 concurrent | $(printf %.0f $put4k) ops/s, p99 $put4k_p99 ms | | | $rss_put4k MiB |"
echo "| GET 4 KiB, 32 concurrent | $(printf %.0f $get4k) ops/s, p99 $get4k_p99 ms | | | $rss_get4k MiB |"

# ---- LIST ----
if [ "$LIST_OBJECTS" -gt 0 ]; then
  start_server
  fill_start=$(date +%s.%N)
  bench --op put --size 1B -c 64 --count "$LIST_OBJECTS" --bucket list --prefix "d/" >/dev/null
  fill=$(awk "BEGIN{printf \"%.0f\", $(date +%s.%N)-$fill_start}")
  page=$(for _ in $(seq 9); do curl -sf -o /dev/null -w '%{time_total}\n' "${SIGN[@]}" "$EP/list?delimiter=%2F&list-type=2&max-keys=1000&prefix=d%2Fobj-0001"; done | median)
  pages=$(( (LIST_OBJECTS + 999) / 1000 ))
  walk=$(bench --op list --objects 0 --prefix d/ -c 1 --count $pages --bucket list | python3 -c "import json,sys; print(round(json.load(sys.stdin)['seconds'],1))")
  rss_list=$(peak_rss_mib)
  echo "| LIST page of 1,000 keys, prefix+delimiter, $LIST_OBJECTS objects | $(awk "BEGIN{printf \"%.1f\", 1000*$page}") ms | | | |"
  echo "| LIST walk of all $LIST_OBJECTS keys ($pages pages, one client) | $walk s | | | $rss_list MiB |"
  echo "| (writing the $LIST_OBJECTS 1-byte objects, 64 concurrent) | $fill s | | | |"
fi
stop_server
