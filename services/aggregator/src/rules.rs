//! The composite score and the ranking of DOMAIN.md §3, exactly.
//!
//! 1. Every published component is rounded to 3 places, half away from
//!    zero; the review total is the sum of the three rounded review
//!    components; the composite is the sum of the rounded published parts.
//! 2. The inspection adjustment is `clamp(credits − deductions, −cap, 0)`.
//! 3. Ranks go by composite, descending, inside a group; ties are broken by
//!    the indicator score, then the review total; units still equal share a
//!    rank (1, 2, 2, 4).
//! 4. A unit with a missing component has no composite and no rank.

use std::cmp::Ordering;

use jixiao_runtime::decimal::round_half_away;
use rust_decimal::Decimal;

/// Places of a published figure.
pub const PUBLISHED_DP: u32 = 3;

/// A component of the composite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Indicator,
    Survey,
    Online,
    Mutual,
    Inspection,
}

impl Component {
    pub const ALL: [Component; 5] = [
        Component::Indicator,
        Component::Survey,
        Component::Online,
        Component::Mutual,
        Component::Inspection,
    ];

    /// The name used in documents and messages (the proto enum's suffix).
    pub fn name(self) -> &'static str {
        match self {
            Component::Indicator => "INDICATOR",
            Component::Survey => "SURVEY",
            Component::Online => "ONLINE",
            Component::Mutual => "MUTUAL",
            Component::Inspection => "INSPECTION",
        }
    }

    pub fn parse(s: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// One unit's inputs, as the component services report them (exact).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub indicator: Option<Decimal>,
    pub survey: Option<Decimal>,
    pub online: Option<Decimal>,
    pub mutual: Option<Decimal>,
    /// Counting deductions and verified credits; None when the inspection
    /// figures are missing.
    pub inspection: Option<(Decimal, Decimal)>,
}

/// One unit's published figures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    pub indicator: Option<Decimal>,
    pub survey: Option<Decimal>,
    pub online: Option<Decimal>,
    pub mutual: Option<Decimal>,
    pub review_total: Option<Decimal>,
    pub deductions: Option<Decimal>,
    pub credits: Option<Decimal>,
    pub adjustment: Option<Decimal>,
    pub composite: Option<Decimal>,
    pub missing: Vec<Component>,
    /// 0 while the composite is missing.
    pub rank: u32,
}

/// Rounds a published figure (rule 1).
pub fn published(d: Decimal) -> Decimal {
    let mut r = round_half_away(d, PUBLISHED_DP);
    r.rescale(PUBLISHED_DP);
    r
}

/// The inspection adjustment (rule 2).
pub fn adjustment(deductions: Decimal, credits: Decimal, cap: Decimal) -> Decimal {
    credits
        .saturating_sub(deductions)
        .clamp(-cap.abs(), Decimal::ZERO)
}

/// One unit's row without its rank (rules 1, 2, 4).
pub fn row(inputs: &Inputs, cap: Decimal) -> Row {
    let mut missing = Vec::new();
    let mut part = |value: Option<Decimal>, component| {
        if value.is_none() {
            missing.push(component);
        }
        value.map(published)
    };
    let indicator = part(inputs.indicator, Component::Indicator);
    let survey = part(inputs.survey, Component::Survey);
    let online = part(inputs.online, Component::Online);
    let mutual = part(inputs.mutual, Component::Mutual);
    let (deductions, credits, adjustment) = match inputs.inspection {
        Some((d, c)) => (
            Some(published(d)),
            Some(published(c)),
            Some(published(adjustment(d, c, cap))),
        ),
        None => {
            missing.push(Component::Inspection);
            (None, None, None)
        }
    };
    let review_total = match (survey, online, mutual) {
        (Some(s), Some(o), Some(m)) => Some(s.saturating_add(o).saturating_add(m)),
        _ => None,
    };
    let composite = match (indicator, review_total, adjustment) {
        (Some(i), Some(r), Some(a)) => Some(i.saturating_add(r).saturating_add(a)),
        _ => None,
    };
    Row {
        indicator,
        survey,
        online,
        mutual,
        review_total,
        deductions,
        credits,
        adjustment,
        composite,
        missing,
        rank: 0,
    }
}

