//! The values a query computes with: S3 Select's types (null and missing, booleans, integers,
//! floats, strings, timestamps), their comparisons, casts and text.

use std::cmp::Ordering;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::SelectError;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A field the record does not have (a JSON key that is not there, a CSV column past the
    /// end): null in every comparison, left out of JSON output.
    Missing,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Timestamp(OffsetDateTime),
    /// A JSON object or array, as a record holds it: written out as JSON, read as its text.
    Nested(serde_json::Value),
}

impl Value {
    /// About how many bytes the value takes as text.
    pub(crate) fn size(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Nested(v) => v.to_string().len(),
            _ => 16,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null | Value::Missing)
    }

    /// A number, as a CSV field or a JSON string holding one is compared with a number.
    fn as_number(&self) -> Option<Number> {
        match self {
            Value::Int(i) => Some(Number::Int(*i)),
            Value::Float(f) => Some(Number::Float(*f)),
            Value::Str(s) => {
                let s = s.trim();
                s.parse::<i64>()
                    .map(Number::Int)
                    .ok()
                    .or_else(|| s.parse::<f64>().ok().map(Number::Float))
            }
            _ => None,
        }
    }

    pub fn truthy(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// How two values order, or `None` when either is null or they do not compare (SQL's
    /// unknown). A string compares with a number as the number it spells.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        use Value::*;
        match (self, other) {
            (Null | Missing, _) | (_, Null | Missing) => None,
            (Str(a), Str(b)) => Some(a.cmp(b)),
            (Bool(a), Bool(b)) => Some(a.cmp(b)),
            (Timestamp(a), Timestamp(b)) => Some(a.cmp(b)),
            (Timestamp(a), Str(b)) => parse_timestamp(b).map(|b| a.cmp(&b)),
            (Str(a), Timestamp(b)) => parse_timestamp(a).map(|a| a.cmp(b)),
            (Nested(a), Nested(b)) => (a == b).then_some(Ordering::Equal),
            (Nested(_), _) | (_, Nested(_)) => None,
            (Bool(a), Str(_)) => other.truthy().map(|b| a.cmp(&b)),
            (Str(_), Bool(b)) => self.truthy().map(|a| a.cmp(b)),
            _ => match (self.as_number()?, other.as_number()?) {
                (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
                (a, b) => a.float().partial_cmp(&b.float()),
            },
        }
    }

    /// The value as text (CSV output, string functions).
    pub fn text(&self) -> String {
        match self {
            Value::Null | Value::Missing => String::new(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Str(s) => s.clone(),
            Value::Timestamp(t) => t.format(&Rfc3339).unwrap_or_default(),
            Value::Nested(v) => v.to_string(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null | Value::Missing => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) => s.clone().into(),
            Value::Timestamp(_) => self.text().into(),
            Value::Nested(v) => v.clone(),
        }
    }

    pub fn from_json(value: &serde_json::Value) -> Value {
        match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN))),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            other => Value::Nested(other.clone()),
        }
    }

    /// `CAST(value AS target)`.
    pub fn cast(&self, target: CastType) -> Result<Value, SelectError> {
        if self.is_null() {
            return Ok(Value::Null);
        }
        let failed = || {
            SelectError::new(
                "CastFailed",
                format!("cannot cast {:?} to {target:?}", self.text()),
            )
        };
        Ok(match target {
            CastType::String => Value::Str(self.text()),
            CastType::Int => match self {
                Value::Int(i) => Value::Int(*i),
                Value::Float(f) if f.is_finite() => Value::Int(f.trunc() as i64),
                Value::Bool(b) => Value::Int(i64::from(*b)),
                Value::Str(s) => match s.trim().parse::<i64>() {
                    Ok(i) => Value::Int(i),
                    Err(_) => match s.trim().parse::<f64>() {
                        Ok(f) if f.is_finite() => Value::Int(f.trunc() as i64),
                        _ => return Err(failed()),
                    },
                },
                _ => return Err(failed()),
            },
            CastType::Float => match self.as_number() {
                Some(n) => Value::Float(n.float()),
                None => return Err(failed()),
            },
            CastType::Bool => match self {
                Value::Bool(b) => Value::Bool(*b),
                Value::Int(i) => Value::Bool(*i != 0),
                other => Value::Bool(other.truthy().ok_or_else(failed)?),
            },
            CastType::Timestamp => match self {
                Value::Timestamp(t) => Value::Timestamp(*t),
                Value::Str(s) => Value::Timestamp(parse_timestamp(s).ok_or_else(failed)?),
                _ => return Err(failed()),
            },
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastType {
    Int,
    Float,
    String,
    Bool,
    Timestamp,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub(crate) fn float(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    pub(crate) fn of(value: &Value) -> Option<Number> {
        value.as_number()
    }

    pub(crate) fn value(self) -> Value {
        match self {
            Number::Int(i) => Value::Int(i),
            Number::Float(f) => Value::Float(f),
        }
    }
}

/// A float as S3 Select prints one: integral values keep a `.0`.
fn format_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

/// An ISO 8601 timestamp: a date, a date and time (`T`, optional seconds and fraction), with
/// or without an offset (UTC when none).
pub(crate) fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let formats = [
        time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"
        ),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ];
    for format in formats {
        if let Ok(t) = time::PrimitiveDateTime::parse(text.trim_end_matches('Z'), format) {
            return Some(t.assume_utc());
        }
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text.trim_end_matches('T'), date)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_compare_with_numbers_as_the_numbers_they_spell() {
        let s = Value::Str("35".into());
        assert_eq!(s.compare(&Value::Int(30)), Some(Ordering::Greater));
        assert_eq!(
            Value::Str("2.5".into()).compare(&Value::Int(3)),
            Some(Ordering::Less)
        );
        assert_eq!(Value::Str("abc".into()).compare(&Value::Int(3)), None);
        assert_eq!(Value::Null.compare(&Value::Int(3)), None);
        assert_eq!(
            Value::Str("b".into()).compare(&Value::Str("a".into())),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn casts_convert_or_fail_with_cast_failed() {
        assert_eq!(
            Value::Str(" 42 ".into()).cast(CastType::Int).unwrap(),
            Value::Int(42)
        );
        assert_eq!(
            Value::Str("4.9".into()).cast(CastType::Int).unwrap(),
            Value::Int(4)
        );
        assert_eq!(
            Value::Int(3).cast(CastType::Float).unwrap(),
            Value::Float(3.0)
        );
        assert_eq!(
            Value::Str("abc".into())
                .cast(CastType::Int)
                .unwrap_err()
                .code,
            "CastFailed"
        );
        assert!(matches!(
            Value::Str("2024-03-01".into()).cast(CastType::Timestamp),
            Ok(Value::Timestamp(_))
        ));
        assert_eq!(Value::Float(2.0).text(), "2.0");
    }
}
