//! The indicators service end to end, through its gRPC interface, on SQLite
//! and PostgreSQL, with the plans service it validates against.

use std::time::Duration;

use jixiao::Target;
use jixiao_proto::{
    indicators::{
        BatchReportValuesRequest, CorrectValueRequest, EnterAssessedScoreRequest,
        GetGroupScoresRequest, GetProgressRequest, GetProviderCompletenessRequest, IndicatorValue,
        ListValueHistoryRequest, ListValuesRequest, ReportValueRequest, ScoreFlag,
        WatchScoreChangesRequest, indicators_service_client::IndicatorsServiceClient,
    },
    plans::{
        Cycle, Deadlines, GrantLockExceptionRequest, LockException, LockScope, Phase,
        UpdateCycleRequest, plans_service_client::PlansServiceClient,
    },
    types::{ListAuditRecordsRequest, Period, PeriodKind},
};
use jixiao_runtime::Role;
use jixiao_testkit::{Authed, Backend, Options, Suite, on_both_databases};
use jixiao_tests::{
    DAY, annual, bad_fields, dec, evaluation_year, evidence, executing_year, final_values, now_ms,
    reason, set_phase, ts,
};
use tonic::Code;

type Indicators = IndicatorsServiceClient<Authed>;

fn provider(suite: &Suite) -> Indicators {
    IndicatorsServiceClient::new(suite.as_roles("stats", &[Role::Provider], Some("stats")))
}

fn quarter(q: i32) -> Option<Period> {
    Some(Period {
        kind: PeriodKind::Quarter as i32,
        year: 2026,
        index: q,
    })
}

fn value(unit: &str, code: &str, period: Option<Period>, v: &str) -> IndicatorValue {
    IndicatorValue {
        unit: format!("units/{unit}"),
        indicator: code.into(),
        period,
        value: dec(v),
        evidence: evidence(),
        ..Default::default()
    }
}

