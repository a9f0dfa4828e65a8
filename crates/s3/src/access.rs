//! Who may do what: the root user may do everything; a user's requests are checked against the
//! policies attached to it and the bucket's policy; anonymous requests only against the
//! bucket's policy. An explicit Deny anywhere wins, then any Allow; otherwise the request is
//! denied. Access keys are looked up in the store, so a revoked key or a disabled user is
//! refused on the next request.

use std::collections::HashMap;

use basalt_object::{Acl, ObjectStore, Permission};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use crate::acl::{Caller, root_owner, user_owner};
use crate::policy::{Effect, Policy, RequestFacts, canned};

/// Facts about the connection a request came on, set by the HTTP service.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    pub peer: Option<std::net::SocketAddr>,
    pub tls: bool,
}

pub(crate) struct Auth {
    pub(crate) store: ObjectStore,
    pub(crate) root_access_key: String,
    pub(crate) root_secret_key: SecretKey,
}

#[async_trait::async_trait]
impl S3Auth for Auth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.root_access_key {
            return Ok(self.root_secret_key.clone());
        }
        let internal = |e: basalt_object::ObjectError| {
            tracing::error!(error = %e, "reading an access key failed");
            s3_error!(InternalError, "cannot read access keys")
        };
        if let Some((_, secret)) = self
            .store
            .credentials_of(access_key)
            .await
            .map_err(internal)?
        {
            return Ok(SecretKey::from(secret));
        }
        match self.store.session_of(access_key).await.map_err(internal)? {
            Some((session, _)) if session.expires_ms <= basalt_object::now_ms() => {
                Err(s3_error!(ExpiredToken, "The provided token has expired."))
            }
            Some((_, secret)) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "the access key you provided does not exist"
            )),
        }
    }
}

/// What a non-root request may do, left in the request's extensions for the checks that need
/// its body (DeleteObjects names its keys there).
#[derive(Clone)]
pub(crate) struct Grant {
    /// The root user: every action is allowed.
    root: bool,
    principal: Option<String>,
    /// Who is asking, as owners and ACL grantees are named.
    pub(crate) caller: Caller,
    /// A public access block's RestrictPublicBuckets applies: the public bucket policy grants
    /// an anonymous caller nothing.
    restricted: bool,
    /// The bucket's ACL lets this caller write (and so delete) any key in it.
    acl_writable: bool,
    policies: std::sync::Arc<Vec<Policy>>,
    keys: HashMap<String, Vec<String>>,
}

impl Grant {
    fn root() -> Self {
        Self {
            root: true,
            principal: None,
            caller: Caller {
                owner: Some(root_owner()),
            },
            restricted: false,
            acl_writable: true,
            policies: std::sync::Arc::default(),
            keys: HashMap::new(),
        }
    }

    pub(crate) fn allows(&self, action: &str, resource: &str) -> bool {
        self.root || self.verdict(action, resource) == Some(Effect::Allow)
    }

    /// What the policies say about `action` on `resource`: an explicit Deny, an Allow, or
    /// nothing (an ACL may still allow it).
    fn verdict(&self, action: &str, resource: &str) -> Option<Effect> {
        let facts = RequestFacts {
            action: action.to_owned(),
            resource: resource.to_owned(),
            user: self.principal.clone(),
            keys: self.keys.clone(),
        };
        match Access::decide(&self.policies, &facts) {
            Some(Effect::Allow) if self.restricted => None,
            other => other,
        }
    }

    /// Whether this caller may delete the key `resource` names: a policy allows it, or the
    /// bucket's ACL lets the caller write and no policy denies it.
    pub(crate) fn may_delete(&self, resource: &str) -> bool {
        if self.root {
            return true;
        }
        match self.verdict("s3:DeleteObject", resource) {
            Some(Effect::Allow) => true,
            Some(Effect::Deny) => false,
            None => self.acl_writable,
        }
    }

    /// Whether some policy could let this caller delete some key of `bucket`.
    fn may_delete_in(&self, bucket: &str) -> bool {
        let facts = RequestFacts {
            action: "s3:DeleteObject".to_owned(),
            resource: format!("arn:aws:s3:::{bucket}/"),
            user: self.principal.clone(),
            keys: self.keys.clone(),
        };
        self.root || self.policies.iter().any(|p| p.may_allow_under(&facts))
    }
}

