use jixiao_proto::plans::{DataQualityRules, IndicatorQualityRules, Scheme};

use super::*;

fn d(s: &str) -> Decimal {
    decimal::parse(s).unwrap()
}

fn number(r: &Raised, name: &str) -> Decimal {
    match r.evidence.iter().find(|(n, _)| n == name) {
        Some((_, Figure::Number(x))) => *x,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn mad_scale_is_the_normal_consistency_constant() {
    assert_eq!(MAD_SCALE, d("1.4826"));
}

#[test]
fn relative_change_is_exact_and_needs_a_reference() {
    assert_eq!(relative_change(d("150"), d("100")), Some(d("0.5")));
    assert_eq!(relative_change(d("-3"), d("-2")), Some(d("0.5")));
    assert_eq!(relative_change(d("1"), d("0")), None);
}

#[test]
fn jump_beyond_the_threshold_is_flagged_with_its_figures() {
    let r = jump(d("151"), d("100"), "2026-Q3", None, d("0.5")).unwrap();
    assert_eq!(r.kind, Kind::Jump);
    assert_eq!(number(&r, "change"), d("0.51"));
    assert_eq!(number(&r, "reference"), d("100"));
    assert!(r.explanation().contains("2026-Q3"), "{}", r.explanation());
    // Exactly at the threshold is no jump.
    assert_eq!(jump(d("150"), d("100"), "2026-Q3", None, d("0.5")), None);
    assert_eq!(jump(d("50"), d("100"), "2026-Q3", None, d("0.5")), None);
    assert!(jump(d("49"), d("100"), "2026-Q3", None, d("0.5")).is_some());
}

#[test]
fn a_cumulative_jump_pro_rates_the_earlier_figure() {
    // 75 after three quarters extrapolates to 100 for the year.
    let q3 = (d("0.75"), d("1"));
    assert_eq!(jump(d("140"), d("75"), "2026-Q3", Some(q3), d("0.5")), None);
    let r = jump(d("160"), d("75"), "2026-Q3", Some(q3), d("0.5")).unwrap();
    assert_eq!(number(&r, "reference"), d("100"));
    assert_eq!(number(&r, "change"), d("0.6"));
}

#[test]
fn year_on_year_compares_finals_of_two_cycles() {
    let r = year_on_year(d("9.1"), d("6"), "2025", d("0.5")).unwrap();
    assert_eq!(r.kind, Kind::YearOnYearJump);
    assert_eq!(number(&r, "change"), d("0.5166666666666666666666666667"));
    assert_eq!(year_on_year(d("8.9"), d("6"), "2025", d("0.5")), None);
}

#[test]
fn median_of_odd_and_even_counts() {
    assert_eq!(median(&[d("3"), d("1"), d("2")]), Some(d("2")));
    assert_eq!(median(&[d("4"), d("1"), d("2"), d("3")]), Some(d("2.5")));
    assert_eq!(median(&[]), None);
}

#[test]
fn an_inflated_value_is_a_peer_outlier_and_the_rest_are_not() {
    let values = [d("6.1"), d("5.9"), d("6.0"), d("6.3"), d("5.8"), d("12.0")];
    let out = outliers(&values, d("3.5"), 5);
    assert_eq!(out.len(), 1);
    let (i, r) = &out[0];
    assert_eq!(*i, 5);
    // median 6.05; deviations 0.05 0.15 0.05 0.25 0.25 5.95 → MAD 0.2;
    // 5.95 / (1.4826 × 0.2) = 20.066100..., kept to 6 places.
    assert_eq!(number(r, "median"), d("6.05"));
    assert_eq!(number(r, "mad"), d("0.2"));
    assert_eq!(number(r, "score"), d("20.0661"));
    assert_eq!(number(r, "peers"), d("6"));
}

#[test]
fn the_threshold_is_compared_exactly_not_after_rounding_the_score() {
    // median 100, MAD 5, scale 7.413: X − 100 against 3.5 × 7.413 = 25.9455.
    let with = |x: &str| [d("90"), d("100"), d("100"), d("100"), d("110"), d(x)];
    // Score 3.5000000013, shown as 3.5: above the threshold all the same.
    assert_eq!(outliers(&with("125.94550001"), d("3.5"), 5).len(), 1);
    // Exactly at the threshold: not above it.
    assert!(outliers(&with("125.9455"), d("3.5"), 5).is_empty());
    // Score 3.4999999 is below 3.49999995, though it rounds to 3.5.
    assert!(outliers(&with("125.9454992587"), d("3.49999995"), 5).is_empty());
}

#[test]
fn outliers_need_enough_peers_and_a_spread() {
    let values = [d("6"), d("6"), d("12")];
    assert!(outliers(&values, d("3.5"), 5).is_empty());
    // Most peers agree exactly: MAD 0, no scale, no outlier.
    let same = [d("6"), d("6"), d("6"), d("6"), d("12")];
    assert!(outliers(&same, d("3.5"), 5).is_empty());
}

#[test]
fn outliers_do_not_depend_on_the_order() {
    let a = [d("1"), d("2"), d("3"), d("4"), d("40")];
    let b = [d("40"), d("3"), d("1"), d("4"), d("2")];
    let flagged = |v: &[Decimal]| -> Vec<Decimal> {
        outliers(v, d("3.5"), 5)
            .into_iter()
            .map(|(i, _)| v[i])
            .collect()
    };
    assert_eq!(flagged(&a), flagged(&b));
    assert_eq!(flagged(&a), [d("40")]);
}

#[test]
fn a_cumulative_final_below_its_progress_is_critical() {
    let r = final_below_progress(d("90"), d("95"), "2026-Q4").unwrap();
    assert_eq!(r.kind.severity(), QualitySeverity::Critical);
    assert_eq!(final_below_progress(d("95"), d("95"), "2026-Q4"), None);
}

#[test]
fn evidence_is_missing_only_where_required() {
    assert!(evidence_missing(true, 0, "GDP").is_some());
    assert_eq!(evidence_missing(true, 1, "GDP"), None);
    assert_eq!(evidence_missing(false, 0, "GDP"), None);
}

#[test]
fn shared_evidence_names_the_digest_and_the_other_value() {
    let r = shared_evidence("ab12", "cycles/2026/units/huli/indicators/X/periods/2026");
    assert_eq!(r.kind.severity(), QualitySeverity::Warning);
    assert!(r.explanation().contains("ab12"));
    assert!(r.explanation().contains("units/huli"));
}

#[test]
fn a_correction_across_the_target_near_the_deadline_is_flagged() {
    let hour = 3_600_000;
    let deadline = 1_000 * hour;
    // Higher is better, target 8: 7.9 → 8.0 thirty hours before.
    let r = boundary_correction(
        true,
        d("8"),
        d("7.9"),
        d("8.0"),
        deadline - 30 * hour,
        deadline,
        72,
    )
    .unwrap();
    assert_eq!(number(&r, "hours_before_deadline"), d("30"));
    // Too early, or not across the target, or the wrong way: no flag.
    let early = deadline - 100 * hour;
    assert_eq!(
        boundary_correction(true, d("8"), d("7.9"), d("8.0"), early, deadline, 72),
        None
    );
    assert_eq!(
        boundary_correction(true, d("8"), d("8.1"), d("9"), deadline, deadline, 72),
        None
    );
    assert_eq!(
        boundary_correction(true, d("8"), d("8.1"), d("7"), deadline, deadline, 72),
        None
    );
    // Lower is better: 0.52 → 0.5 against 0.5, after the deadline.
    let late = boundary_correction(
        false,
        d("0.5"),
        d("0.52"),
        d("0.5"),
        deadline + hour / 2,
        deadline,
        72,
    )
    .unwrap();
    assert_eq!(number(&late, "hours_before_deadline"), d("-0.5"));
}

#[test]
fn thresholds_take_overrides_then_the_group_then_the_defaults() {
    let defaults = Thresholds::of(&Scheme::default(), "GDP");
    assert_eq!(defaults.jump, d("0.5"));
    assert_eq!(defaults.outlier, d("3.5"));
    assert_eq!(defaults.min_peers, 5);
    assert_eq!(defaults.window_hours, 72);
    assert!(defaults.blocks(QualitySeverity::Critical));
    assert!(!defaults.blocks(QualitySeverity::Warning));
    let scheme = Scheme {
        data_quality: Some(DataQualityRules {
            jump_threshold: Some(decimal::to_proto(d("0.3"))),
            outlier_min_peers: 4,
            blocking_severity: QualitySeverity::Warning as i32,
            indicators: vec![IndicatorQualityRules {
                indicator: "GDP".into(),
                jump_threshold: Some(decimal::to_proto(d("0.2"))),
                cumulative: true,
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let gdp = Thresholds::of(&scheme, "GDP");
    assert_eq!(
        (gdp.jump, gdp.min_peers, gdp.cumulative),
        (d("0.2"), 4, true)
    );
    let other = Thresholds::of(&scheme, "TRADE");
    assert_eq!((other.jump, other.cumulative), (d("0.3"), false));
    assert!(other.blocks(QualitySeverity::Warning));
}

#[test]
fn kinds_round_trip_through_their_ids() {
    for k in Kind::ALL {
        assert_eq!(Kind::parse(k.id()), Some(k));
        assert!(
            k.proto()
                .as_str_name()
                .ends_with(&k.id().to_ascii_uppercase())
        );
    }
}
