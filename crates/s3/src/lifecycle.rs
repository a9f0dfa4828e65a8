//! Lifecycle configurations on the wire: AWS's checks, and the rules Basalt applies.

use std::collections::HashSet;

use basalt_object::{LifecycleRule, MAX_LIFECYCLE_RULES};
use s3s::dto::{self, ExpirationStatus};
use s3s::{S3Result, s3_error};

use crate::convert::{millis, tag_set, tags_of_set, timestamp};

const MAX_ID_LEN: usize = 255;
const DAY_MS: i64 = 86_400_000;

fn positive(n: Option<i32>, what: &str) -> S3Result<Option<u32>> {
    match n {
        None => Ok(None),
        Some(n) if n > 0 => Ok(Some(n as u32)),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "'{what}' for lifecycle must be a positive integer"
        )),
    }
}

/// A rule id as AWS makes them for rules given without one: 48 random base64 characters.
fn generated_rule_id() -> String {
    let bytes: [u8; 36] = rand::random();
    base64_simd::STANDARD.encode_to_string(bytes)
}

fn rule_of(rule: dto::LifecycleRule) -> S3Result<LifecycleRule> {
    if rule
        .id
        .as_ref()
        .is_some_and(|id| id.chars().count() > MAX_ID_LEN)
    {
        return Err(s3_error!(
            InvalidArgument,
            "ID length should not exceed allowed limit of 255"
        ));
    }
    let enabled = match rule.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "Status must be Enabled or Disabled"
            ));
        }
    };
    if rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule
            .noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            InvalidStorageClass,
            "Basalt has one storage class (STANDARD): there is nothing to transition to"
        ));
    }
    let mut out = LifecycleRule {
        // A rule without an ID gets one, as on AWS.
        id: Some(rule.id.unwrap_or_else(generated_rule_id)),
        enabled,
        ..Default::default()
    };
    match (rule.filter, rule.prefix) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(
                MalformedXML,
                "a rule may have a Filter or a Prefix, not both"
            ));
        }
        (None, prefix) => out.prefix = prefix.unwrap_or_default(),
        (Some(filter), None) => {
            out.has_filter = true;
            if filter.object_size_greater_than.is_some()
                || filter.object_size_less_than.is_some()
                || filter.and.as_ref().is_some_and(|a| {
                    a.object_size_greater_than.is_some() || a.object_size_less_than.is_some()
                })
            {
                return Err(s3_error!(
                    NotImplemented,
                    "object size filters are not supported"
                ));
            }
            let given = [
                filter.prefix.is_some(),
                filter.tag.is_some(),
                filter.and.is_some(),
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                return Err(s3_error!(
                    MalformedXML,
                    "a Filter holds one of Prefix, Tag or And"
                ));
            }
            if let Some(prefix) = filter.prefix {
                out.prefix = prefix;
            }
            if let Some(tag) = filter.tag {
                out.tags = tags_of_set(vec![tag])?;
            }
            if let Some(and) = filter.and {
                out.prefix = and.prefix.unwrap_or_default();
                out.tags = tags_of_set(and.tags.unwrap_or_default())?;
            }
        }
    }
    if let Some(expiration) = rule.expiration {
        let marker = expiration.expired_object_delete_marker.unwrap_or(false);
        let given = [
            expiration.days.is_some(),
            expiration.date.is_some(),
            expiration.expired_object_delete_marker.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(s3_error!(
                MalformedXML,
                "an Expiration holds one of Days, Date or ExpiredObjectDeleteMarker"
            ));
        }
        out.expiration_days = positive(expiration.days, "Days")?;
        if let Some(date) = expiration.date {
            let ms = millis(&date);
            if ms % DAY_MS != 0 {
                return Err(s3_error!(InvalidArgument, "'Date' must be at midnight GMT"));
            }
            out.expiration_date_ms = Some(ms);
        }
        if marker && !out.tags.is_empty() {
            return Err(s3_error!(
                InvalidArgument,
                "ExpiredObjectDeleteMarker cannot be specified with object tags"
            ));
        }
        out.expired_object_delete_marker = marker;
    }
    if let Some(noncurrent) = rule.noncurrent_version_expiration {
        out.noncurrent_days = Some(
            positive(noncurrent.noncurrent_days, "NoncurrentDays")?.ok_or_else(|| {
                s3_error!(
                    MalformedXML,
                    "NoncurrentVersionExpiration needs NoncurrentDays"
                )
            })?,
        );
        out.newer_noncurrent_versions = match noncurrent.newer_noncurrent_versions {
            None => None,
            Some(n) if (1..=100).contains(&n) => Some(n as u32),
            Some(_) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "NewerNoncurrentVersions must be between 1 and 100"
                ));
            }
        };
    }
    if let Some(abort) = rule.abort_incomplete_multipart_upload {
        if !out.tags.is_empty() {
            return Err(s3_error!(
                InvalidRequest,
                "AbortIncompleteMultipartUpload cannot be specified with Tags."
            ));
        }
        out.abort_incomplete_days = Some(
            positive(abort.days_after_initiation, "DaysAfterInitiation")?.ok_or_else(|| {
                s3_error!(
                    MalformedXML,
                    "AbortIncompleteMultipartUpload needs DaysAfterInitiation"
                )
            })?,
        );
    }
    if out.expiration_days.is_none()
        && out.expiration_date_ms.is_none()
        && !out.expired_object_delete_marker
        && out.noncurrent_days.is_none()
        && out.abort_incomplete_days.is_none()
    {
        return Err(s3_error!(
            InvalidRequest,
            "At least one action needs to be specified in a rule"
        ));
    }
    Ok(out)
}

