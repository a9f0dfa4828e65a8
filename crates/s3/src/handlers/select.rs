//! SelectObjectContent: the request turned into a `basalt_select` query over the stored (and
//! opened) object, its events into S3's event stream. With `x-basalt-output-format: arrow`
//! the records are an Arrow IPC stream instead of the requested serialization.

use std::ops::Range;
use std::sync::Arc;

use basalt_object::{DataKey, ObjectRecord, ObjectStore};
use basalt_select as select;
use futures::StreamExt;
use futures::future::BoxFuture;
use http::StatusCode;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use crate::error::OrS3;
use crate::sse;

use super::BasaltS3;

/// The header that asks for Arrow output (Basalt's extension).
pub const OUTPUT_FORMAT_HEADER: &str = "x-basalt-output-format";

/// Queries a node runs at once: each holds a blocking thread for its whole scan, and the
/// reads it makes need blocking threads of their own, so they are kept well under the pool.
const SELECTS_AT_ONCE: usize = 8;
static SELECTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(SELECTS_AT_ONCE);

fn select_error(e: &select::SelectError) -> S3Error {
    let code = match e.code {
        "InternalError" => S3ErrorCode::InternalError,
        other => S3ErrorCode::Custom(other.into()),
    };
    let mut err = S3Error::with_message(code, e.message.clone());
    if !e.is_internal() {
        err.set_status_code(StatusCode::BAD_REQUEST);
    }
    err
}

fn refused(code: &'static str, message: impl Into<String>) -> S3Error {
    select_error(&select::SelectError::new(code, message))
}

/// A one-byte setting (a delimiter, a quote): AWS takes exactly one character.
fn one_byte(value: Option<&str>, default: u8, what: &str) -> S3Result<u8> {
    match value {
        None | Some("") => Ok(default),
        Some(v) if v.len() == 1 => Ok(v.as_bytes()[0]),
        Some(v) => Err(refused(
            "InvalidRequestParameter",
            format!("{what} must be one character, not {v:?}"),
        )),
    }
}

fn one_char(value: Option<&str>, default: char, what: &str) -> S3Result<char> {
    match value {
        None | Some("") => Ok(default),
        Some(v) if v.chars().count() == 1 => Ok(v.chars().next().unwrap_or(default)),
        Some(v) => Err(refused(
            "InvalidRequestParameter",
            format!("{what} must be one character, not {v:?}"),
        )),
    }
}

fn input_of(input: &InputSerialization) -> S3Result<(select::Input, select::Compression)> {
    let compression = match input.compression_type.as_ref().map(|c| c.as_str()) {
        None | Some("NONE") => select::Compression::None,
        Some("GZIP") => select::Compression::Gzip,
        Some("BZIP2") => select::Compression::Bzip2,
        Some(other) => {
            return Err(refused(
                "InvalidCompressionFormat",
                format!("CompressionType {other} is not supported: NONE, GZIP or BZIP2"),
            ));
        }
    };
    let format = match (&input.csv, &input.json, &input.parquet) {
        (Some(csv), None, None) => {
            let header = match csv.file_header_info.as_ref().map(|h| h.as_str()) {
                None | Some("NONE") => select::FileHeaderInfo::None,
                Some("USE") => select::FileHeaderInfo::Use,
                Some("IGNORE") => select::FileHeaderInfo::Ignore,
                Some(other) => {
                    return Err(refused(
                        "InvalidFileHeaderInfo",
                        format!("FileHeaderInfo {other} is not USE, IGNORE or NONE"),
                    ));
                }
            };
            let record_delimiter = match csv.record_delimiter.as_deref() {
                None | Some("") | Some("\n") | Some("\r\n") => b'\n',
                other => one_byte(other, b'\n', "RecordDelimiter")?,
            };
            select::Input::Csv(select::CsvInput {
                header,
                field_delimiter: one_byte(csv.field_delimiter.as_deref(), b',', "FieldDelimiter")?,
                quote: one_byte(csv.quote_character.as_deref(), b'"', "QuoteCharacter")?,
                quote_escape: one_byte(
                    csv.quote_escape_character.as_deref(),
                    b'"',
                    "QuoteEscapeCharacter",
                )?,
                // AWS's default comment character is `#`.
                comment: match csv.comments.as_deref() {
                    Some("") => None,
                    other => Some(one_byte(other, b'#', "Comments")?),
                },
                record_delimiter,
            })
        }
        (None, Some(json), None) => {
            let document = match json.type_.as_ref().map(|t| t.as_str()) {
                None | Some("DOCUMENT") => true,
                Some("LINES") => false,
                Some(other) => {
                    return Err(refused(
                        "InvalidJsonType",
                        format!("JSON Type {other} is not DOCUMENT or LINES"),
                    ));
                }
            };
            select::Input::Json { document }
        }
        (None, None, Some(_)) => select::Input::Parquet,
        (None, None, None) => {
            return Err(refused(
                "MissingRequiredParameter",
                "InputSerialization names one of CSV, JSON or Parquet",
            ));
        }
        _ => {
            return Err(refused(
                "ObjectSerializationConflict",
                "InputSerialization names only one of CSV, JSON or Parquet",
            ));
        }
    };
    Ok((format, compression))
}

