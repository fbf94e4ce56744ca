//! Read-your-writes: a write's answer names the revision it created
//! (`jixiao-revision`), and one `GetStandings` (or `WatchStandings`) with
//! that revision as `min_service_revisions` answers with standings that
//! include the write, without polling; a condition that cannot hold ends
//! in DEADLINE_EXCEEDED at the caller's deadline.

use std::time::{Duration, Instant};

use jixiao_proto::{
    aggregator::{
        GetStandingsRequest, StandingRow, Standings, WatchStandingsRequest,
        aggregator_service_client::AggregatorServiceClient,
    },
    indicators::{
        BatchReportValuesRequest, EnterAssessedScoreRequest, ReportValueRequest,
        indicators_service_client::IndicatorsServiceClient,
    },
    inspections::{
        ConfirmFindingRequest, CreateInspectionRequest, Finding, Inspection, InspectionKind,
        inspections_service_client::InspectionsServiceClient,
    },
    reviews::{
        CampaignMode, PushResponsesRequest, PushVotesRequest, Vote,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{Role, revisions};
use jixiao_testkit::{Authed, Backend, Suite, on_both_databases};
use jixiao_tests::{
    DAY, PROVIDER, bad_fields, dec, executing_year, final_values, now_ms, reason, response,
    survey_campaign, ts,
};
use tokio_stream::StreamExt;
use tonic::Code;

const GROUP: &str = "cycles/2026/groups/districts";
/// The deadline of a read that must succeed: generous for slow machines;
/// the reads answer as soon as the refresh after the write is done.
const PATIENT: Duration = Duration::from_secs(20);

type Aggregator = AggregatorServiceClient<Authed>;

/// The revision a write's answer names for `service` and the districts.
fn written<T>(answer: &tonic::Response<T>, service: &str) -> i64 {
    let all: Vec<revisions::Written> = answer
        .metadata()
        .get_all(revisions::HEADER)
        .iter()
        .flat_map(|v| revisions::parse(v.to_str().expect("ASCII")).expect("well-formed"))
        .collect();
    all.iter()
        .find(|w| w.service == service && w.group == GROUP)
        .unwrap_or_else(|| panic!("no {service} revision of {GROUP} in {all:?}"))
        .revision
}

fn no_revision<T>(answer: &tonic::Response<T>) {
    assert!(
        answer.metadata().get(revisions::HEADER).is_none(),
        "{:?}",
        answer.metadata()
    );
}

fn condition(wanted: &[(&str, i64)]) -> std::collections::HashMap<String, i64> {
    wanted.iter().map(|(s, r)| (s.to_string(), *r)).collect()
}

/// One `GetStandings` with a condition and a deadline.
async fn standings_including(
    client: &mut Aggregator,
    wanted: &[(&str, i64)],
    deadline: Duration,
) -> Result<Standings, tonic::Status> {
    let mut req = tonic::Request::new(GetStandingsRequest {
        group: GROUP.into(),
        min_service_revisions: condition(wanted),
    });
    req.set_timeout(deadline);
    client.get_standings(req).await.map(|r| r.into_inner())
}

fn row<'a>(s: &'a Standings, unit: &str) -> &'a StandingRow {
    s.rows
        .iter()
        .find(|r| r.unit == format!("units/{unit}"))
        .expect("unit row")
}

fn value(d: &Option<jixiao_proto::Decimal>) -> &str {
    d.as_ref().map_or("-", |d| d.value.as_str())
}

fn revision(s: &Standings, service: &str) -> i64 {
    s.service_revisions.get(service).copied().unwrap_or(0)
}

