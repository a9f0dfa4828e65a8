"""Multipart checksums through boto3: an upload's checksum algorithm and type (COMPOSITE, or
FULL_OBJECT for CRCs), part checksums checked at completion, and the object's checksum in the
completion, HEAD/GET with checksum mode, ListParts and GetObjectAttributes. A completion that
names a wrong checksum stores nothing."""

from __future__ import annotations

import base64

from helpers import crc32_b64, s3_error

MiB = 1024 * 1024
PARTS = [b"a" * (5 * MiB), b"b" * (5 * MiB), b"tail"]


def upload_parts(s3, bucket, key, **create):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    completed = []
    for number, body in enumerate(PARTS, start=1):
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                              Body=body, ChecksumAlgorithm="CRC32")
        assert part["ChecksumCRC32"] == crc32_b64(body)
        completed.append({"PartNumber": number, "ETag": part["ETag"],
                          "ChecksumCRC32": part["ChecksumCRC32"]})
    return upload_id, completed


def composite_crc32(parts):
    raw = b"".join(base64.b64decode(crc32_b64(p)) for p in parts)
    return f"{crc32_b64(raw)}-{len(parts)}"


def test_composite_crc32(s3, bucket):
    created = s3.create_multipart_upload(Bucket=bucket, Key="c", ChecksumAlgorithm="CRC32")
    assert created["ChecksumAlgorithm"] == "CRC32"
    assert created["ChecksumType"] == "COMPOSITE"
    s3.abort_multipart_upload(Bucket=bucket, Key="c", UploadId=created["UploadId"])

    upload_id, parts = upload_parts(s3, bucket, "c", ChecksumAlgorithm="CRC32")
    listed = s3.list_parts(Bucket=bucket, Key="c", UploadId=upload_id)
    assert listed["ChecksumAlgorithm"] == "CRC32"
    assert listed["ChecksumType"] == "COMPOSITE"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="c", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    expected = composite_crc32(PARTS)
    assert done["ChecksumCRC32"] == expected
    assert done["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == expected
    assert head["ChecksumType"] == "COMPOSITE"
    got = s3.get_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(PARTS)
    attributes = s3.get_object_attributes(Bucket=bucket, Key="c",
                                          ObjectAttributes=["Checksum", "ObjectParts"])
    assert attributes["Checksum"] == {"ChecksumCRC32": expected, "ChecksumType": "COMPOSITE"}
    assert [p["ChecksumCRC32"] for p in attributes["ObjectParts"]["Parts"]] == [
        crc32_b64(p) for p in PARTS]
    # A read of one part answers that part's checksum.
    part = s3.get_object(Bucket=bucket, Key="c", PartNumber=2, ChecksumMode="ENABLED")
    assert part["ChecksumCRC32"] == crc32_b64(PARTS[1])
    assert part["Body"].read() == PARTS[1]
    ranged = s3.get_object(Bucket=bucket, Key="c", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert "ChecksumCRC32" not in ranged


def test_full_object_crc32_is_the_whole_objects(s3, bucket):
    upload_id, parts = upload_parts(s3, bucket, "f", ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")
    whole = crc32_b64(b"".join(PARTS))
    done = s3.complete_multipart_upload(Bucket=bucket, Key="f", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts},
                                        ChecksumCRC32=whole, ChecksumType="FULL_OBJECT")
    assert done["ChecksumCRC32"] == whole
    assert done["ChecksumType"] == "FULL_OBJECT"
    # botocore checks a FULL_OBJECT checksum against the body it reads.
    got = s3.get_object(Bucket=bucket, Key="f", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == whole
    assert got["ChecksumType"] == "FULL_OBJECT"
    assert got["Body"].read() == b"".join(PARTS)


def test_wrong_checksums_at_completion_store_nothing(s3, bucket):
    upload_id, parts = upload_parts(s3, bucket, "w", ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")
    bad_part = [dict(p) for p in parts]
    bad_part[1]["ChecksumCRC32"] = crc32_b64(b"something else")
    with s3_error("InvalidPart", 400):
        s3.complete_multipart_upload(Bucket=bucket, Key="w", UploadId=upload_id,
                                     MultipartUpload={"Parts": bad_part})
    with s3_error("BadDigest", 400):
        s3.complete_multipart_upload(Bucket=bucket, Key="w", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts},
                                     ChecksumCRC32=crc32_b64(b"not the object"),
                                     ChecksumType="FULL_OBJECT")
    with s3_error("InvalidRequest", 400):
        s3.complete_multipart_upload(Bucket=bucket, Key="w", UploadId=upload_id,
                                     MultipartUpload={"Parts": parts}, ChecksumType="COMPOSITE")
    with s3_error("404", 404):
        s3.head_object(Bucket=bucket, Key="w")
    # The upload is still there, and completes with the right checksums.
    done = s3.complete_multipart_upload(Bucket=bucket, Key="w", UploadId=upload_id,
                                        MultipartUpload={"Parts": parts})
    assert done["ChecksumCRC32"] == crc32_b64(b"".join(PARTS))


def test_checksum_types_an_algorithm_cannot_have(s3, bucket):
    with s3_error("InvalidRequest", 400):
        s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumAlgorithm="SHA256",
                                   ChecksumType="FULL_OBJECT")
    with s3_error("InvalidRequest", 400):
        s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumType="COMPOSITE")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
