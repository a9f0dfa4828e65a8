//! Reading Parquet objects: the footer (bounded), the row groups whose statistics can match
//! the query's WHERE (and whose start is in the ScanRange), and of them only the columns the
//! query names, batch by batch.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use futures::StreamExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;

use crate::record::Record;
use crate::sql::{CmpOp, Expr, Select, Step};
use crate::value::Value;
use crate::{Engine, Flow, Request, SelectError, Source, resolve_range};

/// The largest Parquet footer read (the file's metadata).
const MAX_FOOTER_BYTES: u64 = 16 << 20;
/// The most a row group's projected column chunks may take (AWS: 256 MB row groups).
const MAX_ROW_GROUP_BYTES: i64 = 256 << 20;
const BATCH_ROWS: usize = 4096;

fn parquet_error(message: impl Into<String>) -> SelectError {
    SelectError::new("ParquetParsingError", message)
}

/// The object as the Parquet reader reads it: ranged reads, each counted as scanned.
struct ObjectChunks {
    source: Arc<dyn Source>,
    handle: tokio::runtime::Handle,
    /// Bytes the reader asked for (what Stats reports as scanned).
    scanned: Arc<std::sync::atomic::AtomicU64>,
    /// The last blocks read: the store reads (and verifies) whole chunks, so the many small
    /// reads of page headers and pages are served from the block they fall in.
    blocks: Arc<std::sync::Mutex<Vec<(u64, Bytes)>>>,
}

/// What one read from the store covers at least (the default chunk size), aligned to it.
const BLOCK: u64 = 4 << 20;
/// Blocks kept per query.
const BLOCKS_KEPT: usize = 2;

impl Length for ObjectChunks {
    fn len(&self) -> u64 {
        self.source.len()
    }
}

impl ObjectChunks {
    fn fetch(&self, start: u64, length: usize) -> std::io::Result<Bytes> {
        if length as i64 > MAX_ROW_GROUP_BYTES {
            return Err(std::io::Error::other(format!(
                "a read of {length} bytes is over the limit of a row group"
            )));
        }
        let len = self.source.len();
        if start > len {
            return Err(std::io::Error::other(format!(
                "a read at {start} is past the end of the object ({len} bytes)"
            )));
        }
        let end = start.saturating_add(length as u64).min(len);
        self.scanned
            .fetch_add(end - start, std::sync::atomic::Ordering::Relaxed);
        let block_start = start - start % BLOCK;
        if end - start >= BLOCK || end > block_start + BLOCK {
            // Large, or across two blocks: read as asked.
            return self.read(start..end);
        }
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, block)) = blocks.iter().find(|(at, _)| *at == block_start) {
            let from = (start - at) as usize;
            let to = ((end - at) as usize).min(block.len());
            return Ok(block.slice(from.min(to)..to));
        }
        let block = self.read(block_start..(block_start + BLOCK).min(len))?;
        let slice = block.slice(
            ((start - block_start) as usize).min(block.len())
                ..((end - block_start) as usize).min(block.len()),
        );
        if blocks.len() == BLOCKS_KEPT {
            blocks.remove(0);
        }
        blocks.push((block_start, block));
        Ok(slice)
    }

    fn read(&self, range: std::ops::Range<u64>) -> std::io::Result<Bytes> {
        self.handle.block_on(async {
            let mut stream = self.source.read(range.clone()).await?;
            let mut out = Vec::with_capacity((range.end - range.start) as usize);
            while let Some(piece) = stream.next().await {
                out.extend_from_slice(&piece?);
            }
            Ok::<_, std::io::Error>(Bytes::from(out))
        })
    }
}

/// A reader from an offset on, fetching a window at a time as it is read.
struct WindowRead {
    chunks: ObjectChunks,
    position: u64,
    window: Bytes,
}

/// What a [`WindowRead`] fetches at once, at most: page headers are read this way, a few
/// bytes each, so little is read past them.
const READ_WINDOW: usize = 8 << 10;

impl std::io::Read for WindowRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.window.is_empty() {
            let left = self.chunks.len().saturating_sub(self.position);
            if left == 0 {
                return Ok(0);
            }
            let length = (left as usize).min(READ_WINDOW.min(buf.len().max(1)));
            self.window = self.chunks.fetch(self.position, length)?;
            self.position += self.window.len() as u64;
            if self.window.is_empty() {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.window.len());
        buf[..n].copy_from_slice(&self.window[..n]);
        self.window = self.window.slice(n..);
        Ok(n)
    }
}

