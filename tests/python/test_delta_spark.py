"""Delta Lake (delta-rs) and Spark SQL (Spark Connect to Sail) on Basalt, end to end.

delta-rs 1.x commits a table version by writing ``_delta_log/<version>.json`` with a conditional
PUT (``If-None-Match: *``; object_store's ``aws_conditional_put=etag``): there is no DynamoDB lock
and no copy/rename step, so concurrent writers are safe exactly when the store answers the loser
of a race with 412 PreconditionFailed. A loser re-reads the log, checks its actions for
conflicts (blind appends have none) and tries the next version. ``AWS_S3_ALLOW_UNSAFE_RENAME``
plays no part in that path and is not set here.

The Spark tests drive PySpark's DataFrame and SQL APIs through Spark Connect (``pyspark-client``)
against Sail's Spark Connect server (``pysail``), started once per module as a subprocess whose
environment alone tells it where Basalt is (``AWS_ENDPOINT``, path-style, plain HTTP).

With BASALT_TEST_CLUSTER each delta-rs appender, the Sail server and the boto3 checks may talk
to different nodes; nothing here waits for anything to appear.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from botocore.exceptions import ClientError
from deltalake import CommitProperties, DeltaTable, write_deltalake
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from helpers import s3_error, stop_process

# pyspark-client 4.2 predates pandas 3: it warns on import and toPandas() passes the copy keyword
# pandas 3 deprecates. The conversions here are plain numeric and string columns.
pytestmark = [
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

SAIL_START_TIMEOUT_S = 60.0


# ---------------------------------------------------------------------------------------------
# delta-rs


def delta_options(basalt, endpoint: str) -> dict:
    """delta-rs storage options for one Basalt node."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": basalt.access_key,
        "AWS_SECRET_ACCESS_KEY": basalt.secret_key,
        "AWS_REGION": basalt.region,
        "AWS_ALLOW_HTTP": "true",
        # Commits are PutMode::Create: If-None-Match: * on the version file. This is already
        # object_store 0.13's default for S3; spelled out because the test is about it.
        "aws_conditional_put": "etag",
        # Fail fast instead of object_store's multi-minute retry budget (412s are not retried
        # by object_store: delta-rs's commit loop handles them).
        "max_retries": "2",
        "retry_timeout": "20s",
    }


WRITERS = 4
BATCHES = 5
ROWS_PER_BATCH = 3
EVENT_SCHEMA = pa.schema(
    [("writer", pa.int32()), ("batch", pa.int32()), ("row", pa.int32()), ("id", pa.string())]
)


def _event_batch(writer: int, batch: int) -> pa.Table:
    rows = range(ROWS_PER_BATCH)
    return pa.table(
        {
            "writer": pa.array([writer] * ROWS_PER_BATCH, pa.int32()),
            "batch": pa.array([batch] * ROWS_PER_BATCH, pa.int32()),
            "row": pa.array(list(rows), pa.int32()),
            "id": [f"w{writer}-b{batch}-r{r}" for r in rows],
        },
        schema=EVENT_SCHEMA,
    )


def _log_key(prefix: str, version: int) -> str:
    return f"{prefix}/_delta_log/{version:020d}.json"


