//! Writing result rows as CSV, JSON lines or an Arrow IPC stream, into a buffer the engine
//! drains into Records events.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::value::Value;
use crate::{Output, QuoteFields, SelectError};

/// Rows an Arrow batch holds before it is written, and bytes (about).
const ARROW_BATCH_ROWS: usize = 8192;
const ARROW_BATCH_BYTES: usize = 4 << 20;

/// One result row: named values, or a JSON record passed through whole (`SELECT *`).
pub(crate) enum Row {
    Values(Vec<(String, Value)>),
    Json(serde_json::Value),
}

pub(crate) struct Writer {
    format: Output,
    buffer: Vec<u8>,
    arrow: Option<ArrowState>,
}

struct ArrowState {
    rows: Vec<Vec<(String, Value)>>,
    /// About how many bytes `rows` hold.
    held: usize,
    writer: Option<arrow_ipc::writer::StreamWriter<Vec<u8>>>,
    schema: Option<Arc<Schema>>,
}

fn arrow_error(e: arrow_schema::ArrowError) -> SelectError {
    SelectError::new("InternalError", format!("Arrow output failed: {e}"))
}

fn data_type_of(values: impl Iterator<Item = Value>) -> DataType {
    let mut found = DataType::Utf8;
    let mut seen = false;
    for v in values {
        let t = match v {
            Value::Null | Value::Missing => continue,
            Value::Bool(_) => DataType::Boolean,
            Value::Int(_) => DataType::Int64,
            Value::Float(_) => DataType::Float64,
            Value::Str(_) => DataType::Utf8,
            Value::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Value::Nested(_) => DataType::Utf8,
        };
        if !seen {
            found = t;
            seen = true;
        } else if found != t {
            found = match (&found, &t) {
                (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
                    DataType::Float64
                }
                _ => DataType::Utf8,
            };
        }
    }
    found
}

