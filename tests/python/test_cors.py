"""CORS through boto3, and the preflight a browser would send (plain HTTP, no signature)."""

from __future__ import annotations

import urllib.error
import urllib.request

from helpers import s3_error

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _preflight(endpoint, bucket, origin, method):
    req = urllib.request.Request(
        f"{endpoint}/{bucket}/upload.bin",
        method="OPTIONS",
        headers={"Origin": origin, "Access-Control-Request-Method": method},
    )
    try:
        with _OPENER.open(req, timeout=10) as resp:
            return resp.status, resp.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def test_bucket_cors_and_preflight(s3, bucket, basalt):
    with s3_error("NoSuchCORSConfiguration", 404):
        s3.get_bucket_cors(Bucket=bucket)
    rules = [
        {
            "AllowedOrigins": ["https://notebook.example.org"],
            "AllowedMethods": ["PUT", "POST"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 120,
        }
    ]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == rules

    status, headers = _preflight(basalt.endpoint, bucket, "https://notebook.example.org", "PUT")
    assert status == 200
    assert headers.get("Access-Control-Allow-Origin") == "https://notebook.example.org"
    status, headers = _preflight(basalt.endpoint, bucket, "https://other.example.org", "PUT")
    assert status == 403
    assert headers.get("Access-Control-Allow-Origin") is None

    with s3_error("InvalidRequest", 400):
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["TRACE"]}]},
        )
    s3.delete_bucket_cors(Bucket=bucket)
    with s3_error("NoSuchCORSConfiguration", 404):
        s3.get_bucket_cors(Bucket=bucket)
