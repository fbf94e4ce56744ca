//! DOMAIN.md §2 through the public interface: every write RPC, read from
//! the compiled descriptors, called in a cycle in each phase and in cycles
//! whose deadlines have passed, with and without lock exceptions, against
//! an expected table written here independently of the server's
//! (`jixiao_runtime::phases`). A write RPC missing from the table below
//! fails the test until someone decides when it may happen.

use std::collections::BTreeMap;

use jixiao_proto::{
    aggregator::PublishResultsRequest,
    indicators::{
        BatchReportValuesRequest, CorrectValueRequest, EnterAssessedScoreRequest,
        ReportValueRequest, ResolveValueFlagRequest,
        indicators_service_client::IndicatorsServiceClient,
    },
    inspections::{
        ConfirmFindingRequest, ContestFindingRequest, CreateInspectionRequest,
        CreateSelfInspectionItemRequest, DecideContestRequest, IssueDocumentRequest,
        RecordSpotCheckRequest, ReportRectificationRequest, ReviewRectificationRequest,
        SelfInspectionItem, VerifySelfInspectionItemRequest,
    },
    plans::{
        AmendPlanRequest, ApprovePlanRequest, CreateCycleRequest, CreateGroupRequest,
        CreateNoticeRequest, CreatePlanRequest, Cycle, Deadlines, GrantLockExceptionRequest, Group,
        LockException, LockScope, Phase, Plan, ReplaceFrameworkRequest, ReturnPlanRequest, Scheme,
        SetCyclePhaseRequest, SubmitPlanRequest, UpdateCycleRequest, UpdateGroupRequest,
        UpdatePlanRequest, UpdateSchemeRequest, plans_service_client::PlansServiceClient,
    },
    reviews::{
        AcceptInsufficientSampleRequest, Campaign, CampaignMode, CreateCampaignRequest,
        MutualRating, PushResponsesRequest, PushUnitResultsRequest, PushVotesRequest, Question,
        ResolveSurveyFlagRequest, SubmitMutualRatingRequest,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::Role;
use jixiao_testkit::{Authed, Backend, Suite, on_both_databases};
use jixiao_tests::{
    DAY, PROVIDER, call_bytes, dec, evaluation_year, evidence, final_values, now_ms, reason,
    rpc_methods, ts,
};
use prost::Message;
use tonic::Code;

on_both_databases!(writes_follow_the_phase_table);

use Phase::*;

const LIVE: &[Phase] = &[Planning, Execution, Assessment, Published, Rectification];
const AFTER_PLANNING: &[Phase] = &[Execution, Assessment, Published, Rectification];
const YEAR: &[Phase] = &[Execution, Assessment];

/// Who calls a write in the matrix: a principal its row and unit checks
/// let through, so that only the phase decides.
#[derive(Clone, Copy, Debug)]
enum Caller {
    Office,
    Evaluator,
    Inspector,
    /// The district `siming`.
    Unit,
    /// The statistics bureau, the data provider.
    Provider,
    Platform,
}

/// When a write may happen, as this test expects it.
struct Expect {
    caller: Caller,
    /// Phases in which it is open when no deadline has passed.
    phases: &'static [Phase],
    /// The deadline that closes it, if any, and whether the caller's lock
    /// exception reopens it.
    deadline: Option<(LockScope, &'static str, bool)>,
}

fn expected() -> BTreeMap<&'static str, Expect> {
    use Caller::*;
    let e = |caller, phases| Expect {
        caller,
        phases,
        deadline: None,
    };
    let d = |caller, phases, scope, reason, exceptions| Expect {
        caller,
        phases,
        deadline: Some((scope, reason, exceptions)),
    };
    let plan = (LockScope::Plan, "PLAN_DEADLINE_PASSED");
    let data = (LockScope::Data, "DATA_DEADLINE_PASSED");
    let review = (LockScope::Review, "REVIEW_CLOSED");
    let rect = (LockScope::Rectification, "RECTIFICATION_DEADLINE_PASSED");
    BTreeMap::from([
        // plans: the calendar and the office's notices run all year; the
        // setup is fixed when execution starts; plans are written in
        // planning and amended during execution.
        ("PlansService/UpdateCycle", e(Office, LIVE)),
        ("PlansService/SetCyclePhase", e(Office, LIVE)),
        ("PlansService/GrantLockException", e(Office, LIVE)),
        ("PlansService/CreateNotice", e(Office, LIVE)),
        ("PlansService/CreateGroup", e(Office, &[Planning])),
        ("PlansService/UpdateGroup", e(Office, &[Planning])),
        ("PlansService/UpdateScheme", e(Office, &[Planning])),
        ("PlansService/ReplaceFramework", e(Office, &[Planning])),
        (
            "PlansService/CreatePlan",
            d(Unit, &[Planning], plan.0, plan.1, true),
        ),
        ("PlansService/UpdatePlan", e(Unit, &[Planning, Execution])),
        ("PlansService/SubmitPlan", e(Unit, &[Planning, Execution])),
        ("PlansService/AmendPlan", e(Unit, &[Planning, Execution])),
        (
            "PlansService/ApprovePlan",
            e(Office, &[Planning, Execution]),
        ),
        ("PlansService/ReturnPlan", e(Office, &[Planning, Execution])),
        // indicators: data in the year, until its deadline.
        (
            "IndicatorsService/ReportValue",
            d(Provider, YEAR, data.0, data.1, true),
        ),
        (
            "IndicatorsService/BatchReportValues",
            d(Provider, YEAR, data.0, data.1, true),
        ),
        (
            "IndicatorsService/CorrectValue",
            d(Provider, YEAR, data.0, data.1, true),
        ),
        (
            "IndicatorsService/EnterAssessedScore",
            e(Evaluator, AFTER_PLANNING),
        ),
        (
            "IndicatorsService/ResolveValueFlag",
            e(Evaluator, AFTER_PLANNING),
        ),
        // inspections: recorded in the year, decided until archived.
        ("InspectionsService/CreateInspection", e(Inspector, YEAR)),
        ("InspectionsService/RecordSpotCheck", e(Inspector, YEAR)),
        ("InspectionsService/CreateSelfInspectionItem", e(Unit, YEAR)),
        (
            "InspectionsService/IssueDocument",
            e(Inspector, AFTER_PLANNING),
        ),
        (
            "InspectionsService/ConfirmFinding",
            e(Office, AFTER_PLANNING),
        ),
        ("InspectionsService/ContestFinding", e(Unit, AFTER_PLANNING)),
        (
            "InspectionsService/DecideContest",
            e(Office, AFTER_PLANNING),
        ),
        (
            "InspectionsService/ReviewRectification",
            e(Office, AFTER_PLANNING),
        ),
        (
            "InspectionsService/VerifySelfInspectionItem",
            e(Office, AFTER_PLANNING),
        ),
        (
            "InspectionsService/ReportRectification",
            d(Unit, AFTER_PLANNING, rect.0, rect.1, true),
        ),
        // reviews: campaigns are set up before the close; platforms push
        // in the year until the close and take no exception.
        (
            "ReviewsService/CreateCampaign",
            e(Office, &[Planning, Execution, Assessment]),
        ),
        (
            "ReviewsService/AcceptInsufficientSample",
            e(Office, AFTER_PLANNING),
        ),
        (
            "ReviewsService/ResolveSurveyFlag",
            e(Evaluator, AFTER_PLANNING),
        ),
        (
            "ReviewsService/PushResponses",
            d(Platform, YEAR, review.0, review.1, false),
        ),
        (
            "ReviewsService/StreamResponses",
            d(Platform, YEAR, review.0, review.1, false),
        ),
        (
            "ReviewsService/PushUnitResults",
            d(Platform, YEAR, review.0, review.1, false),
        ),
        (
            "ReviewsService/PushVotes",
            d(Platform, YEAR, review.0, review.1, false),
        ),
        (
            "ReviewsService/SubmitMutualRating",
            d(Unit, YEAR, review.0, review.1, true),
        ),
        // aggregator: published from assessment on.
        (
            "AggregatorService/PublishResults",
            e(Office, &[Assessment, Published, Rectification]),
        ),
    ])
}

/// Writes not tied to one cycle: they have no phase.
const CYCLE_FREE: &[&str] = &["PlansService/CreateCycle", "PlansService/CreateUnit"];

fn is_read(method: &str) -> bool {
    ["Get", "List", "Watch", "Diff"]
        .iter()
        .any(|p| method.starts_with(p))
        || matches!(
            method,
            "CheckWriteWindow" | "VerifyPublication" | "VerifyAuditChain"
        )
}

/// `Service/Method` of a descriptor path.
fn short(path: &str) -> String {
    let (service, method) = path.rsplit_once('/').unwrap();
    let service = service.rsplit('.').next().unwrap();
    format!("{service}/{method}")
}

/// A request that names resources of `cycle` and is well-formed enough to
/// reach the phase gate; the rest of it may be refused once the gate opens.
fn request(method: &str, c: &str) -> Vec<u8> {
    let cycle = format!("cycles/{c}");
    let plan = format!("{cycle}/plans/siming");
    let finding = format!("{cycle}/inspections/i1/findings/f1");
    let campaign = format!("{cycle}/campaigns/survey");
    let group = format!("{cycle}/groups/districts");
    match method {
        "PlansService/UpdateCycle" => UpdateCycleRequest {
            cycle: Some(Cycle {
                name: cycle,
                ..Default::default()
            }),
            update_mask: None,
        }
        .encode_to_vec(),
        "PlansService/SetCyclePhase" => SetCyclePhaseRequest {
            name: cycle,
            phase: 0,
        }
        .encode_to_vec(),
        "PlansService/GrantLockException" => GrantLockExceptionRequest {
            parent: cycle,
            ..Default::default()
        }
        .encode_to_vec(),
        "PlansService/CreateNotice" => CreateNoticeRequest {
            parent: cycle,
            ..Default::default()
        }
        .encode_to_vec(),
        "PlansService/CreateGroup" => CreateGroupRequest {
            parent: cycle,
            ..Default::default()
        }
        .encode_to_vec(),
        "PlansService/UpdateGroup" => UpdateGroupRequest {
            group: Some(Group {
                name: group,
                ..Default::default()
            }),
            update_mask: None,
        }
        .encode_to_vec(),
        "PlansService/UpdateScheme" => UpdateSchemeRequest {
            scheme: Some(Scheme {
                name: format!("{group}/scheme"),
                ..Default::default()
            }),
            update_mask: None,
        }
        .encode_to_vec(),
        "PlansService/ReplaceFramework" => ReplaceFrameworkRequest {
            name: format!("{group}/framework"),
            indicators: vec![],
            request_id: String::new(),
        }
        .encode_to_vec(),
        "PlansService/CreatePlan" => CreatePlanRequest {
            parent: cycle,
            plan: Some(Plan {
                unit: "units/siming".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        }
        .encode_to_vec(),
        "PlansService/UpdatePlan" => UpdatePlanRequest {
            plan: Some(Plan {
                name: plan,
                ..Default::default()
            }),
            update_mask: None,
        }
        .encode_to_vec(),
        "PlansService/SubmitPlan" => SubmitPlanRequest {
            name: plan,
            ..Default::default()
        }
        .encode_to_vec(),
        "PlansService/AmendPlan" => AmendPlanRequest {
            name: plan,
            ..Default::default()
        }
        .encode_to_vec(),
        "PlansService/ApprovePlan" => ApprovePlanRequest {
            name: plan,
            ..Default::default()
        }
        .encode_to_vec(),
        "PlansService/ReturnPlan" => ReturnPlanRequest {
            name: plan,
            ..Default::default()
        }
        .encode_to_vec(),
        "IndicatorsService/ReportValue" => ReportValueRequest {
            parent: cycle,
            value: Some(final_values().remove(0)),
            request_id: String::new(),
        }
        .encode_to_vec(),
        "IndicatorsService/BatchReportValues" => BatchReportValuesRequest {
            parent: cycle,
            values: final_values(),
            request_id: String::new(),
        }
        .encode_to_vec(),
        "IndicatorsService/CorrectValue" => CorrectValueRequest {
            name: format!("{cycle}/units/siming/indicators/GDP_GROWTH/periods/2026"),
            value: dec("6"),
            reason: "复核".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "IndicatorsService/EnterAssessedScore" => EnterAssessedScoreRequest {
            parent: cycle,
            unit: "units/siming".into(),
            indicator: "KEY_PROJECTS".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "IndicatorsService/ResolveValueFlag" => ResolveValueFlagRequest {
            name: format!("{cycle}/units/siming/indicators/GDP_GROWTH/periods/2026/flags/jump-v1"),
            resolution: jixiao_proto::types::QualityFlagState::Explained as i32,
            reason: "复核".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "InspectionsService/CreateInspection" => CreateInspectionRequest {
            parent: cycle,
            ..Default::default()
        }
        .encode_to_vec(),
        "InspectionsService/RecordSpotCheck" => RecordSpotCheckRequest {
            parent: cycle,
            unit: "units/siming".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        "InspectionsService/CreateSelfInspectionItem" => CreateSelfInspectionItemRequest {
            parent: cycle,
            item: Some(SelfInspectionItem {
                unit: "units/siming".into(),
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        }
        .encode_to_vec(),
        "InspectionsService/IssueDocument" => IssueDocumentRequest {
            parent: cycle,
            ..Default::default()
        }
        .encode_to_vec(),
        "InspectionsService/ConfirmFinding" => {
            ConfirmFindingRequest { name: finding }.encode_to_vec()
        }
        "InspectionsService/ContestFinding" => ContestFindingRequest {
            name: finding,
            reason: "扣分依据不足".into(),
        }
        .encode_to_vec(),
        "InspectionsService/DecideContest" => DecideContestRequest {
            name: finding,
            uphold: true,
            note: "维持".into(),
        }
        .encode_to_vec(),
        "InspectionsService/ReviewRectification" => ReviewRectificationRequest {
            name: finding,
            accept: true,
            note: String::new(),
        }
        .encode_to_vec(),
        "InspectionsService/ReportRectification" => ReportRectificationRequest {
            name: finding,
            report: "已整改".into(),
            evidence: evidence(),
        }
        .encode_to_vec(),
        "InspectionsService/VerifySelfInspectionItem" => VerifySelfInspectionItemRequest {
            name: format!("{cycle}/selfInspectionItems/x1"),
            verify: true,
            note: String::new(),
        }
        .encode_to_vec(),
        "ReviewsService/CreateCampaign" => CreateCampaignRequest {
            parent: cycle,
            ..Default::default()
        }
        .encode_to_vec(),
        "ReviewsService/ResolveSurveyFlag" => ResolveSurveyFlagRequest {
            name: format!("{campaign}/units/siming/flags/burst"),
            resolution: jixiao_proto::types::QualityFlagState::Explained as i32,
            reason: "核实".into(),
            request_id: String::new(),
        }
        .encode_to_vec(),
        "ReviewsService/AcceptInsufficientSample" => AcceptInsufficientSampleRequest {
            campaign,
            unit: "units/siming".into(),
            reason: "样本偏少".into(),
        }
        .encode_to_vec(),
        "ReviewsService/PushResponses" | "ReviewsService/StreamResponses" => PushResponsesRequest {
            campaign,
            responses: vec![],
        }
        .encode_to_vec(),
        "ReviewsService/PushUnitResults" => PushUnitResultsRequest {
            campaign,
            ..Default::default()
        }
        .encode_to_vec(),
        "ReviewsService/PushVotes" => PushVotesRequest {
            campaign,
            votes: vec![],
        }
        .encode_to_vec(),
        "ReviewsService/SubmitMutualRating" => SubmitMutualRatingRequest {
            parent: cycle,
            rating: Some(MutualRating {
                rater: "units/siming".into(),
                ratee: "units/huli".into(),
                grade: "good".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        }
        .encode_to_vec(),
        "AggregatorService/PublishResults" => PublishResultsRequest {
            group,
            ..Default::default()
        }
        .encode_to_vec(),
        other => panic!("no request for {other}"),
    }
}

fn channel(suite: &Suite, caller: Caller) -> Authed {
    match caller {
        Caller::Office => suite.office(),
        Caller::Evaluator => suite.as_roles("eval-1", &[Role::Evaluator], None),
        Caller::Inspector => suite.as_roles("inspector-1", &[Role::Inspector], None),
        Caller::Unit => suite.unit("siming"),
        Caller::Provider => suite.as_roles(PROVIDER, &[Role::Provider], Some(PROVIDER)),
        Caller::Platform => suite.as_roles("platform-a", &[Role::SurveyPlatform], None),
    }
}

const PHASE_REASONS: &[&str] = &[
    "WRONG_PHASE",
    "CYCLE_ARCHIVED",
    "PLAN_DEADLINE_PASSED",
    "DATA_DEADLINE_PASSED",
    "REVIEW_CLOSED",
    "RECTIFICATION_DEADLINE_PASSED",
];

/// What a call's status says about the gate: `None` when it passed the
/// gate (whatever else it then said), else the phase reason.
fn gate_outcome(cell: &str, result: Result<(), tonic::Status>) -> Option<String> {
    let status = match result {
        Ok(()) => return None,
        Err(s) => s,
    };
    let r = reason(&status);
    if status.code() == Code::FailedPrecondition && PHASE_REASONS.contains(&r.as_str()) {
        return Some(r);
    }
    // Past the gate the call may fail for its own reasons, but never for
    // the caller's identity: that would make the open cell prove nothing.
    assert!(
        !matches!(
            status.code(),
            Code::PermissionDenied | Code::Unauthenticated | Code::Internal | Code::Unavailable
        ),
        "{cell}: {:?} {}",
        status.code(),
        status.message()
    );
    None
}

/// A cycle with no deadlines, the districts group and its framework, and a
/// survey campaign bound to `platform-a`, moved on to `phase`.
async fn cycle_in(suite: &Suite, id: &str, deadlines: Deadlines, phase: Phase) {
    let mut office = PlansServiceClient::new(suite.office());
    office
        .create_cycle(CreateCycleRequest {
            cycle_id: id.into(),
            cycle: Some(Cycle {
                year: 2026,
                title: format!("{id} 年度"),
                deadlines: Some(deadlines),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("cycle");
    jixiao_tests::districts(&mut office, id).await;
    ReviewsServiceClient::new(suite.office())
        .create_campaign(CreateCampaignRequest {
            parent: format!("cycles/{id}"),
            campaign_id: "survey".into(),
            campaign: Some(Campaign {
                group: format!("cycles/{id}/groups/districts"),
                title: "满意度调查".into(),
                mode: CampaignMode::RawResponses as i32,
                platforms: vec!["platform-a".into()],
                questions: vec![Question {
                    id: "q1".into(),
                    text: "满意吗".into(),
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("campaign");
    for p in [Execution, Assessment, Published, Rectification, Archived] {
        if (p as i32) > (phase as i32) {
            break;
        }
        office
            .set_cycle_phase(SetCyclePhaseRequest {
                name: format!("cycles/{id}"),
                phase: p as i32,
            })
            .await
            .expect("phase");
    }
}

async fn grant(suite: &Suite, cycle: &str, unit: &str, scope: LockScope) {
    PlansServiceClient::new(suite.office())
        .grant_lock_exception(GrantLockExceptionRequest {
            parent: format!("cycles/{cycle}"),
            lock_exception: Some(LockException {
                unit: format!("units/{unit}"),
                scope: scope as i32,
                expire_time: ts(now_ms() + DAY),
                reason: "经批准延期".into(),
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .expect("exception");
}

async fn writes_follow_the_phase_table(backend: Backend) {
    let suite = Suite::start(backend).await;
    // The units (and a first cycle nobody writes to here).
    evaluation_year(&suite, "fixture", now_ms() + DAY).await;
    let table = expected();

    // Every write RPC of the descriptors has a row here; reads have none.
    let mut writes = Vec::new();
    for (path, client_streaming, _) in rpc_methods() {
        let name = short(&path);
        let method = name.split('/').nth(1).unwrap();
        if is_read(method) {
            assert!(!table.contains_key(name.as_str()), "{name} is a read");
            continue;
        }
        if CYCLE_FREE.contains(&name.as_str()) {
            continue;
        }
        assert!(
            table.contains_key(name.as_str()),
            "{name} is a write with no row in the expected phase table"
        );
        writes.push((path, name, client_streaming));
    }
    assert_eq!(writes.len(), table.len(), "every row is a real RPC");

    // 1. Phases: one cycle in each, no deadline set.
    let phases = [
        Planning,
        Execution,
        Assessment,
        Published,
        Rectification,
        Archived,
    ];
    for phase in phases {
        let id = format!("ph-{}", phase as i32);
        cycle_in(&suite, &id, Deadlines::default(), phase).await;
    }
    let mut failures = Vec::new();
    let mut cells = 0;
    for (path, name, streaming) in &writes {
        let row = &table[name.as_str()];
        for phase in phases {
            let id = format!("ph-{}", phase as i32);
            let cell = format!("{name} in {}", phase.as_str_name());
            let got = gate_outcome(
                &cell,
                call_bytes(
                    channel(&suite, row.caller),
                    path,
                    *streaming,
                    request(name, &id),
                )
                .await,
            );
            let want = if phase == Archived {
                Some("CYCLE_ARCHIVED".to_string())
            } else if row.phases.contains(&phase) {
                None
            } else {
                Some("WRONG_PHASE".to_string())
            };
            cells += 1;
            if got != want {
                failures.push(format!("{cell}: expected {want:?}, got {got:?}"));
            }
        }
    }

    // 2. Deadlines passed, in a phase where each scope is open: the plan
    // deadline in planning; data, review and rectification in execution.
    let past = ts(now_ms() - DAY);
    cycle_in(
        &suite,
        "late-plan",
        Deadlines {
            plan_deadline: past,
            ..Default::default()
        },
        Planning,
    )
    .await;
    cycle_in(
        &suite,
        "late-year",
        Deadlines {
            data_deadline: past,
            review_close: past,
            rectification_deadline: past,
            ..Default::default()
        },
        Execution,
    )
    .await;
    let deadline_rows: Vec<_> = writes
        .iter()
        .filter(|(_, name, _)| table[name.as_str()].deadline.is_some())
        .collect();
    for with_exception in [false, true] {
        if with_exception {
            grant(&suite, "late-plan", "siming", LockScope::Plan).await;
            grant(&suite, "late-year", PROVIDER, LockScope::Data).await;
            grant(&suite, "late-year", "siming", LockScope::Review).await;
            grant(&suite, "late-year", "siming", LockScope::Rectification).await;
        }
        for (path, name, streaming) in &deadline_rows {
            let row = &table[name.as_str()];
            let (scope, deadline_reason, reopens) = row.deadline.unwrap();
            let cycle = if scope == LockScope::Plan {
                "late-plan"
            } else {
                "late-year"
            };
            let cell = format!(
                "{name} after the {} deadline{}",
                scope.as_str_name(),
                if with_exception {
                    " under an exception"
                } else {
                    ""
                }
            );
            let got = gate_outcome(
                &cell,
                call_bytes(
                    channel(&suite, row.caller),
                    path,
                    *streaming,
                    request(name, cycle),
                )
                .await,
            );
            let want = if with_exception && reopens {
                None
            } else {
                Some(deadline_reason.to_string())
            };
            cells += 1;
            if got != want {
                failures.push(format!("{cell}: expected {want:?}, got {got:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );

    suite.stop().await;
}

on_both_databases!(exceptions_and_the_office_open_what_the_contract_says);

/// The paths around the table: a unit's plan exception reopens its plan
/// outside the plan phases, the office reports a rectification for a unit
/// after the deadline, and a refusal names the phase when no deadline has
/// passed.
async fn exceptions_and_the_office_open_what_the_contract_says(backend: Backend) {
    use jixiao_proto::{
        inspections::{
            Finding, Inspection, InspectionKind,
            inspections_service_client::InspectionsServiceClient,
        },
        plans::{CheckWriteWindowRequest, GetPlanRequest},
    };
    let suite = Suite::start(backend).await;
    jixiao_tests::executing_year(&suite).await;
    let mut siming = PlansServiceClient::new(suite.unit("siming"));
    let mut office = PlansServiceClient::new(suite.office());

    // An amendment begun in execution, submitted in assessment.
    let plan = siming
        .get_plan(GetPlanRequest {
            name: "cycles/2026/plans/siming".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let draft = siming
        .amend_plan(AmendPlanRequest {
            name: plan.name.clone(),
            etag: plan.etag,
            reason: "项目调整".into(),
        })
        .await
        .expect("amend in execution")
        .into_inner();
    // A confirmed finding to rectify.
    let mut inspector = InspectionsServiceClient::new(suite.office());
    let ins = inspector
        .create_inspection(CreateInspectionRequest {
            parent: "cycles/2026".into(),
            inspection: Some(Inspection {
                unit: "units/siming".into(),
                kind: InspectionKind::Patrol as i32,
                inspect_time: ts(now_ms() - DAY),
                inspectors: vec!["李明".into()],
                findings: vec![Finding {
                    category: "absence".into(),
                    description: "窗口无人".into(),
                    deduction: dec("0.5"),
                    rectification_due_time: ts(now_ms() + DAY),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .expect("inspection")
        .into_inner();
    let finding = ins.findings[0].name.clone();
    inspector
        .confirm_finding(ConfirmFindingRequest {
            name: finding.clone(),
        })
        .await
        .expect("confirm");

    jixiao_tests::set_phase(&suite, "2026", Assessment).await;
    let submit = SubmitPlanRequest {
        name: draft.name.clone(),
        etag: draft.etag.clone(),
        request_id: String::new(),
    };
    let err = siming.submit_plan(submit.clone()).await.unwrap_err();
    assert_eq!(reason(&err), "WRONG_PHASE");
    grant(&suite, "2026", "siming", LockScope::Plan).await;
    let window = siming
        .check_write_window(CheckWriteWindowRequest {
            cycle: "cycles/2026".into(),
            unit: "units/siming".into(),
            scope: LockScope::Plan as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(window.open && window.late, "{window:?}");
    let submitted = siming
        .submit_plan(submit)
        .await
        .expect("the plan exception reopens the submission")
        .into_inner();
    assert!(
        submitted.late,
        "opened by an exception outside its phase: late"
    );
    office
        .approve_plan(ApprovePlanRequest {
            name: submitted.name,
            etag: submitted.etag,
            comment: String::new(),
        })
        .await
        .expect("and its approval");

    // The rectification deadline passes: the unit is refused, the office
    // reports for it.
    office
        .update_cycle(UpdateCycleRequest {
            cycle: Some(Cycle {
                name: "cycles/2026".into(),
                deadlines: Some(Deadlines {
                    rectification_deadline: ts(now_ms() - 1000),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["deadlines.rectification_deadline".into()],
            }),
        })
        .await
        .expect("deadline");
    let report = ReportRectificationRequest {
        name: finding,
        report: "已整改".into(),
        evidence: vec![],
    };
    let err = jixiao_proto::inspections::inspections_service_client::InspectionsServiceClient::new(
        suite.unit("siming"),
    )
    .report_rectification(report.clone())
    .await
    .unwrap_err();
    assert_eq!(reason(&err), "RECTIFICATION_DEADLINE_PASSED");
    // Another unit is refused for whose finding it is, not for the deadline.
    let err = jixiao_proto::inspections::inspections_service_client::InspectionsServiceClient::new(
        suite.unit("huli"),
    )
    .report_rectification(report.clone())
    .await
    .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "{}",
        err.message()
    );
    inspector
        .report_rectification(report)
        .await
        .expect("the office reports on the unit's behalf");

    // Past its phases with its deadline still ahead, data is refused for
    // the phase, not for a deadline that has not passed.
    office
        .update_cycle(UpdateCycleRequest {
            cycle: Some(Cycle {
                name: "cycles/2026".into(),
                deadlines: Some(Deadlines {
                    data_deadline: ts(now_ms() + 20 * DAY),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["deadlines.data_deadline".into()],
            }),
        })
        .await
        .expect("deadline");
    jixiao_tests::set_phase(&suite, "2026", Published).await;
    let err = IndicatorsServiceClient::new(channel(&suite, Caller::Provider))
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(final_values().remove(0)),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "WRONG_PHASE");
    suite.stop().await;
}

on_both_databases!(a_retry_after_the_window_closed_gets_its_first_answer);

/// The contract's retry promise outlives the window: a write that
/// succeeded, sent again with the same request id after its phase or
/// deadline has passed, answers as the first time; a new request is
/// refused.
async fn a_retry_after_the_window_closed_gets_its_first_answer(backend: Backend) {
    use jixiao_proto::inspections::{
        Inspection, InspectionKind, inspections_service_client::InspectionsServiceClient,
    };
    let suite = Suite::start(backend).await;
    jixiao_tests::executing_year(&suite).await;
    let inspected = ts(now_ms() - DAY);
    let request = |request_id: &str| CreateInspectionRequest {
        parent: "cycles/2026".into(),
        inspection: Some(Inspection {
            unit: "units/siming".into(),
            kind: InspectionKind::Patrol as i32,
            inspect_time: inspected,
            inspectors: vec!["李明".into()],
            ..Default::default()
        }),
        request_id: request_id.into(),
        ..Default::default()
    };
    let mut inspector = InspectionsServiceClient::new(suite.office());
    let first = inspector
        .create_inspection(request("patrol-1"))
        .await
        .expect("in the year")
        .into_inner();
    jixiao_tests::set_phase(&suite, "2026", Assessment).await;
    jixiao_tests::set_phase(&suite, "2026", Published).await;
    let again = inspector
        .create_inspection(request("patrol-1"))
        .await
        .expect("the retry gets its first answer")
        .into_inner();
    assert_eq!(again.name, first.name);
    let err = inspector
        .create_inspection(request("patrol-2"))
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "WRONG_PHASE");
    suite.stop().await;
}
