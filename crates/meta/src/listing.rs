//! Listings read from the tables: objects with prefix and delimiter, and versions, paged.

use redb::{Database, ReadableDatabase};

use crate::MetaError;
use crate::keys::{self, AFTER_ALL_UTF8};
use crate::record::decode_summary;
use crate::state_machine::noncurrent_versions;
use crate::store::{ListEntry, ListPage, VersionEntry, VersionPage};
use crate::tables::*;

pub(crate) fn utf8_key(raw: &[u8]) -> Result<String, MetaError> {
    String::from_utf8(raw.to_vec())
        .map_err(|_| MetaError::Corrupt("object key is not UTF-8".into()))
}

/// Where the common prefix of `key` ends (after the first `delimiter` past `prefix`), if the
/// key rolls up into one: what every listing with a delimiter asks of each key.
pub(crate) fn common_prefix_end(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<usize> {
    let d = delimiter?;
    let rest = key.get(prefix.len()..)?;
    rest.find(d).map(|pos| prefix.len() + pos + d.len())
}

pub(crate) fn list_objects_sync(
    db: &Database,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&str>,
    max_entries: usize,
) -> Result<ListPage, MetaError> {
    let txn = db.begin_read()?;
    if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
        return Err(MetaError::NoSuchBucket);
    }
    let objects = txn.open_table(OBJECTS)?;
    let bucket_len = bucket.len() + 1;
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let common_prefix_of = |key: &str| common_prefix_end(key, prefix, delimiter);

    let mut lower = keys::object_key(bucket, prefix);
    if let Some(after) = start_after {
        let mut after_key = keys::object_key(bucket, after);
        // Resuming after a common prefix skips every key under it.
        if after.starts_with(prefix) && common_prefix_of(after) == Some(after.len()) {
            after_key.push(AFTER_ALL_UTF8);
        } else {
            after_key.push(0);
        }
        lower = lower.max(after_key);
    }
    let mut upper = keys::object_key(bucket, prefix);
    upper.push(AFTER_ALL_UTF8);

    let mut page = ListPage::default();
    'seek: loop {
        for entry in objects.range(lower.as_slice()..upper.as_slice())? {
            let (k, v) = entry?;
            if page.entries.len() == max_entries {
                page.is_truncated = true;
                break 'seek;
            }
            let key = utf8_key(&k.value()[bucket_len..])?;
            if let Some(end) = common_prefix_of(&key) {
                let common = key[..end].to_owned();
                lower = keys::object_key(bucket, &common);
                lower.push(AFTER_ALL_UTF8);
                page.entries.push(ListEntry::CommonPrefix(common));
                continue 'seek;
            }
            let summary = decode_summary(v.value())?;
            if summary.delete_marker {
                continue;
            }
            page.entries.push(ListEntry::Object { key, summary });
        }
        break;
    }
    Ok(page)
}

/// Adds one entry to a version page unless it is full (then marks it truncated).
fn push_version(page: &mut VersionPage, max_entries: usize, entry: VersionEntry) -> bool {
    if page.entries.len() == max_entries {
        page.is_truncated = true;
        return false;
    }
    page.next_marker = Some(match &entry {
        VersionEntry::Version { key, summary, .. } => {
            (key.clone(), Some(summary.version_name().to_owned()))
        }
        VersionEntry::CommonPrefix(p) => (p.clone(), None),
    });
    page.entries.push(entry);
    true
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn list_versions_sync(
    db: &Database,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    key_marker: Option<&str>,
    version_id_marker: Option<&str>,
    max_entries: usize,
) -> Result<VersionPage, MetaError> {
    let txn = db.begin_read()?;
    if txn.open_table(BUCKETS)?.get(bucket)?.is_none() {
        return Err(MetaError::NoSuchBucket);
    }
    let objects = txn.open_table(OBJECTS)?;
    let versions = txn.open_table(VERSIONS)?;
    let bucket_len = bucket.len() + 1;
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let common_prefix_of = |key: &str| common_prefix_end(key, prefix, delimiter);
    let mut page = VersionPage::default();
    // Emits a key's versions newest first, from just after `after` (a version name) if given.
    let emit_key = |page: &mut VersionPage,
                    key: &str,
                    current: &[u8],
                    after: Option<&str>|
     -> Result<bool, MetaError> {
        let mut skipping = after.is_some();
        let current = decode_summary(current)?;
        let mut candidates = std::iter::once(Ok((current, true))).chain(
            noncurrent_versions(&versions, bucket, key)?
                .map(|e| e.and_then(|(_, _, v)| Ok((decode_summary(v.value())?, false)))),
        );
        for candidate in candidates.by_ref() {
            let (summary, is_latest) = candidate?;
            if skipping {
                skipping = after != Some(summary.version_name());
                continue;
            }
            let entry = VersionEntry::Version {
                key: key.to_owned(),
                summary,
                is_latest,
            };
            if !push_version(page, max_entries, entry) {
                return Ok(false);
            }
        }
        Ok(true)
    };

    let mut lower = keys::object_key(bucket, prefix);
    if let Some(marker) = key_marker {
        let mut after = keys::object_key(bucket, marker);
        let rolled_up = marker.starts_with(prefix) && common_prefix_of(marker).is_some();
        if rolled_up && common_prefix_of(marker) == Some(marker.len()) {
            after.push(AFTER_ALL_UTF8);
        } else {
            after.push(0);
        }
        if let Some(version_marker) = version_id_marker
            && marker.starts_with(prefix)
            && !rolled_up
        {
            let k = keys::object_key(bucket, marker);
            if let Some(current) = objects.get(k.as_slice())?
                && !emit_key(&mut page, marker, current.value(), Some(version_marker))?
            {
                return Ok(page);
            }
        }
        lower = lower.max(after);
    }
    let mut upper = keys::object_key(bucket, prefix);
    upper.push(AFTER_ALL_UTF8);

    'seek: loop {
        for entry in objects.range(lower.as_slice()..upper.as_slice())? {
            let (k, v) = entry?;
            let key = utf8_key(&k.value()[bucket_len..])?;
            if let Some(end) = common_prefix_of(&key) {
                let common = key[..end].to_owned();
                lower = keys::object_key(bucket, &common);
                lower.push(AFTER_ALL_UTF8);
                if !push_version(&mut page, max_entries, VersionEntry::CommonPrefix(common)) {
                    break 'seek;
                }
                continue 'seek;
            }
            if !emit_key(&mut page, &key, v.value(), None)? {
                break 'seek;
            }
        }
        break;
    }
    Ok(page)
}
