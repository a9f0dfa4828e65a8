"""SSE-KMS through boto3 with Basalt's built-in key store: named, aliased and default keys,
encryption context, rotation, disabled keys, bucket defaults with bucket keys, multipart
uploads and copies between every kind of encryption, and nothing plain on disk."""

from __future__ import annotations

import base64
import json
import secrets
import uuid

from helpers import admin, s3_error
from test_encryption import _canary, _files_containing

MiB = 1024 * 1024


def _new_key(basalt, **flags):
    args = ["kms", "create"]
    for name, value in flags.items():
        args += [f"--{name}", value]
    return admin(basalt, *args)


def _alias() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def test_named_key_round_trip_by_id_alias_and_arn_nothing_plain(s3, basalt, bucket):
    alias = _alias()
    key = _new_key(basalt, alias=alias, description="team data")
    assert key["enabled"] and key["version"] == 1 and key["alias"] == alias
    assert key["arn"].endswith(f":key/{key['key_id']}")
    canary = _canary()
    big = canary * (5 * MiB // len(canary) + 1)
    for name, ref, body in [
        ("by-id", key["key_id"], canary * 10),
        ("by-alias", f"alias/{alias}", big),
        ("by-arn", key["arn"], canary),
    ]:
        put = s3.put_object(Bucket=bucket, Key=name, Body=body,
                            ServerSideEncryption="aws:kms", SSEKMSKeyId=ref)
        assert put["ServerSideEncryption"] == "aws:kms"
        assert put["SSEKMSKeyId"] == key["arn"]
        got = s3.get_object(Bucket=bucket, Key=name)
        assert got["ServerSideEncryption"] == "aws:kms"
        assert got["SSEKMSKeyId"] == key["arn"]
        assert got["Body"].read() == body
        head = s3.head_object(Bucket=bucket, Key=name)
        assert head["SSEKMSKeyId"] == key["arn"]
        ranged = s3.get_object(Bucket=bucket, Key=name, Range="bytes=3-40")
        assert ranged["Body"].read() == body[3:41]
    assert _files_containing(basalt.data_dir.parent, canary) == []
    listed = {k["key_id"]: k for k in admin(basalt, "kms", "list")}
    assert listed[key["key_id"]]["description"] == "team data"


def test_aws_kms_without_a_key_uses_the_default_key(s3, basalt, bucket):
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms")
    default = [k for k in admin(basalt, "kms", "list") if k["alias"] == "aws/s3"]
    assert len(default) == 1
    assert put["SSEKMSKeyId"] == default[0]["arn"]
    again = s3.put_object(Bucket=bucket, Key="k2", Body=b"y", ServerSideEncryption="aws:kms",
                          SSEKMSKeyId="alias/aws/s3")
    assert again["SSEKMSKeyId"] == default[0]["arn"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_bad_kms_requests_get_aws_errors_and_store_nothing(s3, basalt, bucket):
    with s3_error("KMS.NotFoundException", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=str(uuid.uuid4()))
    with s3_error("KMS.NotFoundException", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId="alias/no-such-alias")
    key = _new_key(basalt)
    # A KMS key id or context without aws:kms.
    with s3_error("InvalidArgument", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", SSEKMSKeyId=key["key_id"])
    with s3_error("InvalidArgument", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="AES256",
                      SSEKMSKeyId=key["key_id"])
    with s3_error("InvalidArgument", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms",
                      SSEKMSEncryptionContext=base64.b64encode(b"not json").decode())
    with s3_error("InvalidArgument", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key["key_id"], SSECustomerAlgorithm="AES256",
                      SSECustomerKey=secrets.token_hex(16))
    with s3_error("NoSuchBucket", 404):
        s3.put_bucket_encryption(
            Bucket=f"missing-{uuid.uuid4().hex[:8]}",
            ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["key_id"]}}]})
    with s3_error("KMS.NotFoundException", 400):
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/nope"}}]})
    with s3_error(("NoSuchKey", "404"), 404):
        s3.head_object(Bucket=bucket, Key="k")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    # Creating a key under a taken alias or a reserved one is refused.
    alias = _alias()
    _new_key(basalt, alias=alias)
    from helpers import admin_as
    taken = admin_as(basalt, ("root", basalt.access_key, basalt.secret_key),
                     "kms", "create", "--alias", alias)
    assert taken.returncode != 0 and "exists" in taken.stderr
    reserved = admin_as(basalt, ("root", basalt.access_key, basalt.secret_key),
                        "kms", "create", "--alias", "aws/mine")
    assert reserved.returncode != 0


def test_encryption_context_is_echoed_and_binds_the_object(s3, basalt, bucket):
    key = _new_key(basalt)
    context = {"project": "atlas", "stage": "raw"}
    encoded = base64.b64encode(json.dumps(context).encode()).decode()
    put = s3.put_object(Bucket=bucket, Key="ctx", Body=b"payload", ServerSideEncryption="aws:kms",
                        SSEKMSKeyId=key["key_id"], SSEKMSEncryptionContext=encoded)
    echoed = json.loads(base64.b64decode(put["SSEKMSEncryptionContext"]))
    assert echoed == {**context, "aws:s3:arn": f"arn:aws:s3:::{bucket}/ctx"}
    assert s3.get_object(Bucket=bucket, Key="ctx")["Body"].read() == b"payload"


