//! The office sets up the year (units, the cycle, its notice, groups and
//! frameworks) and the plan round runs: drafts, a return, a late plan
//! under a lock exception, approvals.

use jixiao_proto::plans::{
    ApprovePlanRequest, CreateCycleRequest, CreateGroupRequest, CreateNoticeRequest,
    CreatePlanRequest, CreateUnitRequest, Cycle, Deadlines, Goal, GrantLockExceptionRequest, Group,
    Indicator, LockException, LockScope, Milestone, Notice, Plan, ReplaceFrameworkRequest,
    ReturnPlanRequest, SubmitPlanRequest, Target, Unit, UpdateCycleRequest, UpdatePlanRequest,
    plans_service_client::PlansServiceClient,
};
use tonic::Code;

use super::{CYCLE, DAY, Demo, GroupSpec, YEAR, dec, ts, year};
use crate::client::failed;

impl Demo {
    pub(super) async fn setup(&self, groups: &[GroupSpec]) -> Result<(), String> {
        let mut plans = self.plans_office();
        for u in year::DISTRICTS
            .iter()
            .chain(&year::DEPARTMENTS)
            .chain(&year::PROVIDERS_ONLY)
        {
            plans
                .create_unit(CreateUnitRequest {
                    unit_id: u.id.into(),
                    unit: Some(Unit {
                        display_name_zh: u.zh.into(),
                        display_name_en: u.en.into(),
                        kind: u.kind as i32,
                        ..Default::default()
                    }),
                    request_id: format!("demo-unit-{}", u.id),
                })
                .await
                .map_err(failed(format!("unit {}", u.id)))?;
        }
        plans
            .create_cycle(CreateCycleRequest {
                cycle_id: CYCLE.into(),
                cycle: Some(Cycle {
                    year: YEAR,
                    title: format!("{YEAR}年度绩效评估"),
                    deadlines: Some(Deadlines {
                        plan_deadline: ts(self.now + DAY),
                        data_deadline: ts(self.now + 30 * DAY),
                        review_close: ts(self.now + 30 * DAY),
                        rectification_deadline: ts(self.now + 180 * DAY),
                    }),
                    ..Default::default()
                }),
                request_id: "demo-cycle".into(),
            })
            .await
            .map_err(failed("cycle"))?;
        plans
            .create_notice(CreateNoticeRequest {
                parent: format!("cycles/{CYCLE}"),
                notice: Some(Notice {
                    title: format!("关于开展{YEAR}年度绩效评估工作的通知"),
                    body: "各区人民政府、市直各部门：请于规定时间内报送绩效方案，按时报送指标数据及评估材料。".into(),
                    ..Default::default()
                }),
                request_id: "demo-notice".into(),
                notice_id: format!("{YEAR}-evaluation"),
            })
            .await
            .map_err(failed("notice"))?;
        for g in groups {
            plans
                .create_group(CreateGroupRequest {
                    parent: format!("cycles/{CYCLE}"),
                    group_id: g.id.into(),
                    group: Some(Group {
                        display_name: g.name.into(),
                        units: g.units.iter().map(|u| format!("units/{}", u.id)).collect(),
                        ..Default::default()
                    }),
                    request_id: format!("demo-group-{}", g.id),
                })
                .await
                .map_err(failed(format!("group {}", g.id)))?;
            plans
                .replace_framework(ReplaceFrameworkRequest {
                    name: format!("cycles/{CYCLE}/groups/{}/framework", g.id),
                    indicators: g
                        .framework
                        .iter()
                        .map(|i| Indicator {
                            code: i.code.into(),
                            display_name: i.name.into(),
                            measurement_unit: i.measure.into(),
                            direction: i.direction as i32,
                            weight: dec(i.weight.to_string()),
                            method: i.method as i32,
                            plausible_min: dec(i.range.0.to_string()),
                            plausible_max: dec(i.range.1.to_string()),
                            provider: format!("units/{}", i.provider),
                            ..Default::default()
                        })
                        .collect(),
                    request_id: format!("demo-framework-{}", g.id),
                })
                .await
                .map_err(failed(format!("framework of {}", g.id)))?;
        }
        Ok(())
    }

