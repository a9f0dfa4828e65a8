//! SSE-KMS: data keys that a key manager wraps under a named, rotatable, disableable key.
//!
//! The object layer only asks a [`KeyManager`] for a fresh data key and to unwrap one again;
//! Basalt's own, [`BuiltinKms`], keeps its keys in the replicated metadata (their material
//! sealed by the SSE master keys), so every node of a cluster knows them. An external key
//! manager (Vault, a cloud KMS) plugs in as another implementation of the trait
//! ([`ObjectStore::with_key_manager`]).
//!
//! A key is a record (`kms/<id>`: alias, description, enabled) and one material per version
//! (`kms-material/<id>/<version>`). A rotation adds a version, which wraps new data keys;
//! older versions stay to unwrap what they wrapped. Versions and aliases are created with
//! [`Command::CreateIdentity`], so of two nodes racing to create one exactly one wins: no data
//! key is ever wrapped with material that a concurrent writer then replaced.

use std::collections::BTreeMap;
use std::sync::Arc;

use basalt_meta::{Command, MetaError, MetaStore};
use serde::{Deserialize, Serialize};

use crate::crypto::{DataKey, MasterKeySource, open_with_aad, seal_with_aad};
use crate::{ObjectError, ObjectStore, now_ms};

const KEY_PREFIX: &str = "kms/";
const MATERIAL_PREFIX: &str = "kms-material/";
const ALIAS_PREFIX: &str = "kms-alias/";
/// The alias of the key that protects objects asking for SSE-KMS without naming a key, made
/// on first use (as AWS's `aws/s3`).
pub const DEFAULT_KEY_ALIAS: &str = "aws/s3";

/// A key as listings show it: never its material.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KmsKey {
    pub key_id: String,
    /// Without the `alias/` prefix.
    pub alias: Option<String>,
    pub description: String,
    pub created_ms: i64,
    pub enabled: bool,
    /// The version that wraps new data keys (1, then one more per rotation).
    #[serde(default)]
    pub version: u32,
    /// When the current version was made.
    #[serde(default)]
    pub version_created_ms: i64,
}

/// What a key record stores; the version comes from the materials.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    key_id: String,
    alias: Option<String>,
    description: String,
    created_ms: i64,
    enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Material {
    created_ms: i64,
    master_key_id: String,
    sealed: Vec<u8>,
}

/// A fresh data key and how to find it again.
#[derive(Debug)]
pub struct WrappedDataKey {
    pub key: DataKey,
    /// The key's canonical id (never an alias).
    pub key_id: String,
    pub key_version: u32,
    pub wrapped: Vec<u8>,
}

/// Where SSE-KMS data keys come from.
#[async_trait::async_trait]
pub trait KeyManager: Send + Sync {
    /// The key that `key_ref` names: an id, `alias/NAME`, or the ARN of either; `None`: the
    /// default key. `KmsNotFound` if there is none.
    async fn describe(&self, key_ref: Option<&str>) -> Result<KmsKey, ObjectError>;

    /// A new data key wrapped by the current version of the key `key_ref` names (as in
    /// [`Self::describe`]) and bound to `context` (canonical JSON): `KmsDisabled` for a
    /// disabled key.
    async fn generate_data_key(
        &self,
        key_ref: Option<&str>,
        context: &str,
    ) -> Result<WrappedDataKey, ObjectError>;

    /// Unwraps what [`Self::generate_data_key`] wrapped, given the same context.
    async fn decrypt(
        &self,
        key_id: &str,
        key_version: u32,
        wrapped: &[u8],
        context: &str,
    ) -> Result<DataKey, ObjectError>;
}

/// The encryption context of an object as S3 builds it: the caller's pairs and `aws:s3:arn`
/// (the object's ARN, or the bucket's with a bucket key), as canonical JSON (keys sorted).
pub fn encryption_context(
    bucket: &str,
    key: &str,
    bucket_key: bool,
    mut given: BTreeMap<String, String>,
) -> String {
    let arn = if bucket_key {
        format!("arn:aws:s3:::{bucket}")
    } else {
        format!("arn:aws:s3:::{bucket}/{key}")
    };
    given.entry("aws:s3:arn".to_owned()).or_insert(arn);
    // A map of strings always serializes.
    serde_json::to_string(&given).unwrap_or_default()
}

