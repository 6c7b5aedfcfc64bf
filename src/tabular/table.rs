//! A table read from CSV text: a header of unique, non-empty column names, then rows of exactly
//! that many cells (RFC 4180 quoting). A column is numeric when every one of its cells is a
//! finite number (pandas' `select_dtypes("number")` on the parsed file), else categorical.
//! The table is untrusted: its size, width and length are capped before anything is kept.

use std::collections::BTreeSet;

use super::{Result, TabularError};

/// The largest CSV read, in bytes: a sensitive table of a few thousand rows fits many times.
pub const MAX_CSV_BYTES: usize = 4 << 20;
pub const MAX_ROWS: usize = 50_000;
pub const MAX_COLUMNS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Numeric,
    Categorical,
}

/// The cells as written, and each column's kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub kinds: Vec<Kind>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn parse_csv(text: &str) -> Result<Table> {
        if text.len() > MAX_CSV_BYTES {
            return Err(TabularError::TooLarge(format!(
                "the CSV is {} bytes; at most {MAX_CSV_BYTES} are read",
                text.len()
            )));
        }
        let mut records = Records { text: text.strip_prefix('\u{FEFF}').unwrap_or(text), at: 0, line: 1 };
        let (_, columns) = records.next_record()?.ok_or_else(|| TabularError::BadCsv("the CSV is empty".into()))?;
        if columns.len() > MAX_COLUMNS {
            return Err(TabularError::TooLarge(format!("{} columns; at most {MAX_COLUMNS} are read", columns.len())));
        }
        let mut seen = BTreeSet::new();
        for (i, name) in columns.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(TabularError::BadCsv(format!("column {} has no name", i + 1)));
            }
            if !seen.insert(name.as_str()) {
                return Err(TabularError::BadCsv(format!("the column name {name:?} repeats")));
            }
        }
        let mut rows = Vec::new();
        while let Some((line, cells)) = records.next_record()? {
            if cells.len() == 1 && cells[0].is_empty() {
                continue;
            }
            if cells.len() != columns.len() {
                return Err(TabularError::BadCsv(format!(
                    "line {line} has {} cells; the header has {}",
                    cells.len(),
                    columns.len()
                )));
            }
            if let Some(empty) = cells.iter().position(|c| c.trim().is_empty()) {
                return Err(TabularError::BadCsv(format!("line {line}: the {:?} cell is empty", columns[empty])));
            }
            if rows.len() == MAX_ROWS {
                return Err(TabularError::TooLarge(format!("more than {MAX_ROWS} rows")));
            }
            rows.push(cells);
        }
        if rows.is_empty() {
            return Err(TabularError::BadCsv("the CSV has a header but no rows".into()));
        }
        let kinds = (0..columns.len())
            .map(|c| match rows.iter().all(|r| number(&r[c]).is_some()) {
                true => Kind::Numeric,
                false => Kind::Categorical,
            })
            .collect();
        Ok(Table { columns, kinds, rows })
    }

    pub fn column(&self, name: &str) -> Result<usize> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| TabularError::BadInput(format!("no column {name:?}; the columns are {:?}", self.columns)))
    }

    /// A numeric column's values.
    pub fn numbers(&self, column: usize) -> Vec<f64> {
        self.rows.iter().map(|r| number(&r[column]).unwrap_or(f64::NAN)).collect()
    }

    /// A column's distinct values, sorted as `np.unique` sorts strings (by code point).
    pub fn categories(&self, column: usize) -> Vec<String> {
        self.rows.iter().map(|r| r[column].clone()).collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// The table as CSV, quoting cells that need it.
    pub fn to_csv(&self) -> String {
        let line = |cells: &[String]| cells.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(",") + "\n";
        std::iter::once(line(&self.columns)).chain(self.rows.iter().map(|r| line(r))).collect()
    }

    /// A table of the same columns and kinds with other rows.
    pub fn with_rows(&self, rows: Vec<Vec<String>>) -> Table {
        Table { columns: self.columns.clone(), kinds: self.kinds.clone(), rows }
    }
}