def _list_keys(s3, bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def _actions(s3, bucket: str, key: str) -> list[dict]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_delta_concurrent_appenders_every_append_committed_once(basalt, s3, bucket):
    prefix = "tables/events"
    uri = f"s3://{bucket}/{prefix}"
    endpoints = basalt.endpoints
    DeltaTable.create(uri, schema=EVENT_SCHEMA, storage_options=delta_options(basalt, endpoints[0]))

    # All appenders open the table at version 0 and start together, so their commits overlap;
    # which of them lose a conditional PUT is up to timing (the deterministic case is
    # test_delta_commit_race_loser_gets_412_and_retries).
    opened = threading.Barrier(WRITERS)

    def appender(writer: int) -> list[int]:
        table = DeltaTable(uri, storage_options=delta_options(basalt, endpoints[writer % len(endpoints)]))
        assert table.version() == 0
        opened.wait(timeout=60)
        committed = []
        for batch in range(BATCHES):
            read_version = table.version()
            write_deltalake(
                table,
                _event_batch(writer, batch),
                mode="append",
                commit_properties=CommitProperties(
                    # Enough for every other append to win before this one.
                    max_commit_retries=WRITERS * BATCHES,
                    custom_metadata={
                        "test.writer": str(writer),
                        "test.batch": str(batch),
                        "test.readVersion": str(read_version),
                    },
                ),
            )
            committed.append(table.version())
        return committed

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        futures = [pool.submit(appender, w) for w in range(WRITERS)]
        committed = {w: f.result(timeout=300) for w, f in enumerate(futures)}

    appends = WRITERS * BATCHES
    # Each appender's own commits are in its order, and all commits are distinct versions 1..N.
    for writer, versions in committed.items():
        assert versions == sorted(versions), (writer, versions)
    assert sorted(v for vs in committed.values() for v in vs) == list(range(1, appends + 1))

    # One log file per commit, nothing else under _delta_log (no temp files, no checkpoint).
    log_keys = _list_keys(s3, bucket, f"{prefix}/_delta_log/")
    assert log_keys == [_log_key(prefix, v) for v in range(appends + 1)]

    # Each version holds exactly the one append that claims it. Before each attempt delta-rs
    # lists the log and aims at the latest version + 1; each lost conditional PUT (412) is one
    # retry and moves it on by at least one version.
    added_paths = []
    for version in range(1, appends + 1):
        actions = _actions(s3, bucket, _log_key(prefix, version))
        info = [a["commitInfo"] for a in actions if "commitInfo" in a]
        adds = [a["add"] for a in actions if "add" in a]
        assert len(info) == 1 and len(adds) == 1, actions
        assert not [a for a in actions if set(a) - {"commitInfo", "add"}], actions
        info = info[0]
        assert info["operation"] == "WRITE" and info["operationParameters"] == {"mode": "Append"}
        writer, batch = int(info["test.writer"]), int(info["test.batch"])
        assert committed[writer][batch] == version
        read_version = int(info["test.readVersion"])
        num_retries = info["operationMetrics"]["num_retries"]
        assert 0 <= num_retries <= version - 1 - read_version, (version, read_version, num_retries)
        assert json.loads(adds[0]["stats"])["numRecords"] == ROWS_PER_BATCH
        added_paths.append(f"{prefix}/{adds[0]['path']}")
    # No orphaned or duplicated data file: a loser's data file is committed by its retry.
    data_keys = [k for k in _list_keys(s3, bucket, f"{prefix}/") if k.endswith(".parquet")]
    assert len(set(added_paths)) == appends
    assert sorted(added_paths) == data_keys

    # Every appended row, exactly once, read back through a fresh handle on another node.
    table = DeltaTable(uri, storage_options=delta_options(basalt, basalt.endpoint))
    assert table.version() == appends
    assert [h["version"] for h in table.history()] == list(range(appends, -1, -1))
    ids = table.to_pyarrow_table().column("id").to_pylist()
    expected = [f"w{w}-b{b}-r{r}" for w in range(WRITERS) for b in range(BATCHES) for r in range(ROWS_PER_BATCH)]
    assert sorted(ids) == sorted(expected)

    # Time travel to the version of the first commit: exactly one batch.
    first = DeltaTable(uri, version=1, storage_options=delta_options(basalt, basalt.endpoint))
    assert first.to_pyarrow_table().num_rows == ROWS_PER_BATCH


class GatedProxy:
    """A pass-through HTTP/1.1 proxy to one Basalt node that can hold back matching requests.

    Requests are relayed byte for byte (the Host header included, so SigV4 signatures stay
    valid); every relayed request is recorded as (method, path, If-None-Match, status).
    """

    def __init__(self, upstream: str, hold):
        self.upstream = upstream  # host:port
        self.hold = hold  # (method, path, headers) -> bool
        self.held = threading.Event()  # a matching request arrived and is being held
        self.release = threading.Event()
        self.log: list[tuple[str, str, str | None, int]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _relay(self):
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    self.send_error(501, "chunked request bodies are not relayed")
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.hold(self.command, self.path, self.headers):
                    proxy.held.set()
                    assert proxy.release.wait(timeout=60), "held request never released"
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=dict(self.headers.items()))
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                proxy.log.append((self.command, self.path, self.headers.get("If-None-Match"), resp.status))
                self.send_response(resp.status)
                for name, value in resp.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                if self.command == "HEAD":
                    self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
                    self.end_headers()
                else:
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


def test_delta_commit_race_loser_gets_412_and_retries(basalt, s3, bucket):
    """Two appenders race for version 1; the loser's conditional PUT is answered 412, and
    delta-rs re-reads the log, finds no conflict and commits the same append as version 2."""
    prefix = "tables/race"
    uri = f"s3://{bucket}/{prefix}"
    DeltaTable.create(uri, schema=EVENT_SCHEMA, storage_options=delta_options(basalt, basalt.endpoint))
    v1_path = "/" + _log_key(f"{bucket}/{prefix}", 1)

    def hold(method, path, headers):
        return method == "PUT" and path == v1_path and headers.get("If-None-Match") == "*"

    with GatedProxy(basalt.host_port, hold) as proxy:
        slow = DeltaTable(uri, storage_options=delta_options(basalt, proxy.endpoint))
        outcome = {}

        def slow_append():
            try:
                write_deltalake(slow, _event_batch(0, 0), mode="append",
                                commit_properties=CommitProperties(custom_metadata={"test.writer": "slow"}))
                outcome["version"] = slow.version()
            except Exception as e:  # reported below
                outcome["error"] = e

        thread = threading.Thread(target=slow_append)
        thread.start()
        # The slow appender has listed the log (only version 0) and sent its PUT of version 1.
        assert proxy.held.wait(timeout=60), proxy.log
        fast = DeltaTable(uri, storage_options=delta_options(basalt, basalt.endpoint))
        write_deltalake(fast, _event_batch(1, 0), mode="append",
                        commit_properties=CommitProperties(custom_metadata={"test.writer": "fast"}))
        assert fast.version() == 1
        proxy.release.set()
        thread.join(timeout=120)
        assert not thread.is_alive()

    assert "error" not in outcome, outcome.get("error")
    assert outcome["version"] == 2
    commits = [(m, p.rsplit("/", 1)[-1], inm, status) for m, p, inm, status in proxy.log
               if m == "PUT" and "/_delta_log/" in p]
    assert commits == [
        ("PUT", f"{1:020d}.json", "*", 412),
        ("PUT", f"{2:020d}.json", "*", 200),
    ], proxy.log

    infos = {}
    for version in (1, 2):
        actions = _actions(s3, bucket, _log_key(prefix, version))
        infos[version] = next(a["commitInfo"] for a in actions if "commitInfo" in a)
    assert infos[1]["test.writer"] == "fast" and infos[1]["operationMetrics"]["num_retries"] == 0
    assert infos[2]["test.writer"] == "slow" and infos[2]["operationMetrics"]["num_retries"] == 1
    table = DeltaTable(uri, storage_options=delta_options(basalt, basalt.endpoint))
    assert table.version() == 2
    assert sorted(table.to_pyarrow_table().column("id").to_pylist()) == sorted(
        _event_batch(0, 0).column("id").to_pylist() + _event_batch(1, 0).column("id").to_pylist()
    )


def test_delta_commit_file_put_if_absent(basalt, bucket):
    """The primitive the Delta log relies on: a version file can be created only once."""
    key = _log_key("tables/t", 0)
    first, second = basalt.client(), basalt.client()  # two nodes on a cluster
    first.put_object(Bucket=bucket, Key=key, Body=b'{"commitInfo":{"by":"first"}}\n', IfNoneMatch="*")
    with s3_error("PreconditionFailed", 412):
        second.put_object(Bucket=bucket, Key=key, Body=b'{"commitInfo":{"by":"second"}}\n', IfNoneMatch="*")
    assert second.get_object(Bucket=bucket, Key=key)["Body"].read() == b'{"commitInfo":{"by":"first"}}\n'

    # A race for the next version: exactly one of the concurrent writers wins it.
    racers = 8
    key = _log_key("tables/t", 1)
    clients = [basalt.client() for _ in basalt.endpoints]  # one per node; boto3 clients are thread-safe
    start = threading.Barrier(racers)

    def race(i):
        body = json.dumps({"commitInfo": {"by": i}}).encode() + b"\n"
        start.wait(timeout=30)
        try:
            clients[i % len(clients)].put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
            return "won"
        except ClientError as e:
            return (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])

    with ThreadPoolExecutor(max_workers=racers) as pool:
        results = list(pool.map(race, range(racers)))
    winners = [i for i, r in enumerate(results) if r == "won"]
    assert len(winners) == 1, results
    assert sorted(r for r in results if r != "won") == [("PreconditionFailed", 412)] * (racers - 1), results
    body = first.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert json.loads(body) == {"commitInfo": {"by": winners[0]}}