/// Checks a configuration as AWS does and converts it; nothing is stored if any rule fails.
pub(crate) fn rules_of(
    config: Option<dto::BucketLifecycleConfiguration>,
) -> S3Result<Vec<LifecycleRule>> {
    let rules = config.map(|c| c.rules).unwrap_or_default();
    if rules.is_empty() || rules.len() > MAX_LIFECYCLE_RULES {
        return Err(s3_error!(
            MalformedXML,
            "a lifecycle configuration holds 1 to 1000 rules"
        ));
    }
    let mut ids = HashSet::new();
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        let rule = rule_of(rule)?;
        if let Some(id) = &rule.id
            && !ids.insert(id.clone())
        {
            return Err(s3_error!(
                InvalidArgument,
                "Rule ID must be unique. Found same ID for more than one rule"
            ));
        }
        out.push(rule);
    }
    Ok(out)
}

pub(crate) fn rules_dto(rules: &[LifecycleRule]) -> Vec<dto::LifecycleRule> {
    rules.iter().map(rule_dto).collect()
}

fn rule_dto(rule: &LifecycleRule) -> dto::LifecycleRule {
    let (filter, prefix) = if rule.has_filter {
        let mut filter = dto::LifecycleRuleFilter::default();
        match rule.tags.as_slice() {
            [] => filter.prefix = Some(rule.prefix.clone()),
            [_] if rule.prefix.is_empty() => {
                filter.tag = tag_set(&rule.tags).into_iter().next();
            }
            _ => {
                filter.and = Some(dto::LifecycleRuleAndOperator {
                    prefix: (!rule.prefix.is_empty()).then(|| rule.prefix.clone()),
                    tags: Some(tag_set(&rule.tags)),
                    ..Default::default()
                });
            }
        }
        (Some(filter), None)
    } else {
        (None, Some(rule.prefix.clone()))
    };
    let expiration = (rule.expiration_days.is_some()
        || rule.expiration_date_ms.is_some()
        || rule.expired_object_delete_marker)
        .then(|| dto::LifecycleExpiration {
            days: rule.expiration_days.map(|d| d as i32),
            date: rule.expiration_date_ms.map(timestamp),
            expired_object_delete_marker: rule.expired_object_delete_marker.then_some(true),
        });
    dto::LifecycleRule {
        id: rule.id.clone(),
        status: ExpirationStatus::from_static(if rule.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        filter,
        prefix,
        expiration,
        noncurrent_version_expiration: rule.noncurrent_days.map(|d| {
            dto::NoncurrentVersionExpiration {
                noncurrent_days: Some(d as i32),
                newer_noncurrent_versions: rule.newer_noncurrent_versions.map(|n| n as i32),
            }
        }),
        abort_incomplete_multipart_upload: rule.abort_incomplete_days.map(|d| {
            dto::AbortIncompleteMultipartUpload {
                days_after_initiation: Some(d as i32),
            }
        }),
        transitions: None,
        noncurrent_version_transitions: None,
    }
}

/// The `x-amz-expiration` of an object's current version: the first enabled rule with an
/// expiration that matches its key and tags, as `expiry-date="<HTTP date>", rule-id="<id>"`.
/// An age rule's date is the version's time plus the days, rounded up to the next midnight
/// UTC, as AWS announces it.
pub(crate) fn expiration_of(
    rules: &[LifecycleRule],
    key: &str,
    record: &basalt_object::ObjectRecord,
) -> Option<String> {
    let rule = rules.iter().find(|r| {
        r.enabled
            && (r.expiration_days.is_some() || r.expiration_date_ms.is_some())
            && key.starts_with(&r.prefix)
            && r.tags.iter().all(|t| record.details.tags.contains(t))
    })?;
    let expires_ms = match (rule.expiration_days, rule.expiration_date_ms) {
        (Some(days), _) => {
            let due = record.summary.last_modified_ms + i64::from(days) * DAY_MS;
            due.div_euclid(DAY_MS) * DAY_MS + if due % DAY_MS == 0 { 0 } else { DAY_MS }
        }
        (None, Some(date)) => date,
        (None, None) => return None,
    };
    let date = time::OffsetDateTime::from_unix_timestamp(expires_ms.div_euclid(1000)).ok()?;
    let date = date.format(crate::convert::HTTP_DATE).ok()?;
    Some(format!(
        "expiry-date=\"{date}\", rule-id=\"{}\"",
        rule.id.as_deref().unwrap_or_default()
    ))
}
