//! Encryption at rest: AES-256-GCM over each chunk (and over inline bodies), with a data key
//! per object. SSE-S3 wraps the data key with the node's master key (kept by id, so old objects
//! stay readable after a rotation); SSE-C derives it from the customer's key, which is never
//! stored: only a salted check value is, to tell a wrong key from damaged data.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use basalt_meta::Encryption;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;

use crate::ObjectError;

/// Bytes a sealed chunk has on top of its plaintext: the nonce in front, the tag behind.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 16;

/// The key that seals and opens one object's chunks.
#[derive(Clone)]
pub struct DataKey(Arc<LessSafeKey>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

fn aead_key(bytes: &[u8; 32]) -> LessSafeKey {
    // AES-256-GCM takes any 32-byte key; construction only fails on a wrong length.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES-256 key"))
}

impl DataKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self(Arc::new(aead_key(bytes)))
    }

    /// `nonce || ciphertext || tag`, with a fresh random nonce: a data key seals at most a few
    /// million chunks, far below the 2^32 messages random 96-bit nonces allow.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        seal_with(&self.0, plain)
    }

    /// Opens what [`Self::seal`] made; a wrong key or altered bytes fail.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, ObjectError> {
        open_with(&self.0, sealed)
            .ok_or_else(|| ObjectError::Corrupt("an encrypted chunk failed authentication".into()))
    }

    /// Seals the chunk stored as stripe `stripe`, bound to that id: a chunk's bytes put in
    /// another stripe's place (of the same object, the only ones its key opens: each version
    /// has its own data key) fail to open instead of reading as the wrong part of the object.
    pub fn seal_chunk(&self, stripe: &[u8; 16], plain: &[u8]) -> Vec<u8> {
        seal_with_aad(&self.0, plain, &chunk_aad(stripe))
    }

    /// Opens what [`Self::seal_chunk`] sealed for `stripe`. Chunks written before chunks
    /// were bound (sealed with no associated data) still open: a bound chunk never opens
    /// without its binding, so the fallback cannot pass a moved one.
    pub fn open_chunk(&self, stripe: &[u8; 16], sealed: &[u8]) -> Result<Vec<u8>, ObjectError> {
        open_with_aad(&self.0, sealed, &chunk_aad(stripe))
            .or_else(|| open_with(&self.0, sealed))
            .ok_or_else(|| {
                ObjectError::Corrupt(
                    "an encrypted chunk failed authentication (damaged, or not this stripe's)"
                        .into(),
                )
            })
    }

    pub(crate) fn aead(&self) -> &LessSafeKey {
        &self.0
    }
}

fn chunk_aad(stripe: &[u8; 16]) -> [u8; 32] {
    let mut aad = [0u8; 32];
    aad[..16].copy_from_slice(b"basalt chunk v1\0");
    aad[16..].copy_from_slice(stripe);
    aad
}

fn seal_with(key: &LessSafeKey, plain: &[u8]) -> Vec<u8> {
    seal_with_aad(key, plain, &[])
}

fn open_with(key: &LessSafeKey, sealed: &[u8]) -> Option<Vec<u8>> {
    open_with_aad(key, sealed, &[])
}

/// Seals `plain` bound to `aad`: opening needs the same `aad` (an encryption context).
pub(crate) fn seal_with_aad(key: &LessSafeKey, plain: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut out = Vec::with_capacity(plain.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[NONCE_LEN..],
        )
        .expect("AES-GCM seals any length a chunk can have");
    out.extend_from_slice(tag.as_ref());
    out
}

pub(crate) fn open_with_aad(key: &LessSafeKey, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    let (nonce, rest) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = rest.to_vec();
    let plain_len = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .ok()?
        .len();
    buf.truncate(plain_len);
    Some(buf)
}

/// Where the SSE master keys come from: given (a cluster's replicated keys) or the node's key
/// file, loaded on first use so nodes that never encrypt never create one.
#[derive(Clone, Default)]
pub(crate) struct MasterKeySource {
    cell: Arc<OnceLock<Result<Arc<MasterKeys>, String>>>,
    key_file: Option<PathBuf>,
}

impl MasterKeySource {
    pub(crate) fn new(key_file: Option<PathBuf>) -> Self {
        Self {
            cell: Arc::default(),
            key_file,
        }
    }

    pub(crate) fn set(&self, keys: MasterKeys) -> Result<(), ObjectError> {
        self.cell
            .set(Ok(Arc::new(keys)))
            .map_err(|_| ObjectError::Internal("the SSE-S3 master keys are already loaded".into()))
    }

