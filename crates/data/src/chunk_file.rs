//! The on-disk format of one chunk file (version 1, little-endian):
//!
//! | bytes | field                       |
//! |-------|-----------------------------|
//! | 0..8  | magic `BSLTCHNK`            |
//! | 8     | format version (1)          |
//! | 9..16 | reserved, zero              |
//! | 16..24| data length, u64            |
//! | 24..28| CRC32C of the data, u32     |
//! | 28..32| reserved, zero              |
//! | 32..  | data                        |

use std::fmt;

use crate::DataError;

pub const MAGIC: &[u8; 8] = b"BSLTCHNK";
pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 32;

/// A chunk's identity: 128 random bits, unique for the life of the store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 16]);

impl ChunkId {
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// A random id whose fan-out directory is `group`.
    pub fn random_in_group(group: u8) -> Self {
        let mut id: [u8; 16] = rand::random();
        id[0] = group;
        Self(id)
    }

    /// The fan-out directory the chunk lives in.
    pub fn group(self) -> u8 {
        self.0[0]
    }

    pub fn to_hex(self) -> String {
        hex_simd::encode_to_string(self.0, hex_simd::AsciiCase::Lower)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = hex_simd::decode_to_vec(s).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({self})")
    }
}

/// What a reader must know to find and verify a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkInfo {
    pub id: ChunkId,
    pub len: u32,
    pub crc32c: u32,
}

pub fn crc32c(data: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(data)
}

pub fn header(len: u64, crc: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8] = FORMAT_VERSION;
    h[16..24].copy_from_slice(&len.to_le_bytes());
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a whole chunk file's bytes against what the metadata expects; returns the data.
pub fn verify<'a>(expected: &ChunkInfo, file: &'a [u8]) -> Result<&'a [u8], DataError> {
    let corrupt = |reason: &str| DataError::Corrupt {
        id: expected.id,
        reason: reason.to_owned(),
    };
    let (head, data) = file
        .split_at_checked(HEADER_LEN)
        .ok_or_else(|| corrupt("shorter than its header"))?;
    if &head[0..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    if head[8] != FORMAT_VERSION {
        return Err(corrupt(&format!("unknown format version {}", head[8])));
    }
    let len = u64::from_le_bytes(head[16..24].try_into().map_err(|_| corrupt("header"))?);
    let crc = u32::from_le_bytes(head[24..28].try_into().map_err(|_| corrupt("header"))?);
    if len != u64::from(expected.len) || data.len() as u64 != len {
        return Err(corrupt(&format!(
            "length {} (header {len}), expected {}",
            data.len(),
            expected.len
        )));
    }
    if crc != expected.crc32c || crc32c(data) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(data: &[u8]) -> (ChunkInfo, Vec<u8>) {
        let info = ChunkInfo {
            id: ChunkId([1; 16]),
            len: data.len() as u32,
            crc32c: crc32c(data),
        };
        let mut f = header(data.len() as u64, info.crc32c).to_vec();
        f.extend_from_slice(data);
        (info, f)
    }

    #[test]
    fn a_good_chunk_verifies() {
        let (info, f) = file_of(b"hello chunk");
        assert_eq!(verify(&info, &f).unwrap(), b"hello chunk");
    }

    #[test]
    fn every_single_flipped_byte_is_detected() {
        let (info, f) = file_of(b"some bytes that matter");
        for i in 0..f.len() {
            if (9..16).contains(&i) || (28..32).contains(&i) {
                continue; // reserved bytes carry no meaning
            }
            let mut bad = f.clone();
            bad[i] ^= 0x01;
            assert!(
                verify(&info, &bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn truncation_is_detected() {
        let (info, f) = file_of(b"0123456789");
        assert!(verify(&info, &f[..f.len() - 1]).is_err());
        assert!(verify(&info, &f[..10]).is_err());
    }

    #[test]
    fn chunk_ids_round_trip_through_hex() {
        let id = ChunkId::random();
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(ChunkId::from_hex("zz"), None);
    }
}