impl ChunkReader for ObjectChunks {
    type T = WindowRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(WindowRead {
            chunks: ObjectChunks {
                source: self.source.clone(),
                handle: self.handle.clone(),
                scanned: self.scanned.clone(),
                blocks: self.blocks.clone(),
            },
            position: start,
            window: Bytes::new(),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        Ok(self.fetch(start, length)?)
    }
}

/// The top-level columns the query names (`None`: all of them).
fn named_columns(request: &Request) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    let mut walk = |e: &Expr| collect_columns(e, &mut out);
    match &request.query.select {
        Select::All => return None,
        Select::Columns(columns) => columns.iter().for_each(|c| walk(&c.expr)),
    }
    if let Some(filter) = &request.query.filter {
        collect_columns(filter, &mut out);
    }
    Some(out)
}

fn collect_columns(expr: &Expr, out: &mut Vec<Step>) {
    match expr {
        Expr::Column(path) => out.extend(path.first().cloned()),
        other => other
            .children()
            .into_iter()
            .for_each(|e| collect_columns(e, out)),
    }
}

/// A constraint of the WHERE on one column, which row-group statistics can rule out.
struct Bound {
    column: Step,
    op: CmpOp,
    value: Value,
}

/// The constraints of the WHERE's top-level AND terms of the form `column op literal`.
fn bounds(expr: &Expr, out: &mut Vec<Bound>) {
    let flipped = |op: CmpOp| match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::LtEq => CmpOp::GtEq,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::GtEq => CmpOp::LtEq,
        other => other,
    };
    match expr {
        Expr::And(a, b) => {
            bounds(a, out);
            bounds(b, out);
        }
        Expr::Compare(op, a, b) if *op != CmpOp::NotEq => match (a.as_ref(), b.as_ref()) {
            (Expr::Column(path), Expr::Literal(v)) if path.len() == 1 && !v.is_null() => {
                out.push(Bound {
                    column: path[0].clone(),
                    op: *op,
                    value: v.clone(),
                });
            }
            (Expr::Literal(v), Expr::Column(path)) if path.len() == 1 && !v.is_null() => {
                out.push(Bound {
                    column: path[0].clone(),
                    op: flipped(*op),
                    value: v.clone(),
                });
            }
            _ => {}
        },
        Expr::Between {
            expr,
            low,
            high,
            negated: false,
        } => {
            if let (Expr::Column(path), Expr::Literal(lo), Expr::Literal(hi)) =
                (expr.as_ref(), low.as_ref(), high.as_ref())
                && path.len() == 1
            {
                out.push(Bound {
                    column: path[0].clone(),
                    op: CmpOp::GtEq,
                    value: lo.clone(),
                });
                out.push(Bound {
                    column: path[0].clone(),
                    op: CmpOp::LtEq,
                    value: hi.clone(),
                });
            }
        }
        _ => {}
    }
}

fn stat_values(stats: &Statistics) -> Option<(Value, Value)> {
    let pair = |min: Option<Value>, max: Option<Value>| Some((min?, max?));
    match stats {
        Statistics::Boolean(s) => pair(
            s.min_opt().map(|v| Value::Bool(*v)),
            s.max_opt().map(|v| Value::Bool(*v)),
        ),
        Statistics::Int32(s) => pair(
            s.min_opt().map(|v| Value::Int(i64::from(*v))),
            s.max_opt().map(|v| Value::Int(i64::from(*v))),
        ),
        Statistics::Int64(s) => pair(
            s.min_opt().map(|v| Value::Int(*v)),
            s.max_opt().map(|v| Value::Int(*v)),
        ),
        Statistics::Float(s) => pair(
            s.min_opt().map(|v| Value::Float(f64::from(*v))),
            s.max_opt().map(|v| Value::Float(f64::from(*v))),
        ),
        Statistics::Double(s) => pair(
            s.min_opt().map(|v| Value::Float(*v)),
            s.max_opt().map(|v| Value::Float(*v)),
        ),
        Statistics::ByteArray(s) => pair(
            s.min_bytes_opt()
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(|t| Value::Str(t.to_owned())),
            s.max_bytes_opt()
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(|t| Value::Str(t.to_owned())),
        ),
        _ => None,
    }
}

