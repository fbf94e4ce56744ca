//! Data-quality flags on indicator values (docs/DATA-QUALITY.md) end to
//! end, on SQLite and PostgreSQL: planted anomalies are flagged with the
//! figures that raised them and clean values are not; the office and
//! evaluators resolve them (units may not, nor outside the phases); flags of
//! the blocking severity hold publication back until resolved.

use jixiao_proto::{
    aggregator::{
        Component, GetFeedbackRequest, GetPublicationInputsRequest, PublicationDecision,
        PublishResultsRequest, aggregator_service_client::AggregatorServiceClient,
    },
    indicators::{
        BatchReportValuesRequest, CorrectValueRequest, GetGroupScoresRequest, GetValueRequest,
        IndicatorValue, ListValueFlagsRequest, ResolveValueFlagRequest, ScoreFlag, ValueFlag,
        ValueFlagKind, indicators_service_client::IndicatorsServiceClient,
    },
    plans::{
        CreateCycleRequest, Cycle, DataQualityRules, Deadlines, GetFrameworkRequest,
        GetSchemeRequest, IndicatorQualityRules, Phase, ReplaceFrameworkRequest, Scheme,
        UpdateCycleRequest, UpdateSchemeRequest, plans_service_client::PlansServiceClient,
    },
    types::{
        EvidenceItem, ListAuditRecordsRequest, Period, PeriodKind, QualityFlagState,
        QualitySeverity,
    },
};
use jixiao_runtime::Role;
use jixiao_testkit::{Authed, Backend, Suite, on_both_databases};
use jixiao_tests::{
    DAY, annual, approve_plans, bad_fields, dec, districts, evaluation_year, framework, now_ms,
    reason, set_phase, targets, ts,
};
use tonic::Code;

type Indicators = IndicatorsServiceClient<Authed>;

const VALUES: &str = "cycles/2026/units";

fn stats(suite: &Suite) -> Indicators {
    IndicatorsServiceClient::new(suite.as_roles("stats", &[Role::Provider], Some("stats")))
}

/// Evidence with its own digest.
fn file(n: u32) -> Vec<EvidenceItem> {
    vec![EvidenceItem {
        name: format!("统计报表-{n}.pdf"),
        media_type: "application/pdf".into(),
        size_bytes: 10_000 + i64::from(n),
        sha256: format!("{n:064x}"),
        uri: format!("s3://evidence/2026/{n}.pdf"),
    }]
}

fn value(unit: &str, code: &str, period: Option<Period>, v: &str, n: u32) -> IndicatorValue {
    IndicatorValue {
        unit: format!("units/{unit}"),
        indicator: code.into(),
        period,
        value: dec(v),
        evidence: if n == 0 { Vec::new() } else { file(n) },
        ..Default::default()
    }
}

const Q3: Option<Period> = Some(Period {
    kind: PeriodKind::Quarter as i32,
    year: 2026,
    index: 3,
});

fn name(unit: &str, code: &str, period: &str) -> String {
    format!("{VALUES}/{unit}/indicators/{code}/periods/{period}")
}

