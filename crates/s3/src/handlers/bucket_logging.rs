//! Put/GetBucketLogging: where a bucket's server access logs go (`access_log` writes them).

use basalt_object::BucketLogging;
use http::StatusCode;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use crate::error::{OrS3, custom};

use super::BasaltS3;

fn invalid_target(message: &str) -> s3s::S3Error {
    custom(
        "InvalidTargetBucketForLogging",
        StatusCode::BAD_REQUEST,
        message,
    )
}

impl BasaltS3 {
    pub(super) async fn put_bucket_logging(
        &self,
        req: S3Request<PutBucketLoggingInput>,
    ) -> S3Result<S3Response<PutBucketLoggingOutput>> {
        let input = req.input;
        let owner = self.bucket_owner(&input.bucket).await?;
        let config = match input.bucket_logging_status.logging_enabled {
            None => None,
            Some(enabled) => {
                if enabled
                    .target_grants
                    .as_ref()
                    .is_some_and(|g| !g.is_empty())
                {
                    return Err(s3_error!(
                        NotImplemented,
                        "TargetGrants are not supported: grant access to the logs through the target bucket's policy"
                    ));
                }
                let target = enabled.target_bucket;
                match self.store.bucket(&target).await {
                    Ok(_) => {}
                    Err(basalt_object::ObjectError::NoSuchBucket) => {
                        return Err(invalid_target(
                            "The target bucket for logging does not exist",
                        ));
                    }
                    Err(e) => return Err(crate::error::to_s3(e)),
                }
                if self.bucket_owner(&target).await?.id != owner.id {
                    return Err(invalid_target(
                        "The owner for the bucket to be logged and the target bucket must be the same.",
                    ));
                }
                let partitioned_by_event_time = match enabled
                    .target_object_key_format
                    .and_then(|format| format.partitioned_prefix)
                {
                    None => None,
                    Some(p) => match p.partition_date_source.as_ref().map(|s| s.as_str()) {
                        Some(PartitionDateSource::EVENT_TIME) => Some(true),
                        None | Some(PartitionDateSource::DELIVERY_TIME) => Some(false),
                        Some(other) => {
                            return Err(s3_error!(
                                MalformedXML,
                                "PartitionDateSource must be EventTime or DeliveryTime, not {other}"
                            ));
                        }
                    },
                };
                Some(BucketLogging {
                    target_bucket: target,
                    target_prefix: enabled.target_prefix,
                    partitioned_by_event_time,
                })
            }
        };
        self.store
            .set_bucket_logging(&input.bucket, config)
            .await
            .or_s3()?;
        Ok(S3Response::new(PutBucketLoggingOutput {}))
    }

    pub(super) async fn get_bucket_logging(
        &self,
        req: S3Request<GetBucketLoggingInput>,
    ) -> S3Result<S3Response<GetBucketLoggingOutput>> {
        let config = self.store.bucket_logging(&req.input.bucket).await.or_s3()?;
        Ok(S3Response::new(GetBucketLoggingOutput {
            logging_enabled: config.map(|c| LoggingEnabled {
                target_bucket: c.target_bucket,
                target_prefix: c.target_prefix,
                target_grants: None,
                target_object_key_format: c.partitioned_by_event_time.map(|event_time| {
                    TargetObjectKeyFormat {
                        partitioned_prefix: Some(PartitionedPrefix {
                            partition_date_source: Some(PartitionDateSource::from_static(
                                if event_time {
                                    PartitionDateSource::EVENT_TIME
                                } else {
                                    PartitionDateSource::DELIVERY_TIME
                                },
                            )),
                        }),
                        simple_prefix: None,
                    }
                }),
            }),
        }))
    }
}
