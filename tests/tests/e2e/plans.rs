//! The plans service end to end, through its gRPC interface, on SQLite and
//! PostgreSQL.

use jixiao_proto::{
    plans::{
        AmendPlanRequest, ApprovePlanRequest, CheckWriteWindowRequest, CreateCycleRequest,
        CreateNoticeRequest, CreatePlanRequest, Cycle, DiffPlanVersionsRequest, GetPlanRequest,
        GetSchemeRequest, GetTimelinessReportRequest, Goal, GrantLockExceptionRequest,
        ListCyclesRequest, ListLockExceptionsRequest, ListNoticesRequest, ListPlanVersionsRequest,
        ListPlansRequest, LockException, LockScope, Milestone, Notice, Phase, Plan, PlanState,
        ReplaceFrameworkRequest, ReturnPlanRequest, Scheme, SetCyclePhaseRequest,
        SubmitPlanRequest, Target, UpdatePlanRequest, UpdateSchemeRequest, VersionOutcome,
        plans_service_client::PlansServiceClient,
    },
    types::ListAuditRecordsRequest,
};
use jixiao_runtime::{Role, names};
use jixiao_testkit::{Backend, Suite, on_both_databases};
use jixiao_tests::{DAY, Plans, bad_fields, dec, evaluation_year, framework, now_ms, reason, ts};
use prost_types::FieldMask;
use tonic::Code;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

fn target(code: &str, value: &str) -> Target {
    Target {
        indicator: code.into(),
        value: dec(value),
        assigned: false,
    }
}

/// A complete set of targets for the fixture framework.
fn full_targets(gdp: &str) -> Vec<Target> {
    vec![
        target("GDP_GROWTH", gdp),
        target("ENERGY_INTENSITY", "0.45"),
        target("APPROVAL_ONLINE_RATE", "95"),
        target("FOREIGN_TRADE", "300"),
        target("INVESTMENT", "1200"),
    ]
}

fn goal(title: &str, due_ms: i64) -> Goal {
    Goal {
        title: title.into(),
        description: String::new(),
        milestones: vec![Milestone {
            description: "完成立项".into(),
            due_time: ts(due_ms),
        }],
    }
}

async fn create_plan(unit: &mut Plans, cycle: &str, unit_id: &str) -> Plan {
    unit.create_plan(CreatePlanRequest {
        parent: format!("cycles/{cycle}"),
        plan: Some(Plan {
            unit: format!("units/{unit_id}"),
            ..Default::default()
        }),
        request_id: String::new(),
    })
    .await
    .expect("create plan")
    .into_inner()
}

async fn set_content(
    unit: &mut Plans,
    plan: &Plan,
    targets: Vec<Target>,
    goals: Vec<Goal>,
) -> Plan {
    unit.update_plan(UpdatePlanRequest {
        plan: Some(Plan {
            name: plan.name.clone(),
            etag: plan.etag.clone(),
            targets,
            goals,
            ..Default::default()
        }),
        update_mask: mask(&["targets", "goals"]),
    })
    .await
    .expect("update plan")
    .into_inner()
}

