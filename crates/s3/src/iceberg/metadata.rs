//! Iceberg table metadata (the `*.metadata.json` files): made for a new table, changed by a
//! commit's updates as the REST spec defines them, and the facts of it that commit
//! requirements assert. Kept as the JSON it is, so fields this code does not know (or that a
//! newer spec adds) pass through untouched.

use std::collections::BTreeMap;

use basalt_object::{TableRequirement, TableState};
use serde_json::{Map, Value, json};

/// Why a request's metadata or updates are refused (400 BadRequestException).
#[derive(Debug)]
pub(crate) struct Invalid(pub(crate) String);

fn invalid<T>(message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(message.into()))
}

/// The newest format version this catalog writes.
const MAX_FORMAT_VERSION: i64 = 3;
/// Metadata files a table remembers in its metadata log, unless its properties say otherwise.
const PREVIOUS_VERSIONS_MAX: usize = 100;

fn int(object: &Map<String, Value>, field: &str) -> Result<i64, Invalid> {
    match object.get(field).and_then(Value::as_i64) {
        Some(v) => Ok(v),
        None => invalid(format!("{field} must be an integer")),
    }
}

fn opt_int(object: &Map<String, Value>, field: &str) -> Option<i64> {
    object.get(field).and_then(Value::as_i64)
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Invalid> {
    value
        .as_object()
        .ok_or_else(|| Invalid(format!("{what} must be a JSON object")))
}

pub(crate) fn string_map(
    value: Option<&Value>,
    what: &str,
) -> Result<BTreeMap<String, String>, Invalid> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    object(value, what)?
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_owned())),
            None => invalid(format!("{what} must map strings to strings")),
        })
        .collect()
}

