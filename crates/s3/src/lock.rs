//! Object lock on the wire: retention headers, PutObjectRetention, PutObjectLegalHold and the
//! bucket's object-lock configuration.

use basalt_object::{
    DefaultRetention, ObjectLock, ObjectLockConfig, Retention, RetentionMode, now_ms,
};
use s3s::dto::{
    self, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetentionMode, Timestamp,
};
use s3s::{S3Result, s3_error};

use crate::convert::{millis, timestamp};

fn mode_of(name: &str) -> S3Result<RetentionMode> {
    match name {
        "GOVERNANCE" => Ok(RetentionMode::Governance),
        "COMPLIANCE" => Ok(RetentionMode::Compliance),
        other => Err(s3_error!(
            InvalidArgument,
            "Unknown retention mode {other}: use GOVERNANCE or COMPLIANCE"
        )),
    }
}

fn mode_name(mode: RetentionMode) -> &'static str {
    match mode {
        RetentionMode::Governance => "GOVERNANCE",
        RetentionMode::Compliance => "COMPLIANCE",
    }
}

fn legal_hold_of(status: &str) -> S3Result<bool> {
    match status {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        other => Err(s3_error!(
            InvalidArgument,
            "Unknown legal hold status {other}: use ON or OFF"
        )),
    }
}

/// A retention as a client asks for it: a mode and a date that must lie in the future.
fn retention_of(mode: &str, until: &Timestamp) -> S3Result<Retention> {
    let until_ms = millis(until);
    if until_ms <= now_ms() {
        return Err(s3_error!(
            InvalidArgument,
            "The retain until date must be in the future!"
        ));
    }
    Ok(Retention {
        mode: mode_of(mode)?,
        until_ms,
    })
}

/// The `x-amz-object-lock-*` headers of PutObject, CopyObject and CreateMultipartUpload.
pub(crate) fn lock_of_headers(
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<ObjectLock> {
    let retention = match (mode, until) {
        (Some(mode), Some(until)) => Some(retention_of(mode.as_str(), until)?),
        (None, None) => None,
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            ));
        }
    };
    Ok(ObjectLock {
        retention,
        legal_hold: legal_hold
            .map(|h| legal_hold_of(h.as_str()))
            .transpose()?
            .unwrap_or(false),
    })
}

/// The lock fields GET and HEAD report.
pub(crate) struct LockFields {
    pub mode: Option<ObjectLockMode>,
    pub until: Option<Timestamp>,
    pub legal_hold: Option<ObjectLockLegalHoldStatus>,
}

pub(crate) fn lock_fields(lock: &ObjectLock) -> LockFields {
    LockFields {
        mode: lock
            .retention
            .map(|r| ObjectLockMode::from_static(mode_name(r.mode))),
        until: lock.retention.map(|r| timestamp(r.until_ms)),
        legal_hold: lock
            .legal_hold
            .then(|| ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON)),
    }
}

/// PutObjectRetention's body: a mode and date, or an empty retention that removes it.
pub(crate) fn retention_of_body(
    retention: Option<dto::ObjectLockRetention>,
) -> S3Result<Option<Retention>> {
    let Some(r) = retention else {
        return Ok(None);
    };
    match (r.mode, r.retain_until_date) {
        (Some(mode), Some(until)) => {
            mode_of_body(mode.as_str())?;
            Ok(Some(retention_of(mode.as_str(), &until)?))
        }
        (None, None) => Ok(None),
        _ => Err(s3_error!(
            MalformedXML,
            "a retention needs both Mode and RetainUntilDate"
        )),
    }
}

pub(crate) fn retention_dto(retention: Retention) -> dto::ObjectLockRetention {
    dto::ObjectLockRetention {
        mode: Some(ObjectLockRetentionMode::from_static(mode_name(
            retention.mode,
        ))),
        retain_until_date: Some(timestamp(retention.until_ms)),
    }
}

pub(crate) fn legal_hold_of_body(hold: Option<dto::ObjectLockLegalHold>) -> S3Result<bool> {
    match hold.and_then(|h| h.status) {
        Some(status) => legal_hold_of(status.as_str())
            .map_err(|_| s3_error!(MalformedXML, "a legal hold Status is ON or OFF")),
        None => Err(s3_error!(MalformedXML, "a legal hold needs a Status")),
    }
}

/// A retention mode in an XML body: anything but the two modes is malformed XML, as on AWS
/// (a header with another value is an invalid argument instead).
fn mode_of_body(name: &str) -> S3Result<RetentionMode> {
    mode_of(name).map_err(|_| s3_error!(MalformedXML, "Mode is GOVERNANCE or COMPLIANCE"))
}

pub(crate) fn legal_hold_dto(on: bool) -> dto::ObjectLockLegalHold {
    dto::ObjectLockLegalHold {
        status: Some(ObjectLockLegalHoldStatus::from_static(if on {
            ObjectLockLegalHoldStatus::ON
        } else {
            ObjectLockLegalHoldStatus::OFF
        })),
    }
}

pub(crate) fn lock_config_of(
    config: Option<dto::ObjectLockConfiguration>,
) -> S3Result<ObjectLockConfig> {
    let config =
        config.ok_or_else(|| s3_error!(MalformedXML, "missing ObjectLockConfiguration"))?;
    if config.object_lock_enabled.as_ref().map(|e| e.as_str()) != Some("Enabled") {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
    }
    let default_retention = match config.rule.and_then(|r| r.default_retention) {
        None => None,
        Some(d) => {
            let mode = d
                .mode
                .ok_or_else(|| s3_error!(MalformedXML, "a default retention needs a Mode"))?;
            let positive = |n: Option<i32>, what: &str| -> S3Result<Option<u32>> {
                match n {
                    None => Ok(None),
                    Some(n) if n > 0 => Ok(Some(n as u32)),
                    Some(_) => Err(crate::error::custom(
                        "InvalidRetentionPeriod",
                        http::StatusCode::BAD_REQUEST,
                        format!(
                            "Default retention period must be a positive integer value for {what}"
                        ),
                    )),
                }
            };
            let (days, years) = (positive(d.days, "Days")?, positive(d.years, "Years")?);
            if days.is_some() == years.is_some() {
                return Err(s3_error!(
                    MalformedXML,
                    "a default retention needs either Days or Years"
                ));
            }
            Some(DefaultRetention {
                mode: mode_of_body(mode.as_str())?,
                days,
                years,
            })
        }
    };
    Ok(ObjectLockConfig { default_retention })
}

pub(crate) fn lock_config_dto(config: &ObjectLockConfig) -> dto::ObjectLockConfiguration {
    dto::ObjectLockConfiguration {
        object_lock_enabled: Some(dto::ObjectLockEnabled::from_static(
            dto::ObjectLockEnabled::ENABLED,
        )),
        rule: config.default_retention.map(|d| dto::ObjectLockRule {
            default_retention: Some(dto::DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from_static(mode_name(d.mode))),
                days: d.days.map(|n| n as i32),
                years: d.years.map(|n| n as i32),
            }),
        }),
    }
}
