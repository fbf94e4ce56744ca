//! Indicator scores (DOMAIN.md §5) as plain functions, exact decimal.
//!
//! Each indicator's points are rounded to [`POINTS_DP`] places, half away
//! from zero, and lie in `[0, w]`; a unit's indicator score is the sum of
//! its points. Fixing the precision of each division here, rather than
//! leaving it to a decimal library's context, is what lets anyone
//! recompute a published table to the last digit.

use rust_decimal::Decimal;

use jixiao_runtime::decimal::round_half_away;

/// Decimal places of an indicator's points.
pub const POINTS_DP: u32 = 6;

/// How an indicator is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Ratio,
    Threshold,
    PeerBest,
    PeerRank,
    Assessed,
}

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Higher,
    Lower,
}

/// Why an indicator scored what it did, beyond the numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// No final value (or no assessed score): 0 points.
    MissingValue,
    /// No approved target where the method needs one: 0 points.
    MissingTarget,
}

/// One indicator of a group's framework, as scoring needs it.
#[derive(Debug, Clone)]
pub struct Spec {
    pub method: Method,
    pub direction: Direction,
    pub weight: Decimal,
    /// Floor of PEER_RANK (the scheme's `peer_rank_floor`).
    pub floor: Decimal,
}

/// One unit's inputs for one indicator.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub target: Option<Decimal>,
    pub actual: Option<Decimal>,
    /// The evaluator's score, for ASSESSED.
    pub assessed: Option<Decimal>,
}

/// One unit's result for one indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scored {
    pub points: Decimal,
    pub flag: Option<Flag>,
}

fn finish(w: Decimal, points: Decimal) -> Decimal {
    round_half_away(points, POINTS_DP).clamp(Decimal::ZERO, w)
}

/// `clamp(num / den, 0, 1)` for `den > 0`, without dividing where the
/// quotient could overflow: a ratio at or beyond 1 is 1 before any division
/// (45 against a target of 10^-28 is simply met), and a quotient below 1
/// always fits.
fn share(num: Decimal, den: Decimal) -> Decimal {
    debug_assert!(den > Decimal::ZERO);
    if num <= Decimal::ZERO {
        Decimal::ZERO
    } else if num >= den {
        Decimal::ONE
    } else {
        num.checked_div(den).unwrap_or(Decimal::ZERO)
    }
}

/// RATIO (完成率): higher `w × clamp(A/T, 0, 1)`; lower `w × clamp(T/A, 0, 1)`
/// with A = 0 giving `w`. A target of 0 or below (higher) and an actual of 0
/// or below (lower) leave no ratio to take: the unit then gets `w` when it
/// is at least as good as the target, else 0.
pub fn ratio(w: Decimal, dir: Direction, t: Decimal, a: Decimal) -> Decimal {
    let part = match dir {
        Direction::Higher if t > Decimal::ZERO => share(a, t),
        Direction::Higher => bool_share(a >= t),
        Direction::Lower if a > Decimal::ZERO => share(t, a),
        Direction::Lower => bool_share(a <= t || t >= Decimal::ZERO),
    };
    finish(w, w.saturating_mul(part))
}

fn bool_share(met: bool) -> Decimal {
    if met { Decimal::ONE } else { Decimal::ZERO }
}

/// THRESHOLD (达标): `w` when the target is met in the indicator's direction.
pub fn threshold(w: Decimal, dir: Direction, t: Decimal, a: Decimal) -> Decimal {
    let met = match dir {
        Direction::Higher => a >= t,
        Direction::Lower => a <= t,
    };
    finish(w, w.saturating_mul(bool_share(met)))
}

/// PEER_BEST (与最优比): higher `w × A / max(A)`, lower `w × min(A) / A`, over
/// the units that have a value. When the best value is 0 or below there is
/// no ratio: the best units get `w`, the others 0.
pub fn peer_best(w: Decimal, dir: Direction, a: Decimal, values: &[Decimal]) -> Decimal {
    let part = match dir {
        Direction::Higher => {
            let best = values.iter().copied().max().unwrap_or(a).max(a);
            if best > Decimal::ZERO {
                share(a, best)
            } else {
                bool_share(a == best)
            }
        }
        Direction::Lower => {
            let best = values.iter().copied().min().unwrap_or(a).min(a);
            if a > Decimal::ZERO && best > Decimal::ZERO {
                share(best, a)
            } else {
                bool_share(a == best)
            }
        }
    };
    finish(w, w.saturating_mul(part))
}

