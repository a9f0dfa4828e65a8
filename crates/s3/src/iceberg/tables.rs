//! The catalog's table routes: tables are a current metadata file each, written here as an
//! object of the bucket and swapped by a commit of the state machine.

use basalt_object::{
    CatalogCommand, CatalogError, ObjectError, TableRecord, TableRequirement, namespace_name,
};
use bytes::Bytes;
use serde_json::{Value, json};

use super::metadata::{self, NewTable, Session, TableMetadata};
use super::namespaces::page;
use super::{
    Answer, Call, Catalog, Failure, MAX_METADATA_BYTES, body_json, namespace_of_json, no_content,
    ok_json, query_param, table_arn, warehouse_arn,
};

/// How many times a commit is redone on a table that moved on while its requirements held.
const COMMIT_ATTEMPTS: usize = 10;

/// The key, in `bucket`, of a location (`s3://bucket/key`); locations elsewhere are refused,
/// so that a purge never reaches past the warehouse.
fn key_in_bucket(bucket: &str, location: &str) -> Result<String, Failure> {
    ["s3://", "s3a://", "s3n://"]
        .iter()
        .find_map(|scheme| location.strip_prefix(scheme))
        .and_then(|rest| rest.strip_prefix(bucket))
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::bad_request(format!(
                "{location} is not in the warehouse: table locations are s3://{bucket}/…"
            ))
        })
}

/// The `name` of a create or register request.
fn table_name_of(request: &serde_json::Map<String, Value>) -> Result<String, Failure> {
    let name = request
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::bad_request("a table needs a name"))?;
    basalt_object::check_catalog_name(name, "table")
        .map_err(|e| Failure::bad_request(e.to_string()))?;
    Ok(name.to_owned())
}

fn no_such_table(namespace: &[String], name: &str) -> Failure {
    ObjectError::Catalog(CatalogError::NoSuchTable(qualified(namespace, name))).into()
}

fn table_exists(namespace: &[String], name: &str) -> Failure {
    ObjectError::Catalog(CatalogError::TableExists(qualified(namespace, name))).into()
}

/// `namespace.levels.table`, as errors name a table.
fn qualified(namespace: &[String], name: &str) -> String {
    format!("{}.{name}", namespace_name(namespace))
}

/// `LoadTableResult`: the table's metadata, and where it is.
fn load_result(location: Option<&str>, metadata: &TableMetadata) -> Answer {
    ok_json(&json!({
        "metadata-location": location,
        "metadata": Value::Object(metadata.0.clone()),
        "config": {},
    }))
}

fn table_identifier(value: Option<&Value>) -> Result<(Vec<String>, String), Failure> {
    let v = value
        .and_then(Value::as_object)
        .ok_or_else(|| Failure::bad_request("a table identifier is {namespace, name}"))?;
    let namespace = namespace_of_json(v.get("namespace"))?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::bad_request("a table identifier needs a name"))?;
    basalt_object::check_catalog_name(name, "table")
        .map_err(|e| Failure::bad_request(e.to_string()))?;
    Ok((namespace, name.to_owned()))
}

/// The S3 resource of the objects under a table location (`arn:aws:s3:::bucket/prefix/`).
fn location_arn(bucket: &str, location: &str) -> Result<String, Failure> {
    let key = key_in_bucket(bucket, location)?;
    Ok(format!(
        "arn:aws:s3:::{bucket}/{}/",
        key.trim_end_matches('/')
    ))
}

impl Call {
    /// A table's files are written (and purged) by the catalog for the caller: the caller must
    /// be allowed `action` on the objects under its location, as if it wrote them itself.
    fn require_on_location(
        &self,
        action: &str,
        bucket: &str,
        location: &str,
    ) -> Result<(), Failure> {
        self.require(action, &location_arn(bucket, location)?)
    }
}

impl Catalog {
    async fn require_table(
        &self,
        bucket: &str,
        ns: &[String],
        name: &str,
    ) -> Result<TableRecord, Failure> {
        self.store
            .catalog_table(bucket, ns, name)
            .await?
            .ok_or_else(|| no_such_table(ns, name))
    }

    async fn read_metadata(&self, bucket: &str, location: &str) -> Result<TableMetadata, Failure> {
        let key = key_in_bucket(bucket, location)?;
        let bytes = self
            .store
            .read_bytes(bucket, &key, MAX_METADATA_BYTES)
            .await?;
        Ok(TableMetadata::parse(&bytes)?)
    }

