//! Evaluating a query's expressions on one record (or, for aggregates, on their folded
//! values), with SQL's three-valued logic: a comparison with null is unknown (`Null`), and a
//! WHERE keeps only the records it finds true.

use std::cmp::Ordering;

use time::OffsetDateTime;

use crate::SelectError;
use crate::record::Record;
use crate::sql::{AggFunc, ArithOp, CmpOp, Expr, TrimWhere};
use crate::value::{CastType, Number, Value};

/// The scalar functions there are.
pub(crate) fn is_function(name: &str) -> bool {
    matches!(
        name,
        "LOWER"
            | "UPPER"
            | "CHAR_LENGTH"
            | "CHARACTER_LENGTH"
            | "COALESCE"
            | "NULLIF"
            | "UTCNOW"
            | "TO_TIMESTAMP"
            | "TO_STRING"
            | "DATE_ADD"
            | "DATE_DIFF"
            | "SUBSTRING"
            | "TRIM"
            | "ABS"
    )
}

fn invalid_arguments(message: impl Into<String>) -> SelectError {
    SelectError::new("EvaluatorInvalidArguments", message)
}

/// What expressions are evaluated against: a record, and the aggregates' results once they
/// are folded.
pub(crate) struct Scope<'a> {
    pub(crate) record: Option<&'a Record>,
    pub(crate) aggregates: &'a [Value],
}