fn column(data_type: &DataType, values: Vec<Value>) -> ArrayRef {
    match data_type {
        DataType::Boolean => {
            let mut b = BooleanBuilder::new();
            for v in values {
                b.append_option(v.truthy());
            }
            Arc::new(b.finish())
        }
        DataType::Int64 => {
            let mut b = Int64Builder::new();
            for v in values {
                b.append_option(match v.cast(crate::value::CastType::Int) {
                    Ok(Value::Int(i)) => Some(i),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = Float64Builder::new();
            for v in values {
                b.append_option(match v.cast(crate::value::CastType::Float) {
                    Ok(Value::Float(f)) => Some(f),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Timestamp(_, _) => {
            let mut b = TimestampMicrosecondBuilder::new().with_timezone("UTC");
            for v in values {
                b.append_option(match v {
                    Value::Timestamp(t) => i64::try_from(t.unix_timestamp_nanos() / 1000).ok(),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::new();
            for v in values {
                if v.is_null() {
                    b.append_null();
                } else {
                    b.append_value(v.text());
                }
            }
            Arc::new(b.finish())
        }
    }
}

impl ArrowState {
    fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), SelectError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        self.held = 0;
        let schema = match &self.schema {
            Some(s) => s.clone(),
            None => {
                let names: Vec<String> = rows[0].iter().map(|(n, _)| n.clone()).collect();
                let fields: Vec<Field> = names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let t = data_type_of(
                            rows.iter()
                                .map(|r| r.get(i).map(|(_, v)| v.clone()).unwrap_or(Value::Null)),
                        );
                        Field::new(name, t, true)
                    })
                    .collect();
                let schema = Arc::new(Schema::new(fields));
                self.schema = Some(schema.clone());
                schema
            }
        };
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|field| {
                let values = rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .find(|(n, _)| n == field.name())
                            .map_or(Value::Null, |(_, v)| v.clone())
                    })
                    .collect();
                column(field.data_type(), values)
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(arrow_error)?;
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(
                arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema)
                    .map_err(arrow_error)?,
            ),
        };
        writer.write(&batch).map_err(arrow_error)?;
        out.append(writer.get_mut());
        Ok(())
    }
}

fn csv_field(value: &Value, format: &crate::CsvOutput, out: &mut Vec<u8>) {
    let text = value.text();
    let needs_quotes = match format.quote_fields {
        QuoteFields::Always => true,
        QuoteFields::AsNeeded => {
            text.contains(format.field_delimiter.as_str())
                || text.contains(format.quote)
                || text.contains(format.record_delimiter.as_str())
                || text.contains('\n')
                || text.contains('\r')
        }
    };
    if !needs_quotes {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push(format.quote);
    for c in text.chars() {
        if c == format.quote {
            quoted.push(format.quote_escape);
        }
        quoted.push(c);
    }
    quoted.push(format.quote);
    out.extend_from_slice(quoted.as_bytes());
}

impl Writer {
    pub(crate) fn new(format: Output) -> Self {
        let arrow = matches!(format, Output::Arrow).then(|| ArrowState {
            rows: Vec::new(),
            held: 0,
            writer: None,
            schema: None,
        });
        Self {
            format,
            buffer: Vec::new(),
            arrow,
        }
    }

    pub(crate) fn write(&mut self, row: Row) -> Result<(), SelectError> {
        match (&self.format, row) {
            (Output::Csv(format), row) => {
                let values: Vec<Value> = match row {
                    Row::Values(v) => v.into_iter().map(|(_, v)| v).collect(),
                    Row::Json(serde_json::Value::Object(o)) => {
                        o.values().map(Value::from_json).collect()
                    }
                    Row::Json(other) => vec![Value::from_json(&other)],
                };
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        self.buffer
                            .extend_from_slice(format.field_delimiter.as_bytes());
                    }
                    csv_field(v, format, &mut self.buffer);
                }
                self.buffer
                    .extend_from_slice(format.record_delimiter.as_bytes());
            }
            (Output::Json(format), row) => {
                let failed = |e: serde_json::Error| {
                    SelectError::new("InternalError", format!("JSON output failed: {e}"))
                };
                match row {
                    Row::Json(j) => serde_json::to_writer(&mut self.buffer, &j).map_err(failed)?,
                    // Written by hand: the columns keep the query's order.
                    Row::Values(values) => {
                        self.buffer.push(b'{');
                        let present = values.iter().filter(|(_, v)| *v != Value::Missing);
                        for (i, (name, value)) in present.enumerate() {
                            if i > 0 {
                                self.buffer.push(b',');
                            }
                            serde_json::to_writer(&mut self.buffer, name).map_err(failed)?;
                            self.buffer.push(b':');
                            serde_json::to_writer(&mut self.buffer, &value.to_json())
                                .map_err(failed)?;
                        }
                        self.buffer.push(b'}');
                    }
                }
                self.buffer
                    .extend_from_slice(format.record_delimiter.as_bytes());
            }
            (Output::Arrow, row) => {
                let values = match row {
                    Row::Values(v) => v,
                    Row::Json(serde_json::Value::Object(o)) => o
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from_json(v)))
                        .collect(),
                    Row::Json(other) => vec![("_1".to_owned(), Value::from_json(&other))],
                };
                if let Some(arrow) = &mut self.arrow {
                    arrow.held += values
                        .iter()
                        .map(|(n, v)| n.len() + v.size())
                        .sum::<usize>();
                    arrow.rows.push(values);
                    if arrow.rows.len() >= ARROW_BATCH_ROWS || arrow.held >= ARROW_BATCH_BYTES {
                        arrow.flush(&mut self.buffer)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Bytes written so far and not yet taken.
    pub(crate) fn pending(&self) -> usize {
        self.buffer.len()
    }

    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buffer)
    }

    /// Writes what is still held (an Arrow stream's last batch and its end).
    pub(crate) fn finish(&mut self) -> Result<Vec<u8>, SelectError> {
        if let Some(arrow) = &mut self.arrow {
            arrow.flush(&mut self.buffer)?;
            match &mut arrow.writer {
                Some(writer) => {
                    writer.finish().map_err(arrow_error)?;
                    self.buffer.append(writer.get_mut());
                }
                // No rows: an empty stream with no columns.
                None => {
                    let mut writer =
                        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &Schema::empty())
                            .map_err(arrow_error)?;
                    writer.finish().map_err(arrow_error)?;
                    self.buffer.append(writer.get_mut());
                }
            }
        }
        Ok(self.take())
    }
}
