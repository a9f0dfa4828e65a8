//! Users and their access keys. Records live in the metadata (so they replicate with it);
//! secrets are sealed with the node's master key, since SigV4 needs the secret itself to check
//! a signature: they are shown once, at creation, and never logged.

use std::time::Duration;

use basalt_meta::Command;
use serde::{Deserialize, Serialize};

use crate::{ObjectError, ObjectStore, now_ms};

const USER_PREFIX: &str = "user/";
const KEY_PREFIX: &str = "key/";
const SESSION_PREFIX: &str = "session/";

/// Temporary credentials from STS: a key pair and a session token, valid until `expires_ms`,
/// with the rights of the role's policies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub access_key: String,
    /// Who assumed the role: `role/<role>/<session name>`.
    pub principal: String,
    pub policies: Vec<String>,
    pub expires_ms: i64,
    /// SHA-256 of the session token, hex: the token itself is never stored.
    pub token_sha256: String,
    master_key_id: String,
    sealed_secret: Vec<u8>,
}

/// Credentials handed out once, at creation.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub access_key: String,
    pub secret_key: crate::Secret,
    pub session_token: crate::Secret,
    pub expires_ms: i64,
}

#[cfg(test)]
#[test]
fn issued_session_credentials_never_print() {
    let issued = IssuedSession {
        access_key: "ASIA0123".into(),
        secret_key: "issued-secret-0123456789".to_owned().into(),
        session_token: "issued-token-0123456789".to_owned().into(),
        expires_ms: 0,
    };
    let printed = format!("{issued:?}");
    assert!(
        !printed.contains("issued-secret") && !printed.contains("issued-token"),
        "{printed}"
    );
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex_simd::encode_to_string(
        ring::digest::digest(&ring::digest::SHA256, data),
        hex_simd::AsciiCase::Lower,
    )
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub created_ms: i64,
    pub disabled: bool,
    /// Attached identity policies: canned names (`readonly`, `readwrite`, `writeonly`) or
    /// policy documents (JSON), checked by the S3 front before they are stored.
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    access_key: String,
    user: String,
    created_ms: i64,
    master_key_id: String,
    sealed_secret: Vec<u8>,
}

/// An access key as listings show it: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKeyInfo {
    pub access_key: String,
    pub user: String,
    pub created_ms: i64,
}

