//! The Iceberg catalog's state: namespaces and tables of each bucket (one warehouse per bucket),
//! and the commands that change them. A table's state is the location of its current metadata
//! file and the few facts of that file a commit's requirements name; the commit that swaps the
//! location checks the requirements in the same transaction, so of two commits made against
//! one state exactly one wins, on one node or across a cluster.
//!
//! Keys in [`CATALOG`]: `bucket 0x00 'N' 0x00 namespace` for a namespace and
//! `bucket 0x00 'T' 0x00 namespace 0x00 table` for a table, a namespace's levels joined by
//! 0x1f (control characters are refused in names, so neither separator can occur in one).

use std::collections::BTreeMap;

use redb::{ReadableTable, Table};
use serde::{Deserialize, Serialize};

use crate::MetaError;
use crate::record::{Record, decode, encode};
use crate::tables::CATALOG;

/// A namespace: its levels, outermost first.
pub type Namespace = Vec<String>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRecord {
    /// The table's current metadata file (`s3://bucket/…/metadata/NNNNN-uuid.metadata.json`).
    pub metadata_location: String,
    pub state: TableState,
}

/// The facts of a table's current metadata that commit requirements assert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    pub uuid: String,
    pub current_schema_id: i64,
    pub last_column_id: i64,
    pub last_partition_id: i64,
    pub default_spec_id: i64,
    pub default_sort_order_id: i64,
    /// Branches and tags: name → the snapshot it points at.
    pub refs: BTreeMap<String, i64>,
}

/// What a commit requires of the table it changes (the Iceberg REST spec's requirements).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableRequirement {
    /// The table must not exist yet.
    Create,
    TableUuid(String),
    /// The ref must point at this snapshot; `None`: the ref must not exist.
    RefSnapshotId {
        name: String,
        snapshot_id: Option<i64>,
    },
    LastAssignedFieldId(i64),
    CurrentSchemaId(i64),
    LastAssignedPartitionId(i64),
    DefaultSpecId(i64),
    DefaultSortOrderId(i64),
}

impl TableRequirement {
    /// Whether the table as it is (`None`: there is none) meets this requirement; if not, why.
    pub fn check(&self, current: Option<&TableState>) -> Result<(), String> {
        let Some(state) = current else {
            return match self {
                TableRequirement::Create => Ok(()),
                _ => Err("Requirement failed: the table does not exist".into()),
            };
        };
        let mismatch = |what: &str, expected: String, found: String| {
            Err(format!(
                "Requirement failed: {what} changed: expected {expected} != {found}"
            ))
        };
        match self {
            TableRequirement::Create => Err("Requirement failed: the table already exists".into()),
            TableRequirement::TableUuid(uuid) if *uuid != state.uuid => {
                mismatch("UUID", uuid.clone(), state.uuid.clone())
            }
            TableRequirement::RefSnapshotId { name, snapshot_id } => {
                match (snapshot_id, state.refs.get(name)) {
                    (None, None) => Ok(()),
                    (None, Some(_)) => Err(format!(
                        "Requirement failed: branch or tag {name} was created concurrently"
                    )),
                    (Some(_), None) => Err(format!(
                        "Requirement failed: branch or tag {name} is missing"
                    )),
                    (Some(want), Some(have)) if want != have => mismatch(
                        &format!("{name}'s snapshot id"),
                        want.to_string(),
                        have.to_string(),
                    ),
                    _ => Ok(()),
                }
            }
            TableRequirement::LastAssignedFieldId(id) if *id != state.last_column_id => mismatch(
                "last assigned field id",
                id.to_string(),
                state.last_column_id.to_string(),
            ),
            TableRequirement::CurrentSchemaId(id) if *id != state.current_schema_id => mismatch(
                "current schema id",
                id.to_string(),
                state.current_schema_id.to_string(),
            ),
            TableRequirement::LastAssignedPartitionId(id) if *id != state.last_partition_id => {
                mismatch(
                    "last assigned partition id",
                    id.to_string(),
                    state.last_partition_id.to_string(),
                )
            }
            TableRequirement::DefaultSpecId(id) if *id != state.default_spec_id => mismatch(
                "default partition spec id",
                id.to_string(),
                state.default_spec_id.to_string(),
            ),
            TableRequirement::DefaultSortOrderId(id) if *id != state.default_sort_order_id => {
                mismatch(
                    "default sort order id",
                    id.to_string(),
                    state.default_sort_order_id.to_string(),
                )
            }
            _ => Ok(()),
        }
    }
}

