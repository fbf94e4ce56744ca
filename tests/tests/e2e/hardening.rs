//! The classes of defect an outside tester found (issue 17), each shown
//! through the public gRPC interface: server-made names under concurrency,
//! decimals at the extremes of their type, correctly signed tokens that no
//! minting could produce, name prefixes that cross unit boundaries, server
//! streams and the per-principal limit, and malformed messages.

use std::collections::HashSet;

use futures::future::join_all;
use jixiao_proto::{
    aggregator::{WatchStandingsRequest, aggregator_service_client::AggregatorServiceClient},
    indicators::{
        IndicatorValue, ListValuesRequest, ReportValueRequest,
        indicators_service_client::IndicatorsServiceClient,
    },
    inspections::{
        CreateInspectionRequest, CreateSelfInspectionItemRequest, Document, DocumentKind, Finding,
        Inspection, InspectionKind, IssueDocumentRequest, RecordSpotCheckRequest,
        SelfInspectionItem, SpotCheckCase, inspections_service_client::InspectionsServiceClient,
    },
    plans::{
        CreateNoticeRequest, CreateUnitRequest, Cycle, Deadlines, GrantLockExceptionRequest,
        LockException, LockScope, Notice, Unit, UnitKind, UpdateCycleRequest,
        plans_service_client::PlansServiceClient,
    },
    reviews::{CampaignMode, PushResponsesRequest, reviews_service_client::ReviewsServiceClient},
    types::ListAuditRecordsRequest,
};
use jixiao_runtime::Role;
use jixiao_testkit::{Authed, Backend, Suite, on_both_databases};
use jixiao_tests::{
    DAY, annual, bad_fields, dec, domain, evaluation_year, evidence, executing_year, final_values,
    now_ms, reason, response, survey_campaign, ts,
};
use prost::Message;
use tonic::Code;

on_both_databases!(
    server_named_resources_stay_distinct_under_concurrency,
    extreme_decimals_are_refused_naming_the_field,
    signed_tokens_that_no_minting_makes_are_refused_by_every_rpc,
    a_remembered_token_is_refused_once_it_expires,
    a_watch_ends_when_its_token_lapses,
    a_stalled_watch_lets_go_when_its_token_lapses,
    a_watch_ends_at_its_deadline,
    audit_prefixes_match_whole_name_segments,
    entry_checks_of_times_enums_and_exactness,
    free_text_is_bounded_at_entry,
);

const PARALLEL: usize = 200;

/// A client as its own principal, so that the per-principal limit of calls
/// in flight does not stand between the test and the database.
fn office_n(suite: &Suite, i: usize) -> Authed {
    suite.as_roles(&format!("office-{i}"), &[Role::Office], None)
}

