//! The plan rules of DOMAIN.md §2 and §4 as plain functions: scheme
//! defaults and checks, framework checks, plan checks and version diffs.
//! The write windows (phases, deadlines, lock exceptions) are the suite's
//! one table in `jixiao_runtime::phases`.

use std::collections::{BTreeMap, HashMap, HashSet};

use jixiao_proto::plans::{
    Direction, Framework, Goal, Indicator, MutualScale, Plan, PlanState, Scheme, ScoringMethod,
    Target, WeightedKey,
};
use jixiao_runtime::{
    Violations,
    decimal::{self, canonical, to_proto},
    lifecycle::Machine,
    text,
    time::{self, millis},
};
use rust_decimal::Decimal;

/// The plan lifecycle (DOMAIN.md §4): a DRAFT (or RETURNED) plan is
/// SUBMITTED; the office APPROVES or RETURNS it; an approved plan is
/// amended, which makes it a DRAFT again until the amendment is approved.
pub const PLANS: Machine<PlanState> = Machine {
    name: PlanState::as_str_name,
    moves: &[
        (PlanState::Draft, PlanState::Submitted),
        (PlanState::Returned, PlanState::Submitted),
        (PlanState::Submitted, PlanState::Approved),
        (PlanState::Submitted, PlanState::Returned),
        (PlanState::Approved, PlanState::Draft),
    ],
};

/// Decimal places of an indicator's weight and of a component maximum:
/// those of points.
pub const WEIGHT_DP: u32 = 6;

