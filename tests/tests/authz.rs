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
use jixiao_testkit::{Authed, Backend, Suite};
use prost::Message;
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
        "indicators/ListValueHistory",
        "evaluator,office,provider,service,unit",
    ),
    (
        "indicators/ListValues",
        "evaluator,office,provider,service,unit",
    ),
    ("indicators/ReportValue", "office,provider"),
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
    ("reviews/PushResponses", "survey_platform"),
    ("reviews/PushUnitResults", "survey_platform"),
    ("reviews/PushVotes", "survey_platform"),
    ("reviews/StreamResponses", "survey_platform"),
    ("reviews/SubmitMutualRating", "unit"),
    ("reviews/VerifyAuditChain", "evaluator,office"),
    ("reviews/WatchReviewChanges", "evaluator,office,service"),
];

/// Every method of the suite's services: (path, client streaming, server
/// streaming).
fn methods() -> Vec<(String, bool, bool)> {
    let set = prost_types::FileDescriptorSet::decode(jixiao_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for file in &set.file {
        let package = file.package();
        if !package.starts_with("jixiao.") {
            continue;
        }
        for service in &file.service {
            for m in &service.method {
                out.push((
                    format!("/{package}.{}/{}", service.name(), m.name()),
                    m.client_streaming(),
                    m.server_streaming(),
                ));
            }
        }
    }
    out
}

/// Calls `path` with an empty request (an empty stream for client
/// streams) and returns the status code.
async fn call(channel: Authed, path: &str, client_streaming: bool, server_streaming: bool) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path: http::uri::PathAndQuery = path.parse().unwrap();
    let result: Result<(), Status> = match (client_streaming, server_streaming) {
        (false, false) => grpc
            .unary(tonic::Request::new(()), path, codec)
            .await
            .map(|_| ()),
        (true, false) => grpc
            .client_streaming(
                tonic::Request::new(tokio_stream::iter(Vec::<()>::new())),
                path,
                codec,
            )
            .await
            .map(|_| ()),
        (false, true) => match grpc
            .server_streaming(tonic::Request::new(()), path, codec)
            .await
        {
            // A stream that opens is allowed; its first item may still fail.
            Ok(mut s) => {
                match tokio::time::timeout(std::time::Duration::from_secs(2), s.get_mut().message())
                    .await
                {
                    Ok(Err(status)) => Err(status),
                    _ => Ok(()),
                }
            }
            Err(s) => Err(s),
        },
        (true, true) => unreachable!("no bidirectional streams"),
    };
    match result {
        Ok(()) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_every_role_outside_its_row() {
    let suite = Suite::start(Backend::Sqlite).await;
    let mut observed: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (path, cs, ss) in methods() {
        let code = call(suite.anonymous(), &path, cs, ss).await;
        assert_eq!(code, Code::Unauthenticated, "{path} without a token");
        let allowed = observed.entry(path.clone()).or_default();
        for role in ROLES {
            let unit = matches!(role, Role::Unit | Role::Provider).then_some("siming");
            let channel = suite.as_roles(&format!("probe-{}", role.as_str()), &[role], unit);
            let code = call(channel, &path, cs, ss).await;
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
