"""S3 Select (SelectObjectContent) through boto3 and minio-py: SQL over CSV, JSON and Parquet
objects, compressed input, scan ranges, the event stream, encrypted objects, the Arrow output
extension and the error codes. Every result is checked against the same query computed with
pandas/pyarrow on the same (deterministic) data.

Where AWS leaves a detail open, or where Basalt may reasonably choose either way, the queries
are written so that both readings give the same answer (e.g. whether an empty CSV field is NULL
or ''), and that is said next to the query.
"""

from __future__ import annotations

import bz2
import csv
import datetime as dt
import functools
import gzip
import io
import json
import math
import random
import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as paipc
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError
from minio import Minio
from minio.select import (
    CSVInputSerialization,
    CSVOutputSerialization,
    JSONInputSerialization,
    JSONOutputSerialization,
    ParquetInputSerialization,
    SelectRequest,
)

MiB = 1024 * 1024
UTC = dt.timezone.utc

CSV_IN = {"CSV": {"FileHeaderInfo": "USE"}}
CSV_NOHDR = {"CSV": {"FileHeaderInfo": "NONE"}}
JSON_LINES = {"JSON": {"Type": "LINES"}}
JSON_DOC = {"JSON": {"Type": "DOCUMENT"}}
PARQUET = {"Parquet": {}}
CSV_OUT = {"CSV": {}}
JSON_OUT = {"JSON": {}}

# A fixed SSE-C key (botocore base64-encodes it and adds its MD5 itself).
SSE_C_KEY = "basalt-select-test-key-32-bytes!"
SSE_C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": SSE_C_KEY}
assert len(SSE_C_KEY) == 32


# ---------------------------------------------------------------------------------------------
# Running a select
# ---------------------------------------------------------------------------------------------


def select(s3, bucket, key, sql, input_ser, output_ser=None, **kw):
    """Run one SelectObjectContent and drain the stream.

    Returns (records payload bytes, Stats details or None, list of all events)."""
    resp = s3.select_object_content(
        Bucket=bucket,
        Key=key,
        Expression=sql,
        ExpressionType="SQL",
        InputSerialization=input_ser,
        OutputSerialization=output_ser or CSV_OUT,
        **kw,
    )
    events = list(resp["Payload"])
    payload = b"".join(e["Records"]["Payload"] for e in events if "Records" in e)
    stats = next((e["Stats"]["Details"] for e in events if "Stats" in e), None)
    return payload, stats, events


def event_kinds(events):
    return [next(iter(e)) for e in events]


def select_error(s3, bucket, key, sql, input_ser, output_ser=None, accept=(), **kw) -> str:
    """Assert that the select fails -- as the HTTP response (ClientError) or as an error event
    in the stream (EventStreamError, a ClientError too) -- with an accepted error code.

    `accept` is a tuple of codes or a predicate on the code. Returns the code."""
    with pytest.raises(ClientError) as excinfo:
        select(s3, bucket, key, sql, input_ser, output_ser, **kw)
    err = excinfo.value.response.get("Error", {})
    code = err.get("Code") or ""
    ok = accept(code) if callable(accept) else code in accept
    assert ok, f"{sql!r}: unexpected error code {code!r}: {err}"
    status = excinfo.value.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    # An error sent before any record is an HTTP 4xx; one found later rides in a 200 stream.
    assert status is None or status in (200, 400, 403, 404), (code, status)
    return code


def put(s3, bucket, key, body, **kw) -> str:
    return s3.put_object(Bucket=bucket, Key=key, Body=body, **kw)["ETag"]


def assert_unchanged(s3, bucket, key, body, etag, **kw):
    head = s3.head_object(Bucket=bucket, Key=key, **kw)
    assert head["ETag"] == etag and head["ContentLength"] == len(body)
    assert s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read() == body


# ---------------------------------------------------------------------------------------------
# Parsing outputs, comparing values
# ---------------------------------------------------------------------------------------------


def csv_rows(payload: bytes, delimiter=",", quotechar='"') -> list[list[str]]:
    text = payload.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar))
    # csv.reader reads an empty line (a one-column record whose value is empty) as [].
    return [row if row else [""] for row in rows]


def json_records(payload: bytes, delimiter="\n") -> list[dict]:
    parts = payload.decode("utf-8").split(delimiter)
    if parts and parts[-1] == "":
        parts.pop()
    out = [json.loads(p) for p in parts]
    assert all(isinstance(r, dict) for r in out), out[:3]
    return out


def tokenize_line(line: str, delim: str, quote: str) -> list[tuple[str, bool]]:
    """Split one CSV output line into (value, was_quoted) pairs (quotes escaped by doubling)."""
    fields = []
    i, n = 0, len(line)
    while True:
        if i < n and line[i] == quote:
            i += 1
            val = []
            while True:
                assert i < n, f"unterminated quote in output line {line!r}"
                c = line[i]
                if c == quote:
                    if i + 1 < n and line[i + 1] == quote:
                        val.append(quote)
                        i += 2
                        continue
                    i += 1
                    break
                val.append(c)
                i += 1
            fields.append(("".join(val), True))
            if i < n:
                assert line[i] == delim, f"garbage after a quoted field in {line!r}"
                i += 1
                continue
            break
        j = line.find(delim, i)
        if j < 0:
            fields.append((line[i:], False))
            break
        fields.append((line[i:j], False))
        i = j + 1
    return fields