fn truth(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn from_truth(t: Option<bool>) -> Value {
    t.map_or(Value::Null, Value::Bool)
}

/// SQL LIKE: `%` any run, `_` one character, `escape` makes the next one literal.
pub(crate) fn like(text: &str, pattern: &str, escape: Option<char>) -> bool {
    #[derive(Clone, Copy)]
    enum Token {
        Any,
        One,
        Char(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            c if Some(c) == escape => Token::Char(chars.next().unwrap_or(c)),
            '%' => Token::Any,
            '_' => Token::One,
            c => Token::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // Matching with backtracking to the last `%` only: linear in practice, never exponential.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::One) => {
                t += 1;
                p += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| matches!(t, Token::Any))
}

fn arith(op: ArithOp, a: &Value, b: &Value) -> Result<Value, SelectError> {
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    let (Some(x), Some(y)) = (Number::of(a), Number::of(b)) else {
        return Err(SelectError::new(
            "EvaluatorInvalidArguments",
            format!("{} and {} are not numbers", a.text(), b.text()),
        ));
    };
    Ok(match (x, y) {
        (Number::Int(x), Number::Int(y)) => match op {
            ArithOp::Add => x.checked_add(y).map(Value::Int),
            ArithOp::Sub => x.checked_sub(y).map(Value::Int),
            ArithOp::Mul => x.checked_mul(y).map(Value::Int),
            ArithOp::Div if y == 0 => return Err(SelectError::new("DivisionByZero", "x / 0")),
            ArithOp::Div => x.checked_div(y).map(Value::Int),
            ArithOp::Mod if y == 0 => return Err(SelectError::new("DivisionByZero", "x % 0")),
            ArithOp::Mod => x.checked_rem(y).map(Value::Int),
        }
        .ok_or_else(|| SelectError::new("IntegerOverflow", "an integer overflowed"))?,
        (x, y) => {
            let (x, y) = (x.float(), y.float());
            Value::Float(match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => x / y,
                ArithOp::Mod => x % y,
            })
        }
    })
}

fn timestamp_arg(value: &Value, function: &str) -> Result<Option<OffsetDateTime>, SelectError> {
    match value.cast(CastType::Timestamp)? {
        Value::Timestamp(t) => Ok(Some(t)),
        Value::Null => Ok(None),
        _ => Err(invalid_arguments(format!("{function} takes a timestamp"))),
    }
}

fn date_part(t: OffsetDateTime, part: &str) -> Result<i64, SelectError> {
    Ok(match part {
        "YEAR" => i64::from(t.year()),
        "MONTH" => i64::from(u8::from(t.month())),
        "DAY" => i64::from(t.day()),
        "HOUR" => i64::from(t.hour()),
        "MINUTE" => i64::from(t.minute()),
        "SECOND" => i64::from(t.second()),
        "TIMEZONE_HOUR" => i64::from(t.offset().whole_hours()),
        "TIMEZONE_MINUTE" => i64::from(t.offset().minutes_past_hour()),
        other => return Err(invalid_arguments(format!("the date part {other}"))),
    })
}

fn add_to_date(t: OffsetDateTime, part: &str, n: i64) -> Result<OffsetDateTime, SelectError> {
    let overflow = || SelectError::new("IntegerOverflow", "the date is out of range");
    let seconds = match part {
        "SECOND" => Some(n),
        "MINUTE" => n.checked_mul(60),
        "HOUR" => n.checked_mul(3600),
        "DAY" => n.checked_mul(86_400),
        "MONTH" | "YEAR" => None,
        other => return Err(invalid_arguments(format!("the date part {other}"))),
    };
    if let Some(s) = seconds {
        return t
            .checked_add(time::Duration::seconds(s.min(i64::MAX / 2)))
            .ok_or_else(overflow);
    }
    let months = if part == "YEAR" {
        n.checked_mul(12).ok_or_else(overflow)?
    } else {
        n
    };
    let total = (i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1)
        .checked_add(months)
        .ok_or_else(overflow)?;
    let year = i32::try_from(total.div_euclid(12)).map_err(|_| overflow())?;
    let month = time::Month::try_from(u8::try_from(total.rem_euclid(12) + 1).unwrap_or(1))
        .map_err(|_| overflow())?;
    let last_day = time::util::days_in_month(month, year);
    let date = time::Date::from_calendar_date(year, month, t.day().min(last_day))
        .map_err(|_| overflow())?;
    Ok(t.replace_date(date))
}

fn date_diff(part: &str, a: OffsetDateTime, b: OffsetDateTime) -> Result<i64, SelectError> {
    let seconds = (b - a).whole_seconds();
    Ok(match part {
        "SECOND" => seconds,
        "MINUTE" => seconds / 60,
        "HOUR" => seconds / 3600,
        "DAY" => seconds / 86_400,
        "MONTH" | "YEAR" => {
            let months = (i64::from(b.year()) - i64::from(a.year())) * 12
                + i64::from(u8::from(b.month()))
                - i64::from(u8::from(a.month()));
            if part == "YEAR" { months / 12 } else { months }
        }
        other => return Err(invalid_arguments(format!("the date part {other}"))),
    })
}

fn substring(text: &str, from: Option<i64>, length: Option<i64>) -> String {
    // SQL positions start at 1; a start before it shortens the length accordingly.
    let start = i128::from(from.unwrap_or(1));
    let chars: Vec<char> = text.chars().collect();
    let end = match length {
        Some(l) => start + i128::from(l.max(0)),
        None => i128::MAX,
    };
    let lo = start.max(1) - 1;
    let hi = end.min(chars.len() as i128 + 1) - 1;
    if hi <= lo {
        return String::new();
    }
    chars[lo as usize..hi as usize].iter().collect()
}

fn int_arg(value: &Value, what: &str) -> Result<Option<i64>, SelectError> {
    match value.cast(CastType::Int) {
        Ok(Value::Int(i)) => Ok(Some(i)),
        Ok(_) => Ok(None),
        Err(_) => Err(invalid_arguments(format!("{what} must be an integer"))),
    }
}

impl Scope<'_> {
    pub(crate) fn eval(&self, expr: &Expr) -> Result<Value, SelectError> {
        Ok(match expr {
            Expr::Column(path) => match self.record {
                Some(r) => r.get(path),
                None => Value::Missing,
            },
            Expr::Literal(v) => v.clone(),
            Expr::Not(e) => from_truth(truth(&self.eval(e)?).map(|b| !b)),
            Expr::Neg(e) => arith(ArithOp::Sub, &Value::Int(0), &self.eval(e)?)?,
            Expr::And(a, b) => {
                let a = truth(&self.eval(a)?);
                if a == Some(false) {
                    return Ok(Value::Bool(false));
                }
                match (a, truth(&self.eval(b)?)) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Expr::Or(a, b) => {
                let a = truth(&self.eval(a)?);
                if a == Some(true) {
                    return Ok(Value::Bool(true));
                }
                match (a, truth(&self.eval(b)?)) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            Expr::Compare(op, a, b) => {
                let order = self.eval(a)?.compare(&self.eval(b)?);
                from_truth(order.map(|o| match op {
                    CmpOp::Eq => o == Ordering::Equal,
                    CmpOp::NotEq => o != Ordering::Equal,
                    CmpOp::Lt => o == Ordering::Less,
                    CmpOp::LtEq => o != Ordering::Greater,
                    CmpOp::Gt => o == Ordering::Greater,
                    CmpOp::GtEq => o != Ordering::Less,
                }))
            }
            Expr::Arith(op, a, b) => arith(*op, &self.eval(a)?, &self.eval(b)?)?,
            Expr::Concat(a, b) => {
                let (a, b) = (self.eval(a)?, self.eval(b)?);
                if a.is_null() || b.is_null() {
                    Value::Null
                } else {
                    Value::Str(a.text() + &b.text())
                }
            }
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => {
                let (text, pattern) = (self.eval(expr)?, self.eval(pattern)?);
                if text.is_null() || pattern.is_null() {
                    return Ok(Value::Null);
                }
                let escape = match escape {
                    Some(e) => {
                        let e = self.eval(e)?.text();
                        let mut chars = e.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) => Some(c),
                            _ => {
                                return Err(SelectError::new(
                                    "LikeInvalidInputs",
                                    "the LIKE escape is one character",
                                ));
                            }
                        }
                    }
                    None => None,
                };
                Value::Bool(like(&text.text(), &pattern.text(), escape) != *negated)
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let v = self.eval(expr)?;
                let (lo, hi) = (v.compare(&self.eval(low)?), v.compare(&self.eval(high)?));
                from_truth(match (lo, hi) {
                    (Some(lo), Some(hi)) => {
                        Some((lo != Ordering::Less && hi != Ordering::Greater) != *negated)
                    }
                    _ => None,
                })
            }
            Expr::In {
                expr,
                list,
                negated,
            } => {
                let v = self.eval(expr)?;
                if v.is_null() {
                    return Ok(Value::Null);
                }
                let mut unknown = false;
                for item in list {
                    match v.compare(&self.eval(item)?) {
                        Some(Ordering::Equal) => return Ok(Value::Bool(!*negated)),
                        None => unknown = true,
                        _ => {}
                    }
                }
                if unknown {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                }
            }
            Expr::IsNull { expr, negated } => Value::Bool(self.eval(expr)?.is_null() != *negated),
            Expr::Cast(e, to) => self.eval(e)?.cast(*to)?,
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                let subject = operand.as_ref().map(|o| self.eval(o)).transpose()?;
                for (when, then) in whens {
                    let hit = match &subject {
                        Some(s) => s.compare(&self.eval(when)?) == Some(Ordering::Equal),
                        None => truth(&self.eval(when)?) == Some(true),
                    };
                    if hit {
                        return self.eval(then);
                    }
                }
                match otherwise {
                    Some(e) => self.eval(e)?,
                    None => Value::Null,
                }
            }
            Expr::Substring { expr, from, length } => {
                let text = self.eval(expr)?;
                if text.is_null() {
                    return Ok(Value::Null);
                }
                let from = match from {
                    Some(f) => int_arg(&self.eval(f)?, "SUBSTRING's start")?,
                    None => None,
                };
                let length = match length {
                    Some(l) => int_arg(&self.eval(l)?, "SUBSTRING's length")?,
                    None => None,
                };
                Value::Str(substring(&text.text(), from, length))
            }
            Expr::Trim { expr, side, what } => {
                let text = self.eval(expr)?;
                if text.is_null() {
                    return Ok(Value::Null);
                }
                let set: Vec<char> = match what {
                    Some(w) => self.eval(w)?.text().chars().collect(),
                    None => vec![' '],
                };
                let text = text.text();
                let trimmed = match side {
                    TrimWhere::Both => text.trim_matches(set.as_slice()),
                    TrimWhere::Leading => text.trim_start_matches(set.as_slice()),
                    TrimWhere::Trailing => text.trim_end_matches(set.as_slice()),
                };
                Value::Str(trimmed.to_owned())
            }
            Expr::Extract(part, e) => match timestamp_arg(&self.eval(e)?, "EXTRACT")? {
                Some(t) => Value::Int(date_part(t, part)?),
                None => Value::Null,
            },
            Expr::Function(name, args) => {
                let values = args
                    .iter()
                    .map(|a| self.eval(a))
                    .collect::<Result<Vec<_>, _>>()?;
                call(name, &values)?
            }
            Expr::Aggregate { index, .. } => {
                self.aggregates.get(*index).cloned().unwrap_or(Value::Null)
            }
        })
    }

    /// Whether a WHERE keeps the record.
    pub(crate) fn keeps(&self, filter: &Expr) -> Result<bool, SelectError> {
        Ok(truth(&self.eval(filter)?) == Some(true))
    }
}

