//! The lifecycle worker: applies each bucket's lifecycle rules (expiration of current versions
//! by age or date, of noncurrent versions by the time since they became noncurrent, removal of
//! expired delete markers, and abort of stale multipart uploads). It deletes only through
//! ordinary conditional commands, so a version overwritten meanwhile is left alone, and the
//! state machine refuses versions under object lock (checked against the real clock, even when
//! the rules are evaluated at a later instant through the admin API).

use std::time::Duration;

use basalt_meta::{Command, LifecycleRule, ObjectSummary, VersionEntry};
use serde::{Deserialize, Serialize};

use crate::{DeleteRequest, ObjectError, ObjectStore, now_ms};

const PAGE: usize = 1000;
pub const DAY: Duration = Duration::from_secs(86_400);

/// What one lifecycle run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LifecycleReport {
    pub started_ms: i64,
    pub finished_ms: i64,
    /// The instant the rules were evaluated at (later than `started_ms` when the admin API
    /// asked for a run in the future).
    pub evaluated_at_ms: i64,
    pub buckets: u64,
    pub versions_scanned: u64,
    pub current_expired: u64,
    pub noncurrent_expired: u64,
    pub delete_markers_removed: u64,
    pub uploads_aborted: u64,
    /// Versions a rule selected that object lock protects.
    pub skipped_locked: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LifecycleStatus {
    /// How long a lifecycle "day" is: 86,400 seconds but in tests.
    pub day_seconds: f64,
    /// Time between runs; `None` when the worker is off.
    pub interval_seconds: Option<u64>,
    pub running: bool,
    pub last: Option<LifecycleReport>,
}

/// When the lifecycle worker runs and how long its days are.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleSchedule {
    pub interval: Option<Duration>,
    pub day: Duration,
}

impl Default for LifecycleSchedule {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(3600)),
            day: DAY,
        }
    }
}

/// A deletion a rule asks for.
enum Action {
    ExpireCurrent {
        key: String,
        modified_ms: i64,
    },
    ExpireNoncurrent {
        key: String,
        version_id: String,
        modified_ms: i64,
    },
    RemoveMarker {
        key: String,
    },
}

/// The walk through one key's versions, newest first.
struct KeyWalk {
    key: String,
    /// When the version just seen was written: when the next older one became noncurrent.
    newer_modified_ms: i64,
    noncurrent_seen: u32,
    marker_to_remove: bool,
}

impl ObjectStore {
    /// Starts the periodic lifecycle worker. Call once, inside the runtime.
    pub fn start_lifecycle(&self, schedule: LifecycleSchedule) {
        {
            let mut status = self.maintenance.status();
            status.lifecycle.day_seconds = schedule.day.as_secs_f64();
            status.lifecycle.interval_seconds = schedule.interval.map(|i| i.as_secs());
        }
        let Some(interval) = schedule.interval else {
            return;
        };
        let this = self.clone();
        let restarts = self.maintenance.restarts.clone();
        crate::supervisor::supervise("lifecycle", restarts, move || {
            let this = this.clone();
            async move {
                loop {
                    tokio::time::sleep(interval).await;
                    if !this.runs_background() {
                        continue;
                    }
                    match this.run_lifecycle(now_ms()).await {
                        Ok(report) => tracing::info!(?report, "lifecycle run finished"),
                        Err(e) => tracing::warn!(error = %e, "lifecycle run failed"),
                    }
                }
            }
        });
    }

    /// Applies every bucket's lifecycle rules as of `at_ms`. `Busy` if a run is going on.
    pub async fn run_lifecycle(&self, at_ms: i64) -> Result<LifecycleReport, ObjectError> {
        let day_ms = {
            let mut status = self.maintenance.status();
            if status.lifecycle.running {
                return Err(ObjectError::Busy("a lifecycle run is in progress".into()));
            }
            status.lifecycle.running = true;
            if status.lifecycle.day_seconds <= 0.0 {
                status.lifecycle.day_seconds = DAY.as_secs_f64();
            }
            (status.lifecycle.day_seconds * 1000.0) as i64
        };
        let mut report = LifecycleReport {
            started_ms: now_ms(),
            evaluated_at_ms: at_ms,
            ..Default::default()
        };
        let result = self.apply_lifecycle(at_ms, day_ms, &mut report).await;
        report.finished_ms = now_ms();
        let mut status = self.maintenance.status();
        status.lifecycle.running = false;
        status.lifecycle.last = Some(report.clone());
        result.map(|()| report)
    }

