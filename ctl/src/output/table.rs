//! Plain-text tables: left-aligned columns three spaces apart.

use std::fmt::Write;

/// Space between columns.
const GAP: usize = 3;

/// A table of text cells under a header row.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells print empty, extra cells are dropped.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as lines, without trailing spaces.
    pub fn render(&self) -> String {
        let widths = self.widths();
        let mut text = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let _ = writeln!(text, "{}", render_row(row, &widths));
        }
        text
    }

    /// Each column's width: its widest cell, in characters.
    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        widths
    }
}

fn render_row(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        let _ = write!(line, "{cell:<width$}", width = width + GAP);
    }
    line.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(["NAME", "REVISION"]);
        table.row(["web-frontend", "7"]);
        table.row(["db", "1234567890"]);

        assert_eq!(
            table.render(),
            "NAME           REVISION\n\
             web-frontend   7\n\
             db             1234567890\n"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut table = Table::new(["A", "B"]);
        table.row(["é…", "x"]);

        assert_eq!(table.render(), "A    B\né…   x\n");
    }

    #[test]
    fn empty_trailing_cells_leave_no_trailing_spaces() {
        let mut table = Table::new(["A", "B", "C"]);
        table.row(["1"]);

        assert_eq!(table.render(), "A   B   C\n1\n");
    }
}
