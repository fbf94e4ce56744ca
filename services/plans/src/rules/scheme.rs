//! A group's scheme: the defaults DOMAIN.md states and the checks of an
//! edited scheme.

use std::collections::HashSet;

use jixiao_proto::{
    plans::{DataQualityRules, Framework, Indicator, MutualScale, Scheme, WeightedKey},
    types::QualitySeverity,
};
use jixiao_runtime::{
    Violations,
    decimal::{self, to_proto},
};
use rust_decimal::Decimal;

use super::{WEIGHT_DP, dec};

fn keys(pairs: &[(&str, &str)]) -> Vec<WeightedKey> {
    pairs
        .iter()
        .map(|(k, v)| WeightedKey {
            key: (*k).to_string(),
            value: Some(to_proto(dec(v))),
        })
        .collect()
}

/// The scheme a new group starts with: the defaults DOMAIN.md states.
pub fn default_scheme(name: String) -> Scheme {
    Scheme {
        name,
        indicator_max: Some(to_proto(dec("60"))),
        survey_max: Some(to_proto(dec("30"))),
        online_max: Some(to_proto(dec("5"))),
        mutual_max: Some(to_proto(dec("5"))),
        inspection_cap: Some(to_proto(dec("5"))),
        answer_values: keys(&[
            ("satisfied", "1.0"),
            ("basically_satisfied", "0.8"),
            ("dissatisfied", "0"),
        ]),
        category_weights: keys(&[
            ("service_users", "0.4"),
            ("enterprises", "0.3"),
            ("residents", "0.2"),
            ("deputies", "0.1"),
        ]),
        min_sample: 30,
        mutual_scale: MutualScale::Grades as i32,
        grade_values: keys(&[
            ("excellent", "1.0"),
            ("good", "0.8"),
            ("fair", "0.6"),
            ("poor", "0"),
        ]),
        mutual_trim_min_raters: 5,
        peer_rank_floor: Some(to_proto(dec("0.6"))),
        at_risk_threshold: Some(to_proto(dec("0.1"))),
        credit_points: keys(&[("problem_found", "0.5"), ("staff_action", "0.2")]),
        spot_check_deductions: keys(&[("overdue", "0.5"), ("incomplete_file", "0.3")]),
        etag: String::new(),
        data_quality: Some(default_data_quality()),
    }
}

/// The data-quality defaults docs/DATA-QUALITY.md documents; the
/// indicators service applies the same to an unset field.
pub fn default_data_quality() -> DataQualityRules {
    DataQualityRules {
        jump_threshold: Some(to_proto(dec("0.5"))),
        year_on_year_threshold: Some(to_proto(dec("0.5"))),
        outlier_threshold: Some(to_proto(dec("3.5"))),
        outlier_min_peers: 5,
        boundary_window_hours: 72,
        blocking_severity: QualitySeverity::Critical as i32,
        indicators: Vec::new(),
        // The survey thresholds: 0 and unset take their defaults.
        ..Default::default()
    }
}

/// Checks the data-quality rules; an unset number keeps its default, a set
/// threshold must be above 0.
fn check_data_quality(q: &mut DataQualityRules, v: &mut Violations, prefix: &str) {
    fn positive(value: &mut Option<jixiao_proto::Decimal>, v: &mut Violations, field: String) {
        if value.is_none() {
            return;
        }
        match decimal::figure(value) {
            Ok(d) if d > Decimal::ZERO => *value = Some(to_proto(d)),
            Ok(_) => v.add(field, "must be above 0"),
            Err(e) => v.add(field, e),
        }
    }
    positive(&mut q.jump_threshold, v, format!("{prefix}.jump_threshold"));
    positive(
        &mut q.year_on_year_threshold,
        v,
        format!("{prefix}.year_on_year_threshold"),
    );
    positive(
        &mut q.outlier_threshold,
        v,
        format!("{prefix}.outlier_threshold"),
    );
    let mut seen = HashSet::new();
    for (i, r) in q.indicators.iter_mut().enumerate() {
        let f = format!("{prefix}.indicators[{i}]");
        positive(&mut r.jump_threshold, v, format!("{f}.jump_threshold"));
        positive(
            &mut r.year_on_year_threshold,
            v,
            format!("{f}.year_on_year_threshold"),
        );
        positive(
            &mut r.outlier_threshold,
            v,
            format!("{f}.outlier_threshold"),
        );
        if r.indicator.is_empty() || !seen.insert(r.indicator.clone()) {
            v.add(
                format!("{f}.indicator"),
                format!("{:?} is empty or appears twice", r.indicator),
            );
        }
    }
    v.check(
        q.outlier_min_peers == 0 || q.outlier_min_peers >= 3,
        format!("{prefix}.outlier_min_peers"),
        "must be at least 3 (0 takes the default 5)",
    );
    v.check(
        q.boundary_window_hours >= 0,
        format!("{prefix}.boundary_window_hours"),
        "must not be negative",
    );
    v.check(
        QualitySeverity::try_from(q.blocking_severity).is_ok(),
        format!("{prefix}.blocking_severity"),
        "must be WARNING or CRITICAL (unset takes CRITICAL)",
    );
    check_survey_screening(q, v, prefix);
}

