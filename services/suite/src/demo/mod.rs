//! `jixiao demo`: a whole evaluation year loaded into a running suite
//! through its public RPCs only, as the office, the units, the data
//! providers, the evaluators, the inspectors and two survey platforms would
//! enter it, then published. The year itself is [`year`].

mod session;
pub mod year;

pub use session::run;

use jixiao_proto::{
    Decimal,
    aggregator::{
        Publication, PublishResultsRequest, VerifyPublicationRequest,
        aggregator_service_client::AggregatorServiceClient,
    },
    indicators::{
        BatchReportValuesRequest, EnterAssessedScoreRequest, IndicatorValue,
        indicators_service_client::IndicatorsServiceClient,
    },
    inspections::{
        ConfirmFindingRequest, ContestFindingRequest, CreateInspectionRequest,
        CreateSelfInspectionItemRequest, DecideContestRequest, Finding, Inspection,
        RecordSpotCheckRequest, SelfInspectionItem, SpotCheckCase, StaffAction,
        VerifySelfInspectionItemRequest, inspections_service_client::InspectionsServiceClient,
    },
    plans::{
        ApprovePlanRequest, CreateCycleRequest, CreateGroupRequest, CreateNoticeRequest,
        CreatePlanRequest, CreateUnitRequest, Cycle, Deadlines, Goal, GrantLockExceptionRequest,
        Group, Indicator, LockException, LockScope, Milestone, Notice, Phase, Plan,
        ReplaceFrameworkRequest, ReturnPlanRequest, SetCyclePhaseRequest, SubmitPlanRequest,
        Target, Unit, UpdateCycleRequest, UpdatePlanRequest,
        plans_service_client::PlansServiceClient,
    },
    reviews::{
        Answer, Campaign, CampaignMode, Channel, CreateCampaignRequest, MutualRating,
        PushResponsesRequest, PushVotesRequest, Question, SubmitMutualRatingRequest,
        SurveyResponse, Vote, reviews_service_client::ReviewsServiceClient,
    },
    types::{EvidenceItem, Period, PeriodKind},
};
use jixiao_runtime::{Role, TokenKey, time::timestamp};
use rand::Rng;
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel as Transport};

use crate::client::{Authed, Bearer, failed};
use year::{CYCLE, GroupSpec, YEAR};

const DAY: i64 = 24 * 3600 * 1000;
/// Responses per streamed batch.
const BATCH: usize = 2000;

/// What the loader reports as it goes.
pub enum Step {
    /// A stage finished, in a line for people.
    Done(String),
    /// Survey responses pushed so far, of all.
    Pushed { sent: usize, total: usize },
}

/// A group's published result.
pub struct Published {
    pub group: &'static str,
    pub group_name: &'static str,
    pub publication: Publication,
}

/// The principals of the year, each a channel carrying its own token.
struct Demo {
    channel: Transport,
    key: TokenKey,
    now: i64,
}

fn dec(s: impl Into<String>) -> Option<Decimal> {
    Some(Decimal { value: s.into() })
}

fn ts(ms: i64) -> Option<prost_types::Timestamp> {
    Some(timestamp(ms))
}

impl Demo {
    fn as_principal(&self, subject: &str, roles: &[Role], unit: Option<&str>) -> Authed {
        let token = self
            .key
            .issue(subject, roles, unit, 24 * 3600)
            .expect("signing with a loaded key");
        InterceptedService::new(
            self.channel.clone(),
            Bearer::new(&token).expect("tokens are ASCII"),
        )
    }

    fn office(&self) -> Authed {
        self.as_principal("office-chen", &[Role::Office], None)
    }

    /// An evaluated unit; the departments that provide data hold both roles.
    fn unit(&self, id: &str) -> Authed {
        self.as_principal(id, &[Role::Unit, Role::Provider], Some(id))
    }

    fn plans_office(&self) -> PlansServiceClient<Authed> {
        PlansServiceClient::new(self.office())
    }
}