pub(crate) struct Access {
    pub(crate) store: ObjectStore,
    pub(crate) root_access_key: String,
    pub(crate) sse_c_over_http: bool,
}

/// Headers that carry a customer's encryption key (SSE-C), for the object or a copy source.
const CUSTOMER_KEY_HEADERS: [&str; 2] = [
    "x-amz-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key",
];

/// The IAM action of an S3 operation (AWS's names; a few operations share one).
fn action_of(op: &str) -> String {
    let name = match op {
        "HeadObject" | "SelectObjectContent" => "GetObject",
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "ListBuckets" => "ListAllMyBuckets",
        "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload"
        | "CopyObject"
        | "UploadPartCopy" => "PutObject",
        "ListParts" => "ListMultipartUploadParts",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "DeleteObjects" => "DeleteObject",
        "DeleteBucketPolicy" => "DeleteBucketPolicy",
        "GetBucketLifecycleConfiguration" => "GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => "PutLifecycleConfiguration",
        "GetBucketCors" => "GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS",
        "DeleteBucketTagging" => "PutBucketTagging",
        "GetBucketEncryption" => "GetEncryptionConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "PutEncryptionConfiguration",
        "GetObjectLockConfiguration" => "GetBucketObjectLockConfiguration",
        "PutObjectLockConfiguration" => "PutBucketObjectLockConfiguration",
        other => other,
    };
    format!("s3:{name}")
}

/// What an ACL must grant for an operation a policy does not allow: a permission on the
/// bucket or on the object (AWS's mapping of ACL permissions to operations).
#[derive(Debug, Clone, Copy)]
enum AclNeed {
    Bucket(Permission),
    Object(Permission),
}

fn acl_need(op: &str) -> Option<AclNeed> {
    Some(match op {
        "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "ListMultipartUploads"
        | "HeadBucket" => AclNeed::Bucket(Permission::Read),
        "PutObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "ListParts"
        | "CopyObject"
        | "UploadPartCopy"
        | "DeleteObject" => AclNeed::Bucket(Permission::Write),
        "GetBucketAcl" => AclNeed::Bucket(Permission::ReadAcp),
        "PutBucketAcl" => AclNeed::Bucket(Permission::WriteAcp),
        "GetObject" | "HeadObject" | "SelectObjectContent" => AclNeed::Object(Permission::Read),
        "GetObjectAcl" => AclNeed::Object(Permission::ReadAcp),
        "PutObjectAcl" => AclNeed::Object(Permission::WriteAcp),
        _ => return None,
    })
}

fn resource_of(path: &S3Path) -> String {
    match path {
        S3Path::Root => "arn:aws:s3:::*".to_owned(),
        S3Path::Bucket { bucket } => format!("arn:aws:s3:::{bucket}"),
        S3Path::Object { bucket, key } => format!("arn:aws:s3:::{bucket}/{key}"),
    }
}

/// The key a request addresses, if it addresses an object.
fn key_of(path: &S3Path) -> Option<String> {
    match path {
        S3Path::Object { key, .. } => Some(key.to_string()),
        _ => None,
    }
}

/// The `versionId` a request names.
fn version_of(cx: &S3AccessContext<'_>) -> Option<String> {
    query_pairs(cx.uri().query().unwrap_or_default())
        .find(|(k, _)| k == "versionId")
        .map(|(_, v)| v)
}

fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

/// A query parameter's value, percent-decoded (as it was given if it is not UTF-8).
pub(crate) fn decode_query_value(v: &str) -> String {
    let spaced = v.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_or_else(|_| v.to_owned(), std::borrow::Cow::into_owned)
}

/// The session token a request carries, in its header or a presigned URL's query.
fn session_token_of(cx: &S3AccessContext<'_>) -> Option<String> {
    let from_header = cx
        .headers()
        .get("x-amz-security-token")
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default());
    from_header.or_else(|| {
        query_pairs(cx.uri().query().unwrap_or_default())
            .find(|(k, _)| k == "X-Amz-Security-Token")
            .map(|(_, v)| v)
    })
}

