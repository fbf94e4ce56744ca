//! `jixiao values report`: a provider's indicator values from a CSV file.

use std::path::Path;

use jixiao_proto::{
    Decimal,
    indicators::{
        BatchReportValuesRequest, IndicatorValue,
        indicators_service_client::IndicatorsServiceClient,
    },
    types::{EvidenceItem, Period, PeriodKind},
};
use sha2::Digest;

use super::{Caller, progress};
use crate::client::{describe, unit_name};

/// A CSV period cell, as in value names: `2026` (annual), `2026-Q3`,
/// `2026-07`.
pub(super) fn period(cell: &str) -> Result<Period, String> {
    let bad = || format!("period {cell:?} is not YYYY, YYYY-Qn or YYYY-MM");
    let (year, rest) = cell.split_once('-').unwrap_or((cell, ""));
    let year: i32 = year.parse().map_err(|_| bad())?;
    let (kind, index) = match rest.strip_prefix('Q') {
        _ if rest.is_empty() => (PeriodKind::Annual, 0),
        Some(q) => (PeriodKind::Quarter, q.parse().map_err(|_| bad())?),
        None if rest.len() == 2 => (PeriodKind::Month, rest.parse().map_err(|_| bad())?),
        None => return Err(bad()),
    };
    Ok(Period {
        kind: kind as i32,
        year,
        index,
    })
}

/// Rows of a values CSV, each with its line number.
pub(super) fn read_values(text: &str) -> Result<Vec<(usize, IndicatorValue)>, String> {
    const REQUIRED: [&str; 4] = ["unit", "indicator", "period", "value"];
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("header: {e}"))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    for name in REQUIRED {
        column(name).ok_or(format!("the header has no column {name:?}"))?;
    }
    let mut out = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        let cell = |name: &str| {
            column(name)
                .and_then(|i| record.get(i))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let unit = cell("unit");
        let evidence = if cell("evidence_name").is_empty() {
            Vec::new()
        } else {
            vec![EvidenceItem {
                name: cell("evidence_name"),
                media_type: cell("evidence_media_type"),
                size_bytes: cell("evidence_size").parse().unwrap_or(0),
                sha256: cell("evidence_sha256"),
                uri: cell("evidence_uri"),
            }]
        };
        out.push((
            line,
            IndicatorValue {
                unit: unit_name(&unit),
                indicator: cell("indicator"),
                period: Some(period(&cell("period")).map_err(|e| format!("line {line}: {e}"))?),
                value: Some(Decimal {
                    value: cell("value"),
                }),
                evidence,
                comment: cell("comment"),
                ..Default::default()
            },
        ));
    }
    Ok(out)
}

/// Rows per all-or-nothing batch.
const VALUE_BATCH: usize = 500;

/// `jixiao values report`: a provider's values from a CSV file, in
/// all-or-nothing batches whose request ids derive from the file's content,
/// so running the command again stores nothing twice. A refused batch is
/// reported by CSV line and field.
pub async fn report_values(caller: &Caller, cycle: &str, file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let rows = read_values(&text)?;
    let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    let mut client = IndicatorsServiceClient::new(caller.channel().await?);
    let bar = progress(rows.len(), "values");
    let mut stored = 0;
    for (n, chunk) in rows.chunks(VALUE_BATCH).enumerate() {
        let result = client
            .batch_report_values(BatchReportValuesRequest {
                parent: format!("cycles/{cycle}"),
                values: chunk.iter().map(|(_, v)| v.clone()).collect(),
                request_id: format!("values-csv-{}-{n}", &digest[..16]),
            })
            .await;
        match result {
            Ok(r) => stored += r.into_inner().values.len(),
            Err(s) => {
                bar.finish_and_clear();
                return Err(by_line(&s, chunk, stored));
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(format!("stored {stored} values from {}\n", file.display()))
}

/// A refused batch, its `values[i].…` fields named by CSV line.
fn by_line(status: &tonic::Status, chunk: &[(usize, IndicatorValue)], stored: usize) -> String {
    use tonic_types::StatusExt;
    let head = format!(
        "{stored} values stored before this batch; the batch of lines {}–{} was refused as a whole",
        chunk.first().map_or(0, |c| c.0),
        chunk.last().map_or(0, |c| c.0),
    );
    let details = status.get_error_details();
    let Some(bad) = details.bad_request() else {
        return format!("{head}: {}", describe(status));
    };
    let mut out = format!("{head}: {:?}", status.code());
    for v in &bad.field_violations {
        let line = v
            .field
            .strip_prefix("values[")
            .and_then(|rest| rest.split_once(']'))
            .and_then(|(i, _)| i.parse::<usize>().ok())
            .and_then(|i| chunk.get(i))
            .map_or(String::new(), |(line, _)| format!("line {line}: "));
        out.push_str(&format!("\n  {line}{}: {}", v.field, v.description));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_written_as_year_quarter_or_month() {
        let p = period("2026-Q3").unwrap();
        assert_eq!(
            (p.kind, p.year, p.index),
            (PeriodKind::Quarter as i32, 2026, 3)
        );
        assert_eq!(period("2026").unwrap().kind, PeriodKind::Annual as i32);
        assert_eq!(period("2026-07").unwrap().index, 7);
        assert_eq!(period("2026-07").unwrap().kind, PeriodKind::Month as i32);
        assert!(period("2026-W1").unwrap_err().contains("YYYY-Qn"));
        assert!(period("2026-7").is_err());
    }

    #[test]
    fn value_rows_keep_their_line_numbers_and_evidence() {
        let csv = "unit,indicator,period,value,evidence_name,evidence_sha256\n\
                   siming,GDP_GROWTH,2026,7.1,公报.pdf,abc\n\
                   units/huli,GDP_GROWTH,2026-Q2,3.4,,\n";
        let rows = read_values(csv).unwrap();
        assert_eq!((rows[0].0, rows[1].0), (2, 3));
        assert_eq!(rows[1].1.unit, "units/huli");
        assert_eq!(rows[0].1.evidence[0].name, "公报.pdf");
        assert!(rows[1].1.evidence.is_empty());
        assert!(
            read_values("unit,indicator\n")
                .unwrap_err()
                .contains("period")
        );
    }
}
