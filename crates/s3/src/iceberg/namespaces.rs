//! The catalog's namespace routes.

use basalt_object::{CatalogCommand, CatalogError, ObjectError};
use http::StatusCode;
use serde_json::{Value, json};

use super::{
    Answer, Call, Catalog, Failure, body_json, namespace_of_json, no_content, ok_json, query_param,
    warehouse_arn,
};

/// A page of a listing: at most `pageSize` names after `pageToken` (the last name of the page
/// before), and the token of the next page if there is one.
pub(super) fn page<T>(
    call: &Call,
    items: Vec<T>,
    name: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), Failure> {
    let size = match query_param(&call.parts, "pageSize") {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(Failure::bad_request("pageSize must be a positive integer")),
        },
    };
    let after = query_param(&call.parts, "pageToken").filter(|t| !t.is_empty());
    let mut items: Vec<T> = items
        .into_iter()
        .filter(|i| after.as_ref().is_none_or(|a| name(i) > *a))
        .collect();
    let next = match size {
        Some(n) if items.len() > n => {
            items.truncate(n);
            items.last().map(&name)
        }
        _ => None,
    };
    Ok((items, next))
}

/// An optional list of strings (absent or null: none).
fn string_list(value: Option<&Value>, what: &str) -> Result<Vec<String>, Failure> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        some => Ok(super::metadata::strings(some, what)?),
    }
}

impl Catalog {
    pub(super) async fn require_namespace(
        &self,
        bucket: &str,
        namespace: &[String],
    ) -> Result<basalt_object::NamespaceRecord, Failure> {
        self.store
            .catalog_namespace(bucket, namespace)
            .await?
            .ok_or_else(|| {
                ObjectError::Catalog(CatalogError::NoSuchNamespace(
                    basalt_object::namespace_name(namespace),
                ))
                .into()
            })
    }

    pub(super) async fn list_namespaces(&self, call: &Call, bucket: &str) -> Answer {
        call.require("s3tables:ListNamespaces", &warehouse_arn(bucket))?;
        let parent = match query_param(&call.parts, "parent").filter(|p| !p.is_empty()) {
            Some(p) => {
                // Already decoded as a query value: only split at the separator.
                let parent: Vec<String> = p.split('\u{1f}').map(str::to_owned).collect();
                for level in &parent {
                    basalt_object::check_catalog_name(level, "namespace")
                        .map_err(|e| Failure::bad_request(e.to_string()))?;
                }
                self.require_namespace(bucket, &parent).await?;
                parent
            }
            None => Vec::new(),
        };
        let all = self.store.catalog_namespaces(bucket, &parent).await?;
        let (namespaces, next) = page(call, all, |ns| ns.join("\u{1f}"))?;
        let mut answer = json!({ "namespaces": namespaces });
        if let Some(next) = next {
            answer["next-page-token"] = json!(next);
        }
        ok_json(&answer)
    }

    pub(super) async fn create_namespace(&self, call: &Call, bucket: &str) -> Answer {
        call.require("s3tables:CreateNamespace", &warehouse_arn(bucket))?;
        let request = body_json(&call.body)?;
        let namespace = namespace_of_json(request.get("namespace"))?;
        let properties = super::metadata::string_map(request.get("properties"), "properties")?;
        self.store
            .catalog_execute(CatalogCommand::CreateNamespace {
                bucket: bucket.to_owned(),
                namespace: namespace.clone(),
                properties: properties.clone(),
            })
            .await?;
        ok_json(&json!({"namespace": namespace, "properties": properties}))
    }

    pub(super) async fn load_namespace(
        &self,
        call: &Call,
        bucket: &str,
        namespace: &[String],
    ) -> Answer {
        call.require("s3tables:GetNamespace", &warehouse_arn(bucket))?;
        let record = self.require_namespace(bucket, namespace).await?;
        ok_json(&json!({"namespace": namespace, "properties": record.properties}))
    }

    pub(super) async fn namespace_exists(
        &self,
        call: &Call,
        bucket: &str,
        namespace: &[String],
    ) -> Answer {
        call.require("s3tables:GetNamespace", &warehouse_arn(bucket))?;
        self.require_namespace(bucket, namespace).await?;
        no_content()
    }

    pub(super) async fn drop_namespace(
        &self,
        call: &Call,
        bucket: &str,
        namespace: &[String],
    ) -> Answer {
        call.require("s3tables:DeleteNamespace", &warehouse_arn(bucket))?;
        self.store
            .catalog_execute(CatalogCommand::DropNamespace {
                bucket: bucket.to_owned(),
                namespace: namespace.to_vec(),
            })
            .await?;
        no_content()
    }

    pub(super) async fn update_namespace(
        &self,
        call: &Call,
        bucket: &str,
        namespace: &[String],
    ) -> Answer {
        call.require("s3tables:UpdateNamespaceProperties", &warehouse_arn(bucket))?;
        let request = body_json(&call.body)?;
        let removals = string_list(request.get("removals"), "removals")?;
        let updates = super::metadata::string_map(request.get("updates"), "updates")?;
        if let Some(both) = removals.iter().find(|k| updates.contains_key(*k)) {
            return Err(Failure::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UnprocessableEntityException",
                format!("{both} is both updated and removed"),
            ));
        }
        let before = self.require_namespace(bucket, namespace).await?;
        self.store
            .catalog_execute(CatalogCommand::UpdateNamespace {
                bucket: bucket.to_owned(),
                namespace: namespace.to_vec(),
                removals: removals.clone(),
                updates: updates.clone(),
            })
            .await?;
        let (removed, missing): (Vec<String>, Vec<String>) = removals
            .into_iter()
            .partition(|k| before.properties.contains_key(k));
        ok_json(&json!({
            "updated": updates.keys().collect::<Vec<_>>(),
            "removed": removed,
            "missing": missing,
        }))
    }
}