/// The survey thresholds (reviews service): 0 or unset takes the default.
fn check_survey_screening(q: &mut DataQualityRules, v: &mut Violations, prefix: &str) {
    for (field, value, least) in [
        (
            "straight_lining_min_answers",
            q.straight_lining_min_answers,
            2,
        ),
        (
            "straight_lining_min_responses",
            q.straight_lining_min_responses,
            1,
        ),
        ("outside_window_limit", q.outside_window_limit, 0),
        ("burst_size", q.burst_size, 2),
        ("respondent_limit", q.respondent_limit, 1),
        ("surge_window_hours", q.surge_window_hours, 1),
        ("surge_min_responses", q.surge_min_responses, 1),
    ] {
        v.check(
            value == 0 || value >= least,
            format!("{prefix}.{field}"),
            format!("must be at least {least} (0 takes the default)"),
        );
    }
    for (field, value, most) in [
        (
            "straight_lining_share",
            &mut q.straight_lining_share,
            Some(Decimal::ONE),
        ),
        ("surge_factor", &mut q.surge_factor, None),
    ] {
        if value.is_none() {
            continue;
        }
        match decimal::figure(value) {
            Ok(d) if d > Decimal::ZERO && most.is_none_or(|m| d <= m) => *value = Some(to_proto(d)),
            Ok(_) if most.is_some() => {
                v.add(format!("{prefix}.{field}"), "must be above 0 and at most 1")
            }
            Ok(_) => v.add(format!("{prefix}.{field}"), "must be above 0"),
            Err(e) => v.add(format!("{prefix}.{field}"), e),
        }
    }
}

