//! ACLs, object ownership, public access blocks and expected bucket owners through the AWS
//! SDK, with anonymous requests on raw HTTP: what each grants, what each refuses, and that a
//! refused write stores nothing.
#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AccessControlPolicy, BucketCannedAcl, Grant, Grantee, ObjectCannedAcl, ObjectOwnership,
    OwnershipControls, OwnershipControlsRule, Permission, PublicAccessBlockConfiguration, Type,
};
use common::{Server, error_code, http_get, http_raw, status_of};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// A bucket that lets ACLs count (`ObjectWriter`), with `acl`.
async fn acl_bucket(client: &Client, bucket: &str, acl: Option<BucketCannedAcl>) {
    client
        .create_bucket()
        .bucket(bucket)
        .object_ownership(ObjectOwnership::ObjectWriter)
        .set_acl(acl)
        .send()
        .await
        .unwrap();
}

fn ownership(setting: ObjectOwnership) -> OwnershipControls {
    OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(setting)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

async fn put(client: &Client, bucket: &str, key: &str, acl: Option<ObjectCannedAcl>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .set_acl(acl)
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
}

fn anonymous_status(server: &Server, path: &str) -> u16 {
    status_of(&http_get(server.port, path).unwrap())
}

fn anonymous_put(server: &Server, path: &str) -> String {
    let request = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    );
    http_raw(server.port, request.as_bytes()).unwrap()
}

/// The canonical id of the user `client` signs as, from its ListBuckets owner.
async fn canonical_id_of(client: &Client) -> String {
    let listed = client.list_buckets().send().await.unwrap();
    listed.owner().unwrap().id().unwrap().to_owned()
}

#[tokio::test]
async fn new_buckets_have_acls_disabled_and_refuse_acl_writes() {
    let server = Server::start();
    let root = server.client();
    root.create_bucket().bucket("plain").send().await.unwrap();
    let controls = root
        .get_bucket_ownership_controls()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    let rules = controls.ownership_controls().unwrap().rules();
    assert_eq!(
        rules[0].object_ownership(),
        &ObjectOwnership::BucketOwnerEnforced
    );

    let acl = root.get_bucket_acl().bucket("plain").send().await.unwrap();
    let owner = acl.owner().unwrap();
    assert_eq!(owner.id().unwrap().len(), 64, "a canonical id");
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(acl.grants()[0].permission(), Some(&Permission::FullControl));
    assert_eq!(acl.grants()[0].grantee().unwrap().id(), owner.id());

    let err = root
        .put_bucket_acl()
        .bucket("plain")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessControlListNotSupported");
    let err = root
        .put_object()
        .bucket("plain")
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessControlListNotSupported");
    let err = root
        .head_object()
        .bucket("plain")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFound", "nothing stored");
    // What AWS accepts on such a bucket.
    put(
        &root,
        "plain",
        "owned",
        Some(ObjectCannedAcl::BucketOwnerFullControl),
    )
    .await;
    assert_eq!(anonymous_status(&server, "/plain/owned"), 403);

    let err = root
        .create_bucket()
        .bucket("public-at-birth")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidBucketAclWithObjectOwnership");
    let err = root
        .head_bucket()
        .bucket("public-at-birth")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFound", "no bucket made");
}

#[tokio::test]
async fn public_acls_let_anonymous_clients_list_read_and_write() {
    let server = Server::start();
    let root = server.client();
    acl_bucket(&root, "open", Some(BucketCannedAcl::PublicRead)).await;
    put(&root, "open", "private", None).await;
    put(&root, "open", "public", Some(ObjectCannedAcl::PublicRead)).await;

    assert_eq!(anonymous_status(&server, "/open"), 200, "public-read lists");
    assert_eq!(anonymous_status(&server, "/open/public"), 200);
    assert_eq!(anonymous_status(&server, "/open/private"), 403);
    let missing = http_get(server.port, "/open/missing").unwrap();
    assert_eq!(status_of(&missing), 404, "{missing}");
    assert!(missing.contains("NoSuchKey"), "{missing}");
    assert_eq!(
        status_of(&anonymous_put(&server, "/open/anon")),
        403,
        "public-read does not write"
    );

    let acl = root
        .get_object_acl()
        .bucket("open")
        .key("public")
        .send()
        .await
        .unwrap();
    assert!(acl.grants().iter().any(|g| {
        g.grantee().and_then(|e| e.uri()) == Some(ALL_USERS)
            && g.permission() == Some(&Permission::Read)
    }));

    root.put_bucket_acl()
        .bucket("open")
        .acl(BucketCannedAcl::PublicReadWrite)
        .send()
        .await
        .unwrap();
    let written = anonymous_put(&server, "/open/anon");
    assert_eq!(status_of(&written), 200, "{written}");
    let body = root
        .get_object()
        .bucket("open")
        .key("anon")
        .send()
        .await
        .unwrap();
    assert_eq!(body.body.collect().await.unwrap().to_vec(), b"abc");

    root.put_object_acl()
        .bucket("open")
        .key("public")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous_status(&server, "/open/public"),
        403,
        "made private"
    );

    // Ownership controls: ACLs switched off again ignore every grant.
    root.put_bucket_acl()
        .bucket("open")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    put(&root, "open", "public", Some(ObjectCannedAcl::PublicRead)).await;
    root.put_bucket_ownership_controls()
        .bucket("open")
        .ownership_controls(ownership(ObjectOwnership::BucketOwnerEnforced))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous_status(&server, "/open/public"),
        403,
        "ACLs ignored"
    );
    root.delete_bucket_ownership_controls()
        .bucket("open")
        .send()
        .await
        .unwrap();
    let err = root
        .get_bucket_ownership_controls()
        .bucket("open")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "OwnershipControlsNotFoundError");
    assert_eq!(
        anonymous_status(&server, "/open/public"),
        200,
        "no controls behave as ObjectWriter"
    );
}

