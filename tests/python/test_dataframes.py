"""Dataframe ecosystem round trips through Basalt: s3fs/pandas, pyarrow, polars."""

from __future__ import annotations

import re

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import s3fs


@pytest.fixture
def storage_options(basalt):
    """fsspec/s3fs storage options for pandas."""
    return {
        "key": basalt.access_key,
        "secret": basalt.secret_key,
        "client_kwargs": {"endpoint_url": basalt.endpoint, "region_name": basalt.region},
        "config_kwargs": {"s3": {"addressing_style": "path"}},
        # Each test has its own bucket; never serve stale listings.
        "use_listings_cache": False,
        "skip_instance_cache": True,
    }


@pytest.fixture
def fs(storage_options):
    return s3fs.S3FileSystem(**storage_options)


def _sample_frame(n: int = 500) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": pd.array(range(n), dtype="int64"),
            "name": [f"name-{i}" for i in range(n)],
            "score": [i * 0.5 for i in range(n)],
            "flag": [i % 3 == 0 for i in range(n)],
        }
    )


def test_s3fs_basic(fs, s3, bucket):
    fs.pipe(f"{bucket}/dir/a.txt", b"alpha")
    fs.pipe(f"{bucket}/dir/sub/b.txt", b"bravo")
    assert fs.cat(f"{bucket}/dir/a.txt") == b"alpha"
    assert fs.exists(f"{bucket}/dir/sub/b.txt")
    assert not fs.exists(f"{bucket}/dir/missing.txt")
    assert sorted(fs.ls(f"{bucket}/dir", detail=False)) == [f"{bucket}/dir/a.txt", f"{bucket}/dir/sub"]
    assert sorted(fs.find(f"{bucket}/dir")) == [f"{bucket}/dir/a.txt", f"{bucket}/dir/sub/b.txt"]
    info = fs.info(f"{bucket}/dir/a.txt")
    assert info["size"] == 5
    # Partial read through the file interface (ranged GET).
    with fs.open(f"{bucket}/dir/sub/b.txt", "rb") as f:
        f.seek(2)
        assert f.read(2) == b"av"
    fs.rm(f"{bucket}/dir/a.txt")
    assert not fs.exists(f"{bucket}/dir/a.txt")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1
    with pytest.raises(FileNotFoundError):
        fs.cat(f"{bucket}/dir/a.txt")


def test_s3fs_large_write_multipart(fs, s3, bucket):
    # s3fs flushes in blocks; a file larger than block_size is uploaded as multipart.
    data = bytes(range(256)) * (12 * 1024 * 1024 // 256)
    with fs.open(f"{bucket}/big.bin", "wb", block_size=5 * 1024 * 1024) as f:
        f.write(data)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(data)
    assert re.search(r'-[0-9]+"$', head["ETag"]), head["ETag"]  # multipart ETag
    assert fs.cat(f"{bucket}/big.bin") == data


def test_pandas_csv_roundtrip(storage_options, bucket):
    df = _sample_frame()
    url = f"s3://{bucket}/tables/sample.csv"
    df.to_csv(url, index=False, storage_options=storage_options)
    back = pd.read_csv(url, storage_options=storage_options)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert list(back.columns) == ["id", "name", "score", "flag"]
    assert len(back) == len(df)


def test_pandas_parquet_roundtrip(storage_options, bucket):
    df = _sample_frame()
    url = f"s3://{bucket}/tables/sample.parquet"
    df.to_parquet(url, index=False, engine="pyarrow", storage_options=storage_options)
    back = pd.read_parquet(url, engine="pyarrow", storage_options=storage_options)
    pd.testing.assert_frame_equal(back, df)


def test_pandas_read_missing_raises(storage_options, bucket):
    with pytest.raises(FileNotFoundError):
        pd.read_csv(f"s3://{bucket}/does-not-exist.csv", storage_options=storage_options)


@pytest.fixture
def arrow_fs(basalt):
    return pafs.S3FileSystem(
        access_key=basalt.access_key,
        secret_key=basalt.secret_key,
        region=basalt.region,
        endpoint_override=basalt.host_port,
        scheme="http",
        connect_timeout=5,
        request_timeout=60,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
    )


def test_pyarrow_partitioned_dataset(arrow_fs, s3, bucket):
    table = pa.table(
        {
            "year": pa.array([2021, 2021, 2022, 2022, 2023, 2023, 2023], pa.int32()),
            "city": ["oslo", "rome", "oslo", "lima", "rome", "lima", "oslo"],
            "value": pa.array([1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5], pa.float64()),
        }
    )
    base = f"{bucket}/dataset"
    part = pads.partitioning(pa.schema([("year", pa.int32())]), flavor="hive")
    pads.write_dataset(
        table,
        base,
        format="parquet",
        partitioning=part,
        filesystem=arrow_fs,
        basename_template="part-{i}.parquet",
    )

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="dataset/")["Contents"])
    data_keys = [k for k in keys if k.endswith(".parquet")]
    assert data_keys == [
        "dataset/year=2021/part-0.parquet",
        "dataset/year=2022/part-0.parquet",
        "dataset/year=2023/part-0.parquet",
    ]

    infos = arrow_fs.get_file_info(pafs.FileSelector(base, recursive=True))
    assert {i.path for i in infos if i.type == pafs.FileType.File} >= {f"{bucket}/{k}" for k in data_keys}

    dataset = pads.dataset(base, format="parquet", partitioning=part, filesystem=arrow_fs)
    back = dataset.to_table().select(["year", "city", "value"]).sort_by([("year", "ascending"), ("value", "ascending")])
    expected = table.sort_by([("year", "ascending"), ("value", "ascending")])
    assert back.equals(expected), f"{back.to_pydict()} != {expected.to_pydict()}"

    # Partition pruning reads only the matching directory.
    filtered = dataset.to_table(filter=pads.field("year") == 2023)
    assert sorted(filtered.column("value").to_pylist()) == [5.5, 6.5, 7.5]

    # Single file read through pyarrow.parquet with the same filesystem.
    single = pq.read_table(f"{bucket}/dataset/year=2022/part-0.parquet", filesystem=arrow_fs)
    assert sorted(single.column("city").to_pylist()) == ["lima", "oslo"]