/// Whether a row group may hold a record the bounds allow (unknown: it may).
fn may_match(
    group: &RowGroupMetaData,
    schema: &parquet::schema::types::SchemaDescriptor,
    bounds: &[Bound],
) -> bool {
    use std::cmp::Ordering::*;
    for bound in bounds {
        let Some(leaf) = (0..schema.num_columns()).find(|&i| {
            let path = schema.column(i).path().parts().to_vec();
            path.len() == 1 && bound.column.matches(&path[0])
        }) else {
            continue;
        };
        // Only plain numbers and strings: a timestamp's statistics are its raw integers.
        if schema.column(leaf).logical_type_ref().is_some() && !matches!(bound.value, Value::Str(_))
        {
            let logical = format!("{:?}", schema.column(leaf).logical_type_ref());
            if !logical.contains("Integer") && !logical.contains("String") {
                continue;
            }
        }
        let Some((min, max)) = group.column(leaf).statistics().and_then(stat_values) else {
            continue;
        };
        let (lo, hi) = (bound.value.compare(&min), bound.value.compare(&max));
        let impossible = match bound.op {
            CmpOp::Eq => lo == Some(Less) || hi == Some(Greater),
            // column < v: impossible when min >= v.
            CmpOp::Lt => matches!(lo, Some(Less | Equal)),
            CmpOp::LtEq => lo == Some(Less),
            CmpOp::Gt => matches!(hi, Some(Greater | Equal)),
            CmpOp::GtEq => hi == Some(Greater),
            CmpOp::NotEq => false,
        };
        if impossible {
            return false;
        }
    }
    true
}

fn group_start(group: &RowGroupMetaData) -> u64 {
    let first = group.column(0);
    first
        .dictionary_page_offset()
        .unwrap_or_else(|| first.data_page_offset())
        .max(0) as u64
}

pub(crate) fn scan(
    request: &Request,
    source: Arc<dyn Source>,
    handle: &tokio::runtime::Handle,
    engine: &mut Engine,
) -> Result<(), SelectError> {
    let scanned = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let chunks = ObjectChunks {
        source,
        handle: handle.clone(),
        scanned: scanned.clone(),
        blocks: Arc::default(),
    };
    let result = scan_chunks(request, chunks, engine);
    engine.stats.scanned = scanned.load(std::sync::atomic::Ordering::Relaxed);
    engine.stats.processed = engine.stats.processed.max(engine.stats.scanned);
    result
}

fn scan_chunks(
    request: &Request,
    chunks: ObjectChunks,
    engine: &mut Engine,
) -> Result<(), SelectError> {
    let len = chunks.len();
    if len < 12 {
        return Err(parquet_error("the object is too short to be Parquet"));
    }
    let tail = chunks
        .fetch(len - 8, 8)
        .map_err(|e| SelectError::new("InternalError", format!("cannot read the object: {e}")))?;
    if &tail[4..] != b"PAR1" {
        return Err(parquet_error("the object is not a Parquet file"));
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer > MAX_FOOTER_BYTES || footer + 12 > len {
        return Err(parquet_error(format!(
            "the Parquet footer of {footer} bytes is over the limit of {MAX_FOOTER_BYTES} or the file"
        )));
    }
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(chunks, ArrowReaderOptions::new())
            .map_err(|e| parquet_error(format!("the Parquet footer could not be read: {e}")))?;
    let metadata = builder.metadata().clone();
    let schema_descr = builder.parquet_schema().clone();
    let arrow_schema = builder.schema().clone();
    let names: Vec<String> = arrow_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let roots: Vec<usize> = match named_columns(request) {
        None => (0..names.len()).collect(),
        Some(steps) => {
            let mut roots: Vec<usize> = steps
                .iter()
                .filter_map(|s| {
                    names
                        .iter()
                        .position(|n| s.matches(n))
                        .or_else(|| s.position().filter(|p| *p < names.len()))
                })
                .collect();
            roots.sort_unstable();
            roots.dedup();
            roots
        }
    };
    let mut filters = Vec::new();
    if let Some(filter) = &request.query.filter {
        bounds(filter, &mut filters);
    }
    let range = request
        .scan_range
        .map(|r| resolve_range(r, len))
        .transpose()?;
    let leaves: Vec<usize> = (0..schema_descr.num_columns())
        .filter(|&leaf| roots.contains(&schema_descr.get_column_root_idx(leaf)))
        .collect();
    let mut groups = Vec::new();
    for (i, group) in metadata.row_groups().iter().enumerate() {
        if range
            .as_ref()
            .is_some_and(|r| !r.contains(&group_start(group)))
        {
            continue;
        }
        if !may_match(group, &schema_descr, &filters) {
            continue;
        }
        let sizes: Vec<i64> = leaves
            .iter()
            .map(|&leaf| group.column(leaf).compressed_size())
            .collect();
        if sizes.iter().any(|s| *s < 0) {
            return Err(parquet_error("a column chunk has a negative size"));
        }
        let projected = sizes.iter().fold(0i64, |a, s| a.saturating_add(*s));
        if projected > MAX_ROW_GROUP_BYTES {
            return Err(SelectError::new(
                "OverMaxParquetBlockSize",
                format!(
                    "a row group's columns take {projected} bytes, over the limit of {MAX_ROW_GROUP_BYTES}"
                ),
            ));
        }
        groups.push(i);
    }
    if groups.is_empty() {
        return Ok(());
    }
    let projected_names: Arc<Vec<String>> =
        Arc::new(roots.iter().map(|&i| names[i].clone()).collect());
    let reader = builder
        .with_projection(ProjectionMask::roots(&schema_descr, roots.iter().copied()))
        .with_row_groups(groups)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| parquet_error(e.to_string()))?;
    for batch in reader {
        let batch =
            batch.map_err(|e| parquet_error(format!("a row group could not be read: {e}")))?;
        if feed_batch(&batch, &projected_names, engine)? == Flow::Done {
            return Ok(());
        }
    }
    Ok(())
}