/// A long-term key (root or a user's) has no session: a token beside it is an error, as on
/// AWS, not something to ignore.
fn refuse_token_without_session(cx: &S3AccessContext<'_>) -> S3Result<()> {
    if session_token_of(cx).is_some() {
        return Err(s3_error!(
            InvalidToken,
            "The provided token is malformed or otherwise invalid."
        ));
    }
    Ok(())
}

/// A role session's requests must carry its token (header, or query of a presigned URL) and
/// come before it expires.
fn check_session_token(cx: &S3AccessContext<'_>, session: &basalt_object::Session) -> S3Result<()> {
    if session.expires_ms <= basalt_object::now_ms() {
        return Err(s3_error!(ExpiredToken, "The provided token has expired."));
    }
    match session_token_of(cx) {
        Some(t) if basalt_object::sha256_hex(t.as_bytes()) == session.token_sha256 => Ok(()),
        _ => Err(s3_error!(
            InvalidToken,
            "The provided token is malformed or otherwise invalid."
        )),
    }
}

impl Access {
    /// The refusal of a request: `AccessDenied`, except that an anonymous request for a bucket
    /// that does not exist learns so (`NoSuchBucket`), as on AWS.
    async fn denial(&self, anonymous: bool, bucket: Option<&str>) -> s3s::S3Error {
        if anonymous
            && let Some(bucket) = bucket
            && matches!(
                self.store.bucket(bucket).await,
                Err(basalt_object::ObjectError::NoSuchBucket)
            )
        {
            return s3_error!(NoSuchBucket, "The specified bucket does not exist.");
        }
        s3_error!(AccessDenied, "Access Denied")
    }