def test_pyarrow_stream_roundtrip_and_missing(arrow_fs, bucket):
    payload = b"0123456789" * 100_000
    with arrow_fs.open_output_stream(f"{bucket}/raw/blob.bin") as out:
        out.write(payload)
    info = arrow_fs.get_file_info(f"{bucket}/raw/blob.bin")
    assert info.type == pafs.FileType.File
    assert info.size == len(payload)
    with arrow_fs.open_input_file(f"{bucket}/raw/blob.bin") as f:
        f.seek(123_456)
        assert f.read(10) == payload[123_456:123_466]
    assert arrow_fs.get_file_info(f"{bucket}/raw/missing.bin").type == pafs.FileType.NotFound
    with pytest.raises((FileNotFoundError, OSError)):
        arrow_fs.open_input_file(f"{bucket}/raw/missing.bin")


@pytest.fixture
def polars_options(basalt):
    return {
        "aws_endpoint_url": basalt.endpoint,
        "aws_access_key_id": basalt.access_key,
        "aws_secret_access_key": basalt.secret_key,
        "aws_region": basalt.region,
        "aws_allow_http": "true",
        # Fail fast instead of object_store's multi-minute retry budget.
        "max_retries": 1,
        "retry_timeout_ms": 10_000,
    }


def test_polars_parquet_roundtrip(polars_options, s3, bucket):
    df = pl.DataFrame(
        {
            "id": list(range(1000)),
            "label": [f"row-{i}" for i in range(1000)],
            "ratio": [i / 7 for i in range(1000)],
        }
    )
    url = f"s3://{bucket}/polars/data.parquet"
    df.write_parquet(url, storage_options=polars_options)
    head = s3.head_object(Bucket=bucket, Key="polars/data.parquet")
    assert head["ContentLength"] > 0

    back = pl.read_parquet(url, storage_options=polars_options)
    assert back.equals(df)

    lazy = pl.scan_parquet(url, storage_options=polars_options).filter(pl.col("id") >= 990).collect()
    assert lazy["id"].to_list() == list(range(990, 1000))


def test_polars_missing_object_raises(polars_options, bucket):
    with pytest.raises(Exception) as excinfo:
        pl.read_parquet(f"s3://{bucket}/polars/missing.parquet", storage_options=polars_options)
    assert "missing.parquet" in str(excinfo.value) or "not found" in str(excinfo.value).lower()