async fn submit(unit: &mut Plans, plan: &Plan) -> Result<Plan, tonic::Status> {
    unit.submit_plan(SubmitPlanRequest {
        name: plan.name.clone(),
        etag: plan.etag.clone(),
        request_id: String::new(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn plan_returned_resubmitted_diffed_approved_and_amended(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + 30 * DAY).await;
    let mut siming = PlansServiceClient::new(suite.unit("siming"));

    let plan = create_plan(&mut siming, "2026", "siming").await;
    assert_eq!(plan.state(), PlanState::Draft);
    let due = now_ms() + 90 * DAY;
    let plan = set_content(
        &mut siming,
        &plan,
        full_targets("6.5"),
        vec![goal("老旧小区改造", due)],
    )
    .await;
    let v1 = submit(&mut siming, &plan).await.expect("submit v1");
    assert_eq!(
        (v1.state(), v1.version, v1.late),
        (PlanState::Submitted, 1, false)
    );

    // A return needs a reason.
    let err = office
        .return_plan(ReturnPlanRequest {
            name: v1.name.clone(),
            etag: v1.etag.clone(),
            reason: " ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), bad_fields(&err)),
        (Code::InvalidArgument, vec!["reason".to_string()])
    );
    let returned = office
        .return_plan(ReturnPlanRequest {
            name: v1.name.clone(),
            etag: v1.etag.clone(),
            reason: "GDP目标偏低".into(),
        })
        .await
        .expect("return")
        .into_inner();
    assert_eq!(
        (returned.state(), returned.return_reason.as_str()),
        (PlanState::Returned, "GDP目标偏低")
    );

    // Revised and resubmitted as version 2.
    let revised = set_content(
        &mut siming,
        &returned,
        full_targets("7.0"),
        vec![goal("老旧小区改造", due + DAY), goal("智慧停车", due)],
    )
    .await;
    let v2 = submit(&mut siming, &revised).await.expect("submit v2");
    assert_eq!((v2.version, v2.return_reason.as_str()), (2, ""));

    let diff = siming
        .diff_plan_versions(DiffPlanVersionsRequest {
            name: v2.name.clone(),
            from_version: 1,
            to_version: 2,
        })
        .await
        .expect("diff")
        .into_inner();
    let changes: Vec<_> = diff
        .changes
        .iter()
        .map(|c| (c.field.as_str(), c.old_value.as_str(), c.new_value.as_str()))
        .collect();
    let (old_due, new_due) = (due.to_string(), (due + DAY).to_string());
    assert_eq!(
        changes,
        [
            ("targets[GDP_GROWTH].value", "6.5", "7"),
            (
                "goals[0].milestones[0].due_time",
                old_due.as_str(),
                new_due.as_str()
            ),
            ("goals[1].title", "", "智慧停车"),
            ("goals[1].milestones[0].description", "", "完成立项"),
            ("goals[1].milestones[0].due_time", "", old_due.as_str()),
        ]
    );

    let approved = office
        .approve_plan(ApprovePlanRequest {
            name: v2.name.clone(),
            etag: v2.etag.clone(),
            comment: "同意".into(),
        })
        .await
        .expect("approve")
        .into_inner();
    assert_eq!(
        (approved.state(), approved.approved_version),
        (PlanState::Approved, 2)
    );

    // An approved plan is locked.
    let err = siming
        .update_plan(UpdatePlanRequest {
            plan: Some(Plan {
                name: approved.name.clone(),
                etag: approved.etag.clone(),
                targets: full_targets("8"),
                ..Default::default()
            }),
            update_mask: mask(&["targets"]),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "INVALID_STATE")
    );

    // An amendment reopens it while version 2 stays in force.
    let amending = siming
        .amend_plan(AmendPlanRequest {
            name: approved.name.clone(),
            etag: approved.etag.clone(),
            reason: "项目调整".into(),
        })
        .await
        .expect("amend")
        .into_inner();
    assert_eq!(
        (
            amending.state(),
            amending.amending,
            amending.approved_version
        ),
        (PlanState::Draft, true, 2)
    );
    let amended = set_content(
        &mut siming,
        &amending,
        full_targets("7.2"),
        vec![goal("老旧小区改造", due)],
    )
    .await;
    let v3 = submit(&mut siming, &amended)
        .await
        .expect("submit amendment");
    assert_eq!((v3.version, v3.approved_version), (3, 2));
    let v3 = office
        .approve_plan(ApprovePlanRequest {
            name: v3.name.clone(),
            etag: v3.etag.clone(),
            comment: String::new(),
        })
        .await
        .expect("approve amendment")
        .into_inner();
    assert_eq!(v3.approved_version, 3);

    let versions = siming
        .list_plan_versions(ListPlanVersionsRequest {
            parent: v3.name.clone(),
            ..Default::default()
        })
        .await
        .expect("versions")
        .into_inner()
        .versions;
    let outcomes: Vec<_> = versions
        .iter()
        .map(|v| (v.version, v.outcome(), v.amendment))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, VersionOutcome::Returned, false),
            (2, VersionOutcome::Superseded, false),
            (3, VersionOutcome::Approved, true),
        ]
    );
    assert_eq!(versions[0].decision_note, "GDP目标偏低");
    assert_eq!(versions[2].amendment_reason, "项目调整");
    suite.stop().await;
}

async fn late_plan_refused_then_accepted_under_an_exception(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() - DAY).await;
    let mut huli = PlansServiceClient::new(suite.unit("huli"));

    // Past the deadline even a draft cannot be started.
    let err = huli
        .create_plan(CreatePlanRequest {
            parent: "cycles/2026".into(),
            plan: Some(Plan {
                unit: "units/huli".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "PLAN_DEADLINE_PASSED")
    );
    let window = huli
        .check_write_window(CheckWriteWindowRequest {
            cycle: "cycles/2026".into(),
            unit: "units/huli".into(),
            scope: LockScope::Plan as i32,
        })
        .await
        .expect("window")
        .into_inner();
    assert_eq!(
        (window.open, window.closed_reason.as_str()),
        (false, "PLAN_DEADLINE_PASSED")
    );

    // An exception needs a future expiry and a reason; all bad fields at once.
    let err = office
        .grant_lock_exception(GrantLockExceptionRequest {
            parent: "cycles/2026".into(),
            lock_exception: Some(LockException {
                unit: "units/huli".into(),
                expire_time: ts(now_ms() - 1),
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
            "lock_exception.scope",
            "lock_exception.expire_time",
            "lock_exception.reason"
        ]
    );
    let granted = office
        .grant_lock_exception(GrantLockExceptionRequest {
            parent: "cycles/2026".into(),
            lock_exception: Some(LockException {
                unit: "units/huli".into(),
                scope: LockScope::Plan as i32,
                expire_time: ts(now_ms() + DAY),
                reason: "系统故障补报".into(),
                ..Default::default()
            }),
            request_id: "grant-1".into(),
            ..Default::default()
        })
        .await
        .expect("grant")
        .into_inner();

    let plan = create_plan(&mut huli, "2026", "huli").await;
    let plan = set_content(&mut huli, &plan, full_targets("6"), vec![]).await;
    let submitted = submit(&mut huli, &plan).await.expect("late submit");
    assert!(
        submitted.late,
        "a submission under an exception is marked late"
    );

    let window = huli
        .check_write_window(CheckWriteWindowRequest {
            cycle: "cycles/2026".into(),
            unit: "units/huli".into(),
            scope: LockScope::Plan as i32,
        })
        .await
        .expect("window")
        .into_inner();
    assert_eq!(
        (window.open, window.late, window.lock_exception.as_str()),
        (true, true, granted.name.as_str())
    );

    // A unit sees its own exceptions only.
    let own = huli
        .list_lock_exceptions(ListLockExceptionsRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .expect("own exceptions")
        .into_inner();
    assert_eq!(own.lock_exceptions.len(), 1);
    let err = PlansServiceClient::new(suite.unit("siming"))
        .list_lock_exceptions(ListLockExceptionsRequest {
            parent: "cycles/2026".into(),
            unit: "units/huli".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let report = office
        .get_timeliness_report(GetTimelinessReportRequest {
            cycle: "cycles/2026".into(),
        })
        .await
        .expect("timeliness")
        .into_inner();
    let rows: Vec<_> = report
        .units
        .iter()
        .map(|u| (u.unit.as_str(), u.late, u.missing))
        .collect();
    assert_eq!(
        rows,
        [
            ("units/huli", true, false),
            ("units/jimei", false, true),
            ("units/siming", false, true)
        ]
    );
    suite.stop().await;
}

async fn invalid_input_names_every_bad_field_and_stores_nothing(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let mut jimei = PlansServiceClient::new(suite.unit("jimei"));
    let plan = create_plan(&mut jimei, "2026", "jimei").await;

    // Drafts are checked at entry: unknown indicators and impossible values.
    let err = jimei
        .update_plan(UpdatePlanRequest {
            plan: Some(Plan {
                name: plan.name.clone(),
                etag: plan.etag.clone(),
                targets: vec![
                    target("GDP_GROWTH", "45"),
                    target("NO_SUCH", "1"),
                    target("ENERGY_INTENSITY", "abc"),
                ],
                goals: vec![Goal {
                    title: String::new(),
                    milestones: vec![Milestone::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            update_mask: mask(&["targets", "goals"]),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&err),
        [
            "plan.targets[0].value",
            "plan.targets[1].indicator",
            "plan.targets[2].value",
            "plan.goals[0].title",
            "plan.goals[0].milestones[0].description",
            "plan.goals[0].milestones[0].due_time",
        ]
    );

    // Submission demands a complete plan; nothing changes when refused.
    let partial = set_content(&mut jimei, &plan, vec![target("GDP_GROWTH", "6")], vec![]).await;
    let err = submit(&mut jimei, &partial).await.unwrap_err();
    assert_eq!(bad_fields(&err), ["plan.targets"; 4]);
    let details = tonic_types::StatusExt::get_error_details(&err);
    let missing: Vec<_> = details
        .bad_request()
        .unwrap()
        .field_violations
        .iter()
        .map(|v| v.description.clone())
        .collect();
    assert_eq!(
        missing,
        [
            "missing a target for indicator ENERGY_INTENSITY",
            "missing a target for indicator APPROVAL_ONLINE_RATE",
            "missing a target for indicator FOREIGN_TRADE",
            "missing a target for indicator INVESTMENT",
        ]
    );
    let stored = jimei
        .get_plan(GetPlanRequest {
            name: plan.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (stored.state(), stored.version, stored.etag.as_str()),
        (PlanState::Draft, 0, partial.etag.as_str())
    );

    // A stale etag is refused.
    let err = submit(&mut jimei, &plan).await.unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::Aborted, "ETAG_MISMATCH")
    );

    // Weights that do not add up to 60.
    let mut indicators = framework();
    indicators[0].weight = dec("25");
    indicators[1].provider = "units/nobody".into();
    let err = office
        .replace_framework(ReplaceFrameworkRequest {
            name: "cycles/2026/groups/districts/framework".into(),
            indicators: indicators.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["indicators[1].provider"]);
    indicators[1].provider = "units/stats".into();
    let err = office
        .replace_framework(ReplaceFrameworkRequest {
            name: "cycles/2026/groups/districts/framework".into(),
            indicators,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["indicators"]);
    assert!(err.message().contains("add up to 65"), "{}", err.message());

    // Scheme maxima must add up to 100.
    let err = office
        .update_scheme(UpdateSchemeRequest {
            scheme: Some(Scheme {
                name: "cycles/2026/groups/districts/scheme".into(),
                survey_max: dec("35"),
                ..Default::default()
            }),
            update_mask: mask(&["survey_max"]),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["scheme.indicator_max"]);
    let scheme = office
        .get_scheme(GetSchemeRequest {
            name: "cycles/2026/groups/districts/scheme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((scheme.survey_max, scheme.min_sample), (dec("30"), 30));

    // Cycles: every bad field at once.
    let err = office
        .create_cycle(CreateCycleRequest {
            cycle_id: "Bad Id".into(),
            cycle: Some(Cycle {
                year: 1900,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["cycle_id", "cycle.year", "cycle.title"]);
    suite.stop().await;
}

async fn roles_and_units_are_enforced(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let mut siming = PlansServiceClient::new(suite.unit("siming"));
    let mut huli = PlansServiceClient::new(suite.unit("huli"));
    let plan = create_plan(&mut siming, "2026", "siming").await;
    let plan = set_content(&mut siming, &plan, full_targets("6"), vec![]).await;

    // Another unit can neither read nor write it, nor create it.
    for err in [
        huli.get_plan(GetPlanRequest {
            name: plan.name.clone(),
        })
        .await
        .unwrap_err(),
        huli.update_plan(UpdatePlanRequest {
            plan: Some(Plan {
                name: plan.name.clone(),
                targets: full_targets("1"),
                ..Default::default()
            }),
            update_mask: mask(&["targets"]),
        })
        .await
        .unwrap_err(),
        huli.submit_plan(SubmitPlanRequest {
            name: plan.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        huli.create_plan(CreatePlanRequest {
            parent: "cycles/2026".into(),
            plan: Some(Plan {
                unit: "units/jimei".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err(),
        huli.list_plan_versions(ListPlanVersionsRequest {
            parent: plan.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        huli.list_audit_records(ListAuditRecordsRequest {
            resource_prefix: plan.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
    ] {
        assert_eq!(
            (err.code(), reason(&err).as_str()),
            (Code::PermissionDenied, "PERMISSION_DENIED"),
            "{err:?}"
        );
    }

    // A unit lists only its own plan.
    let listed = huli
        .list_plans(ListPlansRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.plans.is_empty());
    let listed = siming
        .list_plans(ListPlansRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.plans.len(), 1);

    // A unit cannot approve its own plan, nor do office work.
    let submitted = submit(&mut siming, &plan).await.unwrap();
    let err = siming
        .approve_plan(ApprovePlanRequest {
            name: submitted.name.clone(),
            etag: submitted.etag.clone(),
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = siming
        .set_cycle_phase(SetCyclePhaseRequest {
            name: "cycles/2026".into(),
            phase: Phase::Execution as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // The office edits no unit's plan; a provider or viewer reads none.
    let err = office
        .update_plan(UpdatePlanRequest {
            plan: Some(Plan {
                name: plan.name.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["goals"]),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    for roles in [
        &[Role::Provider][..],
        &[Role::Viewer],
        &[Role::SurveyPlatform],
        &[Role::Inspector],
    ] {
        let mut other = PlansServiceClient::new(suite.as_roles("someone", roles, Some("stats")));
        let err = other
            .get_plan(GetPlanRequest {
                name: plan.name.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{roles:?}");
    }
    // An evaluator reads every plan.
    let mut evaluator = PlansServiceClient::new(suite.as_roles("eval-1", &[Role::Evaluator], None));
    evaluator
        .get_plan(GetPlanRequest {
            name: plan.name.clone(),
        })
        .await
        .expect("evaluator reads");

    // No token, or a forged one: UNAUTHENTICATED.
    let mut anonymous = PlansServiceClient::new(suite.anonymous());
    let err = anonymous
        .list_cycles(ListCyclesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::Unauthenticated, "UNAUTHENTICATED")
    );
    let forged = jixiao_runtime::TokenKey::from_hex(&jixiao_runtime::TokenKey::generate_hex())
        .unwrap()
        .issue("office", &[Role::Office], None, 60)
        .unwrap();
    let mut forger = PlansServiceClient::new(suite.authed(&forged));
    let err = forger
        .list_cycles(ListCyclesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    suite.stop().await;
}

async fn retried_creates_return_the_first_result(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let request = CreateCycleRequest {
        cycle_id: "2027".into(),
        cycle: Some(Cycle {
            year: 2027,
            title: "2027年度".into(),
            ..Default::default()
        }),
        request_id: "create-2027".into(),
    };
    let first = office
        .create_cycle(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = office
        .create_cycle(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);

    // The same id with other content is refused, not silently applied.
    let mut other = request.clone();
    other.cycle.as_mut().unwrap().title = "另一个".into();
    let err = office.create_cycle(other).await.unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "REQUEST_ID_REUSED")
    );
    // Without a request id a second create is a conflict.
    let mut plain = request;
    plain.request_id.clear();
    assert_eq!(
        office.create_cycle(plain).await.unwrap_err().code(),
        Code::AlreadyExists
    );

    let notice = CreateNoticeRequest {
        parent: "cycles/2026".into(),
        notice: Some(Notice {
            title: "关于报送绩效方案的通知".into(),
            body: "请于期限内报送。".into(),
            ..Default::default()
        }),
        request_id: "notice-1".into(),
        ..Default::default()
    };
    let n1 = office
        .create_notice(notice.clone())
        .await
        .unwrap()
        .into_inner();
    let n2 = office.create_notice(notice).await.unwrap().into_inner();
    assert_eq!(n1.name, n2.name);
    let mut siming = PlansServiceClient::new(suite.unit("siming"));
    let notices = siming
        .list_notices(ListNoticesRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(notices.notices.len(), 1, "the retry stored nothing twice");

    let audit = office
        .list_audit_records(ListAuditRecordsRequest {
            resource_prefix: "cycles/2027".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.records.len(), 1, "one create, one audit record");

    // Pagination walks every cycle once.
    let (mut names, mut token) = (Vec::new(), String::new());
    loop {
        let page = siming
            .list_cycles(ListCyclesRequest {
                page_size: 1,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.cycles.into_iter().map(|c| c.name));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(names, ["cycles/2027", "cycles/2026"]);
    suite.stop().await;
}

async fn the_audit_trail_tells_who_did_what_and_why(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let mut siming = PlansServiceClient::new(suite.unit("siming"));
    let plan = create_plan(&mut siming, "2026", "siming").await;
    let plan = set_content(&mut siming, &plan, full_targets("6"), vec![]).await;
    let v1 = submit(&mut siming, &plan).await.unwrap();
    office
        .return_plan(ReturnPlanRequest {
            name: v1.name.clone(),
            etag: v1.etag.clone(),
            reason: "请补充目标".into(),
        })
        .await
        .unwrap();

    let trail = siming
        .list_audit_records(ListAuditRecordsRequest {
            resource_prefix: plan.name.clone(),
            ..Default::default()
        })
        .await
        .expect("a unit reads its own plan's trail")
        .into_inner()
        .records;
    let rows: Vec<_> = trail
        .iter()
        .map(|r| (r.action.as_str(), r.principal.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("plans.create", "siming", ""),
            ("plans.update", "siming", ""),
            ("plans.submit", "siming", ""),
            ("plans.return", "office", "请补充目标"),
        ]
    );
    assert!(
        trail
            .windows(2)
            .all(|w| w[0].sequence < w[1].sequence && w[0].digest != w[1].digest)
    );
    assert!(
        trail
            .iter()
            .all(|r| r.digest.len() == 64 && r.time.is_some())
    );
    suite.stop().await;
}

async fn phases_only_move_forward_and_close_set_up(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let cycle = office
        .set_cycle_phase(SetCyclePhaseRequest {
            name: "cycles/2026".into(),
            phase: Phase::Execution as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cycle.phase(), Phase::Execution);
    let err = office
        .set_cycle_phase(SetCyclePhaseRequest {
            name: "cycles/2026".into(),
            phase: Phase::Planning as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "PHASE_ORDER");
    let err = office
        .replace_framework(ReplaceFrameworkRequest {
            name: "cycles/2026/groups/districts/framework".into(),
            indicators: framework(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "WRONG_PHASE")
    );
    // Data is open in EXECUTION, plans are not.
    let mut siming = PlansServiceClient::new(suite.unit("siming"));
    let data = siming
        .check_write_window(CheckWriteWindowRequest {
            cycle: "cycles/2026".into(),
            unit: "units/siming".into(),
            scope: LockScope::Data as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(data.open);
    let err = siming
        .check_write_window(CheckWriteWindowRequest {
            cycle: "cycles/2026".into(),
            unit: "units/huli".into(),
            scope: LockScope::Data as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = siming
        .create_plan(CreatePlanRequest {
            parent: "cycles/2026".into(),
            plan: Some(Plan {
                unit: "units/siming".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    suite.stop().await;
}

/// Notices and lock exceptions are named by the office where it gives an
/// id; without one the name is derived from the caller and its request id.
async fn notices_and_lock_exceptions_take_their_creator_s_ids(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let notice = |id: &str, request_id: &str, title: &str| CreateNoticeRequest {
        parent: "cycles/2026".into(),
        notice: Some(Notice {
            title: title.into(),
            body: "请于期限内报送。".into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
        notice_id: id.into(),
    };
    let n = office
        .create_notice(notice("2026-evaluation", "n-1", "通知"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(n.name, "cycles/2026/notices/2026-evaluation");
    let again = office
        .create_notice(notice("2026-evaluation", "n-1", "通知"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, n);
    let err = office
        .create_notice(notice("2026-evaluation", "n-1", "另一个通知"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "REQUEST_ID_REUSED")
    );
    let err = office
        .create_notice(notice("2026-evaluation", "n-2", "另一个通知"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::AlreadyExists, "ALREADY_EXISTS")
    );
    let err = office
        .create_notice(notice("Notice 1", "n-3", "通知"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), bad_fields(&err)),
        (Code::InvalidArgument, vec!["notice_id".to_string()])
    );
    // Two offices' principals with the same request id: two notices.
    let mut deputy = PlansServiceClient::new(suite.as_roles("office-wang", &[Role::Office], None));
    let mine = office
        .create_notice(notice("", "n-4", "通知"))
        .await
        .unwrap()
        .into_inner();
    let theirs = deputy
        .create_notice(notice("", "n-4", "通知"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (mine.name, theirs.name),
        (
            format!(
                "cycles/2026/notices/{}",
                names::derived_id("n", "office", "n-4")
            ),
            format!(
                "cycles/2026/notices/{}",
                names::derived_id("n", "office-wang", "n-4")
            )
        )
    );

    let exception = |id: &str, request_id: &str| GrantLockExceptionRequest {
        parent: "cycles/2026".into(),
        lock_exception: Some(LockException {
            unit: "units/huli".into(),
            scope: LockScope::Plan as i32,
            expire_time: ts(now_ms() + DAY),
            reason: "系统故障补报".into(),
            ..Default::default()
        }),
        request_id: request_id.into(),
        lock_exception_id: id.into(),
    };
    let granted = office
        .grant_lock_exception(exception("huli-plan", "le-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.name, "cycles/2026/lockExceptions/huli-plan");
    let err = deputy
        .grant_lock_exception(exception("huli-plan", "le-1"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::AlreadyExists, "ALREADY_EXISTS")
    );
    let err = office
        .grant_lock_exception(exception(&names::derived_id("le", "x", "y"), "le-2"))
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["lock_exception_id"]);
    let derived = office
        .grant_lock_exception(exception("", "le-3"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        derived.name,
        format!(
            "cycles/2026/lockExceptions/{}",
            names::derived_id("le", "office", "le-3")
        )
    );
    let listed = office
        .list_lock_exceptions(ListLockExceptionsRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.lock_exceptions.len(), 2);
    suite.stop().await;
}

on_both_databases!(
    plan_returned_resubmitted_diffed_approved_and_amended,
    late_plan_refused_then_accepted_under_an_exception,
    invalid_input_names_every_bad_field_and_stores_nothing,
    roles_and_units_are_enforced,
    retried_creates_return_the_first_result,
    notices_and_lock_exceptions_take_their_creator_s_ids,
    the_audit_trail_tells_who_did_what_and_why,
    phases_only_move_forward_and_close_set_up,
);
