//! Tests of the redb engine and the state machine through it: commands, listings, versions,
//! locks, reopening.

use super::*;
use crate::record::{ChunkRef, ObjectDetails, ObjectSummary, Payload, StandardHeaders};
use crate::store::ListEntry;
use crate::{
    CatalogCommand, CompletePart, Precondition, RetentionMode, TableRecord, VersionEntry,
    VersioningState,
};

fn open() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
    (dir, store)
}

fn object(etag: &str, chunk: u8) -> ObjectRecord {
    ObjectRecord {
        summary: ObjectSummary {
            size: 1,
            etag: etag.into(),
            last_modified_ms: 0,
            version_id: Some(format!("v-{etag}")),
            delete_marker: false,
        },
        details: ObjectDetails {
            headers: StandardHeaders::default(),
            user_metadata: vec![],
            checksums: vec![],
            part_sizes: vec![],
            payload: Payload::Chunks(vec![ChunkRef {
                id: [chunk; 16],
                len: 1,
                crc32c: 0,
            }]),
            tags: vec![],
            lock: Default::default(),
            encryption: None,
            acl: None,
            part_checksums: Vec::new(),
        },
    }
}

async fn bucket(store: &RedbStore, name: &str) {
    store
        .execute(Command::CreateBucket {
            name: name.into(),
            record: BucketRecord { created_ms: 0 },
            object_lock: false,
            access: None,
        })
        .await
        .unwrap();
}

async fn create_upload(store: &RedbStore, upload_id: &str) {
    let record = UploadRecord {
        initiated_ms: 0,
        headers: StandardHeaders::default(),
        user_metadata: vec![],
        checksum_algorithm: None,
        tags: vec![("from".into(), "upload".into())],
        lock: Default::default(),
        encryption: None,
        acl: None,
        full_object_checksum: false,
    };
    store
        .execute(Command::CreateUpload {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: upload_id.into(),
            record,
        })
        .await
        .unwrap();
}