def test_disabled_keys_refuse_writes_and_reads_until_enabled(s3, basalt, bucket):
    key = _new_key(basalt)
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["key_id"])
    assert admin(basalt, "kms", "disable", key["key_id"])["enabled"] is False
    with s3_error("KMS.DisabledException", 400):
        s3.put_object(Bucket=bucket, Key="k2", Body=b"x", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key["key_id"])
    with s3_error("KMS.DisabledException", 400):
        s3.get_object(Bucket=bucket, Key="k")
    with s3_error(("NoSuchKey", "404"), 404):
        s3.head_object(Bucket=bucket, Key="k2")
    assert admin(basalt, "kms", "enable", key["arn"])["enabled"] is True
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret"


def test_rotation_keeps_old_objects_readable(s3, basalt, bucket):
    alias = _alias()
    key = _new_key(basalt, alias=alias)
    s3.put_object(Bucket=bucket, Key="before", Body=b"v1 data", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["key_id"])
    rotated = admin(basalt, "kms", "rotate", f"alias/{alias}")
    assert rotated["version"] == 2 and rotated["key_id"] == key["key_id"]
    s3.put_object(Bucket=bucket, Key="after", Body=b"v2 data", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["key_id"])
    assert s3.get_object(Bucket=bucket, Key="before")["Body"].read() == b"v1 data"
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"v2 data"


def test_bucket_default_kms_key_with_bucket_key(s3, basalt, bucket):
    key = _new_key(basalt)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["key_id"]},
            "BucketKeyEnabled": True}]})
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["key_id"]}
    assert rule["BucketKeyEnabled"] is True
    put = s3.put_object(Bucket=bucket, Key="plain-request", Body=b"data")
    assert put["ServerSideEncryption"] == "aws:kms"
    assert put["SSEKMSKeyId"] == key["arn"]
    assert put["BucketKeyEnabled"] is True
    head = s3.head_object(Bucket=bucket, Key="plain-request")
    assert head["SSEKMSKeyId"] == key["arn"] and head["BucketKeyEnabled"] is True
    # A request's own choice still wins over the default.
    own = s3.put_object(Bucket=bucket, Key="sse-s3", Body=b"d", ServerSideEncryption="AES256")
    assert own["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in own
    # aws:kms without a key id: the default key.
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms"}
    put = s3.put_object(Bucket=bucket, Key="default-key", Body=b"d")
    default = [k for k in admin(basalt, "kms", "list") if k["alias"] == "aws/s3"][0]
    assert put["SSEKMSKeyId"] == default["arn"]
    assert s3.get_object(Bucket=bucket, Key="plain-request")["Body"].read() == b"data"


def test_kms_multipart_and_copies_between_every_kind(s3, basalt, bucket):
    key = _new_key(basalt)
    other = _new_key(basalt)
    kms = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key["key_id"]}
    parts = [secrets.token_bytes(5 * MiB), secrets.token_bytes(1234)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", **kms)
    assert upload["ServerSideEncryption"] == "aws:kms" and upload["SSEKMSKeyId"] == key["arn"]
    done = []
    for n, body in enumerate(parts, 1):
        part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
                              PartNumber=n, Body=body)
        assert part["SSEKMSKeyId"] == key["arn"]
        done.append({"PartNumber": n, "ETag": part["ETag"]})
    completed = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
                                             MultipartUpload={"Parts": done})
    assert completed["ServerSideEncryption"] == "aws:kms"
    assert completed["SSEKMSKeyId"] == key["arn"]
    whole = b"".join(parts)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == whole

    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": secrets.token_hex(16)}
    s3.put_object(Bucket=bucket, Key="sse-c", Body=b"customer", **sse_c)
    # KMS → SSE-S3, KMS → another KMS key, KMS → plain, SSE-C → KMS.
    src = {"Bucket": bucket, "Key": "mp"}
    to_s3 = s3.copy_object(Bucket=bucket, Key="to-s3", CopySource=src, ServerSideEncryption="AES256")
    assert to_s3["ServerSideEncryption"] == "AES256"
    to_other = s3.copy_object(Bucket=bucket, Key="to-other", CopySource=src,
                              ServerSideEncryption="aws:kms", SSEKMSKeyId=other["key_id"])
    assert to_other["SSEKMSKeyId"] == other["arn"]
    to_plain = s3.copy_object(Bucket=bucket, Key="to-plain", CopySource=src)
    assert "ServerSideEncryption" not in to_plain
    from_c = s3.copy_object(Bucket=bucket, Key="from-c", CopySource={"Bucket": bucket, "Key": "sse-c"},
                            CopySourceSSECustomerAlgorithm="AES256",
                            CopySourceSSECustomerKey=sse_c["SSECustomerKey"], **kms)
    assert from_c["SSEKMSKeyId"] == key["arn"]
    for name in ["to-s3", "to-other", "to-plain"]:
        assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == whole, name
    assert s3.get_object(Bucket=bucket, Key="from-c")["Body"].read() == b"customer"
    # A part copied out of a KMS object into an upload under another key.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp2", ServerSideEncryption="aws:kms",
                                        SSEKMSKeyId=other["key_id"])
    part = s3.upload_part_copy(Bucket=bucket, Key="mp2", UploadId=upload["UploadId"], PartNumber=1,
                               CopySource=src, CopySourceRange=f"bytes=0-{5 * MiB - 1}")
    assert part["SSEKMSKeyId"] == other["arn"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp2", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="mp2")["Body"].read() == parts[0]
