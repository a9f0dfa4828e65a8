"""boto3 end-to-end tests against a live Basalt server.

Expectations follow documented Amazon S3 behaviour (error codes and HTTP
statuses from the S3 API reference).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
import time
import urllib.error
import urllib.request

import pytest
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import unique_bucket_name
from helpers import (
    crc32_b64,
    md5_b64,
    md5_hex,
    multipart_etag,
    s3_error,
    sha256_b64,
    status_of,
)

MiB = 1024 * 1024
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(req: urllib.request.Request):
    return _NO_PROXY_OPENER.open(req, timeout=30)


# --------------------------------------------------------------------------
# Buckets
# --------------------------------------------------------------------------


def test_bucket_create_list_head_delete(s3):
    name = unique_bucket_name("lifecycle")
    resp = s3.create_bucket(Bucket=name)
    assert status_of(resp) == 200

    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert name in names

    assert status_of(s3.head_bucket(Bucket=name)) == 200
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0

    resp = s3.delete_bucket(Bucket=name)
    assert status_of(resp) == 204

    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert name not in names
    # HEAD has no body, so botocore reports the bare status as the code.
    with s3_error(("404", "NoSuchBucket"), 404):
        s3.head_bucket(Bucket=name)


def test_bucket_already_exists(s3, bucket):
    # us-east-1 historically answers 200 for a re-create by the owner; every
    # other answer must be BucketAlreadyOwnedByYou (409).
    try:
        resp = s3.create_bucket(Bucket=bucket)
    except ClientError as e:
        assert e.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    else:
        assert status_of(resp) == 200


def test_delete_nonempty_bucket_fails(s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep.txt", Body=b"x")
    with s3_error("BucketNotEmpty", 409):
        s3.delete_bucket(Bucket=bucket)
    # Bucket and object are intact.
    assert s3.get_object(Bucket=bucket, Key="keep.txt")["Body"].read() == b"x"


def test_missing_bucket_errors(s3):
    name = unique_bucket_name("missing")
    with s3_error("NoSuchBucket", 404):
        s3.delete_bucket(Bucket=name)
    with s3_error("NoSuchBucket", 404):
        s3.list_objects_v2(Bucket=name)
    with s3_error("NoSuchBucket", 404):
        s3.put_object(Bucket=name, Key="k", Body=b"data")
    with s3_error("NoSuchBucket", 404):
        s3.get_object(Bucket=name, Key="k")


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # too short
        "a" * 64,  # too long
        "Upper-Case-Bucket",  # uppercase not allowed
        "under_score",  # underscore not allowed
        "-leading-dash",  # must start with letter/digit
        "trailing-dash-",  # must end with letter/digit
        "double..dots",  # adjacent periods
        "192.168.5.4",  # IP-address form
    ],
)
def test_invalid_bucket_name(s3, name):
    with s3_error("InvalidBucketName", 400):
        s3.create_bucket(Bucket=name)


# --------------------------------------------------------------------------
# Objects: basic CRUD
# --------------------------------------------------------------------------


def test_put_get_head_delete(s3, bucket):
    data = os.urandom(4096)
    put = s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=data)
    assert put["ETag"] == f'"{md5_hex(data)}"'

    get = s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert get["Body"].read() == data
    assert get["ETag"] == put["ETag"]
    assert get["ContentLength"] == len(data)

    head = s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == put["ETag"]
    assert isinstance(head["LastModified"], dt.datetime)
    age = dt.datetime.now(dt.timezone.utc) - head["LastModified"]
    assert abs(age.total_seconds()) < 300

    # Overwrite replaces content.
    s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=b"second")
    assert s3.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read() == b"second"

    assert status_of(s3.delete_object(Bucket=bucket, Key="dir/obj.bin")) == 204
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    with s3_error(("404", "NoSuchKey"), 404):
        s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    # Deleting a missing key is not an error.
    assert status_of(s3.delete_object(Bucket=bucket, Key="dir/obj.bin")) == 204


def test_empty_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    get = s3.get_object(Bucket=bucket, Key="empty")
    assert get["ContentLength"] == 0
    assert get["Body"].read() == b""


def test_special_character_keys_roundtrip(s3, bucket):
    keys = [
        "sp ace/file name.txt",
        "plus+sign=eq&amp.txt",
        "percent%25literal%.txt",
        "unicode/ünïcødé-日本.txt",
        "tilde~star*paren(1)!'quote",
        "a/b/c/d/e/deep.txt",
    ]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=f"body-{i}".encode())
    for i, key in enumerate(keys):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == f"body-{i}".encode()
    # botocore requests encoding-type=url and decodes; keys must survive exactly.
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == sorted(keys, key=lambda k: k.encode())


def test_key_too_long(s3, bucket):
    with s3_error("KeyTooLongError", 400):
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    # 1024 bytes is the documented maximum and must work.
    key = "k" * 1024
    s3.put_object(Bucket=bucket, Key=key, Body=b"ok")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"ok"


# --------------------------------------------------------------------------
# Ranges
# --------------------------------------------------------------------------

RANGE_DATA = bytes(range(100))


@pytest.mark.parametrize(
    "range_header,start,end",
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-19", 10, 19),
        ("bytes=-5", 95, 99),  # suffix
        ("bytes=10-", 10, 99),  # open-ended
        ("bytes=90-1000", 90, 99),  # end clamped to size
        ("bytes=99-99", 99, 99),
    ],
)
def test_range_get(s3, bucket, range_header, start, end):
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_DATA)
    resp = s3.get_object(Bucket=bucket, Key="r", Range=range_header)
    assert status_of(resp) == 206
    assert resp["Body"].read() == RANGE_DATA[start : end + 1]
    assert resp["ContentLength"] == end - start + 1
    assert resp["ContentRange"] == f"bytes {start}-{end}/100"


@pytest.mark.parametrize("range_header", ["bytes=100-200", "bytes=150-"])
def test_range_not_satisfiable(s3, bucket, range_header):
    s3.put_object(Bucket=bucket, Key="r", Body=RANGE_DATA)
    with s3_error("InvalidRange", 416):
        s3.get_object(Bucket=bucket, Key="r", Range=range_header)


# --------------------------------------------------------------------------
# Metadata and system headers
# --------------------------------------------------------------------------


def test_metadata_and_headers_roundtrip(s3, bucket):
    s3.put_object(
        Bucket=bucket,
        Key="meta.txt",
        Body=b"hello",
        Metadata={"color": "blue", "Mixed-Case": "Some Value"},
        ContentType="text/plain; charset=utf-8",
        ContentDisposition='attachment; filename="meta.txt"',
        CacheControl="max-age=60, private",
        ContentLanguage="en-GB",
    )
    for resp in (
        s3.head_object(Bucket=bucket, Key="meta.txt"),
        s3.get_object(Bucket=bucket, Key="meta.txt"),
    ):
        # User metadata names are case-insensitive and returned lower-cased.
        assert resp["Metadata"] == {"color": "blue", "mixed-case": "Some Value"}
        assert resp["ContentType"] == "text/plain; charset=utf-8"
        assert resp["ContentDisposition"] == 'attachment; filename="meta.txt"'
        assert resp["CacheControl"] == "max-age=60, private"
        assert resp["ContentLanguage"] == "en-GB"


def test_response_header_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o.bin", Body=b"abc", ContentType="application/octet-stream")
    resp = s3.get_object(
        Bucket=bucket,
        Key="o.bin",
        ResponseContentType="text/csv",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-cache",
    )
    assert resp["ContentType"] == "text/csv"
    assert resp["ContentDisposition"] == "inline"
    assert resp["CacheControl"] == "no-cache"
    assert resp["Body"].read() == b"abc"


# --------------------------------------------------------------------------
# Copy
# --------------------------------------------------------------------------


def test_copy_object_copy_directive(s3, bucket):
    s3.put_object(
        Bucket=bucket,
        Key="src",
        Body=b"copy me",
        Metadata={"origin": "source"},
        ContentType="text/plain",
    )
    src_etag = s3.head_object(Bucket=bucket, Key="src")["ETag"]
    resp = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert resp["CopyObjectResult"]["ETag"] == src_etag
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"origin": "source"}
    assert head["ContentType"] == "text/plain"
    assert head["ETag"] == src_etag
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"copy me"
    # Source untouched.
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"copy me"


def test_copy_object_replace_directive(s3, bucket):
    s3.put_object(
        Bucket=bucket, Key="src", Body=b"data", Metadata={"old": "1"}, ContentType="text/plain"
    )
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        Metadata={"new": "2"},
        ContentType="application/json",
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"new": "2"}
    assert head["ContentType"] == "application/json"
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"old": "1"}


def test_copy_object_in_place_requires_change(s3, bucket):
    s3.put_object(Bucket=bucket, Key="self", Body=b"x", Metadata={"v": "1"})
    # Copying onto itself without changing anything is illegal.
    with s3_error("InvalidRequest", 400):
        s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"})
    # With REPLACE it is the documented way to update metadata.
    s3.copy_object(
        Bucket=bucket,
        Key="self",
        CopySource={"Bucket": bucket, "Key": "self"},
        MetadataDirective="REPLACE",
        Metadata={"v": "2"},
    )
    assert s3.head_object(Bucket=bucket, Key="self")["Metadata"] == {"v": "2"}
    assert s3.get_object(Bucket=bucket, Key="self")["Body"].read() == b"x"


def test_copy_object_across_buckets(s3, bucket_factory):
    a = bucket_factory("src")
    b = bucket_factory("dst")
    data = os.urandom(10_000)
    s3.put_object(Bucket=a, Key="path/obj", Body=data, Metadata={"k": "v"})
    s3.copy_object(Bucket=b, Key="other/obj", CopySource={"Bucket": a, "Key": "path/obj"})
    got = s3.get_object(Bucket=b, Key="other/obj")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"k": "v"}


def test_copy_object_missing_source(s3, bucket):
    with s3_error("NoSuchKey", 404):
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "nope"})
    with s3_error("NoSuchBucket", 404):
        s3.copy_object(
            Bucket=bucket,
            Key="dst",
            CopySource={"Bucket": unique_bucket_name("nobucket"), "Key": "k"},
        )


# --------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------

LIST_KEYS = ["a/1.txt", "a/2.txt", "a/b/3.txt", "c/4.txt", "d.txt", "e.txt"]


@pytest.fixture
def listed_bucket(s3, bucket):
    for k in LIST_KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return bucket


def _keys(resp):
    return [o["Key"] for o in resp.get("Contents", [])]


def _prefixes(resp):
    return [p["Prefix"] for p in resp.get("CommonPrefixes", [])]


def test_list_v2_all(s3, listed_bucket):
    resp = s3.list_objects_v2(Bucket=listed_bucket)
    assert _keys(resp) == LIST_KEYS
    assert resp["KeyCount"] == 6
    assert resp["IsTruncated"] is False
    obj = resp["Contents"][0]
    assert obj["Size"] == len(LIST_KEYS[0])
    assert obj["ETag"] == f'"{md5_hex(LIST_KEYS[0].encode())}"'
    assert isinstance(obj["LastModified"], dt.datetime)


def test_list_v2_prefix_and_delimiter(s3, listed_bucket):
    resp = s3.list_objects_v2(Bucket=listed_bucket, Prefix="a/")
    assert _keys(resp) == ["a/1.txt", "a/2.txt", "a/b/3.txt"]

    resp = s3.list_objects_v2(Bucket=listed_bucket, Delimiter="/")
    assert _keys(resp) == ["d.txt", "e.txt"]
    assert _prefixes(resp) == ["a/", "c/"]
    assert resp["KeyCount"] == 4  # keys + common prefixes

    resp = s3.list_objects_v2(Bucket=listed_bucket, Prefix="a/", Delimiter="/")
    assert _keys(resp) == ["a/1.txt", "a/2.txt"]
    assert _prefixes(resp) == ["a/b/"]

    resp = s3.list_objects_v2(Bucket=listed_bucket, Prefix="zzz")
    assert _keys(resp) == []
    assert resp["KeyCount"] == 0


def test_list_v2_pagination(s3, listed_bucket):
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        kw = {"Bucket": listed_bucket, "MaxKeys": 2}
        if token:
            kw["ContinuationToken"] = token
        resp = s3.list_objects_v2(**kw)
        pages += 1
        assert resp["MaxKeys"] == 2
        assert len(resp.get("Contents", [])) <= 2
        seen += _keys(resp)
        if not resp["IsTruncated"]:
            assert "NextContinuationToken" not in resp
            break
        token = resp["NextContinuationToken"]
        assert token
        assert pages < 10, "pagination does not terminate"
    assert seen == LIST_KEYS
    assert pages == 3


def test_list_v2_pagination_with_delimiter(s3, listed_bucket):
    entries: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=listed_bucket, Delimiter="/", PaginationConfig={"PageSize": 1}):
        assert page["KeyCount"] <= 1
        entries += _keys(page) + _prefixes(page)
    assert entries == ["a/", "c/", "d.txt", "e.txt"]


def test_list_v2_start_after(s3, listed_bucket):
    resp = s3.list_objects_v2(Bucket=listed_bucket, StartAfter="a/b/3.txt")
    assert _keys(resp) == ["c/4.txt", "d.txt", "e.txt"]
    assert resp["StartAfter"] == "a/b/3.txt"
    resp = s3.list_objects_v2(Bucket=listed_bucket, StartAfter="a/1")
    assert _keys(resp)[0] == "a/1.txt"


def test_list_v1_marker(s3, listed_bucket):
    resp = s3.list_objects(Bucket=listed_bucket, MaxKeys=2)
    assert _keys(resp) == ["a/1.txt", "a/2.txt"]
    assert resp["IsTruncated"] is True

    seen = _keys(resp)
    marker = seen[-1]
    for _ in range(10):
        resp = s3.list_objects(Bucket=listed_bucket, MaxKeys=2, Marker=marker)
        assert resp.get("Marker") == marker  # echoed when sent
        seen += _keys(resp)
        if not resp["IsTruncated"]:
            break
        marker = resp.get("NextMarker") or _keys(resp)[-1]
    assert seen == LIST_KEYS

    resp = s3.list_objects(Bucket=listed_bucket, Marker="c/4.txt")
    assert _keys(resp) == ["d.txt", "e.txt"]


def test_list_v1_delimiter_next_marker(s3, listed_bucket):
    resp = s3.list_objects(Bucket=listed_bucket, Delimiter="/", MaxKeys=2)
    assert _keys(resp) + _prefixes(resp) == ["a/", "c/"]
    assert resp["IsTruncated"] is True
    # NextMarker is returned when a delimiter is given and the list is truncated.
    assert resp["NextMarker"] == "c/"
    resp = s3.list_objects(Bucket=listed_bucket, Delimiter="/", Marker=resp["NextMarker"])
    assert _keys(resp) == ["d.txt", "e.txt"]
    assert _prefixes(resp) == []


# --------------------------------------------------------------------------
# Multi-object delete
# --------------------------------------------------------------------------


def test_delete_objects(s3, listed_bucket):
    resp = s3.delete_objects(
        Bucket=listed_bucket,
        Delete={"Objects": [{"Key": "a/1.txt"}, {"Key": "d.txt"}, {"Key": "never-existed"}]},
    )
    deleted = sorted(d["Key"] for d in resp.get("Deleted", []))
    # S3 reports deletes of missing keys as successful.
    assert deleted == ["a/1.txt", "d.txt", "never-existed"]
    assert resp.get("Errors", []) == []
    remaining = _keys(s3.list_objects_v2(Bucket=listed_bucket))
    assert remaining == ["a/2.txt", "a/b/3.txt", "c/4.txt", "e.txt"]


def test_delete_objects_quiet(s3, listed_bucket):
    resp = s3.delete_objects(
        Bucket=listed_bucket,
        Delete={"Objects": [{"Key": k} for k in LIST_KEYS], "Quiet": True},
    )
    # Quiet mode reports only errors.
    assert resp.get("Deleted", []) == []
    assert resp.get("Errors", []) == []
    assert s3.list_objects_v2(Bucket=listed_bucket)["KeyCount"] == 0


# --------------------------------------------------------------------------
# Multipart uploads
# --------------------------------------------------------------------------


def test_multipart_upload_complete(s3, bucket):
    key = "mp/big.bin"
    parts_data = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]
    create = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ContentType="application/x-test", Metadata={"mp": "yes"}
    )
    upload_id = create["UploadId"]
    assert upload_id

    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert any(u["Key"] == key and u["UploadId"] == upload_id for u in uploads)

    etags = []
    for i, data in enumerate(parts_data, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=i, Body=data)
        assert r["ETag"] == f'"{md5_hex(data)}"'
        etags.append(r["ETag"])

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [len(d) for d in parts_data]
    assert [p["ETag"] for p in listed["Parts"]] == etags

    # The object is not visible until completion.
    with s3_error(("404", "NoSuchKey"), 404):
        s3.head_object(Bucket=bucket, Key=key)

    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, 1)]},
    )
    assert re.fullmatch(r'"[0-9a-f]{32}-3"', done["ETag"]), done["ETag"]
    assert done["ETag"] == multipart_etag(parts_data)

    full = b"".join(parts_data)
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(full)
    assert head["ETag"] == done["ETag"]
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"mp": "yes"}
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(full).digest()

    # Range across the part boundary.
    r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={5 * MiB - 10}-{5 * MiB + 9}")
    assert r["Body"].read() == full[5 * MiB - 10 : 5 * MiB + 10]

    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert all(u["UploadId"] != upload_id for u in uploads)


def test_multipart_abort(s3, bucket):
    key = "mp/aborted"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1024)
    assert status_of(s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)) == 204
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert all(u["UploadId"] != upload_id for u in uploads)
    with s3_error("NoSuchUpload", 404):
        s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
    with s3_error("NoSuchUpload", 404):
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"y")
    with s3_error(("404", "NoSuchKey"), 404):
        s3.head_object(Bucket=bucket, Key=key)


def test_multipart_unknown_upload_id(s3, bucket):
    with s3_error("NoSuchUpload", 404):
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId="definitely-not-an-upload-id",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]},
        )


def test_multipart_entity_too_small(s3, bucket):
    key = "mp/small"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"a" * 1024)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"b" * 1024)["ETag"]
    with s3_error("EntityTooSmall", 400):
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
        )
    with s3_error(("404", "NoSuchKey"), 404):
        s3.head_object(Bucket=bucket, Key=key)


def test_multipart_single_small_part_ok(s3, bucket):
    # The last (here: only) part may be smaller than 5 MiB.
    key = "mp/one"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"tiny")["ETag"]
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]},
    )
    assert done["ETag"] == multipart_etag([b"tiny"])
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"tiny"


def test_multipart_invalid_part(s3, bucket):
    key = "mp/invalid"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"a" * 100)["ETag"]
    # Part 2 was never uploaded.
    with s3_error("InvalidPart", 400):
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": 1, "ETag": e1},
                    {"PartNumber": 2, "ETag": '"0123456789abcdef0123456789abcdef"'},
                ]
            },
        )
    # Part 1 with a wrong ETag.
    with s3_error("InvalidPart", 400):
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}]},
        )


def test_multipart_invalid_part_order(s3, bucket):
    key = "mp/order"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    # Both parts are >= 5 MiB so that only the ordering is wrong.
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"a" * (5 * MiB))["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"b" * (5 * MiB))["ETag"]
    with s3_error("InvalidPartOrder", 400):
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]},
        )


def test_managed_transfer_multipart(s3, bucket, tmp_path):
    # boto3's managed transfer (s3transfer): concurrent multipart upload and
    # ranged concurrent download.
    data = os.urandom(12 * MiB + 17)
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
    s3.upload_fileobj(io.BytesIO(data), bucket, "managed.bin", Config=cfg)
    head = s3.head_object(Bucket=bucket, Key="managed.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-3"')
    out = io.BytesIO()
    s3.download_fileobj(bucket, "managed.bin", out, Config=cfg)
    assert out.getvalue() == data


# --------------------------------------------------------------------------
# Conditional requests
# --------------------------------------------------------------------------


def test_conditional_put_if_none_match(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with s3_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"


def test_conditional_put_if_match(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="cas", Body=b"v1")["ETag"]
    with s3_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="cas", Body=b"bad", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"v1"
    s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="cas")["Body"].read() == b"v2"
    # If-Match on a key that does not exist: 404 NoSuchKey.
    with s3_error("NoSuchKey", 404):
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch=etag)


def test_conditional_get(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"cond")["ETag"]
    last_modified = s3.head_object(Bucket=bucket, Key="c")["LastModified"]

    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"cond"
    with s3_error("PreconditionFailed", 412):
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0123456789abcdef0123456789abcdef"')

    with s3_error("304", 304):
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"0123456789abcdef0123456789abcdef"')[
        "Body"
    ].read() == b"cond"

    with s3_error("304", 304):
        s3.head_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    with s3_error(("412", "PreconditionFailed"), 412):
        s3.head_object(Bucket=bucket, Key="c", IfMatch='"0123456789abcdef0123456789abcdef"')

    # Date-based conditions.
    with s3_error("304", 304):
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=last_modified)
    assert s3.get_object(
        Bucket=bucket, Key="c", IfModifiedSince=last_modified - dt.timedelta(days=1)
    )["Body"].read() == b"cond"
    with s3_error("PreconditionFailed", 412):
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=last_modified - dt.timedelta(days=1))
    assert s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=last_modified)["Body"].read() == b"cond"


# --------------------------------------------------------------------------
# Presigned URLs and authentication
# --------------------------------------------------------------------------


def test_presigned_get(s3, bucket):
    s3.put_object(Bucket=bucket, Key="shared/file.txt", Body=b"presigned body")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "shared/file.txt"}, ExpiresIn=60
    )
    assert "X-Amz-Signature=" in url and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    with _http(urllib.request.Request(url)) as resp:
        assert resp.status == 200
        assert resp.read() == b"presigned body"


def test_presigned_put(s3, bucket):
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "uploaded.txt"}, ExpiresIn=60
    )
    req = urllib.request.Request(
        url,
        data=b"via presigned put",
        method="PUT",
        headers={"Content-Type": "application/octet-stream"},
    )
    with _http(req) as resp:
        assert resp.status == 200
    assert s3.get_object(Bucket=bucket, Key="uploaded.txt")["Body"].read() == b"via presigned put"


def test_presigned_expired(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    time.sleep(2)
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        _http(urllib.request.Request(url))
    assert excinfo.value.code == 403
    body = excinfo.value.read().decode(errors="replace")
    assert "<Code>AccessDenied</Code>" in body, body


def test_presigned_tampered(s3, bucket):
    s3.put_object(Bucket=bucket, Key="good", Body=b"good")
    s3.put_object(Bucket=bucket, Key="evil", Body=b"evil")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "good"}, ExpiresIn=60)
    tampered = url.replace("/good?", "/evil?")
    assert tampered != url
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        _http(urllib.request.Request(tampered))
    assert excinfo.value.code == 403
    body = excinfo.value.read().decode(errors="replace")
    assert "<Code>SignatureDoesNotMatch</Code>" in body, body


def test_wrong_secret_key(basalt, bucket):
    bad = basalt.client(secret_key="not-the-right-secret")
    with s3_error("SignatureDoesNotMatch", 403):
        bad.list_buckets()
    with s3_error("SignatureDoesNotMatch", 403):
        bad.put_object(Bucket=bucket, Key="k", Body=b"x")
    with s3_error("SignatureDoesNotMatch", 403):
        bad.list_objects_v2(Bucket=bucket)


def test_unknown_access_key(basalt, bucket):
    bad = basalt.client(access_key="AKIDONOTEXIST00000000", secret_key="whatever")
    with s3_error("InvalidAccessKeyId", 403):
        bad.list_buckets()
    with s3_error("InvalidAccessKeyId", 403):
        bad.get_object(Bucket=bucket, Key="k")


def test_anonymous_request_denied(basalt, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    anon = basalt.client(signature_version=UNSIGNED)
    with s3_error("AccessDenied", 403):
        anon.get_object(Bucket=bucket, Key="private")
    with s3_error("AccessDenied", 403):
        anon.list_objects_v2(Bucket=bucket)
    with s3_error("AccessDenied", 403):
        anon.put_object(Bucket=bucket, Key="anon", Body=b"x")


# --------------------------------------------------------------------------
# Integrity: checksums and Content-MD5
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm,field,expected_fn",
    [("SHA256", "ChecksumSHA256", sha256_b64), ("CRC32", "ChecksumCRC32", crc32_b64)],
)
def test_put_checksum_roundtrip(s3, bucket, algorithm, field, expected_fn):
    data = os.urandom(50_000)
    resp = s3.put_object(Bucket=bucket, Key="ck", Body=data, ChecksumAlgorithm=algorithm)
    assert resp[field] == expected_fn(data)
    head = s3.head_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert head[field] == expected_fn(data)
    get = s3.get_object(Bucket=bucket, Key="ck", ChecksumMode="ENABLED")
    assert get[field] == expected_fn(data)
    assert get["Body"].read() == data


def test_put_wrong_checksum_rejected(s3, bucket):
    with s3_error(("BadDigest", "XAmzContentChecksumMismatch", "InvalidRequest"), 400):
        s3.put_object(Bucket=bucket, Key="bad-ck", Body=b"payload", ChecksumSHA256=sha256_b64(b"other"))
    with s3_error(("404", "NoSuchKey"), 404):
        s3.head_object(Bucket=bucket, Key="bad-ck")


def test_content_md5_ok(s3, bucket):
    data = b"integrity"
    resp = s3.put_object(Bucket=bucket, Key="md5", Body=data, ContentMD5=md5_b64(data))
    assert resp["ETag"] == f'"{md5_hex(data)}"'


def test_content_md5_mismatch(s3, bucket):
    with s3_error(("BadDigest", "InvalidDigest"), 400):
        s3.put_object(Bucket=bucket, Key="md5", Body=b"payload", ContentMD5=md5_b64(b"different"))
    with s3_error(("404", "NoSuchKey"), 404):
        s3.head_object(Bucket=bucket, Key="md5")


def test_content_md5_malformed(s3, bucket):
    with s3_error("InvalidDigest", 400):
        s3.put_object(Bucket=bucket, Key="md5", Body=b"payload", ContentMD5="not-base64-md5")
    with s3_error(("404", "NoSuchKey"), 404):
        s3.head_object(Bucket=bucket, Key="md5")
