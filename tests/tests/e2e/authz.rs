//! The authorisation matrix: every RPC of every service (read from the
//! compiled descriptors, so an RPC added without a row fails here) called
//! by every role of DOMAIN.md §1, and by no one, with an empty request.
//! A role outside a method's row must be refused with PERMISSION_DENIED
//! whatever the request; a role inside it gets past the role gate
//! (`jixiao_runtime::authz`) to the handler, which then judges the request
//! itself. The unit level (a unit's own data and no other's) needs real
//! requests and is shown in each service's tests.

use std::collections::{BTreeMap, BTreeSet};

use jixiao_runtime::Role;
use jixiao_testkit::{Backend, Suite};
use jixiao_tests::{call_empty, rpc_methods};
use tonic::{Code, Status};

/// The roles of DOMAIN.md §1 and the services' own.
const ROLES: [Role; 8] = Role::ALL;

/// Who may call what (`service/Method`, the roles in alphabetical order),
/// as DOMAIN.md §1 reads. Survey platforms push and read their campaigns,
/// nothing else; dashboards read the setup and results; inspectors record
/// and read inspections; services read what they follow and never write;
/// units write their own plans, ratings, contests, rectifications and
/// self-inspection items (the plans service also shows a unit the audit
/// trail of its own plan, which an empty request does not name).
const EXPECTED: &[(&str, &str)] = &[
    (
        "aggregator/GetArchive",
        "evaluator,office,service,unit,viewer",
    ),
    (
        "aggregator/GetDistribution",
        "evaluator,office,service,viewer",
    ),
    (
        "aggregator/GetFeedback",
        "evaluator,office,service,unit,viewer",
    ),
    (
        "aggregator/GetPublication",
        "evaluator,office,service,unit,viewer",
    ),
    (
        "aggregator/GetPublicationInputs",
        "evaluator,office,service,unit,viewer",
    ),
    ("aggregator/GetStandings", "evaluator,office,service,viewer"),
    ("aggregator/ListAuditRecords", "evaluator,office"),
    (
        "aggregator/ListPublications",
        "evaluator,office,service,unit,viewer",
    ),
    ("aggregator/PublishResults", "office"),
    ("aggregator/VerifyAuditChain", "evaluator,office"),
    (
        "aggregator/VerifyPublication",
        "evaluator,office,service,unit,viewer",
    ),
    (
        "aggregator/WatchStandings",
        "evaluator,office,service,viewer",
    ),
    ("indicators/BatchReportValues", "office,provider"),
    ("indicators/CorrectValue", "office,provider"),
    ("indicators/EnterAssessedScore", "evaluator,office"),
    ("indicators/GetGroupScores", "evaluator,office,service"),
    (
        "indicators/GetProgress",
        "evaluator,office,provider,service,unit",
    ),
    (
        "indicators/GetProviderCompleteness",
        "evaluator,office,provider,service",
    ),
    (
        "indicators/GetValue",
        "evaluator,office,provider,service,unit",
    ),
    ("indicators/ListAuditRecords", "evaluator,office"),
    (
        "indicators/ListValueFlags",
        "evaluator,office,provider,service,unit",
    ),
    (
        "indicators/ListValueHistory",
        "evaluator,office,provider,service,unit",
    ),
    (
        "indicators/ListValues",
        "evaluator,office,provider,service,unit",
    ),
    ("indicators/ReportValue", "office,provider"),
    ("indicators/ResolveValueFlag", "evaluator,office"),
    ("indicators/VerifyAuditChain", "evaluator,office"),
    ("indicators/WatchScoreChanges", "evaluator,office,service"),
    ("inspections/ConfirmFinding", "office"),
    ("inspections/ContestFinding", "office,unit"),
    ("inspections/CreateInspection", "inspector,office"),
    ("inspections/CreateSelfInspectionItem", "office,unit"),
    ("inspections/DecideContest", "office"),
    (
        "inspections/GetGroupAdjustments",
        "evaluator,office,service",
    ),
    (
        "inspections/GetInspection",
        "evaluator,inspector,office,service,unit",
    ),
    ("inspections/IssueDocument", "inspector,office"),
    ("inspections/ListAuditRecords", "evaluator,office"),
    (
        "inspections/ListDocuments",
        "evaluator,inspector,office,service,unit",
    ),
    (
        "inspections/ListInspections",
        "evaluator,inspector,office,service,unit",
    ),
    (
        "inspections/ListOverdueRectifications",
        "evaluator,inspector,office,service,unit",
    ),
    (
        "inspections/ListSelfInspectionItems",
        "evaluator,inspector,office,service,unit",
    ),
    ("inspections/RecordSpotCheck", "inspector,office"),
    ("inspections/ReportRectification", "office,unit"),
    ("inspections/ReviewRectification", "office"),
    ("inspections/VerifyAuditChain", "evaluator,office"),
    ("inspections/VerifySelfInspectionItem", "office"),
    (
        "inspections/WatchAdjustmentChanges",
        "evaluator,office,service",
    ),
    ("plans/AmendPlan", "office,unit"),
    ("plans/ApprovePlan", "office"),
    (
        "plans/CheckWriteWindow",
        "evaluator,office,provider,service,unit",
    ),
    ("plans/CreateCycle", "office"),
    ("plans/CreateGroup", "office"),
    ("plans/CreateNotice", "office"),
    ("plans/CreatePlan", "office,unit"),
    ("plans/CreateUnit", "office"),
    (
        "plans/DiffPlanVersions",
        "evaluator,office,provider,service,unit",
    ),
    (
        "plans/GetCycle",
        "evaluator,inspector,office,provider,service,unit,viewer",
    ),
    (
        "plans/GetFramework",
        "evaluator,inspector,office,provider,service,unit,viewer",
    ),
    (
        "plans/GetGroup",
        "evaluator,inspector,office,provider,service,unit,viewer",
    ),
    ("plans/GetGroupTargets", "evaluator,office,service"),
    ("plans/GetPlan", "evaluator,office,provider,service,unit"),
    (
        "plans/GetScheme",
        "evaluator,inspector,office,provider,service,unit,viewer",
    ),
    ("plans/GetTimelinessReport", "evaluator,office,service"),
    (
        "plans/GetUnit",
        "evaluator,inspector,office,provider,service,unit,viewer",
    ),
    ("plans/GrantLockException", "office"),
    ("plans/ListAuditRecords", "evaluator,office"),
    (
        "plans/ListCycles",
        "evaluator,inspector,office,provider,service,unit,viewer",
    ),
    (
        "plans/ListGroups",
        "evaluator,inspector,office,provider,service,unit,viewer",
    ),
    (
        "plans/ListLockExceptions",
        "evaluator,office,provider,service,unit",
    ),
    (
        "plans/ListNotices",
        "evaluator,inspector,office,provider,service,unit,viewer",
    ),
    (
        "plans/ListPlanVersions",
        "evaluator,office,provider,service,unit",
    ),
    ("plans/ListPlans", "evaluator,office,provider,service,unit"),
    (
        "plans/ListUnits",
        "evaluator,inspector,office,provider,service,unit,viewer",
    ),
    ("plans/ReplaceFramework", "office"),
    ("plans/ReturnPlan", "office"),
    ("plans/SetCyclePhase", "office"),
    ("plans/SubmitPlan", "office,unit"),
    ("plans/UpdateCycle", "office"),
    ("plans/UpdateGroup", "office"),
    ("plans/UpdatePlan", "office,unit"),
    ("plans/UpdateScheme", "office"),
    ("plans/VerifyAuditChain", "evaluator,office"),
    ("plans/WatchPlanChanges", "evaluator,office,service"),
    ("reviews/AcceptInsufficientSample", "office"),
    ("reviews/CreateCampaign", "office"),
    (
        "reviews/GetCampaign",
        "evaluator,office,service,survey_platform,unit",
    ),
    ("reviews/GetGroupReviewScores", "evaluator,office,service"),
    ("reviews/ListAuditRecords", "evaluator,office"),
    (
        "reviews/ListCampaigns",
        "evaluator,office,service,survey_platform,unit",
    ),
    ("reviews/ListMutualRatings", "evaluator,office,unit"),
    ("reviews/ListSurveyFlags", "evaluator,office,service,unit"),
    ("reviews/PushResponses", "survey_platform"),
    ("reviews/PushUnitResults", "survey_platform"),
    ("reviews/PushVotes", "survey_platform"),
    ("reviews/ResolveSurveyFlag", "evaluator,office"),
    ("reviews/StreamResponses", "survey_platform"),
    ("reviews/SubmitMutualRating", "unit"),
    ("reviews/VerifyAuditChain", "evaluator,office"),
    ("reviews/WatchReviewChanges", "evaluator,office,service"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_every_role_outside_its_row() {
    let suite = Suite::start(Backend::Sqlite).await;
    let mut observed: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (path, cs, ss) in rpc_methods() {
        let code = call_empty(suite.anonymous(), &path, cs, ss).await;
        assert_eq!(code, Code::Unauthenticated, "{path} without a token");
        let allowed = observed.entry(path.clone()).or_default();
        for role in ROLES {
            let unit = matches!(role, Role::Unit | Role::Provider).then_some("siming");
            let channel = suite.as_roles(&format!("probe-{}", role.as_str()), &[role], unit);
            let code = call_empty(channel, &path, cs, ss).await;
            if code != Code::PermissionDenied {
                allowed.insert(role.as_str());
            }
        }
    }
    suite.stop().await;
    let observed: BTreeMap<String, String> = observed
        .into_iter()
        .map(|(path, roles)| {
            let (service, method) = path.trim_start_matches("/jixiao.").split_once('/').unwrap();
            let service = service.split('.').next().unwrap();
            (
                format!("{service}/{method}"),
                roles.into_iter().collect::<Vec<_>>().join(","),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = EXPECTED
        .iter()
        .map(|(m, r)| (m.to_string(), r.to_string()))
        .collect();
    for method in observed.keys() {
        assert!(
            expected.contains_key(method),
            "{method} has no row in the matrix: decide who may call it"
        );
    }
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(m, r)| observed.get(*m) != Some(*r))
        .map(|(m, r)| format!("{m}: expected {r}, observed {:?}", observed.get(m)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    println!(
        "{} RPCs x {} roles and no token: {} calls",
        observed.len(),
        ROLES.len(),
        observed.len() * (ROLES.len() + 1)
    );
}

/// The unit level of the matrix: each RPC a unit may call (its row holds
/// `unit`) either names a unit's data, and is then called by siming for
/// its own data (allowed: any answer but PERMISSION_DENIED) and for huli's
/// (PERMISSION_DENIED), or serves every unit alike and is listed in
/// `SHARED`. An RPC newly opened to units fails here until it is placed.
const UNIT_SCOPED: &[&str] = &[
    "aggregator/GetFeedback",
    "indicators/GetProgress",
    "indicators/GetValue",
    "indicators/ListValueFlags",
    "indicators/ListValueHistory",
    "indicators/ListValues",
    "inspections/ContestFinding",
    "inspections/CreateSelfInspectionItem",
    "inspections/ListOverdueRectifications",
    "inspections/ListSelfInspectionItems",
    "inspections/ReportRectification",
    "plans/AmendPlan",
    "plans/CreatePlan",
    "plans/DiffPlanVersions",
    "plans/GetPlan",
    "plans/ListLockExceptions",
    "plans/ListPlanVersions",
    "plans/SubmitPlan",
    "plans/UpdatePlan",
    "reviews/ListMutualRatings",
    "reviews/ListSurveyFlags",
];

/// Open to every unit alike: the setup everyone reads, published results
/// (the archive holds nothing else: DOMAIN.md §1 lets units read published
/// results), campaigns, inspections as published, rating another unit (the
/// rater is the caller) and the plan list (filtered to the caller's own).
const SHARED: &[&str] = &[
    "aggregator/GetArchive",
    "aggregator/GetPublication",
    "aggregator/GetPublicationInputs",
    "aggregator/ListPublications",
    "aggregator/VerifyPublication",
    "inspections/GetInspection",
    "inspections/ListDocuments",
    "inspections/ListInspections",
    "plans/CheckWriteWindow",
    "plans/GetCycle",
    "plans/GetFramework",
    "plans/GetGroup",
    "plans/GetScheme",
    "plans/GetUnit",
    "plans/ListCycles",
    "plans/ListGroups",
    "plans/ListNotices",
    "plans/ListPlans",
    "plans/ListUnits",
    "reviews/GetCampaign",
    "reviews/ListCampaigns",
    "reviews/SubmitMutualRating",
];

/// Calls `method` as the unit siming about `unit`'s data.
async fn as_siming(suite: &Suite, method: &str, unit: &str, finding: &str) -> Result<(), Status> {
    use jixiao_proto::{
        aggregator::{GetFeedbackRequest, aggregator_service_client::AggregatorServiceClient},
        indicators::{
            GetProgressRequest, GetValueRequest, ListValueFlagsRequest, ListValueHistoryRequest,
            ListValuesRequest, indicators_service_client::IndicatorsServiceClient,
        },
        inspections::{
            ContestFindingRequest, CreateSelfInspectionItemRequest,
            ListOverdueRectificationsRequest, ListSelfInspectionItemsRequest,
            ReportRectificationRequest, SelfInspectionItem,
            inspections_service_client::InspectionsServiceClient,
        },
        plans::{
            AmendPlanRequest, CreatePlanRequest, DiffPlanVersionsRequest, GetPlanRequest,
            ListLockExceptionsRequest, ListPlanVersionsRequest, Plan, SubmitPlanRequest,
            UpdatePlanRequest, plans_service_client::PlansServiceClient,
        },
        reviews::{
            ListMutualRatingsRequest, ListSurveyFlagsRequest,
            reviews_service_client::ReviewsServiceClient,
        },
    };
    let ch = suite.unit("siming");
    let group = "cycles/2026/groups/districts".to_string();
    let unit_name = format!("units/{unit}");
    let plan = format!("cycles/2026/plans/{unit}");
    let value = format!("cycles/2026/units/{unit}/indicators/GDP_GROWTH/periods/2026");
    let mut plans = PlansServiceClient::new(ch.clone());
    let mut indicators = IndicatorsServiceClient::new(ch.clone());
    let mut inspections = InspectionsServiceClient::new(ch.clone());
    match method {
        "aggregator/GetFeedback" => AggregatorServiceClient::new(ch)
            .get_feedback(GetFeedbackRequest {
                group,
                unit: unit_name,
            })
            .await
            .map(drop),
        "indicators/GetProgress" => indicators
            .get_progress(GetProgressRequest {
                group,
                unit: unit_name,
                expected_share: None,
            })
            .await
            .map(drop),
        "indicators/GetValue" => indicators
            .get_value(GetValueRequest { name: value })
            .await
            .map(drop),
        "indicators/ListValueHistory" => indicators
            .list_value_history(ListValueHistoryRequest {
                name: value,
                ..Default::default()
            })
            .await
            .map(drop),
        "indicators/ListValueFlags" => indicators
            .list_value_flags(ListValueFlagsRequest {
                parent: "cycles/2026".into(),
                unit: unit_name,
                ..Default::default()
            })
            .await
            .map(drop),
        "indicators/ListValues" => indicators
            .list_values(ListValuesRequest {
                parent: "cycles/2026".into(),
                unit: unit_name,
                ..Default::default()
            })
            .await
            .map(drop),
        "inspections/ContestFinding" => inspections
            .contest_finding(ContestFindingRequest {
                name: finding.into(),
                reason: "当日系统故障".into(),
            })
            .await
            .map(drop),
        "inspections/CreateSelfInspectionItem" => inspections
            .create_self_inspection_item(CreateSelfInspectionItemRequest {
                parent: "cycles/2026".into(),
                item: Some(SelfInspectionItem {
                    unit: unit_name,
                    item_type: "problem_found".into(),
                    problem: "窗口人员迟到".into(),
                    action_taken: "约谈".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            })
            .await
            .map(drop),
        "inspections/ListOverdueRectifications" => inspections
            .list_overdue_rectifications(ListOverdueRectificationsRequest {
                parent: "cycles/2026".into(),
                unit: unit_name,
            })
            .await
            .map(drop),
        "inspections/ListSelfInspectionItems" => inspections
            .list_self_inspection_items(ListSelfInspectionItemsRequest {
                parent: "cycles/2026".into(),
                unit: unit_name,
                ..Default::default()
            })
            .await
            .map(drop),
        "inspections/ReportRectification" => inspections
            .report_rectification(ReportRectificationRequest {
                name: finding.into(),
                report: "已整改".into(),
                evidence: jixiao_tests::evidence(),
            })
            .await
            .map(drop),
        "plans/AmendPlan" => plans
            .amend_plan(AmendPlanRequest {
                name: plan,
                etag: String::new(),
                reason: "调整".into(),
            })
            .await
            .map(drop),
        "plans/CreatePlan" => plans
            .create_plan(CreatePlanRequest {
                parent: "cycles/2026".into(),
                plan: Some(Plan {
                    unit: unit_name,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .map(drop),
        "plans/DiffPlanVersions" => plans
            .diff_plan_versions(DiffPlanVersionsRequest {
                name: plan,
                from_version: 1,
                to_version: 1,
            })
            .await
            .map(drop),
        "plans/GetPlan" => plans
            .get_plan(GetPlanRequest { name: plan })
            .await
            .map(drop),
        "plans/ListLockExceptions" => plans
            .list_lock_exceptions(ListLockExceptionsRequest {
                parent: "cycles/2026".into(),
                unit: unit_name,
                ..Default::default()
            })
            .await
            .map(drop),
        "plans/ListPlanVersions" => plans
            .list_plan_versions(ListPlanVersionsRequest {
                parent: plan,
                ..Default::default()
            })
            .await
            .map(drop),
        "plans/SubmitPlan" => plans
            .submit_plan(SubmitPlanRequest {
                name: plan,
                ..Default::default()
            })
            .await
            .map(drop),
        "plans/UpdatePlan" => plans
            .update_plan(UpdatePlanRequest {
                plan: Some(Plan {
                    name: plan,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["goals".into()],
                }),
            })
            .await
            .map(drop),
        "reviews/ListMutualRatings" => ReviewsServiceClient::new(ch)
            .list_mutual_ratings(ListMutualRatingsRequest {
                parent: "cycles/2026".into(),
                rater: unit_name,
                ..Default::default()
            })
            .await
            .map(drop),
        "reviews/ListSurveyFlags" => ReviewsServiceClient::new(ch)
            .list_survey_flags(ListSurveyFlagsRequest {
                campaign: "cycles/2026/campaigns/survey".into(),
                unit: unit_name,
                open_only: false,
            })
            .await
            .map(drop),
        other => panic!("{other} has no request in this test"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_reaches_its_own_data_and_no_other_units() {
    use jixiao_proto::inspections::{
        ConfirmFindingRequest, CreateInspectionRequest, Finding, Inspection, InspectionKind,
        inspections_service_client::InspectionsServiceClient,
    };
    // Every RPC open to units is placed.
    let unit_rows: BTreeSet<&str> = EXPECTED
        .iter()
        .filter(|(_, roles)| roles.split(',').any(|r| r == "unit"))
        .map(|(m, _)| *m)
        .collect();
    let placed: BTreeSet<&str> = UNIT_SCOPED.iter().chain(SHARED).copied().collect();
    assert_eq!(unit_rows, placed, "place every RPC units may call");

    let suite = Suite::start(Backend::Sqlite).await;
    jixiao_tests::executing_year(&suite).await;
    jixiao_tests::complete_indicators(&suite).await;
    // A confirmed finding for each of the two districts.
    let mut findings = BTreeMap::new();
    for unit in ["siming", "huli"] {
        let inspection =
            InspectionsServiceClient::new(suite.as_roles("inspector-li", &[Role::Inspector], None))
                .create_inspection(CreateInspectionRequest {
                    parent: "cycles/2026".into(),
                    inspection: Some(Inspection {
                        unit: format!("units/{unit}"),
                        kind: InspectionKind::Covert as i32,
                        inspect_time: jixiao_tests::ts(
                            jixiao_tests::now_ms() - 3 * jixiao_tests::DAY,
                        ),
                        inspectors: vec!["李明".into()],
                        place: "政务服务中心".into(),
                        findings: vec![Finding {
                            category: "absence".into(),
                            description: "窗口无人".into(),
                            deduction: jixiao_tests::dec("1.0"),
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
        let name = inspection.findings[0].name.clone();
        InspectionsServiceClient::new(suite.office())
            .confirm_finding(ConfirmFindingRequest { name: name.clone() })
            .await
            .expect("confirm");
        findings.insert(unit, name);
    }

    let mut wrong = Vec::new();
    for method in UNIT_SCOPED {
        for unit in ["huli", "siming"] {
            let code = match as_siming(&suite, method, unit, &findings[unit]).await {
                Ok(()) => Code::Ok,
                Err(s) => s.code(),
            };
            let denied = code == Code::PermissionDenied;
            if denied != (unit == "huli") || code == Code::Unauthenticated {
                wrong.push(format!("{method} as siming about {unit}: {code:?}"));
            }
        }
    }
    suite.stop().await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The ErrorInfo domain says who refused (types.proto, "Errors follow
/// AIP-193"): the host's token check and role gate answer in `jixiao.auth`,
/// a service's own check in `jixiao.<service>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_and_the_services_refuse_in_their_own_domains() {
    use jixiao_proto::plans::{
        CreateCycleRequest, GetCycleRequest, plans_service_client::PlansServiceClient,
    };
    use tonic_types::StatusExt;
    let domain = |s: &Status| {
        let info = s.get_error_details().error_info().cloned();
        let info = info.unwrap_or_else(|| panic!("no ErrorInfo in {s:?}"));
        (s.code(), info.reason, info.domain)
    };
    let suite = Suite::start(Backend::Sqlite).await;
    jixiao_tests::executing_year(&suite).await;
    let no_token = PlansServiceClient::new(suite.anonymous())
        .get_cycle(GetCycleRequest {
            name: "cycles/2026".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        domain(&no_token),
        (
            Code::Unauthenticated,
            "UNAUTHENTICATED".into(),
            "jixiao.auth".into()
        )
    );
    let viewer = suite.as_roles("viewer-1", &[Role::Viewer], None);
    let gated = PlansServiceClient::new(viewer)
        .create_cycle(CreateCycleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        domain(&gated),
        (
            Code::PermissionDenied,
            "PERMISSION_DENIED".into(),
            "jixiao.auth".into()
        )
    );
    let other_unit = as_siming(&suite, "plans/GetPlan", "huli", "")
        .await
        .unwrap_err();
    assert_eq!(
        domain(&other_unit),
        (
            Code::PermissionDenied,
            "PERMISSION_DENIED".into(),
            "jixiao.plans".into()
        )
    );
    suite.stop().await;
}