fn delete(key: &str, version_id: Option<&str>) -> Command {
    Command::DeleteObject {
        bucket: "b".into(),
        key: key.into(),
        version_id: version_id.map(str::to_owned),
        marker_version_id: format!("marker-{key}-{}", rand_suffix()),
        bypass_governance: false,
        now_ms: 0,
        if_modified_ms: None,
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn put(key: &str, record: ObjectRecord, precondition: Option<Precondition>) -> Command {
    Command::PutObject {
        bucket: "b".into(),
        key: key.into(),
        record,
        precondition,
    }
}

#[tokio::test]
async fn tags_of_objects_and_buckets_are_set_replaced_and_removed() {
    let (_dir, store) = open();
    bucket(&store, "b").await;
    assert_eq!(store.get_bucket_tags("b").await.unwrap(), None);
    let tags = vec![("env".to_owned(), "prod".to_owned())];
    let set = |tags| Command::SetBucketTags {
        bucket: "b".into(),
        tags,
    };
    store.execute(set(Some(tags.clone()))).await.unwrap();
    assert_eq!(
        store.get_bucket_tags("b").await.unwrap(),
        Some(tags.clone())
    );
    store.execute(set(None)).await.unwrap();
    assert_eq!(store.get_bucket_tags("b").await.unwrap(), None);
    assert!(matches!(
        store.get_bucket_tags("nope").await,
        Err(MetaError::NoSuchBucket)
    ));

    let tag_object = |key: &str| Command::SetObjectTags {
        bucket: "b".into(),
        key: key.into(),
        version_id: None,
        tags: tags.clone(),
    };
    assert!(matches!(
        store.execute(tag_object("k")).await,
        Err(MetaError::NoSuchKey)
    ));
    store.execute(put("k", object("e", 1), None)).await.unwrap();
    store.execute(tag_object("k")).await.unwrap();
    let record = store.get_object("b", "k").await.unwrap().unwrap();
    assert_eq!(record.details.tags, tags);
    assert_eq!(
        record.summary.etag, "e",
        "tagging leaves the object as it was"
    );

    // Settings go with their bucket.
    store.execute(set(Some(tags.clone()))).await.unwrap();
    store.execute(delete("k", None)).await.unwrap();
    store
        .execute(Command::DeleteBucket { name: "b".into() })
        .await
        .unwrap();
    bucket(&store, "b").await;
    assert_eq!(store.get_bucket_tags("b").await.unwrap(), None);
}

#[tokio::test]
async fn payload_pages_walk_every_object_and_part_once() {
    let (_dir, store) = open();
    bucket(&store, "b").await;
    for (i, key) in ["a", "b/c", "z"].iter().enumerate() {
        store
            .execute(put(key, object("e", i as u8), None))
            .await
            .unwrap();
    }
    create_upload(&store, "u1").await;
    let part = PartRecord {
        size: 1,
        etag: "p".into(),
        last_modified_ms: 0,
        checksum: None,
        payload: Payload::Chunks(vec![]),
    };
    store
        .execute(Command::PutPart {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "u1".into(),
            part_number: 7,
            record: part,
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.payload_page(cursor.clone(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.cursor.clone());
        seen.extend(page.into_iter().map(|e| e.owner.to_string()));
    }
    assert_eq!(
        seen,
        [
            "object b/a",
            "object b/b/c",
            "object b/z",
            "part 7 of upload u1"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_concurrent_if_none_match_writers_exactly_one_wins() {
    let (_dir, store) = open();
    let store = Arc::new(store);
    bucket(&store, "b").await;
    let tasks: Vec<_> = (0..64u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .execute(put(
                        "lock",
                        object(&format!("e{i}"), i),
                        Some(Precondition::IfNoneMatchAny),
                    ))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(MetaError::PreconditionFailed) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn an_overwrite_returns_the_old_chunks_and_if_match_checks_the_etag() {
    let (_dir, store) = open();
    bucket(&store, "b").await;
    store
        .execute(put("k", object("one", 1), None))
        .await
        .unwrap();
    let err = store
        .execute(put(
            "k",
            object("two", 2),
            Some(Precondition::IfMatch("nope".into())),
        ))
        .await;
    assert!(matches!(err, Err(MetaError::PreconditionFailed)));
    let err = store
        .execute(put(
            "missing",
            object("x", 3),
            Some(Precondition::IfMatch("x".into())),
        ))
        .await;
    assert!(matches!(err, Err(MetaError::NoSuchKey)));
    let out = store
        .execute(put(
            "k",
            object("two", 2),
            Some(Precondition::IfMatch("one".into())),
        ))
        .await
        .unwrap();
    assert_eq!(
        out.garbage,
        vec![StripeRef::from(&ChunkRef {
            id: [1; 16],
            len: 1,
            crc32c: 0
        })]
    );
    assert_eq!(
        store
            .get_object("b", "k")
            .await
            .unwrap()
            .unwrap()
            .summary
            .etag,
        "two"
    );
}

#[tokio::test]
async fn listing_rolls_up_common_prefixes_and_resumes_after_them() {
    let (_dir, store) = open();
    bucket(&store, "b").await;
    bucket(&store, "b2").await;
    for key in ["a.txt", "dir/1", "dir/2", "dir/sub/3", "e.txt", "z/9"] {
        store.execute(put(key, object("e", 0), None)).await.unwrap();
    }
    store
        .execute(Command::PutObject {
            bucket: "b2".into(),
            key: "other".into(),
            record: object("e", 0),
            precondition: None,
        })
        .await
        .unwrap();
    let names = |page: &ListPage| -> Vec<String> {
        page.entries
            .iter()
            .map(|e| match e {
                ListEntry::Object { key, .. } => key.clone(),
                ListEntry::CommonPrefix(p) => format!("{p}*"),
            })
            .collect()
    };
    let all = store
        .list_objects("b", "", Some("/"), None, 1000)
        .await
        .unwrap();
    assert_eq!(names(&all), ["a.txt", "dir/*", "e.txt", "z/*"]);
    assert!(!all.is_truncated);

    let first = store
        .list_objects("b", "", Some("/"), None, 2)
        .await
        .unwrap();
    assert_eq!(names(&first), ["a.txt", "dir/*"]);
    assert!(first.is_truncated);
    let rest = store
        .list_objects("b", "", Some("/"), Some("dir/"), 2)
        .await
        .unwrap();
    assert_eq!(names(&rest), ["e.txt", "z/*"]);
    assert!(!rest.is_truncated);

    let inside = store
        .list_objects("b", "dir/", Some("/"), None, 1000)
        .await
        .unwrap();
    assert_eq!(names(&inside), ["dir/1", "dir/2", "dir/sub/*"]);
    let flat = store
        .list_objects("b", "dir/", None, Some("dir/1"), 1000)
        .await
        .unwrap();
    assert_eq!(names(&flat), ["dir/2", "dir/sub/3"]);
    assert!(matches!(
        store.list_objects("nope", "", None, None, 10).await,
        Err(MetaError::NoSuchBucket)
    ));
}

#[tokio::test]
async fn completing_an_upload_checks_parts_and_frees_the_unlisted_ones() {
    let (_dir, store) = open();
    bucket(&store, "b").await;
    create_upload(&store, "u1").await;
    for (n, size) in [(1u32, 10u64), (2, 3), (3, 10)] {
        let record = PartRecord {
            size,
            etag: format!("etag{n}"),
            last_modified_ms: 0,
            checksum: None,
            payload: Payload::Chunks(vec![ChunkRef {
                id: [n as u8; 16],
                len: size as u32,
                crc32c: 0,
            }]),
        };
        store
            .execute(Command::PutPart {
                bucket: "b".into(),
                key: "k".into(),
                upload_id: "u1".into(),
                part_number: n,
                record,
            })
            .await
            .unwrap();
    }
    let complete = |parts: Vec<(u32, &str)>| {
        Command::CompleteUpload(crate::CompleteUpload {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "u1".into(),
            parts: parts
                .into_iter()
                .map(|(part_number, etag)| CompletePart {
                    part_number,
                    etag: etag.into(),
                    checksum: None,
                })
                .collect(),
            min_part_size: 5,
            last_modified_ms: 1,
            version_id: "v-multipart".into(),
            etag: "final-2".into(),
            precondition: None,
            checksum: None,
        })
    };
    assert!(matches!(
        store
            .execute(complete(vec![(2, "etag2"), (3, "etag3")]))
            .await,
        Err(MetaError::EntityTooSmall { part: 2, .. })
    ));
    assert!(matches!(
        store.execute(complete(vec![(1, "wrong")])).await,
        Err(MetaError::InvalidPart(1))
    ));
    assert!(matches!(
        store
            .execute(complete(vec![(3, "etag3"), (1, "etag1")]))
            .await,
        Err(MetaError::InvalidPartOrder)
    ));
    assert!(matches!(
        store.execute(complete(vec![(4, "etag4")])).await,
        Err(MetaError::InvalidPart(4))
    ));

    let out = store
        .execute(complete(vec![(1, "etag1"), (3, "etag3")]))
        .await
        .unwrap();
    assert_eq!(
        out.garbage,
        vec![StripeRef::from(&ChunkRef {
            id: [2; 16],
            len: 3,
            crc32c: 0
        })]
    );
    let record = store.get_object("b", "k").await.unwrap().unwrap();
    assert_eq!(record.summary.size, 20);
    assert_eq!(record.summary.etag, "final-2");
    assert_eq!(record.details.part_sizes, vec![10, 10]);
    assert!(store.get_upload("b", "k", "u1").await.unwrap().is_none());
    assert!(store.list_parts("u1", 0, 100).await.unwrap().0.is_empty());
    assert!(matches!(
        store.execute(complete(vec![(1, "etag1")])).await,
        Err(MetaError::NoSuchUpload)
    ));
}

#[tokio::test]
async fn a_bucket_with_objects_is_not_deleted_but_pending_uploads_go_with_it() {
    let (_dir, store) = open();
    bucket(&store, "b").await;
    store.execute(put("k", object("e", 1), None)).await.unwrap();
    assert!(matches!(
        store
            .execute(Command::DeleteBucket { name: "b".into() })
            .await,
        Err(MetaError::BucketNotEmpty)
    ));
    store.execute(delete("k", None)).await.unwrap();
    create_upload(&store, "u").await;
    let record = PartRecord {
        size: 1,
        etag: "p".into(),
        last_modified_ms: 0,
        checksum: None,
        payload: Payload::Chunks(vec![ChunkRef {
            id: [9; 16],
            len: 1,
            crc32c: 0,
        }]),
    };
    store
        .execute(Command::PutPart {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "u".into(),
            part_number: 1,
            record,
        })
        .await
        .unwrap();
    let out = store
        .execute(Command::DeleteBucket { name: "b".into() })
        .await
        .unwrap();
    assert_eq!(out.garbage.len(), 1);
    assert!(store.get_bucket("b").await.unwrap().is_none());
    assert!(store.referenced_stripes().await.unwrap().is_empty());
    assert!(store.payload_page(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn committed_records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        bucket(&store, "b").await;
        store
            .execute(put("k", object("kept", 1), None))
            .await
            .unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(
        store
            .get_object("b", "k")
            .await
            .unwrap()
            .unwrap()
            .summary
            .etag,
        "kept"
    );
}

async fn versions_of(store: &RedbStore, key: &str) -> Vec<(String, bool, bool)> {
    let page = store
        .list_versions("b", key, None, None, None, 1000)
        .await
        .unwrap();
    page.entries
        .into_iter()
        .filter_map(|e| match e {
            VersionEntry::Version {
                key: k,
                summary,
                is_latest,
            } if k == key => Some((
                summary.version_name().to_owned(),
                summary.delete_marker,
                is_latest,
            )),
            _ => None,
        })
        .collect()
}

fn v(name: &str, marker: bool, latest: bool) -> (String, bool, bool) {
    (name.to_owned(), marker, latest)
}

#[tokio::test]
async fn versioning_keeps_every_version_and_delete_markers_in_order() {
    let (_dir, store) = open();
    bucket(&store, "b").await;
    // Unversioned: the null version is replaced in place.
    store.execute(put("k", object("a", 1), None)).await.unwrap();
    let out = store.execute(put("k", object("b", 2), None)).await.unwrap();
    assert_eq!(out.version_id.as_deref(), Some("null"));
    assert_eq!(out.garbage.len(), 1, "the replaced null version is garbage");
    assert_eq!(versions_of(&store, "k").await, vec![v("null", false, true)]);

    let enable = |state| Command::SetVersioning {
        bucket: "b".into(),
        state,
    };
    store
        .execute(enable(VersioningState::Enabled))
        .await
        .unwrap();
    let out = store.execute(put("k", object("c", 3), None)).await.unwrap();
    assert_eq!(out.version_id.as_deref(), Some("v-c"));
    assert!(out.garbage.is_empty(), "the null version is kept");
    let out = store.execute(delete("k", None)).await.unwrap();
    assert!(out.delete_marker && out.garbage.is_empty());
    let marker = out.version_id.unwrap();
    store.execute(put("k", object("d", 4), None)).await.unwrap();
    assert_eq!(
        versions_of(&store, "k").await,
        vec![
            v("v-d", false, true),
            v(&marker, true, false),
            v("v-c", false, false),
            v("null", false, false)
        ]
    );
    assert_eq!(
        store
            .get_object_version("b", "k", "null")
            .await
            .unwrap()
            .unwrap()
            .summary
            .etag,
        "b"
    );
    assert!(
        store
            .get_object_version("b", "k", "nope")
            .await
            .unwrap()
            .is_none()
    );

    // Deleting the current version by id promotes the next newest, a delete marker here.
    let out = store.execute(delete("k", Some("v-d"))).await.unwrap();
    assert!(out.existed && !out.delete_marker && out.garbage.len() == 1);
    let current = store.get_object("b", "k").await.unwrap().unwrap();
    assert!(current.summary.delete_marker);
    let listed = store.list_objects("b", "", None, None, 10).await.unwrap();
    assert!(listed.entries.is_empty(), "a delete marker hides the key");
    assert!(matches!(
        store
            .execute(put(
                "k",
                object("x", 9),
                Some(Precondition::IfMatch("*".into()))
            ))
            .await,
        Err(MetaError::NoSuchKey)
    ));
    store.execute(delete("k", Some(&marker))).await.unwrap();
    assert_eq!(
        store
            .get_object("b", "k")
            .await
            .unwrap()
            .unwrap()
            .summary
            .etag,
        "c"
    );

    // Suspended: new writes are the null version, replacing the old null version.
    store
        .execute(enable(VersioningState::Suspended))
        .await
        .unwrap();
    let out = store.execute(put("k", object("e", 5), None)).await.unwrap();
    assert_eq!(out.version_id.as_deref(), Some("null"));
    assert_eq!(
        out.garbage.len(),
        1,
        "the old noncurrent null version is replaced"
    );
    let out = store.execute(delete("k", None)).await.unwrap();
    assert_eq!(out.version_id.as_deref(), Some("null"));
    assert_eq!(
        out.garbage.len(),
        1,
        "the null marker replaces the null version"
    );
    assert_eq!(
        versions_of(&store, "k").await,
        vec![v("null", true, true), v("v-c", false, false)]
    );
    assert!(matches!(
        store
            .execute(Command::DeleteBucket { name: "b".into() })
            .await,
        Err(MetaError::BucketNotEmpty)
    ));
    let refs = store.referenced_stripes().await.unwrap();
    assert_eq!(refs.len(), 1, "noncurrent versions keep their data");
    let mut owners = Vec::new();
    for entry in store.payload_page(None, 100).await.unwrap() {
        owners.push(entry.owner);
    }
    assert!(owners.contains(&PayloadOwner::Object {
        bucket: "b".into(),
        key: "k".into(),
        version_id: Some("v-c".into())
    }));
}

#[tokio::test]
async fn version_listings_page_with_key_and_version_markers() {
    let (_dir, store) = open();
    bucket(&store, "b").await;
    store
        .execute(Command::SetVersioning {
            bucket: "b".into(),
            state: VersioningState::Enabled,
        })
        .await
        .unwrap();
    for (key, etag) in [
        ("a", "1"),
        ("a", "2"),
        ("a", "3"),
        ("d/x", "4"),
        ("d/y", "5"),
        ("z", "6"),
    ] {
        store
            .execute(put(key, object(etag, 1), None))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut marker: Option<(String, Option<String>)> = None;
    loop {
        let page = store
            .list_versions(
                "b",
                "",
                Some("/"),
                marker.as_ref().map(|m| m.0.as_str()),
                marker.as_ref().and_then(|m| m.1.as_deref()),
                2,
            )
            .await
            .unwrap();
        for e in &page.entries {
            seen.push(match e {
                VersionEntry::Version { key, summary, .. } => {
                    format!("{key}@{}", summary.version_name())
                }
                VersionEntry::CommonPrefix(p) => p.clone(),
            });
        }
        if !page.is_truncated {
            break;
        }
        marker = page.next_marker;
    }
    assert_eq!(seen, ["a@v-3", "a@v-2", "a@v-1", "d/", "z@v-6"]);
}

#[tokio::test]
async fn object_lock_refuses_deletes_and_weakening_until_it_passes() {
    let (_dir, store) = open();
    store
        .execute(Command::CreateBucket {
            name: "b".into(),
            record: BucketRecord { created_ms: 0 },
            object_lock: true,
            access: None,
        })
        .await
        .unwrap();
    assert_eq!(
        store.get_versioning("b").await.unwrap(),
        Some(VersioningState::Enabled)
    );
    assert!(matches!(
        store
            .execute(Command::SetVersioning {
                bucket: "b".into(),
                state: VersioningState::Suspended
            })
            .await,
        Err(MetaError::InvalidBucketState(_))
    ));
    let mut record = object("g", 1);
    record.details.lock.retention = Some(crate::record::Retention {
        mode: RetentionMode::Governance,
        until_ms: 1000,
    });
    store.execute(put("g", record, None)).await.unwrap();
    let mut record = object("c", 2);
    record.details.lock.retention = Some(crate::record::Retention {
        mode: RetentionMode::Compliance,
        until_ms: 1000,
    });
    store.execute(put("c", record, None)).await.unwrap();

    let delete_at = |key: &str, version: &str, now_ms, bypass_governance| Command::DeleteObject {
        bucket: "b".into(),
        key: key.into(),
        version_id: Some(version.into()),
        marker_version_id: "m".into(),
        bypass_governance,
        now_ms,
        if_modified_ms: None,
    };
    assert!(matches!(
        store.execute(delete_at("g", "v-g", 10, false)).await,
        Err(MetaError::Locked(_))
    ));
    assert!(matches!(
        store.execute(delete_at("c", "v-c", 10, true)).await,
        Err(MetaError::Locked(_))
    ));
    // A delete marker is always allowed: the locked version stays.
    store.execute(delete("c", None)).await.unwrap();
    let retain = |key: &str, mode, until_ms, bypass_governance| Command::SetRetention {
        bucket: "b".into(),
        key: key.into(),
        version_id: Some(format!("v-{key}")),
        retention: Some(crate::record::Retention { mode, until_ms }),
        bypass_governance,
        now_ms: 10,
    };
    assert!(matches!(
        store
            .execute(retain("c", RetentionMode::Compliance, 500, true))
            .await,
        Err(MetaError::Locked(_))
    ));
    assert!(matches!(
        store
            .execute(retain("c", RetentionMode::Governance, 2000, true))
            .await,
        Err(MetaError::Locked(_))
    ));
    store
        .execute(retain("c", RetentionMode::Compliance, 2000, false))
        .await
        .unwrap();
    assert!(matches!(
        store
            .execute(retain("g", RetentionMode::Governance, 500, false))
            .await,
        Err(MetaError::Locked(_))
    ));
    store
        .execute(retain("g", RetentionMode::Governance, 500, true))
        .await
        .unwrap();
    store
        .execute(Command::SetLegalHold {
            bucket: "b".into(),
            key: "g".into(),
            version_id: None,
            on: true,
        })
        .await
        .unwrap();
    assert!(matches!(
        store.execute(delete_at("g", "v-g", 600, true)).await,
        Err(MetaError::Locked(_))
    ));
    store
        .execute(Command::SetLegalHold {
            bucket: "b".into(),
            key: "g".into(),
            version_id: None,
            on: false,
        })
        .await
        .unwrap();
    store
        .execute(delete_at("g", "v-g", 600, false))
        .await
        .unwrap();
    assert!(matches!(
        store.execute(delete_at("c", "v-c", 1500, true)).await,
        Err(MetaError::Locked(_))
    ));
    store
        .execute(delete_at("c", "v-c", 2000, false))
        .await
        .unwrap();
}

fn catalog(command: CatalogCommand) -> Command {
    Command::Catalog(command)
}

fn table_record(location: &str, main: Option<i64>) -> TableRecord {
    TableRecord {
        metadata_location: location.into(),
        state: crate::TableState {
            uuid: "u".into(),
            refs: main.map(|id| ("main".to_owned(), id)).into_iter().collect(),
            ..Default::default()
        },
    }
}

fn commit(base: Option<&str>, main_before: Option<i64>, record: TableRecord) -> Command {
    catalog(CatalogCommand::CommitTable {
        bucket: "w".into(),
        namespace: vec!["db".into()],
        name: "t".into(),
        base_location: base.map(str::to_owned),
        // A create has no base, and no requirement of a table that is not there yet.
        requirements: base
            .map(|_| crate::TableRequirement::RefSnapshotId {
                name: "main".into(),
                snapshot_id: main_before,
            })
            .into_iter()
            .collect(),
        record,
    })
}

fn catalog_error(result: Result<Outcome, MetaError>) -> crate::CatalogError {
    match result {
        Err(MetaError::Catalog(e)) => e,
        other => panic!("expected a catalog refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn of_two_commits_on_one_table_state_exactly_one_wins() {
    use crate::CatalogError;
    let (_dir, store) = open();
    bucket(&store, "w").await;
    let create_ns = |namespace: Vec<&str>| {
        catalog(CatalogCommand::CreateNamespace {
            bucket: "w".into(),
            namespace: namespace.into_iter().map(str::to_owned).collect(),
            properties: Default::default(),
        })
    };
    assert!(matches!(
        catalog_error(store.execute(create_ns(vec!["db", "nested"])).await),
        CatalogError::NoSuchNamespace(_)
    ));
    store.execute(create_ns(vec!["db"])).await.unwrap();
    store
        .execute(create_ns(vec!["db", "nested"]))
        .await
        .unwrap();
    assert!(matches!(
        catalog_error(store.execute(create_ns(vec!["db"])).await),
        CatalogError::NamespaceExists(_)
    ));
    assert_eq!(
        store.catalog_namespaces("w", &[]).await.unwrap(),
        vec![vec!["db".to_owned()]]
    );
    assert_eq!(
        store
            .catalog_namespaces("w", &["db".to_owned()])
            .await
            .unwrap(),
        vec![vec!["db".to_owned(), "nested".to_owned()]]
    );

    store
        .execute(commit(None, None, table_record("m0", None)))
        .await
        .unwrap();
    assert!(matches!(
        catalog_error(
            store
                .execute(commit(None, None, table_record("m0b", None)))
                .await
        ),
        CatalogError::TableExists(_)
    ));
    // Two appends made on the same state: the first wins, the second's requirement fails.
    store
        .execute(commit(Some("m0"), None, table_record("m1", Some(1))))
        .await
        .unwrap();
    assert!(matches!(
        catalog_error(
            store
                .execute(commit(Some("m0"), None, table_record("m2", Some(2))))
                .await
        ),
        CatalogError::CommitFailed(_)
    ));
    // Requirements that still hold on a table that moved on: the caller must redo the commit.
    assert_eq!(
        catalog_error(
            store
                .execute(commit(Some("m0"), Some(1), table_record("m3", Some(3))))
                .await
        ),
        CatalogError::CommitBaseMoved
    );
    let ns = ["db".to_owned()];
    let current = store.catalog_table("w", &ns, "t").await.unwrap().unwrap();
    assert_eq!(current.metadata_location, "m1");

    // A namespace with a table or a namespace in it stays.
    let drop_ns = |namespace: Vec<&str>| {
        catalog(CatalogCommand::DropNamespace {
            bucket: "w".into(),
            namespace: namespace.into_iter().map(str::to_owned).collect(),
        })
    };
    assert!(matches!(
        catalog_error(store.execute(drop_ns(vec!["db"])).await),
        CatalogError::NamespaceNotEmpty(_)
    ));
    assert!(matches!(
        store
            .execute(Command::DeleteBucket { name: "w".into() })
            .await,
        Err(MetaError::InvalidBucketState(_))
    ));
    store
        .execute(catalog(CatalogCommand::RenameTable {
            bucket: "w".into(),
            from: (ns.to_vec(), "t".into()),
            to: (vec!["db".into(), "nested".into()], "u".into()),
        }))
        .await
        .unwrap();
    assert!(store.catalog_table("w", &ns, "t").await.unwrap().is_none());
    assert_eq!(
        store
            .catalog_tables("w", &["db".to_owned(), "nested".to_owned()])
            .await
            .unwrap()
            .len(),
        1
    );
    store
        .execute(catalog(CatalogCommand::DropTable {
            bucket: "w".into(),
            namespace: vec!["db".into(), "nested".into()],
            name: "u".into(),
        }))
        .await
        .unwrap();
    store.execute(drop_ns(vec!["db", "nested"])).await.unwrap();
    store.execute(drop_ns(vec!["db"])).await.unwrap();
    store
        .execute(Command::DeleteBucket { name: "w".into() })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_same_put_applied_twice_frees_nothing_it_references() {
    let (_dir, store) = open();
    bucket(&store, "b").await;
    store
        .execute(put("k", object("one", 7), None))
        .await
        .unwrap();
    let again = store
        .execute(put("k", object("one", 7), None))
        .await
        .unwrap();
    assert!(
        again.garbage.is_empty(),
        "a record replacing itself keeps its stripes: {:?}",
        again.garbage
    );
    let next = store
        .execute(put("k", object("two", 8), None))
        .await
        .unwrap();
    assert_eq!(
        next.garbage.len(),
        1,
        "a different record frees the old stripes"
    );
}

async fn owed(store: &RedbStore) -> Vec<([u8; 16], PayloadOwner)> {
    store
        .missed_shards(None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, m)| (id, m.owner))
        .collect()
}

#[tokio::test]
async fn stripes_written_short_of_shards_are_owed_until_healed_or_freed() {
    let (_dir, store) = open();
    bucket(&store, "b").await;
    let missed = |command: Command, stripes: Vec<[u8; 16]>| Command::WithMissedShards {
        command: Box::new(command),
        stripes,
    };
    // A put of two stripes, one written short: only that one is owed, by this version.
    let mut record = object("e1", 1);
    record.details.payload = Payload::Chunks(
        [1u8, 2]
            .map(|id| ChunkRef {
                id: [id; 16],
                len: 1,
                crc32c: 0,
            })
            .to_vec(),
    );
    let out = store
        .execute(missed(put("k", record, None), vec![[2; 16]]))
        .await
        .unwrap();
    assert_eq!(out.version_id.as_deref(), Some(crate::NULL_VERSION));
    let object_owner = |key: &str| PayloadOwner::Object {
        bucket: "b".into(),
        key: key.into(),
        version_id: None,
    };
    assert_eq!(owed(&store).await, vec![([2; 16], object_owner("k"))]);
    assert!(store.get_object("b", "k").await.unwrap().is_some());

    // A refused command notes nothing.
    let refused = missed(
        put("k", object("e2", 3), Some(Precondition::IfNoneMatchAny)),
        vec![[3; 16]],
    );
    assert!(store.execute(refused).await.is_err());
    assert_eq!(owed(&store).await.len(), 1);

    // Overwritten: the stripe is garbage, owed nothing.
    store
        .execute(put("k", object("e3", 4), None))
        .await
        .unwrap();
    assert!(owed(&store).await.is_empty());

    // A part's debt follows it into the object it becomes.
    create_upload(&store, "u1").await;
    let part = PartRecord {
        size: 1,
        etag: "p1".into(),
        last_modified_ms: 0,
        checksum: None,
        payload: Payload::Chunks(vec![ChunkRef {
            id: [5; 16],
            len: 1,
            crc32c: 0,
        }]),
    };
    let put_part = Command::PutPart {
        bucket: "b".into(),
        key: "k".into(),
        upload_id: "u1".into(),
        part_number: 1,
        record: part,
    };
    store
        .execute(missed(put_part, vec![[5; 16]]))
        .await
        .unwrap();
    assert_eq!(
        owed(&store).await,
        vec![(
            [5; 16],
            PayloadOwner::Part {
                upload_id: "u1".into(),
                part_number: 1
            }
        )]
    );
    let complete = |key: &str| {
        Command::CompleteUpload(crate::CompleteUpload {
            bucket: "b".into(),
            key: key.into(),
            upload_id: "u1".into(),
            parts: vec![CompletePart {
                part_number: 1,
                etag: "p1".into(),
                checksum: None,
            }],
            min_part_size: 0,
            last_modified_ms: 1,
            version_id: "v-mp".into(),
            etag: "mp-1".into(),
            precondition: None,
            checksum: None,
        })
    };
    store.execute(complete("mp")).await.unwrap_err();
    // (The upload is for key "k": completing it under another key is refused, nothing moves.)
    assert_eq!(owed(&store).await.len(), 1);
    store.execute(complete("k")).await.unwrap();
    assert_eq!(owed(&store).await, vec![([5; 16], object_owner("k"))]);

    // Healed: forgotten. Pages resume after the cursor.
    store
        .execute(missed(put("other", object("e5", 6), None), vec![[6; 16]]))
        .await
        .unwrap();
    let after = store.missed_shards(Some([5; 16]), 10).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].0, [6; 16]);
    assert_eq!(store.missed_shards(None, 1).await.unwrap().len(), 1);
    store
        .execute(Command::ForgetMissedShards {
            stripes: vec![[5; 16], [6; 16]],
        })
        .await
        .unwrap();
    assert!(owed(&store).await.is_empty());
}

/// 64,000 overwrites of 256 keys of 4 KiB, by 32 writers beside readers: the file holds the
/// live records and what a few commits in flight free, not every version ever written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrites_reuse_the_space_they_free() {
    use std::os::unix::fs::MetadataExt;
    let (dir, store) = open();
    let store = Arc::new(store);
    bucket(&store, "b").await;
    let mut tasks = Vec::new();
    for t in 0..32u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..2000u32 {
                let key = format!("k{}", (t * 8 + i) % 256);
                let mut record = object("e", 1);
                record.details.payload = Payload::Inline(vec![7u8; 4096]);
                store.execute(put(&key, record, None)).await.unwrap();
                assert!(store.get_object("b", &key).await.unwrap().is_some());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let allocated = std::fs::metadata(dir.path().join("meta.redb"))
        .unwrap()
        .blocks()
        * 512;
    // 256 live records are 1 MiB; 64,000 versions would be 250 MiB.
    assert!(allocated < 16 << 20, "{allocated} bytes allocated");
}