/// Checks a scheme and rewrites its decimals in canonical form. Component
/// maxima must add up to 100.
pub fn check_scheme(s: &mut Scheme, v: &mut Violations, prefix: &str) {
    let mut maxima = Decimal::ZERO;
    for (field, value) in [
        ("indicator_max", &mut s.indicator_max),
        ("survey_max", &mut s.survey_max),
        ("online_max", &mut s.online_max),
        ("mutual_max", &mut s.mutual_max),
    ] {
        // A maximum is points, published to as many places as points.
        match non_negative(value) {
            Ok(d) if d.normalize().scale() > WEIGHT_DP => v.add(
                format!("{prefix}.{field}"),
                format!("has at most {WEIGHT_DP} decimal places, as points do"),
            ),
            Ok(d) => maxima += d,
            Err(e) => v.add(format!("{prefix}.{field}"), e),
        }
    }
    if v.is_empty() && maxima != dec("100") {
        v.add(
            format!("{prefix}.indicator_max"),
            format!("the component maxima add up to {maxima}; they must add up to 100"),
        );
    }
    for (field, value) in [
        ("inspection_cap", &mut s.inspection_cap),
        ("peer_rank_floor", &mut s.peer_rank_floor),
        ("at_risk_threshold", &mut s.at_risk_threshold),
    ] {
        if let Err(e) = non_negative(value) {
            v.add(format!("{prefix}.{field}"), e);
        }
    }
    for (field, value) in [
        ("peer_rank_floor", &s.peer_rank_floor),
        ("at_risk_threshold", &s.at_risk_threshold),
    ] {
        if let Ok(d) = decimal::figure(value)
            && d > Decimal::ONE
        {
            v.add(format!("{prefix}.{field}"), "must lie between 0 and 1");
        }
    }
    for (field, list, unit_interval) in [
        ("answer_values", &mut s.answer_values, true),
        ("category_weights", &mut s.category_weights, false),
        ("grade_values", &mut s.grade_values, true),
        ("credit_points", &mut s.credit_points, false),
        ("spot_check_deductions", &mut s.spot_check_deductions, false),
    ] {
        check_keys(list, unit_interval, v, &format!("{prefix}.{field}"));
    }
    if s.answer_values.is_empty() {
        v.add(
            format!("{prefix}.answer_values"),
            "needs at least one counted answer",
        );
    }
    if s.category_weights.is_empty() {
        v.add(
            format!("{prefix}.category_weights"),
            "needs at least one respondent category",
        );
    }
    v.check(
        s.min_sample >= 1,
        format!("{prefix}.min_sample"),
        "must be at least 1",
    );
    v.check(
        s.mutual_trim_min_raters >= 3,
        format!("{prefix}.mutual_trim_min_raters"),
        "must be at least 3 (the highest and lowest are dropped)",
    );
    v.check(
        MutualScale::try_from(s.mutual_scale).is_ok_and(|m| m != MutualScale::Unspecified),
        format!("{prefix}.mutual_scale"),
        "must be GRADES or NUMERIC",
    );
    if let Some(q) = &mut s.data_quality {
        check_data_quality(q, v, &format!("{prefix}.data_quality"));
    }
    if s.mutual_scale == MutualScale::Grades as i32 && s.grade_values.is_empty() {
        v.add(
            format!("{prefix}.grade_values"),
            "a grade scale needs grade values",
        );
    }
}

/// The data-quality overrides whose indicator is not among `codes`, as
/// (index, code): a mistyped code would silently leave its indicator on
/// the group's defaults.
fn orphaned<'a>(s: &'a Scheme, codes: &[&str]) -> Vec<(usize, &'a str)> {
    let Some(q) = &s.data_quality else {
        return Vec::new();
    };
    q.indicators
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.indicator.is_empty() && !codes.contains(&r.indicator.as_str()))
        .map(|(i, r)| (i, r.indicator.as_str()))
        .collect()
}

/// Every data-quality override of an edited scheme names an indicator of
/// the group's framework. Without a framework yet nothing is known to
/// check against: [`check_framework_keeps_overrides`] checks the framework
/// when it arrives, so the two always agree.
pub fn check_override_codes(
    s: &Scheme,
    framework: Option<&Framework>,
    v: &mut Violations,
    prefix: &str,
) {
    let Some(f) = framework else {
        return;
    };
    let codes: Vec<&str> = f.indicators.iter().map(|i| i.code.as_str()).collect();
    for (i, code) in orphaned(s, &codes) {
        v.add(
            format!("{prefix}.data_quality.indicators[{i}].indicator"),
            format!("{code:?} is not an indicator of {}", f.name),
        );
    }
}

/// A framework that replaces the group's must keep every indicator the
/// scheme's data-quality overrides name: dropping the override silently
/// would lose the office's setting, keeping it would name nothing.
pub fn check_framework_keeps_overrides(s: &Scheme, indicators: &[Indicator], v: &mut Violations) {
    let codes: Vec<&str> = indicators.iter().map(|i| i.code.as_str()).collect();
    for (i, code) in orphaned(s, &codes) {
        v.add(
            "indicators",
            format!(
                "{} sets data-quality rules for {code} (data_quality.indicators[{i}]), which this framework lacks; remove them first (UpdateScheme, path data_quality)",
                s.name
            ),
        );
    }
}

fn non_negative(value: &mut Option<jixiao_proto::Decimal>) -> Result<Decimal, String> {
    let d = decimal::figure(value)?;
    if d < Decimal::ZERO {
        return Err("must not be negative".into());
    }
    *value = Some(to_proto(d));
    Ok(d)
}

