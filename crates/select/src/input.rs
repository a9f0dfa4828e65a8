//! Reading CSV and JSON objects record by record, on the query's blocking worker: the object
//! streamed through a decompressor, each record bounded to [`MAX_RECORD_BYTES`].

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;

use crate::record::Record;
use crate::sql::PathStep;
use crate::{
    ByteStream, Compression, CsvInput, Engine, FileHeaderInfo, Flow, Input, MAX_RECORD_BYTES,
    Request, SelectError, Source, resolve_range,
};

/// An object's byte stream as a blocking `Read`, counting what it delivers.
pub(crate) struct BlockingRead {
    stream: ByteStream,
    handle: tokio::runtime::Handle,
    current: Bytes,
    pub(crate) read: Arc<AtomicU64>,
}

impl BlockingRead {
    pub(crate) fn open(
        source: &dyn Source,
        handle: &tokio::runtime::Handle,
        range: std::ops::Range<u64>,
    ) -> Result<Self, SelectError> {
        let stream = handle.block_on(source.read(range)).map_err(|e| {
            SelectError::new("InternalError", format!("cannot read the object: {e}"))
        })?;
        Ok(Self {
            stream,
            handle: handle.clone(),
            current: Bytes::new(),
            read: Arc::default(),
        })
    }
}

impl Read for BlockingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A reader that refuses to deliver more than a record's worth of bytes past the last record
/// boundary the engine marked: the parsers' buffers stay bounded by the record limit.
struct Bounded<R> {
    inner: R,
    delivered: u64,
    boundary: Arc<AtomicU64>,
    quotes: Option<QuoteParity>,
}

/// Whether a CSV stream ends inside a quoted field (the parser takes such a field to the end
/// of the object; S3 Select calls it malformed): quotes toggle it, escaped ones and those in
/// comment lines do not.
struct QuoteParity {
    quote: u8,
    escape: u8,
    comment: Option<u8>,
    inside: bool,
    escaped: bool,
    line_start: bool,
    in_comment: bool,
    open: Arc<std::sync::atomic::AtomicBool>,
}

impl QuoteParity {
    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_comment {
                self.in_comment = b != b'\n';
                self.line_start = b == b'\n';
                continue;
            }
            if self.line_start && !self.inside && Some(b) == self.comment {
                self.in_comment = true;
                continue;
            }
            if self.escaped {
                self.escaped = false;
            } else if self.escape != self.quote && b == self.escape && self.inside {
                self.escaped = true;
            } else if b == self.quote {
                self.inside = !self.inside;
            }
            self.line_start = b == b'\n' && !self.inside;
        }
        self.open.store(self.inside, Ordering::Relaxed);
    }
}

/// How an over-long record is told apart from other read errors.
const RECORD_TOO_LONG: &str = "basalt-select: record over the limit";

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let since = self.delivered - self.boundary.load(Ordering::Relaxed);
        // Parsers read ahead in buffers of up to 64 KiB: allow that past a full record.
        if since > (MAX_RECORD_BYTES + (64 << 10)) as u64 {
            return Err(std::io::Error::other(RECORD_TOO_LONG));
        }
        let n = self.inner.read(buf)?;
        self.delivered += n as u64;
        if let Some(quotes) = &mut self.quotes {
            quotes.scan(&buf[..n]);
        }
        Ok(n)
    }
}

fn too_long() -> SelectError {
    SelectError::new(
        "OverMaxRecordSize",
        format!("a record is longer than {MAX_RECORD_BYTES} bytes"),
    )
}

fn read_error(e: &std::io::Error, compression: Compression, format: &'static str) -> SelectError {
    if e.to_string() == RECORD_TOO_LONG {
        return too_long();
    }
    match (compression, e.kind()) {
        (Compression::None, std::io::ErrorKind::InvalidData) => {
            SelectError::new(format, format!("the object could not be parsed: {e}"))
        }
        (Compression::None, _) => {
            SelectError::new("InternalError", format!("reading the object failed: {e}"))
        }
        _ => SelectError::new(
            "InvalidCompressionFormat",
            format!("the object could not be decompressed: {e}"),
        ),
    }
}

fn decompressed(raw: impl Read + Send + 'static, compression: Compression) -> Box<dyn Read + Send> {
    match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(raw)),
    }
}

/// Where scanning starts and stops: records whose first byte is in `range` are read. A range
/// starting inside the object starts one byte early and skips through the first record
/// delimiter, so a record starting exactly at the range's start is kept.
struct Window {
    /// Offset of the first byte read.
    read_from: u64,
    skip_partial: bool,
    /// Records starting after this offset (relative to `read_from`) are not read.
    last_start: Option<u64>,
}

fn window(request: &Request, len: u64) -> Result<Window, SelectError> {
    let Some(range) = request.scan_range else {
        return Ok(Window {
            read_from: 0,
            skip_partial: false,
            last_start: None,
        });
    };
    let range = resolve_range(range, len)?;
    let read_from = range.start.saturating_sub(1);
    Ok(Window {
        read_from,
        skip_partial: range.start > 0,
        last_start: Some(range.end.saturating_sub(1).saturating_sub(read_from)),
    })
}