/// The districts year with data-quality rules (outliers from 3 peers,
/// ENERGY_INTENSITY needs evidence, INVESTMENT is cumulative, `blocking`
/// blocks) and the data deadline a day away, in execution; with
/// [`planted_year`], the planted figures:
/// - jimei's GDP_GROWTH 29.5 against 8.2 and 7.1 (PEER_OUTLIER);
/// - huli's GDP_GROWTH 7.1 after 4.0 in Q3 (JUMP);
/// - jimei's INVESTMENT 1050 below its year-to-date 1200 (FINAL_BELOW_PROGRESS);
/// - jimei's ENERGY_INTENSITY without evidence (EVIDENCE_MISSING); siming's
///   and huli's FOREIGN_TRADE on one file (SHARED_EVIDENCE);
/// - huli's APPROVAL_ONLINE_RATE 94.5, below its target 95.
async fn rules_year(suite: &Suite, blocking: QualitySeverity) {
    let mut office = evaluation_year(suite, "2026", now_ms() + DAY).await;
    office
        .update_scheme(UpdateSchemeRequest {
            scheme: Some(Scheme {
                name: "cycles/2026/groups/districts/scheme".into(),
                data_quality: Some(DataQualityRules {
                    outlier_min_peers: 3,
                    blocking_severity: blocking as i32,
                    indicators: vec![
                        IndicatorQualityRules {
                            indicator: "ENERGY_INTENSITY".into(),
                            evidence_required: true,
                            ..Default::default()
                        },
                        IndicatorQualityRules {
                            indicator: "INVESTMENT".into(),
                            cumulative: true,
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["data_quality".into()],
            }),
        })
        .await
        .expect("data-quality rules");
    office
        .update_cycle(UpdateCycleRequest {
            cycle: Some(Cycle {
                name: "cycles/2026".into(),
                deadlines: Some(Deadlines {
                    data_deadline: ts(now_ms() + DAY),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["deadlines.data_deadline".into()],
            }),
        })
        .await
        .expect("data deadline");
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
    set_phase(suite, "2026", Phase::Execution).await;
}

/// [`rules_year`] with the planted figures.
async fn planted_year(suite: &Suite, blocking: QualitySeverity) {
    rules_year(suite, blocking).await;
    let mut stats = stats(suite);
    for values in [
        vec![
            value("siming", "GDP_GROWTH", Q3, "7.9", 1),
            value("huli", "GDP_GROWTH", Q3, "4.0", 2),
            value("jimei", "INVESTMENT", Q3, "1200", 3),
        ],
        vec![
            value("siming", "GDP_GROWTH", annual(), "8.2", 10),
            value("huli", "GDP_GROWTH", annual(), "7.1", 11),
            value("jimei", "GDP_GROWTH", annual(), "29.5", 12),
            value("siming", "ENERGY_INTENSITY", annual(), "0.44", 13),
            value("huli", "ENERGY_INTENSITY", annual(), "0.5", 14),
            value("jimei", "ENERGY_INTENSITY", annual(), "0.46", 0),
            value("siming", "APPROVAL_ONLINE_RATE", annual(), "96", 16),
            value("huli", "APPROVAL_ONLINE_RATE", annual(), "94.5", 17),
            value("jimei", "APPROVAL_ONLINE_RATE", annual(), "95.5", 18),
            value("siming", "FOREIGN_TRADE", annual(), "310", 99),
            value("huli", "FOREIGN_TRADE", annual(), "290", 99),
            value("jimei", "FOREIGN_TRADE", annual(), "305", 21),
            value("siming", "INVESTMENT", annual(), "1000", 22),
            value("huli", "INVESTMENT", annual(), "1100", 23),
            value("jimei", "INVESTMENT", annual(), "1050", 24),
        ],
    ] {
        stats
            .batch_report_values(BatchReportValuesRequest {
                parent: "cycles/2026".into(),
                values,
                request_id: String::new(),
            })
            .await
            .expect("values");
    }
}

async fn list_flags(client: &mut Indicators, open_only: bool) -> Vec<ValueFlag> {
    client
        .list_value_flags(ListValueFlagsRequest {
            parent: "cycles/2026".into(),
            open_only,
            ..Default::default()
        })
        .await
        .expect("flags")
        .into_inner()
        .flags
}

fn short(flags: &[ValueFlag]) -> Vec<String> {
    flags
        .iter()
        .map(|f| f.name.trim_start_matches("cycles/2026/units/").to_string())
        .collect()
}

fn figure(f: &ValueFlag, name: &str) -> String {
    let e = f
        .evidence
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("{name} in {f:?}"));
    e.number
        .as_ref()
        .map(|d| d.value.clone())
        .unwrap_or_else(|| e.text.clone())
}

async fn get(client: &mut Indicators, name: &str) -> IndicatorValue {
    client
        .get_value(GetValueRequest { name: name.into() })
        .await
        .expect("value")
        .into_inner()
}

async fn planted_anomalies_are_flagged_with_their_figures(backend: Backend) {
    let suite = Suite::start(backend).await;
    planted_year(&suite, QualitySeverity::Critical).await;
    let mut office = IndicatorsServiceClient::new(suite.office());
    let flags = list_flags(&mut office, true).await;
    assert_eq!(
        short(&flags),
        [
            "huli/indicators/FOREIGN_TRADE/periods/2026/flags/shared_evidence-v1",
            "huli/indicators/GDP_GROWTH/periods/2026/flags/jump-v1",
            "jimei/indicators/ENERGY_INTENSITY/periods/2026/flags/evidence_missing-v1",
            "jimei/indicators/GDP_GROWTH/periods/2026/flags/peer_outlier-v1",
            "jimei/indicators/INVESTMENT/periods/2026/flags/final_below_progress-v1",
            "siming/indicators/FOREIGN_TRADE/periods/2026/flags/shared_evidence-v1",
        ]
    );
    // The outlier with its figures: median 8.2, MAD 1.1 of three peers.
    let outlier = &flags[3];
    assert_eq!(outlier.kind, ValueFlagKind::PeerOutlier as i32);
    assert_eq!(outlier.severity, QualitySeverity::Warning as i32);
    assert_eq!(outlier.state, QualityFlagState::Open as i32);
    assert_eq!(figure(outlier, "median"), "8.2");
    assert_eq!(figure(outlier, "mad"), "1.1");
    assert_eq!(figure(outlier, "peers"), "3");
    assert_eq!(figure(outlier, "score"), "13.060594");
    assert!(outlier.explanation.contains("13.060594"), "{outlier:?}");
    let jump = &flags[1];
    assert_eq!(
        (
            figure(jump, "reference"),
            figure(jump, "reference_period"),
            figure(jump, "change")
        ),
        ("4".into(), "2026-Q3".into(), "0.775".into())
    );
    let below = &flags[4];
    assert_eq!(below.severity, QualitySeverity::Critical as i32);
    assert_eq!(figure(below, "progress"), "1200");
    assert_eq!(
        figure(&flags[0], "other_value"),
        name("siming", "FOREIGN_TRADE", "2026")
    );

    // On the value the unit reads: the flag on jimei's, none on siming's.
    let mut jimei = IndicatorsServiceClient::new(suite.unit("jimei"));
    let flagged = get(&mut jimei, &name("jimei", "GDP_GROWTH", "2026")).await;
    assert_eq!(flagged.flags, std::slice::from_ref(outlier));
    let mut siming = IndicatorsServiceClient::new(suite.unit("siming"));
    let clean = get(&mut siming, &name("siming", "GDP_GROWTH", "2026")).await;
    assert!(clean.flags.is_empty(), "{clean:?}");
    // A unit lists only its own flags.
    let own = list_flags(&mut jimei, false).await;
    assert_eq!(own.len(), 3);
    assert!(
        own.iter()
            .all(|f| f.name.starts_with("cycles/2026/units/jimei/"))
    );

    // Critical flags (the default blocking severity) mark the score.
    let scores = office
        .get_group_scores(GetGroupScoresRequest {
            group: "cycles/2026/groups/districts".into(),
            known_revision: 0,
        })
        .await
        .expect("scores")
        .into_inner();
    let quality: Vec<String> = scores
        .units
        .iter()
        .flat_map(|u| {
            u.indicators
                .iter()
                .filter(|i| i.flags.contains(&(ScoreFlag::DataQuality as i32)))
                .map(|i| format!("{} {}", u.unit, i.indicator))
        })
        .collect();
    assert_eq!(
        quality,
        ["units/jimei ENERGY_INTENSITY", "units/jimei INVESTMENT"]
    );

    // A correction across the target a day before the deadline.
    let corrected = stats(&suite)
        .correct_value(CorrectValueRequest {
            name: name("huli", "APPROVAL_ONLINE_RATE", "2026"),
            value: dec("95.2"),
            evidence: file(30),
            reason: "统计口径更正".into(),
            request_id: String::new(),
        })
        .await
        .expect("correction")
        .into_inner();
    assert_eq!(corrected.flags.len(), 1, "{corrected:?}");
    let boundary = &corrected.flags[0];
    assert_eq!(boundary.kind, ValueFlagKind::BoundaryCorrection as i32);
    assert_eq!(boundary.version, 2);
    assert_eq!(
        (
            figure(boundary, "from"),
            figure(boundary, "to"),
            figure(boundary, "target")
        ),
        ("94.5".into(), "95.2".into(), "95".into())
    );
    suite.stop().await;
}

async fn resolve(
    client: &mut Indicators,
    name: &str,
    resolution: QualityFlagState,
    reason: &str,
) -> Result<ValueFlag, tonic::Status> {
    client
        .resolve_value_flag(ResolveValueFlagRequest {
            name: name.into(),
            resolution: resolution as i32,
            reason: reason.into(),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn flags_are_resolved_by_the_office_and_evaluators_only(backend: Backend) {
    let suite = Suite::start(backend).await;
    planted_year(&suite, QualitySeverity::Critical).await;
    let outlier = format!(
        "{}/flags/peer_outlier-v1",
        name("jimei", "GDP_GROWTH", "2026")
    );
    let shared = format!(
        "{}/flags/shared_evidence-v1",
        name("siming", "FOREIGN_TRADE", "2026")
    );
    // Units and providers may not clear flags, least of all their own.
    for (who, roles, unit) in [
        ("jimei", &[Role::Unit][..], "jimei"),
        ("stats", &[Role::Provider][..], "stats"),
    ] {
        let mut c = IndicatorsServiceClient::new(suite.as_roles(who, roles, Some(unit)));
        let err = resolve(&mut c, &outlier, QualityFlagState::Explained, "ok")
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{who}: {err:?}");
    }
    let mut evaluator =
        IndicatorsServiceClient::new(suite.as_roles("eval-1", &[Role::Evaluator], None));
    let err = resolve(&mut evaluator, &outlier, QualityFlagState::Explained, " ")
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["reason"]);
    let err = resolve(&mut evaluator, &outlier, QualityFlagState::Excluded, "x")
        .await
        .unwrap_err();
    assert_eq!(bad_fields(&err), ["resolution"]);
    let err = resolve(&mut evaluator, &outlier, QualityFlagState::Corrected, "")
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "NOT_CORRECTED".into())
    );
    let err = resolve(
        &mut evaluator,
        &format!("{}/flags/jump-v1", name("siming", "GDP_GROWTH", "2026")),
        QualityFlagState::Explained,
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // The provider corrects the inflated figure: the new version is no
    // outlier, and the old version's flag is resolved as CORRECTED.
    let v2 = stats(&suite)
        .correct_value(CorrectValueRequest {
            name: name("jimei", "GDP_GROWTH", "2026"),
            value: dec("6.3"),
            evidence: file(40),
            reason: "录入错误，小数点位置更正".into(),
            request_id: String::new(),
        })
        .await
        .expect("correction")
        .into_inner();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.flags.len(), 1, "only the old version's flag: {v2:?}");
    let done = resolve(&mut evaluator, &outlier, QualityFlagState::Corrected, "")
        .await
        .expect("corrected");
    assert_eq!(done.state, QualityFlagState::Corrected as i32);
    assert_eq!(done.resolved_by, "eval-1");

    // The office explains the shared file: both units' figures come from
    // one customs bulletin. A resolution is final and audit-logged.
    let mut office = IndicatorsServiceClient::new(suite.office());
    let reason_text = "两区外贸数据均来自厦门海关统一公报";
    let explained = resolve(
        &mut office,
        &shared,
        QualityFlagState::Explained,
        reason_text,
    )
    .await
    .expect("explained");
    assert_eq!(explained.state, QualityFlagState::Explained as i32);
    assert_eq!(explained.resolution_reason, reason_text);
    assert!(explained.resolve_time.is_some());
    let err = resolve(&mut office, &shared, QualityFlagState::Explained, "again")
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "FLAG_RESOLVED".into())
    );
    let audit = office
        .list_audit_records(ListAuditRecordsRequest {
            resource_prefix: shared.clone(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner()
        .records;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (audit[0].action.as_str(), audit[0].reason.as_str()),
        ("values.resolve_flag", reason_text)
    );
    let open = short(&list_flags(&mut office, true).await);
    assert!(
        !open
            .iter()
            .any(|f| f.contains("peer_outlier") || f.starts_with("siming/")),
        "{open:?}"
    );

    // Outside the phases that take it (planning), a resolution is refused.
    evaluation_year(&suite, "planning", now_ms() + DAY).await;
    let err = resolve(
        &mut office,
        "cycles/planning/units/siming/indicators/GDP_GROWTH/periods/2026/flags/jump-v1",
        QualityFlagState::Explained,
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "WRONG_PHASE".into())
    );
    suite.stop().await;
}

async fn blocking_flags_hold_publication_until_resolved(backend: Backend) {
    let suite = Suite::start(backend).await;
    planted_year(&suite, QualitySeverity::Warning).await;
    jixiao_tests::assess_key_projects(&suite).await;
    set_phase(&suite, "2026", Phase::Assessment).await;
    let group = "cycles/2026/groups/districts";
    let mut aggregator = AggregatorServiceClient::new(suite.office());
    let publish = async |aggregator: &mut AggregatorServiceClient<Authed>, decisions| {
        aggregator
            .publish_results(PublishResultsRequest {
                group: group.into(),
                decisions,
                ..Default::default()
            })
            .await
    };
    let err = publish(&mut aggregator, Vec::new()).await.unwrap_err();
    assert_eq!(reason(&err), "INCOMPLETE", "{err:?}");
    let flagged = data_quality_items(&err);
    // With WARNING blocking, every unit has a flag open.
    assert_eq!(
        flagged,
        ["units/huli", "units/jimei", "units/siming"],
        "{err:?}"
    );

    // The feedback shows the unit its flags and where they stand.
    let feedback = AggregatorServiceClient::new(suite.unit("jimei"))
        .get_feedback(GetFeedbackRequest {
            group: group.into(),
            unit: "units/jimei".into(),
        })
        .await
        .expect("feedback")
        .into_inner();
    assert_eq!(feedback.data_quality.len(), 3, "{feedback:?}");
    assert!(
        feedback
            .data_quality
            .iter()
            .any(|l| l.contains("EVIDENCE_MISSING (OPEN)")),
        "{feedback:?}"
    );

    // Every flag explained: nothing of data quality stands in the way.
    let mut office = IndicatorsServiceClient::new(suite.office());
    for f in list_flags(&mut office, true).await {
        resolve(
            &mut office,
            &f.name,
            QualityFlagState::Explained,
            "经核实，数据属实",
        )
        .await
        .expect("explained");
    }
    let err = publish(&mut aggregator, Vec::new()).await.unwrap_err();
    assert!(data_quality_items(&err).is_empty(), "{err:?}");
    let decisions = explicit_zeros(&err);
    let publication = publish(&mut aggregator, decisions)
        .await
        .expect("published")
        .into_inner();
    let inputs = aggregator
        .get_publication_inputs(GetPublicationInputsRequest {
            name: publication.name.clone(),
        })
        .await
        .expect("inputs")
        .into_inner();
    assert!(!inputs.document.contains("DATA_QUALITY"));
    suite.stop().await;
}

/// Explicit zeros for the review and inspection components this year did
/// not run (the refusal lists each as a missing component).
fn explicit_zeros(err: &tonic::Status) -> Vec<PublicationDecision> {
    open_items(err)
        .map(|v| {
            assert_eq!(v.r#type, "MISSING_COMPONENT", "{v:?}");
            let component = v.description.split_whitespace().next().unwrap_or_default();
            PublicationDecision {
                unit: v.subject.clone(),
                component: Component::from_str_name(&format!("COMPONENT_{component}"))
                    .unwrap_or_else(|| panic!("a component in {v:?}"))
                    as i32,
                flag: String::new(),
                reason: "not run this year; the office decides a zero".into(),
            }
        })
        .collect()
}

/// The units with an open DATA_QUALITY item in a refused publication.
fn data_quality_items(err: &tonic::Status) -> Vec<String> {
    open_items(err)
        .filter(|v| v.r#type == "UNRESOLVED_FLAG" && v.description.contains("DATA_QUALITY"))
        .map(|v| v.subject.clone())
        .collect()
}

fn open_items(err: &tonic::Status) -> impl Iterator<Item = tonic_types::PreconditionViolation> {
    use tonic_types::StatusExt;
    let failure = err.get_error_details().precondition_failure().cloned();
    failure.expect("open items").violations.into_iter()
}

/// Reports of one indicator and period for every unit at the same moment
/// (and of one file) are flagged as if they came one by one: on
/// PostgreSQL each recomputation used to see only the values committed
/// before it began, so an outlier could go unflagged or be judged against
/// part of the group.
async fn concurrent_reports_are_flagged_as_one_by_one(backend: Backend) {
    let suite = Suite::start(backend).await;
    rules_year(&suite, QualitySeverity::Critical).await;
    let figures = [("siming", "1"), ("huli", "1.1"), ("jimei", "10")];
    let codes = [
        "GDP_GROWTH",
        "APPROVAL_ONLINE_RATE",
        "FOREIGN_TRADE",
        "INVESTMENT",
    ];
    let periods = [annual(), Q3];
    let mut calls = Vec::new();
    for (p, period) in periods.iter().enumerate() {
        for (c, code) in codes.iter().enumerate() {
            for (u, (unit, v)) in figures.iter().enumerate() {
                // One file per indicator and period, held by all three.
                let n = 1000 + (p * 10 + c) as u32;
                let mut value = value(unit, code, *period, v, n);
                value.evidence = file(n);
                let mut stats = stats(&suite);
                calls.push(tokio::spawn(async move {
                    stats
                        .batch_report_values(BatchReportValuesRequest {
                            parent: "cycles/2026".into(),
                            values: vec![value],
                            request_id: format!("race-{p}-{c}-{u}"),
                        })
                        .await
                }));
            }
        }
    }
    for call in calls {
        call.await.unwrap().expect("a concurrent report");
    }
    let flags = list_flags(&mut stats(&suite), true).await;
    for period in ["2026", "2026-Q3"] {
        for code in codes {
            let of = |unit: &str, kind: ValueFlagKind| {
                flags
                    .iter()
                    .filter(|f| f.kind == kind as i32)
                    .filter(|f| {
                        f.name
                            .starts_with(&format!("{}/flags/", name(unit, code, period)))
                    })
                    .collect::<Vec<_>>()
            };
            // median 1.1, MAD 0.1: only jimei's 10 is an outlier, judged
            // against all three.
            let outlier = of("jimei", ValueFlagKind::PeerOutlier);
            assert_eq!(outlier.len(), 1, "{code} {period}: {flags:#?}");
            assert_eq!(figure(outlier[0], "peers"), "3", "{code} {period}");
            assert_eq!(figure(outlier[0], "median"), "1.1", "{code} {period}");
            for unit in ["siming", "huli"] {
                assert!(of(unit, ValueFlagKind::PeerOutlier).is_empty(), "{unit}");
            }
            for (unit, _) in figures {
                let shared = of(unit, ValueFlagKind::SharedEvidence);
                assert_eq!(shared.len(), 1, "{unit} {code} {period}: {flags:#?}");
            }
        }
    }
    suite.stop().await;
}

async fn report(client: &mut Indicators, cycle: &str, values: Vec<IndicatorValue>) {
    client
        .batch_report_values(BatchReportValuesRequest {
            parent: format!("cycles/{cycle}"),
            values,
            request_id: String::new(),
        })
        .await
        .expect("values");
}

async fn correct(client: &mut Indicators, name: String, v: &str, n: u32) {
    client
        .correct_value(CorrectValueRequest {
            name,
            value: dec(v),
            evidence: file(n),
            reason: "按统计年报更正".into(),
            request_id: String::new(),
        })
        .await
        .expect("correction");
}

/// FINAL_BELOW_PROGRESS over a unit's current values, whatever order they
/// came in: siming's final before its year-to-date figure, huli's after,
/// give the same flag; a progress figure corrected below the final
/// withdraws an open flag, a resolved one stays as decided.
async fn a_final_is_checked_against_its_progress_in_either_order(backend: Backend) {
    let suite = Suite::start(backend).await;
    rules_year(&suite, QualitySeverity::Critical).await;
    let mut stats = stats(&suite);
    let final_of = |unit| value(unit, "INVESTMENT", annual(), "1050", 0);
    let q3_of = |unit| value(unit, "INVESTMENT", Q3, "1200", 0);
    report(&mut stats, "2026", vec![final_of("siming")]).await;
    report(&mut stats, "2026", vec![q3_of("siming")]).await;
    report(&mut stats, "2026", vec![q3_of("huli")]).await;
    report(&mut stats, "2026", vec![final_of("huli")]).await;

    let mut office = IndicatorsServiceClient::new(suite.office());
    let flags = list_flags(&mut office, false).await;
    let flag = |unit: &str| {
        format!("{unit}/indicators/INVESTMENT/periods/2026/flags/final_below_progress-v1")
    };
    assert_eq!(short(&flags), [flag("huli"), flag("siming")], "{flags:#?}");
    let (huli, siming) = (&flags[0], &flags[1]);
    for f in [huli, siming] {
        assert_eq!(f.severity, QualitySeverity::Critical as i32);
        assert_eq!(
            (
                figure(f, "value"),
                figure(f, "progress"),
                figure(f, "progress_period")
            ),
            ("1050".into(), "1200".into(), "2026-Q3".into())
        );
    }
    assert_eq!(
        (&huli.evidence, &huli.explanation),
        (&siming.evidence, &siming.explanation)
    );

    // siming's Q3 corrected below the final: its open flag is withdrawn;
    // above it again: raised again on the final's current version.
    let siming_q3 = name("siming", "INVESTMENT", "2026-Q3");
    correct(&mut stats, siming_q3.clone(), "1000", 31).await;
    let open = short(&list_flags(&mut office, true).await);
    assert_eq!(open, [flag("huli")]);
    correct(&mut stats, siming_q3, "1100", 32).await;
    let again = list_flags(&mut office, true).await;
    assert_eq!(short(&again), [flag("huli"), flag("siming")]);
    assert_eq!(figure(&again[1], "progress"), "1100");

    // huli's flag explained, then its Q3 corrected: it stays as decided.
    let huli_flag = format!("{VALUES}/{}", flag("huli"));
    resolve(
        &mut office,
        &huli_flag,
        QualityFlagState::Explained,
        "年报口径调整，属实",
    )
    .await
    .expect("explained");
    correct(
        &mut stats,
        name("huli", "INVESTMENT", "2026-Q3"),
        "1000",
        33,
    )
    .await;
    let all = list_flags(&mut office, false).await;
    assert_eq!(short(&all), [flag("huli"), flag("siming")]);
    assert_eq!(all[0].state, QualityFlagState::Explained as i32);
    suite.stop().await;
}

/// A data-quality override must name an indicator of the group's
/// framework; a framework must keep the indicators the overrides name.
async fn overrides_name_indicators_of_the_framework(backend: Backend) {
    let suite = Suite::start(backend).await;
    let mut office = evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let scheme = "cycles/2026/groups/districts/scheme";
    let read = async |office: &mut jixiao_tests::Plans| {
        office
            .get_scheme(GetSchemeRequest {
                name: scheme.into(),
            })
            .await
            .expect("scheme")
            .into_inner()
    };
    let before = read(&mut office).await;
    let overrides = |codes: &[&str]| UpdateSchemeRequest {
        scheme: Some(Scheme {
            name: scheme.into(),
            data_quality: Some(DataQualityRules {
                indicators: codes
                    .iter()
                    .map(|c| IndicatorQualityRules {
                        indicator: c.to_string(),
                        cumulative: true,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["data_quality".into()],
        }),
    };
    let err = office
        .update_scheme(overrides(&["INVESTMENT", "INVESTMNET"]))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::InvalidArgument, "VALIDATION_FAILED".into())
    );
    assert_eq!(
        bad_fields(&err),
        ["scheme.data_quality.indicators[1].indicator"]
    );
    assert!(err.message().contains("INVESTMNET"), "{err:?}");
    // Nothing was stored: the scheme, its etag included, is as it was.
    assert_eq!(read(&mut office).await, before);

    // With the override in force, a framework without its indicator (here
    // renamed) is refused and the framework stays.
    office
        .update_scheme(overrides(&["INVESTMENT"]))
        .await
        .expect("a known indicator");
    let framework_name = "cycles/2026/groups/districts/framework";
    let mut renamed = framework();
    renamed
        .iter_mut()
        .filter(|i| i.code == "INVESTMENT")
        .for_each(|i| i.code = "FIXED_INVESTMENT".into());
    let err = office
        .replace_framework(ReplaceFrameworkRequest {
            name: framework_name.into(),
            indicators: renamed,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::InvalidArgument, "VALIDATION_FAILED".into())
    );
    assert_eq!(bad_fields(&err), ["indicators"]);
    let kept = office
        .get_framework(GetFrameworkRequest {
            name: framework_name.into(),
        })
        .await
        .expect("framework")
        .into_inner();
    assert!(kept.indicators.iter().any(|i| i.code == "INVESTMENT"));
    suite.stop().await;
}

/// The districts' previous cycle (2025) in execution with siming's and
/// huli's final GDP growth.
async fn last_year(suite: &Suite, finals: [(&str, &str); 2]) {
    let mut office = PlansServiceClient::new(suite.office());
    office
        .create_cycle(CreateCycleRequest {
            cycle_id: "2025".into(),
            cycle: Some(Cycle {
                year: 2025,
                title: "2025年度绩效评估".into(),
                deadlines: Some(Deadlines {
                    plan_deadline: ts(now_ms() + DAY),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("the previous cycle");
    districts(&mut office, "2025").await;
    let plans = finals.map(|(unit, _)| (unit, targets(["6", "0.5", "95", "300", "1000"])));
    approve_plans(suite, "2025", &plans).await;
    set_phase(suite, "2025", Phase::Execution).await;
    let period = Some(Period {
        kind: PeriodKind::Annual as i32,
        year: 2025,
        index: 0,
    });
    let values = finals
        .iter()
        .map(|(unit, v)| value(unit, "GDP_GROWTH", period, v, 0))
        .collect();
    report(&mut stats(suite), "2025", values).await;
}

/// YEAR_ON_YEAR_JUMP against the unit's final value of the cycle a year
/// before: siming's 6 → 9.1 is beyond the default threshold 0.5, huli's
/// 7 → 8 is not.
async fn a_final_far_from_last_cycles_is_flagged(backend: Backend) {
    let suite = Suite::start(backend).await;
    rules_year(&suite, QualitySeverity::Critical).await;
    last_year(&suite, [("siming", "6"), ("huli", "7")]).await;
    report(
        &mut stats(&suite),
        "2026",
        vec![
            value("siming", "GDP_GROWTH", annual(), "9.1", 0),
            value("huli", "GDP_GROWTH", annual(), "8", 0),
        ],
    )
    .await;
    let mut office = IndicatorsServiceClient::new(suite.office());
    let flags = list_flags(&mut office, false).await;
    assert_eq!(
        short(&flags),
        ["siming/indicators/GDP_GROWTH/periods/2026/flags/year_on_year_jump-v1"]
    );
    let f = &flags[0];
    assert_eq!(f.kind, ValueFlagKind::YearOnYearJump as i32);
    assert_eq!(f.severity, QualitySeverity::Warning as i32);
    assert_eq!(
        (
            figure(f, "value"),
            figure(f, "reference"),
            figure(f, "reference_cycle"),
            figure(f, "change"),
            figure(f, "threshold")
        ),
        (
            "9.1".into(),
            "6".into(),
            "2025".into(),
            "0.5166666666666666666666666667".into(),
            "0.5".into()
        )
    );
    assert_eq!(
        f.explanation,
        "changed by 0.5166666666666666666666666667 against 6 in cycle 2025 (threshold 0.5)"
    );
    let huli = get(&mut office, &name("huli", "GDP_GROWTH", "2026")).await;
    assert!(huli.flags.is_empty(), "{huli:?}");
    suite.stop().await;
}

on_both_databases!(
    planted_anomalies_are_flagged_with_their_figures,
    flags_are_resolved_by_the_office_and_evaluators_only,
    blocking_flags_hold_publication_until_resolved,
    concurrent_reports_are_flagged_as_one_by_one,
    a_final_is_checked_against_its_progress_in_either_order,
    overrides_name_indicators_of_the_framework,
    a_final_far_from_last_cycles_is_flagged,
);