/// A change to a bucket's catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CatalogCommand {
    CreateNamespace {
        bucket: String,
        namespace: Namespace,
        properties: BTreeMap<String, String>,
    },
    UpdateNamespace {
        bucket: String,
        namespace: Namespace,
        removals: Vec<String>,
        updates: BTreeMap<String, String>,
    },
    /// Refused while the namespace holds tables or namespaces.
    DropNamespace {
        bucket: String,
        namespace: Namespace,
    },
    /// Without `base_location`, creates the table (its namespace must exist, the name must be
    /// free). With it, swaps the table's metadata file if the requirements hold and the table
    /// is still at `base_location` (the file the new one was made from): a table that moved on
    /// while its requirements still hold is `CommitBaseMoved`, for the caller to redo the
    /// commit on the new state.
    CommitTable {
        bucket: String,
        namespace: Namespace,
        name: String,
        base_location: Option<String>,
        requirements: Vec<TableRequirement>,
        record: TableRecord,
    },
    DropTable {
        bucket: String,
        namespace: Namespace,
        name: String,
    },
    RenameTable {
        bucket: String,
        from: (Namespace, String),
        to: (Namespace, String),
    },
}

/// Why a catalog command or read was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CatalogError {
    #[error("Namespace does not exist: {0}")]
    NoSuchNamespace(String),
    #[error("Table does not exist: {0}")]
    NoSuchTable(String),
    #[error("Namespace already exists: {0}")]
    NamespaceExists(String),
    #[error("Table already exists: {0}")]
    TableExists(String),
    #[error("Namespace is not empty: {0}")]
    NamespaceNotEmpty(String),
    #[error("{0}")]
    CommitFailed(String),
    /// The table changed since the commit's base; its requirements still hold.
    #[error("the table changed while the commit was made")]
    CommitBaseMoved,
    #[error("{0}")]
    InvalidName(String),
}

impl From<CatalogError> for MetaError {
    fn from(e: CatalogError) -> Self {
        MetaError::Catalog(e)
    }
}

impl Record for NamespaceRecord {}
impl Record for TableRecord {}

const NAMESPACE_TAG: u8 = b'N';
const TABLE_TAG: u8 = b'T';
const LEVEL_SEPARATOR: u8 = 0x1f;

/// A namespace as people write it: levels joined by dots.
pub fn namespace_name(namespace: &[String]) -> String {
    namespace.join(".")
}

/// A namespace level or table name: not empty, no control characters, at most 255 bytes.
pub fn check_name(name: &str, what: &str) -> Result<(), CatalogError> {
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(CatalogError::InvalidName(format!(
            "Invalid {what} name {name:?}: 1 to 255 bytes, no control characters"
        )));
    }
    Ok(())
}

fn check_namespace(namespace: &[String]) -> Result<(), CatalogError> {
    if namespace.is_empty() {
        return Err(CatalogError::InvalidName(
            "A namespace has at least one level".into(),
        ));
    }
    namespace
        .iter()
        .try_for_each(|level| check_name(level, "namespace"))
}

fn prefix(bucket: &str, tag: u8) -> Vec<u8> {
    let mut k = bucket.as_bytes().to_vec();
    k.extend_from_slice(&[0, tag, 0]);
    k
}

fn push_namespace(k: &mut Vec<u8>, namespace: &[String]) {
    for (i, level) in namespace.iter().enumerate() {
        if i > 0 {
            k.push(LEVEL_SEPARATOR);
        }
        k.extend_from_slice(level.as_bytes());
    }
}