/// Every write kind the aggregator follows, each read back with one call.
async fn a_write_s_revision_reads_standings_that_include_it(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut office = AggregatorServiceClient::new(suite.office());
    let mut stats =
        IndicatorsServiceClient::new(suite.as_roles(PROVIDER, &[Role::Provider], Some(PROVIDER)));
    let mut evaluator =
        IndicatorsServiceClient::new(suite.as_roles("eval-1", &[Role::Evaluator], None));

    // Every indicator in but jimei's INVESTMENT: jimei's indicator score
    // is missing.
    let (last, rest): (Vec<_>, Vec<_>) = final_values()
        .into_iter()
        .partition(|v| v.unit == "units/jimei" && v.indicator == "INVESTMENT");
    let batch = stats
        .batch_report_values(BatchReportValuesRequest {
            parent: "cycles/2026".into(),
            values: rest,
            request_id: "finals-1".into(),
        })
        .await
        .expect("finals");
    let mut indicators = written(&batch, "indicators");
    for unit in ["siming", "huli", "jimei"] {
        let entered = evaluator
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
        let now = written(&entered, "indicators");
        assert!(now > indicators, "{now} after {indicators}");
        indicators = now;
    }
    let s = standings_including(&mut office, &[("indicators", indicators)], PATIENT)
        .await
        .expect("standings with the assessed scores");
    assert!(revision(&s, "indicators") >= indicators);
    assert_eq!(value(&row(&s, "jimei").indicator), "-");
    assert_eq!(value(&row(&s, "siming").indicator), "52.500");

    // Report a value: one read with its revision shows it.
    let report = ReportValueRequest {
        parent: "cycles/2026".into(),
        value: last.into_iter().next(),
        request_id: "jimei-investment".into(),
    };
    let reported = stats.report_value(report.clone()).await.expect("report");
    let r1 = written(&reported, "indicators");
    assert!(r1 > indicators);
    let started = Instant::now();
    let s = standings_including(&mut office, &[("indicators", r1)], PATIENT)
        .await
        .expect("standings with the reported value");
    assert!(started.elapsed() < PATIENT / 2, "{:?}", started.elapsed());
    assert!(revision(&s, "indicators") >= r1, "{s:?}");
    // 20 × 5/6 + 15 × 0.45/0.6 + 10 + 5 × 100/300 + 5 × 0.6 + 4 = 46.583334
    assert_eq!(value(&row(&s, "jimei").indicator), "46.583");
    // The retry gets the first answer and a revision at least as new.
    let replayed = stats.report_value(report).await.expect("replay");
    assert_eq!(replayed.get_ref(), reported.get_ref());
    assert!(written(&replayed, "indicators") >= r1);

    // A write that changes no figure still moves the revision, and the
    // standings say they include it (the same table, restamped).
    let same = evaluator
        .enter_assessed_score(EnterAssessedScoreRequest {
            parent: "cycles/2026".into(),
            unit: "units/jimei".into(),
            indicator: "KEY_PROJECTS".into(),
            score: dec("4"),
            justification: "复核无变化".into(),
            request_id: String::new(),
        })
        .await
        .expect("same score");
    let r2 = written(&same, "indicators");
    assert!(r2 > r1);
    let again = standings_including(&mut office, &[("indicators", r2)], PATIENT)
        .await
        .expect("standings restamped");
    assert!(revision(&again, "indicators") >= r2);
    assert_eq!(again.rows, s.rows);

    // Survey responses: the push names the revision; resending the same
    // responses (all duplicates) names one at least as new.
    survey_campaign(
        &mut ReviewsServiceClient::new(suite.office()),
        "survey",
        CampaignMode::RawResponses,
    )
    .await;
    let mut platform =
        ReviewsServiceClient::new(suite.as_roles("platform-a", &[Role::SurveyPlatform], None));
    let push = PushResponsesRequest {
        campaign: "cycles/2026/campaigns/survey".into(),
        responses: (0..40)
            .map(|i| response(&format!("r-{i}"), "jimei", "residents", ["satisfied"; 3]))
            .collect(),
    };
    let pushed = platform.push_responses(push.clone()).await.expect("push");
    assert_eq!(pushed.get_ref().accepted, 40);
    let reviews = written(&pushed, "reviews");
    let s = standings_including(&mut office, &[("reviews", reviews)], PATIENT)
        .await
        .expect("standings with the responses");
    assert!(revision(&s, "reviews") >= reviews);
    assert_ne!(value(&row(&s, "jimei").survey), "-", "{s:#?}");
    let resent = platform.push_responses(push.clone()).await.expect("resend");
    assert_eq!(resent.get_ref().duplicates, 40);
    assert!(written(&resent, "reviews") >= reviews);
    // The same ids with other answers are all refused (CONFLICT): such a
    // push changes nothing and names no revision (types.proto).
    let mut changed = push;
    for r in &mut changed.responses {
        r.answers[0].answer = "dissatisfied".into();
    }
    let refused = platform.push_responses(changed).await.expect("conflicts");
    assert_eq!(refused.get_ref().rejected.len(), 40);
    assert!(
        refused.metadata().get("jixiao-revision").is_none(),
        "{:?}",
        refused.metadata()
    );
    // Votes likewise, resent or not.
    survey_campaign(
        &mut ReviewsServiceClient::new(suite.office()),
        "portal",
        CampaignMode::OnlineVotes,
    )
    .await;
    let votes = PushVotesRequest {
        campaign: "cycles/2026/campaigns/portal".into(),
        votes: vec![Vote {
            vote_id: "v-1".into(),
            voter: "voter-1".into(),
            unit: "units/huli".into(),
            answer: "satisfied".into(),
            cast_time: ts(now_ms() - DAY),
        }],
    };
    let voted = platform.push_votes(votes.clone()).await.expect("votes");
    let reviews = written(&voted, "reviews");
    let revoted = platform.push_votes(votes).await.expect("votes again");
    assert_eq!(revoted.get_ref().duplicates, 1);
    assert!(written(&revoted, "reviews") >= reviews);
    let s = standings_including(&mut office, &[("reviews", reviews)], PATIENT)
        .await
        .expect("standings with the vote");
    assert_ne!(value(&row(&s, "huli").online), "-", "{s:#?}");

    // A finding: the draft changes no figure and names no revision; its
    // confirmation does, and one read shows the deduction.
    let mut inspector =
        InspectionsServiceClient::new(suite.as_roles("inspector-li", &[Role::Inspector], None));
    let created = inspector
        .create_inspection(CreateInspectionRequest {
            parent: "cycles/2026".into(),
            inspection: Some(Inspection {
                unit: "units/huli".into(),
                kind: InspectionKind::Covert as i32,
                inspect_time: ts(now_ms() - 3 * DAY),
                inspectors: vec!["李明".into()],
                place: "政务服务中心".into(),
                findings: vec![Finding {
                    category: "absence".into(),
                    description: "窗口无人".into(),
                    deduction: dec("2.0"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: "inspection-1".into(),
            ..Default::default()
        })
        .await
        .expect("inspection");
    no_revision(&created);
    let confirmed = InspectionsServiceClient::new(suite.office())
        .confirm_finding(ConfirmFindingRequest {
            name: created.get_ref().findings[0].name.clone(),
        })
        .await
        .expect("confirm");
    let inspections = written(&confirmed, "inspections");
    let s = standings_including(&mut office, &[("inspections", inspections)], PATIENT)
        .await
        .expect("standings with the finding");
    assert!(revision(&s, "inspections") >= inspections);
    assert_eq!(value(&row(&s, "huli").deductions), "2.000");

    // Every condition at once holds at once now.
    let all = [
        ("indicators", r2),
        ("reviews", reviews),
        ("inspections", inspections),
    ];
    let started = Instant::now();
    standings_including(&mut office, &all, PATIENT)
        .await
        .expect("all three");
    assert!(started.elapsed() < Duration::from_secs(1));

    // A revision no write has made: DEADLINE_EXCEEDED at the deadline.
    let deadline = Duration::from_millis(600);
    let started = Instant::now();
    let err = standings_including(&mut office, &[("reviews", reviews + 1_000_000)], deadline)
        .await
        .expect_err("a revision never made");
    let took = started.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?} after {took:?}");
    assert_eq!(reason(&err), "DEADLINE_EXCEEDED");
    // The server answers a tenth of the timeout early, at most 50 ms (see
    // `jixiao_runtime::deadline::MARGIN`).
    assert!(
        took >= deadline - deadline / 10 && took < deadline * 3,
        "answered after {took:?} for a deadline of {deadline:?}"
    );
    // The standings still answer at once without a condition.
    standings_including(&mut office, &[], Duration::from_secs(5))
        .await
        .expect("plain read");

    suite.stop().await;
}

/// `WatchStandings` with a condition starts with standings that include
/// it; one that cannot hold ends the call with DEADLINE_EXCEEDED.
async fn a_watch_starts_with_standings_that_include_the_write(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    survey_campaign(
        &mut ReviewsServiceClient::new(suite.office()),
        "survey",
        CampaignMode::RawResponses,
    )
    .await;
    let mut viewer = AggregatorServiceClient::new(suite.as_roles("wall", &[Role::Viewer], None));
    // The group is computed before the write, so the watch must wait for
    // a refresh rather than find it in a first computation.
    standings_including(&mut viewer, &[], PATIENT)
        .await
        .expect("first read");
    let mut platform =
        ReviewsServiceClient::new(suite.as_roles("platform-a", &[Role::SurveyPlatform], None));
    let pushed = platform
        .push_responses(PushResponsesRequest {
            campaign: "cycles/2026/campaigns/survey".into(),
            responses: (0..40)
                .map(|i| response(&format!("w-{i}"), "siming", "residents", ["satisfied"; 3]))
                .collect(),
        })
        .await
        .expect("push");
    let reviews = written(&pushed, "reviews");
    let mut req = tonic::Request::new(WatchStandingsRequest {
        group: GROUP.into(),
        min_service_revisions: condition(&[("reviews", reviews)]),
    });
    req.set_timeout(PATIENT);
    let mut stream = viewer
        .watch_standings(req)
        .await
        .expect("watch")
        .into_inner();
    let first = stream
        .next()
        .await
        .expect("a first message")
        .expect("standings");
    assert!(revision(&first, "reviews") >= reviews, "{first:?}");
    assert_ne!(value(&row(&first, "siming").survey), "-", "{first:#?}");
    drop(stream);

    let mut req = tonic::Request::new(WatchStandingsRequest {
        group: GROUP.into(),
        min_service_revisions: condition(&[("reviews", reviews + 1_000_000)]),
    });
    let deadline = Duration::from_millis(500);
    req.set_timeout(deadline);
    let started = Instant::now();
    let err = match viewer.watch_standings(req).await {
        Err(e) => e,
        Ok(stream) => {
            let mut stream = stream.into_inner();
            match stream.next().await {
                Some(Err(e)) => e,
                other => panic!("a message for a revision never made: {other:?}"),
            }
        }
    };
    let took = started.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?} after {took:?}");
    assert!(
        took >= deadline - deadline / 10 && took < deadline * 3,
        "{took:?}"
    );
    suite.stop().await;
}

/// A condition naming an unknown service or a negative revision is
/// INVALID_ARGUMENT naming each bad entry, on both calls.
async fn a_malformed_condition_is_refused_naming_the_field(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let mut office = AggregatorServiceClient::new(suite.office());
    let bad = condition(&[("reviewz", 1), ("reviews", -1), ("indicators", 0)]);
    let expected = [
        r#"min_service_revisions["reviews"]"#,
        r#"min_service_revisions["reviewz"]"#,
    ];
    let err = office
        .get_standings(GetStandingsRequest {
            group: GROUP.into(),
            min_service_revisions: bad.clone(),
        })
        .await
        .expect_err("bad condition");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "VALIDATION_FAILED");
    assert_eq!(bad_fields(&err), expected);
    let err = office
        .watch_standings(WatchStandingsRequest {
            group: GROUP.into(),
            min_service_revisions: bad,
        })
        .await
        .expect_err("bad condition");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&err), expected);
    // With a bad group too, every field is named at once.
    let err = office
        .get_standings(GetStandingsRequest {
            group: "cycles/2026/districts".into(),
            min_service_revisions: condition(&[("plans", -3)]),
        })
        .await
        .expect_err("bad group and condition");
    assert_eq!(
        bad_fields(&err),
        ["group", r#"min_service_revisions["plans"]"#]
    );
    // An unknown group is named as the resource not found.
    let err = office
        .get_standings(GetStandingsRequest {
            group: "cycles/2026/groups/nope".into(),
            min_service_revisions: condition(&[("reviews", 1)]),
        })
        .await
        .expect_err("unknown group");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "cycles/2026/groups/nope not found");
    // Zero asks for nothing: the current standings at once.
    let started = Instant::now();
    standings_including(&mut office, &[("inspections", 0)], Duration::from_secs(10))
        .await
        .expect("zero is no condition");
    assert!(started.elapsed() < Duration::from_secs(5));
    suite.stop().await;
}

