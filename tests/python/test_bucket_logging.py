"""Server access logging through boto3: Put/GetBucketLogging, logs delivered as objects into the
target bucket in AWS's format (SimplePrefix and PartitionedPrefix keys), turning it off, and the
errors for a missing or foreign target."""

from __future__ import annotations

import re

from helpers import admin, client_of, make_user, s3_error

# AWS's fields: owner bucket [time] ip requester id operation key "uri" status code sent size
# total turnaround "referer" "agent" version host-id sig cipher auth host tls ap-arn acl.
LINE = re.compile(
    r'^(?P<owner>\S+) (?P<bucket>\S+) \[(?P<time>[^\]]+)\] (?P<ip>\S+) (?P<requester>\S+) '
    r'(?P<request_id>\S+) (?P<operation>\S+) (?P<key>\S+) "(?P<uri>[^"]*)" (?P<status>\d{3}) '
    r'(?P<code>\S+) (?P<sent>\S+) (?P<size>\S+) (?P<total>\d+) (?P<turnaround>\S+) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)" (?P<version>\S+) (?P<host_id>\S+) (?P<sig>\S+) '
    r'(?P<cipher>\S+) (?P<auth>\S+) (?P<host>\S+) (?P<tls>\S+) (?P<ap>\S+) (?P<acl>\S+)$'
)


def _enable(s3, source, target, prefix="logs/", key_format=None):
    enabled = {"TargetBucket": target, "TargetPrefix": prefix}
    if key_format:
        enabled["TargetObjectKeyFormat"] = key_format
    s3.put_bucket_logging(Bucket=source, BucketLoggingStatus={"LoggingEnabled": enabled})


def _flush_every_node(basalt):
    # Each node buffers what it served; consecutive admin calls take the nodes in turn.
    for _ in basalt.endpoints:
        admin(basalt, "access-logs", "flush")


def _delivered(s3, basalt, target, prefix):
    _flush_every_node(basalt)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=target, Prefix=prefix).get("Contents", [])]
    lines = []
    for key in keys:
        lines += s3.get_object(Bucket=target, Key=key)["Body"].read().decode().splitlines()
    return keys, lines


def test_requests_are_delivered_in_aws_log_format(s3, basalt, bucket_factory):
    source, target = bucket_factory("src"), bucket_factory("logs")
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=source)
    _enable(s3, source, target)
    assert s3.get_bucket_logging(Bucket=source)["LoggingEnabled"] == {
        "TargetBucket": target, "TargetPrefix": "logs/"}
    s3.put_object(Bucket=source, Key="dir/a b.txt", Body=b"hello")
    s3.get_object(Bucket=source, Key="dir/a b.txt")["Body"].read()
    with s3_error("NoSuchKey", 404):
        s3.get_object(Bucket=source, Key="missing")
    s3.list_objects_v2(Bucket=source)
    s3.delete_object(Bucket=source, Key="dir/a b.txt")

    keys, lines = _delivered(s3, basalt, target, "logs/")
    assert keys and all(re.fullmatch(r"logs/\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9A-F]{16}", k)
                        for k in keys), keys
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed) if not m]
    by_op = {}
    for m in parsed:
        by_op.setdefault(m["operation"], []).append(m)
    owner = s3.list_buckets()["Owner"]["ID"]
    put = by_op["REST.PUT.OBJECT"][0]
    assert put["bucket"] == source and put["owner"] == owner and put["requester"] == owner
    assert put["key"] == "dir/a%20b.txt" and put["status"] == "200" and put["size"] == "5"
    assert put["uri"].startswith("PUT /") and put["uri"].endswith(" HTTP/1.1")
    assert put["sig"] == "SigV4" and put["auth"] == "AuthHeader" and put["ip"] == "127.0.0.1"
    assert "Boto3" in put["agent"] or "botocore" in put["agent"]
    gets = by_op["REST.GET.OBJECT"]
    assert {(g["status"], g["code"]) for g in gets} == {("200", "-"), ("404", "NoSuchKey")}
    assert next(g for g in gets if g["status"] == "200")["sent"] == "5"
    assert by_op["REST.GET.BUCKET"][0]["key"] == "-"
    assert by_op["REST.DELETE.OBJECT"][0]["status"] == "204"

    # Off: later requests are not logged.
    s3.put_bucket_logging(Bucket=source, BucketLoggingStatus={})
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=source)
    _flush_every_node(basalt)
    before = len(s3.list_objects_v2(Bucket=target, Prefix="logs/").get("Contents", []))
    s3.put_object(Bucket=source, Key="after", Body=b"x")
    keys, _ = _delivered(s3, basalt, target, "logs/")
    assert len(keys) == before


def test_partitioned_prefix_keys(s3, basalt, bucket_factory):
    source, target = bucket_factory("src"), bucket_factory("logs")
    _enable(s3, source, target, prefix="p/", key_format={
        "PartitionedPrefix": {"PartitionDateSource": "EventTime"}})
    got = s3.get_bucket_logging(Bucket=source)["LoggingEnabled"]
    assert got["TargetObjectKeyFormat"] == {"PartitionedPrefix": {"PartitionDateSource": "EventTime"}}
    s3.put_object(Bucket=source, Key="k", Body=b"x")
    keys, lines = _delivered(s3, basalt, target, "p/")
    owner = s3.list_buckets()["Owner"]["ID"]
    assert keys and all(re.fullmatch(
        rf"p/{owner}/[a-z0-9-]+/{source}/\d{{4}}/\d\d/\d\d/\d{{4}}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9A-F]{{16}}", k)
        for k in keys), keys
    assert any(" REST.PUT.OBJECT k " in line for line in lines)


def test_bad_logging_configurations_are_refused(s3, basalt, bucket_factory):
    source = bucket_factory("src")
    with s3_error("InvalidTargetBucketForLogging", 400):
        _enable(s3, source, "no-such-target-bucket-xyz")
    with s3_error("NoSuchBucket", 404):
        _enable(s3, "no-such-source-bucket-xyz", source)
    other = client_of(basalt, make_user(basalt, "readwrite"))
    foreign = bucket_factory("foreign")
    # A bucket another user owns cannot receive this bucket's logs.
    theirs = f"{foreign}-theirs"
    other.create_bucket(Bucket=theirs)
    try:
        with s3_error("InvalidTargetBucketForLogging", 400):
            _enable(s3, source, theirs)
    finally:
        other.delete_bucket(Bucket=theirs)
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=source)


def test_an_unknown_partition_date_source_is_malformed(s3, bucket_factory):
    source, target = bucket_factory("src"), bucket_factory("logs")
    with s3_error("MalformedXML", 400):
        s3.put_bucket_logging(Bucket=source, BucketLoggingStatus={"LoggingEnabled": {
            "TargetBucket": target, "TargetPrefix": "log/",
            "TargetObjectKeyFormat": {"PartitionedPrefix": {"PartitionDateSource": "kaboom"}}}})
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=source)