pub(crate) fn scan(
    request: &Request,
    source: &dyn Source,
    handle: &tokio::runtime::Handle,
    engine: &mut Engine,
) -> Result<(), SelectError> {
    let len = source.len();
    let window = window(request, len)?;
    if request.scan_range.is_some() && window.read_from >= len {
        return Ok(());
    }
    let raw = BlockingRead::open(source, handle, window.read_from..len)?;
    let scanned = raw.read.clone();
    let boundary = Arc::new(AtomicU64::new(0));
    let quote_open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let quotes = match &request.input {
        Input::Csv(csv) => Some(QuoteParity {
            quote: csv.quote,
            escape: csv.quote_escape,
            comment: csv.comment,
            inside: false,
            escaped: false,
            line_start: true,
            in_comment: false,
            open: quote_open.clone(),
        }),
        _ => None,
    };
    let mut reader = BufReader::with_capacity(
        64 << 10,
        Bounded {
            inner: decompressed(raw, request.compression),
            delivered: 0,
            boundary: boundary.clone(),
            quotes,
        },
    );
    // Bytes of the window's first, partial record: skipped, and counted as read.
    let mut skipped = 0u64;
    if window.skip_partial {
        let delimiter = match &request.input {
            Input::Csv(csv) => csv.record_delimiter,
            _ => b'\n',
        };
        let mut partial = Vec::new();
        (&mut reader)
            .take(MAX_RECORD_BYTES as u64 + 1)
            .read_until(delimiter, &mut partial)
            .map_err(|e| read_error(&e, request.compression, "CSVParsingError"))?;
        skipped = partial.len() as u64;
        boundary.store(skipped, Ordering::Relaxed);
    }
    let counters = Counters {
        scanned,
        boundary,
        skipped,
        quote_open,
    };
    let result = match &request.input {
        Input::Csv(csv) => {
            let header = match (csv.header, window.skip_partial) {
                // The header is the object's first line, outside a later range.
                (FileHeaderInfo::Use, true) => Some(read_header(source, handle, request, csv)?),
                _ => None,
            };
            scan_csv(request, csv, reader, header, &window, &counters, engine)
        }
        Input::Json { document } => {
            scan_json(request, *document, reader, &window, &counters, engine)
        }
        Input::Parquet => Ok(()),
    };
    engine.stats.scanned = counters.scanned.load(Ordering::Relaxed);
    engine.stats.processed = engine.stats.processed.max(engine.stats.scanned);
    result
}

struct Counters {
    scanned: Arc<AtomicU64>,
    boundary: Arc<AtomicU64>,
    skipped: u64,
    /// The CSV read so far ends inside a quoted field.
    quote_open: Arc<std::sync::atomic::AtomicBool>,
}

fn csv_reader<R: Read>(csv: &CsvInput, reader: R) -> csv::Reader<R> {
    let mut builder = csv::ReaderBuilder::new();
    builder
        .has_headers(false)
        .flexible(true)
        .delimiter(csv.field_delimiter)
        .quote(csv.quote)
        .terminator(if csv.record_delimiter == b'\n' {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(csv.record_delimiter)
        });
    if csv.quote_escape != csv.quote {
        builder.escape(Some(csv.quote_escape)).double_quote(false);
    }
    builder.from_reader(reader)
}

fn csv_error(e: &csv::Error) -> SelectError {
    match e.kind() {
        csv::ErrorKind::Io(io) if io.to_string() == RECORD_TOO_LONG => too_long(),
        csv::ErrorKind::Io(io) => SelectError::new(
            "CSVParsingError",
            format!("the object could not be read as CSV: {io}"),
        ),
        _ => SelectError::new(
            "CSVParsingError",
            format!("the object could not be read as CSV: {e}"),
        ),
    }
}

