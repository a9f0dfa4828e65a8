"""Object lock through boto3: retention modes, legal hold, default retention, refusals."""

from __future__ import annotations

import datetime as dt

from helpers import s3_error


def _future(days=1):
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)


def _lock_bucket(s3, bucket_factory):
    name = bucket_factory("lock")
    # bucket_factory made a plain bucket; object lock needs one created with it.
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def test_a_lock_bucket_is_versioned_and_cannot_be_suspended(s3, bucket_factory):
    b = _lock_bucket(s3, bucket_factory)
    assert s3.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    conf = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]
    assert conf["ObjectLockEnabled"] == "Enabled"
    with s3_error("InvalidBucketState", 409):
        s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})


def test_compliance_retention_cannot_be_deleted_shortened_or_bypassed(s3, bucket_factory):
    b = _lock_bucket(s3, bucket_factory)
    until = _future()
    vid = s3.put_object(
        Bucket=b, Key="audit", Body=b"ledger", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until
    )["VersionId"]
    head = s3.head_object(Bucket=b, Key="audit")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert abs((head["ObjectLockRetainUntilDate"] - until).total_seconds()) < 1

    with s3_error("AccessDenied", 403):
        s3.delete_object(Bucket=b, Key="audit", VersionId=vid)
    with s3_error("AccessDenied", 403):
        s3.delete_object(Bucket=b, Key="audit", VersionId=vid, BypassGovernanceRetention=True)
    with s3_error("AccessDenied", 403):
        s3.put_object_retention(
            Bucket=b, Key="audit", VersionId=vid,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": _future(0.5)},
        )
    with s3_error("AccessDenied", 403):
        s3.put_object_retention(
            Bucket=b, Key="audit", VersionId=vid, BypassGovernanceRetention=True,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": _future(2)},
        )
    # Extending is allowed.
    s3.put_object_retention(
        Bucket=b, Key="audit", VersionId=vid, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": _future(3)}
    )
    assert s3.get_object_retention(Bucket=b, Key="audit")["Retention"]["Mode"] == "COMPLIANCE"
    # A plain delete only adds a marker; the locked version stays readable.
    assert s3.delete_object(Bucket=b, Key="audit")["DeleteMarker"] is True
    assert s3.get_object(Bucket=b, Key="audit", VersionId=vid)["Body"].read() == b"ledger"
    resp = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "audit", "VersionId": vid}]})
    assert [e["Code"] for e in resp["Errors"]] == ["AccessDenied"]


def test_governance_retention_yields_to_the_bypass_header(s3, bucket_factory):
    b = _lock_bucket(s3, bucket_factory)
    vid = s3.put_object(
        Bucket=b, Key="g", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=_future()
    )["VersionId"]
    with s3_error("AccessDenied", 403):
        s3.delete_object(Bucket=b, Key="g", VersionId=vid)
    with s3_error("AccessDenied", 403):
        s3.put_object_retention(Bucket=b, Key="g", VersionId=vid, Retention={})
    s3.put_object_retention(Bucket=b, Key="g", VersionId=vid, Retention={}, BypassGovernanceRetention=True)
    with s3_error("NoSuchObjectLockConfiguration", 404):
        s3.get_object_retention(Bucket=b, Key="g", VersionId=vid)
    s3.put_object_retention(
        Bucket=b, Key="g", VersionId=vid, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": _future()}
    )
    s3.delete_object(Bucket=b, Key="g", VersionId=vid, BypassGovernanceRetention=True)
    with s3_error("NoSuchVersion", 404):
        s3.get_object(Bucket=b, Key="g", VersionId=vid)


