"""STS AssumeRole through boto3: a user assumes a role and gets temporary credentials with the
role's rights; the session token is required. (Web identities are tested in Rust, which signs
its own ID tokens: crates/basalt/tests/sts.rs.)"""

from __future__ import annotations

import boto3
from botocore.config import Config

from helpers import s3_error
from test_iam import make_user


def sts_client(basalt, access, secret):
    return boto3.session.Session().client(
        "sts", endpoint_url=basalt.endpoint, aws_access_key_id=access,
        aws_secret_access_key=secret, region_name=basalt.region,
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_assume_role_gives_the_role_rights_not_the_users(s3, basalt, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    _, access, secret = make_user(basalt)  # no policies of its own
    creds = sts_client(basalt, access, secret).assume_role(
        RoleArn="arn:aws:iam::basalt:role/reader", RoleSessionName="nightly-job"
    )["Credentials"]
    assert creds["AccessKeyId"].startswith("BS") and creds["SessionToken"]
    session = boto3.session.Session().client(
        "s3", endpoint_url=basalt.endpoint, region_name=basalt.region,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )
    assert session.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
    with s3_error("AccessDenied", 403):
        session.put_object(Bucket=bucket, Key="w", Body=b"x")
    forged = boto3.session.Session().client(
        "s3", endpoint_url=basalt.endpoint, region_name=basalt.region,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"][:-4] + "AAAA",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}),
    )
    with s3_error("InvalidToken", 400):
        forged.get_object(Bucket=bucket, Key="k")


def test_assume_role_refuses_unknown_roles_and_anonymous_callers(basalt):
    _, access, secret = make_user(basalt)
    with s3_error("ValidationError", 400):
        sts_client(basalt, access, secret).assume_role(
            RoleArn="arn:aws:iam::basalt:role/missing", RoleSessionName="probe"
        )
    with s3_error("InvalidIdentityToken", 400):
        sts_client(basalt, access, secret).assume_role_with_web_identity(
            RoleArn="arn:aws:iam::basalt:role/reader", RoleSessionName="probe",
            WebIdentityToken="a.b.c",
        )
