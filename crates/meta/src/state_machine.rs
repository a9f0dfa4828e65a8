//! The metadata state machine: how each `Command` changes the tables, inside one write
//! transaction. Deterministic: the same commands applied to the same state give the same
//! state and outcomes, which is what replicating it (Raft) needs.

use redb::{ReadableTable, ReadableTableMetadata, Table};

use crate::MetaError;
use crate::command::{Command, CompleteUpload, Outcome, Precondition};
use crate::keys::{self};
use crate::record::{
    GarbageRecord, MissedShards, NULL_VERSION, ObjectDetails, ObjectLockConfig, ObjectRecord,
    ObjectSummary, PartRecord, Payload, Record, RetentionMode, StripeRef, UploadRecord,
    VersioningState, decode, decode_summary, encode,
};
use crate::store::PayloadOwner;
use crate::tables::*;

pub(crate) struct Tables<'txn> {
    buckets: Table<'txn, &'static str, &'static [u8]>,
    objects: Table<'txn, &'static [u8], &'static [u8]>,
    versions: Table<'txn, &'static [u8], &'static [u8]>,
    uploads: Table<'txn, &'static [u8], &'static [u8]>,
    parts: Table<'txn, &'static [u8], &'static [u8]>,
    settings: Table<'txn, &'static [u8], &'static [u8]>,
    identities: Table<'txn, &'static str, &'static [u8]>,
    garbage: Table<'txn, u64, &'static [u8]>,
    system: Table<'txn, &'static str, &'static [u8]>,
    catalog: Table<'txn, &'static [u8], &'static [u8]>,
    missed: Table<'txn, &'static [u8], &'static [u8]>,
    /// Whether a command changed a table the read cache holds (see `read_cache`).
    pub(crate) changed_cached: bool,
}

/// Moves shards of stripe `id` in `payload` if every one is still where the move starts.
fn move_shards(payload: &mut Payload, id: &[u8; 16], moves: &[(usize, u16, u16)]) -> bool {
    let Payload::Stripes(stripes) = payload else {
        return false;
    };
    let Some(stripe) = stripes.iter_mut().find(|s| &s.id == id) else {
        return false;
    };
    if !moves
        .iter()
        .all(|(i, from, _)| stripe.shards.get(*i).is_some_and(|s| s.drive == *from))
    {
        return false;
    }
    for (i, _, to) in moves {
        if let Some(shard) = stripe.shards.get_mut(*i) {
            shard.drive = *to;
        }
    }
    true
}

/// Where a version of a key is stored.
pub(crate) enum Slot {
    Current,
    Noncurrent(Vec<u8>),
}

/// A noncurrent version as stored: (raw key, sequence number, record bytes).
type StoredVersion<'a> = (Vec<u8>, u64, redb::AccessGuard<'a, &'static [u8]>);

/// The noncurrent versions of a key, newest first.
pub(crate) fn noncurrent_versions<'a>(
    versions: &'a impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &str,
    key: &str,
) -> Result<impl Iterator<Item = Result<StoredVersion<'a>, MetaError>> + 'a, MetaError> {
    let (start, end) = keys::versions_range(bucket, key);
    let prefix_len = start.len();
    Ok(versions
        .range(start.as_slice()..end.as_slice())?
        .filter_map(move |entry| match entry {
            Err(e) => Some(Err(MetaError::from(e))),
            Ok((k, v)) => keys::version_seq_of(k.value(), prefix_len)
                .map(|seq| Ok((k.value().to_vec(), seq, v))),
        }))
}

/// Finds a version by its S3 name (`null` for the null version).
pub(crate) fn find_version(
    objects: &impl ReadableTable<&'static [u8], &'static [u8]>,
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &str,
    key: &str,
    wanted: &str,
) -> Result<Option<(Slot, ObjectRecord)>, MetaError> {
    let k = keys::object_key(bucket, key);
    match objects.get(k.as_slice())? {
        None => return Ok(None),
        Some(current) => {
            if decode_summary(current.value())?.version_name() == wanted {
                return Ok(Some((Slot::Current, decode(current.value())?)));
            }
        }
    }
    for entry in noncurrent_versions(versions, bucket, key)? {
        let (raw, _, value) = entry?;
        if decode_summary(value.value())?.version_name() == wanted {
            return Ok(Some((Slot::Noncurrent(raw), decode(value.value())?)));
        }
    }
    Ok(None)
}

fn locked(what: &str) -> MetaError {
    MetaError::Locked(format!("{what} is protected by object lock"))
}

