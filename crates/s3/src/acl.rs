//! ACLs as S3 speaks them: canonical user ids, canned ACLs, `x-amz-grant-*` headers and
//! `AccessControlPolicy` XML turned into stored grants and back, and the check that lets a
//! grant allow what no policy does.

use basalt_object::{Acl, AclGrant, Grantee, ObjectOwnership, ObjectStore, Owner, Permission};
use s3s::dto;
use s3s::{S3Result, s3_error};

use crate::error::OrS3;

/// The name the root user is shown under.
pub(crate) const ROOT_DISPLAY_NAME: &str = "basalt";

const ALL_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS_URI: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const LOG_DELIVERY_URI: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

/// A user's canonical id: 64 hex digits, as on AWS, stable for the user's name.
pub(crate) fn canonical_id(user: &str) -> String {
    basalt_object::sha256_hex(format!("basalt-user\0{user}").as_bytes())
}

/// The root user as an owner.
pub(crate) fn root_owner() -> Owner {
    Owner {
        id: basalt_object::sha256_hex(b"basalt-root"),
        display_name: ROOT_DISPLAY_NAME.to_owned(),
    }
}

/// A user (or a role session's principal) as an owner.
pub(crate) fn user_owner(name: &str) -> Owner {
    Owner {
        id: canonical_id(name),
        display_name: name.to_owned(),
    }
}

pub(crate) fn owner_dto(owner: &Owner) -> dto::Owner {
    dto::Owner {
        display_name: Some(owner.display_name.clone()),
        id: Some(owner.id.clone()),
    }
}

/// Who sends a request, as ACLs see it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// `None`: anonymous.
    pub(crate) owner: Option<Owner>,
}

impl Caller {
    /// Whether `acl` gives this caller `needed` (FULL_CONTROL gives everything). The owner of
    /// a resource may always read and write its ACL, as on AWS.
    pub(crate) fn is_granted(&self, acl: &Acl, needed: Permission, ignore_public: bool) -> bool {
        let me = self.owner.as_ref().map(|o| o.id.as_str());
        if me == Some(acl.owner.id.as_str())
            && matches!(needed, Permission::ReadAcp | Permission::WriteAcp)
        {
            return true;
        }
        acl.grants.iter().any(|g| {
            let names_me = match &g.grantee {
                Grantee::User(user) => me == Some(user.id.as_str()),
                Grantee::AllUsers => !ignore_public,
                Grantee::AuthenticatedUsers => !ignore_public && me.is_some(),
                Grantee::LogDelivery => false,
            };
            names_me && (g.permission == needed || g.permission == Permission::FullControl)
        })
    }
}

/// The ACL a request asks for, in whichever of S3's three forms it came.
#[derive(Debug, Default)]
pub(crate) struct AclRequest<'a> {
    pub(crate) canned: Option<&'a str>,
    pub(crate) full_control: Option<&'a str>,
    pub(crate) read: Option<&'a str>,
    pub(crate) read_acp: Option<&'a str>,
    pub(crate) write: Option<&'a str>,
    pub(crate) write_acp: Option<&'a str>,
}

/// Fills an [`AclRequest`] from an s3s input with the usual field names; `bucket` for the
/// inputs of bucket operations, which also carry `x-amz-grant-write`.
macro_rules! acl_request_of {
    ($input:expr) => {
        $crate::acl::AclRequest {
            canned: $input.acl.as_ref().map(|a| a.as_str()),
            full_control: $input.grant_full_control.as_deref(),
            read: $input.grant_read.as_deref(),
            read_acp: $input.grant_read_acp.as_deref(),
            write: None,
            write_acp: $input.grant_write_acp.as_deref(),
        }
    };
    ($input:expr, bucket) => {
        $crate::acl::AclRequest {
            write: $input.grant_write.as_deref(),
            ..$crate::acl::acl_request_of!($input)
        }
    };
}
pub(crate) use acl_request_of;

