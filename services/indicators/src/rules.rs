//! Entry rules for indicator values (DOMAIN.md §5): periods, evidence and
//! progress, as plain functions.

use jixiao_proto::types::{EvidenceItem, Period, PeriodKind};
use jixiao_runtime::Violations;
use rust_decimal::Decimal;

/// The key of a period in resource names: "2026", "2026-Q1", "2026-03".
pub fn period_key(p: &Period) -> String {
    match PeriodKind::try_from(p.kind) {
        Ok(PeriodKind::Quarter) => format!("{}-Q{}", p.year, p.index),
        Ok(PeriodKind::Month) => format!("{}-{:02}", p.year, p.index),
        _ => p.year.to_string(),
    }
}

/// Parses a period key back.
pub fn parse_period_key(key: &str) -> Option<Period> {
    let (year, rest) = match key.split_once('-') {
        Some((y, r)) => (y.parse().ok()?, Some(r)),
        None => (key.parse().ok()?, None),
    };
    let (kind, index) = match rest {
        None => (PeriodKind::Annual, 0),
        Some(r) => match r.strip_prefix('Q') {
            Some(q) => (PeriodKind::Quarter, q.parse().ok()?),
            None => (PeriodKind::Month, r.parse().ok()?),
        },
    };
    let p = Period {
        kind: kind as i32,
        year,
        index,
    };
    (period_key(&p) == key).then_some(p)
}

/// Checks a period against the cycle's year.
pub fn check_period(p: &Option<Period>, cycle_year: i32, field: &str, v: &mut Violations) {
    let Some(p) = p else {
        v.add(field, "is required");
        return;
    };
    match PeriodKind::try_from(p.kind) {
        Ok(PeriodKind::Annual) => v.check(
            p.index == 0,
            format!("{field}.index"),
            "must be 0 for an annual value",
        ),
        Ok(PeriodKind::Quarter) => v.check(
            (1..=4).contains(&p.index),
            format!("{field}.index"),
            "must be a quarter 1-4",
        ),
        Ok(PeriodKind::Month) => v.check(
            (1..=12).contains(&p.index),
            format!("{field}.index"),
            "must be a month 1-12",
        ),
        _ => v.add(format!("{field}.kind"), "must be ANNUAL, QUARTER or MONTH"),
    }
    v.check(
        p.year == cycle_year,
        format!("{field}.year"),
        format!("{} is outside the cycle's year {cycle_year}", p.year),
    );
}

/// Checks evidence descriptions: a name, a media type, a size and a
/// SHA-256 of 64 lower-case hex digits.
pub fn check_evidence(items: &[EvidenceItem], field: &str, v: &mut Violations) {
    for (i, e) in items.iter().enumerate() {
        let f = format!("{field}[{i}]");
        v.check(
            !e.name.trim().is_empty(),
            format!("{f}.name"),
            "is required",
        );
        v.check(
            !e.media_type.trim().is_empty(),
            format!("{f}.media_type"),
            "is required",
        );
        v.check(
            e.size_bytes >= 0,
            format!("{f}.size_bytes"),
            "must not be negative",
        );
        v.check(
            e.sha256.len() == 64
                && e.sha256
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            format!("{f}.sha256"),
            "must be 64 lower-case hex digits",
        );
        v.check(!e.uri.trim().is_empty(), format!("{f}.uri"), "is required");
    }
}

/// The share of the year a progress period covers: Q2 → 0.5, month 3 → 0.25.
pub fn elapsed_share(p: &Period) -> Decimal {
    match PeriodKind::try_from(p.kind) {
        Ok(PeriodKind::Quarter) => Decimal::from(p.index) / Decimal::from(4),
        Ok(PeriodKind::Month) => Decimal::from(p.index) / Decimal::from(12),
        _ => Decimal::ONE,
    }
}

/// Achieved share of the target, direction-aware: higher `A / T`, lower
/// `T / A`; None when no ratio can be taken.
pub fn achieved_share(higher_is_better: bool, target: Decimal, actual: Decimal) -> Option<Decimal> {
    let (num, den) = if higher_is_better {
        (actual, target)
    } else {
        (target, actual)
    };
    if den <= Decimal::ZERO {
        return None;
    }
    Some(jixiao_runtime::decimal::round_half_away(num / den, 4))
}

/// At risk: trailing the pro-rata expectation by more than the threshold.
pub fn at_risk(achieved: Decimal, expected: Decimal, threshold: Decimal) -> bool {
    achieved < expected - threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn period_keys_round_trip() {
        for key in ["2026", "2026-Q3", "2026-07", "2026-12"] {
            assert_eq!(period_key(&parse_period_key(key).unwrap()), key);
        }
        for bad in ["2026-Q", "2026-7", "x", "2026-Q1-1"] {
            assert!(parse_period_key(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn periods_must_lie_in_the_cycle() {
        let mut v = Violations::new();
        check_period(
            &Some(Period {
                kind: PeriodKind::Quarter as i32,
                year: 2025,
                index: 5,
            }),
            2026,
            "value.period",
            &mut v,
        );
        let fields: Vec<_> = v.as_slice().iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["value.period.index", "value.period.year"]);
    }

    #[test]
    fn evidence_needs_a_digest() {
        let mut v = Violations::new();
        let good = EvidenceItem {
            name: "a.pdf".into(),
            media_type: "application/pdf".into(),
            size_bytes: 3,
            sha256: "a".repeat(64),
            uri: "s3://x/a.pdf".into(),
        };
        let bad = EvidenceItem {
            sha256: "XYZ".into(),
            ..good.clone()
        };
        check_evidence(&[good, bad], "value.evidence", &mut v);
        assert_eq!(v.as_slice().len(), 1);
        assert_eq!(v.as_slice()[0].field, "value.evidence[1].sha256");
    }

    #[test]
    fn progress_trailing_the_pro_rata_expectation_is_at_risk() {
        let half = elapsed_share(&Period {
            kind: PeriodKind::Quarter as i32,
            year: 2026,
            index: 2,
        });
        assert_eq!(half, d("0.5"));
        let share = achieved_share(true, d("1200"), d("420")).unwrap();
        assert_eq!(share, d("0.35"));
        assert!(at_risk(share, half, d("0.1")));
        assert!(!at_risk(d("0.45"), half, d("0.1")));
        assert_eq!(achieved_share(false, d("0.45"), d("0.5")), Some(d("0.9")));
        assert_eq!(achieved_share(true, d("0"), d("5")), None);
    }
}
