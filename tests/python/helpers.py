"""Small assertion helpers shared by the test modules."""

from __future__ import annotations

import base64
import contextlib
import hashlib
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
