"""Bucket versioning through boto3: versions, delete markers, the null version, listings."""

from __future__ import annotations

import io

import pytest
from boto3.s3.transfer import TransferConfig

from helpers import s3_error, status_of

MiB = 1024 * 1024


def _enable(s3, bucket, status="Enabled"):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def _versions(s3, bucket, prefix=""):
    """(key, version id, is latest, is delete marker) in the order S3 lists them."""
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        entries = [(v, False) for v in page.get("Versions", [])]
        entries += [(m, True) for m in page.get("DeleteMarkers", [])]
        # boto3 splits versions and markers; S3's order is by key, then newest first.
        entries.sort(key=lambda e: (e[0]["Key"], -e[0]["LastModified"].timestamp()))
        out += [(e["Key"], e["VersionId"], e["IsLatest"], marker) for e, marker in entries]
    return out


def test_versioning_status_round_trips(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    _enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    _enable(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    with s3_error("MalformedXML", 400):
        _enable(s3, bucket, "Sometimes")


def test_every_put_makes_a_version_readable_by_id(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"before versioning")
    _enable(s3, bucket)
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=f"v{i}".encode())["VersionId"] for i in range(3)]
    assert len(set(ids)) == 3 and "null" not in ids

    for i, vid in enumerate(ids):
        got = s3.get_object(Bucket=bucket, Key="k", VersionId=vid)
        assert got["Body"].read() == f"v{i}".encode()
        assert got["VersionId"] == vid
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"before versioning"
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["VersionId"] == ids[-1]
    assert s3.head_object(Bucket=bucket, Key="k", VersionId=ids[0])["ContentLength"] == 2
    ranged = s3.get_object(Bucket=bucket, Key="k", VersionId=ids[1], Range="bytes=1-1")
    assert ranged["Body"].read() == b"1"

    listed = _versions(s3, bucket)
    assert [v[1] for v in listed] == list(reversed(ids)) + ["null"]
    assert [v[2] for v in listed] == [True, False, False, False]


def test_bad_and_unknown_version_ids(s3, bucket):
    _enable(s3, bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with s3_error("InvalidArgument", 400):
        s3.get_object(Bucket=bucket, Key="k", VersionId="not-a-version")
    with s3_error("NoSuchVersion", 404):
        s3.get_object(Bucket=bucket, Key="k", VersionId="0" * 32)
    with s3_error("InvalidArgument", 400):
        s3.delete_object(Bucket=bucket, Key="k", VersionId="../../etc")
    # Deleting a version that does not exist succeeds and changes nothing, as on AWS.
    s3.delete_object(Bucket=bucket, Key="k", VersionId="0" * 32)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_delete_writes_a_marker_that_hides_the_key(s3, bucket):
    _enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="doc", Body=b"one")["VersionId"]
    deleted = s3.delete_object(Bucket=bucket, Key="doc")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]

    with s3_error("NoSuchKey", 404) as err:
        s3.get_object(Bucket=bucket, Key="doc")
    headers = err.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("x-amz-delete-marker") == "true"
    assert headers.get("x-amz-version-id") == marker
    with s3_error("404", 404) as err:
        s3.head_object(Bucket=bucket, Key="doc")
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    with s3_error("405", 405) as err:
        s3.head_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    with s3_error("MethodNotAllowed", 405) as err:
        s3.get_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="doc", VersionId=v1)["Body"].read() == b"one"
    assert _versions(s3, bucket) == [("doc", marker, True, True), ("doc", v1, False, False)]

    # Removing the marker by its id brings the object back.
    undo = s3.delete_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert undo["DeleteMarker"] is True and undo["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"one"

    # Deleting the current version by id makes the previous one current.
    v2 = s3.put_object(Bucket=bucket, Key="doc", Body=b"two")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="doc", VersionId=v2)
    assert s3.get_object(Bucket=bucket, Key="doc")["VersionId"] == v1


def test_suspended_buckets_overwrite_the_null_version(s3, bucket):
    _enable(s3, bucket)
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    _enable(s3, bucket, "Suspended")
    s3.put_object(Bucket=bucket, Key="k", Body=b"null one")
    s3.put_object(Bucket=bucket, Key="k", Body=b"null two")
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"null two"
    assert [v[1] for v in _versions(s3, bucket)] == ["null", kept]
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"] == "null"
    assert _versions(s3, bucket) == [("k", "null", True, True), ("k", kept, False, False)]