/// A JSON list whose items `item` reads (`kind` names them in the refusal).
fn list_of<T>(
    value: Option<&Value>,
    what: &str,
    kind: &str,
    item: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>, Invalid> {
    let refusal = || Invalid(format!("{what} must be a list of {kind}"));
    let Some(Value::Array(items)) = value else {
        return Err(refusal());
    };
    items.iter().map(|v| item(v).ok_or_else(refusal)).collect()
}

pub(crate) fn strings(value: Option<&Value>, what: &str) -> Result<Vec<String>, Invalid> {
    list_of(value, what, "strings", |v| v.as_str().map(str::to_owned))
}

fn ints(value: Option<&Value>, what: &str) -> Result<Vec<i64>, Invalid> {
    list_of(value, what, "integers", Value::as_i64)
}

/// The highest field id in a schema or type, nested fields, list elements and map keys and
/// values included.
fn max_field_id(value: &Value) -> i64 {
    let mut max = 0;
    match value {
        Value::Object(o) => {
            for id in ["id", "element-id", "key-id", "value-id"] {
                if let Some(v) = o.get(id).and_then(Value::as_i64) {
                    max = max.max(v);
                }
            }
            for nested in ["fields", "type", "element", "key", "value"] {
                if let Some(v) = o.get(nested) {
                    max = max.max(max_field_id(v));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                max = max.max(max_field_id(item));
            }
        }
        _ => {}
    }
    max
}

fn max_partition_field_id(spec: &Value) -> Option<i64> {
    spec.get("fields")?
        .as_array()?
        .iter()
        .filter_map(|f| f.get("field-id").and_then(Value::as_i64))
        .max()
}

fn check_schema(schema: &Value) -> Result<(), Invalid> {
    let o = object(schema, "a schema")?;
    if o.get("type").and_then(Value::as_str) != Some("struct") || !o["fields"].is_array() {
        return invalid("a schema is a struct with a list of fields");
    }
    Ok(())
}

/// A table's metadata as the JSON object of its metadata file.
#[derive(Debug, Clone)]
pub(crate) struct TableMetadata(pub(crate) Map<String, Value>);

/// What `CreateTableRequest` gives, besides the table's name.
pub(crate) struct NewTable<'a> {
    pub(crate) location: String,
    pub(crate) uuid: String,
    pub(crate) schema: &'a Value,
    pub(crate) partition_spec: Option<&'a Value>,
    pub(crate) write_order: Option<&'a Value>,
    pub(crate) properties: BTreeMap<String, String>,
    pub(crate) now_ms: i64,
}

impl TableMetadata {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, Invalid> {
        match serde_json::from_slice(bytes) {
            Ok(Value::Object(o)) => {
                let metadata = Self(o);
                metadata.state()?;
                Ok(metadata)
            }
            Ok(_) => invalid("table metadata must be a JSON object"),
            Err(e) => invalid(format!("table metadata is not JSON: {e}")),
        }
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }

    /// The metadata of a new table, as the spec's `TableMetadata.newTableMetadata` makes it:
    /// the schema, spec and sort order given (ids as the client assigned them), no snapshots.
    pub(crate) fn create(table: NewTable<'_>) -> Result<Self, Invalid> {
        check_schema(table.schema)?;
        let mut properties = table.properties;
        let format_version = match properties.remove("format-version") {
            Some(v) => match v.parse::<i64>() {
                Ok(v @ 1..=MAX_FORMAT_VERSION) => v,
                _ => return invalid(format!("unsupported format-version {v}")),
            },
            None => 2,
        };
        let mut schema = table.schema.clone();
        schema["schema-id"] = json!(0);
        let mut spec = table
            .partition_spec
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or_else(|| json!({"spec-id": 0, "fields": []}));
        object(&spec, "a partition spec")?;
        spec["spec-id"] = json!(0);
        if !spec["fields"].is_array() {
            spec["fields"] = json!([]);
        }
        let order = table
            .write_order
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or_else(|| json!({"order-id": 0, "fields": []}));
        let order_id = opt_int(object(&order, "a sort order")?, "order-id").unwrap_or(0);
        let mut metadata = json!({
            "format-version": format_version,
            "table-uuid": table.uuid,
            "location": table.location,
            "last-sequence-number": 0,
            "last-updated-ms": table.now_ms,
            "last-column-id": max_field_id(&schema),
            "current-schema-id": 0,
            "schemas": [schema],
            "default-spec-id": 0,
            "partition-specs": [spec.clone()],
            "last-partition-id": max_partition_field_id(&spec).unwrap_or(999),
            "default-sort-order-id": order_id,
            "sort-orders": [order],
            "properties": properties,
            "current-snapshot-id": -1,
            "refs": {},
            "snapshots": [],
            "statistics": [],
            "partition-statistics": [],
            "snapshot-log": [],
            "metadata-log": [],
        });
        if format_version >= 3 {
            metadata["next-row-id"] = json!(0);
        }
        match metadata {
            Value::Object(o) => Ok(Self(o)),
            _ => invalid("table metadata"),
        }
    }

    /// The metadata a staged create's updates start from: a table with nothing yet, which
    /// the updates (assign-uuid, add-schema, set-location, …) fill in.
    pub(crate) fn empty(now_ms: i64) -> Self {
        // Version 1, so that the create's `upgrade-format-version` sets whichever it asks.
        let metadata = json!({
            "format-version": 1,
            "table-uuid": "",
            "last-sequence-number": 0,
            "last-updated-ms": now_ms,
            "last-column-id": 0,
            "current-schema-id": -1,
            "schemas": [],
            "default-spec-id": -1,
            "partition-specs": [],
            "last-partition-id": 999,
            "default-sort-order-id": -1,
            "sort-orders": [],
            "properties": {},
            "current-snapshot-id": -1,
            "refs": {},
            "snapshots": [],
            "statistics": [],
            "partition-statistics": [],
            "snapshot-log": [],
            "metadata-log": [],
        });
        match metadata {
            Value::Object(o) => Self(o),
            _ => Self(Map::new()),
        }
    }

    /// A staged create that named no format version gets the default one (2).
    pub(crate) fn finish_staged_create(&mut self, created: bool, session: &Session) {
        if created && !session.upgraded {
            self.0.insert("format-version".into(), json!(2));
        }
    }

    pub(crate) fn location(&self) -> Option<&str> {
        self.0.get("location").and_then(Value::as_str)
    }

    /// The facts commit requirements assert.
    pub(crate) fn state(&self) -> Result<TableState, Invalid> {
        let m = &self.0;
        let uuid = m
            .get("table-uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| Invalid("table metadata has no table-uuid".into()))?;
        let mut refs = BTreeMap::new();
        if let Some(Value::Object(r)) = m.get("refs") {
            for (name, target) in r {
                if let Some(id) = target.get("snapshot-id").and_then(Value::as_i64) {
                    refs.insert(name.clone(), id);
                }
            }
        }
        // Metadata written before refs existed names only the current snapshot.
        if let Some(current) = opt_int(m, "current-snapshot-id").filter(|id| *id >= 0) {
            refs.entry("main".to_owned()).or_insert(current);
        }
        Ok(TableState {
            uuid: uuid.to_owned(),
            current_schema_id: opt_int(m, "current-schema-id").unwrap_or(0),
            last_column_id: int(m, "last-column-id")?,
            last_partition_id: opt_int(m, "last-partition-id").unwrap_or(999),
            default_spec_id: opt_int(m, "default-spec-id").unwrap_or(0),
            default_sort_order_id: opt_int(m, "default-sort-order-id").unwrap_or(0),
            refs,
        })
    }

    fn list_mut(&mut self, field: &str) -> &mut Vec<Value> {
        let entry = self
            .0
            .entry(field.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !entry.is_array() {
            *entry = Value::Array(Vec::new());
        }
        match entry {
            Value::Array(items) => items,
            _ => unreachable!("just made an array"),
        }
    }

    fn map_mut(&mut self, field: &str) -> &mut Map<String, Value> {
        let entry = self
            .0
            .entry(field.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        match entry {
            Value::Object(o) => o,
            _ => unreachable!("just made an object"),
        }
    }

    fn ids_of(&self, list: &str, id_field: &str) -> Vec<i64> {
        self.0
            .get(list)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get(id_field).and_then(Value::as_i64))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Drops the items of `list` whose `id_field` is one of `ids`.
    fn remove_ids(&mut self, list: &str, id_field: &str, ids: &[i64]) {
        self.list_mut(list).retain(|item| {
            !item
                .get(id_field)
                .and_then(Value::as_i64)
                .is_some_and(|id| ids.contains(&id))
        });
    }

    fn snapshot(&self, id: i64) -> Option<&Value> {
        self.0
            .get("snapshots")?
            .as_array()?
            .iter()
            .find(|s| s.get("snapshot-id").and_then(Value::as_i64) == Some(id))
    }

    fn format_version(&self) -> i64 {
        opt_int(&self.0, "format-version").unwrap_or(1)
    }

    /// Adds a schema, partition spec or sort order to `list` and returns its id: the id of an
    /// equal one already there (same fields), else one past the highest.
    fn add_versioned(
        &mut self,
        list: &str,
        id_field: &str,
        mut item: Value,
        first_id: i64,
    ) -> Result<i64, Invalid> {
        object(&item, list)?;
        let fields = |v: &Value| v.get("fields").cloned();
        if let Some(existing) = self
            .0
            .get(list)
            .and_then(Value::as_array)
            .and_then(|items| {
                items.iter().find(|i| {
                    fields(i) == fields(&item)
                        && (list != "schemas"
                            || i.get("identifier-field-ids") == item.get("identifier-field-ids"))
                })
            })
            && let Some(id) = existing.get(id_field).and_then(Value::as_i64)
        {
            return Ok(id);
        }
        let id = self
            .ids_of(list, id_field)
            .into_iter()
            .max()
            .map_or(first_id, |m| (m + 1).max(first_id));
        item[id_field] = json!(id);
        self.list_mut(list).push(item);
        Ok(id)
    }

    /// Applies one of a commit's updates (`{"action": …}`) at time `now_ms`.
    pub(crate) fn apply(&mut self, update: &Value, session: &mut Session) -> Result<(), Invalid> {
        let u = object(update, "an update")?;
        let action = u
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| Invalid("an update needs an action".into()))?;
        match action {
            "assign-uuid" => {
                let uuid = u
                    .get("uuid")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Invalid("assign-uuid needs a uuid".into()))?;
                self.0.insert("table-uuid".into(), json!(uuid));
            }
            "upgrade-format-version" => {
                let version = int(u, "format-version")?;
                let current = self.format_version();
                if !(1..=MAX_FORMAT_VERSION).contains(&version) {
                    return invalid(format!("unsupported format-version {version}"));
                }
                if version < current {
                    return invalid(format!(
                        "cannot downgrade format-version {current} to {version}"
                    ));
                }
                if version >= 3 && !self.0.contains_key("next-row-id") {
                    self.0.insert("next-row-id".into(), json!(0));
                }
                self.0.insert("format-version".into(), json!(version));
                session.upgraded = true;
            }
            "add-schema" => {
                let schema = u
                    .get("schema")
                    .ok_or_else(|| Invalid("add-schema needs a schema".into()))?;
                check_schema(schema)?;
                let highest = opt_int(u, "last-column-id")
                    .unwrap_or(0)
                    .max(max_field_id(schema))
                    .max(opt_int(&self.0, "last-column-id").unwrap_or(0));
                let id = self.add_versioned("schemas", "schema-id", schema.clone(), 0)?;
                self.0.insert("last-column-id".into(), json!(highest));
                session.last_schema = Some(id);
            }
            "set-current-schema" => {
                let id = session.resolve(int(u, "schema-id")?, session.last_schema, "schema")?;
                if !self.ids_of("schemas", "schema-id").contains(&id) {
                    return invalid(format!("schema {id} does not exist"));
                }
                self.0.insert("current-schema-id".into(), json!(id));
            }
            "add-spec" => {
                let spec = u
                    .get("spec")
                    .ok_or_else(|| Invalid("add-spec needs a spec".into()))?;
                let highest = max_partition_field_id(spec)
                    .unwrap_or(999)
                    .max(opt_int(&self.0, "last-partition-id").unwrap_or(999));
                let id = self.add_versioned("partition-specs", "spec-id", spec.clone(), 0)?;
                self.0.insert("last-partition-id".into(), json!(highest));
                session.last_spec = Some(id);
            }
            "set-default-spec" => {
                let id =
                    session.resolve(int(u, "spec-id")?, session.last_spec, "partition spec")?;
                if !self.ids_of("partition-specs", "spec-id").contains(&id) {
                    return invalid(format!("partition spec {id} does not exist"));
                }
                self.0.insert("default-spec-id".into(), json!(id));
            }
            "add-sort-order" => {
                let order = u
                    .get("sort-order")
                    .ok_or_else(|| Invalid("add-sort-order needs a sort-order".into()))?;
                let unsorted = order
                    .get("fields")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
                let id = if unsorted {
                    let mut order = order.clone();
                    order["order-id"] = json!(0);
                    if !self.ids_of("sort-orders", "order-id").contains(&0) {
                        self.list_mut("sort-orders").push(order);
                    }
                    0
                } else {
                    self.add_versioned("sort-orders", "order-id", order.clone(), 1)?
                };
                session.last_sort_order = Some(id);
            }
            "set-default-sort-order" => {
                let id = session.resolve(
                    int(u, "sort-order-id")?,
                    session.last_sort_order,
                    "sort order",
                )?;
                if !self.ids_of("sort-orders", "order-id").contains(&id) {
                    return invalid(format!("sort order {id} does not exist"));
                }
                self.0.insert("default-sort-order-id".into(), json!(id));
            }
            "add-snapshot" => self.add_snapshot(u, session)?,
            "set-snapshot-ref" => self.set_ref(u, session)?,
            "remove-snapshots" => {
                let ids = ints(u.get("snapshot-ids"), "snapshot-ids")?;
                let gone = |v: &Value| {
                    v.get("snapshot-id")
                        .and_then(Value::as_i64)
                        .is_some_and(|id| ids.contains(&id))
                };
                self.list_mut("snapshots").retain(|s| !gone(s));
                self.list_mut("statistics").retain(|s| !gone(s));
                self.list_mut("partition-statistics").retain(|s| !gone(s));
                self.list_mut("snapshot-log").retain(|s| !gone(s));
                self.map_mut("refs").retain(|_, r| !gone(r));
                if opt_int(&self.0, "current-snapshot-id").is_some_and(|id| ids.contains(&id)) {
                    self.0.insert("current-snapshot-id".into(), json!(-1));
                }
            }
            "remove-snapshot-ref" => {
                let name = u
                    .get("ref-name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Invalid("remove-snapshot-ref needs a ref-name".into()))?;
                self.map_mut("refs").remove(name);
                if name == "main" {
                    self.0.insert("current-snapshot-id".into(), json!(-1));
                }
            }
            "set-location" => {
                let location = u
                    .get("location")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Invalid("set-location needs a location".into()))?;
                self.0.insert("location".into(), json!(location));
            }
            "set-properties" => {
                let updates = string_map(u.get("updates"), "set-properties updates")?;
                let properties = self.map_mut("properties");
                for (k, v) in updates {
                    properties.insert(k, json!(v));
                }
            }
            "remove-properties" => {
                let removals = strings(u.get("removals"), "remove-properties removals")?;
                let properties = self.map_mut("properties");
                for k in removals {
                    properties.remove(&k);
                }
            }
            "set-statistics" | "set-partition-statistics" => {
                let (field, list) = if action == "set-statistics" {
                    ("statistics", "statistics")
                } else {
                    ("partition-statistics", "partition-statistics")
                };
                let stats = u
                    .get(field)
                    .filter(|v| v.is_object())
                    .ok_or_else(|| Invalid(format!("{action} needs {field}")))?
                    .clone();
                let id = stats.get("snapshot-id").and_then(Value::as_i64);
                let items = self.list_mut(list);
                items.retain(|s| s.get("snapshot-id").and_then(Value::as_i64) != id);
                items.push(stats);
            }
            "remove-statistics" | "remove-partition-statistics" => {
                let list = if action == "remove-statistics" {
                    "statistics"
                } else {
                    "partition-statistics"
                };
                let id = int(u, "snapshot-id")?;
                self.list_mut(list)
                    .retain(|s| s.get("snapshot-id").and_then(Value::as_i64) != Some(id));
            }
            "remove-partition-specs" => {
                let ids = ints(u.get("spec-ids"), "spec-ids")?;
                if opt_int(&self.0, "default-spec-id").is_some_and(|d| ids.contains(&d)) {
                    return invalid("cannot remove the default partition spec");
                }
                self.remove_ids("partition-specs", "spec-id", &ids);
            }
            "remove-schemas" => {
                let ids = ints(u.get("schema-ids"), "schema-ids")?;
                if opt_int(&self.0, "current-schema-id").is_some_and(|c| ids.contains(&c)) {
                    return invalid("cannot remove the current schema");
                }
                self.remove_ids("schemas", "schema-id", &ids);
            }
            "add-encryption-key" => {
                let key = u
                    .get("encryption-key")
                    .filter(|v| v.is_object())
                    .ok_or_else(|| Invalid("add-encryption-key needs an encryption-key".into()))?
                    .clone();
                self.list_mut("encryption-keys").push(key);
            }
            "remove-encryption-key" => {
                let id = u
                    .get("key-id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Invalid("remove-encryption-key needs a key-id".into()))?
                    .to_owned();
                self.list_mut("encryption-keys")
                    .retain(|k| k.get("key-id").and_then(Value::as_str) != Some(id.as_str()));
            }
            other => return invalid(format!("unsupported update action {other}")),
        }
        session.changed = true;
        Ok(())
    }

    fn add_snapshot(
        &mut self,
        u: &Map<String, Value>,
        session: &mut Session,
    ) -> Result<(), Invalid> {
        let mut snapshot = u
            .get("snapshot")
            .filter(|v| v.is_object())
            .ok_or_else(|| Invalid("add-snapshot needs a snapshot".into()))?
            .clone();
        let fields = object(&snapshot, "a snapshot")?;
        let id = int(fields, "snapshot-id")?;
        let timestamp = int(fields, "timestamp-ms")?;
        if self.snapshot(id).is_some() {
            return invalid(format!("snapshot {id} already exists"));
        }
        let last_sequence = opt_int(&self.0, "last-sequence-number").unwrap_or(0);
        let sequence = opt_int(fields, "sequence-number").unwrap_or(0);
        if self.format_version() >= 2
            && sequence <= last_sequence
            && opt_int(fields, "parent-snapshot-id").is_some()
        {
            return invalid(format!(
                "cannot add snapshot with sequence number {sequence} older than last sequence number {last_sequence}"
            ));
        }
        if self.format_version() >= 3 {
            let next_row_id = opt_int(&self.0, "next-row-id").unwrap_or(0);
            let first_row_id = opt_int(fields, "first-row-id").unwrap_or(next_row_id);
            if first_row_id < next_row_id {
                return invalid(format!(
                    "snapshot {id}'s first-row-id {first_row_id} is before the table's next-row-id {next_row_id}"
                ));
            }
            let added = opt_int(fields, "added-rows").unwrap_or(0);
            snapshot["first-row-id"] = json!(first_row_id);
            self.0
                .insert("next-row-id".into(), json!(first_row_id + added));
        }
        self.list_mut("snapshots").push(snapshot);
        self.0.insert(
            "last-sequence-number".into(),
            json!(sequence.max(last_sequence)),
        );
        self.0.insert("last-updated-ms".into(), json!(timestamp));
        session.added_snapshots.insert(id, timestamp);
        Ok(())
    }

    fn set_ref(&mut self, u: &Map<String, Value>, session: &mut Session) -> Result<(), Invalid> {
        let name = u
            .get("ref-name")
            .and_then(Value::as_str)
            .ok_or_else(|| Invalid("set-snapshot-ref needs a ref-name".into()))?
            .to_owned();
        let id = int(u, "snapshot-id")?;
        let kind = u.get("type").and_then(Value::as_str).unwrap_or("branch");
        if !matches!(kind, "branch" | "tag") {
            return invalid(format!("a ref is a branch or a tag, not {kind}"));
        }
        if self.snapshot(id).is_none() {
            return invalid(format!("snapshot {id} does not exist"));
        }
        let mut target = json!({"snapshot-id": id, "type": kind});
        for field in [
            "max-ref-age-ms",
            "max-snapshot-age-ms",
            "min-snapshots-to-keep",
        ] {
            if let Some(v) = u.get(field).filter(|v| !v.is_null()) {
                target[field] = v.clone();
            }
        }
        self.map_mut("refs").insert(name.clone(), target);
        if name == "main" {
            self.0.insert("current-snapshot-id".into(), json!(id));
            let at = session
                .added_snapshots
                .get(&id)
                .copied()
                .unwrap_or(session.now_ms);
            self.list_mut("snapshot-log")
                .push(json!({"timestamp-ms": at, "snapshot-id": id}));
        }
        Ok(())
    }

    /// Finishes a commit made on `base` (whose file is `base_location`): the time of the
    /// change, and the base file appended to the metadata log.
    pub(crate) fn finish_commit(&mut self, base: &TableMetadata, base_location: &str, now_ms: i64) {
        let snapshot_time = self
            .0
            .get("last-updated-ms")
            .and_then(Value::as_i64)
            .filter(|t| Some(*t) != opt_int(&base.0, "last-updated-ms"));
        self.0.insert(
            "last-updated-ms".into(),
            json!(snapshot_time.unwrap_or(now_ms).max(now_ms)),
        );
        let keep = self
            .0
            .get("properties")
            .and_then(|p| p.get("write.metadata.previous-versions-max"))
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(PREVIOUS_VERSIONS_MAX);
        let previous = opt_int(&base.0, "last-updated-ms").unwrap_or(now_ms);
        let log = self.list_mut("metadata-log");
        log.push(json!({"timestamp-ms": previous, "metadata-file": base_location}));
        if log.len() > keep {
            let excess = log.len() - keep;
            log.drain(..excess);
        }
    }
}

/// What one commit's updates have done so far: the ids `-1` ("the last added") refers to.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub(crate) now_ms: i64,
    last_schema: Option<i64>,
    last_spec: Option<i64>,
    last_sort_order: Option<i64>,
    added_snapshots: BTreeMap<i64, i64>,
    pub(crate) changed: bool,
    /// The commit set the format version.
    upgraded: bool,
}

impl Session {
    pub(crate) fn new(now_ms: i64) -> Self {
        Self {
            now_ms,
            ..Self::default()
        }
    }

    fn resolve(&self, id: i64, last: Option<i64>, what: &str) -> Result<i64, Invalid> {
        match (id, last) {
            (-1, Some(last)) => Ok(last),
            (-1, None) => invalid(format!("no {what} was added in this commit")),
            (id, _) => Ok(id),
        }
    }
}

/// One of a commit's requirements (`{"type": "assert-…", …}`).
pub(crate) fn requirement(value: &Value) -> Result<TableRequirement, Invalid> {
    let r = object(value, "a requirement")?;
    let kind = r
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid("a requirement needs a type".into()))?;
    Ok(match kind {
        "assert-create" => TableRequirement::Create,
        "assert-table-uuid" => TableRequirement::TableUuid(
            r.get("uuid")
                .and_then(Value::as_str)
                .ok_or_else(|| Invalid("assert-table-uuid needs a uuid".into()))?
                .to_owned(),
        ),
        "assert-ref-snapshot-id" => TableRequirement::RefSnapshotId {
            name: r
                .get("ref")
                .and_then(Value::as_str)
                .ok_or_else(|| Invalid("assert-ref-snapshot-id needs a ref".into()))?
                .to_owned(),
            snapshot_id: opt_int(r, "snapshot-id"),
        },
        "assert-last-assigned-field-id" => {
            TableRequirement::LastAssignedFieldId(int(r, "last-assigned-field-id")?)
        }
        "assert-current-schema-id" => {
            TableRequirement::CurrentSchemaId(int(r, "current-schema-id")?)
        }
        "assert-last-assigned-partition-id" => {
            TableRequirement::LastAssignedPartitionId(int(r, "last-assigned-partition-id")?)
        }
        "assert-default-spec-id" => TableRequirement::DefaultSpecId(int(r, "default-spec-id")?),
        "assert-default-sort-order-id" => {
            TableRequirement::DefaultSortOrderId(int(r, "default-sort-order-id")?)
        }
        other => return invalid(format!("unsupported requirement {other}")),
    })
}

/// The version number of a metadata file (`…/00003-<uuid>.metadata.json` is 3), if it has one.
pub(crate) fn file_version(location: &str) -> Option<u64> {
    let name = location.rsplit('/').next()?;
    name.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_table() -> TableMetadata {
        let schema = json!({"type": "struct", "schema-id": 0, "fields": [
            {"id": 1, "name": "id", "type": "long", "required": true},
            {"id": 2, "name": "tags", "required": false, "type":
                {"type": "list", "element-id": 3, "element": "string", "element-required": false}},
        ]});
        TableMetadata::create(NewTable {
            location: "s3://w/db/t".into(),
            uuid: "u-1".into(),
            schema: &schema,
            partition_spec: None,
            write_order: None,
            properties: BTreeMap::from([("format-version".into(), "2".into())]),
            now_ms: 1000,
        })
        .unwrap()
    }

    #[test]
    fn a_new_table_has_its_schema_and_no_snapshot() {
        let m = new_table();
        let state = m.state().unwrap();
        assert_eq!(state.uuid, "u-1");
        assert_eq!(state.last_column_id, 3);
        assert_eq!(state.last_partition_id, 999);
        assert!(state.refs.is_empty());
        assert_eq!(m.0["format-version"], 2);
        assert!(m.0["properties"].get("format-version").is_none());
    }

    #[test]
    fn an_append_moves_main_and_logs_the_snapshot() {
        let base = new_table();
        let mut m = base.clone();
        let mut session = Session::new(5000);
        let snapshot = json!({"action": "add-snapshot", "snapshot": {
            "snapshot-id": 42, "sequence-number": 1, "timestamp-ms": 4000,
            "manifest-list": "s3://w/db/t/metadata/snap-42.avro", "summary": {"operation": "append"}}});
        m.apply(&snapshot, &mut session).unwrap();
        m.apply(
            &json!({"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 42}),
            &mut session,
        )
        .unwrap();
        m.finish_commit(&base, "s3://w/db/t/metadata/00000-a.metadata.json", 5000);
        let state = m.state().unwrap();
        assert_eq!(state.refs.get("main"), Some(&42));
        assert_eq!(m.0["current-snapshot-id"], 42);
        assert_eq!(m.0["last-sequence-number"], 1);
        assert_eq!(m.0["snapshot-log"][0]["timestamp-ms"], 4000);
        assert_eq!(
            m.0["metadata-log"][0]["metadata-file"],
            "s3://w/db/t/metadata/00000-a.metadata.json"
        );
        // The same snapshot again is refused.
        assert!(m.apply(&snapshot, &mut session).is_err());
    }

    #[test]
    fn schema_evolution_assigns_the_next_id_and_resolves_the_last_added() {
        let mut m = new_table();
        let mut session = Session::new(0);
        let schema = json!({"type": "struct", "schema-id": 7, "fields": [
            {"id": 1, "name": "id", "type": "long", "required": true},
            {"id": 4, "name": "note", "type": "string", "required": false}]});
        m.apply(
            &json!({"action": "add-schema", "schema": schema, "last-column-id": 4}),
            &mut session,
        )
        .unwrap();
        m.apply(
            &json!({"action": "set-current-schema", "schema-id": -1}),
            &mut session,
        )
        .unwrap();
        let state = m.state().unwrap();
        assert_eq!(state.current_schema_id, 1);
        assert_eq!(state.last_column_id, 4);
        assert!(
            m.apply(
                &json!({"action": "set-current-schema", "schema-id": 9}),
                &mut session
            )
            .is_err()
        );
        assert!(
            m.apply(&json!({"action": "explode"}), &mut session)
                .is_err()
        );
    }

    #[test]
    fn requirements_parse_as_the_spec_names_them() {
        assert_eq!(
            requirement(
                &json!({"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null})
            )
            .unwrap(),
            TableRequirement::RefSnapshotId {
                name: "main".into(),
                snapshot_id: None
            }
        );
        assert!(requirement(&json!({"type": "assert-nothing"})).is_err());
        assert_eq!(
            file_version("s3://w/t/metadata/00012-abc.metadata.json"),
            Some(12)
        );
        assert_eq!(file_version("s3://w/t/metadata/v1.metadata.json"), None);
    }
}