fn output_of(output: &OutputSerialization) -> S3Result<select::Output> {
    Ok(match (&output.csv, &output.json) {
        (Some(csv), None) => select::Output::Csv(select::CsvOutput {
            field_delimiter: one_char(csv.field_delimiter.as_deref(), ',', "FieldDelimiter")?
                .to_string(),
            quote: one_char(csv.quote_character.as_deref(), '"', "QuoteCharacter")?,
            quote_escape: one_char(
                csv.quote_escape_character.as_deref(),
                '"',
                "QuoteEscapeCharacter",
            )?,
            quote_fields: match csv.quote_fields.as_ref().map(|q| q.as_str()) {
                None | Some("ASNEEDED") => select::QuoteFields::AsNeeded,
                Some("ALWAYS") => select::QuoteFields::Always,
                Some(other) => {
                    return Err(refused(
                        "InvalidQuoteFields",
                        format!("QuoteFields {other} is not ALWAYS or ASNEEDED"),
                    ));
                }
            },
            record_delimiter: match csv.record_delimiter.as_deref() {
                None | Some("") => "\n".to_owned(),
                Some(d) => d.to_owned(),
            },
        }),
        (None, Some(json)) => select::Output::Json(select::JsonOutput {
            record_delimiter: match json.record_delimiter.as_deref() {
                None | Some("") => "\n".to_owned(),
                Some(d) => d.to_owned(),
            },
        }),
        _ => {
            return Err(refused(
                "MissingRequiredParameter",
                "OutputSerialization names one of CSV or JSON",
            ));
        }
    })
}

/// The stored object, opened, as the query reads it.
struct StoredObject {
    store: ObjectStore,
    bucket: String,
    key: String,
    record: Arc<ObjectRecord>,
    opened: Option<DataKey>,
}

impl select::Source for StoredObject {
    fn len(&self) -> u64 {
        self.record.summary.size
    }

    fn read(&self, range: Range<u64>) -> BoxFuture<'static, std::io::Result<select::ByteStream>> {
        let (store, record, opened) =
            (self.store.clone(), self.record.clone(), self.opened.clone());
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        Box::pin(async move {
            let stream = store
                .read((&bucket, &key), &record, range, opened.as_ref())
                .await
                .map_err(std::io::Error::other)?;
            Ok(stream.map(|r| r.map_err(std::io::Error::other)).boxed())
        })
    }
}

fn stats_of(s: select::Stats) -> Stats {
    let n = |v: u64| Some(i64::try_from(v).unwrap_or(i64::MAX));
    Stats {
        bytes_processed: n(s.processed),
        bytes_returned: n(s.returned),
        bytes_scanned: n(s.scanned),
    }
}

fn event_of(event: select::Event) -> SelectObjectContentEvent {
    match event {
        select::Event::Records(bytes) => SelectObjectContentEvent::Records(RecordsEvent {
            payload: Some(bytes),
        }),
        select::Event::Progress(s) => {
            let s = stats_of(s);
            SelectObjectContentEvent::Progress(ProgressEvent {
                details: Some(Progress {
                    bytes_processed: s.bytes_processed,
                    bytes_returned: s.bytes_returned,
                    bytes_scanned: s.bytes_scanned,
                }),
            })
        }
        select::Event::Stats(s) => SelectObjectContentEvent::Stats(StatsEvent {
            details: Some(stats_of(s)),
        }),
        select::Event::Cont => SelectObjectContentEvent::Cont(ContinuationEvent {}),
        select::Event::End => SelectObjectContentEvent::End(EndEvent {}),
    }
}