# ---------------------------------------------------------------------------------------------
# Spark Connect (pyspark-client) on Sail (pysail)


@dataclass
class Sail:
    session: SparkSession
    remote: str
    endpoint: str
    log_path: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sail_env(basalt, endpoint: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAIL_", "SPARK_"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": basalt.access_key,
            "AWS_SECRET_ACCESS_KEY": basalt.secret_key,
            "AWS_REGION": basalt.region,
            "AWS_ENDPOINT": endpoint,
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
            "AWS_ALLOW_HTTP": "true",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


@pytest.fixture(scope="module")
def sail(basalt, tmp_path_factory):
    """A Sail Spark Connect server for the module, and one Spark session on it."""
    workdir = tmp_path_factory.mktemp("sail")
    log_path = workdir / "sail.log"
    endpoint = basalt.endpoint
    port = _free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pysail", "spark", "server", "--ip", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_sail_env(basalt, endpoint),
            cwd=str(workdir),
        )
    session = None
    try:
        deadline = time.monotonic() + SAIL_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"the Sail Spark Connect server exited with code {proc.returncode}; log:\n"
                    + log_path.read_text(errors="replace")[-4000:],
                    pytrace=False,
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"the Sail Spark Connect server is not listening on port {port} after "
                        f"{SAIL_START_TIMEOUT_S}s; log:\n" + log_path.read_text(errors="replace")[-4000:],
                        pytrace=False,
                    )
                time.sleep(0.05)
        remote = f"sc://127.0.0.1:{port}"
        session = SparkSession.builder.remote(remote).getOrCreate()
        yield Sail(session=session, remote=remote, endpoint=endpoint, log_path=log_path)
    finally:
        if session is not None:
            session.stop()
        stop_process(proc)


