#!/usr/bin/env python3
"""Issue 14's figures: a selective query (1% of rows, 2 of 20 columns) on a Parquet and a CSV
object of SIZE_MB (default 1024), answered by S3 Select against a full GET read by pyarrow
(bytes sent to the client, and time, median of ROUNDS); and Iceberg catalog commits per
second on one table (sequential commits of table properties, and appends).

Usage: [SIZE_MB=1024] [ROUNDS=3] [COMMITS=200] .venv/bin/python scripts/perf-select.py [binary]
Starts its own one-node server on 127.0.0.1:9530 with a throw-away data directory.
"""

from __future__ import annotations

import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from botocore.config import Config

for var in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_ENDPOINT_URL", "http_proxy", "https_proxy"):
    os.environ.pop(var, None)

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/basalt"
SIZE_MB = int(os.environ.get("SIZE_MB", "1024"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
COMMITS = int(os.environ.get("COMMITS", "200"))
ADDRESS = "127.0.0.1:9530"
ENDPOINT = f"http://{ADDRESS}"
USER, SECRET, REGION = "perf", "perf-secret-0123456789", "us-east-1"
COLUMNS = 20
ROWS_PER_BATCH = 100_000


def start_server(data: str) -> subprocess.Popen:
    env = dict(os.environ, BASALT_ROOT_USER=USER, BASALT_ROOT_PASSWORD=SECRET, BASALT_LOG="error")
    proc = subprocess.Popen([BIN, "server", "--address", ADDRESS, "--data", data], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{ENDPOINT}/health/ready", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not become ready")


def batch(start: int, rows: int) -> pa.RecordBatch:
    """Rows `start`.. of a 20-column table: id, key (0..99: key = 7 is 1% of the rows), and
    18 numeric and text columns."""
    ids = pa.array(range(start, start + rows), pa.int64())
    columns = {"id": ids, "key": pc.cast(pc.bit_wise_and(pc.multiply(ids, 7919), 0xFFFF), pa.int64())}
    columns["key"] = pc.cast(pc.divide(pc.multiply(columns["key"], 100), 0x10000), pa.int64())
    for i in range(COLUMNS - 2):
        if i % 3 == 0:
            columns[f"name{i}"] = pc.binary_join_element_wise(pa.array(["v"] * rows), pc.cast(ids, pa.string()), "-")
        else:
            columns[f"value{i}"] = pc.cast(pc.multiply(ids, i + 1), pa.float64())
    return pa.RecordBatch.from_pydict(columns)


def write_objects(s3, bucket: str) -> tuple[int, int]:
    """Writes the Parquet and the CSV object, each about SIZE_MB; their sizes."""
    target = SIZE_MB << 20
    sizes = []
    for kind in ("parquet", "csv"):
        path = tempfile.mktemp(suffix=f".{kind}")
        rows = 0
        if kind == "parquet":
            writer = pq.ParquetWriter(path, batch(0, 1).schema, compression="snappy")
            while os.path.getsize(path) < target:
                writer.write_batch(batch(rows, ROWS_PER_BATCH), row_group_size=ROWS_PER_BATCH)
                rows += ROWS_PER_BATCH
            writer.close()
        else:
            with open(path, "wb") as f:
                writer = pacsv.CSVWriter(f, batch(0, 1).schema)
                while f.tell() < target:
                    writer.write_batch(batch(rows, ROWS_PER_BATCH))
                    rows += ROWS_PER_BATCH
                writer.close()
        s3.upload_file(path, bucket, f"data.{kind}")
        sizes.append(os.path.getsize(path))
        os.unlink(path)
        print(f"# {kind}: {rows} rows, {sizes[-1] / 2**20:.0f} MiB", flush=True)
    return sizes[0], sizes[1]


SQL = "SELECT s.id, s.value1 FROM S3Object s WHERE s.key = 7"


def select(s3, bucket: str, key: str, kind: str) -> tuple[int, int]:
    """Runs the query with S3 Select; (bytes returned, rows)."""
    serialization = ({"Parquet": {}} if kind == "parquet"
                     else {"CSV": {"FileHeaderInfo": "USE"}, "CompressionType": "NONE"})
    resp = s3.select_object_content(Bucket=bucket, Key=key, Expression=SQL, ExpressionType="SQL",
                                    InputSerialization=serialization,
                                    OutputSerialization={"CSV": {}})
    sent = rows = 0
    for event in resp["Payload"]:
        if "Records" in event:
            payload = event["Records"]["Payload"]
            sent += len(payload)
            rows += payload.count(b"\n")
    return sent, rows


def full_get(s3, bucket: str, key: str, kind: str) -> tuple[int, int]:
    """Reads the whole object and filters with pyarrow; (bytes sent, rows)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    table = (pq.read_table(io.BytesIO(body), columns=["id", "value1", "key"]) if kind == "parquet"
             else pacsv.read_csv(io.BytesIO(body)).select(["id", "value1", "key"]))
    kept = table.filter(pc.equal(table["key"], 7))
    return len(body), kept.num_rows


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def select_figures(s3, bucket: str) -> None:
    write_objects(s3, bucket)
    print("object  method         MB_sent   seconds(median)  rows")
    for kind in ("parquet", "csv"):
        key = f"data.{kind}"
        for name, fn in (("select", select), ("get+pyarrow", full_get)):
            runs = [timed(fn, s3, bucket, key, kind) for _ in range(ROUNDS)]
            seconds = statistics.median(r[0] for r in runs)
            sent, rows = runs[0][1]
            print(f"{kind:7} {name:12} {sent / 1e6:11.3f} {seconds:12.2f}      {rows}", flush=True)


def catalog_figures(bucket: str) -> None:
    from pyiceberg.catalog.rest import RestCatalog

    catalog = RestCatalog("perf", **{
        "uri": f"{ENDPOINT}/_iceberg", "warehouse": bucket,
        "rest.sigv4-enabled": "true", "rest.signing-region": REGION, "rest.signing-name": "s3tables",
        "client.access-key-id": USER, "client.secret-access-key": SECRET, "client.region": REGION,
        "s3.endpoint": ENDPOINT, "s3.access-key-id": USER, "s3.secret-access-key": SECRET,
        "s3.region": REGION,
    })
    catalog.create_namespace("perf")
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    table = catalog.create_table(("perf", "commits"), schema=schema)
    start = time.perf_counter()
    for i in range(COMMITS):
        with table.transaction() as tx:
            tx.set_properties(counter=str(i))
    elapsed = time.perf_counter() - start
    print(f"catalog property commits: {COMMITS / elapsed:.0f}/s ({COMMITS} sequential)")
    appends = max(COMMITS // 10, 5)
    rows = pa.table({"id": [1], "name": ["x"]}, schema=schema)
    start = time.perf_counter()
    for _ in range(appends):
        table.append(rows)
    elapsed = time.perf_counter() - start
    print(f"catalog appends (data file + manifests + commit): {appends / elapsed:.1f}/s ({appends} sequential)")


def main() -> None:
    data = tempfile.mkdtemp(prefix="basalt-perf-select-")
    server = start_server(data)
    try:
        s3 = boto3.client("s3", endpoint_url=ENDPOINT, aws_access_key_id=USER,
                          aws_secret_access_key=SECRET, region_name=REGION,
                          config=Config(s3={"addressing_style": "path"}, read_timeout=600))
        s3.create_bucket(Bucket="perf")
        select_figures(s3, "perf")
        catalog_figures("perf")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
