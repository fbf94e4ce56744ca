//! Public-review scores (DOMAIN.md §6) as plain functions, exact decimal.
//!
//! Fixed precisions make every figure reproducible by anyone: a response's
//! value (the mean of its counted answers) is rounded to [`VALUE_DP`]
//! places, and each score to [`SCORE_DP`] places, both half away from
//! zero. Running sums of response values are kept as integers in units of
//! 10^-[`VALUE_DP`], so adding them in SQL stays exact on SQLite too.

use rust_decimal::Decimal;

use jixiao_runtime::decimal::round_half_away;

/// Decimal places of a response's value.
pub const VALUE_DP: u32 = 10;
/// Decimal places of a review score.
pub const SCORE_DP: u32 = 6;

/// A value as an integer count of 10^-VALUE_DP.
pub fn to_units(value: Decimal) -> i64 {
    let mut v = round_half_away(value, VALUE_DP);
    v.rescale(VALUE_DP);
    i64::try_from(v.mantissa()).unwrap_or(i64::MAX)
}

/// Back from integer units.
pub fn from_units(units: i64) -> Decimal {
    Decimal::new(units, VALUE_DP)
}

/// The value of one response: the mean of its counted answers (answers whose
/// code has a value in the scheme); None when nothing was counted.
pub fn response_value(answer_values: impl IntoIterator<Item = Option<Decimal>>) -> Option<Decimal> {
    let (mut sum, mut n) = (Decimal::ZERO, 0u32);
    for v in answer_values.into_iter().flatten() {
        sum = sum.saturating_add(v);
        n += 1;
    }
    (n > 0).then(|| round_half_away(sum / Decimal::from(n), VALUE_DP))
}

/// The mean of values given in integer units, rounded half away from zero:
/// the integer form of [`response_value`] for the ingest path.
pub fn mean_units(sum: i64, n: i64) -> i64 {
    debug_assert!(n > 0);
    // In i128, so that doubling the remainder cannot overflow.
    let (sum, n) = (i128::from(sum), i128::from(n.max(1)));
    let (q, r) = (sum / n, sum % n);
    let mean = if 2 * r.abs() >= n {
        q + sum.signum()
    } else {
        q
    };
    // |mean| ≤ |sum|, so it fits back.
    mean as i64
}

/// Running figures of one respondent category of one unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub responses: i64,
    /// Sum of response values in units of 10^-VALUE_DP.
    pub value_units: i64,
}

impl Tally {
    pub fn mean(&self) -> Option<Decimal> {
        (self.responses > 0).then(|| from_units(self.value_units) / Decimal::from(self.responses))
    }
}

/// The satisfaction index: the category-weighted mean of category means,
/// re-normalised over the categories that have responses. Returns the index
/// and the categories of the scheme that had none.
pub fn satisfaction_index(
    weights: &[(String, Decimal)],
    tally: impl Fn(&str) -> Tally,
) -> (Option<Decimal>, Vec<&str>) {
    let (mut weighted, mut weight_sum) = (Decimal::ZERO, Decimal::ZERO);
    let mut missing = Vec::new();
    for (category, w) in weights {
        match tally(category).mean() {
            Some(mean) => {
                weighted = weighted.saturating_add(w.saturating_mul(mean));
                weight_sum = weight_sum.saturating_add(*w);
            }
            None => missing.push(category.as_str()),
        }
    }
    let index = (weight_sum > Decimal::ZERO).then(|| weighted / weight_sum);
    (index, missing)
}

/// A score from a mean in [0, 1] and the component maximum.
pub fn score(max: Decimal, mean: Decimal) -> Decimal {
    let max = max.max(Decimal::ZERO);
    round_half_away(max.saturating_mul(mean), SCORE_DP).clamp(Decimal::ZERO, max)
}

