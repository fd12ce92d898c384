//! Text tables of results, and the formats their cells share.

use std::time::Duration;

/// Left-aligned text columns, as wide as their widest cell.
pub struct Table<const N: usize> {
    rows: Vec<[String; N]>,
}

impl<const N: usize> Default for Table<N> {
    fn default() -> Self {
        Self { rows: Vec::new() }
    }
}

impl<const N: usize> Table<N> {
    /// Adds a row.
    pub fn row(&mut self, cells: [&str; N]) {
        self.rows.push(cells.map(str::to_owned));
    }

    /// Prints every row, padding each column to its widest cell.
    pub fn print(&self) {
        let mut widths = [0; N];
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            println!("{}", cells.join("  ").trim_end());
        }
    }
}

/// "yes" when a goal is met, "NO" when it is not.
pub fn met(yes: bool) -> &'static str {
    if yes { "yes" } else { "NO" }
}

/// A rate per second, without decimals; empty when there is none.
pub fn per_second(rate: Option<f64>) -> String {
    rate.map(|r| format!("{r:.0}")).unwrap_or_default()
}

/// Seconds with two decimals and the unit.
pub fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

/// Milliseconds without the unit: two decimals below 10 ms, one above.
pub fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}
