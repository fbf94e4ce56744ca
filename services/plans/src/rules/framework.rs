//! A group's framework: its indicators, their weights, plausible ranges,
//! providers and the targets the office assigns.

use std::collections::HashSet;

use jixiao_proto::plans::{Direction, Indicator, ScoringMethod};
use jixiao_runtime::{
    Violations,
    decimal::{self, canonical, to_proto},
    text,
};
use rust_decimal::Decimal;

use super::WEIGHT_DP;

/// Whether an indicator code is well-formed: letters, digits, `_` and `-`.
pub fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What a framework check needs to know about the world.
pub struct FrameworkContext<'a> {
    /// Units that exist.
    pub known_units: &'a HashSet<String>,
    /// Units of the group (`units/{id}`).
    pub members: &'a HashSet<String>,
    /// The scheme's indicator maximum.
    pub indicator_max: Decimal,
}

/// Checks a whole framework, rewriting decimals in canonical form; returns
/// the total weight. Every bad field is named.
pub fn check_framework(
    indicators: &mut [Indicator],
    ctx: &FrameworkContext<'_>,
    v: &mut Violations,
) -> Decimal {
    let mut total = Decimal::ZERO;
    let mut codes = HashSet::new();
    v.check(
        !indicators.is_empty(),
        "indicators",
        "a framework needs at least one indicator",
    );
    for (i, ind) in indicators.iter_mut().enumerate() {
        let f = format!("indicators[{i}]");
        if !valid_code(&ind.code) {
            v.add(
                format!("{f}.code"),
                "must be 1-64 letters, digits, '_' or '-'",
            );
        } else if !codes.insert(ind.code.clone()) {
            v.add(format!("{f}.code"), format!("{} appears twice", ind.code));
        }
        text::required(
            v,
            format!("{f}.display_name"),
            &ind.display_name,
            text::LABEL,
        );
        text::optional(
            v,
            format!("{f}.measurement_unit"),
            &ind.measurement_unit,
            text::LABEL,
        );
        v.check(
            matches!(
                Direction::try_from(ind.direction),
                Ok(Direction::HigherIsBetter | Direction::LowerIsBetter)
            ),
            format!("{f}.direction"),
            "must be HIGHER_IS_BETTER or LOWER_IS_BETTER",
        );
        v.check(
            ScoringMethod::try_from(ind.method).is_ok_and(|m| m != ScoringMethod::Unspecified),
            format!("{f}.method"),
            "must be RATIO, THRESHOLD, PEER_BEST, PEER_RANK or ASSESSED",
        );
        match decimal::figure(&ind.weight) {
            // Points are published to 6 places; a weight is the most points
            // an indicator gives, so it is written to at most as many.
            Ok(w) if w > Decimal::ZERO && w.normalize().scale() <= WEIGHT_DP => {
                total += w;
                ind.weight = Some(to_proto(w));
            }
            Ok(w) if w > Decimal::ZERO => v.add(
                format!("{f}.weight"),
                format!("has at most {WEIGHT_DP} decimal places, as points do"),
            ),
            Ok(_) => v.add(format!("{f}.weight"), "must be positive"),
            Err(e) => v.add(format!("{f}.weight"), e),
        }
        let min = decimal::figure(&ind.plausible_min);
        let max = decimal::figure(&ind.plausible_max);
        match (&min, &max) {
            (Ok(lo), Ok(hi)) if lo > hi => v.add(
                format!("{f}.plausible_max"),
                "must not be below plausible_min",
            ),
            _ => {}
        }
        for (field, r, slot) in [
            ("plausible_min", &min, &mut ind.plausible_min),
            ("plausible_max", &max, &mut ind.plausible_max),
        ] {
            match r {
                Ok(d) => *slot = Some(to_proto(*d)),
                Err(e) => v.add(format!("{f}.{field}"), e.clone()),
            }
        }
        // Nobody reports a value of an ASSESSED indicator (an evaluator
        // enters its score), so it needs no provider; one named must exist.
        let assessed = ind.method == ScoringMethod::Assessed as i32;
        let unneeded = assessed && ind.provider.is_empty();
        if !unneeded && !ctx.known_units.contains(&ind.provider) {
            v.add(
                format!("{f}.provider"),
                format!("{:?} is not a registered unit", ind.provider),
            );
        }
        for (j, u) in ind.cooperating_units.iter().enumerate() {
            v.check(
                ctx.known_units.contains(u),
                format!("{f}.cooperating_units[{j}]"),
                format!("{u:?} is not a registered unit"),
            );
        }
        let mut assigned = HashSet::new();
        let method = ind.method;
        for (j, t) in ind.assigned_targets.iter_mut().enumerate() {
            let tf = format!("{f}.assigned_targets[{j}]");
            if assessed {
                // A plan refuses a target of an ASSESSED indicator, so an
                // assigned one would make the unit's plan unsubmittable.
                v.add(tf, format!("{} is ASSESSED and takes no target", ind.code));
                continue;
            }
            if !ctx.members.contains(&t.unit) {
                v.add(
                    format!("{tf}.unit"),
                    format!("{:?} is not a member of the group", t.unit),
                );
            } else if !assigned.insert(t.unit.clone()) {
                v.add(format!("{tf}.unit"), format!("{} has two targets", t.unit));
            }
            match decimal::figure(&t.value) {
                Ok(d) => {
                    if let Err(e) = usable_target(method, d) {
                        v.add(format!("{tf}.value"), e);
                    }
                    if let (Ok(lo), Ok(hi)) = (&min, &max)
                        && (d < *lo || d > *hi)
                    {
                        v.add(
                            format!("{tf}.value"),
                            format!("{d} is outside the plausible range [{lo}, {hi}]"),
                        );
                    }
                    t.value = Some(to_proto(d));
                }
                Err(e) => v.add(format!("{tf}.value"), e),
            }
        }
    }
    if v.is_empty() && total != ctx.indicator_max {
        v.add(
            "indicators",
            format!(
                "the weights add up to {}; they must add up to the indicator maximum {}",
                canonical(total),
                canonical(ctx.indicator_max)
            ),
        );
    }
    total
}