fn namespace_key(bucket: &str, namespace: &[String]) -> Vec<u8> {
    let mut k = prefix(bucket, NAMESPACE_TAG);
    push_namespace(&mut k, namespace);
    k
}

/// The keys of the tables of `namespace` start with this.
fn tables_prefix(bucket: &str, namespace: &[String]) -> Vec<u8> {
    let mut k = prefix(bucket, TABLE_TAG);
    push_namespace(&mut k, namespace);
    k.push(0);
    k
}

fn table_key(bucket: &str, namespace: &[String], name: &str) -> Vec<u8> {
    let mut k = tables_prefix(bucket, namespace);
    k.extend_from_slice(name.as_bytes());
    k
}

/// The keys of the namespaces directly under `parent` (the top level when it is empty) start
/// with this.
fn children_prefix(bucket: &str, parent: &[String]) -> Vec<u8> {
    let mut k = namespace_key(bucket, parent);
    if !parent.is_empty() {
        k.push(LEVEL_SEPARATOR);
    }
    k
}

fn split_namespace(raw: &[u8]) -> Result<Namespace, MetaError> {
    raw.split(|b| *b == LEVEL_SEPARATOR)
        .map(|level| {
            String::from_utf8(level.to_vec())
                .map_err(|_| MetaError::Corrupt("a catalog key is not UTF-8".into()))
        })
        .collect()
}

/// The upper bound of a range of keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.push(0xff);
    end
}

type CatalogTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

fn get<T: Record>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<T>, MetaError> {
    table.get(key)?.map(|v| decode(v.value())).transpose()
}

fn any_under(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    prefix: &[u8],
) -> Result<bool, MetaError> {
    Ok(table
        .range(prefix..prefix_end(prefix).as_slice())?
        .next()
        .is_some())
}

/// Reads of a bucket's catalog, on any table handle (a read or a write transaction's).
pub(crate) fn namespace(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &str,
    namespace: &[String],
) -> Result<Option<NamespaceRecord>, MetaError> {
    get(table, &namespace_key(bucket, namespace))
}

pub(crate) fn table(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &str,
    namespace: &[String],
    name: &str,
) -> Result<Option<TableRecord>, MetaError> {
    get(table, &table_key(bucket, namespace, name))
}

/// The namespaces directly under `parent` (the top level when it is empty), in order.
pub(crate) fn namespaces(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &str,
    parent: &[String],
) -> Result<Vec<Namespace>, MetaError> {
    let start = children_prefix(bucket, parent);
    let root = prefix(bucket, NAMESPACE_TAG).len();
    let mut out = Vec::new();
    for entry in table.range(start.as_slice()..prefix_end(&start).as_slice())? {
        let (k, _) = entry?;
        let rest = &k.value()[start.len()..];
        if !rest.contains(&LEVEL_SEPARATOR) {
            out.push(split_namespace(&k.value()[root..])?);
        }
    }
    Ok(out)
}

/// The tables of `namespace`, in name order.
pub(crate) fn tables(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &str,
    namespace: &[String],
) -> Result<Vec<(String, TableRecord)>, MetaError> {
    let start = tables_prefix(bucket, namespace);
    let mut out = Vec::new();
    for entry in table.range(start.as_slice()..prefix_end(&start).as_slice())? {
        let (k, v) = entry?;
        let name = String::from_utf8(k.value()[start.len()..].to_vec())
            .map_err(|_| MetaError::Corrupt("a catalog key is not UTF-8".into()))?;
        out.push((name, decode(v.value())?));
    }
    Ok(out)
}

/// Whether a bucket has any namespace (a bucket is deleted only once its catalog is empty).
pub(crate) fn has_entries(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &str,
) -> Result<bool, MetaError> {
    let mut start = bucket.as_bytes().to_vec();
    start.push(0);
    any_under(table, &start)
}