    pub(crate) fn get(&self) -> Result<Arc<MasterKeys>, ObjectError> {
        self.cell
            .get_or_init(|| {
                let path = self
                    .key_file
                    .clone()
                    .ok_or_else(|| "no SSE-S3 master key file is configured".to_owned())?;
                MasterKeys::load_or_create(&path).map(Arc::new)
            })
            .clone()
            .map_err(|e| ObjectError::Internal(format!("SSE-S3 master keys: {e}")))
    }
}

/// The node's master keys, by id; the last one wraps new data keys.
pub struct MasterKeys {
    keys: Vec<(String, LessSafeKey)>,
}

impl MasterKeys {
    /// Parses `<id> <base64 of 32 bytes>` lines (`#` starts a comment). Rotation appends a line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, b64) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| "a master key line is `<id> <base64 key>`".to_owned())?;
            let bytes = base64_simd::STANDARD
                .decode_to_vec(b64.trim())
                .map_err(|_| format!("master key {id}: not base64"))?;
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| format!("master key {id}: must be 32 bytes"))?;
            if keys.iter().any(|(k, _)| k == id) {
                return Err(format!("master key id {id} appears twice"));
            }
            keys.push((id.to_owned(), aead_key(&bytes)));
        }
        if keys.is_empty() {
            return Err("no master key".into());
        }
        Ok(Self { keys })
    }

    /// The text of a new key file: one fresh random key.
    pub fn generate_text() -> String {
        let key: [u8; 32] = rand::random();
        format!(
            "# Basalt SSE-S3 master keys: `<id> <base64>`; the last one wraps new objects.\n\
             # Rotate by appending a line; keep old lines while objects use them.\n\
             k1 {}\n",
            base64_simd::STANDARD.encode_to_string(key)
        )
    }

    /// Reads the key file, creating it (mode 0600, one fresh key) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        if !path.exists() {
            let text = Self::generate_text();
            write_private(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn active(&self) -> &(String, LessSafeKey) {
        // `parse` refuses an empty list.
        self.keys.last().expect("at least one master key")
    }

    /// A fresh data key and its record (wrapped by the active master key).
    pub fn new_data_key(&self) -> (DataKey, Encryption) {
        let bytes: [u8; 32] = rand::random();
        let (id, master) = self.active();
        let wrapped_key = seal_with(master, &bytes);
        (
            DataKey::from_bytes(&bytes),
            Encryption::Managed {
                key_id: id.clone(),
                wrapped_key,
            },
        )
    }

    pub fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<DataKey, ObjectError> {
        let bytes = <[u8; 32]>::try_from(self.open(key_id, wrapped)?)
            .map_err(|_| ObjectError::Corrupt(format!("data key wrapped by {key_id}")))?;
        Ok(DataKey::from_bytes(&bytes))
    }

    /// Seals a small secret (an access key's secret) with the active master key.
    pub fn seal(&self, plain: &[u8]) -> (String, Vec<u8>) {
        let (id, master) = self.active();
        (id.clone(), seal_with(master, plain))
    }

    /// Opens what [`Self::seal`] (or a data-key wrap) sealed with master key `key_id`.
    pub fn open(&self, key_id: &str, sealed: &[u8]) -> Result<Vec<u8>, ObjectError> {
        let (_, master) = self
            .keys
            .iter()
            .find(|(id, _)| id == key_id)
            .ok_or_else(|| {
                ObjectError::Internal(format!(
                    "master key {key_id} is not configured: it is needed to read this data"
                ))
            })?;
        open_with(master, sealed)
            .ok_or_else(|| ObjectError::Corrupt(format!("data sealed by master key {key_id}")))
    }
}

/// Writes a new private file atomically: a temporary file (mode 0600) is written and fsynced,
/// linked to its name (which must not exist yet), and the directory fsynced, so a crash leaves
/// either no key file or the whole one, never an empty or torn file.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the key file has no name"))?;
    let temporary = dir.join(format!(
        ".{}.{:016x}.tmp",
        name.to_string_lossy(),
        rand::random::<u64>()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let written = (|| {
        let mut file = options.open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        // A link, unlike a rename, never replaces a key file another process made meanwhile.
        std::fs::hard_link(&temporary, path)
    })();
    let _ = std::fs::remove_file(&temporary);
    written?;
    std::fs::File::open(&dir)?.sync_all()
}

/// A customer-provided key (SSE-C) as the request gave it.
#[derive(Clone)]
pub struct CustomerKey {
    pub key: [u8; 32],
    /// Base64 of the key's MD5, echoed back to the client.
    pub key_md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustomerKey(md5 {})", self.key_md5)
    }
}

