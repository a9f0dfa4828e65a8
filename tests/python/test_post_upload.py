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
