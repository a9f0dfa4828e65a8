"""aws-cli (v1, from the venv) end-to-end tests against a live Basalt server."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import unique_bucket_name
from helpers import md5_hex

MiB = 1024 * 1024
AWS_BIN = Path(sys.executable).parent / "aws"


@pytest.fixture
def aws(basalt):
    """Run `aws --endpoint-url <basalt> ...`; returns CompletedProcess (text)."""

    def run(*args: str, check: bool = True, json_out: bool = False):
        cmd = [str(AWS_BIN), "--endpoint-url", basalt.endpoint, *args]
        if json_out:
            cmd += ["--output", "json"]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ.copy(),
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} failed (rc={proc.returncode})\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        if json_out and check:
            return json.loads(proc.stdout) if proc.stdout.strip() else {}
        return proc

    return run


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_aws_env_is_clean(basalt, aws):
    assert "AWS_CA_BUNDLE" not in os.environ
    assert "AWS_PROFILE" not in os.environ
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert os.environ["AWS_ACCESS_KEY_ID"] == basalt.access_key
    out = aws("configure", "list").stdout
    assert "us-east-1" in out


def test_mb_ls_rb(aws, s3):
    name = unique_bucket_name("cli")
    out = aws("s3", "mb", f"s3://{name}")
    assert f"make_bucket: {name}" in out.stdout
    assert name in aws("s3", "ls").stdout
    s3.head_bucket(Bucket=name)

    aws("s3", "rb", f"s3://{name}")
    assert name not in aws("s3", "ls").stdout


def test_cp_small_and_multipart(aws, s3, bucket, tmp_path):
    small = _write(tmp_path / "up" / "small.bin", os.urandom(1000))
    big_data = os.urandom(20 * MiB + 123)
    big = _write(tmp_path / "up" / "big.bin", big_data)

    aws("s3", "cp", str(small), f"s3://{bucket}/files/small.bin")
    aws("s3", "cp", str(big), f"s3://{bucket}/files/big.bin")

    # Default multipart threshold/chunksize is 8 MiB -> 3 parts.
    head = s3.head_object(Bucket=bucket, Key="files/big.bin")
    assert head["ContentLength"] == len(big_data)
    assert head["ETag"].endswith('-3"'), head["ETag"]
    head_small = s3.head_object(Bucket=bucket, Key="files/small.bin")
    assert head_small["ETag"] == f'"{md5_hex(small.read_bytes())}"'

    listing = aws("s3", "ls", f"s3://{bucket}/files/").stdout
    assert "small.bin" in listing and "big.bin" in listing
    assert str(len(big_data)) in listing

    down = tmp_path / "down"
    down.mkdir()
    # Large download goes through ranged GETs in aws-cli.
    aws("s3", "cp", f"s3://{bucket}/files/big.bin", str(down / "big.bin"))
    aws("s3", "cp", f"s3://{bucket}/files/small.bin", str(down / "small.bin"))
    assert filecmp.cmp(big, down / "big.bin", shallow=False)
    assert filecmp.cmp(small, down / "small.bin", shallow=False)

    # Server-side copy via the CLI (CopyObject / UploadPartCopy for large).
    aws("s3", "cp", f"s3://{bucket}/files/small.bin", f"s3://{bucket}/copy/small.bin")
    assert s3.get_object(Bucket=bucket, Key="copy/small.bin")["Body"].read() == small.read_bytes()

    aws("s3", "rm", f"s3://{bucket}/files/small.bin")
    listing = aws("s3", "ls", f"s3://{bucket}/files/").stdout
    assert "small.bin" not in listing and "big.bin" in listing


def test_sync_roundtrip_and_delete(aws, s3, bucket, tmp_path):
    src = tmp_path / "src"
    files = {
        "a.txt": b"alpha\n",
        "nested/b.txt": b"bravo\n" * 100,
        "nested/deeper/c.bin": os.urandom(70_000),
        "space name.txt": b"with space",
    }
    # Local mtimes in the past: `aws s3 sync` re-uploads when the local file
    # looks newer than the object's (second-granular) LastModified.
    past = time.time() - 3600
    for rel, data in files.items():
        os.utime(_write(src / rel, data), (past, past))

    out = aws("s3", "sync", str(src), f"s3://{bucket}/mirror")
    assert out.stdout.count("upload:") == len(files)

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"mirror/{rel}" for rel in files)

    # Second sync is a no-op.
    out = aws("s3", "sync", str(src), f"s3://{bucket}/mirror")
    assert "upload:" not in out.stdout

    dst = tmp_path / "dst"
    aws("s3", "sync", f"s3://{bucket}/mirror", str(dst))
    for rel, data in files.items():
        assert (dst / rel).read_bytes() == data

    # Delete locally and sync with --delete.
    (src / "a.txt").unlink()
    out = aws("s3", "sync", "--delete", str(src), f"s3://{bucket}/mirror")
    assert "delete:" in out.stdout
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert "mirror/a.txt" not in keys
    assert len(keys) == len(files) - 1

    recursive = aws("s3", "ls", "--recursive", f"s3://{bucket}/").stdout
    assert "mirror/nested/deeper/c.bin" in recursive

    aws("s3", "rm", "--recursive", f"s3://{bucket}/mirror")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_s3api_put_head_list(aws, bucket, tmp_path):
    body = _write(tmp_path / "body.json", b'{"hello": "world"}')
    put = aws(
        "s3api",
        "put-object",
        "--bucket",
        bucket,
        "--key",
        "api/doc.json",
        "--body",
        str(body),
        "--content-type",
        "application/json",
        "--metadata",
        "owner=tests,purpose=e2e",
        json_out=True,
    )
    assert put["ETag"] == f'"{md5_hex(body.read_bytes())}"'

    head = aws("s3api", "head-object", "--bucket", bucket, "--key", "api/doc.json", json_out=True)
    assert head["ContentLength"] == len(body.read_bytes())
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"owner": "tests", "purpose": "e2e"}
    assert head["ETag"] == put["ETag"]

    for i in range(3):
        aws("s3api", "put-object", "--bucket", bucket, "--key", f"api/item-{i}", "--body", str(body))
    aws("s3api", "put-object", "--bucket", bucket, "--key", "other/x", "--body", str(body))

    listing = aws(
        "s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "api/", json_out=True
    )
    assert [o["Key"] for o in listing["Contents"]] == [
        "api/doc.json",
        "api/item-0",
        "api/item-1",
        "api/item-2",
    ]

    # CLI auto-pagination with a small page size still yields everything.
    listing = aws(
        "s3api", "list-objects-v2", "--bucket", bucket, "--page-size", "2", json_out=True
    )
    assert len(listing["Contents"]) == 5


def test_cli_errors(aws, bucket):
    missing = unique_bucket_name("nope")
    proc = aws("s3", "ls", f"s3://{missing}", check=False)
    assert proc.returncode != 0
    assert "NoSuchBucket" in proc.stderr

    proc = aws("s3api", "head-object", "--bucket", bucket, "--key", "missing", check=False)
    assert proc.returncode != 0
    assert "404" in proc.stderr

    proc = aws("s3api", "get-object", "--bucket", bucket, "--key", "missing", os.devnull, check=False)
    assert proc.returncode != 0
    assert "NoSuchKey" in proc.stderr


def test_cli_bad_credentials(basalt, bucket):
    env = os.environ.copy()
    env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret"
    proc = subprocess.run(
        [str(AWS_BIN), "--endpoint-url", basalt.endpoint, "s3", "ls", f"s3://{bucket}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert "SignatureDoesNotMatch" in proc.stderr