fn check_precondition(
    existing: Option<&ObjectRecord>,
    precondition: Option<&Precondition>,
) -> Result<(), MetaError> {
    match (precondition, existing) {
        (None, _) => Ok(()),
        (Some(Precondition::IfNoneMatchAny), None) => Ok(()),
        (Some(Precondition::IfNoneMatchAny), Some(_)) => Err(MetaError::PreconditionFailed),
        (Some(Precondition::IfNoneMatch(_)), None) => Ok(()),
        (Some(Precondition::IfNoneMatch(etag)), Some(record)) => {
            if *etag == record.summary.etag {
                Err(MetaError::PreconditionFailed)
            } else {
                Ok(())
            }
        }
        (Some(Precondition::IfMatch(_)), None) => Err(MetaError::NoSuchKey),
        (Some(Precondition::IfMatch(etag)), Some(record)) => {
            if etag == "*" || *etag == record.summary.etag {
                Ok(())
            } else {
                Err(MetaError::PreconditionFailed)
            }
        }
    }
}

impl<'txn> Tables<'txn> {
    pub(crate) fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, MetaError> {
        Ok(Self {
            buckets: txn.open_table(BUCKETS)?,
            objects: txn.open_table(OBJECTS)?,
            versions: txn.open_table(VERSIONS)?,
            uploads: txn.open_table(UPLOADS)?,
            parts: txn.open_table(PARTS)?,
            settings: txn.open_table(BUCKET_SETTINGS)?,
            identities: txn.open_table(IDENTITIES)?,
            garbage: txn.open_table(GARBAGE)?,
            system: txn.open_table(SYSTEM)?,
            catalog: crate::catalog::open(txn)?,
            missed: txn.open_table(MISSED_SHARDS)?,
            changed_cached: false,
        })
    }

    /// Applies `command` stamped with the time `at_ms` (by the one writer on a single node;
    /// by the Raft leader in a cluster: never a replica's own clock), and records the stripes
    /// it freed as garbage of that time, in the same transaction.
    pub(crate) fn apply_stamped(
        &mut self,
        at_ms: i64,
        command: &Command,
    ) -> Result<Outcome, MetaError> {
        let mut outcome = self.apply(command)?;
        // The same record applied twice (a command proposed again) replaces itself: what it
        // references is not garbage, or the collector would delete live data.
        if !outcome.garbage.is_empty() {
            let published = command.published_stripes();
            outcome
                .garbage
                .retain(|freed| !published.iter().any(|p| p.id == freed.id));
        }
        if !outcome.garbage.is_empty() {
            self.record_garbage(at_ms, &outcome.garbage)?;
        }
        self.track_missed_shards(at_ms, command, &outcome)?;
        Ok(outcome)
    }

    /// Keeps the missed-shards table in step with `command`: the stripes it publishes short
    /// of shards are noted with their owner, parts that become an object take the object as
    /// owner, and stripes that became garbage are owed nothing any more.
    fn track_missed_shards(
        &mut self,
        at_ms: i64,
        command: &Command,
        outcome: &Outcome,
    ) -> Result<(), MetaError> {
        let version_id = || outcome.version_id.clone().filter(|v| v != NULL_VERSION);
        if let Command::WithMissedShards { command, stripes } = command {
            let owner = match command.as_ref() {
                Command::PutObject { bucket, key, .. } => PayloadOwner::Object {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    version_id: version_id(),
                },
                Command::PutPart {
                    upload_id,
                    part_number,
                    ..
                } => PayloadOwner::Part {
                    upload_id: upload_id.clone(),
                    part_number: *part_number,
                },
                _ => return Ok(()),
            };
            let record = encode(&MissedShards {
                owner,
                noted_ms: at_ms,
            });
            for id in stripes {
                self.missed.insert(id.as_slice(), record.as_slice())?;
            }
            return Ok(());
        }
        // Nothing owed (the usual case): nothing to look up.
        if self.missed.is_empty()? {
            return Ok(());
        }
        for freed in &outcome.garbage {
            self.missed.remove(freed.id.as_slice())?;
        }
        if let (Command::CompleteUpload(c), Some(object)) = (command, &outcome.object) {
            let owner = PayloadOwner::Object {
                bucket: c.bucket.clone(),
                key: c.key.clone(),
                version_id: version_id(),
            };
            for stripe in object.details.payload.stripes() {
                let noted = self
                    .missed
                    .get(stripe.id.as_slice())?
                    .map(|g| decode::<MissedShards>(g.value()))
                    .transpose()?;
                if let Some(noted) = noted {
                    let record = MissedShards {
                        owner: owner.clone(),
                        ..noted
                    };
                    self.missed
                        .insert(stripe.id.as_slice(), encode(&record).as_slice())?;
                }
            }
        }
        Ok(())
    }

