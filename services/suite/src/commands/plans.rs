//! `jixiao plans submit`: a unit's plan from a JSON file.

use std::{collections::BTreeMap, path::Path};

use jixiao_proto::{
    Decimal,
    plans::{
        CreatePlanRequest, GetPlanRequest, Goal, Milestone, Plan, PlanState, SubmitPlanRequest,
        Target, UpdatePlanRequest, plans_service_client::PlansServiceClient,
    },
};
use tonic::Code;

use super::Caller;
use crate::client::failed;

/// A plan file: the unit, a target per indicator code, key work goals.
///
/// ```json
/// {"unit": "siming",
///  "targets": {"GDP_GROWTH": "7.0", "ENERGY_PER_GDP": "0.42"},
///  "goals": [{"title": "优化营商环境", "description": "…",
///             "milestones": [{"description": "方案", "due": "2026-06-30"}]}]}
/// ```
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    unit: String,
    targets: BTreeMap<String, String>,
    #[serde(default)]
    goals: Vec<GoalFile>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GoalFile {
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    milestones: Vec<MilestoneFile>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MilestoneFile {
    description: String,
    /// A date, `2026-06-30`, due at the end of that day (UTC).
    due: String,
}

pub(super) fn plan_from_file(text: &str) -> Result<(String, Vec<Target>, Vec<Goal>), String> {
    let file: PlanFile = serde_json::from_str(text).map_err(|e| format!("plan file: {e}"))?;
    let unit = file.unit.trim_start_matches("units/").to_string();
    let targets = file
        .targets
        .into_iter()
        .map(|(indicator, value)| Target {
            indicator,
            value: Some(Decimal { value }),
            assigned: false,
        })
        .collect();
    let mut goals = Vec::new();
    for g in file.goals {
        let mut milestones = Vec::new();
        for m in g.milestones {
            let due: prost_types::Timestamp =
                format!("{}T23:59:59Z", m.due).parse().map_err(|_| {
                    format!(
                        "milestone {:?}: due {:?} is not YYYY-MM-DD",
                        m.description, m.due
                    )
                })?;
            milestones.push(Milestone {
                description: m.description,
                due_time: Some(due),
            });
        }
        goals.push(Goal {
            title: g.title,
            description: g.description,
            milestones,
        });
    }
    Ok((unit, targets, goals))
}

/// `jixiao plans submit`: creates the unit's plan from a file, or updates
/// its draft or returned plan, and submits it.
pub async fn submit_plan(caller: &Caller, cycle: &str, file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let (unit, targets, goals) = plan_from_file(&text)?;
    let mut client = PlansServiceClient::new(caller.channel().await?);
    let name = format!("cycles/{cycle}/plans/{unit}");
    let existing = match client.get_plan(GetPlanRequest { name: name.clone() }).await {
        Ok(p) => Some(p.into_inner()),
        Err(s) if s.code() == Code::NotFound => None,
        Err(s) => return Err(failed(&name)(s)),
    };
    let draft = match existing {
        None => client
            .create_plan(CreatePlanRequest {
                parent: format!("cycles/{cycle}"),
                plan: Some(Plan {
                    unit: format!("units/{unit}"),
                    targets,
                    goals,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .map_err(failed(format!("creating {name}")))?
            .into_inner(),
        Some(p) if matches!(p.state(), PlanState::Draft | PlanState::Returned) => client
            .update_plan(UpdatePlanRequest {
                plan: Some(Plan {
                    name: p.name,
                    targets,
                    goals,
                    etag: p.etag,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["targets".into(), "goals".into()],
                }),
            })
            .await
            .map_err(failed(format!("updating {name}")))?
            .into_inner(),
        Some(p) => {
            return Err(format!(
                "{name} is {}; only a draft or returned plan can be submitted (an approved plan changes by amendment)",
                p.state().as_str_name().trim_start_matches("PLAN_STATE_")
            ));
        }
    };
    let submitted = client
        .submit_plan(SubmitPlanRequest {
            name: draft.name,
            etag: draft.etag,
            request_id: String::new(),
        })
        .await
        .map_err(failed(format!("submitting {name}")))?
        .into_inner();
    Ok(format!(
        "{} version {} is {}{}\n",
        submitted.name,
        submitted.version,
        submitted
            .state()
            .as_str_name()
            .trim_start_matches("PLAN_STATE_"),
        if submitted.late { " (late)" } else { "" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_files_name_their_mistakes() {
        let (unit, targets, goals) = plan_from_file(
            r#"{"unit":"units/siming","targets":{"GDP_GROWTH":"7.0"},
                "goals":[{"title":"t","milestones":[{"description":"m","due":"2026-06-30"}]}]}"#,
        )
        .unwrap();
        assert_eq!((unit.as_str(), targets.len()), ("siming", 1));
        assert_eq!(
            goals[0].milestones[0].due_time.unwrap().to_string(),
            "2026-06-30T23:59:59Z"
        );
        assert!(
            plan_from_file(r#"{"unit":"x","targets":{},"goal":[]}"#)
                .unwrap_err()
                .contains("unknown field `goal`")
        );
        assert!(
            plan_from_file(
                r#"{"unit":"x","targets":{},"goals":[{"title":"t","milestones":[{"description":"m","due":"30.6.2026"}]}]}"#
            )
            .unwrap_err()
            .contains("YYYY-MM-DD")
        );
    }
}
