//! Digests computed while a body streams in: always MD5 (the ETag), plus the flexible
//! checksums the client asked for.

use basalt_meta::{Checksum, ChecksumAlgorithm};
use md5::Digest as _;
use sha2::Digest as _;

pub(crate) struct Hashers {
    md5: md5::Md5,
    crc32: Option<crc_fast::Digest>,
    crc32c: Option<crc_fast::Digest>,
    crc64nvme: Option<crc_fast::Digest>,
    sha1: Option<sha1::Sha1>,
    sha256: Option<sha2::Sha256>,
}

/// The digests of a staged body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: [u8; 16],
    /// One per requested algorithm, base64 as S3 shows them.
    pub checksums: Vec<Checksum>,
}

impl Digests {
    pub fn md5_hex(&self) -> String {
        hex_simd::encode_to_string(self.md5, hex_simd::AsciiCase::Lower)
    }

    pub fn checksum(&self, algorithm: ChecksumAlgorithm) -> Option<&str> {
        self.checksums
            .iter()
            .find(|c| c.algorithm == algorithm)
            .map(|c| c.value.as_str())
    }
}

fn b64(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

impl Hashers {
    pub(crate) fn new(algorithms: &[ChecksumAlgorithm]) -> Self {
        let has = |a| algorithms.contains(&a);
        Self {
            md5: md5::Md5::new(),
            crc32: has(ChecksumAlgorithm::Crc32)
                .then(|| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32IsoHdlc)),
            crc32c: has(ChecksumAlgorithm::Crc32c)
                .then(|| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi)),
            crc64nvme: has(ChecksumAlgorithm::Crc64Nvme)
                .then(|| crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme)),
            sha1: has(ChecksumAlgorithm::Sha1).then(sha1::Sha1::new),
            sha256: has(ChecksumAlgorithm::Sha256).then(sha2::Sha256::new),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(h) = &mut self.crc32 {
            h.update(data);
        }
        if let Some(h) = &mut self.crc32c {
            h.update(data);
        }
        if let Some(h) = &mut self.crc64nvme {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
    }

    pub(crate) fn finish(self) -> Digests {
        let mut checksums = Vec::new();
        let mut push = |algorithm, value: String| checksums.push(Checksum { algorithm, value });
        if let Some(h) = self.crc32 {
            push(
                ChecksumAlgorithm::Crc32,
                b64(&(h.finalize() as u32).to_be_bytes()),
            );
        }
        if let Some(h) = self.crc32c {
            push(
                ChecksumAlgorithm::Crc32c,
                b64(&(h.finalize() as u32).to_be_bytes()),
            );
        }
        if let Some(h) = self.crc64nvme {
            push(
                ChecksumAlgorithm::Crc64Nvme,
                b64(&h.finalize().to_be_bytes()),
            );
        }
        if let Some(h) = self.sha1 {
            push(ChecksumAlgorithm::Sha1, b64(&h.finalize()));
        }
        if let Some(h) = self.sha256 {
            push(ChecksumAlgorithm::Sha256, b64(&h.finalize()));
        }
        Digests {
            md5: self.md5.finalize().into(),
            checksums,
        }
    }
}

/// The multipart ETag: MD5 over the concatenated binary MD5s of the parts, then `-N`.
/// `None` when a listed ETag is not an MD5 in hex (such a part cannot exist).
pub(crate) fn multipart_etag(part_etags: &[String]) -> Option<String> {
    let mut h = md5::Md5::new();
    for etag in part_etags {
        let raw = hex_simd::decode_to_vec(etag.as_bytes()).ok()?;
        if raw.len() != 16 {
            return None;
        }
        h.update(&raw);
    }
    let digest: [u8; 16] = h.finalize().into();
    Some(format!(
        "{}-{}",
        hex_simd::encode_to_string(digest, hex_simd::AsciiCase::Lower),
        part_etags.len()
    ))
}

/// A multipart object's COMPOSITE checksum: the `algorithm` digest of the concatenated binary
/// part checksums, then `-N`. `None` when a part checksum is not valid base64.
pub(crate) fn composite_checksum(algorithm: ChecksumAlgorithm, parts: &[&str]) -> Option<String> {
    let mut hashers = Hashers::new(&[algorithm]);
    for part in parts {
        let raw = base64_simd::STANDARD.decode_to_vec(part.as_bytes()).ok()?;
        hashers.update(&raw);
    }
    let digests = hashers.finish();
    let whole = digests.checksum(algorithm)?;
    Some(format!("{whole}-{}", parts.len()))
}