    fn record_garbage(&mut self, at_ms: i64, stripes: &[StripeRef]) -> Result<(), MetaError> {
        let next = match self.system.get(GARBAGE_NEXT_KEY)? {
            Some(v) => u64::from_be_bytes(
                v.value()
                    .try_into()
                    .map_err(|_| MetaError::Corrupt("garbage sequence".into()))?,
            ),
            None => 0,
        };
        let record = GarbageRecord {
            freed_ms: at_ms,
            stripes: stripes.to_vec(),
        };
        self.garbage.insert(next, encode(&record).as_slice())?;
        self.system
            .insert(GARBAGE_NEXT_KEY, (next + 1).to_be_bytes().as_slice())?;
        Ok(())
    }

    /// Stores (or with `None` removes) one setting of an existing bucket.
    fn set_setting<T: serde::Serialize>(
        &mut self,
        bucket: &str,
        name: &str,
        value: Option<&T>,
    ) -> Result<Outcome, MetaError> {
        self.require_bucket(bucket)?;
        self.changed_cached = true;
        let k = keys::object_key(bucket, name);
        match value {
            Some(value) => {
                self.settings
                    .insert(k.as_slice(), encode(value).as_slice())?;
            }
            None => {
                self.settings.remove(k.as_slice())?;
            }
        }
        Ok(Outcome::default())
    }