impl AclRequest<'_> {
    fn grant_headers(&self) -> [(Permission, Option<&str>); 5] {
        [
            (Permission::FullControl, self.full_control),
            (Permission::Read, self.read),
            (Permission::ReadAcp, self.read_acp),
            (Permission::Write, self.write),
            (Permission::WriteAcp, self.write_acp),
        ]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.canned.is_none() && self.grant_headers().iter().all(|(_, h)| h.is_none())
    }

    /// Whether the request asks for nothing an ACL-less bucket (BucketOwnerEnforced) refuses:
    /// no ACL, `private`, or `bucket-owner-full-control`, as AWS accepts there.
    pub(crate) fn fits_owner_enforced(&self) -> bool {
        self.grant_headers().iter().all(|(_, h)| h.is_none())
            && self
                .canned
                .is_none_or(|c| matches!(c, "private" | "bucket-owner-full-control"))
    }

    /// The ACL asked for, owned by `owner` in a bucket owned by `bucket_owner`; `None` when
    /// the request names none.
    pub(crate) async fn resolve(
        &self,
        store: &ObjectStore,
        owner: &Owner,
        bucket_owner: &Owner,
    ) -> S3Result<Option<Acl>> {
        let has_grants = self.grant_headers().iter().any(|(_, h)| h.is_some());
        match (self.canned, has_grants) {
            (None, false) => Ok(None),
            (Some(_), true) => Err(s3_error!(
                InvalidRequest,
                "Specifying both Canned ACLs and Header Grants is not allowed"
            )),
            (Some(canned), false) => canned_acl(canned, owner, bucket_owner).map(Some),
            (None, true) => {
                let mut grants = Vec::new();
                for (permission, header) in self.grant_headers() {
                    if let Some(header) = header {
                        for grantee in parse_grant_header(header)? {
                            grants.push(AclGrant {
                                grantee: resolve_grantee(store, grantee).await?,
                                permission,
                            });
                        }
                    }
                }
                Ok(Some(Acl {
                    owner: owner.clone(),
                    grants,
                }))
            }
        }
    }
}

/// A canned ACL's grants (AWS's table of canned ACLs). A group's grants are listed before the
/// owner's (grants have no order in S3; conformance suites compare lists in that order).
pub(crate) fn canned_acl(name: &str, owner: &Owner, bucket_owner: &Owner) -> S3Result<Acl> {
    let mut acl = Acl::private(owner.clone());
    let mut add = |grantee: Grantee, permission| {
        let grant = AclGrant {
            grantee,
            permission,
        };
        match grant.grantee {
            Grantee::User(_) => acl.grants.push(grant),
            _ => {
                let first_user = acl
                    .grants
                    .iter()
                    .position(|g| matches!(g.grantee, Grantee::User(_)))
                    .unwrap_or(acl.grants.len());
                acl.grants.insert(first_user, grant);
            }
        }
    };
    match name {
        "private" => {}
        "public-read" => add(Grantee::AllUsers, Permission::Read),
        "public-read-write" => {
            add(Grantee::AllUsers, Permission::Read);
            add(Grantee::AllUsers, Permission::Write);
        }
        "authenticated-read" => add(Grantee::AuthenticatedUsers, Permission::Read),
        "bucket-owner-read" if bucket_owner != owner => {
            add(Grantee::User(bucket_owner.clone()), Permission::Read);
        }
        "bucket-owner-full-control" if bucket_owner != owner => {
            add(Grantee::User(bucket_owner.clone()), Permission::FullControl);
        }
        "bucket-owner-read" | "bucket-owner-full-control" => {}
        "log-delivery-write" => {
            add(Grantee::LogDelivery, Permission::Write);
            add(Grantee::LogDelivery, Permission::ReadAcp);
        }
        "aws-exec-read" => {}
        other => {
            return Err(s3_error!(
                InvalidArgument,
                "{other} is not a canned ACL S3 knows"
            ));
        }
    }
    Ok(acl)
}

/// A grantee as a request names it, before it is looked up.
#[derive(Debug, PartialEq, Eq)]
enum NamedGrantee {
    Id(String),
    Uri(String),
    Email(String),
}

/// `id="…", uri="…", emailAddress="…"`: the grantees of one `x-amz-grant-*` header.
fn parse_grant_header(header: &str) -> S3Result<Vec<NamedGrantee>> {
    header
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (kind, value) = part
                .split_once('=')
                .ok_or_else(|| s3_error!(InvalidArgument, "malformed grant: {part}"))?;
            let value = value.trim().trim_matches('"').to_owned();
            match kind.trim().to_ascii_lowercase().as_str() {
                "id" => Ok(NamedGrantee::Id(value)),
                "uri" => Ok(NamedGrantee::Uri(value)),
                "emailaddress" => Ok(NamedGrantee::Email(value)),
                _ => Err(s3_error!(InvalidArgument, "malformed grant: {part}")),
            }
        })
        .collect()
}

