"""ACLs, object ownership, public access blocks and expected bucket owners through boto3, with
anonymous requests over plain HTTP: what each grants, what each refuses, and that a refused
write leaves nothing stored."""

from __future__ import annotations

import json

import pytest

from helpers import client_of, http, make_user, s3_error

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
PUBLIC_READ_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                   "Resource": "arn:aws:s3:::{bucket}/*"}],
}


@pytest.fixture
def acl_bucket(s3, bucket):
    """A bucket whose ACLs count (ObjectWriter)."""
    s3.put_bucket_ownership_controls(
        Bucket=bucket,
        OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]},
    )
    return bucket


def anonymous(basalt, bucket, key="", method="GET", data=None):
    path = f"/{bucket}/{key}" if key else f"/{bucket}"
    return http(basalt.endpoint + path, method=method, data=data)[0]


def canonical_id(client):
    return client.list_buckets()["Owner"]["ID"]


def test_new_buckets_have_acls_disabled(s3, basalt, bucket):
    rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert len(acl["Owner"]["ID"]) == 64
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    with s3_error("AccessControlListNotSupported", 400):
        s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    with s3_error("AccessControlListNotSupported", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    with s3_error("404", 404):
        s3.head_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="ok", Body=b"x", ACL="bucket-owner-full-control")
    assert anonymous(basalt, bucket, "ok") == 403


def test_create_bucket_with_acl_needs_ownership_that_allows_it(s3, basalt):
    from conftest import unique_bucket_name

    name = unique_bucket_name("acl")
    with s3_error("InvalidBucketAclWithObjectOwnership", 400):
        s3.create_bucket(Bucket=name, ACL="public-read")
    with s3_error("404", 404):
        s3.head_bucket(Bucket=name)
    s3.create_bucket(Bucket=name, ACL="public-read", ObjectOwnership="ObjectWriter")
    try:
        assert anonymous(basalt, name) == 200
        grants = s3.get_bucket_acl(Bucket=name)["Grants"]
        assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in grants
    finally:
        s3.delete_bucket(Bucket=name)


def test_public_read_and_public_read_write(s3, basalt, acl_bucket):
    s3.put_object(Bucket=acl_bucket, Key="private", Body=b"p")
    s3.put_object(Bucket=acl_bucket, Key="public", Body=b"q", ACL="public-read")
    assert anonymous(basalt, acl_bucket, "public") == 200
    assert anonymous(basalt, acl_bucket, "private") == 403
    assert anonymous(basalt, acl_bucket) == 403, "the bucket itself is private"
    s3.put_bucket_acl(Bucket=acl_bucket, ACL="public-read")
    assert anonymous(basalt, acl_bucket) == 200
    assert anonymous(basalt, acl_bucket, "missing") == 404
    assert anonymous(basalt, acl_bucket, "anon", "PUT", b"abc") == 403
    s3.put_bucket_acl(Bucket=acl_bucket, ACL="public-read-write")
    assert anonymous(basalt, acl_bucket, "anon", "PUT", b"abc") == 200
    assert s3.get_object(Bucket=acl_bucket, Key="anon")["Body"].read() == b"abc"
    s3.put_object_acl(Bucket=acl_bucket, Key="public", ACL="private")
    assert anonymous(basalt, acl_bucket, "public") == 403


def test_grants_to_users_by_canonical_id(s3, basalt, acl_bucket):
    lister = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]})
    alt = client_of(basalt, make_user(basalt, lister))
    alt_id = canonical_id(alt)
    s3.put_object(Bucket=acl_bucket, Key="doc", Body=b"hello")
    with s3_error("AccessDenied", 403):
        alt.get_object(Bucket=acl_bucket, Key="doc")
    s3.put_object_acl(Bucket=acl_bucket, Key="doc", GrantRead=f'id="{alt_id}"')
    assert alt.get_object(Bucket=acl_bucket, Key="doc")["Body"].read() == b"hello"
    with s3_error("AccessDenied", 403):
        alt.list_objects_v2(Bucket=acl_bucket)

    owner = s3.get_bucket_acl(Bucket=acl_bucket)["Owner"]
    s3.put_bucket_acl(Bucket=acl_bucket, AccessControlPolicy={
        "Owner": owner,
        "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"},
            {"Grantee": {"Type": "CanonicalUser", "ID": alt_id}, "Permission": "WRITE"},
        ],
    })
    alt.put_object(Bucket=acl_bucket, Key="from-alt", Body=b"w")
    acl = s3.get_object_acl(Bucket=acl_bucket, Key="from-alt")
    assert acl["Owner"]["ID"] == alt_id, "the writer owns what it writes"
    alt.delete_object(Bucket=acl_bucket, Key="from-alt")

    with s3_error("InvalidArgument", 400):
        s3.put_bucket_acl(Bucket=acl_bucket, GrantRead='id="' + "0" * 64 + '"')
    with s3_error("UnresolvableGrantByEmailAddress", 400):
        s3.put_bucket_acl(Bucket=acl_bucket, GrantRead='emailAddress="nobody@example.com"')
    with s3_error("AccessDenied", 403):
        s3.put_bucket_acl(Bucket=acl_bucket, AccessControlPolicy={
            "Owner": {"ID": alt_id}, "Grants": []})
    grants = s3.get_bucket_acl(Bucket=acl_bucket)["Grants"]
    assert len(grants) == 2, "refused ACLs changed nothing"


