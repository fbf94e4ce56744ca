//! The inspections service end to end, through its gRPC interface, on
//! SQLite and PostgreSQL.

use std::time::Duration;

use jixiao_proto::{
    inspections::{
        ConfirmFindingRequest, ContestFindingRequest, CreateInspectionRequest,
        CreateSelfInspectionItemRequest, DecideContestRequest, Document, DocumentKind, Finding,
        FindingState, GetGroupAdjustmentsRequest, GetInspectionRequest, Inspection, InspectionKind,
        IssueDocumentRequest, ListDocumentsRequest, ListInspectionsRequest,
        ListOverdueRectificationsRequest, ListSelfInspectionItemsRequest, RecordSpotCheckRequest,
        RectificationState, ReportRectificationRequest, ReviewRectificationRequest,
        SelfInspectionItem, SpotCheckCase, StaffAction, VerifySelfInspectionItemRequest,
        WatchAdjustmentChangesRequest, inspections_service_client::InspectionsServiceClient,
    },
    plans::{
        CreateGroupRequest, CreateUnitRequest, Group, Phase, Scheme, Unit, UnitKind,
        UpdateSchemeRequest, WeightedKey,
    },
};
use jixiao_runtime::{Role, names};
use jixiao_testkit::{Authed, Backend, Suite, on_both_databases};
use jixiao_tests::{DAY, bad_fields, dec, evaluation_year, now_ms, reason, set_phase, ts};
use tonic::Code;

type Inspections = InspectionsServiceClient<Authed>;

fn inspector(suite: &Suite) -> Inspections {
    InspectionsServiceClient::new(suite.as_roles("inspector-li", &[Role::Inspector], None))
}

fn office(suite: &Suite) -> Inspections {
    InspectionsServiceClient::new(suite.office())
}

fn unit(suite: &Suite, id: &str) -> Inspections {
    InspectionsServiceClient::new(suite.unit(id))
}

fn finding(category: &str, deduction: &str) -> Finding {
    Finding {
        category: category.into(),
        description: format!("{category} observed"),
        deduction: dec(deduction),
        ..Default::default()
    }
}