    async fn apply_lifecycle(
        &self,
        at_ms: i64,
        day_ms: i64,
        report: &mut LifecycleReport,
    ) -> Result<(), ObjectError> {
        for (bucket, _) in self.meta.list_buckets().await? {
            let rules: Vec<LifecycleRule> = match self.meta.get_lifecycle(&bucket).await {
                Ok(Some(rules)) => rules.into_iter().filter(|r| r.enabled).collect(),
                _ => continue,
            };
            if rules.is_empty() {
                continue;
            }
            report.buckets += 1;
            self.abort_stale_uploads(&bucket, &rules, at_ms, day_ms, report)
                .await?;
            self.expire_versions(&bucket, &rules, at_ms, day_ms, report)
                .await?;
        }
        Ok(())
    }

    async fn abort_stale_uploads(
        &self,
        bucket: &str,
        rules: &[LifecycleRule],
        at_ms: i64,
        day_ms: i64,
        report: &mut LifecycleReport,
    ) -> Result<(), ObjectError> {
        for rule in rules {
            let Some(days) = rule.abort_incomplete_days else {
                continue;
            };
            let mut marker: Option<(String, Option<String>)> = None;
            loop {
                let page = self
                    .meta
                    .list_uploads(
                        bucket,
                        &rule.prefix,
                        None,
                        marker.as_ref().map(|m| m.0.as_str()),
                        marker.as_ref().and_then(|m| m.1.as_deref()),
                        PAGE,
                    )
                    .await?;
                for upload in &page.uploads {
                    if upload.record.initiated_ms + i64::from(days) * day_ms <= at_ms {
                        match self
                            .abort_upload(bucket, &upload.key, &upload.upload_id)
                            .await
                        {
                            Ok(()) => report.uploads_aborted += 1,
                            Err(ObjectError::NoSuchUpload) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, bucket, key = upload.key, "lifecycle abort failed");
                                report.errors += 1;
                            }
                        }
                    }
                }
                if !page.is_truncated {
                    break;
                }
                marker = page.next_marker;
            }
        }
        Ok(())
    }

    async fn expire_versions(
        &self,
        bucket: &str,
        rules: &[LifecycleRule],
        at_ms: i64,
        day_ms: i64,
        report: &mut LifecycleReport,
    ) -> Result<(), ObjectError> {
        let mut marker: Option<(String, Option<String>)> = None;
        let mut walk: Option<KeyWalk> = None;
        // The action on a page's last entry waits for the next page to be listed: the page
        // resumes after that version, so it must still exist when the listing continues.
        let mut held: Option<Action> = None;
        loop {
            let page = self
                .meta
                .list_versions(
                    bucket,
                    "",
                    None,
                    marker.as_ref().map(|m| m.0.as_str()),
                    marker.as_ref().and_then(|m| m.1.as_deref()),
                    PAGE,
                )
                .await?;
            if let Some(action) = held.take() {
                self.apply_action(bucket, action, report).await;
            }
            let count = page.entries.len();
            for (i, entry) in page.entries.into_iter().enumerate() {
                let VersionEntry::Version {
                    key,
                    summary,
                    is_latest,
                } = entry
                else {
                    continue;
                };
                report.versions_scanned += 1;
                if walk.as_ref().is_none_or(|w| w.key != key) {
                    if let Some(done) = walk.take()
                        && done.marker_to_remove
                    {
                        self.apply_action(bucket, Action::RemoveMarker { key: done.key }, report)
                            .await;
                    }
                    walk = Some(KeyWalk {
                        key: key.clone(),
                        newer_modified_ms: summary.last_modified_ms,
                        noncurrent_seen: 0,
                        marker_to_remove: false,
                    });
                }
                let Some(state) = walk.as_mut() else {
                    continue;
                };
                let action = self
                    .decide(
                        bucket,
                        rules,
                        &key,
                        &summary,
                        is_latest,
                        state,
                        (at_ms, day_ms),
                    )
                    .await;
                state.newer_modified_ms = summary.last_modified_ms;
                if !is_latest {
                    state.noncurrent_seen += 1;
                }
                match action {
                    Some(a) if i + 1 == count && page.is_truncated => held = Some(a),
                    Some(a) => self.apply_action(bucket, a, report).await,
                    None => {}
                }
            }
            if !page.is_truncated {
                break;
            }
            marker = page.next_marker;
        }
        if let Some(action) = held {
            self.apply_action(bucket, action, report).await;
        }
        if let Some(done) = walk
            && done.marker_to_remove
        {
            self.apply_action(bucket, Action::RemoveMarker { key: done.key }, report)
                .await;
        }
        Ok(())
    }

    /// Which action, if any, the rules ask for on one version.
    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &self,
        bucket: &str,
        rules: &[LifecycleRule],
        key: &str,
        summary: &ObjectSummary,
        is_latest: bool,
        walk: &mut KeyWalk,
        (at_ms, day_ms): (i64, i64),
    ) -> Option<Action> {
        let mut tags = None;
        for rule in rules {
            if !key.starts_with(&rule.prefix) {
                continue;
            }
            if !rule.tags.is_empty() {
                if summary.delete_marker {
                    continue;
                }
                if tags.is_none() {
                    tags = self
                        .meta
                        .get_object_version(bucket, key, summary.version_name())
                        .await
                        .ok()
                        .flatten()
                        .map(|r| r.details.tags);
                }
                let has_all = tags
                    .as_ref()
                    .is_some_and(|t| rule.tags.iter().all(|wanted| t.contains(wanted)));
                if !has_all {
                    continue;
                }
            }
            if is_latest && summary.delete_marker {
                if rule.expired_object_delete_marker {
                    walk.marker_to_remove = true;
                }
                continue;
            }
            if is_latest {
                let by_age = rule
                    .expiration_days
                    .is_some_and(|d| summary.last_modified_ms + i64::from(d) * day_ms <= at_ms);
                let by_date = rule.expiration_date_ms.is_some_and(|d| d <= at_ms);
                if by_age || by_date {
                    return Some(Action::ExpireCurrent {
                        key: key.to_owned(),
                        modified_ms: summary.last_modified_ms,
                    });
                }
                continue;
            }
            let Some(days) = rule.noncurrent_days else {
                continue;
            };
            let kept = rule.newer_noncurrent_versions.unwrap_or(0);
            if walk.noncurrent_seen >= kept
                && walk.newer_modified_ms + i64::from(days) * day_ms <= at_ms
            {
                return Some(Action::ExpireNoncurrent {
                    key: key.to_owned(),
                    version_id: summary.version_name().to_owned(),
                    modified_ms: summary.last_modified_ms,
                });
            }
        }
        None
    }

    async fn apply_action(&self, bucket: &str, action: Action, report: &mut LifecycleReport) {
        let result = match action {
            Action::ExpireCurrent { key, modified_ms } => self
                .delete_object_if(bucket, &key, DeleteRequest::default(), Some(modified_ms))
                .await
                .map(|d| {
                    if d.existed {
                        report.current_expired += 1;
                    }
                }),
            Action::ExpireNoncurrent {
                key,
                version_id,
                modified_ms,
            } => {
                let request = DeleteRequest {
                    version_id: Some(version_id),
                    bypass_governance: false,
                };
                self.delete_object_if(bucket, &key, request, Some(modified_ms))
                    .await
                    .map(|d| {
                        if d.existed {
                            report.noncurrent_expired += 1;
                        }
                    })
            }
            Action::RemoveMarker { key } => self
                .meta
                .execute(Command::RemoveExpiredDeleteMarker {
                    bucket: bucket.to_owned(),
                    key,
                })
                .await
                .map_err(ObjectError::from)
                .map(|outcome| {
                    if outcome.existed {
                        report.delete_markers_removed += 1;
                    }
                }),
        };
        match result {
            Ok(()) => {}
            Err(ObjectError::AccessDenied(_)) => report.skipped_locked += 1,
            Err(e) => {
                tracing::warn!(error = %e, bucket, "lifecycle action failed");
                report.errors += 1;
            }
        }
    }
}