    fn apply(&mut self, command: &Command) -> Result<Outcome, MetaError> {
        match command {
            Command::WithMissedShards { command, .. } => self.apply(command),
            Command::ForgetMissedShards { stripes } => {
                for id in stripes {
                    self.missed.remove(id.as_slice())?;
                }
                Ok(Outcome::default())
            }
            Command::ForgetGarbage { ids } => {
                for id in ids {
                    self.garbage.remove(*id)?;
                }
                Ok(Outcome::default())
            }
            Command::SetClusterValue {
                key,
                value,
                if_absent,
            } => {
                let key = format!("{CLUSTER_VALUE_PREFIX}{key}");
                if *if_absent && self.system.get(key.as_str())?.is_some() {
                    return Ok(Outcome::default());
                }
                match value {
                    Some(value) => self.system.insert(key.as_str(), value.as_slice())?,
                    None => self.system.remove(key.as_str())?,
                };
                Ok(Outcome::default())
            }
            Command::CreateBucket {
                name,
                record,
                object_lock,
                access,
            } => {
                if self.buckets.get(name.as_str())?.is_some() {
                    return Err(MetaError::BucketAlreadyExists);
                }
                self.changed_cached = true;
                self.buckets
                    .insert(name.as_str(), encode(record).as_slice())?;
                if let Some(access) = access {
                    self.set_setting(name, ACCESS_SETTING, Some(access))?;
                }
                if *object_lock {
                    self.set_setting(name, VERSIONING_SETTING, Some(&VersioningState::Enabled))?;
                    self.set_setting(
                        name,
                        OBJECT_LOCK_SETTING,
                        Some(&ObjectLockConfig::default()),
                    )?;
                }
                Ok(Outcome::default())
            }
            Command::SetVersioning { bucket, state } => {
                if *state == VersioningState::Suspended
                    && self
                        .setting::<ObjectLockConfig>(bucket, OBJECT_LOCK_SETTING)?
                        .is_some()
                {
                    return Err(MetaError::InvalidBucketState(
                        "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.".into(),
                    ));
                }
                self.set_setting(bucket, VERSIONING_SETTING, Some(state))
            }
            Command::SetObjectLockConfig { bucket, config } => {
                if self.setting::<VersioningState>(bucket, VERSIONING_SETTING)?
                    != Some(VersioningState::Enabled)
                {
                    return Err(MetaError::InvalidBucketState(
                        "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration".into(),
                    ));
                }
                self.set_setting(bucket, OBJECT_LOCK_SETTING, Some(config))
            }
            Command::SetBucketPolicy { bucket, policy } => {
                self.set_setting(bucket, POLICY_SETTING, policy.as_ref())
            }
            Command::CreateIdentity { key, value } => {
                if self.identities.get(key.as_str())?.is_some() {
                    return Err(MetaError::PreconditionFailed);
                }
                self.changed_cached = true;
                self.identities.insert(key.as_str(), value.as_slice())?;
                Ok(Outcome::default())
            }
            Command::SetIdentity { key, value } => {
                self.changed_cached = true;
                let existed = match value {
                    Some(v) => self
                        .identities
                        .insert(key.as_str(), v.as_slice())?
                        .is_some(),
                    None => self.identities.remove(key.as_str())?.is_some(),
                };
                Ok(Outcome {
                    existed,
                    ..Default::default()
                })
            }
            Command::SetBucketEncryption { bucket, config } => {
                self.set_setting(bucket, ENCRYPTION_SETTING, config.as_ref())
            }
            Command::SetLifecycle { bucket, rules } => {
                self.set_setting(bucket, LIFECYCLE_SETTING, rules.as_ref())
            }
            Command::DeleteBucket { name } => self.delete_bucket(name),
            Command::SetBucketTags { bucket, tags } => {
                self.set_setting(bucket, TAGGING_SETTING, tags.as_ref())
            }
            Command::SetBucketCors { bucket, rules } => {
                self.set_setting(bucket, CORS_SETTING, rules.as_ref())
            }
            Command::SetBucketAccess { bucket, access } => {
                self.set_setting(bucket, ACCESS_SETTING, Some(access))
            }
            Command::SetBucketLogging { bucket, config } => {
                self.set_setting(bucket, LOGGING_SETTING, config.as_ref())
            }
            Command::Catalog(command) => {
                let buckets = &self.buckets;
                crate::catalog::apply(
                    &mut self.catalog,
                    |name| Ok(buckets.get(name)?.is_some()),
                    command,
                )?;
                Ok(Outcome::default())
            }
            Command::SetPublicAccessBlock { bucket, block } => {
                self.set_setting(bucket, PUBLIC_ACCESS_BLOCK_SETTING, block.as_ref())
            }
            Command::SetObjectAcl {
                bucket,
                key,
                version_id,
                acl,
            } => self.update_version(bucket, key, version_id.as_deref(), |record| {
                record.details.acl = Some(acl.clone());
                Ok(())
            }),
            Command::MoveShards {
                owner,
                stripe,
                moves,
            } => {
                let existed = match owner {
                    PayloadOwner::Object {
                        bucket,
                        key,
                        version_id,
                    } => {
                        let wanted = version_id.as_deref().unwrap_or(NULL_VERSION);
                        match find_version(&self.objects, &self.versions, bucket, key, wanted)? {
                            Some((slot, mut record)) => {
                                let moved = move_shards(&mut record.details.payload, stripe, moves);
                                if moved {
                                    self.store_version(bucket, key, &slot, &record)?;
                                }
                                moved
                            }
                            None => false,
                        }
                    }
                    PayloadOwner::Part {
                        upload_id,
                        part_number,
                    } => {
                        let k = keys::part_key(upload_id, *part_number);
                        let mut record = self
                            .parts
                            .get(k.as_slice())?
                            .map(|g| decode::<PartRecord>(g.value()))
                            .transpose()?;
                        let moved = record
                            .as_mut()
                            .is_some_and(|r| move_shards(&mut r.payload, stripe, moves));
                        if let (true, Some(record)) = (moved, record) {
                            self.parts
                                .insert(k.as_slice(), encode(&record).as_slice())?;
                        }
                        moved
                    }
                };
                Ok(Outcome {
                    existed,
                    ..Default::default()
                })
            }
            Command::SetObjectTags {
                bucket,
                key,
                version_id,
                tags,
            } => self.update_version(bucket, key, version_id.as_deref(), |record| {
                record.details.tags.clone_from(tags);
                Ok(())
            }),
            Command::SetRetention {
                bucket,
                key,
                version_id,
                retention,
                bypass_governance,
                now_ms,
            } => {
                self.require_object_lock(bucket)?;
                self.update_version(bucket, key, version_id.as_deref(), |record| {
                    if let Some(old) = record.details.lock.retention
                        && old.until_ms > *now_ms
                    {
                        let weakens = match retention {
                            None => true,
                            // A governance retention changed in any way but a later date
                            // (even into compliance) needs the bypass, as on AWS.
                            Some(new) => new.until_ms < old.until_ms || new.mode != old.mode,
                        };
                        if weakens && (old.mode == RetentionMode::Compliance || !*bypass_governance)
                        {
                            return Err(locked("the version's retention"));
                        }
                    }
                    record.details.lock.retention = *retention;
                    Ok(())
                })
            }
            Command::SetLegalHold {
                bucket,
                key,
                version_id,
                on,
            } => {
                self.require_object_lock(bucket)?;
                self.update_version(bucket, key, version_id.as_deref(), |record| {
                    record.details.lock.legal_hold = *on;
                    Ok(())
                })
            }
            Command::PutObject {
                bucket,
                key,
                record,
                precondition,
            } => {
                self.require_bucket(bucket)?;
                let existing = self.live_object(bucket, key)?;
                check_precondition(existing.as_ref(), precondition.as_ref())?;
                let mut record = record.clone();
                self.apply_lock_defaults(bucket, &mut record)?;
                let (garbage, version_id) = self.install(bucket, key, record)?;
                Ok(Outcome {
                    garbage,
                    existed: existing.is_some(),
                    version_id: Some(version_id),
                    ..Default::default()
                })
            }
            Command::DeleteObject {
                bucket,
                key,
                version_id,
                marker_version_id,
                bypass_governance,
                now_ms,
                if_modified_ms,
            } => self.delete_object(
                bucket,
                key,
                version_id.as_deref(),
                marker_version_id,
                (*bypass_governance, *now_ms),
                *if_modified_ms,
            ),
            Command::RemoveExpiredDeleteMarker { bucket, key } => {
                let k = keys::object_key(bucket, key);
                let is_marker = self.object(&k)?.is_some_and(|r| r.summary.delete_marker);
                if !is_marker || self.newest_noncurrent(bucket, key)?.is_some() {
                    return Ok(Outcome::default());
                }
                self.objects.remove(k.as_slice())?;
                Ok(Outcome {
                    existed: true,
                    delete_marker: true,
                    ..Default::default()
                })
            }
            Command::CreateUpload {
                bucket,
                key,
                upload_id,
                record,
            } => {
                self.require_bucket(bucket)?;
                let k = keys::upload_key(bucket, key, upload_id);
                self.uploads
                    .insert(k.as_slice(), encode(record).as_slice())?;
                Ok(Outcome::default())
            }
            Command::PutPart {
                bucket,
                key,
                upload_id,
                part_number,
                record,
            } => {
                self.require_upload(bucket, key, upload_id)?;
                let k = keys::part_key(upload_id, *part_number);
                let old = self
                    .parts
                    .insert(k.as_slice(), encode(record).as_slice())?
                    .map(|g| decode::<PartRecord>(g.value()))
                    .transpose()?;
                Ok(Outcome {
                    garbage: Outcome::garbage_of_part(old.as_ref()),
                    ..Default::default()
                })
            }
            Command::CompleteUpload(c) => self.complete_upload(c),
            Command::AbortUpload {
                bucket,
                key,
                upload_id,
            } => {
                self.require_upload(bucket, key, upload_id)?;
                let garbage = self
                    .remove_parts(upload_id)?
                    .into_iter()
                    .flat_map(|(_, p)| p.payload.stripes())
                    .collect();
                self.uploads
                    .remove(keys::upload_key(bucket, key, upload_id).as_slice())?;
                Ok(Outcome {
                    garbage,
                    ..Default::default()
                })
            }
        }
    }

