"""boto3 over TLS: a node started with --tls-self-signed serves S3 to clients that trust its
certificate, and refuses those that do not."""

from __future__ import annotations

import os
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import SSLError

from conftest import ROOT_PASSWORD, ROOT_USER, _binary_path, _free_port
from helpers import stop_process


@pytest.fixture(scope="module")
def tls_node():
    workdir = Path(tempfile.mkdtemp(prefix="basalt-tls-"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASALT_")}
    env.update(BASALT_ROOT_USER=ROOT_USER, BASALT_ROOT_PASSWORD=ROOT_PASSWORD, BASALT_LOG="warn")
    proc = subprocess.Popen(
        [str(_binary_path()), "server", "--address", f"127.0.0.1:{port}",
         "--data", str(workdir / "data"), "--tls-self-signed", "--scrub-interval", "off"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    cert = workdir / "data" / "tls" / "cert.pem"
    context = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if context is None and cert.exists():
                context = ssl.create_default_context(cafile=str(cert))
            if context is not None:
                with urllib.request.urlopen(f"https://localhost:{port}/health/ready", context=context, timeout=2):
                    break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        stop_process(proc)
        pytest.fail("the TLS node did not become ready")
    yield f"https://localhost:{port}", str(cert)
    stop_process(proc)


def _client(endpoint, verify):
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, aws_access_key_id=ROOT_USER,
        aws_secret_access_key=ROOT_PASSWORD, region_name="us-east-1", verify=verify,
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )


def test_boto3_round_trip_over_tls(tls_node):
    endpoint, cert = tls_node
    s3 = _client(endpoint, cert)
    s3.create_bucket(Bucket="secure")
    s3.put_object(Bucket="secure", Key="k", Body=b"private bytes")
    assert s3.get_object(Bucket="secure", Key="k")["Body"].read() == b"private bytes"


def test_sse_c_over_tls(tls_node):
    # The node was started without --sse-c-over-http: customer keys are accepted over TLS only.
    endpoint, cert = tls_node
    s3 = _client(endpoint, cert)
    s3.create_bucket(Bucket="secure-c")
    key = bytes(range(32))
    s3.put_object(Bucket="secure-c", Key="k", Body=b"customer bytes",
                  SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    got = s3.get_object(Bucket="secure-c", Key="k", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert got["Body"].read() == b"customer bytes"
    assert got["SSECustomerAlgorithm"] == "AES256"


def test_untrusted_certificate_is_refused_by_the_client(tls_node):
    endpoint, _ = tls_node
    with pytest.raises(SSLError):
        _client(endpoint, True).list_buckets()