#[tokio::test]
async fn grants_name_users_by_canonical_id_and_refuse_unknown_grantees() {
    let server = Server::start();
    let root = server.client();
    let list_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}"#;
    let alt = server.user_client("alt", &[list_only]);
    let alt_id = canonical_id_of(&alt).await;
    acl_bucket(&root, "shared", None).await;
    put(&root, "shared", "doc", None).await;

    let err = alt
        .list_objects_v2()
        .bucket("shared")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied");
    root.put_bucket_acl()
        .bucket("shared")
        .grant_read(format!("id=\"{alt_id}\""))
        .send()
        .await
        .unwrap();
    let listed = alt.list_objects_v2().bucket("shared").send().await.unwrap();
    assert_eq!(listed.contents().len(), 1);
    let err = alt
        .get_object()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&err),
        "AccessDenied",
        "bucket READ is not object READ"
    );

    // The same grant as an AccessControlPolicy document, on the object.
    let owner = root
        .get_object_acl()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .unwrap()
        .owner()
        .cloned()
        .unwrap();
    let policy = AccessControlPolicy::builder()
        .owner(owner.clone())
        .grants(
            Grant::builder()
                .grantee(
                    Grantee::builder()
                        .r#type(Type::CanonicalUser)
                        .id(&alt_id)
                        .build()
                        .unwrap(),
                )
                .permission(Permission::Read)
                .build(),
        )
        .build();
    root.put_object_acl()
        .bucket("shared")
        .key("doc")
        .access_control_policy(policy)
        .send()
        .await
        .unwrap();
    let body = alt
        .get_object()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .unwrap();
    assert_eq!(body.body.collect().await.unwrap().to_vec(), b"hello");
    let acl = root
        .get_object_acl()
        .bucket("shared")
        .key("doc")
        .send()
        .await
        .unwrap();
    let grantee = acl.grants()[0].grantee().unwrap();
    assert_eq!(grantee.id(), Some(alt_id.as_str()));
    assert_eq!(grantee.display_name(), Some("alt"));
    let err = alt
        .put_object()
        .bucket("shared")
        .key("doc")
        .body(ByteStream::from_static(b"overwrite"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied", "READ does not write");

    let unknown = "0".repeat(64);
    let err = root
        .put_bucket_acl()
        .bucket("shared")
        .grant_read(format!("id=\"{unknown}\""))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidArgument");
    let err = root
        .put_bucket_acl()
        .bucket("shared")
        .grant_read("emailAddress=\"someone@example.com\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "UnresolvableGrantByEmailAddress");
    let err = root
        .put_bucket_acl()
        .bucket("shared")
        .acl(BucketCannedAcl::PublicRead)
        .grant_read(format!("id=\"{alt_id}\""))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "InvalidRequest", "canned and grants");
    // The refused ACLs changed nothing.
    let acl = root.get_bucket_acl().bucket("shared").send().await.unwrap();
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(
        acl.grants()[0].grantee().unwrap().id(),
        Some(alt_id.as_str())
    );
}

#[tokio::test]
async fn object_writers_own_what_they_write_unless_the_bucket_prefers_its_owner() {
    let server = Server::start();
    let root = server.client();
    let writer = server.user_client("writer", &["readwrite"]);
    let writer_id = canonical_id_of(&writer).await;
    let root_id = canonical_id_of(&root).await;
    acl_bucket(&root, "inbox", None).await;
    put(&writer, "inbox", "mine", None).await;
    let acl = root
        .get_object_acl()
        .bucket("inbox")
        .key("mine")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.owner().unwrap().id(), Some(writer_id.as_str()));

    root.put_bucket_ownership_controls()
        .bucket("inbox")
        .ownership_controls(ownership(ObjectOwnership::BucketOwnerPreferred))
        .send()
        .await
        .unwrap();
    put(
        &writer,
        "inbox",
        "handed-over",
        Some(ObjectCannedAcl::BucketOwnerFullControl),
    )
    .await;
    let acl = root
        .get_object_acl()
        .bucket("inbox")
        .key("handed-over")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.owner().unwrap().id(), Some(root_id.as_str()));

    // A bucket you own answers a re-create with 200 in us-east-1; another owner's is taken.
    root.create_bucket().bucket("inbox").send().await.unwrap();
    let err = writer
        .create_bucket()
        .bucket("inbox")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "BucketAlreadyExists");
    let listed = root
        .list_objects_v2()
        .bucket("inbox")
        .fetch_owner(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.contents()[0].owner().unwrap().id(),
        Some(root_id.as_str())
    );
    let unfetched = root.list_objects_v2().bucket("inbox").send().await.unwrap();
    assert!(unfetched.contents()[0].owner().is_none());
}