    /// Every unit drafts and submits its plan; the office returns huli's
    /// once; tong'an misses the deadline and submits under a lock
    /// exception; the office approves all. Returns the late unit.
    pub(super) async fn plan_round(&self, groups: &[GroupSpec]) -> Result<&'static str, String> {
        const LATE: &str = "tongan";
        const RETURNED: &str = "huli";
        let mut office = self.plans_office();
        let mut submitted = Vec::new();
        let mut late_draft = None;
        for g in groups {
            for u in g.units {
                let mut client = PlansServiceClient::new(self.unit(u.id));
                let targets: Vec<Target> = g
                    .framework
                    .iter()
                    .filter(|i| i.method != jixiao_proto::plans::ScoringMethod::Assessed)
                    .map(|i| {
                        let (target, _) = year::target_and_final(i, u.id);
                        let mut t = Target {
                            indicator: i.code.into(),
                            value: dec(target),
                            assigned: false,
                        };
                        // huli first proposes a lower growth target.
                        if u.id == RETURNED && i.code == "GDP_GROWTH" {
                            t.value = dec("5.0");
                        }
                        t
                    })
                    .collect();
                let plan = client
                    .create_plan(CreatePlanRequest {
                        parent: format!("cycles/{CYCLE}"),
                        plan: Some(Plan {
                            unit: format!("units/{}", u.id),
                            targets,
                            goals: vec![Goal {
                                title: "优化营商环境".into(),
                                description: "推进“一件事一次办”改革，压缩审批时限".into(),
                                milestones: vec![
                                    Milestone {
                                        description: "完成流程再造方案".into(),
                                        due_time: ts(self.now + 60 * DAY),
                                    },
                                    Milestone {
                                        description: "全部事项上线运行".into(),
                                        due_time: ts(self.now + 150 * DAY),
                                    },
                                ],
                            }],
                            ..Default::default()
                        }),
                        request_id: format!("demo-plan-{}", u.id),
                    })
                    .await
                    .map_err(failed(format!("plan of {}", u.id)))?
                    .into_inner();
                if u.id == LATE {
                    late_draft = Some(plan);
                    continue;
                }
                let plan = client
                    .submit_plan(SubmitPlanRequest {
                        name: plan.name,
                        etag: plan.etag,
                        request_id: String::new(),
                    })
                    .await
                    .map_err(failed(format!("submitting the plan of {}", u.id)))?
                    .into_inner();
                let plan = if u.id == RETURNED {
                    self.return_and_revise(plan, groups).await?
                } else {
                    plan
                };
                submitted.push(plan);
            }
        }
        // The deadline passes; tong'an is refused, then let in late.
        office
            .update_cycle(UpdateCycleRequest {
                cycle: Some(Cycle {
                    name: format!("cycles/{CYCLE}"),
                    deadlines: Some(Deadlines {
                        plan_deadline: ts(self.now - 60_000),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["deadlines.plan_deadline".into()],
                }),
            })
            .await
            .map_err(failed("closing plan submission"))?;
        let draft = late_draft.expect("the late unit is in a group");
        let mut late_client = PlansServiceClient::new(self.unit(LATE));
        let refused = late_client
            .submit_plan(SubmitPlanRequest {
                name: draft.name.clone(),
                etag: draft.etag.clone(),
                request_id: String::new(),
            })
            .await;
        match refused {
            Err(s) if s.code() == Code::FailedPrecondition => {}
            other => {
                return Err(format!(
                    "a plan after the deadline should be refused, got {:?}",
                    other.map(|_| ())
                ));
            }
        }
        office
            .grant_lock_exception(GrantLockExceptionRequest {
                parent: format!("cycles/{CYCLE}"),
                lock_exception: Some(LockException {
                    unit: format!("units/{LATE}"),
                    scope: LockScope::Plan as i32,
                    expire_time: ts(self.now + DAY),
                    reason: "同安区因机构调整申请延期报送绩效方案".into(),
                    ..Default::default()
                }),
                request_id: "demo-lock-tongan".into(),
                lock_exception_id: "tongan-plan".into(),
            })
            .await
            .map_err(failed("lock exception"))?;
        let plan = late_client
            .submit_plan(SubmitPlanRequest {
                name: draft.name,
                etag: draft.etag,
                request_id: String::new(),
            })
            .await
            .map_err(failed("late plan"))?
            .into_inner();
        submitted.push(plan);

        for plan in submitted {
            office
                .approve_plan(ApprovePlanRequest {
                    name: plan.name.clone(),
                    etag: plan.etag,
                    comment: "同意".into(),
                })
                .await
                .map_err(failed(format!("approving {}", plan.name)))?;
        }
        Ok(LATE)
    }

    async fn return_and_revise(&self, plan: Plan, groups: &[GroupSpec]) -> Result<Plan, String> {
        let returned = self
            .plans_office()
            .return_plan(ReturnPlanRequest {
                name: plan.name,
                etag: plan.etag,
                reason: "地区生产总值增速目标低于全市平均预期，请调整".into(),
            })
            .await
            .map_err(failed("returning huli's plan"))?
            .into_inner();
        let gdp = groups[0]
            .framework
            .iter()
            .find(|i| i.code == "GDP_GROWTH")
            .expect("districts have a GDP indicator");
        let (target, _) = year::target_and_final(gdp, "huli");
        let mut targets = returned.targets.clone();
        for t in &mut targets {
            if t.indicator == "GDP_GROWTH" {
                t.value = dec(target.clone());
            }
        }
        let mut client = PlansServiceClient::new(self.unit("huli"));
        let revised = client
            .update_plan(UpdatePlanRequest {
                plan: Some(Plan {
                    name: returned.name.clone(),
                    targets,
                    etag: returned.etag,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["targets".into()],
                }),
            })
            .await
            .map_err(failed("revising huli's plan"))?
            .into_inner();
        Ok(client
            .submit_plan(SubmitPlanRequest {
                name: revised.name,
                etag: revised.etag,
                request_id: String::new(),
            })
            .await
            .map_err(failed("resubmitting huli's plan"))?
            .into_inner())
    }
}