def approx(a, b, rel=1e-9) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(approx(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(approx(x, y, rel) for x, y in zip(a, b))
    return a == b


def assert_records(got: list[dict], want: list[dict]):
    assert len(got) == len(want), f"{len(got)} records, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert approx(g, w), f"record {i}: got {g}, expected {w}"


def drop_empty(rec: dict) -> dict:
    """Missing, null and '' compare alike: for CSV fields that are empty, where AWS returns ''
    and an engine that reads empty CSV fields as NULL returns null (or nothing)."""
    return {k: v for k, v in rec.items() if v is not None and v != ""}


def drop_null(rec: dict) -> dict:
    """A null value and a missing key compare alike (JSON output of NULL vs MISSING)."""
    return {k: v for k, v in rec.items() if v is not None}


def parse_ts(value) -> pd.Timestamp:
    """A timestamp from the output (ISO 8601 text in any precision, or a datetime), in UTC."""
    if isinstance(value, str):
        value = value.strip()
        if value.endswith("T"):  # Ion-style year/day precision, e.g. '2020-01-31T'
            value = value[:-1]
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def like(pattern: str, escape: str | None = None):
    """A predicate doing SQL LIKE (% and _, optional escape character)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if escape is not None and c == escape:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    rx = re.compile("".join(out), re.S)
    return lambda s: isinstance(s, str) and rx.fullmatch(s) is not None


def frame_rows(df: pd.DataFrame, cols) -> list[list[str]]:
    return [[str(v) for v in row] for row in df[list(cols)].itertuples(index=False, name=None)]


# ---------------------------------------------------------------------------------------------
# Deterministic data
# ---------------------------------------------------------------------------------------------

FIRST = ["Alice", "Alan", "Albert", "Bob", "Joe", "Tom", "Carol", "Dave", "Eve", "Zoë", "Ann"]
LAST = ["Smith", "Jones", "Brown", "O'Neil", "García", "Lee", "Nguyen"]
# A comma, a quote, a '|', non-ASCII text, and empty cities (about 1 in 10).
CITIES = ["Paris", "Berlin", "New York", "Washington, D.C.", "São Paulo", 'The "Big" Apple',
          "Tokyo", "Oslo", "Lyon|Rhône", ""]
HEADER = ["id", "name", "city", "age", "score", "active", "ts", "Zip Code"]
N_PEOPLE = 4000  # about 300 KB of CSV: several 64 KiB chunks on the erasure-coded run


@functools.lru_cache(maxsize=None)
def people_rows(n: int = N_PEOPLE, seed: int = 1234) -> tuple:
    rng = random.Random(seed)
    base = dt.date(2019, 1, 1)
    rows = []
    for i in range(1, n + 1):
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        if i % 97 == 0:
            name = f"user_{i}"
        elif i % 53 == 0:
            name = f"  {name} "
        rows.append((
            str(i),
            name,
            rng.choice(CITIES),
            str(rng.randint(18, 90)),
            f"{rng.uniform(0, 100):.2f}",
            rng.choice(["true", "false"]),
            (base + dt.timedelta(days=rng.randint(0, 2000))).isoformat() + "T00:00:00Z",
            f"{rng.randint(0, 99999):05d}",
        ))
    return tuple(rows)


def to_csv(rows, header=HEADER, delimiter=",", lineterminator="\n") -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=delimiter, lineterminator=lineterminator)
    if header:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


@functools.lru_cache(maxsize=None)
def people_csv(header: bool = True) -> bytes:
    return to_csv(people_rows(), header=HEADER if header else None)


def people_df(data: bytes | None = None) -> pd.DataFrame:
    """The people CSV as pandas reads it: every field a string, '' for empty fields, plus
    typed copies of the numeric columns."""
    df = pd.read_csv(io.BytesIO(data or people_csv()), dtype=str, keep_default_na=False)
    assert list(df.columns) == HEADER and len(df) == N_PEOPLE
    df["id_n"] = df["id"].astype(int)
    df["age_n"] = df["age"].astype(int)
    df["score_n"] = df["score"].astype(float)
    df["ts_t"] = pd.to_datetime(df["ts"], utc=True)
    return df


@functools.lru_cache(maxsize=None)
def json_docs(n: int = 3000, seed: int = 99) -> tuple:
    rng = random.Random(seed)
    recs = []
    for i in range(1, n + 1):
        r = {
            "id": i,
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "age": rng.randint(18, 90),
            "score": round(rng.uniform(0, 100), 3),
            "active": rng.random() < 0.5,
            "address": {
                "zip": f"{rng.randint(0, 99999):05d}",
                "geo": {"lat": round(rng.uniform(-90, 90), 4), "lon": round(rng.uniform(-180, 180), 4)},
            },
            "tags": rng.sample(["a", "b", "c", "d"], rng.randint(0, 3)),
        }
        c = rng.random()
        if c < 0.1:
            r["city"] = None  # explicit null
        elif c < 0.2:
            pass  # missing
        else:
            r["city"] = rng.choice([x for x in CITIES if x])
        recs.append(r)
    return tuple(recs)


def json_lines(recs) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs).encode("utf-8")


def json_df(recs) -> pd.DataFrame:
    return pd.json_normalize(list(recs))


N_PARQUET = 10000  # 20 row groups of 500 rows, about 270 KB


@functools.lru_cache(maxsize=None)
def parquet_table(n: int = N_PARQUET, seed: int = 5) -> pa.Table:
    rng = random.Random(seed)
    t0 = dt.datetime(2020, 1, 1, tzinfo=UTC)
    ids = list(range(n))
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "name": pa.array([None if i % 17 == 0 else f"{rng.choice(FIRST)} {rng.choice(LAST)}" for i in ids], pa.string()),
        "score": pa.array([None if i % 13 == 0 else round(rng.uniform(0, 100), 3) for i in ids], pa.float64()),
        "qty": pa.array([None if i % 11 == 0 else rng.randint(0, 100) for i in ids], pa.int32()),
        "active": pa.array([rng.random() < 0.5 for _ in ids], pa.bool_()),
        "ts": pa.array([t0 + dt.timedelta(hours=7 * i) for i in ids], pa.timestamp("us", tz="UTC")),
        "city": pa.array([rng.choice([c for c in CITIES if c]) for _ in ids], pa.string()),
    })


def parquet_bytes(table: pa.Table, row_group_size: int = 500, **kw) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size, **kw)
    return buf.getvalue()


@functools.lru_cache(maxsize=None)
def parquet_data() -> bytes:
    return parquet_bytes(parquet_table())  # row groups of 500 rows, snappy


def parquet_df() -> pd.DataFrame:
    return parquet_table().to_pandas()


def row_group_starts(data: bytes) -> list[int]:
    """The offset of each row group's first byte (its first column chunk's first page)."""
    md = pq.ParquetFile(io.BytesIO(data)).metadata
    starts = []
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        offsets = []
        for j in range(rg.num_columns):
            col = rg.column(j)
            if col.has_dictionary_page and col.dictionary_page_offset is not None:
                offsets.append(min(col.dictionary_page_offset, col.data_page_offset))
            else:
                offsets.append(col.data_page_offset)
        starts.append(min(offsets))
    return starts


def parquet_expected_json(df: pd.DataFrame, cols) -> list[dict]:
    """Rows of the Parquet frame as the JSON output should have them (nulls dropped)."""
    out = []
    for row in df[list(cols)].to_dict("records"):
        rec = {}
        for k, v in row.items():
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v is pd.NaT:
                continue
            if isinstance(v, pd.Timestamp):
                v = v.tz_convert("UTC")
            elif hasattr(v, "item"):
                v = v.item()
            rec[k] = v
        out.append(rec)
    return out


def normalize_parquet_json(rec: dict, ts_cols=("ts",)) -> dict:
    rec = drop_null(rec)
    for c in ts_cols:
        if c in rec:
            rec[c] = parse_ts(rec[c])
    return rec


# ---------------------------------------------------------------------------------------------
# 1. CSV with a header
# ---------------------------------------------------------------------------------------------


def test_csv_where_comparisons_and_logic(s3, bucket):
    put(s3, bucket, "people.csv", people_csv())
    df = people_df()

    def q(sql):
        return csv_rows(select(s3, bucket, "people.csv", sql, CSV_IN)[0])

    # CSV fields are strings; against a number they compare numerically.
    got = q("SELECT s.id, s.name, s.city FROM S3Object s WHERE s.age > 60 AND s.score < 50")
    want = frame_rows(df[(df.age_n > 60) & (df.score_n < 50)], ["id", "name", "city"])
    assert want and got == want

    # Unqualified column names, BETWEEN (inclusive), OR, LIKE.
    got = q("SELECT name, age FROM S3Object WHERE age BETWEEN 30 AND 35 OR name LIKE 'Al%'")
    sel = df.age_n.between(30, 35) | df.name.map(like("Al%"))
    assert got == frame_rows(df[sel], ["name", "age"])

    # NOT over a parenthesized OR, IN on strings (one of them non-ASCII).
    got = q("SELECT s.id FROM S3Object s WHERE NOT (s.age < 30 OR s.age > 60) "
            "AND s.city IN ('Paris', 'Tokyo', 'São Paulo')")
    sel = ~((df.age_n < 30) | (df.age_n > 60)) & df.city.isin(["Paris", "Tokyo", "São Paulo"])
    assert got == frame_rows(df[sel], ["id"])

    # '_' in LIKE, string equality, <> and != on numbers, <= and >=.
    got = q("SELECT s.id, s.name FROM S3Object s WHERE s.name LIKE '_o%' AND s.active = 'true' "
            "AND s.age <> 40 AND s.age != 41 AND s.score >= 10 AND s.score <= 90")
    sel = (df.name.map(like("_o%")) & (df.active == "true") & (df.age_n != 40) & (df.age_n != 41)
           & (df.score_n >= 10) & (df.score_n <= 90))
    assert got == frame_rows(df[sel], ["id", "name"])

    # LIKE ... ESCAPE: a literal '_'.
    got = q("SELECT s.name FROM S3Object s WHERE s.name LIKE 'user!_%' ESCAPE '!'")
    want = frame_rows(df[df.name.map(like("user!_%", "!"))], ["name"])
    assert len(want) == N_PEOPLE // 97 and got == want

    # Empty fields: AWS reads an empty CSV field as '', an engine may read it as NULL; these
    # two queries give the same rows either way.
    got = q("SELECT s.id FROM S3Object s WHERE s.city IS NULL OR s.city = ''")
    want = frame_rows(df[df.city == ""], ["id"])
    assert len(want) > 100 and got == want
    got = q("SELECT s.id, s.city FROM S3Object s WHERE s.city IS NOT NULL AND s.city <> '' AND s.age >= 88")
    assert got == frame_rows(df[(df.city != "") & (df.age_n >= 88)], ["id", "city"])
    # IS NULL on a field that is never empty matches nothing; IS NOT NULL matches everything.
    assert q("SELECT s.id FROM S3Object s WHERE s.name IS NULL") == []
    assert len(q("SELECT s.id FROM S3Object s WHERE s.name IS NOT NULL")) == N_PEOPLE


def test_csv_projection_aliases_limit_and_quoted_names(s3, bucket):
    put(s3, bucket, "people.csv", people_csv())
    df = people_df()

    def q(sql, out=CSV_OUT):
        return select(s3, bucket, "people.csv", sql, CSV_IN, out)[0]

    # SELECT * returns every field of every record, in file order.
    assert csv_rows(q("SELECT * FROM S3Object")) == frame_rows(df, HEADER)
    assert csv_rows(q("SELECT * FROM S3Object s")) == frame_rows(df, HEADER)

    # LIMIT keeps the first n matches in file order.
    got = csv_rows(q("SELECT s.id, s.city FROM S3Object s WHERE s.city = 'Paris' LIMIT 7"))
    assert got == frame_rows(df[df.city == "Paris"].head(7), ["id", "city"])
    assert csv_rows(q("SELECT s.id FROM S3Object s LIMIT 1")) == [["1"]]

    # A double-quoted column name with a space, an alias; leading zeros stay (it is a string).
    got = csv_rows(q('SELECT s."Zip Code" AS zip, s.ts, s.id FROM S3Object s WHERE s.id <= 25'))
    assert got == frame_rows(df[df.id_n <= 25], ["Zip Code", "ts", "id"])

    # JSON output: plain column references keep their names, aliases name their column, an
    # unaliased expression is named by its position (_N), CSV fields are JSON strings, a CAST
    # to INT is a JSON number.
    got = json_records(q("SELECT s.id, s.name AS n, UPPER(s.name), CAST(s.age AS INT) AS age "
                         "FROM S3Object s WHERE s.age > 85", JSON_OUT))
    sub = df[df.age_n > 85]
    want = [{"id": r.id, "n": r.name, "_3": r.name.upper(), "age": r.age_n} for r in sub.itertuples()]
    assert want and got == want
    assert all(isinstance(r["age"], int) and isinstance(r["id"], str) for r in got)

    # SELECT * as JSON: one object per record, keyed by the header.
    got = json_records(q("SELECT * FROM S3Object s WHERE s.id <= 300", JSON_OUT))
    want = [dict(zip(HEADER, row)) for row in people_rows()[:300]]
    assert [drop_empty(r) for r in got] == [drop_empty(r) for r in want]


def test_csv_cast_string_and_date_functions(s3, bucket):
    put(s3, bucket, "people.csv", people_csv())
    df = people_df()

    def q(sql, out=CSV_OUT):
        return csv_rows(select(s3, bucket, "people.csv", sql, CSV_IN, out)[0])

    got = q("SELECT CAST(s.age AS INT), CAST(s.score AS FLOAT), CAST(s.id AS STRING), "
            "CAST(s.age AS INTEGER), CAST(s.id AS BIGINT) FROM S3Object s "
            "WHERE CAST(s.score AS DECIMAL) >= 99 AND CAST(s.active AS BOOL) = true")
    sub = df[(df.score_n >= 99) & (df.active == "true")]
    assert len(got) == len(sub) > 0
    for row, r in zip(got, sub.itertuples()):
        assert row[0] == str(r.age_n) and row[2] == r.id and row[3] == str(r.age_n) and row[4] == r.id
        assert math.isclose(float(row[1]), r.score_n)

    got = q("SELECT s.id FROM S3Object s WHERE CAST(s.id AS BIGINT) < 100 AND CAST(s.age AS INT) IN (20, 30, 40, 50)")
    assert got == frame_rows(df[(df.id_n < 100) & df.age_n.isin([20, 30, 40, 50])], ["id"])

    got = q("SELECT LOWER(s.name), UPPER(s.city), TRIM(s.name), SUBSTRING(s.name FROM 2 FOR 3), "
            "SUBSTRING(s.name, 2, 3), SUBSTRING(s.name, 3), CHAR_LENGTH(s.name), "
            "CHARACTER_LENGTH(TRIM(s.name)) FROM S3Object s WHERE s.id <= 600")
    want = [[n.lower(), c.upper(), n.strip(" "), n[1:4], n[1:4], n[2:], str(len(n)), str(len(n.strip(" ")))]
            for n, c in zip(df.name[:600], df.city[:600])]
    assert got == want
    # Characters, not bytes: 'São Paulo' is 9 characters.
    got = q("SELECT SUBSTRING(s.city, 1, 3), CHAR_LENGTH(s.city) FROM S3Object s WHERE s.city = 'São Paulo' LIMIT 1")
    assert got == [["São", "9"]]

    # Dates: TO_TIMESTAMP, CAST AS TIMESTAMP, EXTRACT, DATE_ADD, DATE_DIFF (ts2 - ts1).
    got = q("SELECT s.id, EXTRACT(YEAR FROM TO_TIMESTAMP(s.ts)), DATE_ADD(day, 30, TO_TIMESTAMP(s.ts)), "
            "DATE_DIFF(day, TO_TIMESTAMP(s.ts), TO_TIMESTAMP('2025-01-01T00:00:00Z')) "
            "FROM S3Object s WHERE s.id <= 300")
    ref = pd.Timestamp("2025-01-01T00:00:00Z")
    assert len(got) == 300
    for row, r in zip(got, df.head(300).itertuples()):
        assert row[0] == r.id
        assert int(row[1]) == r.ts_t.year
        assert parse_ts(row[2]) == r.ts_t + pd.Timedelta(days=30)
        assert int(row[3]) == (ref - r.ts_t).days
    got = q("SELECT s.id FROM S3Object s WHERE CAST(s.ts AS TIMESTAMP) < TO_TIMESTAMP('2020-01-01T00:00:00Z')")
    assert got == frame_rows(df[df.ts_t < pd.Timestamp("2020-01-01T00:00:00Z")], ["id"])
    got = q("SELECT s.id FROM S3Object s WHERE EXTRACT(YEAR FROM CAST(s.ts AS TIMESTAMP)) = 2021")
    assert got == frame_rows(df[df.ts_t.dt.year == 2021], ["id"])

    (now,) = q("SELECT UTCNOW() FROM S3Object s LIMIT 1")
    assert abs(parse_ts(now[0]) - pd.Timestamp.now(tz="UTC")) < pd.Timedelta(minutes=10)


def test_csv_case_coalesce_nullif(s3, bucket):
    put(s3, bucket, "people.csv", people_csv())
    df = people_df().head(800)
    got = csv_rows(select(
        s3, bucket, "people.csv",
        "SELECT s.id, CASE WHEN s.age < 30 THEN 'young' WHEN s.age < 60 THEN 'middle' ELSE 'senior' END, "
        # '' and NULL both end up as 'unknown' / empty, whichever an empty field is.
        "COALESCE(NULLIF(s.city, ''), 'unknown'), NULLIF(s.active, 'false'), "
        "CASE s.active WHEN 'true' THEN 1 ELSE 0 END AS flag "
        "FROM S3Object s WHERE s.id <= 800",
        CSV_IN,
    )[0])
    want = [[r.id, "young" if r.age_n < 30 else "middle" if r.age_n < 60 else "senior",
             r.city or "unknown", "" if r.active == "false" else r.active, "1" if r.active == "true" else "0"]
            for r in df.itertuples()]
    assert got == want


def test_csv_output_quoting_delimiters(s3, bucket):
    put(s3, bucket, "people.csv", people_csv())
    df = people_df()
    sql = "SELECT s.id, s.name, s.city FROM S3Object s WHERE s.city LIKE '_%' AND s.id <= 1500"
    sub = df[(df.city != "") & (df.id_n <= 1500)]
    want = frame_rows(sub, ["id", "name", "city"])

    # ASNEEDED (the default) with '|': fields holding '|' or '"' are quoted, plain ones not.
    out = select(s3, bucket, "people.csv", sql, CSV_IN,
                 {"CSV": {"QuoteFields": "ASNEEDED", "FieldDelimiter": "|"}})[0].decode()
    assert out.endswith("\n")
    lines = out[:-1].split("\n")
    assert len(lines) == len(want)
    for line, expected in zip(lines, want):
        fields = tokenize_line(line, "|", '"')
        assert [v for v, _ in fields] == expected, line
        for value, quoted in fields:
            if "|" in value or '"' in value:
                assert quoted, line
            if re.fullmatch(r"[A-Za-z0-9]+", value):
                assert not quoted, f"ASNEEDED quoted a plain field: {line!r}"
    assert any('"Lyon|Rhône"' in ln for ln in lines) and any('"The ""Big"" Apple"' in ln for ln in lines)

    # ALWAYS, with ';' between fields and "'" as the quote character.
    # (Cities with '"' left out: whether '"', the output's QuoteEscapeCharacter, is then itself
    # escaped is not said anywhere.)
    sql2 = "SELECT s.id, s.city FROM S3Object s WHERE s.city LIKE '_%' AND s.city NOT LIKE '%\"%' AND s.id <= 1500"
    out = select(s3, bucket, "people.csv", sql2, CSV_IN,
                 {"CSV": {"QuoteFields": "ALWAYS", "FieldDelimiter": ";", "QuoteCharacter": "'"}})[0].decode()
    lines = out.rstrip("\n").split("\n")
    want2 = frame_rows(sub[~sub.city.str.contains('"', regex=False)], ["id", "city"])
    assert len(lines) == len(want2)
    for line, expected in zip(lines, want2):
        fields = tokenize_line(line, ";", "'")
        assert [v for v, _ in fields] == expected and all(q for _, q in fields), line

    # A custom record delimiter (CRLF) with a tab between fields.
    out = select(s3, bucket, "people.csv", sql, CSV_IN,
                 {"CSV": {"FieldDelimiter": "\t", "RecordDelimiter": "\r\n"}})[0]
    assert out.endswith(b"\r\n") and out.count(b"\r\n") == len(want)
    assert csv_rows(out, delimiter="\t") == want

    # JSON output with a custom record delimiter.
    out = select(s3, bucket, "people.csv", sql, CSV_IN, {"JSON": {"RecordDelimiter": "\t"}})[0]
    got = json_records(out, delimiter="\t")
    assert got == [{"id": a, "name": b, "city": c} for a, b, c in want]


# ---------------------------------------------------------------------------------------------
# 2. CSV without a header, IGNORE, quoting, escapes, comments, record delimiters
# ---------------------------------------------------------------------------------------------


def test_csv_positional_columns_none_and_ignore(s3, bucket):
    put(s3, bucket, "nohdr.csv", people_csv(header=False))
    put(s3, bucket, "hdr.csv", people_csv(header=True))
    df = people_df()

    got = csv_rows(select(s3, bucket, "nohdr.csv",
                          "SELECT s._1, s._2, s._4 FROM S3Object s WHERE s._4 > 80 AND s._3 = 'Oslo'", CSV_NOHDR)[0])
    assert got == frame_rows(df[(df.age_n > 80) & (df.city == "Oslo")], ["id", "name", "age"])
    got = csv_rows(select(s3, bucket, "nohdr.csv", "SELECT _1, _6 FROM S3Object WHERE _1 <= 10", CSV_NOHDR)[0])
    assert got == frame_rows(df.head(10), ["id", "active"])

    # SELECT * as JSON with no header: the fields are _1, _2, ...
    got = json_records(select(s3, bucket, "nohdr.csv", "SELECT * FROM S3Object s LIMIT 50", CSV_NOHDR, JSON_OUT)[0])
    want = [{f"_{i + 1}": v for i, v in enumerate(row)} for row in people_rows()[:50]]
    assert [drop_empty(r) for r in got] == [drop_empty(r) for r in want]

    ignore = {"CSV": {"FileHeaderInfo": "IGNORE"}}
    # IGNORE skips the header line; NONE reads it as a record.
    assert csv_rows(select(s3, bucket, "hdr.csv", "SELECT COUNT(*) FROM S3Object", ignore)[0]) == [[str(N_PEOPLE)]]
    assert csv_rows(select(s3, bucket, "hdr.csv", "SELECT COUNT(*) FROM S3Object", CSV_NOHDR)[0]) == [[str(N_PEOPLE + 1)]]
    assert csv_rows(select(s3, bucket, "hdr.csv", "SELECT s._2 FROM S3Object s LIMIT 1", CSV_NOHDR)[0]) == [["name"]]
    got = csv_rows(select(s3, bucket, "hdr.csv", "SELECT s._1, s._3 FROM S3Object s WHERE s._2 LIKE 'Al%'", ignore)[0])
    assert got == frame_rows(df[df.name.map(like("Al%"))], ["id", "city"])


def test_csv_quotes_escapes_delimiter_and_comments(s3, bucket):
    texts, lines = [], ["#leading comment;with \"an unbalanced quote"]
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=";", lineterminator="\n")
    for i in range(1, 2001):
        text = [f"plain{i}", f"has;semicolon {i}", f'say "hi" {i}', f'both; "q" {i}', f"#not a comment {i}"][i % 5]
        texts.append((str(i), text, str(i * 3)))
        w.writerow(texts[-1])
        if i % 7 == 0:
            w.writerow([])  # placeholder, replaced below by a comment line
    for line in buf.getvalue().split("\n")[:-1]:
        lines.append(line if line else f'# comment {len(lines)};"x"')
    data = ("\n".join(lines) + "\n").encode()
    assert b'2;"say ""hi"" 2";6\n' in data and b'3;"both; ""q"" 3";9\n' in data and b'1;"has;semicolon 1";3\n' in data
    assert b"\n4;#not a comment 4;12\n" in data and data.startswith(b"#leading")
    put(s3, bucket, "q.csv", data)
    inp = {"CSV": {"FileHeaderInfo": "NONE", "FieldDelimiter": ";", "Comments": "#"}}

    got = csv_rows(select(s3, bucket, "q.csv", "SELECT s._1, s._2, s._3 FROM S3Object s", inp)[0])
    assert got == [list(t) for t in texts]
    got = csv_rows(select(s3, bucket, "q.csv", "SELECT COUNT(*) FROM S3Object", inp)[0])
    assert got == [["2000"]]
    got = csv_rows(select(s3, bucket, "q.csv", "SELECT s._2 FROM S3Object s WHERE s._2 LIKE '%;%' AND s._3 > 5000", inp)[0])
    assert got == [[t[1]] for t in texts if ";" in t[1] and int(t[2]) > 5000]
    got = csv_rows(select(s3, bucket, "q.csv", "SELECT s._1 FROM S3Object s WHERE s._2 LIKE '%\"hi\"%'", inp)[0])
    assert got == [[t[0]] for t in texts if '"hi"' in t[1]]


def test_csv_custom_quote_and_escape_characters(s3, bucket):
    lines, want = [], []
    for i in range(1, 1501):
        kind = i % 3
        if kind == 0:
            raw, text = f"'it\\'s {i}'", f"it's {i}"
        elif kind == 1:
            raw, text = f"'a, b {i}'", f"a, b {i}"
        else:
            raw, text = f"plain {i}", f"plain {i}"
        lines.append(f"{i},{raw},end{i}")
        want.append([str(i), text, f"end{i}"])
    put(s3, bucket, "sq.csv", ("\n".join(lines) + "\n").encode())
    inp = {"CSV": {"FileHeaderInfo": "NONE", "QuoteCharacter": "'", "QuoteEscapeCharacter": "\\"}}
    got = csv_rows(select(s3, bucket, "sq.csv", "SELECT * FROM S3Object", inp)[0])
    assert got == want
    got = csv_rows(select(s3, bucket, "sq.csv", "SELECT s._1 FROM S3Object s WHERE s._2 LIKE 'it''s%'", inp)[0])
    assert got == [[w[0]] for w in want if w[1].startswith("it's")]


def test_csv_quoted_record_delimiters_and_crlf(s3, bucket):
    # Quoted fields that hold the record delimiter, with AllowQuotedRecordDelimiter.
    rows = [(str(i), f"line one {i}\nline two" if i % 4 == 0 else f"single {i}", str(i % 10)) for i in range(1, 2001)]
    data = to_csv(rows, header=["id", "note", "d"])
    put(s3, bucket, "ml.csv", data)
    inp = {"CSV": {"FileHeaderInfo": "USE", "AllowQuotedRecordDelimiter": True}}
    got = json_records(select(s3, bucket, "ml.csv", "SELECT s.id, s.note FROM S3Object s WHERE s.d = '0'", inp, JSON_OUT)[0])
    assert got == [{"id": a, "note": b} for a, b, c in rows if c == "0"]
    # In CSV output, a value with a newline comes back quoted.
    got = csv_rows(select(s3, bucket, "ml.csv", "SELECT s.note, s.id FROM S3Object s", inp)[0])
    assert got == [[b, a] for a, b, _ in rows]

    # CRLF records.
    data = to_csv(people_rows(), lineterminator="\r\n")
    put(s3, bucket, "crlf.csv", data)
    inp = {"CSV": {"FileHeaderInfo": "USE", "RecordDelimiter": "\r\n"}}
    got = json_records(select(s3, bucket, "crlf.csv", 'SELECT s.id, s."Zip Code" AS z FROM S3Object s WHERE s.age > 80', inp, JSON_OUT)[0])
    df = people_df()
    sub = df[df.age_n > 80]
    assert got == [{"id": i, "z": z} for i, z in zip(sub.id, sub["Zip Code"])]
    got = csv_rows(select(s3, bucket, "crlf.csv", "SELECT * FROM S3Object", inp)[0])
    assert got == frame_rows(df, HEADER)


# ---------------------------------------------------------------------------------------------
# 3. Compressed CSV
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["GZIP", "BZIP2"])
def test_csv_compressed(s3, bucket, compression):
    raw = people_csv()
    body = gzip.compress(raw, mtime=0) if compression == "GZIP" else bz2.compress(raw)
    put(s3, bucket, "plain.csv", raw)
    put(s3, bucket, "packed.csv", body)
    inp = {"CSV": {"FileHeaderInfo": "USE"}, "CompressionType": compression}
    df = people_df()
    sql = "SELECT s.id, s.name, s.score FROM S3Object s WHERE s.city IN ('Berlin', 'Oslo') AND s.score > 50"
    payload, stats, _ = select(s3, bucket, "packed.csv", sql, inp)
    assert csv_rows(payload) == frame_rows(df[df.city.isin(["Berlin", "Oslo"]) & (df.score_n > 50)], ["id", "name", "score"])
    assert payload == select(s3, bucket, "plain.csv", sql, CSV_IN)[0]
    # Scanned: compressed object bytes; processed: uncompressed bytes.
    assert stats["BytesScanned"] == len(body) and stats["BytesProcessed"] == len(raw)
    assert csv_rows(select(s3, bucket, "packed.csv", "SELECT COUNT(*) FROM S3Object", inp)[0]) == [[str(N_PEOPLE)]]


# ---------------------------------------------------------------------------------------------
# 4. JSON
# ---------------------------------------------------------------------------------------------


def test_json_lines(s3, bucket):
    recs = json_docs()
    put(s3, bucket, "p.json", json_lines(recs))
    df = json_df(recs)

    def q(sql, out=JSON_OUT):
        return select(s3, bucket, "p.json", sql, JSON_LINES, out)[0]

    # SELECT * gives back each record (nested objects, arrays, null) as it was.
    got = json_records(q("SELECT * FROM S3Object s WHERE s.age > 85"))
    assert_records(got, [r for r in recs if r["age"] > 85])

    # Nested paths, booleans, aliases.
    got = json_records(q("SELECT s.id, s.address.zip AS zip, s.address.geo.lat AS lat, s.address.geo AS geo "
                         "FROM S3Object s WHERE s.address.geo.lat > 45 AND s.active = true"))
    want = [{"id": r["id"], "zip": r["address"]["zip"], "lat": r["address"]["geo"]["lat"], "geo": r["address"]["geo"]}
            for r in recs if r["address"]["geo"]["lat"] > 45 and r["active"]]
    assert want
    assert_records(got, want)

    # IS NULL matches an explicit null and a missing key; IS NOT NULL neither.
    got = json_records(q("SELECT s.id FROM S3Object s WHERE s.city IS NULL"))
    assert got == [{"id": r["id"]} for r in recs if r.get("city") is None]
    got = json_records(q("SELECT s.id FROM S3Object s WHERE s.city IS NOT NULL AND s.age < 20"))
    assert got == [{"id": r["id"]} for r in recs if r.get("city") is not None and r["age"] < 20]
    got = json_records(q("SELECT s.id, COALESCE(s.city, 'unknown') AS city FROM S3Object s WHERE s.id <= 300"))
    assert got == [{"id": r["id"], "city": r.get("city") or "unknown"} for r in recs[:300]]

    # CSV output of JSON input: numbers as text.
    got = csv_rows(q("SELECT s.id, s.name, s.score FROM S3Object s WHERE s.score >= 95 AND s.name LIKE 'A%'", CSV_OUT))
    sub = df[(df.score >= 95) & df.name.map(like("A%"))]
    assert len(got) == len(sub) > 0
    for row, r in zip(got, sub.itertuples()):
        assert int(row[0]) == r.id and row[1] == r.name and math.isclose(float(row[2]), r.score)

    got = json_records(q("SELECT s.name FROM S3Object s WHERE s.city IN ('Paris', 'Berlin') AND s.age BETWEEN 20 AND 30 LIMIT 5"))
    sub = df[df.city.isin(["Paris", "Berlin"]) & df.age.between(20, 30)].head(5)
    assert got == [{"name": n} for n in sub.name]

    # Aggregates over JSON.
    (agg,) = json_records(q("SELECT COUNT(*), SUM(s.age), MAX(s.score), MIN(s.address.zip) FROM S3Object s WHERE s.active = false"))
    sub = df[~df.active]
    assert agg["_1"] == len(sub) and agg["_2"] == int(sub.age.sum())
    assert math.isclose(agg["_3"], sub.score.max()) and agg["_4"] == sub["address.zip"].min()


def test_json_document_multiline_and_top_level_array(s3, bucket):
    recs = json_docs()[:1500]
    df = json_df(recs)
    want = [{"id": r["id"], "name": r["name"]} for r in recs if r["age"] < 25]
    assert want

    # Several pretty-printed (multi-line) top-level objects.
    put(s3, bucket, "doc.json", "\n".join(json.dumps(r, indent=2, ensure_ascii=False) for r in recs).encode())
    got = json_records(select(s3, bucket, "doc.json", "SELECT s.id, s.name FROM S3Object s WHERE s.age < 25", JSON_DOC, JSON_OUT)[0])
    assert got == want
    got = csv_rows(select(s3, bucket, "doc.json", "SELECT COUNT(*) FROM S3Object", JSON_DOC)[0])
    assert got == [[str(len(recs))]]

    # One top-level array, its elements read with S3Object[*].
    put(s3, bucket, "arr.json", json.dumps(list(recs), indent=1, ensure_ascii=False).encode())
    got = json_records(select(s3, bucket, "arr.json",
                              "SELECT s.id, s.address.zip AS zip FROM S3Object[*] s WHERE s.age < 25", JSON_DOC, JSON_OUT)[0])
    sub = df[df.age < 25]
    assert got == [{"id": i, "zip": z} for i, z in zip(sub.id, sub["address.zip"])]
    got = json_records(select(s3, bucket, "arr.json", "SELECT * FROM S3Object[*] s WHERE s.id <= 20", JSON_DOC, JSON_OUT)[0])
    assert_records(got, list(recs[:20]))


def test_json_gzip(s3, bucket):
    recs = json_docs()
    raw = json_lines(recs)
    body = gzip.compress(raw, mtime=0)
    put(s3, bucket, "p.json.gz", body)
    put(s3, bucket, "doc.json.gz", gzip.compress(json.dumps(list(recs[:500]), indent=2).encode(), mtime=0))
    sql = "SELECT s.id, s.address.geo.lon AS lon FROM S3Object s WHERE s.address.geo.lon < -150"
    payload, stats, _ = select(s3, bucket, "p.json.gz", sql, {"JSON": {"Type": "LINES"}, "CompressionType": "GZIP"}, JSON_OUT)
    want = [{"id": r["id"], "lon": r["address"]["geo"]["lon"]} for r in recs if r["address"]["geo"]["lon"] < -150]
    assert want
    assert_records(json_records(payload), want)
    assert stats["BytesScanned"] == len(body) and stats["BytesProcessed"] == len(raw)
    got = json_records(select(s3, bucket, "doc.json.gz", "SELECT s.id FROM S3Object[*] s WHERE s.age = 33",
                              {"JSON": {"Type": "DOCUMENT"}, "CompressionType": "GZIP"}, JSON_OUT)[0])
    assert got == [{"id": r["id"]} for r in recs[:500] if r["age"] == 33]


# ---------------------------------------------------------------------------------------------
# 5./6. Parquet, aggregates
# ---------------------------------------------------------------------------------------------


def test_parquet_projection_where_and_types(s3, bucket):
    data = parquet_data()
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == N_PARQUET // 500
    put(s3, bucket, "t.parquet", data)
    df = parquet_df()

    def q(sql, out=JSON_OUT):
        return select(s3, bucket, "t.parquet", sql, PARQUET, out)[0]

    got = json_records(q("SELECT s.id, s.name, s.score FROM S3Object s WHERE s.qty > 50 AND s.active = true"))
    sub = df[(df.qty > 50).fillna(False) & df.active]
    assert_records([drop_null(r) for r in got], parquet_expected_json(sub, ["id", "name", "score"]))

    # Nulls: IS NULL, and a NULL never passes a comparison.
    got = json_records(q("SELECT s.id FROM S3Object s WHERE s.name IS NULL"))
    assert got == [{"id": i} for i in df.id[df.name.isna()]]
    got = json_records(q("SELECT s.id FROM S3Object s WHERE s.score IS NOT NULL AND s.qty IS NULL"))
    assert got == [{"id": i} for i in df.id[df.score.notna() & df.qty.isna()]]
    got = json_records(q("SELECT s.id FROM S3Object s WHERE s.score < 1 OR s.score > 99"))
    assert got == [{"id": i} for i in df.id[((df.score < 1) | (df.score > 99)).fillna(False)]]

    # Timestamps, strings, LIKE, a selective query hitting one row.
    got = json_records(q("SELECT s.id, s.ts FROM S3Object s WHERE EXTRACT(YEAR FROM s.ts) = 2021 AND s.city LIKE 'P%'"))
    sub = df[(df.ts.dt.year == 2021) & df.city.map(like("P%"))]
    assert [normalize_parquet_json(r) for r in got] == parquet_expected_json(sub, ["id", "ts"])
    assert json_records(q("SELECT s.name, s.qty FROM S3Object s WHERE s.id = 1234")) == [
        drop_null({"name": df.name[1234], "qty": int(df.qty[1234])})]

    # SELECT * over a range that spans two row groups.
    got = json_records(q("SELECT * FROM S3Object s WHERE s.id BETWEEN 490 AND 520"))
    sub = df[df.id.between(490, 520)]
    assert_records([normalize_parquet_json(r) for r in got], parquet_expected_json(sub, df.columns))

    # CSV output: numbers as text, NULL as an empty field, booleans as true/false.
    got = csv_rows(q("SELECT s.id, s.score, s.active, s.qty FROM S3Object s WHERE s.id < 60", CSV_OUT))
    assert len(got) == 60
    for row, r in zip(got, df.head(60).itertuples()):
        assert int(row[0]) == r.id
        assert (row[1] == "") if pd.isna(r.score) else math.isclose(float(row[1]), r.score)
        assert row[2].lower() == str(bool(r.active)).lower()
        assert (row[3] == "") if pd.isna(r.qty) else int(row[3]) == r.qty


def test_aggregates_csv_and_parquet(s3, bucket):
    put(s3, bucket, "people.csv", people_csv())
    put(s3, bucket, "t.parquet", parquet_data())
    df = people_df()

    sql = ("SELECT COUNT(*), SUM(CAST(s.age AS INT)), AVG(CAST(s.score AS FLOAT)), MIN(CAST(s.age AS INT)), "
           "MAX(CAST(s.score AS FLOAT)), COUNT(s.id), MIN(s.name), MAX(s.name) FROM S3Object s WHERE s.city = 'Paris'")
    sub = df[df.city == "Paris"]
    (row,) = csv_rows(select(s3, bucket, "people.csv", sql, CSV_IN)[0])
    assert int(row[0]) == len(sub) and int(row[1]) == sub.age_n.sum() and int(row[3]) == sub.age_n.min()
    assert math.isclose(float(row[2]), sub.score_n.mean(), rel_tol=1e-9)
    assert math.isclose(float(row[4]), sub.score_n.max()) and int(row[5]) == len(sub)
    assert row[6] == min(sub.name) and row[7] == max(sub.name)
    (rec,) = json_records(select(s3, bucket, "people.csv", sql, CSV_IN, JSON_OUT)[0])
    assert sorted(rec) == [f"_{i}" for i in range(1, 9)]
    assert rec["_1"] == len(sub) and rec["_2"] == sub.age_n.sum() and math.isclose(rec["_3"], sub.score_n.mean())

    assert csv_rows(select(s3, bucket, "people.csv", "SELECT COUNT(*) FROM S3Object", CSV_IN)[0]) == [[str(N_PEOPLE)]]
    (row,) = csv_rows(select(s3, bucket, "people.csv", "SELECT COUNT(*) AS n, SUM(CAST(s.age AS INT)) FROM S3Object s WHERE s.age > 1000", CSV_IN)[0])
    assert row == ["0", ""]  # SUM of no rows is NULL

    pdf = parquet_df()
    psub = pdf[pdf.active]
    sql = ("SELECT COUNT(*), COUNT(s.score), SUM(s.qty), AVG(s.score), MIN(s.score), MAX(s.qty), "
           "MIN(s.id), MAX(s.id) FROM S3Object s WHERE s.active = true")
    (rec,) = json_records(select(s3, bucket, "t.parquet", sql, PARQUET, JSON_OUT)[0])
    assert rec["_1"] == len(psub) and rec["_2"] == int(psub.score.notna().sum())
    assert rec["_3"] == int(psub.qty.sum()) and math.isclose(rec["_4"], psub.score.mean(), rel_tol=1e-9)
    assert math.isclose(rec["_5"], psub.score.min()) and rec["_6"] == int(psub.qty.max())
    assert rec["_7"] == int(psub.id.min()) and rec["_8"] == int(psub.id.max())
    (row,) = csv_rows(select(s3, bucket, "t.parquet", "SELECT COUNT(*), AVG(s.qty) FROM S3Object s", PARQUET)[0])
    assert int(row[0]) == len(pdf) and math.isclose(float(row[1]), pdf.qty.mean(), rel_tol=1e-9)


def test_parquet_column_and_row_group_pruning(s3, bucket):
    n, groups, ncols = 20000, 10, 16
    rng = random.Random(77)
    cols = {"id": pa.array(range(n), pa.int64())}
    for c in range(ncols):
        cols[f"c{c}"] = pa.array([rng.random() for _ in range(n)], pa.float64())
    cols["txt"] = pa.array([f"row-{i}-{rng.randrange(10**9)}" for i in range(n)], pa.string())
    table = pa.table(cols)
    data = parquet_bytes(table, row_group_size=n // groups, compression="zstd")
    size = len(data)
    put(s3, bucket, "wide.parquet", data)

    def scanned(sql, want):
        payload, stats, _ = select(s3, bucket, "wide.parquet", sql, PARQUET, JSON_OUT)
        assert_records(json_records(payload), want)
        assert stats["BytesReturned"] == len(payload)
        return stats["BytesScanned"]

    c3 = table.column("c3").to_pylist()
    both = scanned("SELECT s.c3 FROM S3Object s WHERE s.id < 100", [{"c3": v} for v in c3[:100]])
    column_only = scanned("SELECT s.c3 FROM S3Object s", [{"c3": v} for v in c3])
    rows_only = scanned("SELECT * FROM S3Object s WHERE s.id < 100", table.slice(0, 100).to_pylist())
    # One float column of 18 is ~1/18 of the object, one row group of 10 is ~1/10, both ~1/180.
    assert 0 < both < size * 0.08, (both, size)
    assert column_only < size * 0.25, (column_only, size)
    assert rows_only < size * 0.3, (rows_only, size)
    assert both < column_only and both < rows_only


# ---------------------------------------------------------------------------------------------
# 7. ScanRange
# ---------------------------------------------------------------------------------------------


def _split_points(data: bytes, record_starts: list[int]) -> list[int]:
    """Three split points: two inside records, one right at a record's first byte."""
    starts = set(record_starts)
    points = []
    for frac, at_start in ((0.23, False), (0.5, True), (0.77, False)):
        p = int(len(data) * frac)
        if at_start:
            p = min(s for s in record_starts if s >= p)
        else:
            while p in starts or (p - 1) in starts:
                p += 1
        points.append(p)
    return points


def _ranges(points: list[int]) -> list[dict]:
    bounds = [0, *points]
    ranges = [{"Start": a, "End": b - 1} for a, b in zip(bounds, bounds[1:])]
    return ranges + [{"Start": points[-1]}]  # the last one runs to the end of the object


def _line_starts(data: bytes) -> list[int]:
    return [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A and i + 1 < len(data)]


def test_scan_range_csv_and_json_lines(s3, bucket):
    csv_data = people_csv(header=False)
    put(s3, bucket, "r.csv", csv_data)
    sql = "SELECT s._1, s._2, s._5 FROM S3Object s WHERE s._4 > 40"
    full = select(s3, bucket, "r.csv", sql, CSV_NOHDR)[0]
    df = people_df()
    assert csv_rows(full) == frame_rows(df[df.age_n > 40], ["id", "name", "score"])
    starts = _line_starts(csv_data)
    parts = []
    for rng_ in _ranges(_split_points(csv_data, starts)):
        parts.append(select(s3, bucket, "r.csv", sql, CSV_NOHDR, ScanRange=rng_)[0])
        # Each part holds exactly the records whose first byte is in its range.
        lo, hi = rng_["Start"], rng_.get("End", len(csv_data) - 1)
        ids = [i + 1 for i, s in enumerate(starts) if lo <= s <= hi]
        assert [int(r[0]) for r in csv_rows(parts[-1])] == [i for i in ids if int(df.age[i - 1]) > 40]
    assert all(parts) and b"".join(parts) == full

    recs = json_docs()
    jdata = json_lines(recs)
    put(s3, bucket, "r.json", jdata)
    sql = "SELECT s.id, s.name FROM S3Object s WHERE s.age > 40"
    full = select(s3, bucket, "r.json", sql, JSON_LINES, JSON_OUT)[0]
    assert json_records(full) == [{"id": r["id"], "name": r["name"]} for r in recs if r["age"] > 40]
    parts = [select(s3, bucket, "r.json", sql, JSON_LINES, JSON_OUT, ScanRange=r)[0]
             for r in _ranges(_split_points(jdata, _line_starts(jdata)))]
    assert all(parts) and b"".join(parts) == full

    # A range that holds no record's first byte returns no record.
    s = starts[100]
    payload, stats, events = select(s3, bucket, "r.csv", "SELECT * FROM S3Object", CSV_NOHDR,
                                    ScanRange={"Start": s + 1, "End": s + 5})
    assert payload == b"" and event_kinds(events)[-1] == "End"


def test_scan_range_parquet_row_groups(s3, bucket):
    data = parquet_data()
    put(s3, bucket, "t.parquet", data)
    starts = row_group_starts(data)
    assert len(starts) == N_PARQUET // 500 and starts == sorted(starts)
    sql = "SELECT s.id FROM S3Object s"
    # Split in the middle of row groups 3, 4 and 11: each row group's first byte is in one range.
    points = [(starts[i] + starts[i + 1]) // 2 for i in (3, 4, 11)]
    total = []
    for r in _ranges(points):
        got = [rec["id"] for rec in json_records(select(s3, bucket, "t.parquet", sql, PARQUET, JSON_OUT, ScanRange=r)[0])]
        lo, hi = r["Start"], r.get("End", len(data) - 1)
        groups = [g for g, s in enumerate(starts) if lo <= s <= hi]
        assert got == [i for g in groups for i in range(g * 500, (g + 1) * 500)], (r, groups)
        total += got
    assert total == list(range(N_PARQUET))
    # A range inside one row group (no row group's first byte in it) returns nothing.
    mid = (starts[3] + starts[4]) // 2
    payload = select(s3, bucket, "t.parquet", sql, PARQUET, JSON_OUT, ScanRange={"Start": mid - 50, "End": mid + 50})[0]
    assert payload == b""


# ---------------------------------------------------------------------------------------------
# 8. Events
# ---------------------------------------------------------------------------------------------


def test_events_stats_progress_and_end(s3, bucket):
    data = people_csv()
    put(s3, bucket, "people.csv", data)
    sql = "SELECT * FROM S3Object s"

    payload, stats, events = select(s3, bucket, "people.csv", sql, CSV_IN)
    kinds = event_kinds(events)
    assert kinds[-1] == "End" and kinds.count("End") == 1
    assert kinds.count("Stats") == 1 and "Progress" not in kinds
    assert set(kinds) <= {"Records", "Stats", "Cont", "End"}
    assert stats["BytesReturned"] == len(payload) > 0
    # A full scan of an uncompressed object scans and processes all of it.
    assert stats["BytesScanned"] == len(data) and stats["BytesProcessed"] == len(data)
    assert csv_rows(payload) == frame_rows(people_df(), HEADER)

    payload2, stats2, events2 = select(s3, bucket, "people.csv", sql, CSV_IN, RequestProgress={"Enabled": True})
    kinds2 = event_kinds(events2)
    assert kinds2[-1] == "End" and kinds2.count("Stats") == 1 and payload2 == payload
    progress = [e["Progress"]["Details"] for e in events2 if "Progress" in e]
    assert progress, kinds2
    assert kinds2.index("Progress") < kinds2.index("Stats")
    for key in ("BytesScanned", "BytesProcessed", "BytesReturned"):
        values = [p[key] for p in progress]
        assert values == sorted(values) and values[-1] <= stats2[key], (key, values, stats2)
    assert stats2 == stats

    _, _, events3 = select(s3, bucket, "people.csv", sql, CSV_IN, RequestProgress={"Enabled": False})
    assert "Progress" not in event_kinds(events3)

    # No match: no Records, BytesReturned 0, Stats then End.
    payload, stats, events = select(s3, bucket, "people.csv", "SELECT s.id FROM S3Object s WHERE s.age > 1000", CSV_IN)
    kinds = event_kinds(events)
    assert payload == b"" and stats["BytesReturned"] == 0 and kinds[-1] == "End" and "Stats" in kinds

    # Several queries with BytesReturned == the records' bytes, in every output format.
    for sql, out in [("SELECT s.name FROM S3Object s WHERE s.age < 20", JSON_OUT),
                     ("SELECT COUNT(*) FROM S3Object", CSV_OUT),
                     ("SELECT s.id FROM S3Object s LIMIT 3", {"CSV": {"QuoteFields": "ALWAYS"}})]:
        payload, stats, events = select(s3, bucket, "people.csv", sql, CSV_IN, out)
        assert stats["BytesReturned"] == len(payload) > 0 and event_kinds(events)[-1] == "End"


# ---------------------------------------------------------------------------------------------
# 9. Encrypted objects
# ---------------------------------------------------------------------------------------------


def test_select_on_sse_s3_and_sse_c_objects(s3, bucket):
    data = people_csv()
    put(s3, bucket, "plain.csv", data)
    put(s3, bucket, "sse-s3.csv", data, ServerSideEncryption="AES256")
    etag = put(s3, bucket, "sse-c.csv", data, **SSE_C)
    df = people_df()
    sql = "SELECT s.id, s.name FROM S3Object s WHERE s.age > 75 AND s.city LIKE '%o%'"
    want = frame_rows(df[(df.age_n > 75) & df.city.map(like("%o%"))], ["id", "name"])
    plain = select(s3, bucket, "plain.csv", sql, CSV_IN)[0]
    assert csv_rows(plain) == want
    assert select(s3, bucket, "sse-s3.csv", sql, CSV_IN)[0] == plain
    payload, stats, _ = select(s3, bucket, "sse-c.csv", sql, CSV_IN, **SSE_C)
    assert payload == plain and stats["BytesScanned"] == len(data)

    # Like GetObject: without the key, or with another key, the select is refused.
    select_error(s3, bucket, "sse-c.csv", sql, CSV_IN, accept=("InvalidRequest", "AccessDenied", "InvalidArgument"))
    select_error(s3, bucket, "sse-c.csv", sql, CSV_IN, accept=("AccessDenied", "InvalidRequest", "InvalidArgument"),
                 SSECustomerAlgorithm="AES256", SSECustomerKey="another-key-of-32-bytes-length!!")
    assert_unchanged(s3, bucket, "sse-c.csv", data, etag, **SSE_C)

    # Parquet reads (footer, then column chunks) on encrypted objects.
    pdata = parquet_data()
    put(s3, bucket, "sse-c.parquet", pdata, **SSE_C)
    put(s3, bucket, "sse-s3.parquet", pdata, ServerSideEncryption="AES256")
    pdf = parquet_df()
    sql = "SELECT s.id, s.qty FROM S3Object s WHERE s.id >= 1400 AND s.id < 1700"
    want = parquet_expected_json(pdf[(pdf.id >= 1400) & (pdf.id < 1700)], ["id", "qty"])
    got = json_records(select(s3, bucket, "sse-c.parquet", sql, PARQUET, JSON_OUT, **SSE_C)[0])
    assert [drop_null(r) for r in got] == want
    got = json_records(select(s3, bucket, "sse-s3.parquet", sql, PARQUET, JSON_OUT)[0])
    assert [drop_null(r) for r in got] == want
    select_error(s3, bucket, "sse-c.parquet", sql, PARQUET, JSON_OUT, accept=("InvalidRequest", "AccessDenied", "InvalidArgument"))


# ---------------------------------------------------------------------------------------------
# 10. minio-py
# ---------------------------------------------------------------------------------------------


def _minio(basalt) -> Minio:
    return Minio(basalt.host_port, access_key=basalt.access_key, secret_key=basalt.secret_key,
                 secure=False, region=basalt.region)


def _minio_select(client, bucket, key, request):
    with client.select_object_content(bucket, key, request) as result:
        data = b"".join(result.stream())
        stats = result.stats()
    return data, stats


def test_minio_select_csv_json_parquet(basalt, s3, bucket):
    client = _minio(basalt)
    put(s3, bucket, "people.csv", people_csv())
    put(s3, bucket, "people.csv.gz", gzip.compress(people_csv(), mtime=0))
    recs = json_docs()
    put(s3, bucket, "p.json", json_lines(recs))
    put(s3, bucket, "t.parquet", parquet_data())
    df = people_df()

    data, stats = _minio_select(client, bucket, "people.csv", SelectRequest(
        "SELECT s.id, s.name FROM S3Object s WHERE s.age > 70 AND s.city = 'Tokyo'",
        CSVInputSerialization(file_header_info="USE"), CSVOutputSerialization(), request_progress=True))
    assert csv_rows(data) == frame_rows(df[(df.age_n > 70) & (df.city == "Tokyo")], ["id", "name"])
    assert stats is not None and int(stats.bytes_returned) == len(data)
    assert int(stats.bytes_scanned) == int(stats.bytes_processed) == len(people_csv())

    data, _ = _minio_select(client, bucket, "people.csv.gz", SelectRequest(
        "SELECT COUNT(*) FROM S3Object", CSVInputSerialization(compression_type="GZIP", file_header_info="USE"),
        JSONOutputSerialization()))
    assert json_records(data) == [{"_1": N_PEOPLE}]

    data, _ = _minio_select(client, bucket, "people.csv", SelectRequest(
        "SELECT s.id, s.city FROM S3Object s WHERE s.id <= 200 AND s.city LIKE '_%'",
        CSVInputSerialization(file_header_info="USE"),
        CSVOutputSerialization(field_delimiter=";", quote_fields="ALWAYS")))
    assert csv_rows(data, delimiter=";") == frame_rows(df[(df.id_n <= 200) & (df.city != "")], ["id", "city"])

    data, _ = _minio_select(client, bucket, "p.json", SelectRequest(
        "SELECT s.id, s.address.zip AS zip FROM S3Object s WHERE s.score < 5",
        JSONInputSerialization(json_type="LINES"), JSONOutputSerialization()))
    assert json_records(data) == [{"id": r["id"], "zip": r["address"]["zip"]} for r in recs if r["score"] < 5]

    pdf = parquet_df()
    data, stats = _minio_select(client, bucket, "t.parquet", SelectRequest(
        "SELECT s.id, s.score FROM S3Object s WHERE s.id >= 7500 AND s.score > 50",
        ParquetInputSerialization(), JSONOutputSerialization()))
    want = parquet_expected_json(pdf[(pdf.id >= 7500) & (pdf.score > 50).fillna(False)], ["id", "score"])
    assert_records(json_records(data), want)
    assert int(stats.bytes_returned) == len(data)


# ---------------------------------------------------------------------------------------------
# 11. Arrow output (Basalt extension)
# ---------------------------------------------------------------------------------------------


def _arrow_client(basalt):
    client = basalt.client()
    client.meta.events.register(
        "before-sign.s3.SelectObjectContent",
        lambda request, **kw: request.headers.__setitem__("x-basalt-output-format", "arrow"),
    )
    return client


def _arrow_select(client, bucket, key, sql, input_ser, output_ser=CSV_OUT, **kw) -> pa.Table:
    payload, stats, events = select(client, bucket, key, sql, input_ser, output_ser, **kw)
    assert event_kinds(events)[-1] == "End" and stats["BytesReturned"] == len(payload)
    return paipc.open_stream(pa.BufferReader(payload)).read_all()


def test_arrow_output_from_csv_and_parquet(basalt, s3, bucket):
    arrow = _arrow_client(basalt)
    put(s3, bucket, "people.csv", people_csv())
    put(s3, bucket, "t.parquet", parquet_data())
    df = people_df()

    table = _arrow_select(arrow, bucket, "people.csv",
                          "SELECT s.id, s.name, CAST(s.age AS INT) AS age, UPPER(s.city) FROM S3Object s WHERE s.city = 'Paris'",
                          CSV_IN)
    sub = df[df.city == "Paris"]
    assert table.column_names == ["id", "name", "age", "_4"]
    assert table.column("id").to_pylist() == list(sub.id)
    assert table.column("name").to_pylist() == list(sub.name)
    assert table.column("age").to_pylist() == [int(a) for a in sub.age_n]
    assert table.column("_4").to_pylist() == [c.upper() for c in sub.city]
    # OutputSerialization is ignored with the Arrow header, JSON as well as CSV.
    again = _arrow_select(arrow, bucket, "people.csv",
                          "SELECT s.id, s.name, CAST(s.age AS INT) AS age, UPPER(s.city) FROM S3Object s WHERE s.city = 'Paris'",
                          CSV_IN, JSON_OUT)
    assert again.to_pylist() == table.to_pylist()
    # A client without the header still gets CSV.
    assert csv_rows(select(s3, bucket, "people.csv", "SELECT s.id FROM S3Object s LIMIT 2", CSV_IN)[0]) == [["1"], ["2"]]

    pt = parquet_table()
    table = _arrow_select(arrow, bucket, "t.parquet",
                          "SELECT s.id, s.name, s.score, s.active, UPPER(s.name) FROM S3Object s WHERE s.id >= 700 AND s.id < 2100",
                          PARQUET)
    mask = pc.and_(pc.greater_equal(pt["id"], 700), pc.less(pt["id"], 2100))
    want = pt.filter(mask)
    assert table.column_names == ["id", "name", "score", "active", "_5"]
    for c in ("id", "name", "score", "active"):
        assert table.column(c).to_pylist() == want.column(c).to_pylist(), c
    assert table.column("_5").to_pylist() == [None if v is None else v.upper() for v in want.column("name").to_pylist()]

    # SELECT * keeps every column and row.
    table = _arrow_select(arrow, bucket, "t.parquet", "SELECT * FROM S3Object", PARQUET, JSON_OUT)
    assert table.column_names == pt.column_names and table.num_rows == pt.num_rows
    for c in pt.column_names:
        got, exp = table.column(c).to_pylist(), pt.column(c).to_pylist()
        if c == "ts":
            got, exp = [parse_ts(v) for v in got], [parse_ts(v) for v in exp]
        assert got == exp, c


# ---------------------------------------------------------------------------------------------
# 12. Errors
# ---------------------------------------------------------------------------------------------


def _parse_error(code: str) -> bool:
    return code.startswith("Parse") or code == "UnsupportedSyntax"


MALFORMED_SQL = [
    "SELECT FROM S3Object",
    "SELECT * FROM",
    "SELECT * FROM S3Object s WHERE",
    "SELEC * FROM S3Object",
    "SELECT * FROM S3Object s WHERE (s.age > 1",
    "SELECT * FROM S3Object s WHERE s.name = 'unterminated",
    "SELECT * FROM S3Object s LIMIT ten",
    "SELECT s.id,, s.name FROM S3Object s",
    "SELECT s.id FROM S3Object s WHERE s.age >",
]


@pytest.mark.parametrize("sql", MALFORMED_SQL)
def test_malformed_sql(s3, bucket, sql):
    data = people_csv()
    etag = put(s3, bucket, "people.csv", data)
    select_error(s3, bucket, "people.csv", sql, CSV_IN, accept=_parse_error)
    assert_unchanged(s3, bucket, "people.csv", data, etag)


def _rows_then(bad: bytes, n: int = 500) -> bytes:
    return b"id,name\n" + b"".join(b"%d,name%d\n" % (i, i) for i in range(n)) + bad


def _json_then(bad: bytes, n: int = 500) -> bytes:
    return b"".join(b'{"id": %d, "name": "n%d"}\n' % (i, i) for i in range(n)) + bad


BIG = b"y" * (MiB + MiB // 2)
COMPRESSED_FORMAT_ERRORS = ("InvalidCompressionFormat", "CSVParsingError", "JSONParsingError")
ERROR_CASES = [
    # name, body, sql, input serialization, accepted codes
    ("unknown-function", people_csv(), "SELECT NO_SUCH_FUNCTION(s.name) FROM S3Object s", CSV_IN, ("UnsupportedFunction",)),
    ("bad-cast", people_csv(), "SELECT CAST(s.name AS INT) FROM S3Object s", CSV_IN, ("CastFailed",)),
    ("bad-cast-where", people_csv(), "SELECT s.id FROM S3Object s WHERE CAST(s.city AS FLOAT) > 1", CSV_IN, ("CastFailed",)),
    ("csv-unterminated-quote", _rows_then(b'9999,"unterminated\n'), "SELECT * FROM S3Object", CSV_IN, ("CSVParsingError",)),
    ("json-malformed", _json_then(b'{"id": 9999, "name": }\n' + _json_then(b"", 10)), "SELECT * FROM S3Object",
     JSON_LINES, ("JSONParsingError",)),
    ("json-truncated-document", b'[{"id": 1}, {"id": 2}, {"id": ', "SELECT * FROM S3Object[*]", JSON_DOC, ("JSONParsingError",)),
    ("not-parquet", people_csv(), "SELECT * FROM S3Object", PARQUET, ("ParquetParsingError",)),
    ("truncated-parquet", parquet_data()[: len(parquet_data()) // 2], "SELECT * FROM S3Object", PARQUET, ("ParquetParsingError",)),
    ("csv-record-over-1MiB", _rows_then(b"9999," + BIG + b"\n1,x\n"), "SELECT * FROM S3Object", CSV_IN, ("OverMaxRecordSize",)),
    ("json-record-over-1MiB", _json_then(b'{"id": 9999, "blob": "' + BIG + b'"}\n'), "SELECT s.id FROM S3Object s",
     JSON_LINES, ("OverMaxRecordSize",)),
    ("gzip-flag-on-plain-csv", people_csv(), "SELECT * FROM S3Object",
     {"CSV": {"FileHeaderInfo": "USE"}, "CompressionType": "GZIP"}, COMPRESSED_FORMAT_ERRORS),
    ("bzip2-flag-on-plain-json", json_lines(json_docs()[:500]), "SELECT * FROM S3Object",
     {"JSON": {"Type": "LINES"}, "CompressionType": "BZIP2"}, COMPRESSED_FORMAT_ERRORS),
    ("gzip-parquet", parquet_data(), "SELECT * FROM S3Object",
     {"Parquet": {}, "CompressionType": "GZIP"}, ("InvalidRequestParameter", "ObjectSerializationConflict")),
]


@pytest.mark.parametrize("name,body,sql,input_ser,codes", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_select_errors(s3, bucket, name, body, sql, input_ser, codes):
    etag = put(s3, bucket, "obj", body)
    select_error(s3, bucket, "obj", sql, input_ser, JSON_OUT, accept=codes)
    assert_unchanged(s3, bucket, "obj", body, etag)
    # The server still answers selects.
    put(s3, bucket, "ok.csv", b"a,b\n1,2\n3,4\n")
    assert csv_rows(select(s3, bucket, "ok.csv", "SELECT s.b FROM S3Object s WHERE s.a = '3'", CSV_IN)[0]) == [["4"]]


def test_select_missing_key(s3, bucket):
    select_error(s3, bucket, "no-such-key.csv", "SELECT * FROM S3Object", CSV_IN, accept=("NoSuchKey",))
    put(s3, bucket, "there.csv", people_csv())
    assert csv_rows(select(s3, bucket, "there.csv", "SELECT COUNT(*) FROM S3Object", CSV_IN)[0]) == [[str(N_PEOPLE)]]