/// A key reference without its ARN prefix: `alias/NAME` or a key id.
fn strip_arn(key_ref: &str) -> &str {
    // arn:aws:kms:<region>:<account>:<resource>
    let resource = match key_ref.strip_prefix("arn:") {
        Some(rest) => rest.splitn(5, ':').nth(4).unwrap_or(key_ref),
        None => key_ref,
    };
    resource.strip_prefix("key/").unwrap_or(resource)
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ObjectError> {
    serde_json::from_slice(bytes).map_err(|e| ObjectError::Internal(format!("KMS record: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ObjectError> {
    serde_json::to_vec(value).map_err(|e| ObjectError::Internal(format!("KMS record: {e}")))
}

fn material_key(key_id: &str, version: u32) -> String {
    // Zero-padded, so the identity table lists versions in order.
    format!("{MATERIAL_PREFIX}{key_id}/{version:010}")
}

/// Basalt's own key manager: keys in the replicated metadata.
#[derive(Clone)]
pub struct BuiltinKms {
    meta: Arc<dyn MetaStore>,
    master_keys: MasterKeySource,
}

impl BuiltinKms {
    pub(crate) fn new(meta: Arc<dyn MetaStore>, master_keys: MasterKeySource) -> Self {
        Self { meta, master_keys }
    }

    async fn record(&self, key_id: &str) -> Result<Option<KeyRecord>, ObjectError> {
        self.meta
            .get_identity(&format!("{KEY_PREFIX}{key_id}"))
            .await?
            .map(|b| decode(&b))
            .transpose()
    }

    /// Every version's material of a key, oldest first.
    async fn materials(&self, key_id: &str) -> Result<Vec<(u32, Material)>, ObjectError> {
        let prefix = format!("{MATERIAL_PREFIX}{key_id}/");
        let mut out = Vec::new();
        for (name, bytes) in self.meta.list_identities(&prefix).await? {
            let version = name[prefix.len()..]
                .parse()
                .map_err(|_| ObjectError::Internal(format!("KMS material name {name}")))?;
            out.push((version, decode(&bytes)?));
        }
        Ok(out)
    }

    async fn info(&self, record: KeyRecord) -> Result<KmsKey, ObjectError> {
        let (version, version_created_ms) = self
            .materials(&record.key_id)
            .await?
            .last()
            .map(|(v, m)| (*v, m.created_ms))
            .unwrap_or((0, record.created_ms));
        Ok(KmsKey {
            key_id: record.key_id,
            alias: record.alias,
            description: record.description,
            created_ms: record.created_ms,
            enabled: record.enabled,
            version,
            version_created_ms,
        })
    }

    /// Creates version `version` of a key's material; `false` if another writer made it.
    async fn create_material(&self, key_id: &str, version: u32) -> Result<bool, ObjectError> {
        let bytes: [u8; 32] = rand::random();
        let (master_key_id, sealed) = self.master_keys.get()?.seal(&bytes);
        let material = Material {
            created_ms: now_ms(),
            master_key_id,
            sealed,
        };
        match self
            .meta
            .execute(Command::CreateIdentity {
                key: material_key(key_id, version),
                value: encode(&material)?,
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(MetaError::PreconditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn put_record(&self, record: &KeyRecord) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetIdentity {
                key: format!("{KEY_PREFIX}{}", record.key_id),
                value: Some(encode(record)?),
            })
            .await?;
        Ok(())
    }

    async fn forget_key(&self, key_id: &str) -> Result<(), ObjectError> {
        for (version, _) in self.materials(key_id).await? {
            self.meta
                .execute(Command::SetIdentity {
                    key: material_key(key_id, version),
                    value: None,
                })
                .await?;
        }
        self.meta
            .execute(Command::SetIdentity {
                key: format!("{KEY_PREFIX}{key_id}"),
                value: None,
            })
            .await?;
        Ok(())
    }

    /// A new enabled key (version 1), with a chosen id or a random one, and an alias if given.
    pub async fn create_key(
        &self,
        key_id: Option<&str>,
        alias: Option<&str>,
        description: &str,
    ) -> Result<KmsKey, ObjectError> {
        let alias = alias.map(|a| a.strip_prefix("alias/").unwrap_or(a));
        if let Some(a) = alias
            && (!valid_name(a) || a.starts_with("aws/"))
        {
            return Err(ObjectError::InvalidArgument(
                "an alias is 1 to 64 letters, digits, /, _ or -, and not under aws/".into(),
            ));
        }
        self.create(key_id, alias, description).await
    }

    async fn create(
        &self,
        key_id: Option<&str>,
        alias: Option<&str>,
        description: &str,
    ) -> Result<KmsKey, ObjectError> {
        let key_id = match key_id {
            Some(id) if valid_name(id) && !id.contains('/') && !id.starts_with("alias") => {
                id.to_owned()
            }
            Some(_) => {
                return Err(ObjectError::InvalidArgument(
                    "a key id is 1 to 64 letters, digits, _ or -".into(),
                ));
            }
            None => crate::new_uuid(),
        };
        if self.record(&key_id).await?.is_some() || !self.create_material(&key_id, 1).await? {
            return Err(ObjectError::InvalidArgument(format!(
                "a key with id {key_id} exists"
            )));
        }
        let record = KeyRecord {
            key_id: key_id.clone(),
            alias: alias.map(str::to_owned),
            description: description.to_owned(),
            created_ms: now_ms(),
            enabled: true,
        };
        self.put_record(&record).await?;
        if let Some(alias) = alias {
            let claimed = self
                .meta
                .execute(Command::CreateIdentity {
                    key: format!("{ALIAS_PREFIX}{alias}"),
                    value: key_id.clone().into_bytes(),
                })
                .await;
            match claimed {
                Ok(_) => {}
                Err(MetaError::PreconditionFailed) => {
                    self.forget_key(&key_id).await?;
                    return Err(ObjectError::AliasExists(alias.to_owned()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.info(record).await
    }

    pub async fn keys(&self) -> Result<Vec<KmsKey>, ObjectError> {
        let mut out = Vec::new();
        for (_, bytes) in self.meta.list_identities(KEY_PREFIX).await? {
            out.push(self.info(decode(&bytes)?).await?);
        }
        Ok(out)
    }

    async fn resolve(&self, key_ref: Option<&str>) -> Result<KeyRecord, ObjectError> {
        let key_ref = key_ref.map(strip_arn).filter(|r| !r.is_empty());
        let alias = match key_ref {
            None => Some(DEFAULT_KEY_ALIAS),
            Some(r) => r.strip_prefix("alias/"),
        };
        let key_id = match alias {
            Some(alias) => match self
                .meta
                .get_identity(&format!("{ALIAS_PREFIX}{alias}"))
                .await?
            {
                Some(id) => String::from_utf8(id)
                    .map_err(|_| ObjectError::Internal(format!("KMS alias {alias}")))?,
                None if alias == DEFAULT_KEY_ALIAS => return self.create_default_key().await,
                None => return Err(ObjectError::KmsNotFound(format!("alias/{alias}"))),
            },
            None => key_ref.unwrap_or_default().to_owned(),
        };
        self.record(&key_id)
            .await?
            .ok_or(ObjectError::KmsNotFound(key_id))
    }

    /// The default key, made by the first write that needs it; of nodes racing to make it,
    /// the one whose alias claim lands wins and the others drop their key.
    async fn create_default_key(&self) -> Result<KeyRecord, ObjectError> {
        match self
            .create(
                None,
                Some(DEFAULT_KEY_ALIAS),
                "Default key that protects S3 objects when no other key is named",
            )
            .await
        {
            Ok(key) => self
                .record(&key.key_id)
                .await?
                .ok_or(ObjectError::KmsNotFound(key.key_id)),
            Err(ObjectError::AliasExists(_)) => Box::pin(self.resolve(None)).await,
            Err(e) => Err(e),
        }
    }

    /// A new version of the key's material, which wraps data keys from now on.
    pub async fn rotate(&self, key_ref: &str) -> Result<KmsKey, ObjectError> {
        let record = self.resolve(Some(key_ref)).await?;
        let current = self.info(record.clone()).await?.version;
        // Losing the race means another rotation made this version: that is the rotation.
        self.create_material(&record.key_id, current + 1).await?;
        self.info(record).await
    }

    pub async fn set_enabled(&self, key_ref: &str, enabled: bool) -> Result<KmsKey, ObjectError> {
        let mut record = self.resolve(Some(key_ref)).await?;
        record.enabled = enabled;
        self.put_record(&record).await?;
        self.info(record).await
    }

    async fn material(&self, key_id: &str, version: u32) -> Result<DataKey, ObjectError> {
        let bytes = self
            .meta
            .get_identity(&material_key(key_id, version))
            .await?
            .ok_or_else(|| {
                ObjectError::Internal(format!("KMS key {key_id} has no version {version}"))
            })?;
        let material: Material = decode(&bytes)?;
        let plain = self
            .master_keys
            .get()?
            .open(&material.master_key_id, &material.sealed)?;
        let plain = <[u8; 32]>::try_from(plain)
            .map_err(|_| ObjectError::Corrupt(format!("KMS key {key_id} material")))?;
        Ok(DataKey::from_bytes(&plain))
    }

    /// The record of key `key_id`, if it exists and is enabled.
    async fn usable(&self, key_id: &str) -> Result<KeyRecord, ObjectError> {
        let record = self
            .record(key_id)
            .await?
            .ok_or_else(|| ObjectError::KmsNotFound(key_id.to_owned()))?;
        if record.enabled {
            Ok(record)
        } else {
            Err(ObjectError::KmsDisabled(record.key_id))
        }
    }
}

#[async_trait::async_trait]
impl KeyManager for BuiltinKms {
    async fn describe(&self, key_ref: Option<&str>) -> Result<KmsKey, ObjectError> {
        let record = self.resolve(key_ref).await?;
        self.info(record).await
    }

    async fn generate_data_key(
        &self,
        key_ref: Option<&str>,
        context: &str,
    ) -> Result<WrappedDataKey, ObjectError> {
        let record = self.resolve(key_ref).await?;
        if !record.enabled {
            return Err(ObjectError::KmsDisabled(record.key_id));
        }
        let key_id = record.key_id.clone();
        let version = self.info(record).await?.version;
        let wrapping = self.material(&key_id, version).await?;
        let bytes: [u8; 32] = rand::random();
        Ok(WrappedDataKey {
            key: DataKey::from_bytes(&bytes),
            key_id,
            key_version: version,
            wrapped: seal_with_aad(wrapping.aead(), &bytes, context.as_bytes()),
        })
    }

    async fn decrypt(
        &self,
        key_id: &str,
        key_version: u32,
        wrapped: &[u8],
        context: &str,
    ) -> Result<DataKey, ObjectError> {
        self.usable(key_id).await?;
        let wrapping = self.material(key_id, key_version).await?;
        let plain = open_with_aad(wrapping.aead(), wrapped, context.as_bytes())
            .ok_or_else(|| ObjectError::Corrupt(format!("a data key wrapped by {key_id}")))?;
        let plain = <[u8; 32]>::try_from(plain)
            .map_err(|_| ObjectError::Corrupt(format!("a data key wrapped by {key_id}")))?;
        Ok(DataKey::from_bytes(&plain))
    }
}

impl ObjectStore {
    /// Basalt's own key manager, for its admin calls (create, list, rotate, enable, disable).
    pub fn builtin_kms(&self) -> BuiltinKms {
        BuiltinKms::new(self.meta.clone(), self.master_key_source.clone())
    }

    /// Uses `manager` for SSE-KMS instead of the built-in key store.
    pub fn with_key_manager(mut self, manager: Arc<dyn KeyManager>) -> Self {
        self.key_manager = manager;
        self
    }

    pub fn key_manager(&self) -> &Arc<dyn KeyManager> {
        &self.key_manager
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_references_lose_their_arn() {
        assert_eq!(strip_arn("1234"), "1234");
        assert_eq!(strip_arn("alias/x"), "alias/x");
        assert_eq!(strip_arn("arn:aws:kms:us-east-1:basalt:key/1234"), "1234");
        assert_eq!(
            strip_arn("arn:aws:kms:us-east-1:basalt:alias/team/x"),
            "alias/team/x"
        );
    }

    #[test]
    fn the_context_names_the_object_or_with_a_bucket_key_the_bucket() {
        let given = BTreeMap::from([("team".to_owned(), "ml".to_owned())]);
        assert_eq!(
            encryption_context("b", "k/1", false, given.clone()),
            r#"{"aws:s3:arn":"arn:aws:s3:::b/k/1","team":"ml"}"#
        );
        assert_eq!(
            encryption_context("b", "k/1", true, BTreeMap::new()),
            r#"{"aws:s3:arn":"arn:aws:s3:::b"}"#
        );
    }
}