fn require_namespace(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    bucket: &str,
    namespace: &[String],
) -> Result<NamespaceRecord, MetaError> {
    self::namespace(table, bucket, namespace)?
        .ok_or_else(|| CatalogError::NoSuchNamespace(namespace_name(namespace)).into())
}

fn table_name(namespace: &[String], name: &str) -> String {
    format!("{}.{name}", namespace_name(namespace))
}

/// Applies one catalog command to `catalog`; `bucket_exists` says whether its bucket exists.
pub(crate) fn apply(
    catalog: &mut CatalogTable<'_>,
    bucket_exists: impl Fn(&str) -> Result<bool, MetaError>,
    command: &CatalogCommand,
) -> Result<(), MetaError> {
    let bucket = match command {
        CatalogCommand::CreateNamespace { bucket, .. }
        | CatalogCommand::UpdateNamespace { bucket, .. }
        | CatalogCommand::DropNamespace { bucket, .. }
        | CatalogCommand::CommitTable { bucket, .. }
        | CatalogCommand::DropTable { bucket, .. }
        | CatalogCommand::RenameTable { bucket, .. } => bucket,
    };
    if !bucket_exists(bucket)? {
        return Err(MetaError::NoSuchBucket);
    }
    match command {
        CatalogCommand::CreateNamespace {
            namespace,
            properties,
            ..
        } => {
            check_namespace(namespace)?;
            let key = namespace_key(bucket, namespace);
            if catalog.get(key.as_slice())?.is_some() {
                return Err(CatalogError::NamespaceExists(namespace_name(namespace)).into());
            }
            if namespace.len() > 1 {
                require_namespace(catalog, bucket, &namespace[..namespace.len() - 1])?;
            }
            let record = NamespaceRecord {
                properties: properties.clone(),
            };
            catalog.insert(key.as_slice(), encode(&record).as_slice())?;
        }
        CatalogCommand::UpdateNamespace {
            namespace,
            removals,
            updates,
            ..
        } => {
            let mut record = require_namespace(catalog, bucket, namespace)?;
            for key in removals {
                record.properties.remove(key);
            }
            record
                .properties
                .extend(updates.iter().map(|(k, v)| (k.clone(), v.clone())));
            let key = namespace_key(bucket, namespace);
            catalog.insert(key.as_slice(), encode(&record).as_slice())?;
        }
        CatalogCommand::DropNamespace { namespace, .. } => {
            require_namespace(catalog, bucket, namespace)?;
            if any_under(catalog, &tables_prefix(bucket, namespace))?
                || any_under(catalog, &children_prefix(bucket, namespace))?
            {
                return Err(CatalogError::NamespaceNotEmpty(namespace_name(namespace)).into());
            }
            catalog.remove(namespace_key(bucket, namespace).as_slice())?;
        }
        CatalogCommand::CommitTable {
            namespace,
            name,
            base_location,
            requirements,
            record,
            ..
        } => {
            require_namespace(catalog, bucket, namespace)?;
            check_name(name, "table")?;
            let key = table_key(bucket, namespace, name);
            let current: Option<TableRecord> = get(catalog, &key)?;
            for requirement in requirements {
                requirement
                    .check(current.as_ref().map(|t| &t.state))
                    .map_err(CatalogError::CommitFailed)?;
            }
            match (base_location, &current) {
                (None, Some(_)) => {
                    return Err(CatalogError::TableExists(table_name(namespace, name)).into());
                }
                (Some(_), None) => {
                    return Err(CatalogError::NoSuchTable(table_name(namespace, name)).into());
                }
                (Some(base), Some(current)) if *base != current.metadata_location => {
                    return Err(CatalogError::CommitBaseMoved.into());
                }
                _ => {}
            }
            catalog.insert(key.as_slice(), encode(record).as_slice())?;
        }
        CatalogCommand::DropTable {
            namespace, name, ..
        } => {
            require_namespace(catalog, bucket, namespace)?;
            if catalog
                .remove(table_key(bucket, namespace, name).as_slice())?
                .is_none()
            {
                return Err(CatalogError::NoSuchTable(table_name(namespace, name)).into());
            }
        }
        CatalogCommand::RenameTable { from, to, .. } => {
            check_name(&to.1, "table")?;
            let from_key = table_key(bucket, &from.0, &from.1);
            let record: TableRecord = get(catalog, &from_key)?
                .ok_or_else(|| CatalogError::NoSuchTable(table_name(&from.0, &from.1)))?;
            require_namespace(catalog, bucket, &to.0)?;
            let to_key = table_key(bucket, &to.0, &to.1);
            if catalog.get(to_key.as_slice())?.is_some() {
                return Err(CatalogError::TableExists(table_name(&to.0, &to.1)).into());
            }
            catalog.remove(from_key.as_slice())?;
            catalog.insert(to_key.as_slice(), encode(&record).as_slice())?;
        }
    }
    Ok(())
}