fn hmac_sha256(key: &[u8; 32], label: &[u8], salt: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(label);
    ctx.update(salt);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

impl CustomerKey {
    /// A new object's data key and its record (salt and check value, never the key).
    pub fn new_data_key(&self) -> (DataKey, Encryption) {
        let salt: [u8; 16] = rand::random();
        let record = Encryption::Customer {
            salt,
            key_check: hmac_sha256(&self.key, b"basalt sse-c check", &salt),
            key_md5: self.key_md5.clone(),
        };
        (self.derive(&salt), record)
    }

    fn derive(&self, salt: &[u8; 16]) -> DataKey {
        DataKey::from_bytes(&hmac_sha256(&self.key, b"basalt sse-c data key", salt))
    }

    /// The data key of an object encrypted with this customer key; `AccessDenied` if the key
    /// is not the one the object was written with.
    pub fn open_record(
        &self,
        salt: &[u8; 16],
        key_check: &[u8; 32],
    ) -> Result<DataKey, ObjectError> {
        let check = hmac_sha256(&self.key, b"basalt sse-c check", salt);
        // Compared without an early exit, so timing tells nothing about the stored value.
        let differ = check
            .iter()
            .zip(key_check)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differ != 0 {
            return Err(ObjectError::AccessDenied(
                "the customer-provided key does not match the object's".into(),
            ));
        }
        Ok(self.derive(salt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_is_whole_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sse-master.keys");
        MasterKeys::load_or_create(&path).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.contains("k1 "));
        MasterKeys::load_or_create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            first,
            "loaded, not replaced"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["sse-master.keys"], "no temporary file is left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn sealed_chunks_open_only_with_their_key_and_unaltered() {
        let key = DataKey::from_bytes(&[7; 32]);
        let sealed = key.seal(b"attack at dawn");
        assert_eq!(sealed.len(), 14 + SEAL_OVERHEAD);
        assert_eq!(key.open(&sealed).unwrap(), b"attack at dawn");
        assert!(DataKey::from_bytes(&[8; 32]).open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered[NONCE_LEN] ^= 1;
        assert!(key.open(&tampered).is_err());
        assert!(key.open(&sealed[..5]).is_err());
    }

    #[test]
    fn a_sealed_chunk_opens_only_as_its_own_stripe() {
        let key = DataKey::from_bytes(&[7; 32]);
        let (here, there) = ([1u8; 16], [2u8; 16]);
        let sealed = key.seal_chunk(&here, b"first chunk");
        assert_eq!(key.open_chunk(&here, &sealed).unwrap(), b"first chunk");
        assert!(
            key.open_chunk(&there, &sealed).is_err(),
            "moved into another stripe"
        );
        assert!(key.open(&sealed).is_err(), "not without its binding");
        let unbound = key.seal(b"written before chunks were bound");
        assert_eq!(
            key.open_chunk(&there, &unbound).unwrap(),
            b"written before chunks were bound"
        );
    }

    #[test]
    fn rotated_master_keys_still_unwrap_old_data_keys() {
        let old = MasterKeys::parse(&format!(
            "k1 {}\n",
            base64_simd::STANDARD.encode_to_string([1u8; 32])
        ))
        .unwrap();
        let (data_key, record) = old.new_data_key();
        let sealed = data_key.seal(b"x");
        let rotated = MasterKeys::parse(&format!(
            "k1 {}\nk2 {}\n",
            base64_simd::STANDARD.encode_to_string([1u8; 32]),
            base64_simd::STANDARD.encode_to_string([2u8; 32])
        ))
        .unwrap();
        let Encryption::Managed {
            key_id,
            wrapped_key,
        } = record
        else {
            panic!()
        };
        assert_eq!(key_id, "k1");
        assert_eq!(
            rotated
                .unwrap(&key_id, &wrapped_key)
                .unwrap()
                .open(&sealed)
                .unwrap(),
            b"x"
        );
        let (_, newer) = rotated.new_data_key();
        assert!(matches!(newer, Encryption::Managed { key_id, .. } if key_id == "k2"));
        assert!(MasterKeys::parse("k1 c2hvcnQ=").is_err());
    }

    #[test]
    fn a_wrong_customer_key_is_told_apart() {
        let right = CustomerKey {
            key: [3; 32],
            key_md5: String::new(),
        };
        let (data_key, record) = right.new_data_key();
        let Encryption::Customer {
            salt, key_check, ..
        } = record
        else {
            panic!()
        };
        let sealed = data_key.seal(b"secret");
        assert_eq!(
            right
                .open_record(&salt, &key_check)
                .unwrap()
                .open(&sealed)
                .unwrap(),
            b"secret"
        );
        let wrong = CustomerKey {
            key: [4; 32],
            key_md5: String::new(),
        };
        assert!(matches!(
            wrong.open_record(&salt, &key_check),
            Err(ObjectError::AccessDenied(_))
        ));
    }
}
