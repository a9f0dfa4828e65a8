"""Users, access keys and policies through boto3, managed with `basalt admin`: canned and
custom identity policies, conditions, explicit deny, bucket policies (public read), revoked
keys and disabled users, and presigned URLs that were tampered with."""

from __future__ import annotations

import json

from helpers import admin, admin_as, client_of, doc, http, make_user, s3_error


def test_canned_policies(s3, basalt, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    reader = client_of(basalt, make_user(basalt, "readonly"))
    assert reader.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
    assert [o["Key"] for o in reader.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    with s3_error("AccessDenied", 403):
        reader.put_object(Bucket=bucket, Key="new", Body=b"x")
    with s3_error("AccessDenied", 403):
        reader.delete_object(Bucket=bucket, Key="k")

    writer = client_of(basalt, make_user(basalt, "writeonly"))
    writer.put_object(Bucket=bucket, Key="w", Body=b"x")
    with s3_error("AccessDenied", 403):
        writer.get_object(Bucket=bucket, Key="w")

    nobody = client_of(basalt, make_user(basalt))
    with s3_error("AccessDenied", 403):
        nobody.list_objects_v2(Bucket=bucket)

    full = client_of(basalt, make_user(basalt, "readwrite"))
    full.put_object(Bucket=bucket, Key="rw", Body=b"x")
    full.delete_object(Bucket=bucket, Key="rw")


def test_resources_wildcards_and_explicit_deny(s3, basalt, bucket):
    for key in ["public/a", "private/b"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    user = client_of(basalt, make_user(
        basalt,
        "readwrite",
        doc({"Effect": "Deny", "Action": ["s3:DeleteObject"], "Resource": f"arn:aws:s3:::{bucket}/*"}),
    ))
    user.put_object(Bucket=bucket, Key="public/new", Body=b"x")
    with s3_error("AccessDenied", 403):
        user.delete_object(Bucket=bucket, Key="public/a")

    scoped = client_of(basalt, make_user(
        basalt,
        doc({"Effect": "Allow", "Action": "s3:Get*", "Resource": f"arn:aws:s3:::{bucket}/public/*"}),
    ))
    assert scoped.get_object(Bucket=bucket, Key="public/a")["Body"].read() == b"x"
    with s3_error("AccessDenied", 403):
        scoped.get_object(Bucket=bucket, Key="private/b")


def test_conditions(s3, basalt, bucket):
    alice = client_of(basalt, make_user(basalt, doc({
        "Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
        "Condition": {"StringLike": {"s3:prefix": ["home/alice/*"]}},
    })))
    alice.list_objects_v2(Bucket=bucket, Prefix="home/alice/")
    with s3_error("AccessDenied", 403):
        alice.list_objects_v2(Bucket=bucket, Prefix="home/bob/")
    with s3_error("AccessDenied", 403):
        alice.list_objects_v2(Bucket=bucket)

    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    get = lambda cond: client_of(basalt, make_user(basalt, doc({
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::*", "Condition": cond,
    })))
    get({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}).get_object(Bucket=bucket, Key="k")
    with s3_error("AccessDenied", 403):
        get({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}).get_object(Bucket=bucket, Key="k")
    get({"DateLessThan": {"aws:CurrentTime": "2100-01-01T00:00:00Z"}}).get_object(Bucket=bucket, Key="k")
    with s3_error("AccessDenied", 403):
        get({"DateLessThan": {"aws:CurrentTime": "2001-01-01T00:00:00Z"}}).get_object(Bucket=bucket, Key="k")
    # Plain HTTP is not secure transport.
    with s3_error("AccessDenied", 403):
        get({"Bool": {"aws:SecureTransport": "true"}}).get_object(Bucket=bucket, Key="k")


def test_bucket_policy_public_read_and_user_grants(s3, basalt, bucket):
    s3.put_object(Bucket=bucket, Key="site/index.html", Body=b"<h1>hi</h1>")
    s3.put_object(Bucket=bucket, Key="secret", Body=b"no")
    url = f"{basalt.endpoint}/{bucket}/site/index.html"
    assert http(url)[0] == 403
    with s3_error("NoSuchBucketPolicy", 404):
        s3.get_bucket_policy(Bucket=bucket)
    with s3_error("MalformedPolicy", 400):
        s3.put_bucket_policy(Bucket=bucket, Policy='{"Statement": "nope"}')
    name, access, secret = make_user(basalt)
    policy = doc(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/site/*"},
        {"Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam::basalt:user/{name}"]},
         "Action": ["s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/uploads/*"},
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(policy)
    assert http(url) == (200, b"<h1>hi</h1>")
    assert http(f"{basalt.endpoint}/{bucket}/secret")[0] == 403
    assert http(f"{basalt.endpoint}/{bucket}/site/new", "PUT", b"x")[0] == 403
    granted = basalt.client(access_key=access, secret_key=secret)
    granted.put_object(Bucket=bucket, Key="uploads/a", Body=b"x")
    with s3_error("AccessDenied", 403):
        granted.put_object(Bucket=bucket, Key="elsewhere", Body=b"x")
    s3.delete_bucket_policy(Bucket=bucket)
    assert http(url)[0] == 403


def test_revoked_keys_disabled_users_and_wrong_secrets(s3, basalt, bucket):
    name, access, secret = make_user(basalt, "readwrite")
    user = basalt.client(access_key=access, secret_key=secret)
    user.list_objects_v2(Bucket=bucket)
    with s3_error("SignatureDoesNotMatch", 403):
        basalt.client(access_key=access, secret_key="x" * 40).list_objects_v2(Bucket=bucket)
    admin(basalt, "user", "disable", name)
    with s3_error("InvalidAccessKeyId", 403):
        user.list_objects_v2(Bucket=bucket)
    admin(basalt, "user", "enable", name)
    user.list_objects_v2(Bucket=bucket)
    listed = admin(basalt, "key", "list", name)
    assert [k["access_key"] for k in listed] == [access] and "secret_key" not in listed[0]
    admin(basalt, "key", "revoke", access)
    with s3_error("InvalidAccessKeyId", 403):
        user.list_objects_v2(Bucket=bucket)
    # The secret was shown once: it is neither logged nor stored in the clear.
    assert secret not in basalt.log_path.read_text(errors="replace")
    for path in basalt.data_dir.parent.rglob("*"):
        if path.is_file() and path.stat().st_size < 256 << 20:
            assert secret.encode() not in path.read_bytes(), path


def test_the_admin_api_needs_admin_rights(basalt):
    out = admin_as(basalt, make_user(basalt, "readwrite"), "user", "list")
    assert out.returncode != 0 and "403" in out.stderr


def test_an_admin_user_administers_within_its_policy(basalt):
    operator = make_user(basalt, "admin")
    out = admin_as(basalt, operator, "user", "add", "made-by-operator")
    assert out.returncode == 0, out.stderr
    out = admin_as(basalt, operator, "user", "list")
    assert out.returncode == 0 and "made-by-operator" in out.stdout

    # A user allowed to list users, and nothing else, can do exactly that.
    lister = make_user(basalt, doc({"Effect": "Allow", "Action": "admin:ListUsers", "Resource": "*"}))
    assert admin_as(basalt, lister, "user", "list").returncode == 0
    out = admin_as(basalt, lister, "user", "add", "made-by-lister")
    assert out.returncode != 0 and "403" in out.stderr
    assert "made-by-lister" not in json.dumps(admin(basalt, "user", "list"))

    # An explicit deny wins over the canned admin policy.
    fenced = make_user(basalt, "admin", doc({"Effect": "Deny", "Action": "admin:CreateAccessKey", "Resource": "*"}))
    out = admin_as(basalt, fenced, "key", "create", "made-by-operator")
    assert out.returncode != 0 and "403" in out.stderr

    # A disabled administrator is an administrator no more.
    admin(basalt, "user", "disable", operator[0])
    assert admin_as(basalt, operator, "user", "list").returncode != 0


def test_policy_variables_give_each_user_a_home(s3, basalt, bucket):
    home = doc(
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"arn:aws:s3:::{bucket}/home/${{aws:username}}/*"},
    )
    alice, bob = make_user(basalt, home), make_user(basalt, home)
    c = client_of(basalt, alice)
    c.put_object(Bucket=bucket, Key=f"home/{alice[0]}/notes.txt", Body=b"mine")
    assert c.get_object(Bucket=bucket, Key=f"home/{alice[0]}/notes.txt")["Body"].read() == b"mine"
    with s3_error("AccessDenied", 403):
        client_of(basalt, bob).get_object(Bucket=bucket, Key=f"home/{alice[0]}/notes.txt")
    with s3_error("AccessDenied", 403):
        c.put_object(Bucket=bucket, Key=f"home/{bob[0]}/x", Body=b"x")


def test_tampered_presigned_urls_are_refused(s3, basalt, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"A")
    s3.put_object(Bucket=bucket, Key="b", Body=b"B")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a"}, ExpiresIn=300)
    assert http(url) == (200, b"A")
    assert http(url.replace(f"/{bucket}/a?", f"/{bucket}/b?"))[0] == 403
    assert http(url.replace("X-Amz-Expires=300", "X-Amz-Expires=900"))[0] == 403
    assert http(url, "PUT", b"overwrite")[0] == 403
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"A"


def test_multi_delete_is_authorized_key_by_key(s3, basalt, bucket):
    for key in ["open/a", "protected/b"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    user = client_of(basalt, make_user(
        basalt,
        "readwrite",
        doc({"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{bucket}/protected/*"}),
    ))
    resp = user.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "open/a"}, {"Key": "protected/b"}]}
    )
    assert [d["Key"] for d in resp["Deleted"]] == ["open/a"]
    assert [(e["Key"], e["Code"]) for e in resp["Errors"]] == [("protected/b", "AccessDenied")]
    assert s3.get_object(Bucket=bucket, Key="protected/b")["Body"].read() == b"x"


def test_bypassing_governance_needs_its_own_permission(s3, basalt, bucket_factory):
    import datetime as dt

    b = bucket_factory("lock")
    s3.delete_bucket(Bucket=b)
    s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    until = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    vid = s3.put_object(
        Bucket=b, Key="g", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until
    )["VersionId"]
    deleter = client_of(basalt, make_user(basalt, doc(
        {"Effect": "Allow", "Action": ["s3:DeleteObject", "s3:GetObject"], "Resource": "arn:aws:s3:::*"}
    )))
    with s3_error("AccessDenied", 403):
        deleter.delete_object(Bucket=b, Key="g", VersionId=vid, BypassGovernanceRetention=True)
    admin_like = client_of(basalt, make_user(basalt, doc(
        {"Effect": "Allow", "Action": ["s3:DeleteObject", "s3:BypassGovernanceRetention"],
         "Resource": "arn:aws:s3:::*"}
    )))
    admin_like.delete_object(Bucket=b, Key="g", VersionId=vid, BypassGovernanceRetention=True)


def _user_arn(name):
    return f"arn:aws:iam::basalt:user/{name}"


def test_a_copy_source_is_judged_by_its_own_bucket_policy(s3, basalt, bucket_factory):
    source, target = bucket_factory("src"), bucket_factory("dst")
    s3.put_object(Bucket=source, Key="public/a", Body=b"shared")
    s3.put_object(Bucket=source, Key="private/b", Body=b"secret")
    name, access, secret = make_user(basalt)
    copier = basalt.client(access_key=access, secret_key=secret)
    # The target's owner writes a policy that names the source's objects: a bucket policy
    # speaks for its own bucket only, so it grants no read of another.
    s3.put_bucket_policy(Bucket=target, Policy=doc(
        {"Effect": "Allow", "Principal": {"AWS": [_user_arn(name)]}, "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{target}/*",
         "Condition": {"StringLike": {"s3:x-amz-copy-source": f"{source}/public/*"}}},
        {"Effect": "Allow", "Principal": {"AWS": [_user_arn(name)]}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{source}/*"}))
    with s3_error("AccessDenied", 403):
        copier.copy_object(Bucket=target, Key="a", CopySource={"Bucket": source, "Key": "public/a"})
    # The source's own policy lets the user read public/: that copy goes through.
    s3.put_bucket_policy(Bucket=source, Policy=doc(
        {"Effect": "Allow", "Principal": {"AWS": [_user_arn(name)]}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{source}/*"}))
    copier.copy_object(Bucket=target, Key="a", CopySource={"Bucket": source, "Key": "public/a"})
    assert s3.get_object(Bucket=target, Key="a")["Body"].read() == b"shared"
    # The target's condition on x-amz-copy-source holds the rest back.
    with s3_error("AccessDenied", 403):
        copier.copy_object(Bucket=target, Key="b", CopySource={"Bucket": source, "Key": "private/b"})
    with s3_error(("404", "NoSuchKey")):
        s3.head_object(Bucket=target, Key="b")


def test_conditions_on_object_tags(s3, basalt, bucket):
    name, access, secret = make_user(basalt)
    user = basalt.client(access_key=access, secret_key=secret)
    s3.put_object(Bucket=bucket, Key="open", Body=b"o", Tagging="security=public")
    s3.put_object(Bucket=bucket, Key="closed", Body=b"c", Tagging="security=private")
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        {"Effect": "Allow", "Principal": {"AWS": [_user_arn(name)]}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/security": "public"}}},
        {"Effect": "Allow", "Principal": {"AWS": [_user_arn(name)]}, "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/team": "data"}}}))
    assert user.get_object(Bucket=bucket, Key="open")["Body"].read() == b"o"
    with s3_error("AccessDenied", 403):
        user.get_object(Bucket=bucket, Key="closed")
    user.put_object(Bucket=bucket, Key="tagged", Body=b"t", Tagging="team=data")
    with s3_error("AccessDenied", 403):
        user.put_object(Bucket=bucket, Key="untagged", Body=b"u")
    with s3_error("AccessDenied", 403):
        user.put_object(Bucket=bucket, Key="other", Body=b"u", Tagging="team=ops")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["closed", "open", "tagged"]


def test_the_root_user_is_held_by_a_bucket_policys_deny(s3, bucket):
    s3.put_bucket_policy(Bucket=bucket, Policy=doc(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}}))
    with s3_error("AccessDenied", 403):
        s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    s3.put_object(Bucket=bucket, Key="sealed", Body=b"x", ServerSideEncryption="AES256")
    # A policy that locks the owner out can still be read and removed by it.
    assert "Deny" in s3.get_bucket_policy(Bucket=bucket)["Policy"]
    s3.delete_bucket_policy(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
