//! One input record, whatever its format: a CSV row, a JSON value, or a row of Parquet
//! columns; and how a column path finds a value in it.

use std::sync::Arc;

use crate::sql::Step;
use crate::value::Value;

#[derive(Debug, Clone)]
pub(crate) enum Record {
    Csv {
        /// The header's names, when the header is used.
        headers: Option<Arc<Vec<String>>>,
        fields: csv::ByteRecord,
    },
    Json(serde_json::Value),
    Columns {
        names: Arc<Vec<String>>,
        values: Vec<Value>,
    },
}

/// The value at `path` inside a JSON value (`Missing` when a step finds nothing).
fn json_at(mut value: &serde_json::Value, path: &[Step]) -> Value {
    for step in path {
        value = match value {
            serde_json::Value::Object(o) => {
                let found = o
                    .get(&step.name)
                    .or_else(|| o.iter().find(|(k, _)| step.matches(k)).map(|(_, v)| v));
                match found {
                    Some(v) => v,
                    None => return Value::Missing,
                }
            }
            serde_json::Value::Array(items) => match step.position().and_then(|i| items.get(i)) {
                Some(v) => v,
                None => return Value::Missing,
            },
            _ => return Value::Missing,
        };
    }
    Value::from_json(value)
}

impl Record {
    pub(crate) fn get(&self, path: &[Step]) -> Value {
        let Some(first) = path.first() else {
            return Value::Missing;
        };
        match self {
            Record::Csv { headers, fields } => {
                if path.len() > 1 {
                    return Value::Missing;
                }
                let index = headers
                    .as_ref()
                    .and_then(|h| h.iter().position(|name| first.matches(name)))
                    .or_else(|| first.position());
                match index.and_then(|i| fields.get(i)) {
                    Some(f) => Value::Str(String::from_utf8_lossy(f).into_owned()),
                    None => Value::Missing,
                }
            }
            Record::Json(value) => {
                let direct = json_at(value, path);
                // A positional `_N` on an object: its N-th field.
                if direct == Value::Missing
                    && path.len() == 1
                    && let (Some(i), serde_json::Value::Object(o)) = (first.position(), value)
                {
                    return o.values().nth(i).map_or(Value::Missing, Value::from_json);
                }
                direct
            }
            Record::Columns { names, values } => {
                let index = names
                    .iter()
                    .position(|n| first.matches(n))
                    .or_else(|| first.position());
                match index.and_then(|i| values.get(i)) {
                    Some(v) if path.len() == 1 => v.clone(),
                    Some(Value::Str(text)) if path.len() > 1 => {
                        // A nested Parquet value is kept as JSON text.
                        match serde_json::from_str::<serde_json::Value>(text) {
                            Ok(json) => json_at(&json, &path[1..]),
                            Err(_) => Value::Missing,
                        }
                    }
                    _ => Value::Missing,
                }
            }
        }
    }

    /// Every field of the record, named, for `SELECT *`.
    pub(crate) fn fields(&self) -> Vec<(String, Value)> {
        match self {
            Record::Csv { headers, fields } => fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let name = headers
                        .as_ref()
                        .and_then(|h| h.get(i).cloned())
                        .unwrap_or_else(|| format!("_{}", i + 1));
                    (name, Value::Str(String::from_utf8_lossy(f).into_owned()))
                })
                .collect(),
            Record::Json(serde_json::Value::Object(o)) => o
                .iter()
                .map(|(k, v)| (k.clone(), Value::from_json(v)))
                .collect(),
            Record::Json(other) => vec![("_1".to_owned(), Value::from_json(other))],
            Record::Columns { names, values } => {
                names.iter().cloned().zip(values.iter().cloned()).collect()
            }
        }
    }

    /// The record as JSON, for `SELECT *` with JSON output (nested values kept).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Record::Json(value) => value.clone(),
            other => serde_json::Value::Object(
                other
                    .fields()
                    .into_iter()
                    .map(|(k, v)| (k, v.to_json()))
                    .collect(),
            ),
        }
    }
}