fn call(name: &str, args: &[Value]) -> Result<Value, SelectError> {
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(invalid_arguments(format!("{name} takes {n} arguments")))
        }
    };
    let text_fn = |f: fn(&str) -> String| -> Result<Value, SelectError> {
        arity(1)?;
        Ok(if args[0].is_null() {
            Value::Null
        } else {
            Value::Str(f(&args[0].text()))
        })
    };
    Ok(match name {
        "LOWER" => text_fn(str::to_lowercase)?,
        "UPPER" => text_fn(str::to_uppercase)?,
        "TRIM" => text_fn(|s| s.trim().to_owned())?,
        "CHAR_LENGTH" | "CHARACTER_LENGTH" => {
            arity(1)?;
            if args[0].is_null() {
                Value::Null
            } else {
                Value::Int(args[0].text().chars().count() as i64)
            }
        }
        "SUBSTRING" => {
            if !(2..=3).contains(&args.len()) {
                return Err(invalid_arguments("SUBSTRING takes 2 or 3 arguments"));
            }
            if args[0].is_null() {
                return Ok(Value::Null);
            }
            let from = int_arg(&args[1], "SUBSTRING's start")?;
            let length = match args.get(2) {
                Some(l) => int_arg(l, "SUBSTRING's length")?,
                None => None,
            };
            Value::Str(substring(&args[0].text(), from, length))
        }
        "ABS" => {
            arity(1)?;
            match Number::of(&args[0]) {
                Some(Number::Int(i)) => {
                    Value::Int(i.checked_abs().ok_or_else(|| {
                        SelectError::new("IntegerOverflow", "an integer overflowed")
                    })?)
                }
                Some(Number::Float(f)) => Value::Float(f.abs()),
                None if args[0].is_null() => Value::Null,
                None => return Err(invalid_arguments("ABS takes a number")),
            }
        }
        "COALESCE" => args
            .iter()
            .find(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::Null),
        "NULLIF" => {
            arity(2)?;
            if args[0].compare(&args[1]) == Some(Ordering::Equal) {
                Value::Null
            } else {
                args[0].clone()
            }
        }
        "UTCNOW" => {
            arity(0)?;
            Value::Timestamp(OffsetDateTime::now_utc())
        }
        "TO_TIMESTAMP" => {
            arity(1)?;
            args[0].cast(CastType::Timestamp)?
        }
        "TO_STRING" => {
            if args.is_empty() || args.len() > 2 {
                return Err(invalid_arguments("TO_STRING takes 1 or 2 arguments"));
            }
            match timestamp_arg(&args[0], "TO_STRING")? {
                Some(t) => Value::Str(Value::Timestamp(t).text()),
                None => Value::Null,
            }
        }
        "DATE_ADD" => {
            arity(3)?;
            let part = args[0].text();
            let (Some(n), Some(t)) = (
                int_arg(&args[1], "DATE_ADD's quantity")?,
                timestamp_arg(&args[2], "DATE_ADD")?,
            ) else {
                return Ok(Value::Null);
            };
            Value::Timestamp(add_to_date(t, &part, n)?)
        }
        "DATE_DIFF" => {
            arity(3)?;
            let part = args[0].text();
            let (Some(a), Some(b)) = (
                timestamp_arg(&args[1], "DATE_DIFF")?,
                timestamp_arg(&args[2], "DATE_DIFF")?,
            ) else {
                return Ok(Value::Null);
            };
            Value::Int(date_diff(&part, a, b)?)
        }
        other => {
            return Err(SelectError::new(
                "UnsupportedFunction",
                format!("the function {other} is not supported"),
            ));
        }
    })
}

