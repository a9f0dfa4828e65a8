"""S3 behaviours boto3 users rely on, as AWS documents them: GetObjectAttributes, conditional
writes with an ETag in If-None-Match, ListBuckets paging, and a GET that is not cut short when
the object is overwritten while it is read."""

from __future__ import annotations

import threading

from botocore.exceptions import ClientError

from helpers import s3_error

MiB = 1024 * 1024


def test_get_object_attributes(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"attributes", ChecksumAlgorithm="CRC32")
    got = s3.get_object_attributes(
        Bucket=bucket,
        Key="k",
        ObjectAttributes=["ETag", "Checksum", "ObjectSize", "StorageClass", "ObjectParts"],
    )
    assert got.get("ObjectSize") == 10, got
    assert got["ETag"].strip('"') == put["ETag"].strip('"')
    assert got["Checksum"]["ChecksumCRC32"] == put["ChecksumCRC32"]
    assert got["StorageClass"] == "STANDARD"
    assert "ObjectParts" not in got
    with s3_error("NoSuchKey", 404):
        s3.get_object_attributes(Bucket=bucket, Key="absent", ObjectAttributes=["ETag"])


def test_if_none_match_with_an_etag(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["ETag"]
    with s3_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    with s3_error("NoSuchKey", 404):
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch="*")


def test_list_buckets_pages(s3, bucket_factory):
    names = sorted(bucket_factory() for _ in range(3))
    seen, token = [], None
    while True:
        kwargs = {"MaxBuckets": 1, "Prefix": "t-"}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_buckets(**kwargs)
        assert len(page["Buckets"]) <= 1
        seen += [b["Name"] for b in page["Buckets"]]
        token = page.get("ContinuationToken")
        if not token:
            break
    assert set(names) <= set(seen)
    assert seen == sorted(seen)


def test_a_get_is_whole_while_the_object_is_overwritten(s3, bucket):
    size = 8 * MiB
    versions = [bytes([i]) * size for i in range(6)]
    s3.put_object(Bucket=bucket, Key="hot", Body=versions[0])
    stop = threading.Event()
    failures: list[str] = []

    def read():
        while not stop.is_set():
            try:
                body = s3.get_object(Bucket=bucket, Key="hot")["Body"]
                got = b"".join(iter(lambda: body.read(256 * 1024), b""))
            except ClientError as e:
                failures.append(repr(e))
                return
            except Exception as e:  # a cut-short body raises from urllib3
                failures.append(repr(e))
                return
            if len(got) != size or got not in versions:
                failures.append(f"wrong body: {len(got)} bytes")
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for r in readers:
        r.start()
    for i in range(1, 6):
        s3.put_object(Bucket=bucket, Key="hot", Body=versions[i])
    stop.set()
    for r in readers:
        r.join()
    assert failures == []
