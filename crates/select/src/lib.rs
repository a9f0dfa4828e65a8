//! S3 Select (SelectObjectContent) where the data lies: SQL over CSV, JSON and Parquet
//! objects, answered as CSV, JSON lines, or (a Basalt extension) an Arrow IPC stream.
//!
//! A query runs on a blocking worker: it reads the object through a [`Source`] (ranged reads
//! of the object layer), parses records one at a time, and sends results in bounded chunks
//! over a small channel, so memory is bounded by the largest record (1 MiB, as AWS allows)
//! and, for Parquet, by one row group's projected column chunks (256 MiB at most), never by
//! the object. Parquet reads only the row groups whose statistics can match the query and
//! only the columns it names.

mod eval;
mod input;
mod output;
mod parquet_input;
mod record;
mod sql;
mod value;

use std::ops::Range;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use sql::Query;
pub use value::Value;

use crate::eval::{Accumulator, Scope};
use crate::output::{Row, Writer};
use crate::record::Record;
use crate::sql::Select;

/// A refusal, with its S3 Select error code (all are 400s but `InternalError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SelectError {
    pub code: &'static str,
    pub message: String,
}

impl SelectError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Whether the error is the server's, not the request's or the object's.
    pub fn is_internal(&self) -> bool {
        self.code == "InternalError"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileHeaderInfo {
    /// The first line names the columns.
    Use,
    /// The first line is skipped.
    Ignore,
    None,
}

#[derive(Debug, Clone)]
pub struct CsvInput {
    pub header: FileHeaderInfo,
    pub field_delimiter: u8,
    pub quote: u8,
    pub quote_escape: u8,
    pub comment: Option<u8>,
    /// `\n` (which also ends `\r\n` lines) or another single byte.
    pub record_delimiter: u8,
}

impl Default for CsvInput {
    fn default() -> Self {
        Self {
            header: FileHeaderInfo::None,
            field_delimiter: b',',
            quote: b'"',
            quote_escape: b'"',
            comment: None,
            record_delimiter: b'\n',
        }
    }
}

#[derive(Debug, Clone)]
pub enum Input {
    Csv(CsvInput),
    /// `document`: values may span lines (JSON DOCUMENT); else one value a line (LINES).
    Json {
        document: bool,
    },
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuoteFields {
    Always,
    AsNeeded,
}

#[derive(Debug, Clone)]
pub struct CsvOutput {
    pub field_delimiter: String,
    pub quote: char,
    pub quote_escape: char,
    pub quote_fields: QuoteFields,
    pub record_delimiter: String,
}

impl Default for CsvOutput {
    fn default() -> Self {
        Self {
            field_delimiter: ",".into(),
            quote: '"',
            quote_escape: '"',
            quote_fields: QuoteFields::AsNeeded,
            record_delimiter: "\n".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JsonOutput {
    pub record_delimiter: String,
}

#[derive(Debug, Clone)]
pub enum Output {
    Csv(CsvOutput),
    Json(JsonOutput),
    /// An Arrow IPC stream (Basalt's extension).
    Arrow,
}

/// One query on one object.
#[derive(Debug, Clone)]
pub struct Request {
    pub query: Query,
    pub input: Input,
    pub compression: Compression,
    pub output: Output,
    /// `ScanRange`: (start, end), both optional, end inclusive.
    pub scan_range: Option<(Option<u64>, Option<u64>)>,
    /// Send Progress events.
    pub progress: bool,
    /// How long a scan may send nothing before it sends a Cont event ([`KEEP_ALIVE`]).
    pub keep_alive: std::time::Duration,
}

/// Byte counts of a query, as the Stats and Progress events report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub scanned: u64,
    pub processed: u64,
    pub returned: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Records(Bytes),
    Progress(Stats),
    Stats(Stats),
    /// A keep-alive, sent while a scan finds nothing to send for [`KEEP_ALIVE`].
    Cont,
    End,
}

pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Where a query reads its object: ranged reads of the stored bytes (decrypted).
pub trait Source: Send + Sync + 'static {
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self, range: Range<u64>) -> BoxFuture<'static, std::io::Result<ByteStream>>;
}

/// The largest input record (AWS: 1 MB).
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Results are sent in Records events of about this size.
const RECORDS_CHUNK: usize = 64 << 10;
/// Events waiting for the client, at most.
const EVENTS_IN_FLIGHT: usize = 4;
/// How long a scan goes without sending anything before it sends a Cont event, so that the
/// client (and the node's wait for the first event) hears from it.
pub const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);
/// Records between two looks at the clock.
const RECORDS_PER_CLOCK_CHECK: u64 = 4096;

impl Request {
    /// Checks the parts of the request that do not need the object (before any event is
    /// sent: a refusal here is the HTTP answer).
    pub fn validate(&self, object_len: u64) -> Result<(), SelectError> {
        if matches!(self.input, Input::Parquet) && self.compression != Compression::None {
            return Err(SelectError::new(
                "ObjectSerializationConflict",
                "Parquet objects are compressed inside: give CompressionType NONE",
            ));
        }
        if let Some(range) = self.scan_range {
            let resolved = resolve_range(range, object_len)?;
            let supported = match &self.input {
                Input::Csv(_) | Input::Json { document: false } => {
                    self.compression == Compression::None
                }
                Input::Parquet => true,
                Input::Json { document: true } => false,
            };
            if !supported {
                return Err(SelectError::new(
                    "UnsupportedScanRangeInput",
                    "ScanRange works on uncompressed CSV and JSON LINES objects and on Parquet",
                ));
            }
            let _ = resolved;
        }
        Ok(())
    }
}

/// The byte range a ScanRange names (end inclusive; only an end: the last `end` bytes).
pub(crate) fn resolve_range(
    (start, end): (Option<u64>, Option<u64>),
    len: u64,
) -> Result<Range<u64>, SelectError> {
    let range = match (start, end) {
        (Some(s), Some(e)) if e < s => {
            return Err(SelectError::new(
                "InvalidScanRange",
                "the ScanRange ends before it starts",
            ));
        }
        (Some(s), Some(e)) => s..e.saturating_add(1).min(len),
        (Some(s), None) => s..len,
        (None, Some(e)) => len.saturating_sub(e)..len,
        (None, None) => 0..len,
    };
    Ok(range.start.min(len)..range.end.max(range.start.min(len)))
}

/// The engine's side of a running query: folds or writes each record, and sends chunks.
pub(crate) struct Engine {
    query: Query,
    writer: Writer,
    accumulators: Vec<Accumulator>,
    aggregate_args: Vec<(usize, Option<sql::Expr>)>,
    left: Option<u64>,
    events: tokio::sync::mpsc::Sender<Result<Event, SelectError>>,
    pub(crate) stats: Stats,
    progress: bool,
    json_passthrough: bool,
    /// Records fed so far, and when the last event went out.
    fed: u64,
    last_event: std::time::Instant,
    keep_alive: std::time::Duration,
}

/// Whether the engine wants more records.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    More,
    Done,
}

