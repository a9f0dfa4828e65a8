"""Small assertion helpers shared by the test modules."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import subprocess
import urllib.error
import urllib.request
import zlib

import pytest
from botocore.exceptions import ClientError


@contextlib.contextmanager
def s3_error(code: str | tuple[str, ...], status: int | None = None):
    """Assert that the block raises a botocore ClientError with the given code(s)/status."""
    codes = (code,) if isinstance(code, str) else tuple(code)
    with pytest.raises(ClientError) as excinfo:
        yield excinfo
    err = excinfo.value.response.get("Error", {})
    got_code = err.get("Code")
    got_status = excinfo.value.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    assert got_code in codes, f"expected error code {codes}, got {got_code!r} (HTTP {got_status}): {err}"
    if status is not None:
        assert got_status == status, f"expected HTTP {status}, got {got_status} ({got_code}): {err}"


def status_of(resp: dict) -> int:
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def crc32_b64(data: bytes) -> str:
    return base64.b64encode((zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")).decode()


def multipart_etag(parts: list[bytes]) -> str:
    """The S3 multipart ETag: md5 of the concatenated binary part md5s, '-N'."""
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


# ---- users, keys and anonymous HTTP ----

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def admin_as(basalt, user, *args):
    """`basalt admin --json ARGS` signed with `user`'s (name, access key, secret) keys."""
    _, access, secret = user
    return subprocess.run(
        [str(_binary()), "admin", "--json", "--endpoint", basalt.endpoint,
         "--access-key", access, "--secret-key", secret, *args],
        capture_output=True, text=True, timeout=60,
    )


def admin(basalt, *args):
    out = admin_as(basalt, ("root", basalt.access_key, basalt.secret_key), *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


_counter = iter(range(10**6))


def stop_process(proc: subprocess.Popen) -> None:
    """Terminates a child process (killing it if it does not exit within 10 s)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def make_user(basalt, *policies):
    name = f"user{next(_counter)}-{id(policies) % 10000}"
    admin(basalt, "user", "add", name)
    if policies:
        admin(basalt, "policy", name, *policies)
    key = admin(basalt, "key", "create", name)
    return name, key["access_key"], key["secret_key"]


def client_of(basalt, user):
    _, access, secret = user
    return basalt.client(access_key=access, secret_key=secret)


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def http(url, method="GET", data=None):
    try:
        with OPENER.open(urllib.request.Request(url, method=method, data=data), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _binary():
    from conftest import _binary_path

    return _binary_path()
