//! Inspections, spot checks, contests and self-inspection items.

use jixiao_proto::inspections::{
    ConfirmFindingRequest, ContestFindingRequest, CreateInspectionRequest,
    CreateSelfInspectionItemRequest, DecideContestRequest, Finding, Inspection,
    RecordSpotCheckRequest, SelfInspectionItem, SpotCheckCase, StaffAction,
    VerifySelfInspectionItemRequest, inspections_service_client::InspectionsServiceClient,
};
use jixiao_runtime::{Role, time::timestamp};

use super::{CYCLE, DAY, Demo, GroupSpec, dec, evidence, ts, year};
use crate::client::failed;

impl Demo {
    /// Visits with findings the office confirms, spot checks of licensing
    /// cases, four contests (two withdrawn, two upheld), and self-inspection
    /// items the office verifies (one rejected). Returns (findings, items).
    pub(super) async fn inspections(&self, groups: &[GroupSpec]) -> Result<(usize, usize), String> {
        const CONTESTS: [(&str, bool); 4] = [
            ("jimei", false),
            ("haicang", true),
            ("market", true),
            ("transport", false),
        ];
        let mut inspector = InspectionsServiceClient::new(self.as_principal(
            "inspector-li",
            &[Role::Inspector],
            None,
        ));
        let mut office = InspectionsServiceClient::new(self.office());
        let parent = format!("cycles/{CYCLE}");
        let (mut findings, mut items) = (0, 0);
        for g in groups {
            for u in g.units {
                let mut recorded: Vec<Finding> = Vec::new();
                for (n, visit) in year::inspections(u.id).into_iter().enumerate() {
                    let inspection = inspector
                        .create_inspection(CreateInspectionRequest {
                            parent: parent.clone(),
                            inspection: Some(Inspection {
                                unit: format!("units/{}", u.id),
                                kind: visit.kind,
                                inspect_time: ts(self.now - visit.days_ago * DAY),
                                inspectors: vec!["李明".into(), "王芳".into()],
                                place: visit.place.into(),
                                findings: visit
                                    .findings
                                    .iter()
                                    .map(|f| Finding {
                                        category: f.category.into(),
                                        description: f.description.into(),
                                        deduction: dec(year::fixed(f.deduction, 1)),
                                        evidence: evidence(&format!("察访记录{n}"), u.id),
                                        rectification_due_time: (f.category
                                            == "overdue_processing")
                                            .then(|| timestamp(self.now + 90 * DAY)),
                                        ..Default::default()
                                    })
                                    .collect(),
                                ..Default::default()
                            }),
                            request_id: format!("demo-inspection-{}-{n}", u.id),
                            inspection_id: format!("{}-visit-{}", u.id, n + 1),
                        })
                        .await
                        .map_err(failed(format!("inspection of {}", u.id)))?
                        .into_inner();
                    recorded.extend(inspection.findings);
                }
                if g.spot_cases > 0 {
                    let spot = inspector
                        .record_spot_check(RecordSpotCheckRequest {
                            parent: parent.clone(),
                            unit: format!("units/{}", u.id),
                            inspect_time: ts(self.now - 40 * DAY),
                            inspectors: vec!["李明".into()],
                            cases: year::spot_cases(u.id, g.spot_cases)
                                .into_iter()
                                .map(|(case_reference, limit, actual, complete)| SpotCheckCase {
                                    case_reference,
                                    legal_limit_days: limit,
                                    actual_days: actual,
                                    file_complete: complete,
                                })
                                .collect(),
                            request_id: format!("demo-spot-{}", u.id),
                            inspection_id: format!("{}-spot-1", u.id),
                        })
                        .await
                        .map_err(failed(format!("spot check of {}", u.id)))?
                        .into_inner();
                    recorded.extend(spot.findings);
                }
                for f in &recorded {
                    office
                        .confirm_finding(ConfirmFindingRequest {
                            name: f.name.clone(),
                        })
                        .await
                        .map_err(failed(format!("confirming {}", f.name)))?;
                }
                findings += recorded.len();
                if let Some((_, uphold)) = CONTESTS.iter().find(|(id, _)| *id == u.id) {
                    let first = recorded.first().ok_or(format!("{} has no finding", u.id))?;
                    InspectionsServiceClient::new(self.unit(u.id))
                        .contest_finding(ContestFindingRequest {
                            name: first.name.clone(),
                            reason: "当日系统升级导致窗口暂停受理，有运维记录为证".into(),
                        })
                        .await
                        .map_err(failed(format!("contest of {}", u.id)))?;
                    office
                        .decide_contest(DecideContestRequest {
                            name: first.name.clone(),
                            uphold: *uphold,
                            note: if *uphold {
                                "经复核，扣分事实清楚，维持原认定".into()
                            } else {
                                "经核实系统故障属实，撤销该项扣分".into()
                            },
                        })
                        .await
                        .map_err(failed(format!("deciding the contest of {}", u.id)))?;
                }
                items += self.self_inspection(u.id).await?;
            }
        }
        Ok((findings, items))
    }

    async fn self_inspection(&self, unit: &str) -> Result<usize, String> {
        let mut client = InspectionsServiceClient::new(self.unit(unit));
        let mut office = InspectionsServiceClient::new(self.office());
        let specs = year::self_items(unit);
        for (n, spec) in specs.iter().enumerate() {
            let item = client
                .create_self_inspection_item(CreateSelfInspectionItemRequest {
                    parent: format!("cycles/{CYCLE}"),
                    item: Some(SelfInspectionItem {
                        unit: format!("units/{unit}"),
                        item_type: spec.item_type.into(),
                        problem: spec.problem.into(),
                        action_taken: spec.action.into(),
                        staff_actions: spec
                            .staff_action
                            .iter()
                            .map(|(kind, count)| StaffAction {
                                kind: kind.to_string(),
                                count: *count,
                            })
                            .collect(),
                        ..Default::default()
                    }),
                    request_id: format!("demo-self-{unit}-{n}"),
                    item_id: format!("{unit}-self-{}", n + 1),
                })
                .await
                .map_err(failed(format!("self-inspection item of {unit}")))?
                .into_inner();
            // The office rejects one of siming's items as not self-found.
            let verify = !(unit == "siming" && n == 0);
            office
                .verify_self_inspection_item(VerifySelfInspectionItemRequest {
                    name: item.name,
                    verify,
                    note: if verify {
                        "核实属实".into()
                    } else {
                        "该问题系群众投诉后发现，不属于自查".into()
                    },
                })
                .await
                .map_err(failed(format!("verifying an item of {unit}")))?;
        }
        Ok(specs.len())
    }
}
