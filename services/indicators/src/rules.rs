//! Entry rules for indicator values (DOMAIN.md §5): periods, evidence and
//! progress, as plain functions.

use jixiao_proto::types::{Period, PeriodKind};
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
    // A share is reported to 4 places and read against the pro-rata
    // expectation (at most 1): past [`MAX_SHARE`] the exact quotient tells
    // nothing more, and a quotient of two extreme values would not fit.
    let max = Decimal::from(MAX_SHARE);
    // Where den × max does not fit, |num / den| is below max anyway.
    let share = match den.checked_mul(max) {
        Some(bound) if num >= bound => max,
        Some(bound) if num <= -bound => -max,
        _ => num.checked_div(den)?,
    };
    Some(jixiao_runtime::decimal::round_half_away(share, 4))
}

/// The largest achieved share reported: 1,000,000 times the target.
pub const MAX_SHARE: i64 = 1_000_000;

/// At risk: trailing the pro-rata expectation by more than the threshold.
pub fn at_risk(achieved: Decimal, expected: Decimal, threshold: Decimal) -> bool {
    achieved < expected.saturating_sub(threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn achieved_share_at_the_extremes_is_capped_not_a_panic() {
        let tiny = Decimal::new(1, 28);
        assert_eq!(
            achieved_share(true, tiny, Decimal::from(45)),
            Some(Decimal::from(MAX_SHARE))
        );
        assert_eq!(
            achieved_share(false, Decimal::MAX, tiny),
            Some(Decimal::from(MAX_SHARE))
        );
        assert_eq!(
            achieved_share(true, Decimal::MAX, tiny),
            Some(Decimal::ZERO)
        );
        assert_eq!(
            achieved_share(true, tiny, Decimal::MIN),
            Some(Decimal::from(-MAX_SHARE))
        );
        assert_eq!(
            achieved_share(true, Decimal::MAX, Decimal::MIN),
            Some(-Decimal::ONE)
        );
        assert!(!at_risk(Decimal::ZERO, Decimal::MIN, Decimal::MAX));
    }

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