    /// Whether the holder of `access_key` may make the admin call `action` (e.g.
    /// `admin:CreateUser`): the root user may; a user may when its policies allow it. Role
    /// sessions may not administer.
    pub(crate) async fn check_admin(
        &self,
        access_key: &str,
        action: &str,
        connection: Option<Connection>,
    ) -> S3Result<()> {
        if access_key == self.root_access_key {
            return Ok(());
        }
        let user = match self.store.credentials_of(access_key).await {
            Ok(Some((user, _))) => user,
            Ok(None) => return Err(s3_error!(AccessDenied, "Access Denied")),
            Err(e) => {
                tracing::error!(error = %e, "reading an access key failed");
                return Err(s3_error!(InternalError, "cannot read access keys"));
            }
        };
        let grant = Grant {
            root: false,
            caller: Caller {
                owner: Some(user_owner(&user.name)),
            },
            restricted: false,
            acl_writable: false,
            keys: crate::condition_keys::global_keys(connection, Some(&user.name)),
            principal: Some(user.name),
            policies: std::sync::Arc::new(self.policies_for(&user.policies, None).await?),
        };
        let resource = format!(
            "{}{}",
            crate::policy::ADMIN_ARN_PREFIX,
            action.trim_start_matches("admin:")
        );
        if grant.allows(action, &resource) {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied, "Access Denied"))
        }
    }

    /// What the holder of `access_key` may do, for requests `s3s` does not see (the Iceberg
    /// catalog's): the root user everything; a user's key (without a session token) what its
    /// policies allow; a role session (with its unexpired token) what the role's allow. The
    /// policy of `bucket` joins them, as for S3 requests.
    pub(crate) async fn grant_of(
        &self,
        access_key: &str,
        session_token: Option<&str>,
        bucket: Option<&str>,
        connection: Option<Connection>,
    ) -> S3Result<Grant> {
        let internal = |e: basalt_object::ObjectError| {
            tracing::error!(error = %e, "reading an access key failed");
            s3_error!(InternalError, "cannot read access keys")
        };
        let invalid_token = || {
            s3_error!(
                InvalidToken,
                "The provided token is malformed or otherwise invalid."
            )
        };
        if access_key == self.root_access_key {
            return match session_token {
                None => Ok(Grant::root()),
                Some(_) => Err(invalid_token()),
            };
        }
        let (principal, attached) = if let Some((user, _)) = self
            .store
            .credentials_of(access_key)
            .await
            .map_err(internal)?
        {
            if session_token.is_some() {
                return Err(invalid_token());
            }
            (user.name, user.policies)
        } else if let Some((session, _)) =
            self.store.session_of(access_key).await.map_err(internal)?
        {
            if session.expires_ms <= basalt_object::now_ms() {
                return Err(s3_error!(ExpiredToken, "The provided token has expired."));
            }
            match session_token {
                Some(t) if basalt_object::sha256_hex(t.as_bytes()) == session.token_sha256 => {}
                _ => return Err(invalid_token()),
            }
            (session.principal, session.policies)
        } else {
            return Err(s3_error!(
                InvalidAccessKeyId,
                "the access key you provided does not exist"
            ));
        };
        Ok(Grant {
            root: false,
            caller: Caller {
                owner: Some(user_owner(&principal)),
            },
            restricted: false,
            acl_writable: false,
            keys: crate::condition_keys::global_keys(connection, Some(&principal)),
            policies: std::sync::Arc::new(self.policies_for(&attached, bucket).await?),
            principal: Some(principal),
        })
    }

    /// Whether the ACLs give `caller` what `need` names. A bucket with ACLs disabled
    /// (BucketOwnerEnforced, or made before ACLs) counts as `private` to its owner, and so do
    /// its objects; IgnorePublicAcls drops grants to everyone. An object that is not there is
    /// allowed to whoever may list the bucket, so that they learn it is missing (404).
    async fn acl_grants(
        &self,
        need: AclNeed,
        bucket: &str,
        key: Option<&str>,
        version: Option<&str>,
        caller: &Caller,
    ) -> bool {
        let access = match self.store.bucket_access(bucket).await {
            Ok(access) => access,
            Err(_) => return false,
        };
        let (bucket_acl, enforced) = match access {
            Some(a) => {
                let disabled = a.acls_disabled();
                (a.acl, disabled)
            }
            None => (Acl::private(root_owner()), true),
        };
        let bucket_owner = bucket_acl.owner.clone();
        let bucket_acl = if enforced {
            Acl::private(bucket_owner.clone())
        } else {
            bucket_acl
        };
        let ignore_public = self
            .store
            .public_access_block(bucket)
            .await
            .ok()
            .flatten()
            .is_some_and(|b| b.ignore_public_acls);
        match (need, key) {
            (AclNeed::Bucket(permission), _) => {
                caller.is_granted(&bucket_acl, permission, ignore_public)
            }
            (AclNeed::Object(permission), Some(key)) => {
                match self.store.head_version(bucket, key, version).await {
                    Ok(record) => {
                        let acl = match record.details.acl {
                            Some(acl) if !enforced => acl,
                            _ => Acl::private(bucket_owner),
                        };
                        caller.is_granted(&acl, permission, ignore_public)
                    }
                    Err(_) => caller.is_granted(&bucket_acl, Permission::Read, ignore_public),
                }
            }
            (AclNeed::Object(_), None) => false,
        }
    }

    /// `x-amz-expected-bucket-owner` (and `x-amz-source-expected-bucket-owner` for a copy's
    /// source): a request meant for a bucket of another owner is refused, as on AWS. Owners are
    /// named by canonical id.
    async fn check_expected_owners(&self, cx: &S3AccessContext<'_>) -> S3Result<()> {
        let header = |name: &str| {
            cx.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        };
        let mut expectations = Vec::new();
        if let Some(expected) = header("x-amz-expected-bucket-owner")
            && let S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } = cx.s3_path()
        {
            expectations.push((bucket.to_string(), expected));
        }
        if let Some(expected) = header("x-amz-source-expected-bucket-owner")
            && let Some(source) = header("x-amz-copy-source")
            && let Ok(s3s::dto::CopySource::Bucket { bucket, .. }) =
                s3s::dto::CopySource::parse(&source)
        {
            expectations.push((bucket.to_string(), expected));
        }
        for (bucket, expected) in expectations {
            let owner = match self.store.bucket_access(&bucket).await {
                Ok(Some(access)) => access.acl.owner,
                Ok(None) => root_owner(),
                // A missing bucket is the operation's to report.
                Err(_) => continue,
            };
            if owner.id != expected {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        Ok(())
    }

    /// The effect of `policies` (user-attached documents and the bucket's) on `facts`.
    fn decide(policies: &[Policy], facts: &RequestFacts) -> Option<Effect> {
        let mut verdict = None;
        for policy in policies {
            match policy.evaluate(facts) {
                Some(Effect::Deny) => return Some(Effect::Deny),
                Some(Effect::Allow) => verdict = Some(Effect::Allow),
                None => {}
            }
        }
        verdict
    }

    /// The root user is subject to a bucket policy's explicit Deny, as an AWS account is to
    /// its bucket's: everything else it may do, and the bucket policy calls stay open to it so
    /// that a policy that locks everyone out can be mended.
    async fn check_root_against_bucket_policy(
        &self,
        cx: &S3AccessContext<'_>,
        connection: Option<Connection>,
    ) -> S3Result<()> {
        let bucket = match cx.s3_path() {
            S3Path::Root => return Ok(()),
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => bucket.to_string(),
        };
        let op = cx.s3_op().name();
        if matches!(
            op,
            "GetBucketPolicy" | "PutBucketPolicy" | "DeleteBucketPolicy" | "GetBucketPolicyStatus"
        ) {
            return Ok(());
        }
        let Ok(Some(text)) = self.store.bucket_policy(&bucket).await else {
            return Ok(());
        };
        let Ok(policy) = Policy::parse(&text, true) else {
            return Ok(());
        };
        let mut keys = crate::condition_keys::global_keys(connection, None);
        crate::condition_keys::add_header_keys(cx.headers(), &mut keys);
        let facts = RequestFacts {
            action: action_of(op),
            resource: resource_of(cx.s3_path()),
            user: None,
            keys,
        };
        match policy.evaluate(&facts) {
            Some(Effect::Deny) => Err(s3_error!(AccessDenied, "Access Denied")),
            _ => Ok(()),
        }
    }

    /// A public access block's RestrictPublicBuckets on `bucket`: a public bucket policy then
    /// grants anonymous callers nothing.
    async fn restricts_public(
        &self,
        principal: Option<&str>,
        bucket: Option<&str>,
        policies: &[Policy],
    ) -> bool {
        let Some(bucket) = bucket else { return false };
        principal.is_none()
            && policies.iter().any(Policy::is_public)
            && self
                .store
                .public_access_block(bucket)
                .await
                .ok()
                .flatten()
                .is_some_and(|b| b.restrict_public_buckets)
    }

    async fn policies_for(
        &self,
        attached: &[String],
        bucket: Option<&str>,
    ) -> S3Result<Vec<Policy>> {
        let mut out = Vec::new();
        for text in attached {
            let text = canned(text).unwrap_or(text);
            match Policy::parse(text, false) {
                Ok(p) => out.push(p),
                Err(e) => tracing::error!(error = %e, "a stored user policy does not parse"),
            }
        }
        if let Some(bucket) = bucket
            && let Ok(Some(text)) = self.store.bucket_policy(bucket).await
        {
            match Policy::parse(&text, true) {
                Ok(p) => out.push(p),
                Err(e) => {
                    tracing::error!(error = %e, bucket, "a stored bucket policy does not parse")
                }
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl S3Access for Access {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let operation = cx.s3_op().name().to_owned();
        let facts = cx
            .extensions_mut()
            .get::<crate::access_log::RequestFacts>()
            .cloned()
            .unwrap_or_default();
        {
            let (bucket, key) = match cx.s3_path() {
                S3Path::Root => (None, None),
                S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
                S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
            };
            facts.update(|f| {
                f.operation = Some(operation.clone());
                f.bucket = bucket;
                f.key = key;
            });
        }
        let connection = cx.extensions_mut().get::<Connection>().copied();
        if !self.sse_c_over_http
            && !connection.is_some_and(|c| c.tls)
            && CUSTOMER_KEY_HEADERS
                .iter()
                .any(|h| cx.headers().contains_key(*h))
        {
            return Err(s3_error!(
                InvalidRequest,
                "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
            ));
        }
        self.check_expected_owners(cx).await?;
        let internal = |e: basalt_object::ObjectError| {
            tracing::error!(error = %e, "reading an access key failed");
            s3_error!(InternalError, "cannot read access keys")
        };
        // Who is asking (a user, or a role session), and the policies they carry.
        let charge = cx
            .extensions_mut()
            .get::<crate::request_body::PreAuthCharge>()
            .cloned();
        // A browser POST form's signature was checked by the service before it became this
        // PutObject: it is made as the form's signer.
        let signer = cx.credentials().map(|c| c.access_key.clone()).or_else(|| {
            cx.extensions_mut()
                .get::<crate::post_form::FormSigner>()
                .map(|s| s.0.clone())
        });
        let (principal, attached) = match signer {
            Some(key) if key == self.root_access_key => {
                facts.update(|f| f.requester = Some(crate::acl::root_owner().id));
                refuse_token_without_session(cx)?;
                self.check_root_against_bucket_policy(cx, connection)
                    .await?;
                cx.extensions_mut().insert(Grant::root());
                if let Some(charge) = charge {
                    charge.authorize();
                }
                return Ok(());
            }
            Some(key) => {
                if let Some((user, _)) = self.store.credentials_of(&key).await.map_err(internal)? {
                    refuse_token_without_session(cx)?;
                    (Some(user.name), user.policies)
                } else if let Some((session, _)) =
                    self.store.session_of(&key).await.map_err(internal)?
                {
                    check_session_token(cx, &session)?;
                    (Some(session.principal), session.policies)
                } else {
                    return Err(s3_error!(AccessDenied, "Access Denied"));
                }
            }
            None => (None, Vec::new()),
        };
        let (bucket, resource) = {
            let path = cx.s3_path();
            let bucket = match path {
                S3Path::Root => None,
                S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => {
                    Some(bucket.to_string())
                }
            };
            (bucket, resource_of(path))
        };
        let op = cx.s3_op().name().to_owned();
        let mut keys = crate::condition_keys::global_keys(connection, principal.as_deref());
        crate::condition_keys::add_header_keys(cx.headers(), &mut keys);
        for (k, v) in query_pairs(cx.uri().query().unwrap_or_default()) {
            if matches!(k.as_str(), "prefix" | "delimiter" | "max-keys") {
                keys.insert(format!("s3:{k}"), vec![v]);
            }
        }
        let policies = self.policies_for(&attached, bucket.as_deref()).await?;
        let bypass = cx
            .headers()
            .get("x-amz-bypass-governance-retention")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        // DeleteObjects names its keys in the body: the handler checks each (see `Grant`). A
        // browser POST names its key in the form: `post_object` checks it once s3s parsed it.
        let deferred = matches!(op.as_str(), "DeleteObjects" | "PostObject");
        let mut checks = if deferred {
            Vec::new()
        } else {
            vec![(action_of(&op), resource.clone())]
        };
        if bypass && !deferred {
            checks.push(("s3:BypassGovernanceRetention".into(), resource));
        }
        // The object a copy reads: parsed as the operation will parse it, so the object
        // checked is the one read.
        let copy_source = if matches!(op.as_str(), "CopyObject" | "UploadPartCopy")
            && let Some(source) = cx
                .headers()
                .get("x-amz-copy-source")
                .and_then(|v| v.to_str().ok())
        {
            match s3s::dto::CopySource::parse(source) {
                Ok(s3s::dto::CopySource::Bucket {
                    bucket,
                    key,
                    version_id,
                }) => Some((
                    bucket.to_string(),
                    key.to_string(),
                    version_id.map(|v| v.to_string()),
                )),
                _ => return Err(s3_error!(AccessDenied, "Access Denied")),
            }
        } else {
            None
        };
        let caller = Caller {
            owner: principal.as_deref().map(user_owner),
        };
        facts.update(|f| f.requester = caller.owner.as_ref().map(|o| o.id.clone()));
        let restricted = self
            .restricts_public(principal.as_deref(), bucket.as_deref(), &policies)
            .await;
        if let (Some(bucket), Some(key)) = (bucket.as_deref(), key_of(cx.s3_path()))
            && policies
                .iter()
                .any(|p| p.names_condition_key_under("s3:existingobjecttag/"))
            && let Ok(record) = self
                .store
                .head_version(bucket, &key, version_of(cx).as_deref())
                .await
        {
            crate::condition_keys::add_existing_tag_keys(&record.details.tags, &mut keys);
        }
        let mut grant = Grant {
            root: false,
            principal,
            caller,
            restricted,
            acl_writable: false,
            policies: std::sync::Arc::new(policies),
            keys,
        };
        let verdict = |action: &str, resource: &str| grant.verdict(action, resource);
        let version = version_of(cx);
        let key = key_of(cx.s3_path());
        let mut denied = false;
        for (action, resource) in &checks {
            denied |= match verdict(action, resource) {
                Some(Effect::Allow) => false,
                Some(Effect::Deny) => true,
                None => match (acl_need(&op), bucket.as_deref()) {
                    (Some(need), Some(bucket)) if action == &checks[0].0 => {
                        !self
                            .acl_grants(
                                need,
                                bucket,
                                key.as_deref(),
                                version.as_deref(),
                                &grant.caller,
                            )
                            .await
                    }
                    _ => true,
                },
            };
        }
        if let Some((source_bucket, source_key, source_version)) = &copy_source {
            let resource = format!("arn:aws:s3:::{source_bucket}/{source_key}");
            // The source is judged by its own bucket's policy: a bucket policy speaks for its
            // bucket only, so the destination's could never grant a read of another bucket.
            let source_verdict = if bucket.as_deref() == Some(source_bucket.as_str()) {
                verdict("s3:GetObject", &resource)
            } else {
                let policies = self.policies_for(&attached, Some(source_bucket)).await?;
                let source_grant = Grant {
                    restricted: self
                        .restricts_public(
                            grant.principal.as_deref(),
                            Some(source_bucket),
                            &policies,
                        )
                        .await,
                    policies: std::sync::Arc::new(policies),
                    keys: grant.keys.clone(),
                    principal: grant.principal.clone(),
                    caller: grant.caller.clone(),
                    root: false,
                    acl_writable: false,
                };
                source_grant.verdict("s3:GetObject", &resource)
            };
            denied |= match source_verdict {
                Some(Effect::Allow) => false,
                Some(Effect::Deny) => true,
                None => {
                    !self
                        .acl_grants(
                            AclNeed::Object(Permission::Read),
                            source_bucket,
                            Some(source_key),
                            source_version.as_deref(),
                            &grant.caller,
                        )
                        .await
                }
            };
        }
        // DeleteObjects names its keys in the body: a caller who could delete none of them
        // is refused before the body is read.
        if op == "DeleteObjects" {
            let bucket = bucket.as_deref().unwrap_or_default();
            grant.acl_writable = self
                .acl_grants(
                    AclNeed::Bucket(Permission::Write),
                    bucket,
                    None,
                    None,
                    &grant.caller,
                )
                .await;
            denied |= !grant.may_delete_in(bucket) && !grant.acl_writable;
        }
        if denied {
            return Err(self
                .denial(grant.principal.is_none(), bucket.as_deref())
                .await);
        }
        cx.extensions_mut().insert(grant);
        if let Some(charge) = charge {
            charge.authorize();
        }
        Ok(())
    }

    /// A browser POST writes the key its form names: allowed as a PutObject of that key (by a
    /// policy, or by the bucket's ACL letting the caller write).
    async fn post_object(
        &self,
        req: &mut s3s::S3Request<s3s::dto::PostObjectInput>,
    ) -> S3Result<()> {
        let Some(grant) = req.extensions.get::<Grant>().cloned() else {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        if grant.root {
            return Ok(());
        }
        let bucket = req.input.bucket.clone();
        let resource = format!("arn:aws:s3:::{bucket}/{}", req.input.key);
        let allowed = match grant.verdict("s3:PutObject", &resource) {
            Some(Effect::Allow) => true,
            Some(Effect::Deny) => false,
            None => {
                self.acl_grants(
                    AclNeed::Bucket(Permission::Write),
                    &bucket,
                    None,
                    None,
                    &grant.caller,
                )
                .await
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(self.denial(grant.principal.is_none(), Some(&bucket)).await)
        }
    }
}