    /// Writes `metadata` as version `version` of the table's metadata files; its location.
    async fn write_metadata(
        &self,
        bucket: &str,
        metadata: &TableMetadata,
        version: u64,
    ) -> Result<String, Failure> {
        let table_location = metadata
            .location()
            .ok_or_else(|| Failure::bad_request("the table has no location"))?
            .trim_end_matches('/')
            .to_owned();
        let location = format!(
            "{table_location}/metadata/{version:05}-{}.metadata.json",
            basalt_object::new_uuid()
        );
        let key = key_in_bucket(bucket, &location)?;
        self.store
            .put_bytes(
                bucket,
                &key,
                Bytes::from(metadata.to_json()),
                "application/json",
            )
            .await?;
        Ok(location)
    }

    /// Removes a metadata file a refused commit wrote (best effort: it is unreferenced).
    async fn discard_metadata(&self, bucket: &str, location: &str) {
        if let Ok(key) = key_in_bucket(bucket, location) {
            let request = basalt_object::DeleteRequest {
                version_id: None,
                bypass_governance: false,
            };
            if let Err(e) = self.store.delete_object(bucket, &key, request).await {
                tracing::warn!(error = %e, location, "an unused metadata file was left behind");
            }
        }
    }

    /// Records `metadata`, written at `location`, as the table's state: created (no base) or
    /// committed over `base`. A refused commit leaves no file behind.
    async fn swap(
        &self,
        bucket: &str,
        (namespace, name): (&[String], &str),
        base: Option<String>,
        requirements: Vec<TableRequirement>,
        (location, metadata): (String, &TableMetadata),
    ) -> Result<(), ObjectError> {
        let state = match metadata.state() {
            Ok(state) => state,
            Err(e) => return Err(ObjectError::InvalidRequest(e.0)),
        };
        let record = TableRecord {
            metadata_location: location.clone(),
            state,
        };
        let result = self
            .store
            .catalog_execute(CatalogCommand::CommitTable {
                bucket: bucket.to_owned(),
                namespace: namespace.to_vec(),
                name: name.to_owned(),
                base_location: base,
                requirements,
                record,
            })
            .await;
        // Only a refusal says the file is unused: a commit whose outcome is unknown (the
        // leader did not answer) may have made it the table's current file.
        if let Err(ObjectError::Catalog(_)) = &result {
            self.discard_metadata(bucket, &location).await;
        }
        result
    }

    pub(super) async fn list_tables(&self, call: &Call, bucket: &str, ns: &[String]) -> Answer {
        call.require("s3tables:ListTables", &warehouse_arn(bucket))?;
        self.require_namespace(bucket, ns).await?;
        let all = self.store.catalog_tables(bucket, ns).await?;
        let (tables, next) = page(call, all, |(name, _)| name.clone())?;
        let identifiers: Vec<Value> = tables
            .iter()
            .map(|(name, _)| json!({"namespace": ns, "name": name}))
            .collect();
        let mut answer = json!({ "identifiers": identifiers });
        if let Some(next) = next {
            answer["next-page-token"] = json!(next);
        }
        ok_json(&answer)
    }

    pub(super) async fn create_table(&self, call: &Call, bucket: &str, ns: &[String]) -> Answer {
        let request = body_json(&call.body)?;
        let name = table_name_of(&request)?;
        call.require("s3tables:CreateTable", &table_arn(bucket, ns, &name))?;
        let schema = request
            .get("schema")
            .ok_or_else(|| Failure::bad_request("a table needs a schema"))?;
        self.require_namespace(bucket, ns).await?;
        if self.store.catalog_table(bucket, ns, &name).await?.is_some() {
            return Err(table_exists(ns, &name));
        }
        let uuid = basalt_object::new_uuid();
        let location = match request.get("location").and_then(Value::as_str) {
            Some(given) => {
                key_in_bucket(bucket, given)?;
                given.trim_end_matches('/').to_owned()
            }
            // A table's own prefix, never another's: a table renamed away keeps its files
            // where a new table of the old name would otherwise put (and purge) its own.
            None => format!(
                "s3://{bucket}/{}/{name}-{}",
                ns.join("/"),
                uuid.replace('-', "")
            ),
        };
        call.require_on_location("s3:PutObject", bucket, &location)?;
        let properties = metadata::string_map(request.get("properties"), "properties")?;
        let metadata = TableMetadata::create(NewTable {
            location,
            uuid,
            schema,
            partition_spec: request.get("partition-spec"),
            write_order: request.get("write-order"),
            properties,
            now_ms: basalt_object::now_ms(),
        })?;
        if request.get("stage-create").and_then(Value::as_bool) == Some(true) {
            return load_result(None, &metadata);
        }
        let location = self.write_metadata(bucket, &metadata, 0).await?;
        self.swap(
            bucket,
            (ns, &name),
            None,
            Vec::new(),
            (location.clone(), &metadata),
        )
        .await?;
        load_result(Some(&location), &metadata)
    }

