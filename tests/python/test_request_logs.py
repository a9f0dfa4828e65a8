"""The server's log names the request each line belongs to: `request{id=…}` with the id the
client got as `x-amz-request-id`, so a client's failure can be found in the log."""

from __future__ import annotations

import time

import boto3
from botocore.config import Config

from helpers import s3_error


def test_log_lines_name_the_request_id_the_client_saw(basalt, bucket):
    # The first node's log is `basalt.log_path`: ask that node.
    refused = boto3.session.Session().client(
        "s3", endpoint_url=basalt.endpoints[0], aws_access_key_id=basalt.access_key,
        aws_secret_access_key="not-the-secret", region_name=basalt.region,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}))
    with s3_error("SignatureDoesNotMatch", 403) as failure:
        refused.list_objects_v2(Bucket=bucket)
    request_id = failure.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    deadline = time.monotonic() + 10
    while True:
        lines = [l for l in basalt.log_path.read_text(errors="replace").splitlines()
                 if f"request{{id={request_id}}}" in l]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert any("denied" in l and "SignatureDoesNotMatch" in l for l in lines), lines