fn fields_of(record: &csv::ByteRecord) -> Vec<String> {
    record
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// The header line of a CSV object, read from its start.
fn read_header(
    source: &dyn Source,
    handle: &tokio::runtime::Handle,
    request: &Request,
    csv: &CsvInput,
) -> Result<Vec<String>, SelectError> {
    let end = source.len().min(MAX_RECORD_BYTES as u64 + 1);
    let raw = BlockingRead::open(source, handle, 0..end)?;
    let mut reader = csv_reader(csv, decompressed(raw, request.compression));
    let mut record = csv::ByteRecord::new();
    reader
        .read_byte_record(&mut record)
        .map_err(|e| csv_error(&e))?;
    Ok(fields_of(&record))
}

fn scan_csv<R: Read>(
    request: &Request,
    csv: &CsvInput,
    reader: R,
    mut header: Option<Vec<String>>,
    window: &Window,
    counters: &Counters,
    engine: &mut Engine,
) -> Result<(), SelectError> {
    let mut reader = csv_reader(csv, reader);
    let mut record = csv::ByteRecord::new();
    let mut first = !window.skip_partial;
    let mut headers: Option<Arc<Vec<String>>> = header.take().map(Arc::new);
    loop {
        match reader.read_byte_record(&mut record) {
            // A window that ends early stops mid-object: only the object's end can leave a
            // quote open for good.
            Ok(false)
                if window.last_start.is_none() && counters.quote_open.load(Ordering::Relaxed) =>
            {
                return Err(SelectError::new(
                    "CSVParsingError",
                    "the object ends inside a quoted field",
                ));
            }
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return Err(csv_error(&e)),
        }
        // Where the record itself starts (after any comment or blank lines before it): a
        // record belongs to the range its first byte is in.
        let start = record
            .position()
            .map_or_else(|| reader.position().byte(), csv::Position::byte)
            + counters.skipped;
        if window.last_start.is_some_and(|last| start > last) {
            return Ok(());
        }
        let end = reader.position().byte() + counters.skipped;
        counters.boundary.store(end, Ordering::Relaxed);
        if end - start > MAX_RECORD_BYTES as u64 {
            return Err(too_long());
        }
        engine.stats.processed = end;
        // Comment lines are skipped here, not by the parser, which would give the record
        // after one the comment's position (and so the wrong scan range).
        if let Some(comment) = csv.comment
            && record.get(0).is_some_and(|f| f.first() == Some(&comment))
        {
            continue;
        }
        if first {
            first = false;
            match csv.header {
                FileHeaderInfo::Use => {
                    headers = Some(Arc::new(fields_of(&record)));
                    continue;
                }
                FileHeaderInfo::Ignore => continue,
                FileHeaderInfo::None => {}
            }
        }
        // The raw fields: only those the query reads become strings.
        let row = Record::Csv {
            headers: headers.clone(),
            fields: record.clone(),
        };
        if engine.feed(row)? == Flow::Done {
            return Ok(());
        }
        let _ = request;
    }
}

/// The records a JSON value holds under the query's `FROM S3Object…` path.
fn records_of(value: serde_json::Value, path: &[PathStep], out: &mut Vec<serde_json::Value>) {
    let Some((step, rest)) = path.split_first() else {
        out.push(value);
        return;
    };
    match (step, value) {
        (PathStep::Wildcard, serde_json::Value::Array(items)) => {
            for item in items {
                records_of(item, rest, out);
            }
        }
        (PathStep::Key(key), serde_json::Value::Object(mut o)) => {
            if let Some(v) = o.remove(key) {
                records_of(v, rest, out);
            }
        }
        // `S3Object[*]` over a document of objects: each object is a record.
        (PathStep::Wildcard, other) => records_of(other, rest, out),
        _ => {}
    }
}

fn json_error(e: &serde_json::Error) -> SelectError {
    if e.is_io() && e.to_string().contains(RECORD_TOO_LONG) {
        return too_long();
    }
    SelectError::new(
        "JSONParsingError",
        format!("the object could not be read as JSON: {e}"),
    )
}

fn feed_json(
    value: serde_json::Value,
    request: &Request,
    engine: &mut Engine,
) -> Result<Flow, SelectError> {
    let mut records = Vec::new();
    records_of(value, &request.query.from_path, &mut records);
    for record in records {
        if engine.feed(Record::Json(record))? == Flow::Done {
            return Ok(Flow::Done);
        }
    }
    Ok(Flow::More)
}

fn scan_json<R: BufRead>(
    request: &Request,
    document: bool,
    mut reader: R,
    window: &Window,
    counters: &Counters,
    engine: &mut Engine,
) -> Result<(), SelectError> {
    if document {
        let mut values = serde_json::Deserializer::from_reader(reader).into_iter();
        loop {
            let value = match values.next() {
                None => return Ok(()),
                Some(Ok(v)) => v,
                Some(Err(e)) => return Err(json_error(&e)),
            };
            let offset = values.byte_offset() as u64;
            counters.boundary.store(offset, Ordering::Relaxed);
            engine.stats.processed = offset;
            if feed_json(value, request, engine)? == Flow::Done {
                return Ok(());
            }
        }
    }
    let mut offset = counters.skipped;
    let mut line = Vec::new();
    loop {
        if window.last_start.is_some_and(|last| offset > last) {
            return Ok(());
        }
        line.clear();
        let n = (&mut reader)
            .take(MAX_RECORD_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| read_error(&e, request.compression, "JSONParsingError"))?;
        if n == 0 {
            return Ok(());
        }
        if n > MAX_RECORD_BYTES {
            return Err(too_long());
        }
        offset += n as u64;
        counters.boundary.store(offset, Ordering::Relaxed);
        engine.stats.processed = offset;
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| json_error(&e))?;
        if feed_json(value, request, engine)? == Flow::Done {
            return Ok(());
        }
    }
}
