"""Lifecycle configurations through boto3, applied by the worker on a clock the test sets.

The rules are run through `basalt admin lifecycle --at <instant>`: the node evaluates them as
if the clock read that instant. Object lock still holds by the real clock.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import urllib.error
import urllib.request

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import _binary_path
from helpers import md5_b64, s3_error


def _run_lifecycle(basalt, days_ahead: float) -> dict:
    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days_ahead)
    out = subprocess.run(
        [
            str(_binary_path()), "admin", "--endpoint", basalt.endpoint,
            "--access-key", basalt.access_key, "--secret-key", basalt.secret_key,
            "--json", "lifecycle", "--at", at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _state(s3, bucket):
    """{key: [(version id, is delete marker), ...]} newest first."""
    page = s3.list_object_versions(Bucket=bucket)
    entries = [(v, False) for v in page.get("Versions", [])] + [(m, True) for m in page.get("DeleteMarkers", [])]
    entries.sort(key=lambda e: (e[0]["Key"], not e[0]["IsLatest"], -e[0]["LastModified"].timestamp()))
    state: dict = {}
    for e, marker in entries:
        state.setdefault(e["Key"], []).append((e["VersionId"], marker))
    return state


RULES = [
    {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 10}},
    {
        "ID": "scratch",
        "Status": "Enabled",
        "Filter": {"Tag": {"Key": "class", "Value": "scratch"}},
        "Expiration": {"Days": 1},
    },
    {
        "ID": "data-history",
        "Status": "Enabled",
        "Filter": {"Prefix": "data/"},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 5, "NewerNoncurrentVersions": 1},
    },
    {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"ExpiredObjectDeleteMarker": True}},
    {
        "ID": "uploads",
        "Status": "Enabled",
        "Filter": {"Prefix": "up/"},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
    },
    {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": "keep/"}, "Expiration": {"Days": 1}},
]


def test_configuration_round_trips_and_deletes(s3, bucket):
    with s3_error("NoSuchLifecycleConfiguration", 404):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": RULES})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in got] == [r["ID"] for r in RULES]
    assert got[1]["Filter"] == {"Tag": {"Key": "class", "Value": "scratch"}}
    assert got[2]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 5, "NewerNoncurrentVersions": 1}
    assert got[5]["Status"] == "Disabled"
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with s3_error("NoSuchLifecycleConfiguration", 404):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)


def test_invalid_configurations_are_refused_and_change_nothing(s3, basalt, bucket):
    good = [RULES[0]]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": good})
    bad_rules = [
        ("InvalidArgument", {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 0}}),
        ("MalformedXML", {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""},
                          "Expiration": {"Days": 1, "Date": dt.datetime(2030, 1, 1)}}),
        ("InvalidArgument", {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""},
                             "Expiration": {"Date": dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone.utc)}}),
        ("InvalidRequest", {"ID": "x", "Status": "Enabled", "Filter": {"Tag": {"Key": "a", "Value": "b"}},
                            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}),
        ("InvalidRequest", {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "a"}}),
        ("MalformedXML", {"ID": "x", "Status": "Sometimes", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}),
    ]
    for code, rule in bad_rules:
        with s3_error(code, 400):
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})
    with s3_error("InvalidArgument", 400):
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [RULES[0], RULES[0]]})

    # A body that is not a lifecycle configuration at all.
    body = b"<LifecycleConfiguration><Rule><ID>x</Rule></LifecycleConfiguration"
    request = AWSRequest(
        method="PUT", url=f"{basalt.endpoint}/{bucket}?lifecycle", data=body,
        headers={"Content-MD5": md5_b64(body)},
    )
    S3SigV4Auth(Credentials(basalt.access_key, basalt.secret_key), "s3", basalt.region).add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=body, method="PUT", headers=dict(prepared.headers))
    try:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(raw, timeout=10)
        raise AssertionError("a malformed lifecycle body was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 400 and b"<Code>MalformedXML</Code>" in e.read()

    assert [r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]] == ["logs"]


def test_the_worker_expires_exactly_what_the_rules_select(s3, basalt, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": RULES})
    put = lambda key, **kw: s3.put_object(Bucket=bucket, Key=key, Body=key.encode(), **kw)["VersionId"]
    logs = put("logs/a")
    keep = put("keep/a")
    scratch = put("tmp/x", Tagging="class=scratch")
    other = put("tmp/y", Tagging="class=other")
    d1, d2, d3 = put("data/k"), put("data/k"), put("data/k")
    gone = put("gone/k")
    s3.delete_object(Bucket=bucket, Key="gone/k")
    s3.delete_object(Bucket=bucket, Key="gone/k", VersionId=gone)
    stale = s3.create_multipart_upload(Bucket=bucket, Key="up/part")["UploadId"]
    kept_upload = s3.create_multipart_upload(Bucket=bucket, Key="other/part")["UploadId"]

    # Half a day on, nothing is due yet.
    report = _run_lifecycle(basalt, 0.5)
    assert report["current_expired"] == 0 and report["noncurrent_expired"] == 0
    assert report["delete_markers_removed"] == 1, "gone/k's marker had no version left"
    assert "gone/k" not in _state(s3, bucket)

    report = _run_lifecycle(basalt, 11)
    state = _state(s3, bucket)
    assert state["logs/a"][0][1] is True and state["logs/a"][1] == (logs, False)
    assert state["tmp/x"][0][1] is True and state["tmp/x"][1] == (scratch, False)
    assert state["tmp/y"] == [(other, False)]
    assert state["keep/a"] == [(keep, False)], "a disabled rule does nothing"
    assert state["data/k"] == [(d3, False), (d2, False)], "one noncurrent version is kept"
    assert d1 not in {v for v, _ in state["data/k"]}
    uploads = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert stale not in uploads and kept_upload in uploads
    assert report["current_expired"] >= 2 and report["noncurrent_expired"] >= 1
    assert report["uploads_aborted"] >= 1
    s3.abort_multipart_upload(Bucket=bucket, Key="other/part", UploadId=kept_upload)


def test_the_worker_never_deletes_locked_versions(s3, basalt, bucket_factory):
    b = bucket_factory("lock")
    s3.delete_bucket(Bucket=b)
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    locked = s3.put_object(
        Bucket=b, Key="k", Body=b"1", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )["VersionId"]
    free = s3.put_object(Bucket=b, Key="k", Body=b"2")["VersionId"]
    s3.put_object(Bucket=b, Key="k", Body=b"3")
    s3.put_bucket_lifecycle_configuration(
        Bucket=b,
        LifecycleConfiguration={"Rules": [{
            "ID": "history", "Status": "Enabled", "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        }]},
    )
    report = _run_lifecycle(basalt, 30)
    assert report["skipped_locked"] >= 1
    versions = {v["VersionId"] for v in s3.list_object_versions(Bucket=b)["Versions"]}
    assert locked in versions and free not in versions


def test_expiration_by_date_in_an_unversioned_bucket(s3, basalt, bucket):
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [{
            "ID": "sunset", "Status": "Enabled", "Filter": {"Prefix": "old/"},
            "Expiration": {"Date": dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)},
        }]},
    )
    for key in ["old/a", "old/b", "new/a"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    _run_lifecycle(basalt, 30)
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 3, "the date has not come"
    days_to_2031 = (dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc) - dt.datetime.now(dt.timezone.utc)).days
    _run_lifecycle(basalt, days_to_2031)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["new/a"]
    # An unversioned bucket leaves no delete marker behind.
    assert [v["Key"] for v in s3.list_object_versions(Bucket=bucket).get("Versions", [])] == ["new/a"]
    assert "DeleteMarkers" not in s3.list_object_versions(Bucket=bucket)


def test_expiration_headers_generated_ids_and_transitions(s3, bucket):
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 10}},
        {"Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}},
    ]})
    ids = [r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]]
    assert ids[0] == "logs" and ids[1], "a rule without an ID gets one"

    put = s3.put_object(Bucket=bucket, Key="logs/a", Body=b"x")
    expiration = put["Expiration"]
    assert 'rule-id="logs"' in expiration, expiration
    date = expiration.split('expiry-date="')[1].split('"')[0]
    expires = dt.datetime.strptime(date, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=dt.timezone.utc)
    assert expires.time() == dt.time(0, 0), "rounded up to midnight UTC"
    left = expires - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=9) < left <= dt.timedelta(days=11), left
    assert s3.head_object(Bucket=bucket, Key="logs/a")["Expiration"] == expiration
    assert s3.get_object(Bucket=bucket, Key="logs/a")["Expiration"] == expiration
    assert f'rule-id="{ids[1]}"' in s3.put_object(Bucket=bucket, Key="tmp/b", Body=b"x")["Expiration"]
    assert "Expiration" not in s3.put_object(Bucket=bucket, Key="kept", Body=b"x")
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="kept")

    with s3_error("InvalidStorageClass", 400):
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
            {"ID": "cold", "Status": "Enabled", "Filter": {"Prefix": ""},
             "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}]})
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 2