impl Engine {
    fn new(
        request: &Request,
        events: tokio::sync::mpsc::Sender<Result<Event, SelectError>>,
    ) -> Self {
        let query = request.query.clone();
        let mut aggregate_args = Vec::new();
        if let Select::Columns(columns) = &query.select {
            let mut found = Vec::new();
            for c in columns {
                eval::aggregate_args(&c.expr, &mut found);
            }
            aggregate_args = found.into_iter().map(|(i, e)| (i, e.cloned())).collect();
        }
        Self {
            accumulators: query
                .aggregate_funcs
                .iter()
                .map(|f| Accumulator::new(*f, matches!(request.input, Input::Csv(_))))
                .collect(),
            aggregate_args,
            left: query.limit,
            writer: Writer::new(request.output.clone()),
            json_passthrough: matches!(request.output, Output::Json(_))
                && matches!(query.select, Select::All),
            query,
            events,
            stats: Stats::default(),
            progress: request.progress,
            fed: 0,
            last_event: std::time::Instant::now(),
            keep_alive: request.keep_alive,
        }
    }

    fn send(&mut self, event: Event) -> Result<(), SelectError> {
        self.last_event = std::time::Instant::now();
        self.events
            .blocking_send(Ok(event))
            .map_err(|_| SelectError::new("InternalError", "the client went away"))
    }