/// The order of rule 3: composite, then indicator, then review total, all
/// descending.
fn standing_order(a: &Row, b: &Row) -> Ordering {
    (b.composite, b.indicator, b.review_total).cmp(&(a.composite, a.indicator, a.review_total))
}

/// Assigns ranks in place (rule 3); rows without a composite get rank 0.
pub fn rank(rows: &mut [Row]) {
    let mut order: Vec<usize> = (0..rows.len())
        .filter(|i| rows[*i].composite.is_some())
        .collect();
    order.sort_by(|a, b| standing_order(&rows[*a], &rows[*b]));
    let mut previous: Option<usize> = None;
    for (position, &i) in order.iter().enumerate() {
        let rank = match previous {
            Some(p) if standing_order(&rows[p], &rows[i]) == Ordering::Equal => rows[p].rank,
            _ => position as u32 + 1,
        };
        rows[i].rank = rank;
        previous = Some(i);
    }
    for r in rows.iter_mut().filter(|r| r.composite.is_none()) {
        r.rank = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn inputs(i: &str, s: &str, o: &str, m: &str, ded: &str, cred: &str) -> Inputs {
        Inputs {
            indicator: Some(d(i)),
            survey: Some(d(s)),
            online: Some(d(o)),
            mutual: Some(d(m)),
            inspection: Some((d(ded), d(cred))),
        }
    }

    #[test]
    fn the_worked_examples_of_the_domain() {
        let a = row(
            &inputs("50.125", "25.5", "4.1", "4.75", "4.0", "5.0"),
            d("5"),
        );
        assert_eq!(a.review_total, Some(d("34.35")));
        assert_eq!(a.adjustment, Some(d("0")));
        assert_eq!(a.composite.unwrap().to_string(), "84.475");
        let b = row(&inputs("49.9", "24.0", "4.5", "4.6", "7.5", "1.0"), d("5"));
        assert_eq!(b.review_total, Some(d("33.1")));
        assert_eq!(b.adjustment, Some(d("-5")));
        assert_eq!(b.composite.unwrap().to_string(), "78.000");
    }

    #[test]
    fn components_are_rounded_before_they_are_added() {
        // 25.0005 → 25.001 and 4.0005 → 4.001: the review total is 29.002,
        // where rounding the exact sum 29.001 would differ.
        let r = row(
            &inputs("50.0004", "25.0005", "4.0005", "0", "0", "0"),
            d("5"),
        );
        assert_eq!(r.indicator.unwrap().to_string(), "50.000");
        assert_eq!(r.review_total.unwrap().to_string(), "29.002");
        assert_eq!(r.composite.unwrap().to_string(), "79.002");
    }

    #[test]
    fn adjustment_examples() {
        assert_eq!(adjustment(d("6.3"), d("6.0"), d("5")), d("-0.3"));
        assert_eq!(adjustment(d("5.0"), d("7.0"), d("5")), d("0"));
        assert_eq!(adjustment(d("8.0"), d("1.0"), d("5")), d("-5"));
    }

    #[test]
    fn a_missing_component_leaves_no_composite_and_no_rank() {
        let mut rows = vec![
            row(
                &Inputs {
                    survey: None,
                    ..inputs("50", "25", "4", "4", "0", "0")
                },
                d("5"),
            ),
            row(&inputs("40", "25", "4", "4", "0", "0"), d("5")),
        ];
        rank(&mut rows);
        assert_eq!(rows[0].missing, [Component::Survey]);
        assert_eq!((rows[0].composite, rows[0].rank), (None, 0));
        assert_eq!(rows[1].rank, 1);
    }

    #[test]
    fn ties_break_on_indicator_then_review_then_share_a_rank() {
        let mut rows = vec![
            row(&inputs("50", "30", "5", "5", "0", "0"), d("5")), // 90, indicator 50
            row(&inputs("52", "28", "5", "5", "0", "0"), d("5")), // 90, indicator 52
            row(&inputs("50", "30", "5", "5", "0", "0"), d("5")), // equal to the first
            row(&inputs("60", "30", "5", "5", "0", "0"), d("5")), // 100
            row(&inputs("51", "29", "5", "5", "0", "0"), d("5")), // 90, indicator 51
        ];
        rank(&mut rows);
        let ranks: Vec<u32> = rows.iter().map(|r| r.rank).collect();
        assert_eq!(ranks, [4, 2, 4, 1, 3]);
        let mut shared = vec![
            row(&inputs("50", "30", "5", "5", "0", "0"), d("5")),
            row(&inputs("50", "30", "5", "5", "0", "0"), d("5")),
            row(&inputs("40", "30", "5", "5", "0", "0"), d("5")),
        ];
        rank(&mut shared);
        assert_eq!(shared.iter().map(|r| r.rank).collect::<Vec<_>>(), [1, 1, 3]);
    }

    /// The extremes of the decimal type: zero, the smallest steps, the
    /// largest magnitudes, 28 significant digits.
    fn extreme() -> impl Strategy<Value = Decimal> {
        prop::sample::select(vec![
            Decimal::ZERO,
            Decimal::new(1, 28),
            Decimal::new(-1, 28),
            Decimal::MAX,
            Decimal::MIN,
            Decimal::from_i128_with_scale(1_234_567_890_123_456_789_012_345_678, 0),
            Decimal::from_i128_with_scale(9_999_999_999_999_999_999_999_999_999, 28),
        ])
    }

    proptest! {
        /// No input a component service could send makes a row or a rank
        /// panic: the sums saturate, the adjustment stays within the cap.
        #[test]
        fn rows_and_ranks_at_the_extremes_of_the_type(
            units in prop::collection::vec(
                (extreme(), extreme(), extreme(), extreme(), extreme(), extreme(), extreme()),
                1..6,
            ),
        ) {
            let mut rows: Vec<Row> = units
                .iter()
                .map(|(i, s, o, m, ded, cred, cap)| row(&Inputs { indicator: Some(*i), survey: Some(*s), online: Some(*o), mutual: Some(*m), inspection: Some((*ded, *cred)) }, *cap))
                .collect();
            rank(&mut rows);
            for (r, (.., cap)) in rows.iter().zip(&units) {
                let a = r.adjustment.unwrap();
                prop_assert!(a <= Decimal::ZERO && a >= -published(cap.abs()) - Decimal::new(1, 3));
                prop_assert!(r.composite.is_some() && r.rank >= 1);
            }
        }
    }

    fn amount(max: i64) -> impl Strategy<Value = Decimal> {
        (0..=max * 10_000).prop_map(|m| Decimal::new(m, 4))
    }

    proptest! {
        #[test]
        fn the_composite_is_the_sum_of_its_published_parts_and_ranks_follow_it(
            units in prop::collection::vec((amount(60), amount(30), amount(5), amount(5), amount(10), amount(10)), 1..20),
        ) {
            let mut rows: Vec<Row> = units
                .iter()
                .map(|(i, s, o, m, ded, cred)| row(&Inputs { indicator: Some(*i), survey: Some(*s), online: Some(*o), mutual: Some(*m), inspection: Some((*ded, *cred)) }, Decimal::from(5)))
                .collect();
            rank(&mut rows);
            for r in &rows {
                let c = r.composite.unwrap();
                prop_assert_eq!(c, r.indicator.unwrap() + r.review_total.unwrap() + r.adjustment.unwrap());
                prop_assert_eq!(c.scale(), PUBLISHED_DP);
                prop_assert!(r.adjustment.unwrap() >= Decimal::from(-5) && r.adjustment.unwrap() <= Decimal::ZERO);
            }
            for a in &rows {
                for b in &rows {
                    if a.composite > b.composite {
                        prop_assert!(a.rank < b.rank);
                    }
                }
            }
        }
    }
}