/// The competition rank of `a` (1 = best; ties share the better rank:
/// 1, 2, 2, 4).
pub fn rank(dir: Direction, a: Decimal, values: &[Decimal]) -> usize {
    1 + values
        .iter()
        .filter(|v| match dir {
            Direction::Higher => **v > a,
            Direction::Lower => **v < a,
        })
        .count()
}

/// PEER_RANK (排名计分): `w × (1 − (r − 1) × (1 − floor) / (n − 1))` by rank r
/// among the n units that have a value; a group of one gets `w`.
pub fn peer_rank(
    w: Decimal,
    dir: Direction,
    a: Decimal,
    values: &[Decimal],
    floor: Decimal,
) -> Decimal {
    let n = values.len().max(1);
    if n == 1 {
        return finish(w, w);
    }
    let r = Decimal::from(rank(dir, a, values));
    let steps = Decimal::from(n - 1);
    let floor = floor.clamp(Decimal::ZERO, Decimal::ONE);
    let drop = (r - Decimal::ONE) * (Decimal::ONE - floor) / steps;
    finish(w, w.saturating_mul(Decimal::ONE - drop))
}

/// Scores one indicator for every unit of a group, in input order.
pub fn score(spec: &Spec, inputs: &[Input]) -> Vec<Scored> {
    let values: Vec<Decimal> = inputs.iter().filter_map(|i| i.actual).collect();
    inputs
        .iter()
        .map(|input| {
            let w = spec.weight;
            let zero = |flag| Scored {
                points: Decimal::ZERO,
                flag: Some(flag),
            };
            if spec.method == Method::Assessed {
                return match input.assessed {
                    Some(s) => Scored {
                        points: finish(w, s),
                        flag: None,
                    },
                    None => zero(Flag::MissingValue),
                };
            }
            let Some(a) = input.actual else {
                return zero(Flag::MissingValue);
            };
            let points = match (spec.method, input.target) {
                (Method::Ratio, Some(t)) => ratio(w, spec.direction, t, a),
                (Method::Threshold, Some(t)) => threshold(w, spec.direction, t, a),
                (Method::Ratio | Method::Threshold, None) => return zero(Flag::MissingTarget),
                (Method::PeerBest, _) => peer_best(w, spec.direction, a, &values),
                (Method::PeerRank, _) => peer_rank(w, spec.direction, a, &values, spec.floor),
                (Method::Assessed, _) => unreachable!("handled above"),
            };
            Scored { points, flag: None }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    use Direction::{Higher, Lower};

    #[test]
    fn ratio_higher_and_lower() {
        assert_eq!(ratio(d("20"), Higher, d("8"), d("6")), d("15"));
        assert_eq!(
            ratio(d("20"), Higher, d("8"), d("9")),
            d("20"),
            "capped at w"
        );
        assert_eq!(
            ratio(d("20"), Higher, d("8"), d("-1")),
            d("0"),
            "floored at 0"
        );
        assert_eq!(
            ratio(d("10"), Higher, d("3"), d("1")),
            d("3.333333"),
            "six places, half away from zero"
        );
        assert_eq!(ratio(d("10"), Higher, d("3"), d("2")), d("6.666667"));
        assert_eq!(ratio(d("15"), Lower, d("0.45"), d("0.5")), d("13.5"));
        assert_eq!(ratio(d("15"), Lower, d("0.45"), d("0.4")), d("15"));
    }

    #[test]
    fn ratio_edge_cases() {
        // Target 0, higher is better: met by anything at or above 0.
        assert_eq!(ratio(d("10"), Higher, d("0"), d("0")), d("10"));
        assert_eq!(ratio(d("10"), Higher, d("0"), d("-0.5")), d("0"));
        // Actual 0 on lower-is-better gives w.
        assert_eq!(ratio(d("10"), Lower, d("0.3"), d("0")), d("10"));
        assert_eq!(ratio(d("10"), Lower, d("0"), d("0")), d("10"));
        // Target 0 on lower-is-better with a positive actual: 0 / A = 0.
        assert_eq!(ratio(d("10"), Lower, d("0"), d("2")), d("0"));
    }

    #[test]
    fn extremes_of_the_decimal_type_never_panic_and_stay_in_0_to_w() {
        let extremes = [
            Decimal::ZERO,
            Decimal::new(1, 28),
            Decimal::new(-1, 28),
            Decimal::MAX,
            Decimal::MIN,
            d("9.999999999999999999999999999"),
            d("0.3333333333333333333333333333"),
            d("1234567890123456789012345678"),
        ];
        let w = d("20");
        for &t in &extremes {
            for &a in &extremes {
                for dir in [Higher, Lower] {
                    for p in [
                        ratio(w, dir, t, a),
                        threshold(w, dir, t, a),
                        peer_best(w, dir, a, &[t, a]),
                        peer_rank(w, dir, a, &[t, a], t),
                    ] {
                        assert!(p >= Decimal::ZERO && p <= w, "{p} for t={t} a={a}");
                    }
                }
            }
        }
        // A ratio far beyond its cap is the cap; far below it, 0.
        assert_eq!(ratio(w, Lower, d("10"), Decimal::new(1, 28)), w);
        assert_eq!(ratio(w, Higher, Decimal::new(1, 28), d("45")), w);
        assert_eq!(ratio(w, Higher, Decimal::MAX, d("45")), Decimal::ZERO);
    }

    #[test]
    fn threshold_follows_the_direction() {
        assert_eq!(threshold(d("10"), Higher, d("95"), d("95")), d("10"));
        assert_eq!(threshold(d("10"), Higher, d("95"), d("94.9")), d("0"));
        assert_eq!(threshold(d("10"), Lower, d("5"), d("5")), d("10"));
        assert_eq!(threshold(d("10"), Lower, d("5"), d("5.1")), d("0"));
    }

    #[test]
    fn peer_best_against_the_group() {
        let values = [d("100"), d("80"), d("50")];
        assert_eq!(peer_best(d("10"), Higher, d("80"), &values), d("8"));
        assert_eq!(peer_best(d("10"), Higher, d("100"), &values), d("10"));
        assert_eq!(peer_best(d("10"), Lower, d("100"), &values), d("5"));
        // Nothing to divide by: the best get w.
        let zeros = [d("0"), d("-1")];
        assert_eq!(peer_best(d("10"), Higher, d("0"), &zeros), d("10"));
        assert_eq!(peer_best(d("10"), Higher, d("-1"), &zeros), d("0"));
        assert_eq!(
            peer_best(d("10"), Lower, d("0"), &[d("0"), d("3")]),
            d("10")
        );
        assert_eq!(peer_best(d("10"), Lower, d("3"), &[d("0"), d("3")]), d("0"));
    }

    #[test]
    fn peer_rank_shares_ranks_on_ties() {
        let values = [d("9"), d("7"), d("7"), d("1")];
        assert_eq!(rank(Higher, d("9"), &values), 1);
        assert_eq!(rank(Higher, d("7"), &values), 2);
        assert_eq!(rank(Higher, d("1"), &values), 4);
        assert_eq!(rank(Lower, d("1"), &values), 1);
        let floor = d("0.6");
        // n = 4: steps of (1 − 0.6) / 3.
        assert_eq!(peer_rank(d("10"), Higher, d("9"), &values, floor), d("10"));
        assert_eq!(
            peer_rank(d("10"), Higher, d("7"), &values, floor),
            d("8.666667")
        );
        assert_eq!(peer_rank(d("10"), Higher, d("1"), &values, floor), d("6"));
    }

    #[test]
    fn a_group_of_one_scores_full_marks_by_peers() {
        assert_eq!(
            peer_rank(d("10"), Higher, d("3"), &[d("3")], d("0.6")),
            d("10")
        );
        assert_eq!(peer_best(d("10"), Higher, d("3"), &[d("3")]), d("10"));
    }

    #[test]
    fn missing_values_score_zero_and_are_flagged() {
        let spec = Spec {
            method: Method::Ratio,
            direction: Higher,
            weight: d("20"),
            floor: d("0.6"),
        };
        let out = score(
            &spec,
            &[
                Input {
                    target: Some(d("8")),
                    actual: Some(d("6")),
                    assessed: None,
                },
                Input {
                    target: Some(d("8")),
                    actual: None,
                    assessed: None,
                },
                Input {
                    target: None,
                    actual: Some(d("6")),
                    assessed: None,
                },
            ],
        );
        assert_eq!(
            out[0],
            Scored {
                points: d("15"),
                flag: None
            }
        );
        assert_eq!(
            out[1],
            Scored {
                points: d("0"),
                flag: Some(Flag::MissingValue)
            }
        );
        assert_eq!(
            out[2],
            Scored {
                points: d("0"),
                flag: Some(Flag::MissingTarget)
            }
        );
        // Peers without a value do not count in n.
        let spec = Spec {
            method: Method::PeerRank,
            ..spec
        };
        let out = score(
            &spec,
            &[
                Input {
                    actual: Some(d("5")),
                    ..Default::default()
                },
                Input::default(),
            ],
        );
        assert_eq!(out[0].points, d("20"));
        assert_eq!(out[1].flag, Some(Flag::MissingValue));
    }

    #[test]
    fn assessed_scores_are_taken_within_the_weight() {
        let spec = Spec {
            method: Method::Assessed,
            direction: Higher,
            weight: d("5"),
            floor: d("0.6"),
        };
        let out = score(
            &spec,
            &[
                Input {
                    assessed: Some(d("4.25")),
                    ..Default::default()
                },
                Input::default(),
            ],
        );
        assert_eq!(out[0].points, d("4.25"));
        assert_eq!(out[1].flag, Some(Flag::MissingValue));
    }

    fn decimal(range: std::ops::Range<i64>) -> impl Strategy<Value = Decimal> {
        (range, 0u32..4).prop_map(|(m, s)| Decimal::new(m, s))
    }

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![
            Just(Method::Ratio),
            Just(Method::Threshold),
            Just(Method::PeerBest),
            Just(Method::PeerRank),
            Just(Method::Assessed),
        ]
    }

    proptest! {
        #[test]
        fn every_score_lies_between_zero_and_the_weight(
            method in method(),
            higher in any::<bool>(),
            weight in decimal(1..6_000),
            floor in decimal(0..1_000),
            units in prop::collection::vec(
                (prop::option::of(decimal(-100_000..100_000)), prop::option::of(decimal(-100_000..100_000)), prop::option::of(decimal(-10_000..10_000))),
                1..12,
            ),
        ) {
            let floor = floor.min(Decimal::ONE);
            let spec = Spec { method, direction: if higher { Higher } else { Lower }, weight, floor };
            let inputs: Vec<Input> = units.into_iter().map(|(target, actual, assessed)| Input { target, actual, assessed }).collect();
            for s in score(&spec, &inputs) {
                prop_assert!(s.points >= Decimal::ZERO && s.points <= weight, "{:?} outside [0, {}]", s, weight);
                prop_assert!(s.points.scale() <= POINTS_DP);
            }
        }

        #[test]
        fn a_units_total_lies_between_zero_and_the_indicator_maximum(
            weights in prop::collection::vec(1i64..20, 1..8),
            actuals in prop::collection::vec(prop::option::of(decimal(-1_000..1_000)), 8),
        ) {
            // Weights of a framework add up to its maximum.
            let max: Decimal = weights.iter().map(|w| Decimal::from(*w)).sum();
            let methods = [Method::Ratio, Method::Threshold, Method::PeerBest, Method::PeerRank, Method::Assessed];
            let mut total = Decimal::ZERO;
            for (i, w) in weights.iter().enumerate() {
                let spec = Spec { method: methods[i % 5], direction: if i % 2 == 0 { Higher } else { Lower }, weight: Decimal::from(*w), floor: Decimal::new(6, 1) };
                let inputs = vec![
                    Input { target: Some(Decimal::from(5)), actual: actuals[i], assessed: actuals[i].map(|a| a.abs()) },
                    Input { target: Some(Decimal::from(3)), actual: actuals[(i + 1) % 8], assessed: None },
                ];
                total += score(&spec, &inputs)[0].points;
            }
            prop_assert!(total >= Decimal::ZERO && total <= max);
        }
    }
}