fn check_keys(list: &mut [WeightedKey], unit_interval: bool, v: &mut Violations, field: &str) {
    let mut seen = HashSet::new();
    for (i, k) in list.iter_mut().enumerate() {
        let f = format!("{field}[{i}]");
        v.check(
            valid_key(&k.key),
            format!("{f}.key"),
            "must be lower_snake_case letters and digits",
        );
        v.check(
            seen.insert(k.key.clone()),
            format!("{f}.key"),
            format!("{:?} appears twice", k.key),
        );
        match non_negative(&mut k.value) {
            Ok(d) if unit_interval && d > Decimal::ONE => {
                v.add(format!("{f}.value"), "must lie between 0 and 1")
            }
            Ok(_) => {}
            Err(e) => v.add(format!("{f}.value"), e),
        }
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::d;

    #[test]
    fn default_scheme_is_valid_and_adds_up_to_100() {
        let mut s = default_scheme("x".into());
        let mut v = Violations::new();
        check_scheme(&mut s, &mut v, "scheme");
        assert!(v.is_empty(), "{:?}", v.as_slice());
    }

    #[test]
    fn data_quality_thresholds_are_positive_and_indicators_unique() {
        let mut s = default_scheme("x".into());
        let q = s.data_quality.as_mut().unwrap();
        q.outlier_threshold = d("0");
        q.outlier_min_peers = 2;
        q.indicators = vec![
            jixiao_proto::plans::IndicatorQualityRules {
                indicator: "GDP".into(),
                jump_threshold: d("-1"),
                ..Default::default()
            },
            jixiao_proto::plans::IndicatorQualityRules {
                indicator: "GDP".into(),
                ..Default::default()
            },
        ];
        let mut v = Violations::new();
        check_scheme(&mut s, &mut v, "scheme");
        let fields: Vec<_> = v.as_slice().iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "scheme.data_quality.outlier_threshold",
                "scheme.data_quality.indicators[0].jump_threshold",
                "scheme.data_quality.indicators[1].indicator",
                "scheme.data_quality.outlier_min_peers",
            ]
        );
    }

    #[test]
    fn data_quality_overrides_name_indicators_of_the_framework() {
        use crate::rules::fixtures::indicator;
        use jixiao_proto::plans::{IndicatorQualityRules, ScoringMethod};
        let mut s = default_scheme("cycles/2026/groups/g/scheme".into());
        s.data_quality.as_mut().unwrap().indicators = ["GDP", "GDP_GROWHT"]
            .map(|code| IndicatorQualityRules {
                indicator: code.into(),
                ..Default::default()
            })
            .to_vec();
        let framework = Framework {
            name: "cycles/2026/groups/g/framework".into(),
            indicators: vec![indicator("GDP", "60", ScoringMethod::Ratio)],
            ..Default::default()
        };
        let mut v = Violations::new();
        check_override_codes(&s, Some(&framework), &mut v, "scheme");
        assert_eq!(
            v.as_slice()
                .iter()
                .map(|x| x.field.as_str())
                .collect::<Vec<_>>(),
            ["scheme.data_quality.indicators[1].indicator"]
        );
        assert!(v.as_slice()[0].description.contains("GDP_GROWHT"));
        // Without a framework yet, nothing to check against.
        let mut v = Violations::new();
        check_override_codes(&s, None, &mut v, "scheme");
        assert!(v.is_empty());
        // A framework dropping an overridden indicator is refused.
        let mut v = Violations::new();
        check_framework_keeps_overrides(&s, &framework.indicators[..0], &mut v);
        let fields: Vec<_> = v.as_slice().iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["indicators", "indicators"]);
        assert!(v.as_slice()[0].description.contains("GDP"));
    }

    #[test]
    fn scheme_maxima_must_add_up_to_100() {
        let mut s = default_scheme("x".into());
        s.survey_max = d("31");
        let mut v = Violations::new();
        check_scheme(&mut s, &mut v, "scheme");
        assert_eq!(v.as_slice()[0].field, "scheme.indicator_max");
        assert!(v.as_slice()[0].description.contains("101"));
    }

    #[test]
    fn scheme_maxima_have_the_places_of_points() {
        let mut s = default_scheme("x".into());
        s.indicator_max = d("60.0000001");
        s.survey_max = d("29.9999999");
        let mut v = Violations::new();
        check_scheme(&mut s, &mut v, "scheme");
        let fields: Vec<_> = v.as_slice().iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["scheme.indicator_max", "scheme.survey_max"]);
    }
}
