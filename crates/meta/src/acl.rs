//! Access control lists, object ownership and public access blocks, as stored: the S3 front
//! evaluates them beside policies. A bucket keeps its owner, ACL and ownership setting in one
//! record; an object version keeps its own ACL in its details.

use serde::{Deserialize, Serialize};

use crate::record::Record;

/// An owner or a named grantee: a canonical user id and the name shown with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: String,
    pub display_name: String,
}

/// What a grant allows, in S3's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    FullControl,
}

/// Who a grant names: one user, or one of S3's predefined groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    User(Owner),
    /// Everyone, signed or not.
    AllUsers,
    /// Every signed request.
    AuthenticatedUsers,
    LogDelivery,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclGrant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// An access control list: its resource's owner and the grants, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub owner: Owner,
    pub grants: Vec<AclGrant>,
}

impl Acl {
    /// The `private` canned ACL: the owner has full control, nobody else anything.
    pub fn private(owner: Owner) -> Self {
        Self {
            grants: vec![AclGrant {
                grantee: Grantee::User(owner.clone()),
                permission: Permission::FullControl,
            }],
            owner,
        }
    }

    /// Whether a grant names everyone (or every signed request): what a public access block
    /// refuses or ignores.
    pub fn is_public(&self) -> bool {
        self.grants
            .iter()
            .any(|g| matches!(g.grantee, Grantee::AllUsers | Grantee::AuthenticatedUsers))
    }
}

/// Who owns the objects written into a bucket, and whether ACLs count (S3 Object Ownership).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    /// ACLs are disabled: the bucket owner owns every object; only policies grant access.
    BucketOwnerEnforced,
    /// The bucket owner owns objects written with `bucket-owner-full-control`.
    BucketOwnerPreferred,
    /// The writer owns what it writes.
    ObjectWriter,
}

/// A bucket's owner and ACL, and its object ownership setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketAccess {
    pub acl: Acl,
    /// `None`: the ownership controls were deleted; the bucket behaves as `ObjectWriter`, as
    /// on AWS.
    pub ownership: Option<ObjectOwnership>,
}

impl BucketAccess {
    /// Whether ACLs are disabled: `BucketOwnerEnforced`.
    pub fn acls_disabled(&self) -> bool {
        self.ownership == Some(ObjectOwnership::BucketOwnerEnforced)
    }
}

/// A bucket's public access block: each flag as S3 defines it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl Record for BucketAccess {}
impl Record for PublicAccessBlock {}