    fn require_bucket(&self, bucket: &str) -> Result<(), MetaError> {
        match self.buckets.get(bucket)? {
            Some(_) => Ok(()),
            None => Err(MetaError::NoSuchBucket),
        }
    }

    fn require_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord, MetaError> {
        self.require_bucket(bucket)?;
        match self
            .uploads
            .get(keys::upload_key(bucket, key, upload_id).as_slice())?
        {
            Some(g) => decode(g.value()),
            None => Err(MetaError::NoSuchUpload),
        }
    }

    fn object(&self, k: &[u8]) -> Result<Option<ObjectRecord>, MetaError> {
        self.objects.get(k)?.map(|g| decode(g.value())).transpose()
    }

    /// The current version unless it is a delete marker: what conditional writes test.
    fn live_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, MetaError> {
        Ok(self
            .object(&keys::object_key(bucket, key))?
            .filter(|r| !r.summary.delete_marker))
    }

    fn setting<T: Record>(&self, bucket: &str, name: &str) -> Result<Option<T>, MetaError> {
        self.settings
            .get(keys::object_key(bucket, name).as_slice())?
            .map(|g| decode(g.value()))
            .transpose()
    }

    fn require_object_lock(&self, bucket: &str) -> Result<ObjectLockConfig, MetaError> {
        self.require_bucket(bucket)?;
        self.setting(bucket, OBJECT_LOCK_SETTING)?.ok_or_else(|| {
            MetaError::InvalidRequest("Bucket is missing Object Lock Configuration".into())
        })
    }

