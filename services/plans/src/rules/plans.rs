//! A unit's plan: its lifecycle, and the checks of its targets and goals
//! against the group's framework.

use std::collections::{HashMap, HashSet};

use jixiao_proto::plans::{Framework, Indicator, Plan, PlanState, Target};
use jixiao_runtime::{
    Violations,
    decimal::{self, canonical, to_proto},
    lifecycle::Machine,
    text, time,
};
use rust_decimal::Decimal;

use super::framework::{needs_target, usable_target};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::fixtures::{d, indicator};
    use jixiao_proto::plans::{AssignedTarget, ScoringMethod};

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
}