fn feed_batch(
    batch: &RecordBatch,
    names: &Arc<Vec<String>>,
    engine: &mut Engine,
) -> Result<Flow, SelectError> {
    for row in 0..batch.num_rows() {
        let values = batch
            .columns()
            .iter()
            .map(|column| value_at(column.as_ref(), row))
            .collect();
        let record = Record::Columns {
            names: names.clone(),
            values,
        };
        if engine.feed(record)? == Flow::Done {
            return Ok(Flow::Done);
        }
    }
    Ok(Flow::More)
}

fn timestamp(seconds: i64, nanos: i64) -> Value {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.checked_add(time::Duration::nanoseconds(nanos)))
        .map_or(Value::Null, Value::Timestamp)
}

/// One cell of an Arrow column as a query value.
fn value_at(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    macro_rules! int {
        ($t:ty) => {
            Value::Int(i64::from(array.as_primitive::<$t>().value(row)))
        };
    }
    match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => {
            let v = array.as_primitive::<UInt64Type>().value(row);
            i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
        }
        DataType::Float32 => {
            Value::Float(f64::from(array.as_primitive::<Float32Type>().value(row)))
        }
        DataType::Float64 => Value::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::Str(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Value::Str(array.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Value::Str(array.as_string_view().value(row).to_owned()),
        DataType::Date32 => {
            let days = i64::from(array.as_primitive::<Date32Type>().value(row));
            timestamp(days * 86_400, 0)
        }
        DataType::Date64 => {
            let ms = array.as_primitive::<Date64Type>().value(row);
            timestamp(ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000)
        }
        DataType::Timestamp(unit, _) => {
            let (raw, per_second) = match unit {
                TimeUnit::Second => (array.as_primitive::<TimestampSecondType>().value(row), 1),
                TimeUnit::Millisecond => (
                    array.as_primitive::<TimestampMillisecondType>().value(row),
                    1_000,
                ),
                TimeUnit::Microsecond => (
                    array.as_primitive::<TimestampMicrosecondType>().value(row),
                    1_000_000,
                ),
                TimeUnit::Nanosecond => (
                    array.as_primitive::<TimestampNanosecondType>().value(row),
                    1_000_000_000,
                ),
            };
            timestamp(
                raw.div_euclid(per_second),
                raw.rem_euclid(per_second) * (1_000_000_000 / per_second),
            )
        }
        DataType::Decimal128(_, scale) => {
            let raw = array
                .as_primitive::<arrow_array::types::Decimal128Type>()
                .value(row);
            Value::Float(raw as f64 / 10f64.powi(i32::from(*scale)))
        }
        _ => {
            let options = arrow_cast::display::FormatOptions::default();
            match arrow_cast::display::ArrayFormatter::try_new(array, &options) {
                Ok(f) => Value::Str(f.value(row).to_string()),
                Err(_) => Value::Null,
            }
        }
    }
}