SALES_SCHEMA = StructType(
    [
        StructField("id", IntegerType(), False),
        StructField("city", StringType(), False),
        StructField("year", IntegerType(), False),
        StructField("amount", DoubleType(), False),
    ]
)


def _sales() -> pd.DataFrame:
    cities = ["lima", "oslo", "rome", "kyiv"]
    n = 240
    return pd.DataFrame(
        {
            "id": list(range(n)),
            "city": [cities[(i * 7) % len(cities)] for i in range(n)],
            "year": [2021 + (i % 3) for i in range(n)],
            # Quarters: exactly representable, so sums compare exactly.
            "amount": [((i * 37) % 101) / 4 for i in range(n)],
        }
    )


def _expected_by_city(pdf: pd.DataFrame) -> pd.DataFrame:
    return (
        pdf.groupby("city", as_index=False)
        .agg(orders=("id", "count"), total=("amount", "sum"), biggest=("amount", "max"))
        .sort_values("city", ignore_index=True)
    )


def _normalized(df: pd.DataFrame) -> pd.DataFrame:
    out = df.reset_index(drop=True).copy()
    for col in out.columns:
        if out[col].dtype.kind in "iu":
            out[col] = out[col].astype("int64")
        elif out[col].dtype.kind == "f":
            out[col] = out[col].astype("float64")
        else:
            out[col] = out[col].astype(object)
    return out