async fn report_batch(
    client: &mut Indicators,
    values: Vec<IndicatorValue>,
) -> Result<Vec<IndicatorValue>, tonic::Status> {
    client
        .batch_report_values(BatchReportValuesRequest {
            parent: "cycles/2026".into(),
            values,
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().values)
}

async fn group_scores_match_hand_computed_values_for_every_method(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut stats = provider(&suite);
    let rows = final_values();
    let stored = report_batch(&mut stats, rows).await.expect("report finals");
    assert_eq!(stored.len(), 15);
    assert!(
        stored
            .iter()
            .all(|v| v.version == 1 && !v.late && v.reported_by == "stats")
    );

    let mut evaluator =
        IndicatorsServiceClient::new(suite.as_roles("eval-1", &[Role::Evaluator], None));
    for (unit, score) in [("siming", "4.5"), ("huli", "4")] {
        evaluator
            .enter_assessed_score(EnterAssessedScoreRequest {
                parent: "cycles/2026".into(),
                unit: format!("units/{unit}"),
                indicator: "KEY_PROJECTS".into(),
                score: dec(score),
                justification: "重点项目按期推进".into(),
                request_id: String::new(),
            })
            .await
            .expect("assessed score");
    }
    let err = evaluator
        .enter_assessed_score(EnterAssessedScoreRequest {
            parent: "cycles/2026".into(),
            unit: "units/jimei".into(),
            indicator: "KEY_PROJECTS".into(),
            score: dec("5.5"),
            justification: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["justification", "score"]);

    let scores = evaluator
        .get_group_scores(GetGroupScoresRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: 0,
        })
        .await
        .expect("scores")
        .into_inner();
    let table: Vec<(String, Vec<String>, String)> = scores
        .units
        .iter()
        .map(|u| {
            (
                u.unit.clone(),
                u.indicators
                    .iter()
                    .map(|i| i.points.clone().unwrap().value)
                    .collect(),
                u.total.clone().unwrap().value,
            )
        })
        .collect();
    // GDP RATIO↑ 20, ENERGY RATIO↓ 15, APPROVAL THRESHOLD 10, TRADE PEER_BEST 5,
    // INVESTMENT PEER_RANK 5 (floor 0.6, ranks 1, 1, 3 of 3), KEY_PROJECTS ASSESSED 5.
    let expected = [
        ("units/siming", ["15", "13.5", "10", "5", "5", "4.5"], "53"),
        ("units/huli", ["20", "15", "0", "4", "5", "4"], "48"),
        (
            "units/jimei",
            ["16.666667", "11.25", "10", "1.666667", "3", "0"],
            "42.583334",
        ),
    ];
    for ((unit, points, total), (eu, ep, et)) in table.iter().zip(expected) {
        assert_eq!(
            (
                unit.as_str(),
                points.iter().map(String::as_str).collect::<Vec<_>>(),
                total.as_str()
            ),
            (eu, ep.to_vec(), et)
        );
    }
    let jimei = &scores.units[2];
    assert!(!jimei.complete);
    assert_eq!(jimei.indicators[5].flags, [ScoreFlag::MissingValue as i32]);
    assert_eq!(
        jimei.indicators[0].points_lost.clone().unwrap().value,
        "3.333333"
    );
    assert!(scores.units[0].complete);
    assert!(
        scores.revision >= 3,
        "each write moved the group's revision"
    );
    suite.stop().await;
}

async fn only_the_provider_reports_and_only_evaluators_assess(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let attempts = [
        suite.unit("huli"),
        suite.as_roles("jimei", &[Role::Provider], Some("jimei")),
        suite.as_roles("eval-1", &[Role::Evaluator], None),
        suite.as_roles("dash", &[Role::Viewer], None),
    ];
    for channel in attempts {
        let err = IndicatorsServiceClient::new(channel)
            .report_value(ReportValueRequest {
                parent: "cycles/2026".into(),
                value: Some(value("huli", "GDP_GROWTH", annual(), "7")),
                request_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), reason(&err).as_str()),
            (Code::PermissionDenied, "PERMISSION_DENIED")
        );
    }
    let err = provider(&suite)
        .enter_assessed_score(EnterAssessedScoreRequest {
            parent: "cycles/2026".into(),
            unit: "units/huli".into(),
            indicator: "KEY_PROJECTS".into(),
            score: dec("3"),
            justification: "x".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // The provider reports; a unit reads its own values, not another's.
    provider(&suite)
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(value("huli", "GDP_GROWTH", annual(), "7")),
            request_id: String::new(),
        })
        .await
        .expect("provider reports");
    let own = IndicatorsServiceClient::new(suite.unit("huli"))
        .list_values(ListValuesRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.values.len(), 1);
    let other = IndicatorsServiceClient::new(suite.unit("siming"))
        .list_values(ListValuesRequest {
            parent: "cycles/2026".into(),
            unit: "units/huli".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied);
    let err = IndicatorsServiceClient::new(suite.unit("huli"))
        .get_group_scores(GetGroupScoresRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    suite.stop().await;
}

async fn a_bad_batch_is_rejected_whole_naming_every_bad_row(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut stats = provider(&suite);
    let mut wrong_year = value(
        "jimei",
        "GDP_GROWTH",
        Some(Period {
            kind: PeriodKind::Annual as i32,
            year: 2025,
            index: 0,
        }),
        "6",
    );
    wrong_year.evidence[0].sha256 = "not-a-digest".into();
    let err = report_batch(
        &mut stats,
        vec![
            value("siming", "GDP_GROWTH", annual(), "6"),
            value("huli", "ENERGY_INTENSITY", annual(), "3.5"),
            value("huli", "NO_SUCH_CODE", annual(), "1"),
            wrong_year,
            value("siming", "KEY_PROJECTS", annual(), "4"),
            value("siming", "GDP_GROWTH", annual(), "6.1"),
            value("nowhere", "GDP_GROWTH", annual(), "6"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&err),
        [
            "values[1].value",
            "values[2].indicator",
            "values[3].period.year",
            "values[3].evidence[0].sha256",
            "values[4].indicator",
            "values[5]",
            "values[6].unit",
        ]
    );
    let stored = stats
        .list_values(ListValuesRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        stored.values.is_empty(),
        "nothing of a refused batch is stored"
    );

    // A retried batch with the same request_id counts once.
    let batch = BatchReportValuesRequest {
        parent: "cycles/2026".into(),
        values: vec![
            value("siming", "GDP_GROWTH", annual(), "6"),
            value("huli", "GDP_GROWTH", annual(), "7"),
        ],
        request_id: "batch-1".into(),
    };
    let first = stats
        .batch_report_values(batch.clone())
        .await
        .unwrap()
        .into_inner();
    let again = stats.batch_report_values(batch).await.unwrap().into_inner();
    assert_eq!(first, again);
    // Reporting the same value again without a correction is refused.
    let err = report_batch(
        &mut stats,
        vec![value("siming", "GDP_GROWTH", annual(), "6.5")],
    )
    .await
    .unwrap_err();
    assert_eq!(bad_fields(&err), ["values[0]"]);
    suite.stop().await;
}

async fn a_correction_is_a_new_version_with_history(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut stats = provider(&suite);
    let first = stats
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(value("siming", "GDP_GROWTH", annual(), "6")),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.name,
        "cycles/2026/units/siming/indicators/GDP_GROWTH/periods/2026"
    );
    let err = stats
        .correct_value(CorrectValueRequest {
            name: first.name.clone(),
            value: dec("6.4"),
            reason: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["reason"]);
    let err = stats
        .correct_value(CorrectValueRequest {
            name: first.name.clone(),
            value: dec("99"),
            reason: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["value"]);
    let corrected = stats
        .correct_value(CorrectValueRequest {
            name: first.name.clone(),
            value: dec("6.40"),
            evidence: evidence(),
            reason: "统计局年报修订".into(),
            request_id: "fix-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            corrected.version,
            corrected.value.clone().unwrap().value.as_str()
        ),
        (2, "6.4")
    );

    let history = stats
        .list_value_history(ListValueHistoryRequest {
            name: first.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions;
    let rows: Vec<_> = history
        .iter()
        .map(|v| {
            (
                v.version,
                v.value.clone().unwrap().value,
                v.reported_by.clone(),
                v.correction_reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (1, "6".to_string(), "stats".to_string(), String::new()),
            (
                2,
                "6.4".to_string(),
                "stats".to_string(),
                "统计局年报修订".to_string()
            ),
        ]
    );
    let trail = IndicatorsServiceClient::new(suite.office())
        .list_audit_records(ListAuditRecordsRequest {
            resource_prefix: first.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    let actions: Vec<_> = trail
        .iter()
        .map(|r| (r.action.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("values.report", ""), ("values.correct", "统计局年报修订")]
    );
    assert!(
        trail[1].detail_json.contains("\"from\":\"6\"")
            && trail[1].detail_json.contains("\"to\":\"6.4\"")
    );
    suite.stop().await;
}

async fn a_late_value_is_refused_then_accepted_under_an_exception(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut stats = provider(&suite);
    let early = stats
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(value("siming", "GDP_GROWTH", annual(), "6")),
            request_id: String::new(),
        })
        .await
        .expect("reported before the deadline")
        .into_inner();
    let mut office_plans = PlansServiceClient::new(suite.office());
    office_plans
        .update_cycle(UpdateCycleRequest {
            cycle: Some(Cycle {
                name: "cycles/2026".into(),
                deadlines: Some(Deadlines {
                    data_deadline: ts(now_ms() - DAY),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["deadlines.data_deadline".into()],
            }),
        })
        .await
        .expect("move the data deadline");
    // After the deadline only the office accepts a correction.
    let correction = CorrectValueRequest {
        name: early.name.clone(),
        value: dec("6.2"),
        reason: "复核".into(),
        ..Default::default()
    };
    let err = stats.correct_value(correction.clone()).await.unwrap_err();
    assert_eq!(reason(&err), "DATA_DEADLINE_PASSED");
    let accepted = IndicatorsServiceClient::new(suite.office())
        .correct_value(correction)
        .await
        .expect("the office accepts a late correction")
        .into_inner();
    assert_eq!(
        (
            accepted.version,
            accepted.reported_by.as_str(),
            accepted.late
        ),
        (2, "office", true),
        "a write after the deadline is late whoever makes it"
    );

    let request = ReportValueRequest {
        parent: "cycles/2026".into(),
        value: Some(value("jimei", "GDP_GROWTH", annual(), "5")),
        request_id: String::new(),
    };
    let err = stats.report_value(request.clone()).await.unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::FailedPrecondition, "DATA_DEADLINE_PASSED")
    );
    // The office's own report after the deadline is taken, and late.
    let by_office = IndicatorsServiceClient::new(suite.office())
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(value("huli", "ENERGY_INTENSITY", annual(), "0.4")),
            request_id: String::new(),
        })
        .await
        .expect("the office reports after the deadline")
        .into_inner();
    assert!(by_office.late, "a write after the deadline is always late");

    office_plans
        .grant_lock_exception(GrantLockExceptionRequest {
            parent: "cycles/2026".into(),
            lock_exception: Some(LockException {
                unit: "units/stats".into(),
                scope: LockScope::Data as i32,
                expire_time: ts(now_ms() + DAY),
                reason: "数据核对延期".into(),
                ..Default::default()
            }),
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .expect("exception");
    let stored = stats
        .report_value(request)
        .await
        .expect("accepted under the exception")
        .into_inner();
    assert!(stored.late);
    let scores = IndicatorsServiceClient::new(suite.office())
        .get_group_scores(GetGroupScoresRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let jimei = scores
        .units
        .iter()
        .find(|u| u.unit == "units/jimei")
        .unwrap();
    assert_eq!(jimei.indicators[0].flags, [ScoreFlag::Late as i32]);
    let completeness = stats
        .get_provider_completeness(GetProviderCompletenessRequest {
            cycle: "cycles/2026".into(),
            provider: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let row = &completeness.providers[0];
    assert_eq!(
        (
            row.provider.as_str(),
            row.expected,
            row.reported,
            row.late,
            row.missing.len()
        ),
        ("units/stats", 15, 3, 3, 12)
    );
    assert!(
        row.missing
            .contains(&"cycles/2026/units/huli/indicators/GDP_GROWTH/periods/2026".to_string())
    );
    suite.stop().await;
}

async fn progress_flags_a_unit_that_trails(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut stats = provider(&suite);
    report_batch(
        &mut stats,
        vec![
            value("siming", "INVESTMENT", quarter(1), "200"),
            value("siming", "INVESTMENT", quarter(2), "600"),
            value("huli", "INVESTMENT", quarter(2), "300"),
        ],
    )
    .await
    .expect("progress values");
    let rows = IndicatorsServiceClient::new(suite.office())
        .get_progress(GetProgressRequest {
            group: "cycles/2026/groups/districts".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    let investment: Vec<_> = rows
        .iter()
        .filter(|r| r.indicator == "INVESTMENT")
        .map(|r| {
            (
                r.unit.as_str(),
                r.achieved_share.as_ref().map(|d| d.value.as_str()),
                r.at_risk,
            )
        })
        .collect();
    // Target 1000, half the year gone, threshold 0.1: 0.3 trails 0.5 by 0.2.
    assert_eq!(
        investment,
        [
            ("units/siming", Some("0.6"), false),
            ("units/huli", Some("0.3"), true),
            ("units/jimei", None, false)
        ]
    );
    // A unit reads its own progress only.
    let own = IndicatorsServiceClient::new(suite.unit("huli"))
        .get_progress(GetProgressRequest {
            group: "cycles/2026/groups/districts".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    assert!(own.iter().all(|r| r.unit == "units/huli"));
    // Final values do not count as progress.
    suite.stop().await;
}

async fn score_changes_are_streamed(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut watcher =
        IndicatorsServiceClient::new(suite.as_roles("aggregator", &[Role::Service], None));
    let mut stream = watcher
        .watch_score_changes(WatchScoreChangesRequest {
            cycle: "cycles/2026".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let before = jixiao_runtime::time::now_ms();
    provider(&suite)
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(value("huli", "GDP_GROWTH", annual(), "7")),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let after = jixiao_runtime::time::now_ms();
    let change = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a change arrives")
        .unwrap()
        .unwrap();
    assert_eq!(
        (change.group.as_str(), change.revision),
        ("cycles/2026/groups/districts", 1)
    );
    // It says when it was written, for the aggregator's freshness.
    let written = jixiao_runtime::time::millis(&change.change_time.expect("change time"));
    assert!(
        (before..=after).contains(&written),
        "{before} {written} {after}"
    );
    // A new watcher first learns the current revision.
    let mut late = watcher
        .watch_score_changes(WatchScoreChangesRequest {
            cycle: "cycles/2026".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let current = tokio::time::timeout(Duration::from_secs(5), late.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(current.revision, 1);
    // A counter read back was not written now: it has no time.
    assert_eq!(current.change_time, None);
    suite.stop().await;
}

async fn the_plans_service_down_gives_unavailable(backend: Backend) {
    // Nothing listens on this port: the plans service is down.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let suite = Suite::start_with(
        backend,
        Options {
            targets: vec![Target::Indicators],
            peers: vec![(Target::Plans, addr)],
            ..Default::default()
        },
    )
    .await;
    let started = std::time::Instant::now();
    let err = provider(&suite)
        .report_value(ReportValueRequest {
            parent: "cycles/2026".into(),
            value: Some(value("huli", "GDP_GROWTH", annual(), "7")),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err).as_str()),
        (Code::Unavailable, "DEPENDENCY_UNAVAILABLE")
    );
    assert!(err.message().contains("plans service"), "{}", err.message());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered, not hung"
    );
    suite.stop().await;
}

/// A unit's group is read afresh while the cycle is in PLANNING, where
/// members may change, and kept once the cycle has left it (the plans
/// look-up's note): a member dropped in PLANNING is gone from every answer
/// before and after, and the look-up from the kept groups finds the same
/// units as a fresh read.
async fn a_unit_s_group_follows_planning_and_is_kept_after(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let expected = |suite: &Suite| {
        let mut stats = provider(suite);
        async move {
            stats
                .get_provider_completeness(GetProviderCompletenessRequest {
                    cycle: "cycles/2026".into(),
                    provider: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .providers[0]
                .expected
        }
    };
    // Five reported indicators for each of the three districts.
    assert_eq!(expected(&suite).await, 15);
    jixiao_tests::drop_jimei(&mut office).await;
    assert_eq!(expected(&suite).await, 10, "the change is seen in PLANNING");
    set_phase(&suite, "2026", Phase::Execution).await;
    let evaluator =
        IndicatorsServiceClient::new(suite.as_roles("eval-1", &[Role::Evaluator], None));
    // Twice each: the first read keeps the groups, the second uses them.
    for _ in 0..2 {
        assert_eq!(expected(&suite).await, 10);
        for (unit, assessed) in [("huli", true), ("jimei", false), ("nowhere", false)] {
            let r = evaluator
                .clone()
                .enter_assessed_score(EnterAssessedScoreRequest {
                    parent: "cycles/2026".into(),
                    unit: format!("units/{unit}"),
                    indicator: "KEY_PROJECTS".into(),
                    score: dec("4"),
                    justification: "年度重点项目".into(),
                    request_id: String::new(),
                })
                .await;
            match r {
                Ok(_) => assert!(assessed, "{unit} assessed"),
                Err(e) => {
                    assert!(!assessed, "{unit}: {e:?}");
                    assert_eq!(bad_fields(&e), ["unit"], "{unit}");
                }
            }
        }
    }
    suite.stop().await;
}

on_both_databases!(
    group_scores_match_hand_computed_values_for_every_method,
    only_the_provider_reports_and_only_evaluators_assess,
    a_bad_batch_is_rejected_whole_naming_every_bad_row,
    a_correction_is_a_new_version_with_history,
    a_late_value_is_refused_then_accepted_under_an_exception,
    progress_flags_a_unit_that_trails,
    score_changes_are_streamed,
    the_plans_service_down_gives_unavailable,
    a_unit_s_group_follows_planning_and_is_kept_after,
);