    /// One input record.
    pub(crate) fn feed(&mut self, record: Record) -> Result<Flow, SelectError> {
        if self.left == Some(0) && self.query.aggregates == 0 {
            return Ok(Flow::Done);
        }
        // A client that went away stops the scan, even one that has sent nothing yet.
        if self.events.is_closed() {
            return Err(SelectError::new("InternalError", "the client went away"));
        }
        self.fed += 1;
        if self.fed.is_multiple_of(RECORDS_PER_CLOCK_CHECK)
            && self.last_event.elapsed() >= self.keep_alive
        {
            self.send(Event::Cont)?;
        }
        let scope = Scope {
            record: Some(&record),
            aggregates: &[],
        };
        if let Some(filter) = &self.query.filter
            && !scope.keeps(filter)?
        {
            return Ok(Flow::More);
        }
        if self.query.aggregates > 0 {
            for (index, arg) in &self.aggregate_args {
                let value = arg.as_ref().map(|a| scope.eval(a)).transpose()?;
                if let Some(acc) = self.accumulators.get_mut(*index) {
                    acc.add(value)?;
                }
            }
            return Ok(Flow::More);
        }
        let row = match &self.query.select {
            // A JSON record goes out whole, nested values and all.
            Select::All if self.json_passthrough && matches!(record, Record::Json(_)) => {
                Row::Json(record.to_json())
            }
            Select::All => Row::Values(record.fields()),
            Select::Columns(columns) => {
                let values: Vec<(String, Value)> = columns
                    .iter()
                    .map(|c| Ok((c.name.clone(), scope.eval(&c.expr)?)))
                    .collect::<Result<_, SelectError>>()?;
                // Results are bounded like records (AWS: 1 MB), whatever `||` makes of them.
                let size: usize = values.iter().map(|(_, v)| v.size()).sum();
                if size > MAX_RECORD_BYTES {
                    return Err(SelectError::new(
                        "OverMaxRecordSize",
                        format!("a result record is longer than {MAX_RECORD_BYTES} bytes"),
                    ));
                }
                Row::Values(values)
            }
        };
        self.writer.write(row)?;
        if self.writer.pending() >= RECORDS_CHUNK {
            self.flush()?;
        }
        if let Some(left) = &mut self.left {
            *left = left.saturating_sub(1);
            if *left == 0 {
                return Ok(Flow::Done);
            }
        }
        Ok(Flow::More)
    }

    fn flush(&mut self) -> Result<(), SelectError> {
        let bytes = self.writer.take();
        self.send_records(bytes)
    }

    fn send_records(&mut self, bytes: Vec<u8>) -> Result<(), SelectError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.stats.returned += bytes.len() as u64;
        self.send(Event::Records(Bytes::from(bytes)))?;
        if self.progress {
            let stats = self.stats;
            self.send(Event::Progress(stats))?;
        }
        Ok(())
    }

    /// The aggregates' row, the last results, the stats and the end.
    fn finish(mut self) -> Result<(), SelectError> {
        if self.query.aggregates > 0
            && let Select::Columns(columns) = &self.query.select
        {
            let results: Vec<Value> = self.accumulators.iter().map(Accumulator::result).collect();
            let scope = Scope {
                record: None,
                aggregates: &results,
            };
            let row = columns
                .iter()
                .map(|c| Ok((c.name.clone(), scope.eval(&c.expr)?)))
                .collect::<Result<_, SelectError>>()?;
            self.writer.write(Row::Values(row))?;
        }
        let rest = self.writer.finish()?;
        self.send_records(rest)?;
        let stats = self.stats;
        self.send(Event::Stats(stats))?;
        self.send(Event::End)
    }
}

