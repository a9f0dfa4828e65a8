"""S3 behaviours boto3 users rely on, as AWS documents them: GetObjectAttributes, conditional
writes with an ETag in If-None-Match, ListBuckets paging, a GET that is not cut short when the
object is overwritten while it is read, and the edges the s3-tests conformance suite checks
(a completion sent twice, 304 validators, V1 listing fields, checksum formats)."""

from __future__ import annotations

import threading

from botocore.exceptions import ClientError

from helpers import crc32_b64, s3_error, sha256_b64

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


def test_sigv2_header_authentication(basalt, bucket):
    """Older tools sign with SigV2 (`AWS key:signature`): verified like SigV4, and refused when
    its Date is more than 15 minutes off (a SigV2 signature has no expiry of its own)."""
    import email.utils
    import urllib.request

    from botocore.auth import HmacV1Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    v2 = basalt.client(signature_version="s3")
    v2.put_object(Bucket=bucket, Key="v2", Body=b"signed with v2")
    assert v2.get_object(Bucket=bucket, Key="v2")["Body"].read() == b"signed with v2"
    assert [o["Key"] for o in v2.list_objects(Bucket=bucket)["Contents"]] == ["v2"]
    wrong = basalt.client(access_key=basalt.access_key, secret_key="not-the-secret-0123456789",
                          signature_version="s3")
    with s3_error("SignatureDoesNotMatch", 403):
        wrong.get_object(Bucket=bucket, Key="v2")

    request = AWSRequest(method="GET", url=f"{basalt.endpoint}/{bucket}/v2")
    HmacV1Auth(Credentials(basalt.access_key, basalt.secret_key)).add_auth(request)
    request.headers.replace_header("Date", email.utils.formatdate(0, usegmt=True))
    prepared = request.prepare()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(urllib.request.Request(prepared.url, headers=dict(prepared.headers)), timeout=10)
        raise AssertionError("a SigV2 request dated 1970 was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 403 and b"RequestTimeTooSkewed" in e.read()


def test_version_listings_with_max_keys_zero_and_an_empty_delimiter(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    empty = s3.list_object_versions(Bucket=bucket, MaxKeys=0)
    assert empty["IsTruncated"] is False and "Versions" not in empty
    listed = s3.list_object_versions(Bucket=bucket, Delimiter="")
    assert "Delimiter" not in listed and [v["Key"] for v in listed["Versions"]] == ["a/b"]
    with s3_error("NoSuchBucket", 404):
        s3.list_object_versions(Bucket=bucket + "-missing", MaxKeys=0)


def test_an_expired_presigned_put_is_refused_and_stores_nothing(s3, bucket):
    import datetime as dt
    import urllib.request
    from unittest import mock

    # Signed an hour ago for a minute: expired when it is sent, without waiting for it.
    an_hour_ago = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=1)
    with mock.patch("botocore.auth.get_current_datetime", return_value=an_hour_ago):
        url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "late"},
                                        ExpiresIn=60)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(urllib.request.Request(url, data=b"late", method="PUT"), timeout=10)
        raise AssertionError("an expired presigned PUT was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 403 and b"AccessDenied" in e.read()
    with s3_error("404", 404):
        s3.head_object(Bucket=bucket, Key="late")


def test_non_ascii_metadata_round_trips_as_rfc2047_encoded_words(s3, bucket):
    import base64
    import email.header

    word = "=?UTF-8?B?" + base64.b64encode("été à Zürich".encode()).decode() + "?="
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"place": word, "plain": "ascii"})
    for got in (s3.head_object(Bucket=bucket, Key="k"), s3.get_object(Bucket=bucket, Key="k")):
        value = got["Metadata"]["place"]
        assert value.startswith("=?"), value
        text = "".join(
            part.decode(charset) if isinstance(part, bytes) else part
            for part, charset in email.header.decode_header(value)
        )
        assert text == "été à Zürich"
        assert got["Metadata"]["plain"] == "ascii"


