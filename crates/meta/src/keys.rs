//! Key encodings of the metadata tables. Bucket names never contain a NUL byte, so
//! `bucket 0x00 key` sorts every bucket's keys together in S3's order (UTF-8 byte order).

/// A byte that never occurs in UTF-8: appended to a prefix, it sorts after every key that
/// starts with that prefix.
pub const AFTER_ALL_UTF8: u8 = 0xFF;

pub fn object_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + 1 + key.len());
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Splits an object key into (bucket, key).
pub fn split_object_key(raw: &[u8]) -> Option<(String, String)> {
    let sep = raw.iter().position(|b| *b == 0)?;
    let bucket = std::str::from_utf8(&raw[..sep]).ok()?;
    let key = std::str::from_utf8(&raw[sep + 1..]).ok()?;
    Some((bucket.to_owned(), key.to_owned()))
}

/// The range start of all entries of a bucket (inclusive) and its end (exclusive).
pub fn bucket_range(bucket: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = bucket.as_bytes().to_vec();
    start.push(0);
    let mut end = bucket.as_bytes().to_vec();
    end.push(1);
    (start, end)
}

/// A noncurrent version: `bucket 0x00 key 0x00` then the bitwise NOT of its sequence number
/// (big-endian), so a key's versions sort newest first, right after the key's own entries.
pub fn version_key(bucket: &str, key: &str, seq: u64) -> Vec<u8> {
    let mut k = versions_prefix(bucket, key);
    k.extend_from_slice(&(!seq).to_be_bytes());
    k
}

/// The start of a key's noncurrent versions; they all lie below this with its last byte + 1.
pub fn versions_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = object_key(bucket, key);
    k.push(0);
    k
}

/// The range of a key's noncurrent versions (which may also hold versions of keys that
/// extend this one with a NUL byte: check [`version_seq_of`] against the prefix length).
pub fn versions_range(bucket: &str, key: &str) -> (Vec<u8>, Vec<u8>) {
    let start = versions_prefix(bucket, key);
    let mut end = object_key(bucket, key);
    end.push(1);
    (start, end)
}

/// The sequence number of a version key whose prefix is `prefix_len` bytes long.
pub fn version_seq_of(raw: &[u8], prefix_len: usize) -> Option<u64> {
    if raw.len() != prefix_len + 8 {
        return None;
    }
    let tail: [u8; 8] = raw.get(prefix_len..)?.try_into().ok()?;
    Some(!u64::from_be_bytes(tail))
}

/// Splits a version key into (bucket, key).
pub fn split_version_key(raw: &[u8]) -> Option<(String, String)> {
    let object = raw.get(..raw.len().checked_sub(9)?)?;
    split_object_key(object)
}

pub fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = object_key(bucket, key);
    k.push(0);
    k.extend_from_slice(upload_id.as_bytes());
    k
}

/// Splits an upload key into (object key, upload id).
pub fn split_upload_key(bucket: &str, raw: &[u8]) -> Option<(String, String)> {
    let rest = raw.get(bucket.len() + 1..)?;
    let sep = rest.iter().rposition(|b| *b == 0)?;
    let key = std::str::from_utf8(&rest[..sep]).ok()?;
    let id = std::str::from_utf8(&rest[sep + 1..]).ok()?;
    Some((key.to_owned(), id.to_owned()))
}

pub fn part_key(upload_id: &str, part_number: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(upload_id.len() + 5);
    k.extend_from_slice(upload_id.as_bytes());
    k.push(0);
    k.extend_from_slice(&part_number.to_be_bytes());
    k
}

pub fn parts_range(upload_id: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = upload_id.as_bytes().to_vec();
    start.push(0);
    let mut end = upload_id.as_bytes().to_vec();
    end.push(1);
    (start, end)
}

pub fn part_number_of(raw: &[u8]) -> Option<u32> {
    let tail: [u8; 4] = raw.get(raw.len().checked_sub(4)?..)?.try_into().ok()?;
    Some(u32::from_be_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_sort_within_their_bucket() {
        let (start, end) = bucket_range("b");
        let k = object_key("b", "zzz");
        assert!(start <= k && k < end);
        assert!(object_key("b", "a") < object_key("b", "a/"));
        assert!(object_key("b", "~") < object_key("ba", ""));
    }

    #[test]
    fn versions_sort_newest_first_and_split() {
        assert!(version_key("b", "k", 2) < version_key("b", "k", 1));
        assert!(version_key("b", "k", 0) < version_key("b", "k/", 9));
        let (start, end) = versions_range("b", "k");
        let raw = version_key("b", "k", 7);
        assert!(start <= raw && raw < end);
        assert_eq!(version_seq_of(&raw, start.len()), Some(7));
        assert_eq!(split_version_key(&raw), Some(("b".into(), "k".into())));
    }

    #[test]
    fn upload_and_part_keys_round_trip() {
        let raw = upload_key("bkt", "dir/obj", "abc123");
        assert_eq!(
            split_upload_key("bkt", &raw),
            Some(("dir/obj".into(), "abc123".into()))
        );
        assert_eq!(part_number_of(&part_key("abc", 10_000)), Some(10_000));
        assert!(part_key("abc", 2) < part_key("abc", 10));
    }
}