/// Looks a named grantee up: an id must be a user's (or the root user's), a URI one of S3's
/// groups; email grantees are not resolvable here.
async fn resolve_grantee(store: &ObjectStore, named: NamedGrantee) -> S3Result<Grantee> {
    match named {
        NamedGrantee::Id(id) => {
            let root = root_owner();
            if id == root.id {
                return Ok(Grantee::User(root));
            }
            let users = store.users().await.or_s3()?;
            users
                .iter()
                .map(|u| user_owner(&u.name))
                .find(|o| o.id == id)
                .map(Grantee::User)
                .ok_or_else(|| s3_error!(InvalidArgument, "Invalid id"))
        }
        NamedGrantee::Uri(uri) => match uri.as_str() {
            ALL_USERS_URI => Ok(Grantee::AllUsers),
            AUTHENTICATED_USERS_URI => Ok(Grantee::AuthenticatedUsers),
            LOG_DELIVERY_URI => Ok(Grantee::LogDelivery),
            _ => Err(s3_error!(InvalidArgument, "Invalid group uri")),
        },
        NamedGrantee::Email(_) => Err(s3_error!(
            UnresolvableGrantByEmailAddress,
            "The email address you provided does not match any account on record."
        )),
    }
}

/// The ACL of an `AccessControlPolicy` document for a resource owned by `owner`; the
/// document may name the owner, but not another one.
pub(crate) async fn acl_of_policy(
    store: &ObjectStore,
    policy: dto::AccessControlPolicy,
    owner: &Owner,
) -> S3Result<Acl> {
    if let Some(id) = policy.owner.as_ref().and_then(|o| o.id.as_deref())
        && id != owner.id
    {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    let mut grants = Vec::new();
    for grant in policy.grants.unwrap_or_default() {
        let (Some(grantee), Some(permission)) = (grant.grantee, grant.permission) else {
            return Err(s3_error!(
                MalformedACLError,
                "a grant lacks its grantee or permission"
            ));
        };
        let permission = match permission.as_str() {
            "READ" => Permission::Read,
            "WRITE" => Permission::Write,
            "READ_ACP" => Permission::ReadAcp,
            "WRITE_ACP" => Permission::WriteAcp,
            "FULL_CONTROL" => Permission::FullControl,
            _ => return Err(s3_error!(MalformedACLError, "unknown permission")),
        };
        let named = match grantee.type_.as_str() {
            dto::Type::CANONICAL_USER => grantee.id.map(NamedGrantee::Id),
            dto::Type::GROUP => grantee.uri.map(NamedGrantee::Uri),
            dto::Type::AMAZON_CUSTOMER_BY_EMAIL => grantee.email_address.map(NamedGrantee::Email),
            _ => None,
        }
        .ok_or_else(|| s3_error!(MalformedACLError, "a grantee is not one S3 knows"))?;
        grants.push(AclGrant {
            grantee: resolve_grantee(store, named).await?,
            permission,
        });
    }
    Ok(Acl {
        owner: owner.clone(),
        grants,
    })
}

fn permission_dto(permission: Permission) -> dto::Permission {
    dto::Permission::from_static(match permission {
        Permission::Read => dto::Permission::READ,
        Permission::Write => dto::Permission::WRITE,
        Permission::ReadAcp => dto::Permission::READ_ACP,
        Permission::WriteAcp => dto::Permission::WRITE_ACP,
        Permission::FullControl => dto::Permission::FULL_CONTROL,
    })
}

/// An ACL's grants as S3 lists them.
pub(crate) fn grants_dto(acl: &Acl) -> dto::Grants {
    acl.grants
        .iter()
        .map(|g| {
            let group = |uri: &str| dto::Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: dto::Type::from_static(dto::Type::GROUP),
                uri: Some(uri.to_owned()),
            };
            let grantee = match &g.grantee {
                Grantee::User(user) => dto::Grantee {
                    display_name: Some(user.display_name.clone()),
                    email_address: None,
                    id: Some(user.id.clone()),
                    type_: dto::Type::from_static(dto::Type::CANONICAL_USER),
                    uri: None,
                },
                Grantee::AllUsers => group(ALL_USERS_URI),
                Grantee::AuthenticatedUsers => group(AUTHENTICATED_USERS_URI),
                Grantee::LogDelivery => group(LOG_DELIVERY_URI),
            };
            dto::Grant {
                grantee: Some(grantee),
                permission: Some(permission_dto(g.permission)),
            }
        })
        .collect()
}