/// Loads the demo year into the suite at `addr` (all five services, signed
/// with `key`) and publishes both groups.
pub async fn load(
    addr: &str,
    key: &TokenKey,
    mut on: impl FnMut(Step),
) -> Result<Vec<Published>, String> {
    let channel = tonic::transport::Endpoint::from_shared(addr.to_string())
        .map_err(|e| format!("{addr}: {e}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot reach {addr}: {e}"))?;
    let demo = Demo {
        channel,
        key: key.clone(),
        now: jixiao_runtime::time::now_ms(),
    };
    let groups = year::groups();
    demo.setup(&groups).await?;
    on(Step::Done(format!(
        "cycle {CYCLE}: {} districts and {} city departments, frameworks of {} and {} indicators",
        year::DISTRICTS.len(),
        year::DEPARTMENTS.len(),
        groups[0].framework.len(),
        groups[1].framework.len()
    )));
    let late = demo.plan_round(&groups).await?;
    on(Step::Done(format!(
        "plans: {} approved; {late} submitted late under a lock exception; huli's returned once and revised",
        year::DISTRICTS.len() + year::DEPARTMENTS.len()
    )));
    set_phase(&demo, Phase::Execution).await?;
    let values = demo.indicator_values(&groups).await?;
    on(Step::Done(format!(
        "indicators: {values} final values with evidence from 8 providers, assessed scores from the evaluation group"
    )));
    let (responses, votes, ratings) = demo.reviews(&groups, &mut on).await?;
    on(Step::Done(format!(
        "reviews: {responses} survey responses, {votes} portal votes, {ratings} mutual ratings"
    )));
    let (findings, items) = demo.inspections(&groups).await?;
    on(Step::Done(format!(
        "inspections: {findings} findings (two contests withdrawn, two upheld), {items} self-inspection items"
    )));
    set_phase(&demo, Phase::Assessment).await?;
    let mut published = Vec::new();
    for g in &groups {
        let publication = demo.publish(g).await?;
        on(Step::Done(format!(
            "published {} version {}: digest {} verified",
            g.id, publication.version, publication.digest
        )));
        published.push(Published {
            group: g.id,
            group_name: g.name,
            publication,
        });
    }
    Ok(published)
}

async fn set_phase(demo: &Demo, phase: Phase) -> Result<(), String> {
    demo.plans_office()
        .set_cycle_phase(SetCyclePhaseRequest {
            name: format!("cycles/{CYCLE}"),
            phase: phase as i32,
        })
        .await
        .map_err(failed(format!("moving to {}", phase.as_str_name())))?;
    Ok(())
}

fn evidence(what: &str, unit: &str) -> Vec<EvidenceItem> {
    // A stable stand-in digest of the file's name, as a provider's upload
    // would compute over its content.
    use sha2::Digest;
    let name = format!("{YEAR}年{what}-{unit}.pdf");
    let sha256 = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    vec![EvidenceItem {
        uri: format!("s3://jixiao-evidence/{YEAR}/{unit}/{what}.pdf"),
        size_bytes: 200_000 + (sha256.as_bytes()[0] as i64) * 1000,
        media_type: "application/pdf".into(),
        name,
        sha256,
    }]
}

