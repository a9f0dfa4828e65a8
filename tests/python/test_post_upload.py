"""Browser-style POST uploads: presigned POST policies from boto3's generate_presigned_post."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from urllib3 import encode_multipart_formdata

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str, fields: dict, body: bytes, filename: str = "upload.bin", content_type=None):
    form = dict(fields)
    form["file"] = (filename, body, content_type or "application/octet-stream")
    data, ctype = encode_multipart_formdata(form)
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": ctype})
    try:
        with _OPENER.open(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_presigned_post_uploads_an_object(s3, bucket):
    post = s3.generate_presigned_post(
        bucket,
        "uploads/cat.png",
        Fields={"Content-Type": "image/png"},
        Conditions=[
            ["starts-with", "$key", "uploads/"],
            ["content-length-range", 1, 1024],
            {"Content-Type": "image/png"},
        ],
        ExpiresIn=300,
    )
    status, body = _post(post["url"], post["fields"], b"\x89PNG fake", "cat.png", "image/png")
    assert status in (200, 201, 204), body
    got = s3.get_object(Bucket=bucket, Key="uploads/cat.png")
    assert got["Body"].read() == b"\x89PNG fake"
    assert got["ContentType"] == "image/png"


def test_post_policy_violations_are_refused_and_store_nothing(s3, bucket):
    post = s3.generate_presigned_post(
        bucket,
        "uploads/small.bin",
        Conditions=[["content-length-range", 1, 16]],
        ExpiresIn=300,
    )
    status, body = _post(post["url"], post["fields"], b"x" * 17)
    assert status == 400 and b"EntityTooLarge" in body, body

    wrong_key = dict(post["fields"])
    wrong_key["key"] = "elsewhere/small.bin"
    status, body = _post(post["url"], wrong_key, b"ok")
    assert status == 403 and b"AccessDenied" in body, body

    forged = dict(post["fields"])
    forged["x-amz-signature"] = "0" * 64
    status, body = _post(post["url"], forged, b"ok")
    assert status == 403 and b"SignatureDoesNotMatch" in body, body

    expired = s3.generate_presigned_post(bucket, "uploads/late.bin", ExpiresIn=1)
    time.sleep(2)
    status, body = _post(expired["url"], expired["fields"], b"late")
    assert status == 403 and b"AccessDenied" in body, body
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert listed == [], listed


def test_posts_are_authorized_as_puts_of_their_key(s3, basalt, bucket_factory):
    """A POST is a PutObject of the form's key: a user's policy, or a bucket ACL that lets
    everyone write, allows it; nothing else does."""
    from helpers import client_of, doc, make_user

    bucket = bucket_factory("post")
    writer = client_of(basalt, make_user(basalt, doc({
        "Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/in/*"})))
    post = writer.generate_presigned_post(bucket, "in/by-user.txt", ExpiresIn=300)
    status, body = _post(post["url"], post["fields"], b"from a user")
    assert status in (200, 201, 204), body
    assert s3.get_object(Bucket=bucket, Key="in/by-user.txt")["Body"].read() == b"from a user"
    outside = writer.generate_presigned_post(bucket, "elsewhere.txt", ExpiresIn=300)
    status, body = _post(outside["url"], outside["fields"], b"no")
    assert status == 403 and b"AccessDenied" in body, body

    url = f"{basalt.endpoint}/{bucket}"
    status, body = _post(url, {"key": "anon.txt"}, b"anonymous")
    assert status == 403, body
    s3.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    status, body = _post(url, {"key": "anon.txt", "success_action_status": "201"}, b"anonymous")
    assert status == 201, body
    assert s3.get_object(Bucket=bucket, Key="anon.txt")["Body"].read() == b"anonymous"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["anon.txt", "in/by-user.txt"]


def test_post_success_status_and_refusals(s3, bucket):
    for asked, expected in [("200", 200), ("201", 201), ("204", 204), ("404", 204)]:
        post = s3.generate_presigned_post(bucket, f"s{asked}", Fields={"success_action_status": asked},
                                          Conditions=[{"success_action_status": asked}], ExpiresIn=300)
        status, body = _post(post["url"], post["fields"], b"x")
        assert status == expected, (asked, status, body)
        if expected == 201:
            assert b"<PostResponse>" in body and f"<Key>s{asked}</Key>".encode() in body, body

    other = s3.generate_presigned_post(bucket + "-other", "k", ExpiresIn=300)
    status, body = _post(f"{s3.meta.endpoint_url}/{bucket}", other["fields"], b"x")
    assert status == 403, body
    # The same with the form naming its bucket: it fails the policy's bucket condition, 403.
    status, body = _post(f"{s3.meta.endpoint_url}/{bucket}", {"bucket": bucket + "-other", **other["fields"]}, b"x")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body, body

    bad_date = s3.generate_presigned_post(bucket, "bad-date", ExpiresIn=300)
    fields = dict(bad_date["fields"])
    fields["x-amz-date"] = "yesterday"
    status, body = _post(bad_date["url"], fields, b"x")
    assert status == 400, body
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert keys == ["s200", "s201", "s204", "s404"], keys


def test_binary_files_post_whole_wherever_their_carriage_returns_fall(s3, bucket):
    """A file part is scanned for the closing boundary; a `\\r` at the end of one network read
    used to make the form parser join it to the next read and refuse the form when the two
    passed 64 KiB. Files of carriage returns and of random bytes upload and read back whole."""
    import os

    files = {
        "returns.bin": b"\r" * (3 << 20),
        "almost-boundaries.bin": b"\r\n-" * (1 << 20),
        "random.bin": os.urandom(6 << 20),
    }
    for key, data in files.items():
        post = s3.generate_presigned_post(
            bucket, key, Conditions=[["content-length-range", 1, 16 << 20]], ExpiresIn=300)
        status, body = _post(post["url"], post["fields"], data)
        assert status == 204, (key, status, body[:300])
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert got == data, (key, len(got))


def _sigv2_form(basalt, bucket: str, conditions: list, fields: dict, expiration=None) -> dict:
    """A SigV2 form, as older tools and the s3-tests suite build them."""
    import base64
    import hashlib
    import hmac
    import json

    policy = base64.b64encode(json.dumps({
        "expiration": expiration or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 600)),
        "conditions": [{"bucket": bucket}, *conditions],
    }).encode()).decode()
    signature = base64.b64encode(
        hmac.new(basalt.secret_key.encode(), policy.encode(), hashlib.sha1).digest()).decode()
    return {"AWSAccessKeyId": basalt.access_key, "policy": policy, "signature": signature, **fields}


def test_form_fields_set_the_object_and_sigv2_forms_are_checked(s3, basalt, bucket):
    url = f"{basalt.endpoint}/{bucket}"
    tagging = "<Tagging><TagSet><Tag><Key>team</Key><Value>data eng</Value></Tag></TagSet></Tagging>"
    form = _sigv2_form(basalt, bucket, [
        ["starts-with", "$key", "in/"],
        {"acl": "private"},
        ["starts-with", "$Content-Type", "text/"],
        {"x-amz-meta-colour": "blue"},
        {"tagging": tagging},
        {"success_action_redirect": "http://example.invalid/done"},
        ["content-length-range", 1, 1024],
    ], {
        "key": "in/${filename}",
        "acl": "private",
        "Content-Type": "text/plain",
        "x-amz-meta-colour": "blue",
        "tagging": tagging,
        "success_action_redirect": "http://example.invalid/done",
    })

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    data, ctype = encode_multipart_formdata({**form, "file": ("notes.txt", b"hello", "text/plain")})
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": ctype})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
    try:
        opener.open(req, timeout=30)
        raise AssertionError("expected a redirect")
    except urllib.error.HTTPError as e:
        assert e.code == 303, e.read()
        location = e.headers["Location"]
    assert location.startswith("http://example.invalid/done?bucket=" + bucket), location
    assert "key=in%2Fnotes.txt" in location and "etag=" in location, location

    head = s3.head_object(Bucket=bucket, Key="in/notes.txt")
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"colour": "blue"}
    tags = s3.get_object_tagging(Bucket=bucket, Key="in/notes.txt")["TagSet"]
    assert tags == [{"Key": "team", "Value": "data eng"}], tags

    forged = dict(form, signature="AAAA" + form["signature"][4:])
    status, body = _post(url, forged, b"x", "notes2.txt")
    assert status == 403 and b"SignatureDoesNotMatch" in body, body
    unsigned = {k: v for k, v in form.items() if k != "signature"}
    status, body = _post(url, unsigned, b"x", "notes3.txt")
    assert status == 400 and b"InvalidArgument" in body, body
    no_key = {k: v for k, v in form.items() if k != "key"}
    status, body = _post(url, no_key, b"x")
    assert status == 400 and b"InvalidArgument" in body, body
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["in/notes.txt"], keys


def test_files_outside_the_length_range_and_oversized_fields_store_nothing(s3, bucket):
    post = s3.generate_presigned_post(
        bucket, "ranged.bin", Conditions=[["content-length-range", 10, 20]], ExpiresIn=300)
    status, body = _post(post["url"], post["fields"], b"short")
    assert status == 400 and b"EntityTooSmall" in body, body
    # Small enough to be sent whole before the answer: a larger file is cut off at the limit.
    status, body = _post(post["url"], post["fields"], b"x" * 21)
    assert status == 400 and b"EntityTooLarge" in body, body
    status, body = _post(post["url"], post["fields"], b"just right")
    assert status == 204, body

    big = s3.generate_presigned_post(bucket, "fields.bin", ExpiresIn=300)
    fields = dict(big["fields"], **{"x-ignore-padding": "p" * (21 << 10)})
    status, body = _post(big["url"], fields, b"x")
    assert status == 400 and b"MaxPostPreDataLengthExceeded" in body, body
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["ranged.bin"], keys
    assert s3.get_object(Bucket=bucket, Key="ranged.bin")["Body"].read() == b"just right"


def test_a_checksum_field_is_checked_against_the_file(s3, bucket):
    import base64
    import hashlib

    data = b"checked content"
    good = base64.b64encode(hashlib.sha256(data).digest()).decode()
    post = s3.generate_presigned_post(bucket, "summed.bin", ExpiresIn=300)
    status, body = _post(post["url"], dict(post["fields"], **{"x-amz-checksum-sha256": good}), data)
    assert status == 204, body
    got = s3.head_object(Bucket=bucket, Key="summed.bin", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == good

    bad = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    post = s3.generate_presigned_post(bucket, "mismatch.bin", ExpiresIn=300)
    status, body = _post(post["url"], dict(post["fields"], **{"x-amz-checksum-sha256": bad}), data)
    assert status == 400 and b"BadDigest" in body, body
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["summed.bin"], keys


def test_a_policy_whose_expiration_is_not_iso8601_is_refused(basalt, s3, bucket):
    spaced = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(time.time() + 600))
    form = _sigv2_form(basalt, bucket, [["starts-with", "$key", ""]], {"key": "late.txt"},
                       expiration=spaced)
    status, body = _post(f"{basalt.endpoint}/{bucket}", form, b"x")
    assert status == 400 and b"InvalidPolicyDocument" in body, body
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_forms_that_would_write_elsewhere_are_refused(s3, basalt, bucket):
    """A key left empty by `${filename}`, a bucket name the path decodes into more, a
    credential for another region, an encryption setting the policy does not name: each is
    refused, and nothing is written (no bucket made, no object stored)."""
    buckets_before = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    url = f"{basalt.endpoint}/{bucket}"
    any_key = s3.generate_presigned_post(
        bucket, "${filename}", Conditions=[["starts-with", "$key", ""]], ExpiresIn=300)
    status, body = _post(any_key["url"], any_key["fields"], b"<CreateBucketConfiguration/>", "")
    assert status == 400 and b"InvalidArgument" in body, body

    status, body = _post(f"{basalt.endpoint}/{bucket}%2Fother", any_key["fields"], b"x", "a.txt")
    assert status == 400 and b"InvalidBucketName" in body, body

    other_region = dict(any_key["fields"])
    other_region["x-amz-credential"] = other_region["x-amz-credential"].replace(
        f"/{basalt.region}/", "/eu-west-3/")
    status, body = _post(url, other_region, b"x", "b.txt")
    assert status == 400 and b"InvalidArgument" in body, body

    sse = dict(any_key["fields"], **{"x-amz-server-side-encryption": "AES256"})
    status, body = _post(url, sse, b"x", "c.txt")
    assert status == 403 and b"x-amz-server-side-encryption" in body, body

    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert sorted(b["Name"] for b in s3.list_buckets()["Buckets"]) == buckets_before



def test_a_role_sessions_form_carries_its_token_and_its_rights(s3, basalt, bucket):
    """A form signed with temporary credentials is made as the role session: its token is
    signed into the policy, and the role's rights decide."""
    import boto3
    from botocore.config import Config

    from test_iam import make_user
    from test_sts import sts_client

    _, access, secret = make_user(basalt)  # no policies of its own

    def session_of(role: str):
        creds = sts_client(basalt, access, secret).assume_role(
            RoleArn=f"arn:aws:iam::basalt:role/{role}", RoleSessionName="uploader")["Credentials"]
        client = boto3.session.Session().client(
            "s3", endpoint_url=basalt.endpoint, region_name=basalt.region,
            aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )
        return client, creds["SessionToken"]

    writer, token = session_of("writer")
    post = writer.generate_presigned_post(bucket, "by-role.txt", ExpiresIn=300)
    assert post["fields"]["x-amz-security-token"] == token
    status, body = _post(post["url"], post["fields"], b"from a role")
    assert status == 204, body
    assert s3.get_object(Bucket=bucket, Key="by-role.txt")["Body"].read() == b"from a role"

    # Another token fails the policy it was signed into.
    forged = dict(post["fields"], **{"x-amz-security-token": token[:-4] + "AAAA"})
    status, body = _post(post["url"], forged, b"forged")
    assert status == 403 and b"Invalid according to Policy" in body, body

    # A read-only role's form is refused by its rights.
    reader, _ = session_of("reader")
    post = reader.generate_presigned_post(bucket, "by-reader.txt", ExpiresIn=300)
    status, body = _post(post["url"], post["fields"], b"x")
    assert status == 403 and b"AccessDenied" in body and b"Policy" not in body, body
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["by-role.txt"], keys
