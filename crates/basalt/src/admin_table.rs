//! How `basalt admin` shows an answer without `--json`: a list of records as a table with a
//! column per field, one record as `field: value` lines.

use serde_json::Value;

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// The text of `answer`, ending with a newline.
pub fn render(answer: &Value) -> String {
    match answer {
        Value::Array(rows) if rows.is_empty() => "(none)\n".to_owned(),
        Value::Array(rows) => table(rows),
        Value::Object(fields) => {
            let width = fields.keys().map(String::len).max().unwrap_or(0);
            let mut sorted: Vec<_> = fields.iter().collect();
            sorted.sort_by_key(|(k, _)| k.as_str());
            sorted
                .into_iter()
                .map(|(k, v)| format!("{k:<width$}  {}\n", cell(v)))
                .collect()
        }
        other => format!("{}\n", cell(other)),
    }
}

/// Columns that name a record, shown first in this order.
const NAMING_COLUMNS: [&str; 5] = ["name", "key_id", "alias", "access_key", "user"];

fn table(rows: &[Value]) -> String {
    // The columns are the fields of every row: what names a row first, the rest by name.
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        for key in row.as_object().into_iter().flat_map(|o| o.keys()) {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    columns.sort_by_key(|c| {
        (
            NAMING_COLUMNS
                .iter()
                .position(|n| n == c)
                .unwrap_or(NAMING_COLUMNS.len()),
            *c,
        )
    });
    if columns.is_empty() {
        return rows.iter().map(|r| format!("{}\n", cell(r))).collect();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(&row[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        let mut out = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(columns.iter().map(|c| c.to_uppercase()).collect());
    for row in cells {
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_tables_and_records_are_lines() {
        let users = serde_json::json!([
            {"name": "ana", "disabled": false, "policies": ["readonly"]},
            {"name": "bartholomew", "disabled": true, "policies": []},
        ]);
        assert_eq!(
            render(&users),
            "NAME         DISABLED  POLICIES\n\
             ana          false     readonly\n\
             bartholomew  true      -\n"
        );
        assert_eq!(render(&serde_json::json!([])), "(none)\n");
        assert_eq!(
            render(&serde_json::json!({"user": "ana", "access_key": "BK1"})),
            "access_key  BK1\nuser        ana\n"
        );
    }
}
