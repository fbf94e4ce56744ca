//! The fixture year of the end-to-end tests, built through the public
//! RPCs: units, a cycle with a `districts` group and its framework, plans,
//! phases, indicator values, survey campaigns and responses; helpers to
//! read error details; the split suite ([`Split`]), with a relay that can
//! stall one of its connections ([`Stall`]); and raw calls to any
//! RPC by path ([`rpc_methods`], [`call_empty`], [`call_bytes`]).

mod rpc;
mod split;
mod stall;

pub use rpc::{call_bytes, call_empty, call_raw, rpc_methods};
pub use split::{Split, standings_until};
pub use stall::Stall;

use jixiao_proto::{
    Decimal,
    plans::{
        CreateCycleRequest, CreateGroupRequest, CreateUnitRequest, Cycle, Deadlines, Direction,
        Group, Indicator, ReplaceFrameworkRequest, ScoringMethod, Unit, UnitKind,
        plans_service_client::PlansServiceClient,
    },
    reviews::{
        Answer, Campaign, CampaignMode, Channel, CreateCampaignRequest, Question, SurveyResponse,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_testkit::{Authed, Suite};
use tonic::Status;
use tonic_types::StatusExt;

pub type Plans = PlansServiceClient<Authed>;

/// The office takes jimei out of the districts (in PLANNING).
pub async fn drop_jimei(office: &mut Plans) {
    use jixiao_proto::plans::UpdateGroupRequest;
    office
        .update_group(UpdateGroupRequest {
            group: Some(Group {
                name: "cycles/2026/groups/districts".into(),
                units: ["units/siming", "units/huli"].map(String::from).to_vec(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["units".into()],
            }),
        })
        .await
        .expect("drop jimei");
}

pub const DAY: i64 = 24 * 3600 * 1000;

pub fn dec(s: &str) -> Option<Decimal> {
    Some(Decimal { value: s.into() })
}

pub fn ts(ms: i64) -> Option<prost_types::Timestamp> {
    Some(jixiao_runtime::time::timestamp(ms))
}

pub fn now_ms() -> i64 {
    jixiao_runtime::time::now_ms()
}

/// The clock in whole seconds, as tokens' `iat` and `exp` count it.
pub fn now_secs() -> u64 {
    (now_ms() / 1000) as u64
}

/// A token of `sub` with `role` that expired 27 s ago: within the 30 s
/// leeway for about 4 s more. With it, the last second in which it still
/// verifies.
pub fn lapsing_token(suite: &Suite, sub: &str, role: &str) -> (String, u64) {
    let now = now_secs();
    let token = suite
        .key
        .sign_unchecked(&serde_json::json!({
            "sub": sub, "roles": [role], "iss": "jixiao", "iat": now - 60, "exp": now - 27,
        }))
        .expect("a signed token");
    (token, now - 27 + 30)
}

/// Waits until the clock is past `second`.
pub async fn wait_past(second: u64) {
    while now_secs() <= second {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// How a call is ended when its token lapsed: UNAUTHENTICATED saying the
/// token expired, in the token check's domain whoever noticed it.
pub fn assert_lapsed(status: &Status) {
    assert_eq!(
        status.code(),
        tonic::Code::Unauthenticated,
        "{}",
        status.message()
    );
    assert!(status.message().contains("expired"), "{}", status.message());
    assert_eq!(domain(status), "jixiao.auth");
}

/// The fixture's annual period.
pub fn annual() -> Option<jixiao_proto::types::Period> {
    Some(jixiao_proto::types::Period {
        kind: jixiao_proto::types::PeriodKind::Annual as i32,
        year: 2026,
        index: 0,
    })
}

/// Evidence for a reported value.
pub fn evidence() -> Vec<jixiao_proto::types::EvidenceItem> {
    vec![jixiao_proto::types::EvidenceItem {
        name: "2026年统计公报.pdf".into(),
        media_type: "application/pdf".into(),
        size_bytes: 482_113,
        sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        uri: "s3://evidence/2026/stats/bulletin.pdf".into(),
    }]
}

/// The districts' final values of the fixture framework's five reported
/// indicators (GDP_GROWTH, ENERGY_INTENSITY, APPROVAL_ONLINE_RATE,
/// FOREIGN_TRADE, INVESTMENT). Against the targets the indicators and
/// aggregator tests approve, they score (with KEY_PROJECTS 4.5, 4, 0)
/// siming 53, huli 48 and jimei 42.583334.
pub fn final_values() -> Vec<jixiao_proto::indicators::IndicatorValue> {
    let finals = [
        ("siming", ["6", "0.5", "96", "300", "1200"]),
        ("huli", ["7.7", "0.4", "94", "240", "1200"]),
        ("jimei", ["5", "0.6", "95", "100", "800"]),
    ];
    let codes = [
        "GDP_GROWTH",
        "ENERGY_INTENSITY",
        "APPROVAL_ONLINE_RATE",
        "FOREIGN_TRADE",
        "INVESTMENT",
    ];
    finals
        .iter()
        .flat_map(|(unit, vs)| {
            codes
                .iter()
                .zip(vs)
                .map(move |(c, v)| jixiao_proto::indicators::IndicatorValue {
                    unit: format!("units/{unit}"),
                    indicator: c.to_string(),
                    period: annual(),
                    value: dec(v),
                    evidence: evidence(),
                    ..Default::default()
                })
        })
        .collect()
}

/// The ErrorInfo reason of a failed call.
pub fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// The ErrorInfo domain of a failed call.
pub fn domain(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.domain.clone())
        .unwrap_or_default()
}

/// A push's refusals as (id, reason).
pub fn refusals(rejected: &[jixiao_proto::reviews::Rejection]) -> Vec<(&str, &str)> {
    rejected
        .iter()
        .map(|r| (r.id.as_str(), r.reason.as_str()))
        .collect()
}

/// The fields a BadRequest names.
pub fn bad_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The units of the fixture: three districts and a statistics bureau that
/// provides data.
pub const DISTRICTS: [&str; 3] = ["siming", "huli", "jimei"];
pub const PROVIDER: &str = "stats";

/// A cycle with a `districts` group and a framework covering every scoring
/// method (weights 20 + 15 + 10 + 5 + 5 + 5 = 60). `plan_deadline_ms`
/// sets the plan deadline.
pub async fn evaluation_year(suite: &Suite, cycle: &str, plan_deadline_ms: i64) -> Plans {
    let mut office = PlansServiceClient::new(suite.office());
    for (id, zh, en, kind) in [
        (
            "siming",
            "思明区人民政府",
            "Siming District",
            UnitKind::DistrictGovernment,
        ),
        (
            "huli",
            "湖里区人民政府",
            "Huli District",
            UnitKind::DistrictGovernment,
        ),
        (
            "jimei",
            "集美区人民政府",
            "Jimei District",
            UnitKind::DistrictGovernment,
        ),
        (
            "stats",
            "市统计局",
            "Statistics Bureau",
            UnitKind::CityDepartment,
        ),
    ] {
        let r = office
            .create_unit(CreateUnitRequest {
                unit_id: id.into(),
                unit: Some(Unit {
                    display_name_zh: zh.into(),
                    display_name_en: en.into(),
                    kind: kind as i32,
                    ..Default::default()
                }),
                request_id: format!("unit-{id}"),
            })
            .await;
        // Units outlive cycles: a second year finds them registered.
        if let Err(s) = r {
            assert_eq!(s.code(), tonic::Code::AlreadyExists, "{s:?}");
        }
    }
    office
        .create_cycle(CreateCycleRequest {
            cycle_id: cycle.into(),
            cycle: Some(Cycle {
                year: 2026,
                title: "2026年度绩效评估".into(),
                deadlines: Some(Deadlines {
                    plan_deadline: ts(plan_deadline_ms),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create cycle");
    districts(&mut office, cycle).await;
    office
}

/// The `districts` group of the three districts in `cycle`, with the
/// fixture's framework.
pub async fn districts(office: &mut PlansServiceClient<Authed>, cycle: &str) {
    office
        .create_group(CreateGroupRequest {
            parent: format!("cycles/{cycle}"),
            group_id: "districts".into(),
            group: Some(Group {
                display_name: "区人民政府".into(),
                units: DISTRICTS.iter().map(|u| format!("units/{u}")).collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create group");
    office
        .replace_framework(ReplaceFrameworkRequest {
            name: format!("cycles/{cycle}/groups/districts/framework"),
            indicators: framework(),
            request_id: String::new(),
        })
        .await
        .expect("framework");
}

pub fn indicator(
    code: &str,
    weight: &str,
    method: ScoringMethod,
    direction: Direction,
    range: (&str, &str),
) -> Indicator {
    Indicator {
        code: code.into(),
        display_name: code.into(),
        measurement_unit: "%".into(),
        direction: direction as i32,
        weight: dec(weight),
        method: method as i32,
        plausible_min: dec(range.0),
        plausible_max: dec(range.1),
        provider: format!("units/{PROVIDER}"),
        ..Default::default()
    }
}

pub fn framework() -> Vec<Indicator> {
    vec![
        indicator(
            "GDP_GROWTH",
            "20",
            ScoringMethod::Ratio,
            Direction::HigherIsBetter,
            ("-20", "30"),
        ),
        indicator(
            "ENERGY_INTENSITY",
            "15",
            ScoringMethod::Ratio,
            Direction::LowerIsBetter,
            ("0", "2"),
        ),
        indicator(
            "APPROVAL_ONLINE_RATE",
            "10",
            ScoringMethod::Threshold,
            Direction::HigherIsBetter,
            ("0", "100"),
        ),
        indicator(
            "FOREIGN_TRADE",
            "5",
            ScoringMethod::PeerBest,
            Direction::HigherIsBetter,
            ("0", "10000"),
        ),
        indicator(
            "INVESTMENT",
            "5",
            ScoringMethod::PeerRank,
            Direction::HigherIsBetter,
            ("0", "5000"),
        ),
        indicator(
            "KEY_PROJECTS",
            "5",
            ScoringMethod::Assessed,
            Direction::HigherIsBetter,
            ("0", "5"),
        ),
    ]
}

/// Targets of one unit for the fixture framework, in framework order:
/// GDP_GROWTH, ENERGY_INTENSITY, APPROVAL_ONLINE_RATE, FOREIGN_TRADE, INVESTMENT.
pub fn targets(values: [&str; 5]) -> Vec<jixiao_proto::plans::Target> {
    [
        "GDP_GROWTH",
        "ENERGY_INTENSITY",
        "APPROVAL_ONLINE_RATE",
        "FOREIGN_TRADE",
        "INVESTMENT",
    ]
    .iter()
    .zip(values)
    .map(|(code, v)| jixiao_proto::plans::Target {
        indicator: code.to_string(),
        value: dec(v),
        assigned: false,
    })
    .collect()
}

/// Each district drafts, submits, and the office approves its plan.
pub async fn approve_plans(
    suite: &Suite,
    cycle: &str,
    plans: &[(&str, Vec<jixiao_proto::plans::Target>)],
) {
    use jixiao_proto::plans::{ApprovePlanRequest, CreatePlanRequest, Plan, SubmitPlanRequest};
    let mut office = PlansServiceClient::new(suite.office());
    for (unit, targets) in plans {
        let mut client = PlansServiceClient::new(suite.unit(unit));
        let created = client
            .create_plan(CreatePlanRequest {
                parent: format!("cycles/{cycle}"),
                plan: Some(Plan {
                    unit: format!("units/{unit}"),
                    targets: targets.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create plan")
            .into_inner();
        let submitted = client
            .submit_plan(SubmitPlanRequest {
                name: created.name.clone(),
                etag: created.etag,
                request_id: String::new(),
            })
            .await
            .expect("submit plan")
            .into_inner();
        office
            .approve_plan(ApprovePlanRequest {
                name: submitted.name,
                etag: submitted.etag,
                comment: String::new(),
            })
            .await
            .expect("approve plan");
    }
}

/// Moves a cycle to a phase.
pub async fn set_phase(suite: &Suite, cycle: &str, phase: jixiao_proto::plans::Phase) {
    PlansServiceClient::new(suite.office())
        .set_cycle_phase(jixiao_proto::plans::SetCyclePhaseRequest {
            name: format!("cycles/{cycle}"),
            phase: phase as i32,
        })
        .await
        .expect("set phase");
}

/// [`evaluation_year`] with the three districts' plans approved (GDP
/// targets 8, 7 and 6) and the cycle in EXECUTION.
pub async fn executing_year(suite: &Suite) -> Plans {
    let plans = evaluation_year(suite, "2026", now_ms() + DAY).await;
    approve_plans(
        suite,
        "2026",
        &[
            ("siming", targets(["8", "0.45", "95", "300", "1000"])),
            ("huli", targets(["7", "0.5", "95", "300", "1000"])),
            ("jimei", targets(["6", "0.45", "95", "300", "1000"])),
        ],
    )
    .await;
    set_phase(suite, "2026", jixiao_proto::plans::Phase::Execution).await;
    plans
}

/// Every indicator of the three districts in: the provider's final values
/// and an assessed KEY_PROJECTS score of 4 each.
pub async fn complete_indicators(indicators: &Suite) {
    use jixiao_proto::indicators::{
        BatchReportValuesRequest, indicators_service_client::IndicatorsServiceClient,
    };
    IndicatorsServiceClient::new(indicators.as_roles(
        PROVIDER,
        &[jixiao_runtime::Role::Provider],
        Some(PROVIDER),
    ))
    .batch_report_values(BatchReportValuesRequest {
        parent: "cycles/2026".into(),
        values: final_values(),
        request_id: String::new(),
    })
    .await
    .expect("final values");
    assess_key_projects(indicators).await;
}

/// The evaluation group's assessed KEY_PROJECTS score of 4 for each of the
/// three districts.
pub async fn assess_key_projects(indicators: &Suite) {
    use jixiao_proto::indicators::{
        EnterAssessedScoreRequest, indicators_service_client::IndicatorsServiceClient,
    };
    let mut evaluator = IndicatorsServiceClient::new(indicators.as_roles(
        "eval-1",
        &[jixiao_runtime::Role::Evaluator],
        None,
    ));
    for unit in DISTRICTS {
        evaluator
            .enter_assessed_score(EnterAssessedScoreRequest {
                parent: "cycles/2026".into(),
                unit: format!("units/{unit}"),
                indicator: "KEY_PROJECTS".into(),
                score: dec("4"),
                justification: "按期推进".into(),
                request_id: String::new(),
            })
            .await
            .expect("assessed score");
    }
}

/// A survey campaign of the districts group in cycle 2026, bound to
/// `platform-a`, with questions q1–q3 and a window around today.
pub async fn survey_campaign(
    office: &mut ReviewsServiceClient<Authed>,
    id: &str,
    mode: CampaignMode,
) -> Campaign {
    office
        .create_campaign(CreateCampaignRequest {
            parent: "cycles/2026".into(),
            campaign_id: id.into(),
            campaign: Some(Campaign {
                group: "cycles/2026/groups/districts".into(),
                title: "2026年度群众满意度调查".into(),
                mode: mode as i32,
                platforms: vec!["platform-a".into()],
                questions: ["q1", "q2", "q3"]
                    .iter()
                    .map(|q| Question {
                        id: q.to_string(),
                        text: format!("问题 {q}"),
                    })
                    .collect(),
                open_time: ts(now_ms() - 30 * DAY),
                close_time: ts(now_ms() + 30 * DAY),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("campaign")
        .into_inner()
}

/// A fixed time in the campaign's window, so a resent response is the same.
pub fn answered_at() -> i64 {
    (now_ms() / DAY - 1) * DAY
}

/// A phone response to q1–q3.
pub fn response(id: &str, unit: &str, category: &str, answers: [&str; 3]) -> SurveyResponse {
    response_at(id, unit, category, answers, answered_at())
}

/// A phone response to q1–q3 answered at `at_ms`.
pub fn response_at(
    id: &str,
    unit: &str,
    category: &str,
    answers: [&str; 3],
    at_ms: i64,
) -> SurveyResponse {
    SurveyResponse {
        response_id: id.into(),
        unit: format!("units/{unit}"),
        category: category.into(),
        channel: Channel::Phone as i32,
        answer_time: ts(at_ms),
        answers: ["q1", "q2", "q3"]
            .iter()
            .zip(answers)
            .map(|(q, a)| Answer {
                question: q.to_string(),
                answer: a.into(),
            })
            .collect(),
        respondent: String::new(),
    }
}