fn valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| alphabet[rand::random_range(0..alphabet.len())] as char)
        .collect()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ObjectError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ObjectError::Internal(format!("identity record: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ObjectError> {
    serde_json::to_vec(value).map_err(|e| ObjectError::Internal(format!("identity record: {e}")))
}

impl ObjectStore {
    async fn put_identity(&self, key: String, value: Option<Vec<u8>>) -> Result<bool, ObjectError> {
        Ok(self
            .meta
            .execute(Command::SetIdentity { key, value })
            .await?
            .existed)
    }

    pub async fn user(&self, name: &str) -> Result<Option<User>, ObjectError> {
        self.meta
            .get_identity(&format!("{USER_PREFIX}{name}"))
            .await?
            .map(|b| decode(&b))
            .transpose()
    }

    async fn require_user(&self, name: &str) -> Result<User, ObjectError> {
        self.user(name)
            .await?
            .ok_or_else(|| ObjectError::InvalidArgument(format!("no user named {name}")))
    }

    pub async fn users(&self) -> Result<Vec<User>, ObjectError> {
        self.meta
            .list_identities(USER_PREFIX)
            .await?
            .iter()
            .map(|(_, v)| decode(v))
            .collect()
    }

    pub async fn create_user(&self, name: &str) -> Result<User, ObjectError> {
        if !valid_user_name(name) {
            return Err(ObjectError::InvalidArgument(
                "a user name is 1 to 64 letters, digits or +=,.@_-".into(),
            ));
        }
        if self.user(name).await?.is_some() {
            return Err(ObjectError::InvalidArgument(format!("user {name} exists")));
        }
        let user = User {
            name: name.to_owned(),
            created_ms: now_ms(),
            disabled: false,
            policies: Vec::new(),
        };
        self.put_identity(format!("{USER_PREFIX}{name}"), Some(encode(&user)?))
            .await?;
        Ok(user)
    }

    async fn update_user(
        &self,
        name: &str,
        f: impl FnOnce(&mut User),
    ) -> Result<User, ObjectError> {
        let mut user = self.require_user(name).await?;
        f(&mut user);
        self.put_identity(format!("{USER_PREFIX}{name}"), Some(encode(&user)?))
            .await?;
        Ok(user)
    }

    pub async fn set_user_disabled(&self, name: &str, disabled: bool) -> Result<User, ObjectError> {
        self.update_user(name, |u| u.disabled = disabled).await
    }

    /// Replaces the user's policies (validated by the caller).
    pub async fn set_user_policies(
        &self,
        name: &str,
        policies: Vec<String>,
    ) -> Result<User, ObjectError> {
        self.update_user(name, |u| u.policies = policies).await
    }

    /// Removes a user and every access key it has.
    pub async fn remove_user(&self, name: &str) -> Result<(), ObjectError> {
        self.require_user(name).await?;
        // Disabled first, so its keys stop working even if removal is interrupted.
        self.set_user_disabled(name, true).await?;
        for key in self.access_keys(Some(name)).await? {
            self.revoke_access_key(&key.access_key).await?;
        }
        self.put_identity(format!("{USER_PREFIX}{name}"), None)
            .await?;
        Ok(())
    }

    /// A new key pair for `user`: the secret is returned here and never again.
    pub async fn create_access_key(&self, user: &str) -> Result<(String, String), ObjectError> {
        self.require_user(user).await?;
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let access_key = format!("BK{}", random_string(18, UPPER));
        let secret = random_string(40, ANY);
        let (master_key_id, sealed_secret) = self.master_keys()?.seal(secret.as_bytes());
        let record = StoredKey {
            access_key: access_key.clone(),
            user: user.to_owned(),
            created_ms: now_ms(),
            master_key_id,
            sealed_secret,
        };
        self.put_identity(format!("{KEY_PREFIX}{access_key}"), Some(encode(&record)?))
            .await?;
        Ok((access_key, secret))
    }

    pub async fn access_keys(&self, user: Option<&str>) -> Result<Vec<AccessKeyInfo>, ObjectError> {
        let mut out = Vec::new();
        for (_, v) in self.meta.list_identities(KEY_PREFIX).await? {
            let key: StoredKey = decode(&v)?;
            if user.is_none_or(|u| u == key.user) {
                out.push(AccessKeyInfo {
                    access_key: key.access_key,
                    user: key.user,
                    created_ms: key.created_ms,
                });
            }
        }
        Ok(out)
    }

    /// Deletes an access key; whether it existed.
    pub async fn revoke_access_key(&self, access_key: &str) -> Result<bool, ObjectError> {
        self.put_identity(format!("{KEY_PREFIX}{access_key}"), None)
            .await
    }

    /// The enabled user an access key belongs to, and the key's secret.
    pub async fn credentials_of(
        &self,
        access_key: &str,
    ) -> Result<Option<(User, String)>, ObjectError> {
        let Some(bytes) = self
            .meta
            .get_identity(&format!("{KEY_PREFIX}{access_key}"))
            .await?
        else {
            return Ok(None);
        };
        let key: StoredKey = decode(&bytes)?;
        let Some(user) = self.user(&key.user).await?.filter(|u| !u.disabled) else {
            return Ok(None);
        };
        let secret = self
            .master_keys()?
            .open(&key.master_key_id, &key.sealed_secret)?;
        let secret = String::from_utf8(secret)
            .map_err(|_| ObjectError::Corrupt("an access key's secret".into()))?;
        Ok(Some((user, secret)))
    }

    /// Issues temporary credentials for `principal` with `policies`, valid `duration_ms`.
    pub async fn create_session(
        &self,
        principal: &str,
        policies: Vec<String>,
        duration_ms: i64,
    ) -> Result<IssuedSession, ObjectError> {
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let access_key = format!("BS{}", random_string(18, UPPER));
        let secret_key = random_string(40, ANY);
        let session_token = random_string(96, ANY);
        let (master_key_id, sealed_secret) = self.master_keys()?.seal(secret_key.as_bytes());
        let expires_ms = now_ms() + duration_ms;
        let session = Session {
            access_key: access_key.clone(),
            principal: principal.to_owned(),
            policies,
            expires_ms,
            token_sha256: sha256_hex(session_token.as_bytes()),
            master_key_id,
            sealed_secret,
        };
        self.put_identity(
            format!("{SESSION_PREFIX}{access_key}"),
            Some(encode(&session)?),
        )
        .await?;
        Ok(IssuedSession {
            access_key,
            secret_key: secret_key.into(),
            session_token: session_token.into(),
            expires_ms,
        })
    }

    /// The session of a temporary access key (expired or not) and its secret.
    /// Removes the records of sessions (STS credentials, catalog bearer tokens) that expired
    /// more than `retention` ago; answers how many went. Until then an expired session is
    /// still known, so its key is refused as expired rather than unknown.
    pub async fn sweep_expired_sessions(&self, retention: Duration) -> Result<usize, ObjectError> {
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(retention_ms);
        let mut removed = 0;
        for (key, value) in self.meta.list_identities(SESSION_PREFIX).await? {
            // A record that does not decode is left for a person to look at.
            let Ok(session) = decode::<Session>(&value) else {
                continue;
            };
            if session.expires_ms < cutoff {
                self.put_identity(key, None).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Sweeps expired sessions in the background, on the node that runs background work,
    /// every `retention / 4` (at least each second, at most every ten minutes).
    pub fn start_session_sweeper(&self, retention: Duration) {
        let every = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        self.run_periodically("session-sweeper", every, move |store| async move {
            match store.sweep_expired_sessions(retention).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(sessions = n, "expired sessions removed"),
                Err(e) => tracing::warn!(error = %e, "expired sessions were not swept"),
            }
        });
    }

    pub async fn session_of(
        &self,
        access_key: &str,
    ) -> Result<Option<(Session, String)>, ObjectError> {
        let Some(bytes) = self
            .meta
            .get_identity(&format!("{SESSION_PREFIX}{access_key}"))
            .await?
        else {
            return Ok(None);
        };
        let session: Session = decode(&bytes)?;
        let secret = self
            .master_keys()?
            .open(&session.master_key_id, &session.sealed_secret)?;
        let secret = String::from_utf8(secret)
            .map_err(|_| ObjectError::Corrupt("a session's secret".into()))?;
        Ok(Some((session, secret)))
    }

    pub async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, ObjectError> {
        Ok(self.meta.get_bucket_policy(bucket).await?)
    }

    /// Sets (or with `None` removes) a bucket's policy, validated by the caller.
    pub async fn set_bucket_policy(
        &self,
        bucket: &str,
        policy: Option<String>,
    ) -> Result<(), ObjectError> {
        self.meta
            .execute(Command::SetBucketPolicy {
                bucket: bucket.to_owned(),
                policy,
            })
            .await?;
        Ok(())
    }
}
