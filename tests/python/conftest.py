"""Shared fixtures for the Basalt Python end-to-end suite.

A single Basalt server is spawned per test session (binary from ``BASALT_BIN``,
default ``target/release/basalt`` under the repo root) on a free loopback port
with a throw-away data directory. Every test gets its own fresh bucket.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from helpers import stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOT_USER = "basaltadmin"
ROOT_PASSWORD = "basaltsecret123"
REGION = "us-east-1"
READY_TIMEOUT_S = 30.0

# Environment variables that could redirect or alter AWS clients. The machine
# exports AWS_CA_BUNDLE (pointless for plain-http loopback and breaks some
# clients), and a developer may have a profile or endpoint configured.
_AWS_VARS_TO_DROP = (
    "AWS_CA_BUNDLE",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_S3_ADDRESSING_STYLE",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_RESPONSE_CHECKSUM_VALIDATION",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
)

# Loopback traffic must never go through a proxy.
_PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def _sanitize_env() -> None:
    for var in _AWS_VARS_TO_DROP + _PROXY_VARS:
        os.environ.pop(var, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


# Done at import time so that every client created anywhere in the session
# (boto3, s3fs, pyarrow, polars, aws-cli subprocesses) sees a clean environment.
_sanitize_env()


@dataclass
class BasaltServer:
    # e.g. http://127.0.0.1:54321; with BASALT_TEST_CLUSTER, one per node of the cluster, and
    # each use of `endpoint` (each client, each URL a test builds) takes the next node in turn.
    endpoints: list
    access_key: str
    secret_key: str
    region: str
    data_dir: Path
    log_path: Path
    aws_config_path: Path
    process: subprocess.Popen = field(repr=False)
    _turn: int = 0

    @property
    def endpoint(self) -> str:
        endpoint = self.endpoints[self._turn % len(self.endpoints)]
        self._turn += 1
        return endpoint

    @property
    def host_port(self) -> str:
        return self.endpoint.removeprefix("http://")

    def client(self, access_key: str | None = None, secret_key: str | None = None, **config_kw):
        """A boto3 S3 client (path-style, no retries) against this server."""
        # SigV4 everywhere (botocore would otherwise presign with SigV2).
        config_kw.setdefault("signature_version", "s3v4")
        cfg = Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=60,
            **config_kw,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key if access_key is not None else self.access_key,
            aws_secret_access_key=secret_key if secret_key is not None else self.secret_key,
            region_name=self.region,
            config=cfg,
        )

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "<no server log>"
        return "\n".join(lines[-n:])


_SERVER: BasaltServer | None = None
_SERVER_LOG_TAIL: str | None = None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary_path() -> Path:
    p = Path(os.environ.get("BASALT_BIN", "target/release/basalt"))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


def _wait_ready(proc: subprocess.Popen, endpoint: str, log_path: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + READY_TIMEOUT_S
    last_err = "no attempt"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"basalt exited with code {proc.returncode} before becoming ready; log:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        try:
            with opener.open(endpoint + "/health/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
                last_err = f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            last_err = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last_err = repr(e)
        time.sleep(0.1)
    raise RuntimeError(
        f"basalt not ready after {READY_TIMEOUT_S}s (last: {last_err}); log:\n"
        + log_path.read_text(errors="replace")[-4000:]
    )


@pytest.fixture(scope="session")
def basalt() -> BasaltServer:
    """Spawn one Basalt server for the whole session and yield its coordinates."""
    global _SERVER
    binary = _binary_path()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"Basalt binary not found at {binary}; build it (cargo build --release) "
            "or set BASALT_BIN",
            pytrace=False,
        )

    workdir = Path(tempfile.mkdtemp(prefix="basalt-pytest-"))
    data_dir = workdir / "data"
    data_dir.mkdir()
    log_path = workdir / "server.log"

    # aws-cli configuration: path-style addressing, fixed region, no profiles.
    aws_config = workdir / "aws-config"
    aws_config.write_text(
        f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n"
    )

    port = _free_port()
    host_port = f"127.0.0.1:{port}"
    endpoint = f"http://{host_port}"

    # Only the credentials come from the environment; drop any other BASALT_*
    # setting (config file, domain, region, ...) a developer may have exported.
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASALT_")}
    env["BASALT_ROOT_USER"] = ROOT_USER
    env["BASALT_ROOT_PASSWORD"] = ROOT_PASSWORD
    env["BASALT_LOG"] = os.environ.get("BASALT_LOG", "info")

    # BASALT_TEST_DRIVES=6 runs the suite on a six-drive node (ec:4+2 by default, 64 KiB
    # chunks so that even small test objects span several stripes).
    drives = int(os.environ.get("BASALT_TEST_DRIVES", "1"))
    storage = ["--data", str(data_dir)]
    if drives > 1:
        storage = []
        for i in range(1, drives + 1):
            storage += ["--data", str(workdir / f"drive{i}")]
        storage += ["--meta-dir", str(data_dir), "--chunk-size", "65536"]

    # BASALT_TEST_REMOTE=1: two local drives and four served by two `basalt drive-server`
    # processes on 127.0.0.2 and 127.0.0.3 (ec:4+2, 64 KiB chunks): every test then goes
    # through the node-to-node path.
    drive_servers = []
    if os.environ.get("BASALT_TEST_REMOTE"):
        env["BASALT_CLUSTER_SECRET"] = "python-suite-cluster-secret-0123"
        storage = ["--data", str(workdir / "l1"), "--data", str(workdir / "l2")]
        for host in ("127.0.0.2", "127.0.0.3"):
            node_port = _free_port()
            node_log = open(workdir / f"node-{host}.log", "wb")
            drive_servers.append((subprocess.Popen(
                [str(binary), "drive-server", "--address", f"{host}:{node_port}",
                 "--drive", f"x={workdir / host / 'x'}", "--drive", f"y={workdir / host / 'y'}"],
                stdout=node_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            ), node_log))
            storage += ["--data", f"http://{host}:{node_port}/x", "--data", f"http://{host}:{node_port}/y"]
        storage += ["--meta-dir", str(data_dir), "--chunk-size", "65536", "--redundancy", "ec:4+2"]

    # BASALT_TEST_CLUSTER=1: a cluster of three `basalt server --node-name` processes on
    # 127.0.0.1-3 (metadata replicated by Raft, stripes ec:2+1 over the nodes' drives, 64 KiB
    # chunks); clients take the nodes in turn, so a test's writes and reads cross nodes.
    cluster_nodes = []
    endpoints = [endpoint]
    if os.environ.get("BASALT_TEST_CLUSTER"):
        env["BASALT_CLUSTER_SECRET"] = "python-suite-cluster-secret-0123"
        rpc = [f"127.0.0.{i}:{_free_port()}" for i in (1, 2, 3)]
        s3_ports = [port, _free_port(), _free_port()]
        endpoints = [f"http://127.0.0.{i + 1}:{s3_ports[i]}" for i in range(3)]

        def node_flags(i):
            return ["--node-name", f"node{i + 1}", "--rpc-address", rpc[i],
                    "--peers", ",".join(rpc), "--bootstrap-expect", "3",
                    "--data", str(workdir / f"node{i + 1}" / "data"),
                    "--meta-dir", str(workdir / f"node{i + 1}" / "meta"),
                    "--chunk-size", "65536"]
        storage = node_flags(0)
        extra_node_flags = [node_flags(1), node_flags(2)]

    # STS: roles any user may assume, with read-only rights (test_sts.py) and with read-write
    # rights (test_post_upload.py).
    roles = workdir / "sts-roles.json"
    roles.write_text(
        '{"roles": [{"name": "reader", "users": ["*"], "policies": ["readonly"]},'
        ' {"name": "writer", "users": ["*"], "policies": ["readwrite"]}]}'
    )
    storage += ["--sts-roles", str(roles)]
    # SSE-C over loopback HTTP (test_encryption.py); test_tls.py checks it over TLS without this.
    storage += ["--sse-c-over-http"]

    common_flags = ["--sts-roles", str(roles), "--sse-c-over-http"]
    if os.environ.get("BASALT_TEST_CLUSTER"):
        for i, flags in enumerate(extra_node_flags, start=1):
            node_log = open(workdir / f"node{i + 1}.log", "wb")
            cluster_nodes.append((subprocess.Popen(
                [str(binary), "server", "--address", endpoints[i].removeprefix("http://"),
                 *flags, *common_flags],
                stdout=node_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=str(workdir),
            ), node_log))
        drive_servers += cluster_nodes

    log_fh = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(binary), "server", "--address", host_port, *storage],
        stdout=log_fh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=str(workdir),
    )
    try:
        _wait_ready(proc, endpoint, log_path)
        for (node, _), node_endpoint in zip(cluster_nodes, endpoints[1:]):
            _wait_ready(node, node_endpoint, log_path)
    except Exception as e:
        stop_process(proc)
        log_fh.close()
        for node, node_log in drive_servers:
            stop_process(node)
            node_log.close()
        if not os.environ.get("BASALT_KEEP_DATA"):
            shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(str(e), pytrace=False)

    # Environment for subprocess clients (aws-cli) and env-reading libraries.
    os.environ["AWS_ACCESS_KEY_ID"] = ROOT_USER
    os.environ["AWS_SECRET_ACCESS_KEY"] = ROOT_PASSWORD
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ["AWS_REGION"] = REGION
    os.environ["AWS_CONFIG_FILE"] = str(aws_config)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(workdir / "no-such-credentials")

    server = BasaltServer(
        endpoints=endpoints,
        access_key=ROOT_USER,
        secret_key=ROOT_PASSWORD,
        region=REGION,
        data_dir=data_dir,
        log_path=log_path,
        aws_config_path=aws_config,
        process=proc,
    )
    _SERVER = server
    try:
        yield server
    finally:
        stop_process(proc)
        log_fh.close()
        for node, node_log in drive_servers:
            stop_process(node)
            node_log.close()
        global _SERVER_LOG_TAIL
        _SERVER_LOG_TAIL = server.log_tail(80)
        if os.environ.get("BASALT_KEEP_DATA"):
            print(f"\nbasalt data/log kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3(basalt: BasaltServer):
    """A boto3 S3 client authenticated as the root user."""
    return basalt.client()


def unique_bucket_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def _empty_and_delete(client, name: str) -> None:
    try:
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for up in page.get("Uploads", []):
                try:
                    client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
                except Exception:
                    pass
    except Exception:
        pass
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
            entries = page.get("Versions", []) + page.get("DeleteMarkers", [])
            keys = [{"Key": o["Key"], "VersionId": o["VersionId"]} for o in entries]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    except Exception:
        pass
    try:
        client.delete_bucket(Bucket=name)
    except Exception:
        pass


@pytest.fixture
def bucket_factory(s3):
    """Create any number of fresh buckets; all are emptied and removed afterwards."""
    created: list[str] = []

    def make(prefix: str = "t") -> str:
        name = unique_bucket_name(prefix)
        s3.create_bucket(Bucket=name)
        created.append(name)
        return name

    yield make
    for name in created:
        _empty_and_delete(s3, name)


@pytest.fixture
def bucket(bucket_factory) -> str:
    """A fresh, empty, uniquely named bucket for this test."""
    return bucket_factory()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _SERVER is not None and exitstatus not in (0, 5):
        terminalreporter.section("basalt server log (tail)")
        terminalreporter.write_line(_SERVER_LOG_TAIL or _SERVER.log_tail(80))