/// Opens the catalog table of a write transaction.
pub(crate) fn open<'txn>(
    txn: &'txn redb::WriteTransaction,
) -> Result<CatalogTable<'txn>, MetaError> {
    Ok(txn.open_table(CATALOG)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(refs: &[(&str, i64)]) -> TableState {
        TableState {
            uuid: "u1".into(),
            current_schema_id: 1,
            last_column_id: 5,
            refs: refs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn requirements_are_checked_against_the_current_state() {
        let s = state(&[("main", 7)]);
        assert!(TableRequirement::Create.check(None).is_ok());
        assert!(TableRequirement::Create.check(Some(&s)).is_err());
        assert!(
            TableRequirement::TableUuid("u1".into())
                .check(Some(&s))
                .is_ok()
        );
        assert!(
            TableRequirement::TableUuid("u2".into())
                .check(Some(&s))
                .is_err()
        );
        assert!(
            TableRequirement::TableUuid("u1".into())
                .check(None)
                .is_err()
        );
        let main = |id| TableRequirement::RefSnapshotId {
            name: "main".into(),
            snapshot_id: id,
        };
        assert!(main(Some(7)).check(Some(&s)).is_ok());
        assert!(main(Some(6)).check(Some(&s)).is_err());
        assert!(main(None).check(Some(&s)).is_err());
        assert!(main(None).check(Some(&state(&[]))).is_ok());
        assert!(main(Some(7)).check(Some(&state(&[]))).is_err());
        assert!(TableRequirement::CurrentSchemaId(1).check(Some(&s)).is_ok());
        assert!(
            TableRequirement::CurrentSchemaId(2)
                .check(Some(&s))
                .is_err()
        );
        assert!(
            TableRequirement::LastAssignedFieldId(5)
                .check(Some(&s))
                .is_ok()
        );
        assert!(
            TableRequirement::LastAssignedFieldId(4)
                .check(Some(&s))
                .is_err()
        );
    }

    #[test]
    fn names_refuse_control_characters_and_empty_levels() {
        assert!(check_name("sales", "table").is_ok());
        assert!(check_name("", "table").is_err());
        assert!(check_name("a\u{1f}b", "table").is_err());
        assert!(check_namespace(&[]).is_err());
        assert!(check_namespace(&["a".into(), String::new()]).is_err());
    }

    #[test]
    fn keys_keep_namespaces_and_their_tables_apart() {
        let ns = vec!["a".to_owned()];
        let nested = vec!["a".to_owned(), "b".to_owned()];
        let children = children_prefix("w", &ns);
        assert!(namespace_key("w", &nested).starts_with(&children));
        assert!(!namespace_key("w", &ns).starts_with(&children));
        assert!(!table_key("w", &ns, "t").starts_with(&children));
        assert!(table_key("w", &ns, "t").starts_with(&tables_prefix("w", &ns)));
        assert!(!table_key("w", &nested, "t").starts_with(&tables_prefix("w", &ns)));
        assert_eq!(
            split_namespace(&namespace_key("w", &nested)[prefix("w", NAMESPACE_TAG).len()..])
                .unwrap(),
            nested
        );
    }
}