/// Whether an indicator needs a target in a plan. An ASSESSED indicator is
/// scored by an evaluator and has none.
pub fn needs_target(ind: &Indicator) -> bool {
    ind.method != ScoringMethod::Assessed as i32
}

/// A RATIO indicator divides by its target (A/T) or compares the target
/// with the actual (T/A): a target of zero or below leaves no share to take.
pub(super) fn usable_target(method: i32, d: Decimal) -> Result<(), String> {
    if method == ScoringMethod::Ratio as i32 && d <= Decimal::ZERO {
        Err(format!(
            "{d} cannot be the target of a RATIO indicator: the ratio needs a target above 0"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{
        dec,
        fixtures::{d, indicator},
    };
    use jixiao_proto::plans::AssignedTarget;

    fn ctx<'a>(known: &'a HashSet<String>, members: &'a HashSet<String>) -> FrameworkContext<'a> {
        FrameworkContext {
            known_units: known,
            members,
            indicator_max: dec("60"),
        }
    }

    fn sets() -> (HashSet<String>, HashSet<String>) {
        let known = ["units/stats", "units/siming", "units/huli"]
            .map(String::from)
            .into();
        let members = ["units/siming", "units/huli"].map(String::from).into();
        (known, members)
    }

    #[test]
    fn framework_weights_must_add_up_to_the_indicator_maximum() {
        let (known, members) = sets();
        let mut f = vec![
            indicator("A", "30", ScoringMethod::Ratio),
            indicator("B", "29.5", ScoringMethod::Threshold),
        ];
        let mut v = Violations::new();
        let total = check_framework(&mut f, &ctx(&known, &members), &mut v);
        assert_eq!(total, dec("59.5"));
        assert_eq!(v.as_slice().len(), 1);
        assert_eq!(v.as_slice()[0].field, "indicators");
    }

    #[test]
    fn weights_have_the_places_of_points() {
        let (known, members) = sets();
        let mut f = vec![
            indicator("A", "30.1234560", ScoringMethod::Ratio),
            indicator("B", "29.8765440", ScoringMethod::Threshold),
        ];
        let mut v = Violations::new();
        check_framework(&mut f, &ctx(&known, &members), &mut v);
        assert!(v.as_slice().is_empty(), "{:?}", v.as_slice());
        let mut f = vec![
            indicator("A", "30.0000001", ScoringMethod::Ratio),
            indicator("B", "29.9999999", ScoringMethod::Threshold),
        ];
        check_framework(&mut f, &ctx(&known, &members), &mut v);
        let fields: Vec<_> = v.as_slice().iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields[..2],
            ["indicators[0].weight", "indicators[1].weight"]
        );
    }

    #[test]
    fn an_assessed_indicator_needs_no_provider_and_takes_no_target() {
        let (known, members) = sets();
        let mut assessed = indicator("A", "30", ScoringMethod::Assessed);
        assessed.provider.clear();
        let mut ratio = indicator("B", "30", ScoringMethod::Ratio);
        ratio.provider.clear();
        let mut f = vec![assessed.clone(), ratio];
        let mut v = Violations::new();
        check_framework(&mut f, &ctx(&known, &members), &mut v);
        let fields: Vec<_> = v.as_slice().iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["indicators[1].provider"]);

        assessed.provider = "units/nobody".into();
        assessed.assigned_targets = vec![AssignedTarget {
            unit: "units/siming".into(),
            value: d("3"),
        }];
        let mut f = vec![assessed, indicator("B", "30", ScoringMethod::Ratio)];
        let mut v = Violations::new();
        check_framework(&mut f, &ctx(&known, &members), &mut v);
        let fields: Vec<_> = v.as_slice().iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "indicators[0].provider",
                "indicators[0].assigned_targets[0]"
            ]
        );
    }

    #[test]
    fn framework_names_every_bad_field() {
        let (known, members) = sets();
        let mut bad = indicator("A", "-1", ScoringMethod::Unspecified);
        bad.provider = "units/nobody".into();
        bad.plausible_min = d("5");
        bad.plausible_max = d("1");
        bad.assigned_targets = vec![AssignedTarget {
            unit: "units/stats".into(),
            value: d("3"),
        }];
        let mut f = vec![bad, indicator("A", "60", ScoringMethod::Ratio)];
        let mut v = Violations::new();
        check_framework(&mut f, &ctx(&known, &members), &mut v);
        let fields: Vec<_> = v.as_slice().iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "indicators[0].method",
                "indicators[0].weight",
                "indicators[0].plausible_max",
                "indicators[0].provider",
                "indicators[0].assigned_targets[0].unit",
                // 3 lies outside the (inverted) range [5, 1].
                "indicators[0].assigned_targets[0].value",
                "indicators[1].code",
            ]
        );
    }
}