/// One aggregate, folded record by record.
#[derive(Debug, Clone)]
pub(crate) struct Accumulator {
    func: AggFunc,
    /// Strings are untyped text (CSV fields): MIN and MAX fold the ones that spell numbers as
    /// numbers. A JSON or Parquet string stays a string.
    untyped_text: bool,
    count: i64,
    sum: Option<Number>,
    best: Option<Value>,
}

impl Accumulator {
    pub(crate) fn new(func: AggFunc, untyped_text: bool) -> Self {
        Self {
            func,
            untyped_text,
            count: 0,
            sum: None,
            best: None,
        }
    }

    /// Adds one record's value (`None`: the record itself, for `COUNT(*)`).
    pub(crate) fn add(&mut self, value: Option<Value>) -> Result<(), SelectError> {
        let Some(value) = value else {
            self.count += 1;
            return Ok(());
        };
        if value.is_null() {
            return Ok(());
        }
        match self.func {
            AggFunc::Count => self.count += 1,
            AggFunc::Sum | AggFunc::Avg => {
                let n = Number::of(&value).ok_or_else(|| {
                    invalid_arguments(format!("{} is not a number", value.text()))
                })?;
                self.count += 1;
                self.sum = Some(match (self.sum, n) {
                    (None, n) => n,
                    (Some(Number::Int(a)), Number::Int(b)) => match a.checked_add(b) {
                        Some(s) => Number::Int(s),
                        None => Number::Float(a as f64 + b as f64),
                    },
                    (Some(a), b) => Number::Float(a.float() + b.float()),
                });
            }
            AggFunc::Min | AggFunc::Max => {
                // CSV fields are strings: they fold as the numbers they spell.
                let value = match (&value, Number::of(&value)) {
                    (Value::Str(_), Some(n)) if self.untyped_text => n.value(),
                    _ => value,
                };
                let better = match &self.best {
                    None => true,
                    Some(best) => match value.compare(best) {
                        Some(Ordering::Less) => self.func == AggFunc::Min,
                        Some(Ordering::Greater) => self.func == AggFunc::Max,
                        _ => false,
                    },
                };
                if better {
                    self.best = Some(value);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn result(&self) -> Value {
        match self.func {
            AggFunc::Count => Value::Int(self.count),
            AggFunc::Sum => self.sum.map_or(Value::Null, Number::value),
            AggFunc::Avg => match self.sum {
                Some(s) if self.count > 0 => Value::Float(s.float() / self.count as f64),
                _ => Value::Null,
            },
            AggFunc::Min | AggFunc::Max => self.best.clone().unwrap_or(Value::Null),
        }
    }
}

/// The aggregates of `expr` (and their arguments), by index.
pub(crate) fn aggregate_args<'a>(expr: &'a Expr, out: &mut Vec<(usize, Option<&'a Expr>)>) {
    match expr {
        Expr::Aggregate { index, arg, .. } => out.push((*index, arg.as_deref())),
        other => other
            .children()
            .into_iter()
            .for_each(|e| aggregate_args(e, out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_wildcards_and_escapes() {
        assert!(like("hello", "h%o", None));
        assert!(like("hello", "h_llo", None));
        assert!(!like("hello", "h_lo", None));
        assert!(like("100%", "100!%", Some('!')));
        assert!(!like("1000", "100!%", Some('!')));
        assert!(like("", "%", None));
        assert!(like("abcabc", "%bc%bc", None));
        assert!(!like("abc", "", None));
    }

    #[test]
    fn substrings_count_from_one() {
        assert_eq!(substring("hello", Some(2), Some(3)), "ell");
        assert_eq!(substring("hello", Some(0), Some(2)), "h");
        assert_eq!(substring("hello", Some(4), None), "lo");
        assert_eq!(substring("hello", Some(9), None), "");
        assert_eq!(substring("hello", Some(i64::MIN), Some(0)), "");
        assert_eq!(substring("hello", Some(i64::MAX), Some(i64::MAX)), "");
    }

    #[test]
    fn dates_add_and_differ_by_their_parts() {
        let t = crate::value::parse_timestamp("2024-01-31T10:00:00Z").unwrap();
        let next = add_to_date(t, "MONTH", 1).unwrap();
        assert_eq!((next.month() as u8, next.day()), (2, 29));
        assert_eq!(
            date_diff("DAY", t, add_to_date(t, "DAY", 40).unwrap()).unwrap(),
            40
        );
        assert_eq!(date_part(t, "YEAR").unwrap(), 2024);
    }

    #[test]
    fn aggregates_fold_numbers_and_skip_nulls() {
        let mut avg = Accumulator::new(AggFunc::Avg, true);
        for v in [Value::Str("1".into()), Value::Int(2), Value::Null] {
            avg.add(Some(v)).unwrap();
        }
        assert_eq!(avg.result(), Value::Float(1.5));
        let mut max = Accumulator::new(AggFunc::Max, true);
        let mut typed = Accumulator::new(AggFunc::Max, false);
        for v in ["9", "10", "2"] {
            max.add(Some(Value::Str(v.into()))).unwrap();
            typed.add(Some(Value::Str(v.into()))).unwrap();
        }
        assert_eq!(max.result(), Value::Int(10));
        assert_eq!(typed.result(), Value::Str("9".into()));
    }
}