#[tokio::test]
async fn public_access_blocks_refuse_and_ignore_what_would_make_a_bucket_public() {
    let server = Server::start();
    let root = server.client();
    acl_bucket(&root, "guarded", None).await;
    put(
        &root,
        "guarded",
        "was-public",
        Some(ObjectCannedAcl::PublicRead),
    )
    .await;
    assert_eq!(anonymous_status(&server, "/guarded/was-public"), 200);
    let err = root
        .get_public_access_block()
        .bucket("guarded")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NoSuchPublicAccessBlockConfiguration");

    let block = |acls: bool, ignore: bool, policy: bool, restrict: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(acls)
            .ignore_public_acls(ignore)
            .block_public_policy(policy)
            .restrict_public_buckets(restrict)
            .build()
    };
    root.put_public_access_block()
        .bucket("guarded")
        .public_access_block_configuration(block(true, true, true, false))
        .send()
        .await
        .unwrap();
    let got = root
        .get_public_access_block()
        .bucket("guarded")
        .send()
        .await
        .unwrap();
    let config = got.public_access_block_configuration().unwrap();
    assert_eq!(config.block_public_acls(), Some(true));
    assert_eq!(config.restrict_public_buckets(), Some(false));

    assert_eq!(
        anonymous_status(&server, "/guarded/was-public"),
        403,
        "IgnorePublicAcls"
    );
    let err = root
        .put_bucket_acl()
        .bucket("guarded")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied", "BlockPublicAcls");
    let err = root
        .put_object()
        .bucket("guarded")
        .key("new-public")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied");
    let err = root
        .head_object()
        .bucket("guarded")
        .key("new-public")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFound", "nothing stored");

    let public_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::guarded/*"}]}"#;
    let err = root
        .put_bucket_policy()
        .bucket("guarded")
        .policy(public_policy)
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied", "BlockPublicPolicy");

    root.put_public_access_block()
        .bucket("guarded")
        .public_access_block_configuration(block(false, false, false, true))
        .send()
        .await
        .unwrap();
    root.put_bucket_policy()
        .bucket("guarded")
        .policy(public_policy)
        .send()
        .await
        .unwrap();
    let status = root
        .get_bucket_policy_status()
        .bucket("guarded")
        .send()
        .await
        .unwrap();
    assert_eq!(status.policy_status().unwrap().is_public(), Some(true));
    put(&root, "guarded", "plain", None).await;
    assert_eq!(
        anonymous_status(&server, "/guarded/plain"),
        403,
        "RestrictPublicBuckets"
    );
    root.delete_public_access_block()
        .bucket("guarded")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_status(&server, "/guarded/plain"), 200);
}

#[tokio::test]
async fn expected_bucket_owner_is_checked() {
    let server = Server::start();
    let root = server.client();
    root.create_bucket().bucket("mine").send().await.unwrap();
    let id = canonical_id_of(&root).await;
    root.head_bucket()
        .bucket("mine")
        .expected_bucket_owner(&id)
        .send()
        .await
        .unwrap();
    let err = root
        .put_object()
        .bucket("mine")
        .key("k")
        .expected_bucket_owner("111122223333")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessDenied");
    let err = root
        .head_object()
        .bucket("mine")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "NotFound", "nothing stored");
}

#[tokio::test]
async fn the_operator_may_turn_acls_on_for_new_buckets() {
    let server = Server::start_with(&["--object-ownership-default", "ObjectWriter"]);
    let client = server.client();
    // A bucket made the way tools before 2023 make it: a canned ACL, no ownership asked.
    client
        .create_bucket()
        .bucket("legacy")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let controls = client
        .get_bucket_ownership_controls()
        .bucket("legacy")
        .send()
        .await
        .unwrap();
    let rules = controls.ownership_controls().unwrap().rules();
    assert_eq!(rules[0].object_ownership(), &ObjectOwnership::ObjectWriter);
    put(&client, "legacy", "k", Some(ObjectCannedAcl::PublicRead)).await;
    assert_eq!(anonymous_status(&server, "/legacy/k"), 200);
    // Asking for ownership still wins over the default.
    client
        .create_bucket()
        .bucket("enforced")
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .send()
        .await
        .unwrap();
    let err = client
        .put_object()
        .bucket("enforced")
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "AccessControlListNotSupported");
}

#[test]
fn an_unknown_default_ownership_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(["server", "--object-ownership-default", "Everyone"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BucketOwnerEnforced"));
}