/// The mutual-review mean: with at least `trim_min` raters the single
/// highest and lowest ratings are dropped (trimmed mean).
pub fn mutual_mean(ratings: &[Decimal], trim_min: usize) -> Option<Decimal> {
    if ratings.is_empty() {
        return None;
    }
    let mut sorted = ratings.to_vec();
    sorted.sort();
    let kept = if sorted.len() >= trim_min.max(3) {
        &sorted[1..sorted.len() - 1]
    } else {
        &sorted[..]
    };
    let sum = kept.iter().fold(Decimal::ZERO, |a, b| a.saturating_add(*b));
    Some(sum / Decimal::from(kept.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn a_response_is_the_mean_of_its_counted_answers() {
        // satisfied, basically satisfied, don't know (not counted)
        assert_eq!(
            response_value([Some(d("1")), Some(d("0.8")), None]),
            Some(d("0.9"))
        );
        assert_eq!(
            response_value([Some(d("1")), Some(d("0.8")), Some(d("0"))]),
            Some(d("0.6"))
        );
        assert_eq!(
            response_value([Some(d("1")), Some(d("1")), Some(d("0.8"))]),
            Some(d("0.9333333333"))
        );
        assert_eq!(response_value([None, None]), None);
    }

    #[test]
    fn integer_means_match_decimal_means() {
        for values in [
            &["1", "1", "0.8"][..],
            &["1", "0.8"],
            &["0.8", "0", "0.6"],
            &["1", "0.8", "0.8", "0.8", "0.8", "0.8"],
        ] {
            let ds: Vec<Decimal> = values.iter().map(|v| d(v)).collect();
            let sum: i64 = ds.iter().map(|v| to_units(*v)).sum();
            assert_eq!(
                from_units(mean_units(sum, ds.len() as i64)),
                response_value(ds.iter().map(|v| Some(*v))).unwrap()
            );
        }
    }

    #[test]
    fn units_round_trip() {
        for v in ["0", "1", "0.9333333333", "0.8"] {
            assert_eq!(from_units(to_units(d(v))), d(v));
        }
    }

    #[test]
    fn category_weights_are_renormalised_over_categories_present() {
        let weights = vec![
            ("service_users".to_string(), d("0.4")),
            ("enterprises".to_string(), d("0.3")),
            ("residents".to_string(), d("0.2")),
            ("deputies".to_string(), d("0.1")),
        ];
        let tallies = |c: &str| match c {
            // means 0.9 and 0.7; residents and deputies absent
            "service_users" => Tally {
                responses: 2,
                value_units: to_units(d("1.8")),
            },
            "enterprises" => Tally {
                responses: 4,
                value_units: to_units(d("2.8")),
            },
            _ => Tally::default(),
        };
        let (index, missing) = satisfaction_index(&weights, tallies);
        // (0.4 × 0.9 + 0.3 × 0.7) / 0.7 = 0.57 / 0.7
        assert_eq!(score(d("30"), index.unwrap()), d("24.428571"));
        assert_eq!(missing, ["residents", "deputies"]);
    }

    #[test]
    fn trimmed_mean_drops_one_highest_and_one_lowest_from_five_raters() {
        let r = [d("1"), d("0.8"), d("0.8"), d("0.6"), d("0")];
        assert_eq!(
            mutual_mean(&r, 5),
            Some(d("0.7333333333333333333333333333"))
        );
        assert_eq!(score(d("5"), mutual_mean(&r, 5).unwrap()), d("3.666667"));
        // Four raters: a plain mean.
        assert_eq!(mutual_mean(&r[..4], 5), Some(d("0.8")));
        assert_eq!(mutual_mean(&[], 5), None);
    }

    fn extreme() -> impl Strategy<Value = Decimal> {
        prop::sample::select(vec![
            Decimal::ZERO,
            Decimal::new(1, 28),
            Decimal::ONE,
            Decimal::MAX,
            Decimal::MIN,
            Decimal::from_i128_with_scale(1_234_567_890_123_456_789_012_345_678, 0),
        ])
    }

    proptest! {
        /// Review arithmetic never panics at the extremes of its types,
        /// whatever a misconfigured scheme or a huge tally holds.
        #[test]
        fn review_arithmetic_at_the_extremes(
            answers in prop::collection::vec(prop::option::of(extreme()), 0..4),
            ratings in prop::collection::vec(extreme(), 0..8),
            max in extreme(),
            mean in extreme(),
            sum in prop::sample::select(vec![0, 1, -1, i64::MAX, i64::MIN, i64::MAX - 1]),
            n in prop::sample::select(vec![1, 2, 3, i64::MAX]),
            weight in extreme(),
        ) {
            let _ = response_value(answers.iter().copied());
            let _ = mutual_mean(&ratings, 5);
            let s = score(max, mean);
            prop_assert!(s >= Decimal::ZERO);
            let m = mean_units(sum, n);
            prop_assert!(m.unsigned_abs() <= sum.unsigned_abs());
            let tally = Tally { responses: n, value_units: sum };
            let _ = satisfaction_index(&[("residents".to_string(), weight)], |_| tally);
            let _ = to_units(mean);
        }
    }

    proptest! {
        #[test]
        fn scores_stay_within_their_maximum(
            values in prop::collection::vec(prop::option::of(0u32..=10), 1..12),
            max in 1i64..100,
        ) {
            let v = response_value(values.iter().map(|x| x.map(|n| Decimal::new(n as i64, 1))));
            if let Some(v) = v {
                prop_assert!(v >= Decimal::ZERO && v <= Decimal::ONE);
                let s = score(Decimal::from(max), v);
                prop_assert!(s >= Decimal::ZERO && s <= Decimal::from(max));
            }
        }

        #[test]
        fn trimmed_means_lie_between_the_extremes(ratings in prop::collection::vec(0i64..=100, 1..30)) {
            let r: Vec<Decimal> = ratings.iter().map(|x| Decimal::new(*x, 2)).collect();
            let m = mutual_mean(&r, 5).unwrap();
            prop_assert!(m >= *r.iter().min().unwrap() && m <= *r.iter().max().unwrap());
        }
    }
}