/// Waits for a condition cannot take a caller's whole limit of calls in
/// flight: the ninth of one caller is refused at once, its other calls
/// and other callers' waits go on, and a slot given back is free again.
async fn one_caller_s_waits_are_limited_and_its_other_calls_go_on(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    let wall = suite.as_roles("wall", &[Role::Viewer], None);
    let never = [("reviews", 1_000_000_000_i64)];
    // The group's first computation, before anyone waits on it.
    let mut viewer = AggregatorServiceClient::new(wall.clone());
    standings_including(&mut viewer, &[], PATIENT)
        .await
        .expect("first standings");
    // Twelve waits at once with no deadline: eight wait, four are refused.
    let mut waits = Vec::new();
    for _ in 0..12 {
        let mut c = AggregatorServiceClient::new(wall.clone());
        waits.push(tokio::spawn(async move {
            c.get_standings(GetStandingsRequest {
                group: GROUP.into(),
                min_service_revisions: condition(&never),
            })
            .await
        }));
    }
    let started = Instant::now();
    while waits.iter().filter(|w| w.is_finished()).count() < 4 {
        assert!(started.elapsed() < PATIENT, "four waits were never refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut refused = 0;
    for w in std::mem::take(&mut waits) {
        if w.is_finished() {
            let err = w.await.unwrap().expect_err("a refused wait");
            assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
            assert_eq!(reason(&err), "TOO_MANY_CALLS");
            refused += 1;
        } else {
            waits.push(w);
        }
    }
    assert_eq!((refused, waits.len()), (4, 8));
    let err = standings_including(&mut viewer, &never, Duration::from_secs(5))
        .await
        .expect_err("a ninth wait");
    assert_eq!(err.code(), Code::ResourceExhausted);
    // The same caller's other calls, and another caller's waits, go on.
    standings_including(&mut viewer, &[], Duration::from_secs(5))
        .await
        .expect("a plain read by the same caller");
    let mut office = AggregatorServiceClient::new(suite.office());
    let err = standings_including(&mut office, &never, Duration::from_millis(300))
        .await
        .expect_err("the office's wait");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    // A wait given back frees its place.
    let first = waits.remove(0);
    first.abort();
    let _ = first.await;
    let started = Instant::now();
    loop {
        let err = standings_including(&mut viewer, &never, Duration::from_millis(300))
            .await
            .expect_err("a wait that cannot hold");
        if err.code() == Code::DeadlineExceeded {
            break;
        }
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(
            started.elapsed() < PATIENT,
            "the place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in waits {
        w.abort();
    }
    suite.stop().await;
}

on_both_databases!(
    a_write_s_revision_reads_standings_that_include_it,
    a_watch_starts_with_standings_that_include_the_write,
    a_malformed_condition_is_refused_naming_the_field,
    one_caller_s_waits_are_limited_and_its_other_calls_go_on
);