def test_spark_parquet_on_basalt_group_by(sail, basalt, s3, bucket):
    spark = sail.session
    pdf = _sales()
    url = f"s3://{bucket}/sales/"
    spark.createDataFrame(pdf, schema=SALES_SCHEMA).repartition(3).write.mode("overwrite").parquet(url)

    # The Parquet objects are in the bucket (checked through another node on a cluster).
    checker = basalt.client()
    keys = [k for k in _list_keys(checker, bucket, "sales/") if k.endswith(".parquet")]
    assert len(keys) == 3, _list_keys(checker, bucket, "")  # one per partition
    for key in keys:
        size = checker.head_object(Bucket=bucket, Key=key)["ContentLength"]
        assert size > 8
        assert checker.get_object(Bucket=bucket, Key=key, Range="bytes=0-3")["Body"].read() == b"PAR1"
        assert checker.get_object(Bucket=bucket, Key=key, Range="bytes=-4")["Body"].read() == b"PAR1"

    back = spark.read.parquet(url)
    assert back.count() == len(pdf)
    rows = back.orderBy("id").toPandas()
    pd.testing.assert_frame_equal(_normalized(rows[list(pdf.columns)]), _normalized(pdf))

    expected = _normalized(_expected_by_city(pdf))

    by_api = (
        back.groupBy("city")
        .agg(F.count("*").alias("orders"), F.sum("amount").alias("total"), F.max("amount").alias("biggest"))
        .orderBy("city")
        .toPandas()
    )
    pd.testing.assert_frame_equal(_normalized(by_api), expected)

    view = f"sales_{bucket.replace('-', '_')}"
    back.createOrReplaceTempView(view)
    by_sql = spark.sql(
        f"SELECT city, COUNT(*) AS orders, SUM(amount) AS total, MAX(amount) AS biggest "
        f"FROM {view} GROUP BY city ORDER BY city"
    ).toPandas()
    pd.testing.assert_frame_equal(_normalized(by_sql), expected)

    # Two grouping keys and a filter, in SQL.
    two_keys = spark.sql(
        f"SELECT city, year, COUNT(*) AS orders, SUM(amount) AS total FROM {view} "
        f"WHERE amount >= 5 GROUP BY city, year ORDER BY city, year"
    ).toPandas()
    want = (
        pdf[pdf.amount >= 5]
        .groupby(["city", "year"], as_index=False)
        .agg(orders=("id", "count"), total=("amount", "sum"))
        .sort_values(["city", "year"], ignore_index=True)
    )
    pd.testing.assert_frame_equal(_normalized(two_keys), _normalized(want))


def test_spark_sql_over_delta_table_written_by_delta_rs(sail, basalt, bucket):
    """delta-rs appends, Spark SQL reads the table through the Delta log."""
    spark = sail.session
    uri = f"s3://{bucket}/tables/sales"
    pdf = _sales()
    halves = [pdf.iloc[: len(pdf) // 2], pdf.iloc[len(pdf) // 2 :]]
    for part in halves:
        write_deltalake(
            uri,
            pa.Table.from_pandas(part, preserve_index=False),
            mode="append",
            storage_options=delta_options(basalt, basalt.endpoint),
        )
    assert DeltaTable(uri, storage_options=delta_options(basalt, basalt.endpoint)).version() == 1

    view = f"delta_sales_{bucket.replace('-', '_')}"
    spark.read.format("delta").load(uri).createOrReplaceTempView(view)
    assert spark.sql(f"SELECT COUNT(*) AS n FROM {view}").collect()[0]["n"] == len(pdf)
    by_sql = spark.sql(
        f"SELECT city, COUNT(*) AS orders, SUM(amount) AS total, MAX(amount) AS biggest "
        f"FROM {view} GROUP BY city ORDER BY city"
    ).toPandas()
    pd.testing.assert_frame_equal(_normalized(by_sql), _normalized(_expected_by_city(pdf)))
