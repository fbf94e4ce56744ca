//! Tables the client prints: aligned for a terminal (Chinese names take two
//! columns each), CSV for spreadsheets, JSON for programs.

use jixiao_proto::{Decimal, aggregator::StandingRow};
use unicode_width::UnicodeWidthStr;

/// How a table is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Columns aligned for a terminal.
    #[default]
    Table,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// A JSON array of objects keyed by column.
    Json,
}

/// A table of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.aligned(),
            Format::Csv => self.csv(),
            Format::Json => self.json(),
        }
    }

    /// Numbers (and the rank) are right-aligned, text left-aligned.
    fn aligned(&self) -> String {
        let numeric: Vec<bool> = (0..self.headers.len())
            .map(|c| {
                self.rows.iter().all(|r| {
                    r[c].chars()
                        .all(|ch| ch.is_ascii_digit() || ".-".contains(ch))
                })
            })
            .collect();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].width())
                    .chain([self.headers[c].width()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (c, cell) in cells.iter().enumerate() {
                let pad = " ".repeat(widths[c] - cell.width());
                if c > 0 {
                    out.push_str("  ");
                }
                if numeric[c] {
                    out.push_str(&pad);
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    if c + 1 < cells.len() {
                        out.push_str(&pad);
                    }
                }
            }
            // An empty last column leaves only padding behind.
            let mut out = out.trim_end().to_string();
            out.push('\n');
            out
        };
        let mut out = line(self.headers.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }

    fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        // Writing to memory cannot fail.
        w.write_record(&self.headers).expect("csv to memory");
        for row in &self.rows {
            w.write_record(row).expect("csv to memory");
        }
        String::from_utf8(w.into_inner().expect("csv to memory")).expect("utf-8 cells")
    }

    /// Keys in column order (a JSON map would sort them).
    fn json(&self) -> String {
        if self.rows.is_empty() {
            return "[]\n".into();
        }
        let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                let fields: Vec<String> = self
                    .headers
                    .iter()
                    .zip(row)
                    .map(|(h, v)| format!("{}: {}", quote(h), quote(v)))
                    .collect();
                format!("  {{{}}}", fields.join(", "))
            })
            .collect();
        format!("[\n{}\n]\n", rows.join(",\n"))
    }
}

/// A decimal cell; `-` when missing.
pub fn decimal(d: &Option<Decimal>) -> String {
    d.as_ref().map_or("-".to_string(), |d| d.value.clone())
}

/// The columns of a published table (DOMAIN.md §9).
pub const STANDING_COLUMNS: [&str; 13] = [
    "rank",
    "unit",
    "name",
    "indicator",
    "survey",
    "online",
    "mutual",
    "review",
    "deductions",
    "credits",
    "adjustment",
    "composite",
    "flags",
];

/// Standing rows as a table; an unranked row (missing components) shows `-`.
pub fn standings(rows: &[StandingRow]) -> Table {
    let mut table = Table::new(&STANDING_COLUMNS);
    for r in rows {
        let missing = r
            .missing
            .iter()
            .map(|c| {
                jixiao_proto::aggregator::Component::try_from(*c)
                    .map(|c| {
                        format!(
                            "MISSING_{}",
                            c.as_str_name().trim_start_matches("COMPONENT_")
                        )
                    })
                    .unwrap_or_default()
            })
            .chain(r.flags.iter().cloned());
        table.push(vec![
            if r.rank > 0 {
                r.rank.to_string()
            } else {
                "-".into()
            },
            r.unit.trim_start_matches("units/").to_string(),
            r.unit_display_name.clone(),
            decimal(&r.indicator),
            decimal(&r.survey),
            decimal(&r.online),
            decimal(&r.mutual),
            decimal(&r.review_total),
            decimal(&r.deductions),
            decimal(&r.credits),
            decimal(&r.adjustment),
            decimal(&r.composite),
            missing.collect::<Vec<_>>().join(" "),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["rank", "name", "composite"]);
        t.push(vec!["1".into(), "思明区".into(), "84.475".into()]);
        t.push(vec![
            "10".into(),
            "Huli, \"the\" district".into(),
            "-".into(),
        ]);
        t
    }

    #[test]
    fn aligns_wide_characters_and_right_aligns_numbers() {
        let out = sample().render(Format::Table);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "rank  name                  composite");
        assert_eq!(lines[1], "   1  思明区                   84.475");
        assert_eq!(lines[2], "  10  Huli, \"the\" district          -");
        let widths: Vec<usize> = lines.iter().map(|l| l.width()).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{widths:?}");
    }

    #[test]
    fn csv_quotes_and_json_keys_by_column() {
        assert_eq!(
            sample().render(Format::Csv),
            "rank,name,composite\n1,思明区,84.475\n10,\"Huli, \"\"the\"\" district\",-\n"
        );
        let json: serde_json::Value = serde_json::from_str(&sample().render(Format::Json)).unwrap();
        assert_eq!(json[0]["name"], "思明区");
        assert_eq!(json[1]["composite"], "-");
        assert!(
            sample()
                .render(Format::Json)
                .starts_with("[\n  {\"rank\": \"1\", \"name\"")
        );
    }
}