impl Demo {
    async fn setup(&self, groups: &[GroupSpec]) -> Result<(), String> {
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
    async fn plan_round(&self, groups: &[GroupSpec]) -> Result<&'static str, String> {
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

    /// Each provider reports its indicators' final values for every unit in
    /// one all-or-nothing batch; the evaluation group scores the ASSESSED
    /// indicators. Returns the number of values.
    async fn indicator_values(&self, groups: &[GroupSpec]) -> Result<usize, String> {
        let annual = Some(Period {
            kind: PeriodKind::Annual as i32,
            year: YEAR,
            index: 0,
        });
        let mut by_provider: std::collections::BTreeMap<&str, Vec<IndicatorValue>> =
            Default::default();
        let mut evaluator = IndicatorsServiceClient::new(self.as_principal(
            "evaluator-zhang",
            &[Role::Evaluator],
            None,
        ));
        for g in groups {
            for i in &g.framework {
                for u in g.units {
                    if i.method == jixiao_proto::plans::ScoringMethod::Assessed {
                        evaluator
                            .enter_assessed_score(EnterAssessedScoreRequest {
                                parent: format!("cycles/{CYCLE}"),
                                unit: format!("units/{}", u.id),
                                indicator: i.code.into(),
                                score: dec(year::assessed_score(i, u.id)),
                                justification: "经评估小组实地核查，按年度任务完成情况评定".into(),
                                request_id: format!("demo-assessed-{}-{}", g.id, u.id),
                            })
                            .await
                            .map_err(failed(format!("assessed score of {}", u.id)))?;
                        continue;
                    }
                    let (_, value) = year::target_and_final(i, u.id);
                    by_provider
                        .entry(i.provider)
                        .or_default()
                        .push(IndicatorValue {
                            unit: format!("units/{}", u.id),
                            indicator: i.code.into(),
                            period: annual,
                            value: dec(value),
                            evidence: evidence(i.code, u.id),
                            ..Default::default()
                        });
                }
            }
        }
        let mut count = 0;
        for (provider, values) in by_provider {
            count += values.len();
            IndicatorsServiceClient::new(self.unit(provider))
                .batch_report_values(BatchReportValuesRequest {
                    parent: format!("cycles/{CYCLE}"),
                    values,
                    request_id: format!("demo-values-{provider}"),
                })
                .await
                .map_err(failed(format!("values of provider {provider}")))?;
        }
        Ok(count)
    }

    /// Survey responses streamed by the survey firm, votes pushed by the
    /// government portal, and the units' ratings of each other.
    async fn reviews(
        &self,
        groups: &[GroupSpec],
        on: &mut impl FnMut(Step),
    ) -> Result<(usize, usize, usize), String> {
        let mut office = ReviewsServiceClient::new(self.office());
        let total: usize = groups
            .iter()
            .map(|g| g.units.len() * g.responses_per_unit)
            .sum();
        let (mut sent, mut votes, mut ratings) = (0, 0, 0);
        for g in groups {
            for (id, mode, platform) in [
                ("survey", CampaignMode::RawResponses, "survey-firm"),
                ("portal", CampaignMode::OnlineVotes, "gov-portal"),
            ] {
                office
                    .create_campaign(CreateCampaignRequest {
                        parent: format!("cycles/{CYCLE}"),
                        campaign_id: format!("{id}-{}", g.id),
                        campaign: Some(Campaign {
                            group: format!("cycles/{CYCLE}/groups/{}", g.id),
                            title: format!(
                                "{YEAR}年度{}{}",
                                g.name,
                                if id == "survey" {
                                    "群众满意度调查"
                                } else {
                                    "网上评议"
                                }
                            ),
                            mode: mode as i32,
                            platforms: vec![platform.into()],
                            questions: if mode == CampaignMode::RawResponses {
                                year::QUESTIONS
                                    .iter()
                                    .map(|(id, text)| Question {
                                        id: id.to_string(),
                                        text: text.to_string(),
                                    })
                                    .collect()
                            } else {
                                Vec::new()
                            },
                            open_time: ts(self.now - 90 * DAY),
                            close_time: ts(self.now + 30 * DAY),
                            ..Default::default()
                        }),
                        request_id: format!("demo-campaign-{id}-{}", g.id),
                    })
                    .await
                    .map_err(failed(format!("campaign {id}-{}", g.id)))?;
            }
            sent += self.survey(g, sent, total, on).await?;
            votes += self.votes(g).await?;
            for rater in g.units {
                let mut client = ReviewsServiceClient::new(self.unit(rater.id));
                for ratee in g.units.iter().filter(|u| u.id != rater.id) {
                    client
                        .submit_mutual_rating(SubmitMutualRatingRequest {
                            parent: format!("cycles/{CYCLE}"),
                            rating: Some(MutualRating {
                                rater: format!("units/{}", rater.id),
                                ratee: format!("units/{}", ratee.id),
                                grade: year::grade(rater.id, ratee.id).into(),
                                ..Default::default()
                            }),
                            request_id: format!("demo-rating-{}-{}", rater.id, ratee.id),
                        })
                        .await
                        .map_err(failed(format!("rating of {} by {}", ratee.id, rater.id)))?;
                    ratings += 1;
                }
            }
        }
        Ok((sent, votes, ratings))
    }

    /// Streams one group's survey responses in batches; returns how many.
    async fn survey(
        &self,
        g: &GroupSpec,
        before: usize,
        total: usize,
        on: &mut impl FnMut(Step),
    ) -> Result<usize, String> {
        let campaign = format!("cycles/{CYCLE}/campaigns/survey-{}", g.id);
        let mut responses = Vec::with_capacity(g.units.len() * g.responses_per_unit);
        for u in g.units {
            let mix = year::Mix::survey(u.id);
            let mut rng = year::stream(u.id, "responses");
            for n in 0..g.responses_per_unit {
                let channel = match rng.random_range(0..20) {
                    0..10 => Channel::Phone,
                    10..17 => Channel::Online,
                    _ => Channel::InPerson,
                };
                responses.push(SurveyResponse {
                    response_id: format!("xm{YEAR}-{}-{n:05}", u.id),
                    unit: format!("units/{}", u.id),
                    category: year::category(&mut rng).into(),
                    channel: channel as i32,
                    answer_time: ts(self.now - 60 * DAY + (n as i64) * 97_000),
                    answers: year::QUESTIONS
                        .iter()
                        .map(|(q, _)| Answer {
                            question: q.to_string(),
                            answer: mix.answer(&mut rng).into(),
                        })
                        .collect(),
                });
            }
        }
        let count = responses.len();
        let mut batches = Vec::new();
        while !responses.is_empty() {
            let rest = responses.split_off(responses.len().min(BATCH));
            batches.push(PushResponsesRequest {
                campaign: campaign.clone(),
                responses: std::mem::replace(&mut responses, rest),
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let mut client = ReviewsServiceClient::new(self.as_principal(
            "survey-firm",
            &[Role::SurveyPlatform],
            None,
        ))
        .max_encoding_message_size(16 * 1024 * 1024);
        let call = tokio::spawn(async move {
            client
                .stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        let mut sent = before;
        for batch in batches {
            sent += batch.responses.len();
            if tx.send(batch).await.is_err() {
                break;
            }
            on(Step::Pushed { sent, total });
        }
        drop(tx);
        let summary = call
            .await
            .map_err(|e| format!("survey stream task: {e}"))?
            .map_err(failed(format!("survey responses of {}", g.id)))?
            .into_inner();
        if summary.accepted as usize + summary.duplicates as usize != count {
            return Err(format!(
                "survey of {}: {} accepted, {} duplicates, {} rejected of {count} (first: {:?})",
                g.id,
                summary.accepted,
                summary.duplicates,
                summary.rejected.len(),
                summary.rejected.first()
            ));
        }
        Ok(count)
    }

    /// Portal votes: voters from one pool of citizens; some vote twice for
    /// the same unit and only their latest vote counts.
    async fn votes(&self, g: &GroupSpec) -> Result<usize, String> {
        let mut portal = ReviewsServiceClient::new(self.as_principal(
            "gov-portal",
            &[Role::SurveyPlatform],
            None,
        ));
        let mut votes = Vec::new();
        for u in g.units {
            let mix = year::Mix::portal(u.id);
            let mut rng = year::stream(u.id, "votes");
            for n in 0..g.votes_per_unit {
                votes.push(Vote {
                    vote_id: format!("portal-{}-{n:04}", u.id),
                    voter: format!("citizen-{:05}", rng.random_range(0..40_000)),
                    unit: format!("units/{}", u.id),
                    answer: mix.answer(&mut rng).into(),
                    cast_time: ts(self.now - 45 * DAY + (n as i64) * 600_000),
                });
            }
        }
        let count = votes.len();
        for chunk in votes.chunks(1000) {
            portal
                .push_votes(PushVotesRequest {
                    campaign: format!("cycles/{CYCLE}/campaigns/portal-{}", g.id),
                    votes: chunk.to_vec(),
                })
                .await
                .map_err(failed(format!("votes of {}", g.id)))?;
        }
        Ok(count)
    }

    /// Visits with findings the office confirms, spot checks of licensing
    /// cases, four contests (two withdrawn, two upheld), and self-inspection
    /// items the office verifies (one rejected). Returns (findings, items).
    async fn inspections(&self, groups: &[GroupSpec]) -> Result<(usize, usize), String> {
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

    /// Publishes a group (the aggregator refetches every component first)
    /// and verifies the publication.
    async fn publish(&self, g: &GroupSpec) -> Result<Publication, String> {
        let mut client = AggregatorServiceClient::new(self.office());
        let publication = client
            .publish_results(PublishResultsRequest {
                group: format!("cycles/{CYCLE}/groups/{}", g.id),
                request_id: format!("demo-publish-{}", g.id),
                ..Default::default()
            })
            .await
            .map_err(failed(format!("publishing {}", g.id)))?
            .into_inner();
        let verified = client
            .verify_publication(VerifyPublicationRequest {
                name: publication.name.clone(),
            })
            .await
            .map_err(failed(format!("verifying {}", publication.name)))?
            .into_inner();
        if !verified.valid {
            return Err(format!(
                "{} does not verify: {verified:?}",
                publication.name
            ));
        }
        Ok(publication)
    }
}