/// Runs `request` on `source`: the events, ending with Stats and End, or an error event.
/// Call [`Request::validate`] first, to refuse what needs no object as an HTTP error.
pub fn run(
    request: Request,
    source: impl Source,
) -> Pin<Box<dyn Stream<Item = Result<Event, SelectError>> + Send + Sync>> {
    let (tx, rx) = tokio::sync::mpsc::channel(EVENTS_IN_FLIGHT);
    let handle = tokio::runtime::Handle::current();
    let errors = tx.clone();
    let source: std::sync::Arc<dyn Source> = std::sync::Arc::new(source);
    tokio::task::spawn_blocking(move || {
        let mut engine = Engine::new(&request, tx);
        let result = match &request.input {
            Input::Parquet => parquet_input::scan(&request, source, &handle, &mut engine),
            _ => input::scan(&request, source.as_ref(), &handle, &mut engine),
        };
        let result = result.and_then(|()| engine.finish());
        if let Err(e) = result {
            if e.is_internal() {
                tracing::warn!(error = %e, "a select failed");
            }
            let _ = errors.blocking_send(Err(e));
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_ranges_resolve_as_aws_reads_them() {
        assert_eq!(resolve_range((Some(10), Some(19)), 100).unwrap(), 10..20);
        assert_eq!(resolve_range((Some(10), None), 100).unwrap(), 10..100);
        assert_eq!(resolve_range((None, Some(30)), 100).unwrap(), 70..100);
        assert_eq!(resolve_range((Some(90), Some(500)), 100).unwrap(), 90..100);
        assert_eq!(resolve_range((Some(200), None), 100).unwrap(), 100..100);
        assert!(resolve_range((Some(20), Some(10)), 100).is_err());
    }
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use futures::StreamExt;

    struct Memory(Bytes);

    impl Source for Memory {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }

        fn read(&self, range: Range<u64>) -> BoxFuture<'static, std::io::Result<ByteStream>> {
            let bytes = self.0.slice(range.start as usize..range.end as usize);
            Box::pin(async move {
                // Small pieces, as a store streams chunks.
                let pieces: Vec<std::io::Result<Bytes>> = bytes
                    .chunks(7)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect();
                Ok(futures::stream::iter(pieces).boxed())
            })
        }
    }

    fn request(sql: &str, input: Input, output: Output) -> Request {
        Request {
            query: Query::parse(sql).unwrap(),
            input,
            compression: Compression::None,
            output,
            scan_range: None,
            progress: false,
            keep_alive: KEEP_ALIVE,
        }
    }

    async fn collect(request: Request, data: &[u8]) -> Result<(String, Stats), SelectError> {
        let mut events = run(request, Memory(Bytes::copy_from_slice(data)));
        let mut out = Vec::new();
        let mut stats = None;
        while let Some(event) = events.next().await {
            match event? {
                Event::Records(b) => out.extend_from_slice(&b),
                Event::Stats(s) => stats = Some(s),
                Event::Progress(_) | Event::Cont => {}
                Event::End => {
                    return Ok((String::from_utf8(out).unwrap(), stats.unwrap()));
                }
            }
        }
        panic!("no End event")
    }

    fn csv_in(header: FileHeaderInfo) -> Input {
        Input::Csv(CsvInput {
            header,
            ..CsvInput::default()
        })
    }

    const PEOPLE: &[u8] = b"name,age,city\nann,34,Oslo\nbob,19,\"Rome, IT\"\ncy,51,Oslo\n";

    #[tokio::test(flavor = "multi_thread")]
    async fn csv_rows_are_filtered_projected_and_counted() {
        let out = Output::Csv(CsvOutput::default());
        let (text, stats) = collect(
            request(
                "SELECT s.name, s.age FROM S3Object s WHERE s.age > 30 AND s.city = 'Oslo'",
                csv_in(FileHeaderInfo::Use),
                out.clone(),
            ),
            PEOPLE,
        )
        .await
        .unwrap();
        assert_eq!(text, "ann,34\ncy,51\n");
        assert_eq!(stats.scanned, PEOPLE.len() as u64);
        assert_eq!(stats.returned, text.len() as u64);
        let (text, _) = collect(
            request(
                "SELECT COUNT(*), AVG(CAST(_2 AS INT)), MAX(_3) FROM S3Object",
                csv_in(FileHeaderInfo::Ignore),
                out.clone(),
            ),
            PEOPLE,
        )
        .await
        .unwrap();
        assert_eq!(text, "3,34.666666666666664,\"Rome, IT\"\n");
        let (text, _) = collect(
            request(
                "SELECT * FROM S3Object s WHERE s.city LIKE 'R%' LIMIT 1",
                csv_in(FileHeaderInfo::Use),
                Output::Json(JsonOutput {
                    record_delimiter: "\n".into(),
                }),
            ),
            PEOPLE,
        )
        .await
        .unwrap();
        assert_eq!(
            text,
            "{\"name\":\"bob\",\"age\":\"19\",\"city\":\"Rome, IT\"}\n"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn scan_ranges_split_records_exactly_once() {
        let data = b"a,1\nbb,2\nccc,3\ndddd,4\n";
        let mut all = String::new();
        for (start, end) in [(0, 5), (6, 12), (13, 30)] {
            let mut r = request(
                "SELECT _1 FROM S3Object",
                csv_in(FileHeaderInfo::None),
                Output::Csv(CsvOutput::default()),
            );
            r.scan_range = Some((Some(start), Some(end)));
            all += &collect(r, data).await.unwrap().0;
        }
        assert_eq!(all, "a\nbb\nccc\ndddd\n");
        // A record after a comment line belongs to the range its own first byte is in.
        let data = b"a\n#c\nb\n";
        let mut all = String::new();
        for (start, end) in [(0, 3), (4, 6)] {
            let mut r = request(
                "SELECT _1 FROM S3Object",
                Input::Csv(CsvInput {
                    comment: Some(b'#'),
                    ..CsvInput::default()
                }),
                Output::Csv(CsvOutput::default()),
            );
            r.scan_range = Some((Some(start), Some(end)));
            all += &collect(r, data).await.unwrap().0;
        }
        assert_eq!(all, "a\nb\n");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn json_documents_and_paths() {
        let doc = br#"{"people": [{"n": "a", "x": {"y": 1}}, {"n": "b", "x": {"y": 2}}]}"#;
        let (text, _) = collect(
            request(
                "SELECT p.n, p.x.y AS y FROM S3Object[*].people[*] p WHERE p.x.y >= 2",
                Input::Json { document: true },
                Output::Json(JsonOutput {
                    record_delimiter: "\n".into(),
                }),
            ),
            doc,
        )
        .await
        .unwrap();
        assert_eq!(text, "{\"n\":\"b\",\"y\":2}\n");
        let err = collect(
            request(
                "SELECT * FROM S3Object",
                Input::Json { document: false },
                Output::Csv(CsvOutput::default()),
            ),
            b"{\"a\": 1}\n{broken\n",
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "JSONParsingError");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_scan_that_finds_nothing_keeps_the_client_listening() {
        let data: String = (0..20_000).map(|i| format!("{i}\n")).collect();
        let mut r = request(
            "SELECT * FROM S3Object WHERE _1 = 'none'",
            csv_in(FileHeaderInfo::None),
            Output::Csv(CsvOutput::default()),
        );
        r.keep_alive = std::time::Duration::ZERO;
        let mut events = run(r, Memory(Bytes::from(data)));
        let mut kinds = Vec::new();
        while let Some(event) = events.next().await {
            kinds.push(event.unwrap());
        }
        let conts = kinds.iter().filter(|e| **e == Event::Cont).count();
        assert!(conts >= 4, "{conts} Cont events in {kinds:?}");
        assert_eq!(kinds.last(), Some(&Event::End));
        assert!(!kinds.iter().any(|e| matches!(e, Event::Records(_))));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_over_long_record_is_refused() {
        let mut data = vec![b'x'; MAX_RECORD_BYTES + 10];
        data.push(b'\n');
        let err = collect(
            request(
                "SELECT * FROM S3Object",
                csv_in(FileHeaderInfo::None),
                Output::Csv(CsvOutput::default()),
            ),
            &data,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "OverMaxRecordSize");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn parquet_reads_only_the_row_groups_and_columns_it_needs() {
        use arrow_array::{Int64Array, StringArray};
        let ids = Int64Array::from_iter_values(0..1000);
        let names = StringArray::from_iter_values((0..1000).map(|i| format!("name-{i}")));
        let pad = StringArray::from_iter_values((0..1000).map(|i| format!("{i:0>200}")));
        let batch = arrow_array::RecordBatch::try_from_iter([
            ("id", std::sync::Arc::new(ids) as arrow_array::ArrayRef),
            ("name", std::sync::Arc::new(names) as _),
            ("pad", std::sync::Arc::new(pad) as _),
        ])
        .unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .build();
        let mut file = Vec::new();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let (text, stats) = collect(
            request(
                "SELECT s.name FROM S3Object s WHERE s.id BETWEEN 10 AND 12",
                Input::Parquet,
                Output::Csv(CsvOutput::default()),
            ),
            &file,
        )
        .await
        .unwrap();
        assert_eq!(text, "name-10\nname-11\nname-12\n");
        assert!(
            stats.scanned * 5 < file.len() as u64,
            "{} of {} bytes scanned",
            stats.scanned,
            file.len()
        );
        let (text, _) = collect(
            request(
                "SELECT COUNT(*), SUM(s.id), MIN(s.name) FROM S3Object s",
                Input::Parquet,
                Output::Csv(CsvOutput::default()),
            ),
            &file,
        )
        .await
        .unwrap();
        assert_eq!(text, "1000,499500,name-0\n");
        let err = collect(
            request(
                "SELECT * FROM S3Object",
                Input::Parquet,
                Output::Csv(CsvOutput::default()),
            ),
            b"not a parquet file at all",
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, "ParquetParsingError");
    }
}