fn dec(s: &str) -> Decimal {
    decimal::parse_figure(s).expect("literal decimal")
}

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
    if s.mutual_scale == MutualScale::Grades as i32 && s.grade_values.is_empty() {
        v.add(
            format!("{prefix}.grade_values"),
            "a grade scale needs grade values",
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
        if !ctx.known_units.contains(&ind.provider) {
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
fn usable_target(method: i32, d: Decimal) -> Result<(), String> {
    if method == ScoringMethod::Ratio as i32 && d <= Decimal::ZERO {
        Err(format!(
            "{d} cannot be the target of a RATIO indicator: the ratio needs a target above 0"
        ))
    } else {
        Ok(())
    }
}

/// Fills the targets the office assigned to `unit` into `targets`,
/// overriding whatever the unit wrote there.
pub fn apply_assigned_targets(targets: &mut Vec<Target>, framework: &Framework, unit: &str) {
    for ind in &framework.indicators {
        if let Some(a) = ind.assigned_targets.iter().find(|a| a.unit == unit) {
            targets.retain(|t| t.indicator != ind.code);
            targets.push(Target {
                indicator: ind.code.clone(),
                value: a.value.clone(),
                assigned: true,
            });
        }
    }
    sort_targets(targets, framework);
}

/// Orders targets as the framework orders its indicators.
pub fn sort_targets(targets: &mut [Target], framework: &Framework) {
    let order: HashMap<&str, usize> = framework
        .indicators
        .iter()
        .enumerate()
        .map(|(i, ind)| (ind.code.as_str(), i))
        .collect();
    targets.sort_by_key(|t| {
        order
            .get(t.indicator.as_str())
            .copied()
            .unwrap_or(usize::MAX)
    });
}

/// Checks a plan's content against the framework. `complete` also demands a
/// target for every indicator that needs one (at submission); drafts may be
/// partial but what they hold must be valid. Rewrites decimals canonically.
pub fn check_plan(
    plan: &mut Plan,
    framework: &Framework,
    unit: &str,
    complete: bool,
    v: &mut Violations,
) {
    let by_code: HashMap<&str, &Indicator> = framework
        .indicators
        .iter()
        .map(|i| (i.code.as_str(), i))
        .collect();
    let mut seen = HashSet::new();
    for (i, t) in plan.targets.iter_mut().enumerate() {
        let f = format!("plan.targets[{i}]");
        let Some(ind) = by_code.get(t.indicator.as_str()) else {
            v.add(
                format!("{f}.indicator"),
                format!(
                    "{:?} is not an indicator of the group's framework",
                    t.indicator
                ),
            );
            continue;
        };
        if !seen.insert(t.indicator.clone()) {
            v.add(
                format!("{f}.indicator"),
                format!("{} has two targets", t.indicator),
            );
        }
        if !needs_target(ind) {
            v.add(
                format!("{f}.indicator"),
                format!("{} is ASSESSED and takes no target", t.indicator),
            );
            continue;
        }
        let assigned = ind.assigned_targets.iter().find(|a| a.unit == unit);
        match decimal::figure(&t.value) {
            Ok(d) => {
                let lo = decimal::figure(&ind.plausible_min).unwrap_or(Decimal::MIN);
                let hi = decimal::figure(&ind.plausible_max).unwrap_or(Decimal::MAX);
                if let Some(a) = assigned {
                    if decimal::figure(&a.value).ok() != Some(d) {
                        v.add(
                            format!("{f}.value"),
                            "was assigned by the office and cannot be changed",
                        );
                    }
                } else if let Err(e) = usable_target(ind.method, d) {
                    v.add(format!("{f}.value"), e);
                } else if d < lo || d > hi {
                    v.add(
                        format!("{f}.value"),
                        format!(
                            "{d} is outside the plausible range [{}, {}] of {}",
                            canonical(lo),
                            canonical(hi),
                            ind.code
                        ),
                    );
                }
                t.value = Some(to_proto(d));
                t.assigned = assigned.is_some();
            }
            Err(e) => v.add(format!("{f}.value"), e),
        }
    }
    if complete {
        for ind in &framework.indicators {
            if needs_target(ind) && !seen.contains(&ind.code) {
                v.add(
                    "plan.targets",
                    format!("missing a target for indicator {}", ind.code),
                );
            }
        }
    }
    for (i, g) in plan.goals.iter().enumerate() {
        let f = format!("plan.goals[{i}]");
        text::required(v, format!("{f}.title"), &g.title, text::LABEL);
        text::optional(v, format!("{f}.description"), &g.description, text::NOTE);
        for (j, m) in g.milestones.iter().enumerate() {
            text::required(
                v,
                format!("{f}.milestones[{j}].description"),
                &m.description,
                text::NOTE,
            );
            time::required(&m.due_time, &format!("{f}.milestones[{j}].due_time"), v);
        }
    }
}

/// A changed field between two plan versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub field: String,
    pub old: String,
    pub new: String,
}

/// Field-level difference between two versions: targets by indicator code,
/// goals and milestones by position.
pub fn diff(
    old_targets: &[Target],
    old_goals: &[Goal],
    new_targets: &[Target],
    new_goals: &[Goal],
) -> Vec<Change> {
    let mut out = Vec::new();
    let value = |t: &Target| {
        t.value
            .as_ref()
            .map(|d| d.value.clone())
            .unwrap_or_default()
    };
    let old: BTreeMap<&str, String> = old_targets
        .iter()
        .map(|t| (t.indicator.as_str(), value(t)))
        .collect();
    let new: BTreeMap<&str, String> = new_targets
        .iter()
        .map(|t| (t.indicator.as_str(), value(t)))
        .collect();
    let mut codes: Vec<&str> = new_targets.iter().map(|t| t.indicator.as_str()).collect();
    codes.extend(
        old_targets
            .iter()
            .map(|t| t.indicator.as_str())
            .filter(|c| !new.contains_key(c)),
    );
    for code in codes {
        let (a, b) = (
            old.get(code).cloned().unwrap_or_default(),
            new.get(code).cloned().unwrap_or_default(),
        );
        if a != b {
            out.push(Change {
                field: format!("targets[{code}].value"),
                old: a,
                new: b,
            });
        }
    }
    let ts = |m: &jixiao_proto::plans::Milestone| {
        m.due_time
            .as_ref()
            .map(|t| millis(t).to_string())
            .unwrap_or_default()
    };
    for i in 0..old_goals.len().max(new_goals.len()) {
        let (a, b) = (old_goals.get(i), new_goals.get(i));
        let f = format!("goals[{i}]");
        let mut field = |name: String, x: String, y: String| {
            if x != y {
                out.push(Change {
                    field: name,
                    old: x,
                    new: y,
                });
            }
        };
        field(
            format!("{f}.title"),
            a.map(|g| g.title.clone()).unwrap_or_default(),
            b.map(|g| g.title.clone()).unwrap_or_default(),
        );
        field(
            format!("{f}.description"),
            a.map(|g| g.description.clone()).unwrap_or_default(),
            b.map(|g| g.description.clone()).unwrap_or_default(),
        );
        let (ma, mb) = (
            a.map(|g| g.milestones.as_slice()).unwrap_or(&[]),
            b.map(|g| g.milestones.as_slice()).unwrap_or(&[]),
        );
        for j in 0..ma.len().max(mb.len()) {
            let (x, y) = (ma.get(j), mb.get(j));
            field(
                format!("{f}.milestones[{j}].description"),
                x.map(|m| m.description.clone()).unwrap_or_default(),
                y.map(|m| m.description.clone()).unwrap_or_default(),
            );
            field(
                format!("{f}.milestones[{j}].due_time"),
                x.map(ts).unwrap_or_default(),
                y.map(ts).unwrap_or_default(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jixiao_proto::plans::{AssignedTarget, Milestone};

    fn d(s: &str) -> Option<jixiao_proto::Decimal> {
        Some(jixiao_proto::Decimal { value: s.into() })
    }

    fn indicator(code: &str, weight: &str, method: ScoringMethod) -> Indicator {
        Indicator {
            code: code.into(),
            display_name: code.into(),
            measurement_unit: "%".into(),
            direction: Direction::HigherIsBetter as i32,
            weight: d(weight),
            method: method as i32,
            plausible_min: d("0"),
            plausible_max: d("100"),
            provider: "units/stats".into(),
            ..Default::default()
        }
    }

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
    fn default_scheme_is_valid_and_adds_up_to_100() {
        let mut s = default_scheme("x".into());
        let mut v = Violations::new();
        check_scheme(&mut s, &mut v, "scheme");
        assert!(v.is_empty(), "{:?}", v.as_slice());
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
    fn the_plan_lifecycle() {
        use PlanState::*;
        assert!(PLANS.may_move(Draft, Submitted) && PLANS.may_move(Returned, Submitted));
        assert!(PLANS.may_move(Submitted, Approved) && PLANS.may_move(Submitted, Returned));
        assert!(
            PLANS.may_move(Approved, Draft),
            "an amendment reopens an approved plan"
        );
        assert!(
            !PLANS.may_move(Draft, Approved),
            "nothing is approved unsubmitted"
        );
        assert!(!PLANS.may_move(Returned, Approved));
        assert!(
            PLANS
                .require_move("cycles/2026/plans/x", Approved, Submitted)
                .is_err()
        );
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

    fn framework() -> Framework {
        let mut a = indicator("A", "30", ScoringMethod::Ratio);
        a.assigned_targets = vec![AssignedTarget {
            unit: "units/siming".into(),
            value: d("8"),
        }];
        Framework {
            indicators: vec![
                a,
                indicator("B", "20", ScoringMethod::PeerRank),
                indicator("C", "10", ScoringMethod::Assessed),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn plan_check_names_missing_unknown_and_out_of_range_targets() {
        let f = framework();
        let mut plan = Plan {
            targets: vec![
                Target {
                    indicator: "A".into(),
                    value: d("9"),
                    assigned: false,
                },
                Target {
                    indicator: "Z".into(),
                    value: d("1"),
                    assigned: false,
                },
                Target {
                    indicator: "C".into(),
                    value: d("1"),
                    assigned: false,
                },
            ],
            ..Default::default()
        };
        let mut v = Violations::new();
        check_plan(&mut plan, &f, "units/siming", true, &mut v);
        let got: Vec<_> = v
            .as_slice()
            .iter()
            .map(|x| (x.field.as_str(), x.description.as_str()))
            .collect();
        assert_eq!(
            got[0],
            (
                "plan.targets[0].value",
                "was assigned by the office and cannot be changed"
            )
        );
        assert_eq!(got[1].0, "plan.targets[1].indicator");
        assert_eq!(got[2].0, "plan.targets[2].indicator");
        assert_eq!(got[3], ("plan.targets", "missing a target for indicator B"));
        assert_eq!(got.len(), 4);

        let mut huli = Plan {
            targets: vec![
                Target {
                    indicator: "A".into(),
                    value: d("101"),
                    assigned: false,
                },
                Target {
                    indicator: "B".into(),
                    value: d("5.50"),
                    assigned: false,
                },
            ],
            ..Default::default()
        };
        let mut v = Violations::new();
        check_plan(&mut huli, &f, "units/huli", true, &mut v);
        assert_eq!(v.as_slice().len(), 1);
        assert!(
            v.as_slice()[0]
                .description
                .contains("outside the plausible range [0, 100]")
        );
        assert_eq!(huli.targets[1].value, d("5.5"));
    }

    #[test]
    fn assigned_targets_override_what_the_unit_wrote() {
        let f = framework();
        let mut t = vec![
            Target {
                indicator: "B".into(),
                value: d("1"),
                assigned: false,
            },
            Target {
                indicator: "A".into(),
                value: d("1"),
                assigned: false,
            },
        ];
        apply_assigned_targets(&mut t, &f, "units/siming");
        assert_eq!(t[0].indicator, "A");
        assert_eq!(t[0].value, d("8"));
        assert!(t[0].assigned);
    }

    #[test]
    fn diff_names_changed_targets_and_goal_fields() {
        let t = |c: &str, x: &str| Target {
            indicator: c.into(),
            value: d(x),
            assigned: false,
        };
        let g = |title: &str, ms: &[(&str, i64)]| Goal {
            title: title.into(),
            description: String::new(),
            milestones: ms
                .iter()
                .map(|(m, s)| Milestone {
                    description: (*m).into(),
                    due_time: Some(prost_types::Timestamp {
                        seconds: *s,
                        nanos: 0,
                    }),
                })
                .collect(),
        };
        let changes = diff(
            &[t("A", "1"), t("B", "2")],
            &[g("roads", &[("plan", 10)])],
            &[t("A", "1.5"), t("C", "3")],
            &[g("roads", &[("plan", 20)]), g("parks", &[])],
        );
        let fields: Vec<_> = changes
            .iter()
            .map(|c| (c.field.as_str(), c.old.as_str(), c.new.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("targets[A].value", "1", "1.5"),
                ("targets[C].value", "", "3"),
                ("targets[B].value", "2", ""),
                ("goals[0].milestones[0].due_time", "10000", "20000"),
                ("goals[1].title", "", "parks"),
            ]
        );
    }
}