def test_legal_hold_blocks_deletes_until_released(s3, bucket_factory):
    b = _lock_bucket(s3, bucket_factory)
    vid = s3.put_object(Bucket=b, Key="h", Body=b"x", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object_legal_hold(Bucket=b, Key="h")["LegalHold"]["Status"] == "ON"
    with s3_error("AccessDenied", 403):
        s3.delete_object(Bucket=b, Key="h", VersionId=vid, BypassGovernanceRetention=True)
    s3.put_object_legal_hold(Bucket=b, Key="h", VersionId=vid, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=b, Key="h", VersionId=vid)["LegalHold"]["Status"] == "OFF"
    s3.delete_object(Bucket=b, Key="h", VersionId=vid)


def test_default_retention_applies_to_new_versions(s3, bucket_factory):
    b = _lock_bucket(s3, bucket_factory)
    s3.put_object_lock_configuration(
        Bucket=b,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 2}},
        },
    )
    rule = s3.get_object_lock_configuration(Bucket=b)["ObjectLockConfiguration"]["Rule"]
    assert rule["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 2}
    vid = s3.put_object(Bucket=b, Key="d", Body=b"x")["VersionId"]
    retention = s3.get_object_retention(Bucket=b, Key="d")["Retention"]
    assert retention["Mode"] == "GOVERNANCE"
    left = retention["RetainUntilDate"] - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=1, hours=23) < left <= dt.timedelta(days=2)
    with s3_error("AccessDenied", 403):
        s3.delete_object(Bucket=b, Key="d", VersionId=vid)
    with s3_error("MalformedXML", 400):
        s3.put_object_lock_configuration(
            Bucket=b,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}},
            },
        )


def test_lock_settings_need_a_lock_bucket(s3, bucket):
    with s3_error("ObjectLockConfigurationNotFoundError", 404):
        s3.get_object_lock_configuration(Bucket=bucket)
    with s3_error("InvalidRequest", 400):
        s3.put_object(
            Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=_future()
        )
    with s3_error("InvalidBucketState", 409):
        s3.put_object_lock_configuration(
            Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
        )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    with s3_error("InvalidArgument", 400):
        s3.put_object(
            Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc),
        )
    with s3_error("InvalidArgument", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE")
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)


def test_lock_errors_use_aws_codes(s3, bucket, bucket_factory):
    b = _lock_bucket(s3, bucket_factory)
    for days, code in [(0, "InvalidRetentionPeriod"), (-3, "InvalidRetentionPeriod")]:
        with s3_error(code, 400):
            s3.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": days}}})
    with s3_error("MalformedXML", 400):
        s3.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "FOREVER", "Days": 1}}})
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    with s3_error("MalformedXML", 400):
        s3.put_object_retention(Bucket=b, Key="k", Retention={
            "Mode": "FOREVER", "RetainUntilDate": _future()})
    with s3_error("MalformedXML", 400):
        s3.put_object_legal_hold(Bucket=b, Key="k", LegalHold={"Status": "MAYBE"})

    # GOVERNANCE to COMPLIANCE is a change only the governance bypass may make.
    until = _future(2)
    s3.put_object_retention(Bucket=b, Key="k", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until})
    with s3_error("AccessDenied", 403):
        s3.put_object_retention(Bucket=b, Key="k", Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})
    assert s3.get_object_retention(Bucket=b, Key="k")["Retention"]["Mode"] == "GOVERNANCE"
    s3.put_object_retention(Bucket=b, Key="k", BypassGovernanceRetention=True,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until})
    assert s3.get_object_retention(Bucket=b, Key="k")["Retention"]["Mode"] == "COMPLIANCE"

    # The lock APIs of a bucket without object lock.
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    for call in (
        lambda: s3.get_object_retention(Bucket=bucket, Key="plain"),
        lambda: s3.get_object_legal_hold(Bucket=bucket, Key="plain"),
        lambda: s3.put_object_retention(Bucket=bucket, Key="plain", Retention={
            "Mode": "GOVERNANCE", "RetainUntilDate": _future()}),
        lambda: s3.put_object_legal_hold(Bucket=bucket, Key="plain", LegalHold={"Status": "ON"}),
    ):
        with s3_error("InvalidRequest", 400):
            call()