/// A multipart object's FULL_OBJECT checksum: the parts' CRCs (with their sizes) combined into
/// the CRC of the whole object. `None` for an algorithm that cannot combine (SHA) or a part
/// checksum that is not a CRC of that width.
pub(crate) fn full_object_checksum(
    algorithm: ChecksumAlgorithm,
    parts: &[(&str, u64)],
) -> Option<String> {
    let (crc, width) = match algorithm {
        ChecksumAlgorithm::Crc32 => (crc_fast::CrcAlgorithm::Crc32IsoHdlc, 4),
        ChecksumAlgorithm::Crc32c => (crc_fast::CrcAlgorithm::Crc32Iscsi, 4),
        ChecksumAlgorithm::Crc64Nvme => (crc_fast::CrcAlgorithm::Crc64Nvme, 8),
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => return None,
    };
    let mut whole: Option<u64> = None;
    for (value, size) in parts {
        let raw = base64_simd::STANDARD.decode_to_vec(value.as_bytes()).ok()?;
        if raw.len() != width {
            return None;
        }
        let part = raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        whole = Some(match whole {
            None => part,
            Some(acc) => crc_fast::checksum_combine(crc, acc, part, *size),
        });
    }
    let whole = whole?;
    Some(b64(&whole.to_be_bytes()[8 - width..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_hello_world() {
        let mut h = Hashers::new(&[
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Sha256,
            ChecksumAlgorithm::Crc32c,
        ]);
        h.update(b"hello ");
        h.update(b"world");
        let d = h.finish();
        assert_eq!(d.md5_hex(), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(d.checksum(ChecksumAlgorithm::Crc32), Some("DUoRhQ=="));
        assert_eq!(d.checksum(ChecksumAlgorithm::Crc32c), Some("yZRlqg=="));
        assert_eq!(
            d.checksum(ChecksumAlgorithm::Sha256),
            Some("uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=")
        );
    }

    #[test]
    fn multipart_etag_matches_s3() {
        // Two parts whose MD5s are those of "a" and "b".
        let parts = vec![
            "0cc175b9c0f1b6a831c399e269772661".to_owned(),
            "92eb5ffee6ae2fec3ad71c777531578f".to_owned(),
        ];
        let etag = multipart_etag(&parts).unwrap();
        assert!(etag.ends_with("-2"));
        assert_eq!(etag.len(), 34);
        assert_eq!(multipart_etag(&["nothex".to_owned()]), None);
    }

    fn checksum_of(algorithm: ChecksumAlgorithm, data: &[u8]) -> String {
        let mut h = Hashers::new(&[algorithm]);
        h.update(data);
        h.finish().checksum(algorithm).unwrap().to_owned()
    }

    #[test]
    fn full_object_checksums_combine_into_the_whole_objects() {
        let parts: [&[u8]; 3] = [b"hello ", b"multipart ", b"world"];
        for algorithm in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            let sums: Vec<String> = parts.iter().map(|p| checksum_of(algorithm, p)).collect();
            let with_sizes: Vec<(&str, u64)> = sums
                .iter()
                .zip(parts)
                .map(|(s, p)| (s.as_str(), p.len() as u64))
                .collect();
            assert_eq!(
                full_object_checksum(algorithm, &with_sizes).unwrap(),
                checksum_of(algorithm, b"hello multipart world"),
                "{algorithm:?}"
            );
        }
        assert_eq!(
            full_object_checksum(ChecksumAlgorithm::Sha256, &[("AAAA", 1)]),
            None
        );
        assert_eq!(
            full_object_checksum(ChecksumAlgorithm::Crc32, &[("AAAAAAAAAAA=", 1)]),
            None,
            "a CRC of the wrong width"
        );
    }

    #[test]
    fn composite_checksums_hash_the_part_checksums() {
        let a = checksum_of(ChecksumAlgorithm::Sha256, b"a");
        let b = checksum_of(ChecksumAlgorithm::Sha256, b"b");
        let mut raw = base64_simd::STANDARD.decode_to_vec(a.as_bytes()).unwrap();
        raw.extend(base64_simd::STANDARD.decode_to_vec(b.as_bytes()).unwrap());
        let expected = format!("{}-2", checksum_of(ChecksumAlgorithm::Sha256, &raw));
        assert_eq!(
            composite_checksum(ChecksumAlgorithm::Sha256, &[&a, &b]).unwrap(),
            expected
        );
        assert_eq!(composite_checksum(ChecksumAlgorithm::Crc32, &["!!"]), None);
    }
}