def test_public_access_block(s3, basalt, acl_bucket):
    s3.put_object(Bucket=acl_bucket, Key="was-public", Body=b"x", ACL="public-read")
    assert anonymous(basalt, acl_bucket, "was-public") == 200
    with s3_error("NoSuchPublicAccessBlockConfiguration", 404):
        s3.get_public_access_block(Bucket=acl_bucket)
    config = {"BlockPublicAcls": True, "IgnorePublicAcls": True,
              "BlockPublicPolicy": True, "RestrictPublicBuckets": False}
    s3.put_public_access_block(Bucket=acl_bucket, PublicAccessBlockConfiguration=config)
    got = s3.get_public_access_block(Bucket=acl_bucket)["PublicAccessBlockConfiguration"]
    assert got == config
    assert anonymous(basalt, acl_bucket, "was-public") == 403
    with s3_error("AccessDenied", 403):
        s3.put_object(Bucket=acl_bucket, Key="new", Body=b"x", ACL="public-read")
    with s3_error("404", 404):
        s3.head_object(Bucket=acl_bucket, Key="new")
    policy = json.dumps(PUBLIC_READ_POLICY).replace("{bucket}", acl_bucket)
    with s3_error("AccessDenied", 403):
        s3.put_bucket_policy(Bucket=acl_bucket, Policy=policy)

    s3.put_public_access_block(Bucket=acl_bucket, PublicAccessBlockConfiguration={
        "RestrictPublicBuckets": True})
    s3.put_bucket_policy(Bucket=acl_bucket, Policy=policy)
    assert s3.get_bucket_policy_status(Bucket=acl_bucket)["PolicyStatus"]["IsPublic"] is True
    s3.put_object(Bucket=acl_bucket, Key="plain", Body=b"x")
    assert anonymous(basalt, acl_bucket, "plain") == 403
    s3.delete_public_access_block(Bucket=acl_bucket)
    assert anonymous(basalt, acl_bucket, "plain") == 200
    s3.delete_bucket_policy(Bucket=acl_bucket)
    with s3_error("NoSuchBucketPolicy", 404):
        s3.get_bucket_policy_status(Bucket=acl_bucket)


def test_ownership_controls(s3, acl_bucket):
    s3.put_bucket_acl(Bucket=acl_bucket, ACL="public-read")
    with s3_error("InvalidBucketAclWithObjectOwnership", 400):
        s3.put_bucket_ownership_controls(
            Bucket=acl_bucket,
            OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        )
    with s3_error("MalformedXML", 400):
        s3.put_bucket_ownership_controls(
            Bucket=acl_bucket,
            OwnershipControls={"Rules": [{"ObjectOwnership": "Whoever"}]},
        )
    s3.delete_bucket_ownership_controls(Bucket=acl_bucket)
    with s3_error("OwnershipControlsNotFoundError", 404):
        s3.get_bucket_ownership_controls(Bucket=acl_bucket)


def test_expected_bucket_owner(s3, bucket):
    owner = canonical_id(s3)
    s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=owner)
    with s3_error("AccessDenied", 403):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ExpectedBucketOwner="111122223333")
    with s3_error("404", 404):
        s3.head_object(Bucket=bucket, Key="k")
    with s3_error("AccessDenied", 403):
        s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"},
                       ExpectedSourceBucketOwner="111122223333")
