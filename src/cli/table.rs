//! The CLI's tables: each column as wide as its widest cell, so long
//! names, ids and destination lists never push the columns after them out
//! of line. The last column is never padded (it holds URLs and dates).

use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    /// Numbers.
    Right,
}

pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// One row, a cell per column (missing cells are blank).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|(title, _)| title.chars().count())
            .collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let titles: Vec<String> = self.columns.iter().map(|(t, _)| t.to_string()).collect();
        for row in std::iter::once(&titles).chain(&self.rows) {
            let mut line = String::new();
            for (i, ((_, align), width)) in self.columns.iter().zip(&widths).enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                let last = i + 1 == self.columns.len();
                if i > 0 {
                    line.push_str("  ");
                }
                match (align, last) {
                    (Align::Left, true) => line.push_str(cell),
                    (Align::Left, false) => {
                        let _ = write!(line, "{cell:<width$}");
                    }
                    (Align::Right, _) => {
                        let _ = write!(line, "{cell:>width$}");
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell() {
        let mut table = Table::new(&[
            ("NAME", Align::Left),
            ("COUNT", Align::Right),
            ("URL", Align::Left),
        ]);
        table.row(vec!["a-long-name".into(), "7".into(), "http://a/".into()]);
        table.row(vec!["b".into(), "12345678".into(), "http://b/".into()]);
        assert_eq!(
            table.render(),
            "NAME            COUNT  URL\n\
             a-long-name         7  http://a/\n\
             b            12345678  http://b/\n"
        );
    }

    #[test]
    fn a_short_row_leaves_its_last_cells_blank() {
        let mut table = Table::new(&[("A", Align::Left), ("B", Align::Left)]);
        table.row(vec!["x".into()]);
        assert_eq!(table.render(), "A  B\nx\n");
    }
}
