"""Object and bucket tagging through boto3 (and s3transfer for a multipart upload)."""

from __future__ import annotations

import io

from boto3.s3.transfer import TransferConfig

from helpers import s3_error

MiB = 1024 * 1024


def _tags(s3, bucket, key):
    return [(t["Key"], t["Value"]) for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]]


def test_object_tagging_round_trip(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"data", Tagging="team=ml&stage=raw%2Fv1")
    assert _tags(s3, bucket, "t") == [("team", "ml"), ("stage", "raw/v1")]
    assert s3.get_object(Bucket=bucket, Key="t")["TagCount"] == 2

    s3.put_object_tagging(
        Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "stage", "Value": "gold"}]}
    )
    assert _tags(s3, bucket, "t") == [("stage", "gold")]

    s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "t"})
    assert _tags(s3, bucket, "c") == [("stage", "gold")]
    s3.copy_object(
        Bucket=bucket,
        Key="r",
        CopySource={"Bucket": bucket, "Key": "t"},
        TaggingDirective="REPLACE",
        Tagging="new=1",
    )
    assert _tags(s3, bucket, "r") == [("new", "1")]

    s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert _tags(s3, bucket, "t") == []


def test_upload_fileobj_with_tags_above_the_multipart_threshold(s3, bucket):
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_fileobj(
        io.BytesIO(b"x" * (11 * MiB)),
        bucket,
        "big",
        ExtraArgs={"Tagging": "kind=dataset"},
        Config=config,
    )
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ETag"].endswith('-3"'), "the upload was not multipart"
    assert _tags(s3, bucket, "big") == [("kind", "dataset")]


def test_invalid_object_tags_are_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=me")
    too_many = {"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}
    duplicate = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
    for tagging in (too_many, duplicate, {"TagSet": [{"Key": "x" * 129, "Value": "v"}]}):
        with s3_error("InvalidTag", 400):
            s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagging)
    assert _tags(s3, bucket, "k") == [("keep", "me")]
    with s3_error("NoSuchKey", 404):
        s3.get_object_tagging(Bucket=bucket, Key="missing")


def test_bucket_tagging(s3, bucket):
    with s3_error("NoSuchTagSet", 404):
        s3.get_bucket_tagging(Bucket=bucket)
    s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": "owner", "Value": "analytics"}]}
    )
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [
        {"Key": "owner", "Value": "analytics"}
    ]
    s3.delete_bucket_tagging(Bucket=bucket)
    with s3_error("NoSuchTagSet", 404):
        s3.get_bucket_tagging(Bucket=bucket)
