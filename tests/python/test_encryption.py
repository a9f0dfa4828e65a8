"""Encryption at rest through boto3: SSE-S3, SSE-C, bucket default encryption, and a raw-disk
check that no file under the node's directories holds the plaintext of an encrypted object."""

from __future__ import annotations

import io
import os
import secrets
import uuid
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from helpers import s3_error

MiB = 1024 * 1024
# botocore takes the 32-byte key as a str and base64-encodes it (and its MD5) itself.
KEY = secrets.token_hex(16)
OTHER_KEY = secrets.token_hex(16)
SSE_C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY}


def _canary() -> bytes:
    return f"BASALT-CANARY-{uuid.uuid4().hex}-".encode()


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and path.suffix != ".log":
            with open(path, "rb") as f:
                # Overlapping blocks, so a needle across a block boundary is still found.
                tail = b""
                while block := f.read(8 * MiB):
                    if needle in tail + block:
                        hits.append(str(path))
                        break
                    tail = block[-len(needle):]
    return hits


def test_sse_s3_round_trip_and_nothing_plain_on_disk(s3, basalt, bucket):
    canary = _canary()
    small = canary * 10
    big = canary * (5 * MiB // len(canary) + 1)
    for key, body in [("small", small), ("big", big)]:
        put = s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256")
        assert put["ServerSideEncryption"] == "AES256"
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["ServerSideEncryption"] == "AES256"
        assert got["Body"].read() == body
    ranged = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={4 * MiB - 10}-{4 * MiB + 9}")
    assert ranged["Body"].read() == big[4 * MiB - 10 : 4 * MiB + 10]
    assert s3.head_object(Bucket=bucket, Key="big")["ServerSideEncryption"] == "AES256"
    assert _files_containing(basalt.data_dir.parent, canary) == []


def test_sse_c_needs_the_right_key_and_leaves_nothing_plain(s3, basalt, bucket):
    canary = _canary()
    body = canary * (300_000 // len(canary))
    put = s3.put_object(Bucket=bucket, Key="c", Body=body, **SSE_C)
    assert put["SSECustomerAlgorithm"] == "AES256" and put["SSECustomerKeyMD5"]
    assert s3.get_object(Bucket=bucket, Key="c", **SSE_C)["Body"].read() == body
    assert s3.head_object(Bucket=bucket, Key="c", **SSE_C)["ContentLength"] == len(body)
    ranged = s3.get_object(Bucket=bucket, Key="c", Range="bytes=100-199", **SSE_C)
    assert ranged["Body"].read() == body[100:200]
    with s3_error("InvalidRequest", 400):
        s3.get_object(Bucket=bucket, Key="c")
    with s3_error("AccessDenied", 403):
        s3.get_object(Bucket=bucket, Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=OTHER_KEY)
    with s3_error("InvalidArgument", 400):
        s3.get_object(
            Bucket=bucket, Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=KEY,
            SSECustomerKeyMD5="AAAAAAAAAAAAAAAAAAAAAA==",
        )
    assert _files_containing(basalt.data_dir.parent, canary) == []


def test_bucket_default_encryption(s3, bucket):
    with s3_error("ServerSideEncryptionConfigurationNotFoundError"):
        s3.get_bucket_encryption(Bucket=bucket)
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"x")["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="k")["ServerSideEncryption"] == "AES256"
    s3.delete_bucket_encryption(Bucket=bucket)
    assert "ServerSideEncryption" not in s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    with s3_error("NotImplemented", 501):
        s3.put_object(Bucket=bucket, Key="dsse", Body=b"x", ServerSideEncryption="aws:kms:dsse")


def test_encrypted_multipart_uploads_and_copies(s3, bucket):
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    body = os.urandom(11 * MiB)
    s3.upload_fileobj(io.BytesIO(body), bucket, "mp-c", ExtraArgs=dict(SSE_C), Config=config)
    out = io.BytesIO()
    s3.download_fileobj(bucket, "mp-c", out, ExtraArgs=dict(SSE_C), Config=config)
    assert out.getvalue() == body
    head = s3.head_object(Bucket=bucket, Key="mp-c", **SSE_C)
    assert head["ContentLength"] == len(body) and head["ETag"].endswith('-3"')
    part = s3.get_object(Bucket=bucket, Key="mp-c", PartNumber=2, **SSE_C)
    assert part["Body"].read() == body[5 * MiB : 10 * MiB]

    s3.upload_fileobj(
        io.BytesIO(body), bucket, "mp-s3", ExtraArgs={"ServerSideEncryption": "AES256"}, Config=config
    )
    assert s3.get_object(Bucket=bucket, Key="mp-s3")["Body"].read() == body

    # SSE-C source to an SSE-S3 copy, and back to plain.
    copied = s3.copy_object(
        Bucket=bucket, Key="copy", ServerSideEncryption="AES256",
        CopySource={"Bucket": bucket, "Key": "mp-c"},
        CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=KEY,
    )
    assert copied["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == body
    with s3_error("InvalidRequest", 400):
        s3.copy_object(Bucket=bucket, Key="copy2", CopySource={"Bucket": bucket, "Key": "mp-c"})
    s3.copy_object(Bucket=bucket, Key="plain", CopySource={"Bucket": bucket, "Key": "copy"})
    plain = s3.get_object(Bucket=bucket, Key="plain")
    assert "ServerSideEncryption" not in plain and plain["Body"].read() == body

    # A part uploaded without the upload's customer key is refused.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp2", **SSE_C)["UploadId"]
    with s3_error("InvalidRequest", 400):
        s3.upload_part(Bucket=bucket, Key="mp2", UploadId=upload, PartNumber=1, Body=b"x")
    with s3_error("AccessDenied", 403):
        s3.upload_part(
            Bucket=bucket, Key="mp2", UploadId=upload, PartNumber=1, Body=b"x",
            SSECustomerAlgorithm="AES256", SSECustomerKey=OTHER_KEY,
        )
    s3.abort_multipart_upload(Bucket=bucket, Key="mp2", UploadId=upload)