/// A cell as a finite number, as pandas reads one (surrounding spaces allowed).
pub fn number(cell: &str) -> Option<f64> {
    cell.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

fn quoted(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

/// RFC 4180 records: fields separated by commas, records by CRLF or LF, a quoted field may hold
/// commas, line breaks and `""` for a quote.
struct Records<'t> {
    text: &'t str,
    at: usize,
    line: usize,
}

impl Records<'_> {
    /// The next record and the line it starts on, or `None` at the end.
    fn next_record(&mut self) -> Result<Option<(usize, Vec<String>)>> {
        if self.at >= self.text.len() {
            return Ok(None);
        }
        let start_line = self.line;
        let bytes = self.text.as_bytes();
        let mut cells = Vec::new();
        let mut cell = String::new();
        let mut quoted = false;
        let mut i = self.at;
        let mut cell_start = i;
        while i < bytes.len() {
            let b = bytes[i];
            if quoted {
                if b == b'"' {
                    if bytes.get(i + 1) == Some(&b'"') {
                        cell.push('"');
                        i += 2;
                        continue;
                    }
                    quoted = false;
                    i += 1;
                    if !matches!(bytes.get(i), None | Some(b',' | b'\n' | b'\r')) {
                        return Err(TabularError::BadCsv(format!("line {}: text after a closing quote", self.line)));
                    }
                    continue;
                }
                if b == b'\n' {
                    self.line += 1;
                }
                let end = next_char_end(self.text, i);
                cell.push_str(&self.text[i..end]);
                i = end;
                continue;
            }
            match b {
                b'"' if i == cell_start => {
                    quoted = true;
                    i += 1;
                }
                b',' => {
                    cells.push(std::mem::take(&mut cell));
                    i += 1;
                    cell_start = i;
                }
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    i += 1;
                }
                b'\n' => {
                    i += 1;
                    break;
                }
                _ => {
                    let end = next_char_end(self.text, i);
                    cell.push_str(&self.text[i..end]);
                    i = end;
                }
            }
        }
        if quoted {
            return Err(TabularError::BadCsv(format!("line {start_line}: a quoted cell is never closed")));
        }
        self.line += 1;
        cells.push(cell);
        self.at = i;
        Ok(Some((start_line, cells)))
    }
}

fn next_char_end(text: &str, at: usize) -> usize {
    let mut end = at + 1;
    while !text.is_char_boundary(end) {
        end += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cells_crlf_and_kinds_are_read() {
        let table = Table::parse_csv("\u{FEFF}a,b,c\r\n1,\"x, \"\"y\"\"\",2.5\r\n-3,\"line\nbreak\",1e3\n").unwrap();
        assert_eq!(table.columns, ["a", "b", "c"]);
        assert_eq!(table.rows[0], ["1", "x, \"y\"", "2.5"]);
        assert_eq!(table.rows[1][1], "line\nbreak");
        assert_eq!(table.kinds, [Kind::Numeric, Kind::Categorical, Kind::Numeric]);
        assert_eq!(Table::parse_csv(&table.to_csv()).unwrap(), table);
    }

    #[test]
    fn ragged_rows_empty_cells_and_oversized_text_are_typed_errors() {
        let bad = |text: &str| Table::parse_csv(text).unwrap_err().to_string();
        assert!(bad("a,b\n1,2\n3\n").contains("line 3 has 1 cells; the header has 2"), "{}", bad("a,b\n1,2\n3\n"));
        assert!(bad("a,b\n1,\n").contains("the \"b\" cell is empty"));
        assert!(bad("a,\n1,2\n").contains("column 2 has no name"));
        assert!(bad("a,a\n1,2\n").contains("repeats"));
        assert!(bad("a,b\n").contains("no rows"));
        assert!(bad("a,b\n\"1,2\n").contains("never closed"));
        assert!(bad(&"x".repeat(MAX_CSV_BYTES + 1)).contains("at most"));
    }
}
