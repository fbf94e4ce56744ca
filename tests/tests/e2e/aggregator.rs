//! The aggregator end to end in split mode: each of the five services on
//! its own port with its own database, as in production. A small cycle is
//! built through the public RPCs of all five, and the standings, the
//! published table, verification, staleness and feedback are checked
//! digit for digit against hand-computed values.

use std::time::Duration;

use jixiao::Target;
use jixiao_proto::{
    aggregator::{
        Component, GetArchiveRequest, GetDistributionRequest, GetFeedbackRequest,
        GetPublicationRequest, GetStandingsRequest, ListPublicationsRequest, PublicationDecision,
        PublishResultsRequest, StandingRow, Standings, VerifyPublicationRequest,
        WatchStandingsRequest, aggregator_service_client::AggregatorServiceClient,
    },
    indicators::{
        BatchReportValuesRequest, EnterAssessedScoreRequest,
        indicators_service_client::IndicatorsServiceClient,
    },
    inspections::{
        ConfirmFindingRequest, ContestFindingRequest, CreateInspectionRequest,
        CreateSelfInspectionItemRequest, DecideContestRequest, Finding, Inspection, InspectionKind,
        SelfInspectionItem, VerifySelfInspectionItemRequest,
        inspections_service_client::InspectionsServiceClient,
    },
    plans::{
        Cycle, Deadlines, Phase, Scheme, UpdateCycleRequest, UpdateSchemeRequest, WeightedKey,
        plans_service_client::PlansServiceClient,
    },
    reviews::{
        Campaign, CampaignMode, CreateCampaignRequest, MutualRating, PushUnitResultsRequest,
        PushVotesRequest, SubmitMutualRatingRequest, UnitResult, Vote,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::Role;
use jixiao_testkit::{Authed, Backend, Suite, on_both_databases};
use jixiao_tests::{
    DAY, Split, approve_plans, complete_indicators, dec, evaluation_year, executing_year,
    final_values, now_ms, reason, set_phase, targets, ts,
};
use sqlx::Connection;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

const GROUP: &str = "cycles/2026/groups/districts";
type Aggregator = AggregatorServiceClient<Authed>;

/// The office's aggregator client.
fn office(split: &Split) -> Aggregator {
    AggregatorServiceClient::new(split.aggregator.office())
}

fn value(d: &Option<jixiao_proto::Decimal>) -> &str {
    d.as_ref().map_or("-", |d| d.value.as_str())
}

/// rank, unit, indicator, survey, online, mutual, review, deductions,
/// credits, adjustment, composite: the published table's columns.
fn columns(r: &StandingRow) -> String {
    format!(
        "{} {} {} {} {} {} {} {} {} {} {}",
        r.rank,
        r.unit.trim_start_matches("units/"),
        value(&r.indicator),
        value(&r.survey),
        value(&r.online),
        value(&r.mutual),
        value(&r.review_total),
        value(&r.deductions),
        value(&r.credits),
        value(&r.adjustment),
        value(&r.composite),
    )
}

async fn standings(client: &mut Aggregator) -> Standings {
    client
        .get_standings(GetStandingsRequest {
            group: GROUP.into(),
            ..Default::default()
        })
        .await
        .expect("standings")
        .into_inner()
}

/// Polls the standings until `done` holds (the change streams deliver
/// within about a second; the deadline is generous for slow machines).
async fn standings_until(
    client: &mut Aggregator,
    what: &str,
    done: impl Fn(&Standings) -> bool,
) -> Standings {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = standings(client).await;
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "standings never showed {what}: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn row<'a>(s: &'a Standings, unit: &str) -> &'a StandingRow {
    s.rows
        .iter()
        .find(|r| r.unit == format!("units/{unit}"))
        .expect("unit row")
}

/// Indicator totals: siming 53, huli 48, jimei 43.083334 (see the
/// indicators tests for the points per method).
async fn indicator_year(split: &Split) {
    let mut stats = IndicatorsServiceClient::new(split.indicators.as_roles(
        "stats",
        &[Role::Provider],
        Some("stats"),
    ));
    let values = final_values();
    stats
        .batch_report_values(BatchReportValuesRequest {
            parent: "cycles/2026".into(),
            values,
            request_id: String::new(),
        })
        .await
        .expect("finals");
    let mut evaluator = IndicatorsServiceClient::new(split.indicators.as_roles(
        "eval-1",
        &[Role::Evaluator],
        None,
    ));
    for (unit, score) in [("siming", "4.5"), ("huli", "4"), ("jimei", "0.5")] {
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
}

/// An evaluator revises a unit's assessed KEY_PROJECTS score.
async fn revise_key_projects(split: &Split, unit: &str, score: &str) {
    IndicatorsServiceClient::new(
        split
            .indicators
            .as_roles("eval-1", &[Role::Evaluator], None),
    )
    .enter_assessed_score(EnterAssessedScoreRequest {
        parent: "cycles/2026".into(),
        unit: format!("units/{unit}"),
        indicator: "KEY_PROJECTS".into(),
        score: dec(score),
        justification: "复核后调整".into(),
        request_id: String::new(),
    })
    .await
    .expect("revised score");
}

/// Review components: survey by unit results (index × 30), online by
/// votes (5 × mean), mutual by ratings of the other districts (5 × mean).
/// jimei's survey result is left for later.
async fn review_year(split: &Split) {
    let mut office = ReviewsServiceClient::new(split.reviews.office());
    for (id, mode) in [
        ("survey", CampaignMode::UnitResults),
        ("portal", CampaignMode::OnlineVotes),
    ] {
        office
            .create_campaign(CreateCampaignRequest {
                parent: "cycles/2026".into(),
                campaign_id: id.into(),
                campaign: Some(Campaign {
                    group: GROUP.into(),
                    title: format!("2026 {id}"),
                    mode: mode as i32,
                    platforms: vec!["platform-a".into()],
                    open_time: ts(now_ms() - 30 * DAY),
                    close_time: ts(now_ms() + 30 * DAY),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("campaign");
    }
    let mut platform = ReviewsServiceClient::new(split.reviews.as_roles(
        "platform-a",
        &[Role::SurveyPlatform],
        None,
    ));
    // 0.6001667 × 30 = 18.005001 → 18.005; 0.9001667 × 30 = 27.005001 → 27.005
    platform
        .push_unit_results(PushUnitResultsRequest {
            campaign: "cycles/2026/campaigns/survey".into(),
            results: [("siming", "0.6001667"), ("huli", "0.9001667")]
                .iter()
                .map(|(u, i)| UnitResult {
                    unit: format!("units/{u}"),
                    index: dec(i),
                    sample_size: 400,
                })
                .collect(),
            request_id: "firm-1".into(),
        })
        .await
        .expect("unit results");
    let t = now_ms() - 5 * DAY;
    platform
        .push_votes(PushVotesRequest {
            campaign: "cycles/2026/campaigns/portal".into(),
            votes: [
                ("siming", "basically_satisfied"),
                ("huli", "basically_satisfied"),
                ("jimei", "satisfied"),
            ]
            .iter()
            .enumerate()
            .map(|(i, (u, a))| Vote {
                vote_id: format!("v{i}"),
                voter: format!("voter-{i}"),
                unit: format!("units/{u}"),
                answer: a.to_string(),
                cast_time: ts(t),
            })
            .collect(),
        })
        .await
        .expect("votes");
    for (rater, ratee, grade) in [
        ("huli", "siming", "good"),
        ("jimei", "siming", "poor"),
        ("siming", "huli", "fair"),
        ("jimei", "huli", "fair"),
        ("siming", "jimei", "excellent"),
        ("huli", "jimei", "good"),
    ] {
        ReviewsServiceClient::new(split.reviews.unit(rater))
            .submit_mutual_rating(SubmitMutualRatingRequest {
                parent: "cycles/2026".into(),
                rating: Some(MutualRating {
                    rater: format!("units/{rater}"),
                    ratee: format!("units/{ratee}"),
                    grade: grade.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("mutual rating");
    }
}

/// Inspection figures: siming 2.5 deducted, 3.0 credited (credits exceed
/// deductions: 0); huli 5.0 + 3.0 deducted, 1.0 credited (net 7 capped at
/// −5); jimei 1.0 deducted plus a 2.0 finding it contests. Returns the
/// contested finding.
async fn inspection_year(split: &Split) -> Finding {
    let mut inspector = InspectionsServiceClient::new(split.inspections.as_roles(
        "inspector-li",
        &[Role::Inspector],
        None,
    ));
    let mut office = InspectionsServiceClient::new(split.inspections.office());
    let mut contested = None;
    for (unit, deductions) in [
        ("siming", vec!["2.5"]),
        ("huli", vec!["5.0", "3.0"]),
        ("jimei", vec!["1.0", "2.0"]),
    ] {
        let inspection = inspector
            .create_inspection(CreateInspectionRequest {
                parent: "cycles/2026".into(),
                inspection: Some(Inspection {
                    unit: format!("units/{unit}"),
                    kind: InspectionKind::Covert as i32,
                    inspect_time: ts(now_ms() - 3 * DAY),
                    inspectors: vec!["李明".into()],
                    place: "政务服务中心".into(),
                    findings: deductions
                        .iter()
                        .map(|d| Finding {
                            category: "absence".into(),
                            description: "窗口无人".into(),
                            deduction: dec(d),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            })
            .await
            .expect("inspection")
            .into_inner();
        for f in &inspection.findings {
            office
                .confirm_finding(ConfirmFindingRequest {
                    name: f.name.clone(),
                })
                .await
                .expect("confirm");
        }
        if unit == "jimei" {
            contested = Some(
                InspectionsServiceClient::new(split.inspections.unit("jimei"))
                    .contest_finding(ContestFindingRequest {
                        name: inspection.findings[1].name.clone(),
                        reason: "当日系统故障".into(),
                    })
                    .await
                    .expect("contest")
                    .into_inner(),
            );
        }
    }
    for (unit, item_type) in [("siming", "major_problem"), ("huli", "problem_found")] {
        let item = InspectionsServiceClient::new(split.inspections.unit(unit))
            .create_self_inspection_item(CreateSelfInspectionItemRequest {
                parent: "cycles/2026".into(),
                item: Some(SelfInspectionItem {
                    unit: format!("units/{unit}"),
                    item_type: item_type.into(),
                    problem: "窗口人员迟到".into(),
                    action_taken: "约谈并通报".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
                ..Default::default()
            })
            .await
            .expect("self-inspection item")
            .into_inner();
        office
            .verify_self_inspection_item(VerifySelfInspectionItemRequest {
                name: item.name,
                verify: true,
                note: String::new(),
            })
            .await
            .expect("verify item");
    }
    contested.unwrap()
}

async fn publish(
    client: &mut Aggregator,
    req: PublishResultsRequest,
) -> Result<jixiao_proto::aggregator::Publication, tonic::Status> {
    client.publish_results(req).await.map(|r| r.into_inner())
}

/// The year up to execution with every component recorded; returns the
/// contested finding.
async fn recorded_year(split: &Split) -> Finding {
    let mut plans = evaluation_year(&split.plans, "2026", now_ms() + DAY).await;
    let credit = |k: &str, v: &str| WeightedKey {
        key: k.into(),
        value: dec(v),
    };
    plans
        .update_scheme(UpdateSchemeRequest {
            scheme: Some(Scheme {
                name: format!("{GROUP}/scheme"),
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
    approve_plans(
        &split.plans,
        "2026",
        &[
            ("siming", targets(["8", "0.45", "95", "300", "1000"])),
            ("huli", targets(["7", "0.5", "95", "300", "1000"])),
            ("jimei", targets(["6", "0.45", "95", "300", "1000"])),
        ],
    )
    .await;
    set_phase(&split.plans, "2026", Phase::Execution).await;
    indicator_year(split).await;
    review_year(split).await;
    inspection_year(split).await
}

async fn a_split_cycle_is_ranked_published_verified_and_survives_a_service_outage(
    backend: Backend,
) {
    let split = Split::start(backend.clone()).await;
    let contested = recorded_year(&split).await;

    let mut office = office(&split);
    // Publication waits for ASSESSMENT.
    let err = publish(
        &mut office,
        PublishResultsRequest {
            group: GROUP.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "WRONG_PHASE".into())
    );
    set_phase(&split.plans, "2026", Phase::Assessment).await;

    // jimei has no survey result and a contest pending: both are listed.
    let err = publish(
        &mut office,
        PublishResultsRequest {
            group: GROUP.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.code(), reason(&err)),
        (Code::FailedPrecondition, "INCOMPLETE".into())
    );
    let listed: Vec<(String, String, String)> = err
        .get_error_details()
        .precondition_failure()
        .expect("precondition failure")
        .violations
        .iter()
        .map(|v| (v.r#type.clone(), v.subject.clone(), v.description.clone()))
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        (listed[0].0.as_str(), listed[0].1.as_str()),
        ("MISSING_COMPONENT", "units/jimei")
    );
    assert!(listed[0].2.starts_with("SURVEY"), "{listed:?}");
    assert_eq!(
        (listed[1].0.as_str(), listed[1].1.as_str()),
        ("UNRESOLVED_FLAG", "units/jimei")
    );
    assert!(listed[1].2.contains("CONTEST_PENDING"), "{listed:?}");
    // A decision that matches nothing open is refused by field.
    let err = publish(
        &mut office,
        PublishResultsRequest {
            group: GROUP.into(),
            decisions: vec![PublicationDecision {
                unit: "units/siming".into(),
                component: Component::Survey as i32,
                flag: String::new(),
                reason: "no survey".into(),
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(jixiao_tests::bad_fields(&err), ["decisions[0]"]);

    let before = standings(&mut office).await;
    assert_eq!(row(&before, "jimei").composite, None);
    assert_eq!(row(&before, "jimei").missing, [Component::Survey as i32]);
    assert_eq!(row(&before, "jimei").rank, 0);

    // A dashboard watches; the missing result arrives and the contest is
    // withdrawn; both reach the standings through the change streams.
    let mut watch =
        AggregatorServiceClient::new(split.aggregator.as_roles("wall", &[Role::Viewer], None))
            .watch_standings(WatchStandingsRequest {
                group: GROUP.into(),
                ..Default::default()
            })
            .await
            .expect("watch")
            .into_inner();
    // The watcher is sent the very table a reader gets (both are served
    // from the bytes encoded once per refresh).
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first, before);
    ReviewsServiceClient::new(
        split
            .reviews
            .as_roles("platform-a", &[Role::SurveyPlatform], None),
    )
    .push_unit_results(PushUnitResultsRequest {
        campaign: "cycles/2026/campaigns/survey".into(),
        results: vec![UnitResult {
            unit: "units/jimei".into(),
            index: dec("0.85"),
            sample_size: 400,
        }],
        request_id: "firm-2".into(),
    })
    .await
    .expect("jimei result");
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let s = watch.next().await.unwrap().unwrap();
            if row(&s, "jimei").survey.is_some() {
                return s;
            }
        }
    })
    .await
    .expect("the watch shows jimei's survey");
    assert!(seen.revision > before.revision);
    InspectionsServiceClient::new(split.inspections.office())
        .decide_contest(DecideContestRequest {
            name: contested.name.clone(),
            uphold: false,
            note: "系统故障属实".into(),
        })
        .await
        .expect("withdraw");
    let current = standings_until(&mut office, "jimei complete", |s| {
        row(s, "jimei").composite.is_some() && s.rows.iter().all(|r| r.flags.is_empty())
    })
    .await;

    // Hand-computed (DOMAIN.md §3): components rounded to 3 places, review
    // total and composite sums of rounded parts. siming and huli tie at
    // 77.005 and the indicator score breaks the tie.
    //   siming 53 + (18.005 + 4 + 2) + clamp(3 − 2.5) 0       = 77.005
    //   huli   48 + (27.005 + 4 + 3) + clamp(1 − 8, −5) −5    = 77.005
    //   jimei  43.083 (43.083334) + (25.5 + 5 + 4.5) − 1      = 77.083
    let expected = [
        "1 jimei 43.083 25.500 5.000 4.500 35.000 1.000 0.000 -1.000 77.083",
        "2 siming 53.000 18.005 4.000 2.000 24.005 2.500 3.000 0.000 77.005",
        "3 huli 48.000 27.005 4.000 3.000 34.005 8.000 1.000 -5.000 77.005",
    ];
    let table: Vec<String> = current.rows.iter().map(columns).collect();
    assert_eq!(table, expected);
    assert!(!current.stale);
    assert_eq!(row(&current, "jimei").unit_display_name, "集美区人民政府");

    // Roles: a unit reads no provisional standings, an evaluator publishes
    // nothing, a unit reads only its own feedback.
    let err = AggregatorServiceClient::new(split.aggregator.unit("huli"))
        .get_standings(GetStandingsRequest {
            group: GROUP.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = AggregatorServiceClient::new(split.aggregator.as_roles(
        "eval-1",
        &[Role::Evaluator],
        None,
    ))
    .publish_results(PublishResultsRequest {
        group: GROUP.into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = AggregatorServiceClient::new(split.aggregator.unit("huli"))
        .get_feedback(GetFeedbackRequest {
            group: GROUP.into(),
            unit: "units/jimei".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = AggregatorServiceClient::new(split.aggregator.anonymous())
        .get_standings(GetStandingsRequest {
            group: GROUP.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Provisional feedback: points lost largest first, findings, credits.
    let feedback = AggregatorServiceClient::new(split.aggregator.unit("huli"))
        .get_feedback(GetFeedbackRequest {
            group: GROUP.into(),
            unit: "units/huli".into(),
        })
        .await
        .expect("own feedback")
        .into_inner();
    assert!(!feedback.published);
    assert_eq!(columns(feedback.row.as_ref().unwrap()), expected[2]);
    let lost: Vec<(String, String)> = feedback
        .losses
        .iter()
        .map(|l| (l.indicator.clone(), value(&l.points_lost).to_string()))
        .collect();
    assert_eq!(
        lost[0],
        ("APPROVAL_ONLINE_RATE".to_string(), "10".to_string())
    );
    assert_eq!(feedback.findings.len(), 2);
    assert_eq!(feedback.to_rectify.len(), 0);
    assert_eq!(feedback.credits.len(), 1);

    // Publish, verify.
    let published = publish(
        &mut office,
        PublishResultsRequest {
            group: GROUP.into(),
            request_id: "publish-2026".into(),
            ..Default::default()
        },
    )
    .await
    .expect("publish");
    assert_eq!(published.name, format!("{GROUP}/publications/1"));
    assert_eq!(
        published.rows.iter().map(columns).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(published.digest.len(), 64);
    let again = publish(
        &mut office,
        PublishResultsRequest {
            group: GROUP.into(),
            request_id: "publish-2026".into(),
            ..Default::default()
        },
    )
    .await
    .expect("retried publish");
    assert_eq!((again.version, &again.digest), (1, &published.digest));
    let verified = office
        .verify_publication(VerifyPublicationRequest {
            name: published.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verified.valid, "{:?}", verified.problems);
    assert_eq!(verified.recomputed_digest, published.digest);

    // A correction needs its reason and is a new version; the first stays.
    let err = publish(
        &mut office,
        PublishResultsRequest {
            group: GROUP.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(jixiao_tests::bad_fields(&err), ["correction_reason"]);
    let second = publish(
        &mut office,
        PublishResultsRequest {
            group: GROUP.into(),
            correction_reason: "复核后重新发布".into(),
            ..Default::default()
        },
    )
    .await
    .expect("correction");
    assert_eq!(second.version, 2);
    assert_eq!(second.digest, published.digest, "same inputs, same digest");
    let list = AggregatorServiceClient::new(split.aggregator.unit("siming"))
        .list_publications(ListPublicationsRequest {
            group: GROUP.into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.publications[0].version, 2);
    assert!(!list.next_page_token.is_empty());
    let first = AggregatorServiceClient::new(split.aggregator.unit("siming"))
        .get_publication(GetPublicationRequest {
            name: published.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.rows, published.rows);

    // Published feedback and the archive.
    let feedback = AggregatorServiceClient::new(split.aggregator.unit("jimei"))
        .get_feedback(GetFeedbackRequest {
            group: GROUP.into(),
            unit: "units/jimei".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(feedback.published);
    assert_eq!(feedback.to_rectify.len(), 0);
    let archive = AggregatorServiceClient::new(split.aggregator.unit("siming"))
        .get_archive(GetArchiveRequest {
            unit: "units/siming".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(archive.entries.len(), 1);
    assert_eq!(
        archive.entries[0].publication,
        format!("{GROUP}/publications/2")
    );
    let composite = office
        .get_distribution(GetDistributionRequest {
            group: GROUP.into(),
            component: Component::Composite as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            value(&composite.min),
            value(&composite.median),
            value(&composite.max),
            value(&composite.mean),
            composite.count
        ),
        ("77.005", "77.005", "77.083", "77.031", 3)
    );
    // A component outside the enum is named as such, not as missing.
    for (component, says) in [(0, "is required"), (42, "not one of the Component values")] {
        let err = office
            .get_distribution(GetDistributionRequest {
                group: GROUP.into(),
                component,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains(says),
            "{component}: {}",
            err.message()
        );
    }

    // A tampered stored input no longer verifies.
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&split.aggregator.database_url(Target::Aggregator))
        .await
        .expect("aggregator database");
    let changed =
        sqlx::query("UPDATE publications SET inputs = REPLACE(inputs, $1, $2) WHERE version = 1")
            .bind("review\t25.5\t")
            .bind("review\t26.5\t")
            .execute(&mut db)
            .await
            .unwrap()
            .rows_affected();
    assert_eq!(changed, 1);
    db.close().await.ok();
    let verified = office
        .verify_publication(VerifyPublicationRequest {
            name: published.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!verified.valid);
    assert_ne!(verified.recomputed_digest, published.digest);
    assert!(
        verified.problems.iter().any(|p| p.contains("units/jimei")),
        "{:?}",
        verified.problems
    );

    // The reviews service goes down: the last standings stay readable,
    // marked stale naming it; back up, the mark clears.
    let mut split = split;
    split.reviews.halt().await;
    let stale = standings_until(&mut office, "the stale mark", |s| s.stale).await;
    assert!(
        stale.stale_reason.contains("reviews service"),
        "{}",
        stale.stale_reason
    );
    assert_eq!(stale.rows.iter().map(columns).collect::<Vec<_>>(), expected);
    let err = publish(
        &mut office,
        PublishResultsRequest {
            group: GROUP.into(),
            correction_reason: "x".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&err), "STANDINGS_STALE");
    split.reviews.resume().await;
    let fresh = standings_until(&mut office, "the stale mark cleared", |s| !s.stale).await;
    assert_eq!(fresh.rows.iter().map(columns).collect::<Vec<_>>(), expected);

    split.stop().await;
}

/// A plan-side change (an amended target, approved) reaches the standings
/// through the plans change stream, not at the next reconciliation (30 s
/// away in the test kit).
async fn an_amended_target_reaches_the_standings(backend: Backend) {
    use jixiao_proto::plans::{
        AmendPlanRequest, ApprovePlanRequest, GetPlanRequest, Plan, SubmitPlanRequest,
        UpdatePlanRequest, plans_service_client::PlansServiceClient,
    };
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    complete_indicators(&suite).await;
    let mut office = AggregatorServiceClient::new(suite.office());
    let indicator = |s: &Standings| row(s, "jimei").indicator.as_ref().map(|d| d.value.clone());
    // 20 × 5/6 + 15 × 0.45/0.6 + 10 + 5 × 100/300 + 5 × 0.6 + 4 = 46.583334
    standings_until(&mut office, "jimei's indicator score", |s| {
        indicator(s).as_deref() == Some("46.583")
    })
    .await;

    // jimei's GDP target goes from 6 to 10 by an approved amendment: its
    // 5 % growth now scores half of the ratio's weight instead of 5/6.
    let mut unit = PlansServiceClient::new(suite.unit("jimei"));
    let mut plans = PlansServiceClient::new(suite.office());
    let name = "cycles/2026/plans/jimei".to_string();
    let plan = plans
        .get_plan(GetPlanRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner();
    let plan = unit
        .amend_plan(AmendPlanRequest {
            name: name.clone(),
            etag: plan.etag,
            reason: "市里调高增长目标".into(),
        })
        .await
        .expect("amend")
        .into_inner();
    let plan = unit
        .update_plan(UpdatePlanRequest {
            plan: Some(Plan {
                name: name.clone(),
                targets: targets(["10", "0.45", "95", "300", "1000"]),
                etag: plan.etag,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["targets".into()],
            }),
        })
        .await
        .expect("update")
        .into_inner();
    let plan = unit
        .submit_plan(SubmitPlanRequest {
            name: name.clone(),
            etag: plan.etag,
            request_id: String::new(),
        })
        .await
        .expect("submit")
        .into_inner();
    plans
        .approve_plan(ApprovePlanRequest {
            name,
            etag: plan.etag,
            comment: String::new(),
        })
        .await
        .expect("approve");
    // GDP now scores 20 × 5/10 = 10: 39.916667.
    standings_until(&mut office, "the amended target", |s| {
        indicator(s).as_deref() == Some("39.917")
    })
    .await;
    suite.stop().await;
}

/// The component services answer "unchanged" to a reader that holds the
/// current revision (the aggregator's reconciliation asks so, sparing a
/// recomputation of every group), and the full table to anyone else.
async fn a_current_revision_is_answered_unchanged(backend: Backend) {
    use jixiao_proto::{
        indicators::GetGroupScoresRequest,
        inspections::GetGroupAdjustmentsRequest,
        plans::{GetGroupRequest, plans_service_client::PlansServiceClient},
        reviews::GetGroupReviewScoresRequest,
    };
    let split = Split::start(backend).await;
    recorded_year(&split).await;
    let service = |s: &Suite| s.as_roles("aggregator", &[Role::Service], None);
    let mut indicators = IndicatorsServiceClient::new(service(&split.indicators));
    let mut reviews = ReviewsServiceClient::new(service(&split.reviews));
    let mut inspections = InspectionsServiceClient::new(service(&split.inspections));
    // (revision, unchanged, rows) of each service for a known revision.
    let mut ask = async |known: [i64; 3]| -> [(i64, bool, usize); 3] {
        let i = indicators
            .get_group_scores(GetGroupScoresRequest {
                group: GROUP.into(),
                known_revision: known[0],
            })
            .await
            .expect("indicator scores")
            .into_inner();
        let r = reviews
            .get_group_review_scores(GetGroupReviewScoresRequest {
                group: GROUP.into(),
                known_revision: known[1],
                ..Default::default()
            })
            .await
            .expect("review scores")
            .into_inner();
        let n = inspections
            .get_group_adjustments(GetGroupAdjustmentsRequest {
                group: GROUP.into(),
                known_revision: known[2],
            })
            .await
            .expect("adjustments")
            .into_inner();
        [
            (i.revision, i.unchanged, i.units.len()),
            (r.revision, r.unchanged, r.units.len()),
            (n.revision, n.unchanged, n.units.len()),
        ]
    };
    let full = ask([0; 3]).await;
    let current = full.map(|(revision, _, _)| revision);
    for (revision, unchanged, rows) in full {
        assert!(revision > 0 && !unchanged && rows == 3, "{full:?}");
    }
    assert_eq!(
        ask(current).await,
        current.map(|revision| (revision, true, 0))
    );
    assert_eq!(ask(current.map(|r| r - 1)).await, full);

    // A change moves the counter: the old revision gets the new table.
    revise_key_projects(&split, "jimei", "3").await;
    let after = ask(current).await;
    assert_eq!(after[0].0, current[0] + 1);
    assert_eq!((after[0].1, after[0].2), (false, 3));
    assert_eq!(
        &after[1..],
        &current[1..]
            .iter()
            .map(|r| (*r, true, 0))
            .collect::<Vec<_>>()[..]
    );

    // Plans reports its own counter on the group, which the aggregator keys
    // the copies on; a plan-side change moves it.
    let mut plans = PlansServiceClient::new(service(&split.plans));
    let group = |p: &mut PlansServiceClient<Authed>| {
        let mut p = p.clone();
        async move {
            p.get_group(GetGroupRequest { name: GROUP.into() })
                .await
                .expect("group")
                .into_inner()
                .revision
        }
    };
    let before = group(&mut plans).await;
    assert!(before > 0);
    set_phase(&split.plans, "2026", Phase::Assessment).await;
    assert!(group(&mut plans).await > before);

    split.stop().await;
}

/// A component read that fails while its change stream is up (a pool
/// timing out under load, a replica restarting behind a balancer) is tried
/// again about a second later, not left to the reconciliation 30 s away:
/// here the indicators service cannot read its assessed scores while a
/// correction's signal arrives, and can again a moment later.
async fn a_failed_component_read_is_retried_soon(backend: Backend) {
    use jixiao_proto::indicators::CorrectValueRequest;
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    complete_indicators(&suite).await;
    let mut office = AggregatorServiceClient::new(suite.office());
    let indicator = |s: &Standings| row(s, "jimei").indicator.as_ref().map(|d| d.value.clone());
    standings_until(&mut office, "jimei's indicator score", |s| {
        indicator(s).as_deref() == Some("46.583")
    })
    .await;

    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&suite.database_url(Target::Indicators))
        .await
        .expect("indicators database");
    let rename = |from: &str, to: &str| format!("ALTER TABLE {from} RENAME TO {to}");
    sqlx::query(sqlx::AssertSqlSafe(rename(
        "assessed_scores",
        "assessed_scores_away",
    )))
    .execute(&mut db)
    .await
    .unwrap();
    // jimei's growth corrected from 5 to its target 6: 20 instead of 20 × 5/6.
    IndicatorsServiceClient::new(suite.as_roles(
        jixiao_tests::PROVIDER,
        &[Role::Provider],
        Some(jixiao_tests::PROVIDER),
    ))
    .correct_value(CorrectValueRequest {
        name: "cycles/2026/units/jimei/indicators/GDP_GROWTH/periods/2026".into(),
        value: dec("6"),
        evidence: jixiao_tests::evidence(),
        reason: "统计局年报修订".into(),
        request_id: "retry-1".into(),
    })
    .await
    .expect("correction");
    let stale = standings_until(&mut office, "the failed read", |s| s.stale).await;
    assert!(stale.stale_reason.contains("indicators"), "{stale:?}");
    sqlx::query(sqlx::AssertSqlSafe(rename(
        "assessed_scores_away",
        "assessed_scores",
    )))
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.ok();
    standings_until(&mut office, "the correction, once readable", |s| {
        !s.stale && indicator(s).as_deref() == Some("49.917")
    })
    .await;
    suite.stop().await;
}

/// A component that hangs (its process stopped: the connection stays open
/// and nothing arrives) is given up on after its patience, not the whole
/// call timeout: the other components' changes are published meanwhile,
/// its last figures stay, marked stale with the reason, and once it
/// answers again the mark clears.
async fn a_hung_component_does_not_hold_the_others(backend: Backend) {
    let (split, relay) = Split::start_with_reviews_relay(backend).await;
    recorded_year(&split).await;
    let mut office = office(&split);
    let indicator = |s: &Standings| value(&row(s, "jimei").indicator).to_string();
    let before = standings_until(&mut office, "the year's figures", |s| {
        !s.stale && row(s, "siming").online.is_some() && indicator(s) != "-"
    })
    .await;

    relay.freeze();
    // A reviews revision never written: the aggregator asks the reviews
    // service, whose answer never comes.
    let mut req = tonic::Request::new(GetStandingsRequest {
        group: GROUP.into(),
        min_service_revisions: [("reviews".to_string(), i64::MAX)].into(),
    });
    req.set_timeout(Duration::from_millis(300));
    let err = office.get_standings(req).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    // A plan-side change refetches every component, the hung one too.
    PlansServiceClient::new(split.plans.office())
        .update_cycle(UpdateCycleRequest {
            cycle: Some(Cycle {
                name: "cycles/2026".into(),
                deadlines: Some(Deadlines {
                    review_close: ts(now_ms() + 30 * DAY),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["deadlines.review_close".into()],
            }),
        })
        .await
        .expect("a later review close");
    // Meanwhile an evaluator revises jimei's assessed score.
    revise_key_projects(&split, "jimei", "2").await;
    let hung = standings_until(&mut office, "the revision, reviews marked late", |s| {
        indicator(s) != indicator(&before) && s.stale
    })
    .await;
    // Given up on after its patience (a few times its usual answer, at
    // least a second), well before the call timeout.
    let waited: u64 = hung
        .stale_reason
        .split_once("reviews service is unavailable: no answer within ")
        .and_then(|(_, rest)| rest.split_once(" ms"))
        .and_then(|(ms, _)| ms.parse().ok())
        .unwrap_or_else(|| panic!("{}", hung.stale_reason));
    assert!(
        waited < jixiao_runtime::client::CALL_TIMEOUT.as_millis() as u64,
        "{}",
        hung.stale_reason
    );
    assert_eq!(row(&hung, "siming").online, row(&before, "siming").online);

    relay.thaw();
    let fresh = standings_until(&mut office, "the stale mark cleared", |s| !s.stale).await;
    assert_eq!(indicator(&fresh), indicator(&hung));
    split.stop().await;
}

on_both_databases!(
    a_split_cycle_is_ranked_published_verified_and_survives_a_service_outage,
    an_amended_target_reaches_the_standings,
    a_current_revision_is_answered_unchanged,
    a_failed_component_read_is_retried_soon,
    a_hung_component_does_not_hold_the_others
);