pub(crate) fn ownership_of(value: &str) -> S3Result<ObjectOwnership> {
    match value {
        "BucketOwnerEnforced" => Ok(ObjectOwnership::BucketOwnerEnforced),
        "BucketOwnerPreferred" => Ok(ObjectOwnership::BucketOwnerPreferred),
        "ObjectWriter" => Ok(ObjectOwnership::ObjectWriter),
        _ => Err(s3_error!(
            InvalidArgument,
            "Invalid x-amz-object-ownership header: {value}"
        )),
    }
}

pub(crate) fn ownership_name(ownership: ObjectOwnership) -> &'static str {
    match ownership {
        ObjectOwnership::BucketOwnerEnforced => "BucketOwnerEnforced",
        ObjectOwnership::BucketOwnerPreferred => "BucketOwnerPreferred",
        ObjectOwnership::ObjectWriter => "ObjectWriter",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> Owner {
        user_owner("ana")
    }

    #[test]
    fn canonical_ids_are_64_hex_digits_and_differ_by_user() {
        let id = canonical_id("ana");
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, canonical_id("bob"));
        assert_ne!(root_owner().id, id);
    }

    #[test]
    fn grant_headers_name_ids_groups_and_emails() {
        let parsed = parse_grant_header(
            r#"id="abc", uri="http://acs.amazonaws.com/groups/global/AllUsers",emailAddress="x@y""#,
        )
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                NamedGrantee::Id("abc".into()),
                NamedGrantee::Uri(ALL_USERS_URI.into()),
                NamedGrantee::Email("x@y".into()),
            ]
        );
        assert!(parse_grant_header("nonsense").is_err());
        assert!(parse_grant_header(r#"colour="red""#).is_err());
    }

    #[test]
    fn canned_acls_grant_what_aws_documents() {
        let bob = user_owner("bob");
        let public = canned_acl("public-read-write", &ana(), &ana()).unwrap();
        let anonymous = Caller { owner: None };
        assert!(anonymous.is_granted(&public, Permission::Read, false));
        assert!(anonymous.is_granted(&public, Permission::Write, false));
        assert!(!anonymous.is_granted(&public, Permission::ReadAcp, false));
        assert!(
            !anonymous.is_granted(&public, Permission::Read, true),
            "ignored"
        );

        let signed = Caller {
            owner: Some(bob.clone()),
        };
        let authenticated = canned_acl("authenticated-read", &ana(), &ana()).unwrap();
        assert!(signed.is_granted(&authenticated, Permission::Read, false));
        assert!(!anonymous.is_granted(&authenticated, Permission::Read, false));

        let for_bucket_owner = canned_acl("bucket-owner-full-control", &ana(), &bob).unwrap();
        assert!(signed.is_granted(&for_bucket_owner, Permission::WriteAcp, false));
        let private = canned_acl("private", &ana(), &bob).unwrap();
        assert!(!signed.is_granted(&private, Permission::Read, false));
        let owner = Caller { owner: Some(ana()) };
        assert!(owner.is_granted(&private, Permission::Read, false));
        assert!(canned_acl("world-writable", &ana(), &ana()).is_err());

        let listed: Vec<_> = public
            .grants
            .iter()
            .map(|g| (g.grantee.clone(), g.permission))
            .collect();
        assert_eq!(
            listed,
            [
                (Grantee::AllUsers, Permission::Read),
                (Grantee::AllUsers, Permission::Write),
                (Grantee::User(ana()), Permission::FullControl),
            ],
            "groups first, in the canned ACL's order, then the owner"
        );
    }

    #[test]
    fn the_owner_always_reads_and_writes_the_acl() {
        let acl = Acl {
            owner: ana(),
            grants: Vec::new(),
        };
        let owner = Caller { owner: Some(ana()) };
        assert!(owner.is_granted(&acl, Permission::ReadAcp, false));
        assert!(owner.is_granted(&acl, Permission::WriteAcp, false));
        assert!(!owner.is_granted(&acl, Permission::Read, false));
    }
}