def test_if_match_over_a_delete_marker_is_no_such_key(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["ETag"]
    s3.delete_object(Bucket=bucket, Key="k")
    with s3_error("NoSuchKey", 404):
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch=etag)
    with s3_error("NoSuchKey", 404):
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfMatch="*")
    versions = s3.list_object_versions(Bucket=bucket)
    assert len(versions["Versions"]) == 1 and len(versions["DeleteMarkers"]) == 1


def test_part_number_beyond_the_parts_is_invalid_part_number(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"abc")
    assert s3.get_object(Bucket=bucket, Key="k", PartNumber=1)["Body"].read() == b"abc"
    with s3_error("InvalidPartNumber", 400):
        s3.get_object(Bucket=bucket, Key="k", PartNumber=2)


def test_a_completion_sent_again_answers_the_same_object(s3, bucket):
    key = "mp/twice"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1,
                          Body=b"p" * 1024)["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload=parts)
    assert again["ETag"] == first["ETag"]
    # Another part list is not that completion: the upload is gone.
    with s3_error("NoSuchUpload", 404):
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]})
    # Once the object is replaced, the old upload's completion is not answered any more.
    s3.put_object(Bucket=bucket, Key=key, Body=b"replaced")
    with s3_error("NoSuchUpload", 404):
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                     MultipartUpload=parts)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"replaced"


def test_not_modified_carries_the_validators(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="cached", Body=b"v1")
    with s3_error("304", 304) as failure:
        s3.get_object(Bucket=bucket, Key="cached", IfNoneMatch=put["ETag"])
    headers = failure.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["etag"] == put["ETag"]
    assert headers["last-modified"].endswith(" GMT")


def test_list_objects_v1_answers_marker_and_prefix_as_given(s3, bucket):
    s3.put_object(Bucket=bucket, Key="\nline", Body=b"")
    listing = s3.list_objects(Bucket=bucket)
    assert listing["Marker"] == "" and listing["Prefix"] == ""
    # boto3 asks for encoding-type=url and decodes what V1 encodes; Prefix comes back as sent.
    listing = s3.list_objects(Bucket=bucket, Prefix="\n")
    assert listing["Prefix"] == "\n"
    assert [o["Key"] for o in listing["Contents"]] == ["\nline"]


def test_reads_refuse_an_encryption_request(basalt, s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    with s3_error("InvalidArgument", 400):
        _client_sending(basalt, "x-amz-server-side-encryption", "AES256").get_object(
            Bucket=bucket, Key="plain")
    with s3_error("400", 400):
        _client_sending(basalt, "x-amz-server-side-encryption", "aws:kms").head_object(
            Bucket=bucket, Key="plain")


def _client_sending(basalt, name, value):
    """A client that adds a header to every request (boto3 has no parameter for these)."""
    client = basalt.client()
    client.meta.events.register_first(
        "before-call.s3.*", lambda params, **_: params["headers"].__setitem__(name, value))
    return client


def test_a_malformed_checksum_is_invalid_request_and_a_wrong_one_bad_digest(s3, bucket):
    with s3_error("InvalidRequest", 400):
        s3.put_object(Bucket=bucket, Key="sum", Body=b"data", ChecksumSHA256="bad")
    with s3_error("InvalidRequest", 400):
        # Base64, but of 4 bytes: not a SHA-256.
        s3.put_object(Bucket=bucket, Key="sum", Body=b"data", ChecksumSHA256=crc32_b64(b"data"))
    with s3_error("BadDigest", 400):
        s3.put_object(Bucket=bucket, Key="sum", Body=b"data", ChecksumSHA256=sha256_b64(b"other"))
    with s3_error(("404", "NoSuchKey")):
        s3.head_object(Bucket=bucket, Key="sum")
    s3.put_object(Bucket=bucket, Key="sum", Body=b"data", ChecksumSHA256=sha256_b64(b"data"))