    pub(super) async fn load_table(
        &self,
        call: &Call,
        bucket: &str,
        ns: &[String],
        name: &str,
    ) -> Answer {
        call.require("s3tables:GetTable", &table_arn(bucket, ns, name))?;
        let record = self.require_table(bucket, ns, name).await?;
        let metadata = self
            .read_metadata(bucket, &record.metadata_location)
            .await?;
        load_result(Some(&record.metadata_location), &metadata)
    }

    pub(super) async fn table_exists(
        &self,
        call: &Call,
        bucket: &str,
        ns: &[String],
        name: &str,
    ) -> Answer {
        call.require("s3tables:GetTable", &table_arn(bucket, ns, name))?;
        self.require_table(bucket, ns, name).await?;
        no_content()
    }

    /// `CommitTableRequest`: the requirements are checked against the table as it is, the
    /// updates applied to its current metadata, and the new file swapped in by the state
    /// machine only if the requirements still hold there.
    pub(super) async fn commit_table(
        &self,
        call: &Call,
        bucket: &str,
        ns: &[String],
        name: &str,
    ) -> Answer {
        call.require("s3tables:UpdateTable", &table_arn(bucket, ns, name))?;
        let request = body_json(&call.body)?;
        let requirements = match request.get("requirements") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(metadata::requirement)
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(Failure::bad_request("requirements must be a list")),
        };
        let updates = match request.get("updates") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => return Err(Failure::bad_request("updates must be a list")),
        };
        for _ in 0..COMMIT_ATTEMPTS {
            let current = self.store.catalog_table(bucket, ns, name).await?;
            for requirement in &requirements {
                requirement
                    .check(current.as_ref().map(|t| &t.state))
                    .map_err(|m| ObjectError::Catalog(CatalogError::CommitFailed(m)))?;
            }
            let now_ms = basalt_object::now_ms();
            let mut session = Session::new(now_ms);
            let (base_location, mut metadata, version) = match &current {
                Some(record) => {
                    let base = self
                        .read_metadata(bucket, &record.metadata_location)
                        .await?;
                    let version =
                        metadata::file_version(&record.metadata_location).map_or(1, |v| v + 1);
                    (
                        Some((record.metadata_location.clone(), base.clone())),
                        base,
                        version,
                    )
                }
                // A staged create (`assert-create`): the updates make the whole table.
                None if requirements.contains(&TableRequirement::Create) => {
                    call.require("s3tables:CreateTable", &table_arn(bucket, ns, name))?;
                    (None, TableMetadata::empty(now_ms), 0)
                }
                None => return Err(no_such_table(ns, name)),
            };
            for update in &updates {
                metadata.apply(update, &mut session)?;
            }
            if let Some((location, base)) = &base_location {
                if !session.changed {
                    return commit_response(location, base);
                }
                metadata.finish_commit(base, location, now_ms);
            }
            let table_location = metadata
                .location()
                .ok_or_else(|| Failure::bad_request("the table has no location"))?;
            let moved = base_location
                .as_ref()
                .is_none_or(|(_, base)| base.location() != Some(table_location));
            if moved {
                call.require_on_location("s3:PutObject", bucket, table_location)?;
            }
            metadata.finish_staged_create(base_location.is_none(), &session);
            metadata.state()?;
            let location = self.write_metadata(bucket, &metadata, version).await?;
            match self
                .swap(
                    bucket,
                    (ns, name),
                    base_location.map(|(l, _)| l),
                    requirements.clone(),
                    (location.clone(), &metadata),
                )
                .await
            {
                Ok(()) => return commit_response(&location, &metadata),
                Err(ObjectError::Catalog(CatalogError::CommitBaseMoved)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ObjectError::Catalog(CatalogError::CommitFailed(format!(
            "the table kept changing: {COMMIT_ATTEMPTS} attempts to commit failed"
        )))
        .into())
    }

    pub(super) async fn drop_table(
        &self,
        call: &Call,
        bucket: &str,
        ns: &[String],
        name: &str,
    ) -> Answer {
        let arn = table_arn(bucket, ns, name);
        call.require("s3tables:DeleteTable", &arn)?;
        let purge = query_param(&call.parts, "purgeRequested")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if purge {
            call.require("s3tables:PurgeTable", &arn)?;
        }
        let record = self.require_table(bucket, ns, name).await?;
        // What a purge deletes is settled (and allowed) before the table is dropped.
        let purged_prefix = if purge {
            let metadata = self
                .read_metadata(bucket, &record.metadata_location)
                .await?;
            let location = metadata
                .location()
                .ok_or_else(|| Failure::bad_request("the table has no location"))?;
            call.require_on_location("s3:DeleteObject", bucket, location)?;
            Some(format!(
                "{}/",
                key_in_bucket(bucket, location)?.trim_end_matches('/')
            ))
        } else {
            None
        };
        self.store
            .catalog_execute(CatalogCommand::DropTable {
                bucket: bucket.to_owned(),
                namespace: ns.to_vec(),
                name: name.to_owned(),
            })
            .await?;
        if let Some(prefix) = purged_prefix {
            let deleted = self.store.delete_prefix(bucket, &prefix).await?;
            tracing::info!(bucket, prefix, deleted, "purged a dropped table's files");
        }
        no_content()
    }

    pub(super) async fn register_table(&self, call: &Call, bucket: &str, ns: &[String]) -> Answer {
        let request = body_json(&call.body)?;
        let name = table_name_of(&request)?;
        call.require("s3tables:RegisterTable", &table_arn(bucket, ns, &name))?;
        let location = request
            .get("metadata-location")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::bad_request("register needs a metadata-location"))?
            .to_owned();
        let overwrite = request.get("overwrite").and_then(Value::as_bool) == Some(true);
        self.require_namespace(bucket, ns).await?;
        call.require_on_location("s3:GetObject", bucket, &location)?;
        let metadata = self.read_metadata(bucket, &location).await?;
        let table_location = metadata
            .location()
            .ok_or_else(|| Failure::bad_request("the metadata names no table location"))?;
        call.require_on_location("s3:PutObject", bucket, table_location)?;
        let base = match self.store.catalog_table(bucket, ns, &name).await? {
            Some(existing) if overwrite => Some(existing.metadata_location),
            Some(_) => {
                return Err(table_exists(ns, &name));
            }
            None => None,
        };
        let record = TableRecord {
            metadata_location: location.clone(),
            state: metadata.state()?,
        };
        self.store
            .catalog_execute(CatalogCommand::CommitTable {
                bucket: bucket.to_owned(),
                namespace: ns.to_vec(),
                name,
                base_location: base,
                requirements: Vec::new(),
                record,
            })
            .await?;
        load_result(Some(&location), &metadata)
    }

    pub(super) async fn rename_table(&self, call: &Call, bucket: &str) -> Answer {
        let request = body_json(&call.body)?;
        let from = table_identifier(request.get("source"))?;
        let to = table_identifier(request.get("destination"))?;
        call.require("s3tables:RenameTable", &table_arn(bucket, &from.0, &from.1))?;
        call.require("s3tables:RenameTable", &table_arn(bucket, &to.0, &to.1))?;
        self.store
            .catalog_execute(CatalogCommand::RenameTable {
                bucket: bucket.to_owned(),
                from,
                to,
            })
            .await?;
        no_content()
    }
}

fn commit_response(location: &str, metadata: &TableMetadata) -> Answer {
    ok_json(&json!({
        "metadata-location": location,
        "metadata": Value::Object(metadata.0.clone()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_must_be_in_the_warehouse_bucket() {
        assert_eq!(key_in_bucket("w", "s3://w/db/t").unwrap(), "db/t");
        assert_eq!(key_in_bucket("w", "s3a://w/db/t").unwrap(), "db/t");
        assert!(key_in_bucket("w", "s3://other/db/t").is_err());
        assert!(key_in_bucket("w", "s3://wx/db/t").is_err());
        assert!(key_in_bucket("w", "s3://w/").is_err());
        assert!(key_in_bucket("w", "file:///etc").is_err());
    }
}
