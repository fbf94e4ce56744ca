//! Field-level differences between two versions of a plan.

use std::collections::BTreeMap;

use jixiao_proto::plans::{Goal, Target};
use jixiao_runtime::time::millis;

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
    use crate::rules::fixtures::d;
    use jixiao_proto::plans::Milestone;

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