def test_null_version_of_an_unversioned_bucket(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"plain")
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"plain"
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="null")["VersionId"] == "null"
    assert _versions(s3, bucket) == [("k", "null", True, False)]
    s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=bucket, Key="k")
    assert _versions(s3, bucket) == []


def test_delete_objects_with_versions(s3, bucket):
    _enable(s3, bucket)
    a1 = s3.put_object(Bucket=bucket, Key="a", Body=b"1")["VersionId"]
    a2 = s3.put_object(Bucket=bucket, Key="a", Body=b"2")["VersionId"]
    s3.put_object(Bucket=bucket, Key="b", Body=b"3")
    resp = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "a", "VersionId": a1}, {"Key": "b"}, {"Key": "c", "VersionId": "bad id"}]},
    )
    deleted = {d["Key"]: d for d in resp["Deleted"]}
    assert deleted["a"]["VersionId"] == a1
    assert deleted["b"]["DeleteMarker"] is True and deleted["b"]["DeleteMarkerVersionId"]
    assert [e["Code"] for e in resp["Errors"]] == ["InvalidArgument"]
    assert [v[1] for v in _versions(s3, bucket, "a")] == [a2]


def test_copy_from_a_version_and_multipart_in_a_versioned_bucket(s3, bucket):
    _enable(s3, bucket)
    old = s3.put_object(Bucket=bucket, Key="src", Body=b"old body")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"new body")
    copied = s3.copy_object(
        Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": old}
    )
    assert copied["CopySourceVersionId"] == old and copied["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"old body"
    # Copying an object onto itself from an older version restores it as a new version.
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src", "VersionId": old})
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"old body"
    assert len(_versions(s3, bucket, "src")) == 3

    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_fileobj(io.BytesIO(b"a" * (6 * MiB)), bucket, "big", Config=config)
    s3.upload_fileobj(io.BytesIO(b"b" * (6 * MiB)), bucket, "big", Config=config)
    listed = _versions(s3, bucket, "big")
    assert len(listed) == 2
    first = s3.get_object(Bucket=bucket, Key="big", VersionId=listed[1][1])["Body"].read()
    assert first == b"a" * (6 * MiB)


def test_conditional_writes_in_a_versioned_bucket(s3, bucket):
    _enable(s3, bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")
    with s3_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    s3.delete_object(Bucket=bucket, Key="k")
    # A delete marker is no object: create-if-absent succeeds again.
    s3.put_object(Bucket=bucket, Key="k", Body=b"3", IfNoneMatch="*")
    assert len(_versions(s3, bucket)) == 3


def test_version_listing_pages_with_markers_and_delimiter(s3, bucket):
    _enable(s3, bucket)
    expected = []
    for key in ["a", "b/1", "b/2", "c"]:
        ids = [s3.put_object(Bucket=bucket, Key=key, Body=b"x")["VersionId"] for _ in range(3)]
        expected += [(key, vid) for vid in reversed(ids)]
    seen, kw = [], {}
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=2, **kw)
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
        if not page["IsTruncated"]:
            break
        kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert seen == expected

    page = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in page["Versions"]} == {"a", "c"}
    with s3_error("InvalidArgument", 400):
        s3.list_object_versions(Bucket=bucket, VersionIdMarker=expected[0][1])


def test_versioned_object_tagging(s3, bucket):
    _enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="gen=1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"2", Tagging="gen=2")
    s3.put_object_tagging(
        Bucket=bucket, Key="k", VersionId=v1, Tagging={"TagSet": [{"Key": "gen", "Value": "old"}]}
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=v1)["TagSet"] == [
        {"Key": "gen", "Value": "old"}
    ]
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "gen", "Value": "2"}]


def test_a_bucket_with_versions_is_not_empty(s3, bucket):
    _enable(s3, bucket)
    vid = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    s3.delete_object(Bucket=bucket, Key="k")
    with s3_error("BucketNotEmpty", 409):
        s3.delete_bucket(Bucket=bucket)
    assert status_of(s3.delete_object(Bucket=bucket, Key="k", VersionId=vid)) == 204