impl BasaltS3 {
    pub(super) async fn select_object_content(
        &self,
        req: S3Request<SelectObjectContentInput>,
    ) -> S3Result<S3Response<SelectObjectContentOutput>> {
        let arrow = req
            .headers
            .get(OUTPUT_FORMAT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let input = req.input;
        let request = &input.request;
        if request.expression_type.as_str() != "SQL" {
            return Err(refused(
                "InvalidExpressionType",
                "ExpressionType must be SQL",
            ));
        }
        let query = select::Query::parse(&request.expression).map_err(|e| select_error(&e))?;
        let (format, compression) = input_of(&request.input_serialization)?;
        let output = match arrow.as_deref() {
            Some("arrow") => select::Output::Arrow,
            Some(other) => {
                return Err(refused(
                    "InvalidRequestParameter",
                    format!("{OUTPUT_FORMAT_HEADER} {other} is not arrow"),
                ));
            }
            None => output_of(&request.output_serialization)?,
        };
        let scan_range = request.scan_range.as_ref().map(|r| {
            let at = |v: Option<i64>| v.map(|v| u64::try_from(v).unwrap_or(0));
            (at(r.start), at(r.end))
        });
        let progress = request
            .request_progress
            .as_ref()
            .and_then(|p| p.enabled)
            .unwrap_or(false);
        let job = select::Request {
            query,
            input: format,
            compression,
            output,
            scan_range,
            progress,
            keep_alive: select::KEEP_ALIVE,
        };
        let record = self
            .store
            .head_object(&input.bucket, &input.key)
            .await
            .or_s3()?;
        job.validate(record.summary.size)
            .map_err(|e| select_error(&e))?;
        let customer = customer_key_of!(input)?;
        let opened = self
            .store
            .opening(record.details.encryption.as_ref(), customer.as_ref())
            .await
            .or_s3()?;
        let source = StoredObject {
            store: self.store.clone(),
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            record: Arc::new(record),
            opened,
        };
        let Ok(permit) = SELECTS.try_acquire() else {
            return Err(S3Error::with_message(
                S3ErrorCode::SlowDown,
                "Too many queries are running on this node; try again.",
            ));
        };
        let mut events = select::run(job, source);
        // A failure before the first event (a file that is not Parquet, a bad gzip header) is
        // the HTTP answer; later ones are error events in the stream.
        let first = match events.next().await {
            Some(Err(e)) => return Err(select_error(&e)),
            Some(Ok(event)) => event,
            None => return Err(refused("InternalError", "the query ended without events")),
        };
        // The permit goes with the stream: the query holds its place until its last event.
        let stream = futures::stream::once(async move { Ok(event_of(first)) }).chain(events.map(
            move |item| {
                let _held = &permit;
                item.map(event_of).map_err(|e| select_error(&e))
            },
        ));
        let stream = sync_wrapper::SyncStream::new(stream);
        Ok(S3Response::new(SelectObjectContentOutput {
            payload: Some(SelectObjectContentEventStream::new(stream)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializations_map_to_the_engines() {
        let csv = InputSerialization {
            csv: Some(CSVInput {
                file_header_info: Some(FileHeaderInfo::from_static("USE")),
                field_delimiter: Some(";".into()),
                ..Default::default()
            }),
            compression_type: Some(CompressionType::from_static("GZIP")),
            ..Default::default()
        };
        let (format, compression) = input_of(&csv).unwrap();
        assert_eq!(compression, select::Compression::Gzip);
        let select::Input::Csv(c) = format else {
            panic!("csv")
        };
        assert_eq!(
            (c.header, c.field_delimiter),
            (select::FileHeaderInfo::Use, b';')
        );
        let both = InputSerialization {
            csv: Some(CSVInput::default()),
            json: Some(JSONInput::default()),
            ..Default::default()
        };
        assert!(input_of(&both).is_err());
        assert!(output_of(&OutputSerialization::default()).is_err());
    }
}