/// Makes PARALLEL resources at once; all must be created, each with a
/// name of its own.
async fn created<F, Fut>(kind: &str, create: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<String, tonic::Status>>,
{
    let names = join_all((0..PARALLEL).map(create)).await;
    let mut seen = HashSet::new();
    for n in names {
        let n = n.unwrap_or_else(|s| panic!("{kind}: {:?} {}", s.code(), s.message()));
        assert!(seen.insert(n.clone()), "{kind}: {n} named twice");
    }
    assert_eq!(seen.len(), PARALLEL, "{kind}");
}

async fn server_named_resources_stay_distinct_under_concurrency(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    created("notices", |i| {
        let mut c = PlansServiceClient::new(office_n(&suite, i));
        async move {
            c.create_notice(CreateNoticeRequest {
                parent: "cycles/2026".into(),
                notice: Some(Notice {
                    title: format!("通知 {i}"),
                    body: "正文".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().name)
        }
    })
    .await;
    created("lock exceptions", |i| {
        let mut c = PlansServiceClient::new(office_n(&suite, i));
        async move {
            c.grant_lock_exception(GrantLockExceptionRequest {
                parent: "cycles/2026".into(),
                lock_exception: Some(LockException {
                    unit: "units/huli".into(),
                    scope: LockScope::Data as i32,
                    expire_time: ts(now_ms() + DAY),
                    reason: format!("补报 {i}"),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().name)
        }
    })
    .await;
    created("inspections", |i| {
        let mut c = InspectionsServiceClient::new(office_n(&suite, i));
        async move {
            c.create_inspection(CreateInspectionRequest {
                parent: "cycles/2026".into(),
                inspection: Some(Inspection {
                    unit: "units/siming".into(),
                    kind: InspectionKind::Patrol as i32,
                    inspect_time: ts(now_ms() - DAY),
                    inspectors: vec!["李明".into()],
                    place: format!("窗口 {i}"),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().name)
        }
    })
    .await;
    created("documents", |i| {
        let mut c = InspectionsServiceClient::new(office_n(&suite, i));
        async move {
            c.issue_document(IssueDocumentRequest {
                parent: "cycles/2026".into(),
                document: Some(Document {
                    kind: DocumentKind::Bulletin as i32,
                    unit: "units/siming".into(),
                    title: format!("简报 {i}"),
                    body: "正文".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().name)
        }
    })
    .await;
    created("self-inspection items", |i| {
        let mut c = InspectionsServiceClient::new(suite.as_roles(
            &format!("siming-{i}"),
            &[Role::Unit],
            Some("siming"),
        ));
        async move {
            c.create_self_inspection_item(CreateSelfInspectionItemRequest {
                parent: "cycles/2026".into(),
                item: Some(SelfInspectionItem {
                    unit: "units/siming".into(),
                    item_type: "problem_found".into(),
                    problem: format!("问题 {i}"),
                    action_taken: "整改".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().name)
        }
    })
    .await;
    suite.stop().await;
}

const EXTREMES: [&str; 6] = [
    "0.0000000000000000000000000001",
    "-0.0000000000000000000000000001",
    "79228162514264337593543950335",
    "-79228162514264337593543950335",
    "9.9999999999999999999999999999",
    "1e15",
];

async fn extreme_decimals_are_refused_naming_the_field(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut provider =
        IndicatorsServiceClient::new(suite.as_roles("stats", &[Role::Provider], Some("stats")));
    let mut inspector = InspectionsServiceClient::new(suite.office());
    for x in EXTREMES {
        let err = provider
            .report_value(ReportValueRequest {
                parent: "cycles/2026".into(),
                value: Some(IndicatorValue {
                    unit: "units/siming".into(),
                    indicator: "ENERGY_INTENSITY".into(),
                    period: annual(),
                    value: dec(x),
                    evidence: evidence(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect_err(x);
        assert_eq!(err.code(), Code::InvalidArgument, "{x}: {}", err.message());
        assert_eq!(bad_fields(&err), ["value.value"], "{x}");
        let err = inspector
            .create_inspection(CreateInspectionRequest {
                parent: "cycles/2026".into(),
                inspection: Some(Inspection {
                    unit: "units/siming".into(),
                    kind: InspectionKind::Covert as i32,
                    inspect_time: ts(now_ms() - DAY),
                    inspectors: vec!["李明".into()],
                    findings: vec![Finding {
                        category: "absence".into(),
                        description: "离岗".into(),
                        deduction: dec(x),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            })
            .await
            .expect_err(x);
        assert_eq!(err.code(), Code::InvalidArgument, "{x}: {}", err.message());
        assert_eq!(
            bad_fields(&err),
            ["inspection.findings[0].deduction"],
            "{x}"
        );
    }
    suite.stop().await;
}

/// Claims signed with the suite's own key that `TokenKey::issue` never
/// produces.
fn malformed_claims() -> Vec<(&'static str, serde_json::Value)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let base = |sub: serde_json::Value, roles: serde_json::Value| serde_json::json!({"sub": sub, "roles": roles, "iss": "jixiao", "iat": now, "exp": now + 600});
    let with_unit = |mut c: serde_json::Value, unit: &str| {
        c["unit"] = unit.into();
        c
    };
    vec![
        (
            "unit role without a unit",
            base("siming".into(), serde_json::json!(["unit"])),
        ),
        (
            "provider role without a unit",
            base("stats".into(), serde_json::json!(["provider"])),
        ),
        (
            "empty unit",
            with_unit(base("stats".into(), serde_json::json!(["provider"])), ""),
        ),
        (
            "unit that is no id",
            with_unit(base("x".into(), serde_json::json!(["unit"])), "../huli"),
        ),
        (
            "empty subject",
            base("".into(), serde_json::json!(["office"])),
        ),
        (
            "blank subject",
            base("  ".into(), serde_json::json!(["office"])),
        ),
        ("no roles", base("office".into(), serde_json::json!([]))),
        (
            "unknown role",
            base("office".into(), serde_json::json!(["admin"])),
        ),
        (
            "role named twice",
            base("office".into(), serde_json::json!(["viewer", "viewer"])),
        ),
        (
            "empty unit on an office token",
            with_unit(base("office".into(), serde_json::json!(["office"])), ""),
        ),
        (
            "subject with a bidirectional override",
            base("abc\u{202E}eciffo".into(), serde_json::json!(["office"])),
        ),
        (
            "subject with a zero-width space",
            base("office\u{200B}".into(), serde_json::json!(["office"])),
        ),
        (
            "subject not a string",
            base(serde_json::json!(42), serde_json::json!(["office"])),
        ),
        (
            "issued in the future",
            serde_json::json!({"sub": "office", "roles": ["office"], "iss": "jixiao", "iat": now + 3600, "exp": now + 7200}),
        ),
        (
            "not valid before an hour from now",
            serde_json::json!({"sub": "office", "roles": ["office"], "iss": "jixiao", "iat": now, "nbf": now + 3600, "exp": now + 7200}),
        ),
    ]
}

/// Services remember the tokens they verified (by their exact text), yet
/// check a remembered token's times on every call: one that expires while
/// in use is refused from then on.
async fn a_remembered_token_is_refused_once_it_expires(backend: Backend) {
    let suite = Suite::start(backend).await;
    evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let secs = jixiao_tests::now_secs;
    // Expired 25 s ago: accepted for 5 s more within the 30 s leeway.
    let now = secs();
    let expires = now - 25;
    let token = suite
        .key
        .sign_unchecked(&serde_json::json!({"sub": "office", "roles": ["office"], "iss": "jixiao", "iat": now - 60, "exp": expires}))
        .unwrap();
    let get_cycle = || async {
        PlansServiceClient::new(suite.authed(&token))
            .get_cycle(jixiao_proto::plans::GetCycleRequest {
                name: "cycles/2026".into(),
            })
            .await
    };
    get_cycle().await.expect("within the leeway");
    get_cycle().await.expect("remembered");
    while secs() <= expires + 30 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let err = get_cycle().await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{}", err.message());
    assert!(
        err.message().to_lowercase().contains("expired"),
        "{}",
        err.message()
    );
    suite.stop().await;
}

/// A watch opened with a token ends with UNAUTHENTICATED once the token
/// lapses (its `exp` and the leeway); a service's change stream, whose
/// calls each carry a fresh token, is not cut.
async fn a_watch_ends_when_its_token_lapses(backend: Backend) {
    use jixiao_proto::plans::WatchPlanChangesRequest;
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let lapsing = |sub: &str, role: &str| jixiao_tests::lapsing_token(&suite, sub, role);
    let (viewer, last_second) = lapsing("wall", "viewer");
    let mut watch = AggregatorServiceClient::new(suite.authed(&viewer))
        .watch_standings(WatchStandingsRequest {
            group: "cycles/2026/groups/districts".into(),
            ..Default::default()
        })
        .await
        .expect("a watch within the leeway")
        .into_inner();
    let mut service = PlansServiceClient::new(suite.authed(&lapsing("aggregator", "service").0))
        .watch_plan_changes(WatchPlanChangesRequest {
            cycle: "cycles/-".into(),
        })
        .await
        .expect("a service's change stream")
        .into_inner();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the watch ended without a status"),
                Err(e) => break e,
            }
        }
    })
    .await
    .expect("the watch ends once its token lapses");
    assert!(jixiao_tests::now_secs() > last_second, "ended early");
    jixiao_tests::assert_lapsed(&ended);
    let still =
        tokio::time::timeout(std::time::Duration::from_millis(500), service.message()).await;
    assert!(
        !matches!(still, Ok(Err(_)) | Ok(Ok(None))),
        "the service's stream was cut: {still:?}"
    );
    suite.stop().await;
}

/// A client that stops reading (an HTTP/2 window of 0) is never polled
/// for data, yet its watches give back their places once the token they
/// opened with lapses: the same caller with a fresh token is not locked
/// out, and nothing more reaches the stalled client.
async fn a_stalled_watch_lets_go_when_its_token_lapses(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let (lapsing, last_second) = jixiao_tests::lapsing_token(&suite, "wall", "viewer");
    let stalled = tonic::transport::Endpoint::from_shared(suite.url())
        .unwrap()
        .initial_stream_window_size(Some(0))
        .connect_lazy();
    let limit = jixiao_runtime::host::MAX_CALLS_PER_PRINCIPAL;
    let watch = |channel: tonic::transport::Channel, token: String| async move {
        AggregatorServiceClient::new(tonic::service::interceptor::InterceptedService::new(
            channel,
            jixiao_testkit::Bearer::new(&token).unwrap(),
        ))
        .watch_standings(WatchStandingsRequest {
            group: "cycles/2026/groups/districts".into(),
            ..Default::default()
        })
        .await
        .map(|s| s.into_inner())
    };
    let mut held = Vec::new();
    for _ in 0..limit {
        held.push(
            watch(stalled.clone(), lapsing.clone())
                .await
                .expect("a watch within the limit"),
        );
    }
    let fresh = suite.token("wall", &[Role::Viewer], None);
    let other = tonic::transport::Endpoint::from_shared(suite.url())
        .unwrap()
        .connect_lazy();
    let err = watch(other.clone(), fresh.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    // Past the lapse the places come back, though nothing read the streams.
    jixiao_tests::wait_past(last_second).await;
    let started = std::time::Instant::now();
    loop {
        match watch(other.clone(), fresh.clone()).await {
            Ok(_) => break,
            Err(e) => assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message()),
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the stalled watches kept their places"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(held);
    suite.stop().await;
}

/// A watch with a `grpc-timeout` ends at it with the host's
/// DEADLINE_EXCEEDED, as a unary call does, not with a bare reset.
async fn a_watch_ends_at_its_deadline(backend: Backend) {
    use tonic_types::StatusExt;
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut req = tonic::Request::new(WatchStandingsRequest {
        group: "cycles/2026/groups/districts".into(),
        ..Default::default()
    });
    let deadline = std::time::Duration::from_secs(1);
    req.set_timeout(deadline);
    let started = std::time::Instant::now();
    let mut watch = AggregatorServiceClient::new(suite.as_roles("wall", &[Role::Viewer], None))
        .watch_standings(req)
        .await
        .expect("a watch")
        .into_inner();
    let ended = loop {
        match watch.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the watch ended without a status"),
            Err(e) => break e,
        }
    };
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{}", ended.message());
    let info = ended.get_error_details().error_info().cloned().unwrap();
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("DEADLINE_EXCEEDED", "jixiao.host")
    );
    let took = started.elapsed();
    assert!(took >= deadline - deadline / 10, "cut after {took:?}");
    suite.stop().await;
}

async fn signed_tokens_that_no_minting_makes_are_refused_by_every_rpc(backend: Backend) {
    let suite = Suite::start(backend).await;
    evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let methods = jixiao_tests::rpc_methods();
    assert!(methods.len() > 80, "{} methods", methods.len());
    for (what, claims) in malformed_claims() {
        let token = suite.key.sign_unchecked(&claims).unwrap();
        for (path, cs, ss) in &methods {
            let code = jixiao_tests::call_empty(suite.authed(&token), path, *cs, *ss).await;
            assert_eq!(code, Code::Unauthenticated, "{what}: {path}");
        }
    }
    // Two valid tokens on one call: neither speaks for it.
    let mut req = tonic::Request::new(jixiao_proto::plans::GetCycleRequest {
        name: "cycles/2026".into(),
    });
    for token in [
        suite.token("siming", &[Role::Unit], Some("siming")),
        suite.token("office", &[Role::Office], None),
    ] {
        req.metadata_mut()
            .append("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let err = PlansServiceClient::new(suite.anonymous())
        .get_cycle(req)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{}", err.message());
    suite.stop().await;
}

async fn audit_prefixes_match_whole_name_segments(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = PlansServiceClient::new(suite.office());
    for id in ["ab", "ab2", "ab-x"] {
        office
            .create_unit(CreateUnitRequest {
                unit_id: id.into(),
                unit: Some(Unit {
                    display_name_zh: format!("单位 {id}"),
                    kind: UnitKind::CityDepartment as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }
    for prefix in ["units/ab", "units/ab/"] {
        let records = office
            .list_audit_records(ListAuditRecordsRequest {
                resource_prefix: prefix.into(),
                page_size: 100,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        let resources: Vec<&str> = records.iter().map(|r| r.resource.as_str()).collect();
        assert_eq!(resources, ["units/ab"], "prefix {prefix}");
    }
    let all = office
        .list_audit_records(ListAuditRecordsRequest {
            resource_prefix: "units".into(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert_eq!(all.len(), 3);
    // PostgreSQL cannot hold NUL in a query: refused as the caller's
    // mistake on both databases, never INTERNAL.
    let err = office
        .list_audit_records(ListAuditRecordsRequest {
            resource_prefix: "units/ab\u{0}".into(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    assert_eq!(bad_fields(&err), ["resource_prefix"]);
    // So with a list's text filter.
    for code in ["GDP\u{0}", "GDP\u{1}"] {
        let err = IndicatorsServiceClient::new(suite.office())
            .list_values(ListValuesRequest {
                parent: "cycles/2026".into(),
                indicator: code.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert_eq!(bad_fields(&err), ["indicator"]);
    }
    suite.stop().await;
}

async fn entry_checks_of_times_enums_and_exactness(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut office = ReviewsServiceClient::new(suite.office());
    survey_campaign(&mut office, "survey", CampaignMode::RawResponses).await;
    let mut platform =
        ReviewsServiceClient::new(suite.as_roles("platform-a", &[Role::SurveyPlatform], None));
    let mut far = response("far", "siming", "residents", ["satisfied"; 3]);
    far.answer_time = Some(prost_types::Timestamp {
        seconds: 1_000_000_000_000_000_000,
        nanos: 0,
    });
    let mut y10k = response("y10k", "siming", "residents", ["satisfied"; 3]);
    y10k.answer_time = Some(prost_types::Timestamp {
        seconds: 253_402_300_800,
        nanos: 0,
    });
    let mut nanos = response("nanos", "siming", "residents", ["satisfied"; 3]);
    nanos.answer_time.as_mut().unwrap().nanos = -1;
    let mut channel = response("channel", "siming", "residents", ["satisfied"; 3]);
    channel.channel = 99;
    let out = platform
        .push_responses(PushResponsesRequest {
            campaign: "cycles/2026/campaigns/survey".into(),
            responses: vec![far, y10k, nanos, channel],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.accepted, 0);
    let refused = jixiao_tests::refusals(&out.rejected);
    assert_eq!(
        refused,
        [
            ("far", "INVALID"),
            ("y10k", "INVALID"),
            ("nanos", "INVALID"),
            ("channel", "INVALID")
        ]
    );
    // A decimal that cannot be kept exactly is refused, not rounded to 10.
    let mut provider =
        IndicatorsServiceClient::new(suite.as_roles("stats", &[Role::Provider], Some("stats")));
    let err = provider
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(IndicatorValue {
                unit: "units/siming".into(),
                indicator: "APPROVAL_ONLINE_RATE".into(),
                period: annual(),
                value: dec("9.9999999999999999999999999999"),
                evidence: evidence(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["value.value"]);
    assert_eq!(reason(&err), "VALIDATION_FAILED");
    // google.type.Decimal has no spaces; an enum filter takes listed values.
    let mut spaced = final_values().remove(0);
    spaced.value = dec(" 6");
    let err = provider
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(spaced),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["value.value"]);
    let err = PlansServiceClient::new(suite.office())
        .list_plans(jixiao_proto::plans::ListPlansRequest {
            parent: "cycles/2026".into(),
            state: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["state"]);
    // A timestamp beyond year 9999 names its field.
    let err = InspectionsServiceClient::new(suite.office())
        .create_inspection(CreateInspectionRequest {
            parent: "cycles/2026".into(),
            inspection: Some(Inspection {
                unit: "units/siming".into(),
                kind: InspectionKind::Patrol as i32,
                inspect_time: Some(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
                inspectors: vec!["李明".into()],
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["inspection.inspect_time"]);
    // Every caller's time is checked, including the office's own.
    let beyond = Some(prost_types::Timestamp {
        seconds: 253_402_300_800,
        nanos: 0,
    });
    let mut plans = PlansServiceClient::new(suite.office());
    let err = plans
        .update_cycle(UpdateCycleRequest {
            cycle: Some(Cycle {
                name: "cycles/2026".into(),
                deadlines: Some(Deadlines {
                    review_close: beyond,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["deadlines.review_close".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["cycle.deadlines.review_close"]);
    let err = plans
        .grant_lock_exception(GrantLockExceptionRequest {
            parent: "cycles/2026".into(),
            lock_exception: Some(LockException {
                unit: "units/siming".into(),
                scope: LockScope::Data as i32,
                expire_time: Some(prost_types::Timestamp {
                    seconds: now_ms() / 1000 + 3600,
                    nanos: -1,
                }),
                reason: "延期".into(),
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["lock_exception.expire_time"]);
    let err = InspectionsServiceClient::new(suite.office())
        .record_spot_check(RecordSpotCheckRequest {
            parent: "cycles/2026".into(),
            unit: "units/siming".into(),
            inspect_time: beyond,
            inspectors: vec!["李明".into()],
            cases: vec![SpotCheckCase {
                case_reference: "XK-1".into(),
                legal_limit_days: 20,
                actual_days: 10,
                file_complete: true,
            }],
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["inspect_time"]);
    suite.stop().await;
}

/// Free text has a maximum length in characters (types.proto): one past it
/// is refused naming the field, in every service, and nothing is stored.
async fn free_text_is_bounded_at_entry(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let label = "绩".repeat(jixiao_runtime::text::LABEL + 1);
    let note = "效".repeat(jixiao_runtime::text::NOTE + 1);
    let body = "x".repeat(jixiao_runtime::text::BODY + 1);
    let huge = "评".repeat(768 * 1024 / 3);

    let err = PlansServiceClient::new(suite.office())
        .create_notice(CreateNoticeRequest {
            parent: "cycles/2026".into(),
            notice: Some(Notice {
                title: label.clone(),
                body: body.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["notice.title", "notice.body"]);

    let mut provider =
        IndicatorsServiceClient::new(suite.as_roles("stats", &[Role::Provider], Some("stats")));
    let err = provider
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(IndicatorValue {
                unit: "units/siming".into(),
                indicator: "APPROVAL_ONLINE_RATE".into(),
                period: annual(),
                value: dec("96"),
                evidence: evidence(),
                comment: huge,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["value.comment"]);

    let mut inspector = InspectionsServiceClient::new(suite.office());
    let err = inspector
        .create_inspection(CreateInspectionRequest {
            parent: "cycles/2026".into(),
            inspection: Some(Inspection {
                unit: "units/siming".into(),
                kind: InspectionKind::Patrol as i32,
                inspect_time: ts(now_ms()),
                inspectors: vec![label.clone()],
                place: label.clone(),
                findings: vec![Finding {
                    category: "absence".into(),
                    description: note.clone(),
                    deduction: dec("1"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&err),
        [
            "inspection.inspectors[0]",
            "inspection.place",
            "inspection.findings[0].description"
        ]
    );
    let listed = inspector
        .list_inspections(jixiao_proto::inspections::ListInspectionsRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.inspections.is_empty(), "nothing half-written");

    let err = ReviewsServiceClient::new(suite.office())
        .create_campaign(jixiao_proto::reviews::CreateCampaignRequest {
            parent: "cycles/2026".into(),
            campaign_id: "long".into(),
            campaign: Some(jixiao_proto::reviews::Campaign {
                group: "cycles/2026/groups/districts".into(),
                title: label.clone(),
                mode: CampaignMode::RawResponses as i32,
                platforms: vec!["platform-a".into()],
                questions: vec![jixiao_proto::reviews::Question {
                    id: "q1".into(),
                    text: note.clone(),
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad_fields(&err),
        ["campaign.title", "campaign.questions[0].text"]
    );

    let err = AggregatorServiceClient::new(suite.office())
        .publish_results(jixiao_proto::aggregator::PublishResultsRequest {
            group: "cycles/2026/groups/districts".into(),
            correction_reason: note,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["correction_reason"]);
    suite.stop().await;
}

/// One viewer's server streams count against its limit for as long as
/// they stream: 200 opened, 64 admitted, and a place comes back when one
/// ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streams_hold_their_place_until_they_end() {
    let suite = Suite::start(Backend::Sqlite).await;
    evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let token = suite.token("dashboard", &[Role::Viewer], None);
    // Four connections, so that the per-connection stream limit (128) is
    // not what refuses them.
    let channels: Vec<Authed> = (0..4)
        .map(|_| {
            let ch = tonic::transport::Endpoint::from_shared(suite.url())
                .unwrap()
                .connect_lazy();
            tonic::service::interceptor::InterceptedService::new(
                ch,
                jixiao_testkit::Bearer::new(&token).unwrap(),
            )
        })
        .collect();
    let opened = join_all((0..PARALLEL).map(|i| {
        let mut c = AggregatorServiceClient::new(channels[i % 4].clone());
        async move {
            c.watch_standings(WatchStandingsRequest {
                group: "cycles/2026/groups/districts".into(),
                ..Default::default()
            })
            .await
        }
    }))
    .await;
    let (mut streams, mut refused) = (Vec::new(), 0);
    for r in opened {
        match r {
            Ok(s) => streams.push(s.into_inner()),
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{}", s.message());
                refused += 1;
            }
        }
    }
    assert_eq!(streams.len(), jixiao_runtime::host::MAX_CALLS_PER_PRINCIPAL);
    assert_eq!(refused, PARALLEL - streams.len());
    // Ending the streams gives the places back.
    drop(streams);
    let mut again = AggregatorServiceClient::new(channels[0].clone());
    let mut admitted = false;
    for _ in 0..100 {
        match again
            .watch_standings(WatchStandingsRequest {
                group: "cycles/2026/groups/districts".into(),
                ..Default::default()
            })
            .await
        {
            Ok(_) => {
                admitted = true;
                break;
            }
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    assert!(admitted, "the places of ended streams never came back");
    suite.stop().await;
}

/// One connection carries at most 128 streams at once (HTTP/2
/// SETTINGS_MAX_CONCURRENT_STREAMS): the 129th waits, while another
/// connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_a_bounded_number_of_streams() {
    let suite = Suite::start(Backend::Sqlite).await;
    evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let one = tonic::transport::Endpoint::from_shared(suite.url())
        .unwrap()
        .connect_lazy();
    let limit = jixiao_runtime::host::MAX_STREAMS_PER_CONNECTION as usize;
    let watch = |i: usize| {
        let token = suite.token(&format!("dashboard-{i}"), &[Role::Viewer], None);
        let mut c =
            AggregatorServiceClient::new(tonic::service::interceptor::InterceptedService::new(
                one.clone(),
                jixiao_testkit::Bearer::new(&token).unwrap(),
            ));
        async move {
            c.watch_standings(WatchStandingsRequest {
                group: "cycles/2026/groups/districts".into(),
                ..Default::default()
            })
            .await
            .map(|s| s.into_inner())
        }
    };
    let streams: Vec<_> = join_all((0..limit).map(watch))
        .await
        .into_iter()
        .map(|r| r.expect("a stream within the limit"))
        .collect();
    let blocked = tokio::time::timeout(std::time::Duration::from_secs(2), watch(limit)).await;
    assert!(
        blocked.is_err(),
        "stream {} was served on a full connection",
        limit + 1
    );
    let mut other = PlansServiceClient::new(suite.office());
    other
        .get_cycle(jixiao_proto::plans::GetCycleRequest {
            name: "cycles/2026".into(),
        })
        .await
        .expect("another connection is served");
    drop(streams);
    suite.stop().await;
}

/// Bytes that are not a protobuf encoding of the request are the caller's
/// error: INVALID_ARGUMENT, for unary and client-streaming calls alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_are_invalid_argument() {
    let suite = Suite::start(Backend::Sqlite).await;
    evaluation_year(&suite, "2026", now_ms() + DAY).await;
    // Field 1 (a string in every request below) as invalid UTF-8, as a
    // varint (wrong wire type), and with a length past the end.
    let invalid_utf8 = vec![0x0a, 0x02, 0xff, 0xfe];
    let wrong_wire_type = prost_types::Duration {
        seconds: 5,
        nanos: 0,
    }
    .encode_to_vec();
    let truncated = vec![0x0a, 0x40, b'c'];
    // A principal every role row lets through, so the codec is what answers.
    let token = suite.token(
        "platform-a",
        &[
            Role::SurveyPlatform,
            Role::Office,
            Role::Service,
            Role::Unit,
        ],
        Some("siming"),
    );
    // The bytes are malformed for requests whose field 1 is a string.
    let pool = prost_reflect::DescriptorPool::decode(jixiao_proto::FILE_DESCRIPTOR_SET).unwrap();
    let methods: Vec<_> = jixiao_tests::rpc_methods()
        .into_iter()
        .filter(|(path, ..)| {
            let (service, method) = path[1..].rsplit_once('/').unwrap();
            let m = pool
                .get_service_by_name(service)
                .unwrap()
                .methods()
                .find(|m| m.name() == method)
                .unwrap();
            m.input()
                .get_field(1)
                .is_some_and(|f| f.kind() == prost_reflect::Kind::String && !f.is_list())
        })
        .collect();
    assert!(methods.len() > 70, "{} methods", methods.len());
    for bytes in [invalid_utf8, wrong_wire_type, truncated] {
        for (path, cs, _) in &methods {
            let status =
                jixiao_tests::call_raw(suite.authed(&token), path, *cs, bytes.clone()).await;
            assert_eq!(
                (
                    status.code(),
                    reason(&status).as_str(),
                    domain(&status).as_str()
                ),
                (Code::InvalidArgument, "MALFORMED_MESSAGE", "jixiao.host"),
                "{path} {bytes:?}: {}",
                status.message()
            );
        }
    }
    suite.stop().await;
}