async fn inspect(client: &mut Inspections, unit: &str, findings: Vec<Finding>) -> Inspection {
    client
        .create_inspection(CreateInspectionRequest {
            parent: "cycles/2026".into(),
            inspection: Some(Inspection {
                unit: format!("units/{unit}"),
                kind: InspectionKind::Covert as i32,
                inspect_time: ts(now_ms() - 3 * DAY),
                inspectors: vec!["李明".into(), "王芳".into()],
                place: "政务服务中心".into(),
                findings,
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .expect("record inspection")
        .into_inner()
}

async fn confirm(suite: &Suite, f: &Finding) -> Finding {
    office(suite)
        .confirm_finding(ConfirmFindingRequest {
            name: f.name.clone(),
        })
        .await
        .expect("confirm")
        .into_inner()
}

async fn item(client: &mut Inspections, unit: &str, item_type: &str) -> SelfInspectionItem {
    client
        .create_self_inspection_item(CreateSelfInspectionItemRequest {
            parent: "cycles/2026".into(),
            item: Some(SelfInspectionItem {
                unit: format!("units/{unit}"),
                item_type: item_type.into(),
                problem: "窗口人员迟到".into(),
                action_taken: "约谈并通报".into(),
                staff_actions: vec![StaffAction {
                    kind: "circulated_criticism".into(),
                    count: 2,
                }],
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .expect("self-inspection item")
        .into_inner()
}

async fn verify(suite: &Suite, item: &SelfInspectionItem, ok: bool) -> SelfInspectionItem {
    office(suite)
        .verify_self_inspection_item(VerifySelfInspectionItemRequest {
            name: item.name.clone(),
            verify: ok,
            note: if ok {
                String::new()
            } else {
                "证据不足".into()
            },
        })
        .await
        .expect("verify")
        .into_inner()
}

/// The fixture year plus a second group holding one unit, and a credit
/// table with larger items.
async fn year(suite: &Suite) {
    let mut plans = evaluation_year(suite, "2026", now_ms() + DAY).await;
    plans
        .create_unit(CreateUnitRequest {
            unit_id: "haicang".into(),
            unit: Some(Unit {
                display_name_zh: "海沧区人民政府".into(),
                kind: UnitKind::DistrictGovernment as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    plans
        .create_group(CreateGroupRequest {
            parent: "cycles/2026".into(),
            group_id: "pilot".into(),
            group: Some(Group {
                display_name: "试点".into(),
                units: vec!["units/haicang".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let credit = |k: &str, v: &str| WeightedKey {
        key: k.into(),
        value: dec(v),
    };
    plans
        .update_scheme(UpdateSchemeRequest {
            scheme: Some(Scheme {
                name: "cycles/2026/groups/districts/scheme".into(),
                credit_points: vec![
                    credit("major_problem", "3.0"),
                    credit("problem_found", "1.0"),
                ],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["credit_points".into()],
            }),
        })
        .await
        .expect("credit table");
    // Inspections happen during the year.
    set_phase(suite, "2026", Phase::Execution).await;
}

async fn adjustments_follow_the_lifecycle_and_the_cap(backend: Backend) {
    let suite = Suite::start(backend).await;
    year(&suite).await;
    let mut li = inspector(&suite);

    // siming: 4.0 confirmed, 2.3 upheld after a contest, 1.5 withdrawn, 9.9 never confirmed.
    let s = inspect(
        &mut li,
        "siming",
        vec![
            finding("absence", "4.0"),
            finding("overdue_processing", "2.3"),
            finding("conduct", "1.5"),
            finding("absence", "9.9"),
        ],
    )
    .await;
    assert!(s.findings.iter().all(|f| f.state() == FindingState::Draft));
    for f in &s.findings[..3] {
        confirm(&suite, f).await;
    }
    let mut siming = unit(&suite, "siming");
    for f in &s.findings[1..3] {
        let contested = siming
            .contest_finding(ContestFindingRequest {
                name: f.name.clone(),
                reason: "当日系统故障".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(contested.state(), FindingState::Contested);
    }
    let upheld = office(&suite)
        .decide_contest(DecideContestRequest {
            name: s.findings[1].name.clone(),
            uphold: true,
            note: "理由不成立".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let withdrawn = office(&suite)
        .decide_contest(DecideContestRequest {
            name: s.findings[2].name.clone(),
            uphold: false,
            note: "情况属实，撤销".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (upheld.state(), withdrawn.state()),
        (FindingState::Upheld, FindingState::Withdrawn)
    );
    for _ in 0..2 {
        let i = item(&mut siming, "siming", "major_problem").await;
        assert_eq!(verify(&suite, &i, true).await.credit, dec("3"));
    }
    let rejected = item(&mut siming, "siming", "problem_found").await;
    assert!(verify(&suite, &rejected, false).await.credit.is_none());

    // huli: 5.0 against credits 7.0; jimei: 8.0 against 1.0.
    let h = inspect(&mut li, "huli", vec![finding("absence", "5.0")]).await;
    confirm(&suite, &h.findings[0]).await;
    let mut huli = unit(&suite, "huli");
    for t in ["major_problem", "major_problem", "problem_found"] {
        let i = item(&mut huli, "huli", t).await;
        verify(&suite, &i, true).await;
    }
    let j = inspect(
        &mut li,
        "jimei",
        vec![finding("absence", "5.0"), finding("incomplete_file", "3.0")],
    )
    .await;
    for f in &j.findings {
        confirm(&suite, f).await;
    }
    let mut jimei = unit(&suite, "jimei");
    let i = item(&mut jimei, "jimei", "problem_found").await;
    verify(&suite, &i, true).await;

    let mut evaluator =
        InspectionsServiceClient::new(suite.as_roles("eval-1", &[Role::Evaluator], None));
    let table = evaluator
        .get_group_adjustments(GetGroupAdjustmentsRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let rows: Vec<_> = table
        .units
        .iter()
        .map(|u| {
            (
                u.unit.as_str(),
                u.deductions.clone().unwrap().value,
                u.credits.clone().unwrap().value,
                u.adjustment.clone().unwrap().value,
            )
        })
        .collect();
    let expect = |u: &'static str, d: &str, c: &str, a: &str| {
        (u, d.to_string(), c.to_string(), a.to_string())
    };
    assert_eq!(
        rows,
        [
            expect("units/siming", "6.3", "6", "-0.3"),
            expect("units/huli", "5", "7", "0"),
            expect("units/jimei", "8", "1", "-5"),
        ]
    );
    assert_eq!(
        table.units[0].findings,
        [s.findings[0].name.clone(), s.findings[1].name.clone()]
    );
    assert_eq!(table.units[0].items.len(), 2);
    let pilot = evaluator
        .get_group_adjustments(GetGroupAdjustmentsRequest {
            group: "cycles/2026/groups/pilot".into(),
            known_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            pilot.units[0].deductions.clone().unwrap().value.as_str(),
            pilot.units[0].adjustment.clone().unwrap().value.as_str()
        ),
        ("0", "0")
    );
    suite.stop().await;
}

async fn roles_and_units_are_enforced(backend: Backend) {
    let suite = Suite::start(backend).await;
    year(&suite).await;
    let mut li = inspector(&suite);
    let s = inspect(
        &mut li,
        "siming",
        vec![finding("absence", "2.0"), finding("conduct", "1.0")],
    )
    .await;
    let mut siming = unit(&suite, "siming");
    let mut huli = unit(&suite, "huli");

    // A unit cannot confirm its own finding, nor record an inspection.
    let err = siming
        .confirm_finding(ConfirmFindingRequest {
            name: s.findings[0].name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::PermissionDenied, "PERMISSION_DENIED")
    );
    let err = siming
        .create_inspection(CreateInspectionRequest {
            parent: "cycles/2026".into(),
            inspection: Some(Inspection::default()),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Nor can an inspector confirm, or verify credits.
    let err = li
        .confirm_finding(ConfirmFindingRequest {
            name: s.findings[0].name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let own_item = item(&mut siming, "siming", "problem_found").await;
    let err = li
        .verify_self_inspection_item(VerifySelfInspectionItemRequest {
            name: own_item.name.clone(),
            verify: true,
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // A unit reports self-inspection only for itself.
    let err = huli
        .create_self_inspection_item(CreateSelfInspectionItemRequest {
            parent: "cycles/2026".into(),
            item: Some(SelfInspectionItem {
                unit: "units/siming".into(),
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A draft cannot be contested; another unit cannot contest at all.
    let err = siming
        .contest_finding(ContestFindingRequest {
            name: s.findings[0].name.clone(),
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "INVALID_STATE")
    );
    confirm(&suite, &s.findings[0]).await;
    let err = huli
        .contest_finding(ContestFindingRequest {
            name: s.findings[0].name.clone(),
            reason: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A unit sees its own records only, and no draft findings.
    let seen = siming
        .get_inspection(GetInspectionRequest {
            name: s.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        seen.findings
            .iter()
            .map(|f| f.name.clone())
            .collect::<Vec<_>>(),
        [s.findings[0].name.clone()]
    );
    let err = huli
        .get_inspection(GetInspectionRequest {
            name: s.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let listed = huli
        .list_inspections(ListInspectionsRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.inspections.is_empty());
    let err = huli
        .list_inspections(ListInspectionsRequest {
            parent: "cycles/2026".into(),
            unit: "units/siming".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let items = huli
        .list_self_inspection_items(ListSelfInspectionItemsRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(items.items.is_empty());
    let err = huli
        .get_group_adjustments(GetGroupAdjustmentsRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let all = li
        .list_inspections(ListInspectionsRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        all.inspections[0].findings.len(),
        2,
        "inspectors see drafts"
    );
    suite.stop().await;
}

async fn bad_records_name_every_field(backend: Backend) {
    let suite = Suite::start(backend).await;
    year(&suite).await;
    let err = inspector(&suite)
        .create_inspection(CreateInspectionRequest {
            parent: "cycles/2026".into(),
            inspection: Some(Inspection {
                unit: "units/nowhere".into(),
                findings: vec![Finding {
                    deduction: dec("-1"),
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
            "inspection.kind",
            "inspection.inspect_time",
            "inspection.inspectors",
            "inspection.findings[0].category",
            "inspection.findings[0].description",
            "inspection.findings[0].deduction",
            "inspection.unit",
        ]
    );
    let err = unit(&suite, "huli")
        .create_self_inspection_item(CreateSelfInspectionItemRequest {
            parent: "cycles/2026".into(),
            item: Some(SelfInspectionItem {
                unit: "units/huli".into(),
                item_type: "bonus".into(),
                staff_actions: vec![StaffAction {
                    kind: "fired".into(),
                    count: 0,
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
            "item.item_type",
            "item.problem",
            "item.action_taken",
            "item.staff_actions[0].kind",
            "item.staff_actions[0].count"
        ]
    );
    let listed = office(&suite)
        .list_inspections(ListInspectionsRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.inspections.is_empty());
    suite.stop().await;
}

async fn spot_checks_rectification_and_documents(backend: Backend) {
    let suite = Suite::start(backend).await;
    year(&suite).await;
    let mut li = inspector(&suite);
    let check = li
        .record_spot_check(RecordSpotCheckRequest {
            parent: "cycles/2026".into(),
            unit: "units/jimei".into(),
            inspect_time: ts(now_ms() - DAY),
            inspectors: vec!["李明".into()],
            cases: vec![
                SpotCheckCase {
                    case_reference: "XK-2026-0012".into(),
                    legal_limit_days: 20,
                    actual_days: 26,
                    file_complete: false,
                },
                SpotCheckCase {
                    case_reference: "XK-2026-0013".into(),
                    legal_limit_days: 20,
                    actual_days: 12,
                    file_complete: true,
                },
            ],
            request_id: "spot-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(check.kind(), InspectionKind::SpotCheck);
    let found: Vec<_> = check
        .findings
        .iter()
        .map(|f| (f.category.as_str(), f.deduction.clone().unwrap().value))
        .collect();
    assert_eq!(
        found,
        [
            ("overdue_processing", "0.5".to_string()),
            ("incomplete_file", "0.3".to_string())
        ]
    );

    // A finding to rectify by yesterday is overdue until reported.
    let mut due = finding("absence", "1.0");
    due.rectification_due_time = ts(now_ms() - DAY);
    let ins = inspect(&mut li, "jimei", vec![due]).await;
    let f = confirm(&suite, &ins.findings[0]).await;
    assert_eq!(f.rectification_state(), RectificationState::Required);
    let overdue = |c: Inspections| async move {
        let mut c = c;
        c.list_overdue_rectifications(ListOverdueRectificationsRequest {
            parent: "cycles/2026".into(),
            unit: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .findings
        .len()
    };
    assert_eq!(overdue(office(&suite)).await, 1);
    assert_eq!(overdue(unit(&suite, "jimei")).await, 1);
    assert_eq!(
        overdue(unit(&suite, "huli")).await,
        0,
        "another unit's overdue items stay hidden"
    );
    let mut jimei = unit(&suite, "jimei");
    let reported = jimei
        .report_rectification(ReportRectificationRequest {
            name: f.name.clone(),
            report: "已整改，建立考勤制度".into(),
            evidence: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reported.rectification_state(), RectificationState::Reported);
    assert_eq!(overdue(office(&suite)).await, 0);
    let err = office(&suite)
        .review_rectification(ReviewRectificationRequest {
            name: f.name.clone(),
            accept: false,
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["note"]);
    office(&suite)
        .review_rectification(ReviewRectificationRequest {
            name: f.name.clone(),
            accept: false,
            note: "缺少佐证".into(),
        })
        .await
        .unwrap();
    assert_eq!(overdue(office(&suite)).await, 1, "sent back, still overdue");
    jimei
        .report_rectification(ReportRectificationRequest {
            name: f.name.clone(),
            report: "补充考勤记录".into(),
            evidence: vec![],
        })
        .await
        .unwrap();
    let accepted = office(&suite)
        .review_rectification(ReviewRectificationRequest {
            name: f.name.clone(),
            accept: true,
            note: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.rectification_state(), RectificationState::Accepted);

    // Documents reach their unit only.
    let doc = li
        .issue_document(IssueDocumentRequest {
            parent: "cycles/2026".into(),
            document: Some(Document {
                kind: DocumentKind::EfficiencyRecommendation as i32,
                unit: "units/jimei".into(),
                title: "效能建议书".into(),
                body: "请加强审批时限管理。".into(),
                findings: vec![check.findings[0].name.clone()],
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let err = li
        .issue_document(IssueDocumentRequest {
            parent: "cycles/2026".into(),
            document: Some(Document {
                kind: DocumentKind::Bulletin as i32,
                unit: "units/huli".into(),
                title: "简报".into(),
                body: "x".into(),
                findings: vec![check.findings[0].name.clone()],
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["document.findings[0]"]);
    let docs = jimei
        .list_documents(ListDocumentsRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(docs.documents, [doc]);
    let none = unit(&suite, "huli")
        .list_documents(ListDocumentsRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.documents.is_empty());
    suite.stop().await;
}

async fn adjustment_changes_are_streamed(backend: Backend) {
    let suite = Suite::start(backend).await;
    year(&suite).await;
    let mut watcher =
        InspectionsServiceClient::new(suite.as_roles("aggregator", &[Role::Service], None));
    let mut stream = watcher
        .watch_adjustment_changes(WatchAdjustmentChangesRequest {
            cycle: "cycles/2026".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let ins = inspect(
        &mut inspector(&suite),
        "huli",
        vec![finding("absence", "1.0")],
    )
    .await;
    confirm(&suite, &ins.findings[0]).await;
    let change = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a change")
        .unwrap()
        .unwrap();
    assert_eq!(
        (change.group.as_str(), change.revision),
        ("cycles/2026/groups/districts", 1)
    );
    suite.stop().await;
}

/// Inspections, spot checks, items and documents are named by their
/// creator where it gives an id (AIP-133); without one the name is derived
/// from the caller and its request id, so a retry names the same resource,
/// two callers never collide, and the same requests name the same
/// resources on every run.
async fn creators_name_what_they_create(backend: Backend) {
    let suite = Suite::start(backend).await;
    year(&suite).await;
    let mut li = inspector(&suite);
    // A retry is the same request: the same time, not a new now.
    let when = now_ms() - DAY;
    let visit = |id: &str, request_id: &str, place: &str| CreateInspectionRequest {
        parent: "cycles/2026".into(),
        inspection: Some(Inspection {
            unit: "units/siming".into(),
            kind: InspectionKind::Open as i32,
            inspect_time: ts(when),
            inspectors: vec!["李明".into()],
            place: place.into(),
            findings: vec![finding("absence", "1.0"), finding("conduct", "0.5")],
            ..Default::default()
        }),
        request_id: request_id.into(),
        inspection_id: id.into(),
    };
    let create = async |client: &mut Inspections, r: CreateInspectionRequest| {
        client.create_inspection(r).await.map(|r| r.into_inner())
    };

    // The caller's name, and its findings named by their position.
    let named = create(&mut li, visit("siming-visit-1", "visit-1", "政务服务中心"))
        .await
        .expect("a named inspection");
    assert_eq!(named.name, "cycles/2026/inspections/siming-visit-1");
    let findings: Vec<&str> = named.findings.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        findings,
        [
            "cycles/2026/inspections/siming-visit-1/findings/f1",
            "cycles/2026/inspections/siming-visit-1/findings/f2"
        ]
    );
    // The same request again gets the first answer.
    let again = create(&mut li, visit("siming-visit-1", "visit-1", "政务服务中心"))
        .await
        .expect("a retry");
    assert_eq!(again, named);
    // The same request id with other content is refused as reused.
    let err = create(&mut li, visit("siming-visit-1", "visit-1", "另一处"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "REQUEST_ID_REUSED")
    );
    // The same id for another request (or none) already exists.
    for request_id in ["visit-2", ""] {
        let err = create(&mut li, visit("siming-visit-1", request_id, "另一处"))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), reason(&err).as_str()),
            (Code::AlreadyExists, "ALREADY_EXISTS"),
            "{err:?}"
        );
    }
    // Bad ids, and ids of the server's own form, name the field.
    let server_form = names::derived_id("insp", "someone", "r");
    for bad in ["Siming-1", "-visit", "a/b", &"x".repeat(64), &server_form] {
        let err = create(&mut li, visit(bad, "", "x")).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert_eq!(bad_fields(&err), ["inspection_id"], "{bad}");
    }

    // Without an id: derived from the caller and the request id, so two
    // principals sending the same request id do not collide, and a retry
    // names the same inspection.
    let mut office = office(&suite);
    let by_li = create(&mut li, visit("", "shared-1", "p")).await.unwrap();
    let by_office = create(&mut office, visit("", "shared-1", "p"))
        .await
        .unwrap();
    assert_eq!(
        by_li.name,
        format!(
            "cycles/2026/inspections/{}",
            names::derived_id("insp", "inspector-li", "shared-1")
        )
    );
    assert_eq!(
        by_office.name,
        format!(
            "cycles/2026/inspections/{}",
            names::derived_id("insp", "office", "shared-1")
        )
    );
    assert_ne!(by_li.name, by_office.name);
    let retried = create(&mut li, visit("", "shared-1", "p")).await.unwrap();
    assert_eq!(retried.name, by_li.name);
    // With no request id either, each create gets a fresh random name.
    let a = create(&mut li, visit("", "", "p")).await.unwrap();
    let b = create(&mut li, visit("", "", "p")).await.unwrap();
    assert_ne!(a.name, b.name);
    for n in [&a.name, &b.name, &by_li.name] {
        let id = n.strip_prefix("cycles/2026/inspections/insp-").unwrap();
        assert!(
            id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()),
            "{n}"
        );
    }

    // A spot check is an inspection: it shares the inspections' ids.
    let spot = |id: &str, request_id: &str| RecordSpotCheckRequest {
        parent: "cycles/2026".into(),
        unit: "units/jimei".into(),
        inspect_time: ts(when),
        inspectors: vec!["李明".into()],
        cases: vec![SpotCheckCase {
            case_reference: "XK-2026-0100".into(),
            legal_limit_days: 20,
            actual_days: 26,
            file_complete: true,
        }],
        request_id: request_id.into(),
        inspection_id: id.into(),
    };
    let checked = li
        .record_spot_check(spot("jimei-spot-1", "spot-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.name, "cycles/2026/inspections/jimei-spot-1");
    assert_eq!(
        checked.findings[0].name,
        "cycles/2026/inspections/jimei-spot-1/findings/f1"
    );
    let err = li
        .record_spot_check(spot("siming-visit-1", "spot-2"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = li
        .record_spot_check(spot("Jimei", "spot-3"))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["inspection_id"]);

    // Self-inspection items.
    let report = |unit: &str, id: &str, request_id: &str| CreateSelfInspectionItemRequest {
        parent: "cycles/2026".into(),
        item: Some(SelfInspectionItem {
            unit: format!("units/{unit}"),
            item_type: "problem_found".into(),
            problem: "窗口人员迟到".into(),
            action_taken: "约谈并通报".into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
        item_id: id.into(),
    };
    let mut siming = unit(&suite, "siming");
    let mut huli = unit(&suite, "huli");
    let item = siming
        .create_self_inspection_item(report("siming", "siming-self-1", "self-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(item.name, "cycles/2026/selfInspectionItems/siming-self-1");
    let again = siming
        .create_self_inspection_item(report("siming", "siming-self-1", "self-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, item);
    let err = siming
        .create_self_inspection_item(report("siming", "siming-self-1", "self-2"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::AlreadyExists, "ALREADY_EXISTS")
    );
    // Another unit cannot take the name either.
    let err = huli
        .create_self_inspection_item(report("huli", "siming-self-1", "self-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = siming
        .create_self_inspection_item(report("siming", "self_1!", "self-3"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), bad_fields(&err)),
        (Code::InvalidArgument, vec!["item_id".to_string()])
    );
    let a = siming
        .create_self_inspection_item(report("siming", "", "self-4"))
        .await
        .unwrap()
        .into_inner();
    let b = huli
        .create_self_inspection_item(report("huli", "", "self-4"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (a.name, b.name),
        (
            format!(
                "cycles/2026/selfInspectionItems/{}",
                names::derived_id("item", "siming", "self-4")
            ),
            format!(
                "cycles/2026/selfInspectionItems/{}",
                names::derived_id("item", "huli", "self-4")
            )
        )
    );

    // Documents.
    let issue = |id: &str, request_id: &str| IssueDocumentRequest {
        parent: "cycles/2026".into(),
        document: Some(Document {
            kind: DocumentKind::Bulletin as i32,
            unit: "units/siming".into(),
            title: "效能工作简报".into(),
            body: "本月察访情况。".into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
        document_id: id.into(),
    };
    let doc = li
        .issue_document(issue("2026-bulletin-1", "doc-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(doc.name, "cycles/2026/documents/2026-bulletin-1");
    let err = office
        .issue_document(issue("2026-bulletin-1", "doc-1"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::AlreadyExists, "ALREADY_EXISTS"),
        "another caller's request id is its own: the id is taken"
    );
    let err = li
        .issue_document(issue("Bulletin", "doc-2"))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["document_id"]);

    // Nothing refused was stored: 1 named + 2 derived + 2 random visits and
    // one spot check.
    let listed = office
        .list_inspections(ListInspectionsRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.inspections.len(), 6);
    suite.stop().await;
}

on_both_databases!(
    adjustments_follow_the_lifecycle_and_the_cap,
    roles_and_units_are_enforced,
    bad_records_name_every_field,
    spot_checks_rectification_and_documents,
    adjustment_changes_are_streamed,
    creators_name_what_they_create,
);