    /// Refuses lock settings in a bucket without object lock, and applies the bucket's
    /// default retention to a version that names none.
    fn apply_lock_defaults(
        &self,
        bucket: &str,
        record: &mut ObjectRecord,
    ) -> Result<(), MetaError> {
        let config: Option<ObjectLockConfig> = self.setting(bucket, OBJECT_LOCK_SETTING)?;
        let lock = &mut record.details.lock;
        match config {
            None if lock.retention.is_some() || lock.legal_hold => Err(MetaError::InvalidRequest(
                "Bucket is missing Object Lock Configuration".into(),
            )),
            None => Ok(()),
            Some(config) => {
                if lock.retention.is_none()
                    && let Some(default) = config.default_retention
                {
                    lock.retention = Some(crate::record::Retention {
                        mode: default.mode,
                        until_ms: record.summary.last_modified_ms + default.period_ms(),
                    });
                }
                Ok(())
            }
        }
    }

    /// The newest noncurrent version of a key: (raw key, sequence number).
    fn newest_noncurrent(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>, MetaError> {
        match noncurrent_versions(&self.versions, bucket, key)?.next() {
            Some(entry) => entry.map(|(raw, seq, _)| Some((raw, seq))),
            None => Ok(None),
        }
    }

    /// Keeps `record` as the newest noncurrent version of its key.
    fn archive(&mut self, bucket: &str, key: &str, record: &ObjectRecord) -> Result<(), MetaError> {
        let seq = self
            .newest_noncurrent(bucket, key)?
            .map_or(0, |(_, seq)| seq + 1);
        self.versions.insert(
            keys::version_key(bucket, key, seq).as_slice(),
            encode(record).as_slice(),
        )?;
        Ok(())
    }

    fn store_version(
        &mut self,
        bucket: &str,
        key: &str,
        slot: &Slot,
        record: &ObjectRecord,
    ) -> Result<(), MetaError> {
        let bytes = encode(record);
        match slot {
            Slot::Current => self
                .objects
                .insert(keys::object_key(bucket, key).as_slice(), bytes.as_slice())?,
            Slot::Noncurrent(raw) => self.versions.insert(raw.as_slice(), bytes.as_slice())?,
        };
        Ok(())
    }

    /// Changes one version in place (`None`: the current one); delete markers have nothing
    /// to change.
    fn update_version(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: impl FnOnce(&mut ObjectRecord) -> Result<(), MetaError>,
    ) -> Result<Outcome, MetaError> {
        self.require_bucket(bucket)?;
        let found = match version_id {
            Some(wanted) => find_version(&self.objects, &self.versions, bucket, key, wanted)?
                .ok_or(MetaError::NoSuchVersion)?,
            None => (
                Slot::Current,
                self.live_object(bucket, key)?.ok_or(MetaError::NoSuchKey)?,
            ),
        };
        let (slot, mut record) = found;
        if record.summary.delete_marker {
            return Err(MetaError::DeleteMarker);
        }
        change(&mut record)?;
        self.store_version(bucket, key, &slot, &record)?;
        Ok(Outcome {
            version_id: Some(record.summary.version_name().to_owned()),
            ..Default::default()
        })
    }

    /// Makes `record` the current version of its key. With versioning enabled the old current
    /// version is kept as noncurrent; otherwise the record becomes the null version and the
    /// old null version (current or not) is dropped. Returns the garbage and the version id.
    fn install(
        &mut self,
        bucket: &str,
        key: &str,
        mut record: ObjectRecord,
    ) -> Result<(Vec<StripeRef>, String), MetaError> {
        let now_ms = record.summary.last_modified_ms;
        let enabled = self.setting::<VersioningState>(bucket, VERSIONING_SETTING)?
            == Some(VersioningState::Enabled);
        let k = keys::object_key(bucket, key);
        let mut garbage = Vec::new();
        // Every check before the first change: a refused command must change nothing.
        let replaced_null = if enabled {
            None
        } else {
            record.summary.version_id = None;
            let found = find_version(&self.objects, &self.versions, bucket, key, NULL_VERSION)?;
            if found
                .as_ref()
                .is_some_and(|(_, old)| old.details.lock.protects(now_ms, false))
            {
                return Err(locked("the null version"));
            }
            found
        };
        let current = self.object(&k)?;
        if let Some(current) = current
            && (enabled || current.summary.version_id.is_some())
        {
            self.archive(bucket, key, &current)?;
        }
        if let Some((slot, old)) = replaced_null {
            if let Slot::Noncurrent(raw) = slot {
                self.versions.remove(raw.as_slice())?;
            }
            garbage.extend(old.details.payload.stripes());
        }
        let version = record.summary.version_name().to_owned();
        self.objects
            .insert(k.as_slice(), encode(&record).as_slice())?;
        Ok((garbage, version))
    }

    fn delete_object(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        marker_version_id: &str,
        (bypass_governance, now_ms): (bool, i64),
        if_modified_ms: Option<i64>,
    ) -> Result<Outcome, MetaError> {
        self.require_bucket(bucket)?;
        let k = keys::object_key(bucket, key);
        let Some(wanted) = version_id else {
            let current = self.object(&k)?;
            if if_modified_ms.is_some()
                && current.as_ref().map(|c| c.summary.last_modified_ms) != if_modified_ms
            {
                return Ok(Outcome::default());
            }
            if self
                .setting::<VersioningState>(bucket, VERSIONING_SETTING)?
                .is_none()
            {
                let Some(current) = current else {
                    return Ok(Outcome::default());
                };
                if current.details.lock.protects(now_ms, bypass_governance) {
                    return Err(locked("the object"));
                }
                self.objects.remove(k.as_slice())?;
                return Ok(Outcome {
                    existed: true,
                    garbage: current.details.payload.stripes(),
                    ..Default::default()
                });
            }
            let marker = ObjectRecord {
                summary: ObjectSummary {
                    size: 0,
                    etag: String::new(),
                    last_modified_ms: now_ms,
                    version_id: Some(marker_version_id.to_owned()),
                    delete_marker: true,
                },
                details: ObjectDetails {
                    headers: Default::default(),
                    user_metadata: Vec::new(),
                    checksums: Vec::new(),
                    part_sizes: Vec::new(),
                    payload: Payload::Inline(Vec::new()),
                    tags: Vec::new(),
                    lock: Default::default(),
                    encryption: None,
                    acl: None,
                    part_checksums: Vec::new(),
                },
            };
            let (garbage, version_id) = self.install(bucket, key, marker)?;
            return Ok(Outcome {
                garbage,
                existed: current.is_some(),
                version_id: Some(version_id),
                delete_marker: true,
                object: None,
            });
        };
        let Some((slot, record)) =
            find_version(&self.objects, &self.versions, bucket, key, wanted)?
        else {
            return Ok(Outcome {
                version_id: Some(wanted.to_owned()),
                ..Default::default()
            });
        };
        if if_modified_ms.is_some_and(|t| t != record.summary.last_modified_ms) {
            return Ok(Outcome::default());
        }
        if record.details.lock.protects(now_ms, bypass_governance) {
            return Err(locked("the version"));
        }
        match slot {
            Slot::Noncurrent(raw) => {
                self.versions.remove(raw.as_slice())?;
            }
            Slot::Current => {
                self.objects.remove(k.as_slice())?;
                // The next newest version, even a delete marker, becomes the current one.
                if let Some((raw, _)) = self.newest_noncurrent(bucket, key)? {
                    let promoted = self
                        .versions
                        .remove(raw.as_slice())?
                        .map(|g| g.value().to_vec());
                    if let Some(bytes) = promoted {
                        self.objects.insert(k.as_slice(), bytes.as_slice())?;
                    }
                }
            }
        }
        Ok(Outcome {
            existed: true,
            garbage: record.details.payload.stripes(),
            version_id: Some(wanted.to_owned()),
            delete_marker: record.summary.delete_marker,
            object: None,
        })
    }

    fn remove_parts(&mut self, upload_id: &str) -> Result<Vec<(u32, PartRecord)>, MetaError> {
        let (start, end) = keys::parts_range(upload_id);
        let mut removed = Vec::new();
        for entry in self
            .parts
            .extract_from_if(start.as_slice()..end.as_slice(), |_, _| true)?
        {
            let (k, v) = entry?;
            let number = keys::part_number_of(k.value())
                .ok_or_else(|| MetaError::Corrupt("part key".into()))?;
            removed.push((number, decode::<PartRecord>(v.value())?));
        }
        Ok(removed)
    }

    fn delete_bucket(&mut self, name: &str) -> Result<Outcome, MetaError> {
        self.require_bucket(name)?;
        let (start, end) = keys::bucket_range(name);
        if self
            .objects
            .range(start.as_slice()..end.as_slice())?
            .next()
            .is_some()
            || self
                .versions
                .range(start.as_slice()..end.as_slice())?
                .next()
                .is_some()
        {
            return Err(MetaError::BucketNotEmpty);
        }
        if crate::catalog::has_entries(&self.catalog, name)? {
            return Err(MetaError::InvalidBucketState(
                "The bucket's Iceberg catalog still has namespaces: drop them first.".into(),
            ));
        }
        let mut upload_ids = Vec::new();
        for entry in self
            .uploads
            .extract_from_if(start.as_slice()..end.as_slice(), |_, _| true)?
        {
            let (k, _) = entry?;
            if let Some((_, id)) = keys::split_upload_key(name, k.value()) {
                upload_ids.push(id);
            }
        }
        let mut garbage = Vec::new();
        for id in upload_ids {
            garbage.extend(
                self.remove_parts(&id)?
                    .into_iter()
                    .flat_map(|(_, p)| p.payload.stripes()),
            );
        }
        let (settings_start, settings_end) = keys::bucket_range(name);
        self.changed_cached = true;
        self.settings.retain_in(
            settings_start.as_slice()..settings_end.as_slice(),
            |_, _| false,
        )?;
        self.buckets.remove(name)?;
        Ok(Outcome {
            garbage,
            ..Default::default()
        })
    }

    fn complete_upload(&mut self, c: &CompleteUpload) -> Result<Outcome, MetaError> {
        let CompleteUpload {
            bucket,
            key,
            upload_id,
            parts: listed,
            min_part_size,
            last_modified_ms,
            etag,
            precondition,
            version_id,
            checksum,
        } = c;
        let (min_part_size, last_modified_ms) = (*min_part_size, *last_modified_ms);
        let precondition = precondition.as_ref();
        let upload = self.require_upload(bucket, key, upload_id)?;
        if listed
            .windows(2)
            .any(|w| w[0].part_number >= w[1].part_number)
        {
            return Err(MetaError::InvalidPartOrder);
        }
        let mut chosen = Vec::with_capacity(listed.len());
        for part in listed {
            let stored = self
                .parts
                .get(keys::part_key(upload_id, part.part_number).as_slice())?
                .map(|g| decode::<PartRecord>(g.value()))
                .transpose()?;
            let checksum_holds = |record: &PartRecord| match &part.checksum {
                None => true,
                Some(value) => record.checksum.as_ref().is_some_and(|c| &c.value == value),
            };
            match stored {
                Some(record) if record.etag == part.etag && checksum_holds(&record) => {
                    chosen.push((part.part_number, record));
                }
                _ => return Err(MetaError::InvalidPart(part.part_number)),
            }
        }
        if let Some((_, init)) = chosen.split_last() {
            for (number, record) in init {
                if record.size < min_part_size {
                    return Err(MetaError::EntityTooSmall {
                        part: *number,
                        size: record.size,
                    });
                }
            }
        }
        let existing = self.live_object(bucket, key)?;
        check_precondition(existing.as_ref(), precondition)?;

        let mut record = ObjectRecord {
            summary: ObjectSummary {
                size: chosen.iter().map(|(_, p)| p.size).sum(),
                etag: etag.to_owned(),
                last_modified_ms,
                version_id: Some(version_id.to_owned()),
                delete_marker: false,
            },
            details: ObjectDetails {
                headers: upload.headers,
                user_metadata: upload.user_metadata,
                checksums: checksum.iter().cloned().collect(),
                part_sizes: chosen.iter().map(|(_, p)| p.size).collect(),
                payload: Payload::Stripes(
                    chosen
                        .iter()
                        .flat_map(|(_, p)| p.payload.stripes())
                        .collect(),
                ),
                tags: upload.tags,
                lock: upload.lock,
                encryption: upload.encryption,
                acl: upload.acl,
                part_checksums: if upload.checksum_algorithm.is_some() {
                    chosen
                        .iter()
                        .filter_map(|(_, p)| p.checksum.as_ref().map(|c| c.value.clone()))
                        .collect()
                } else {
                    Vec::new()
                },
            },
        };
        self.apply_lock_defaults(bucket, &mut record)?;

        let (mut garbage, version) = self.install(bucket, key, record.clone())?;
        let listed_numbers: Vec<u32> = chosen.iter().map(|(n, _)| *n).collect();
        for (number, part) in self.remove_parts(upload_id)? {
            if listed_numbers.binary_search(&number).is_err() {
                garbage.extend(part.payload.stripes());
            }
        }
        self.uploads
            .remove(keys::upload_key(bucket, key, upload_id).as_slice())?;
        record.summary.version_id = (version != NULL_VERSION).then(|| version.clone());
        Ok(Outcome {
            garbage,
            object: Some(record),
            existed: existing.is_some(),
            version_id: Some(version),
            delete_marker: false,
        })
    }
}
