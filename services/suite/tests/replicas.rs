//! Scaling out with real processes: two `jixiao serve` replicas of each
//! component service on one PostgreSQL database per service, behind
//! Debian's nginx (`grpc_pass`, round robin), and two aggregator replicas
//! on one database of their own, each following the components through
//! nginx on its own. Change signals travel through PostgreSQL
//! (`LISTEN`/`NOTIFY`), so a push stored by one replica reaches a watch
//! stream held by the other.
//!
//! nginx serves two ports: on the first every upstream is the first
//! replica only (one replica per service), on the second both replicas.
//! The test measures freshness (push committed → visible in a
//! `WatchStandings` stream, as `loadgen standings` does) through each,
//! kills a reviews replica with SIGKILL under a stream of pushes, has the
//! platform resend through nginx and checks exact counts, sees a value
//! correction and a confirmed finding reach both aggregators, and
//! publishes on both aggregator replicas at once. PostgreSQL only: SQLite
//! deployments stay single-process.

mod common;
mod nginx;

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use common::Process;
use jixiao_proto::{
    aggregator::{
        Component, ListPublicationsRequest, PublicationDecision, PublishResultsRequest, Standings,
        WatchStandingsRequest, aggregator_service_client::AggregatorServiceClient,
    },
    indicators::{CorrectValueRequest, indicators_service_client::IndicatorsServiceClient},
    inspections::{
        ConfirmFindingRequest, CreateInspectionRequest, Finding, Inspection, InspectionKind,
        inspections_service_client::InspectionsServiceClient,
    },
    plans::Phase,
    reviews::{
        CampaignMode, GetGroupReviewScoresRequest, GroupReviewScores, PushResponsesRequest,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{Role, TokenKey};
use jixiao_testkit::{Authed, POSTGRES_ENV, Scratch, Suite};
use jixiao_tests::{
    DAY, PROVIDER, complete_indicators, dec, evidence, executing_year, now_ms, percentile,
    response, set_phase, standings_until, survey_campaign, ts,
};
use nginx::{Nginx, nginx_bin};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

const GROUP: &str = "cycles/2026/groups/districts";
const CAMPAIGN: &str = "cycles/2026/campaigns/survey";
/// The component services and the gRPC service each serves.
const COMPONENTS: [(&str, &str); 4] = [
    ("plans", "jixiao.plans.v1.PlansService"),
    ("indicators", "jixiao.indicators.v1.IndicatorsService"),
    ("inspections", "jixiao.inspections.v1.InspectionsService"),
    ("reviews", "jixiao.reviews.v1.ReviewsService"),
];
/// Connections per process: ten processes share one PostgreSQL server
/// (`max_connections` 100) with the rest of the test run; at 16 each a
/// pool that grows under the SIGKILL stream can be refused, and a read
/// then waits out the 5-second acquire timeout.
const POOL_SIZE: u32 = 6;
/// Freshness samples per configuration.
const PROBES: usize = 15;
/// The stream the reviews replica dies under: 12 batches of 500
/// responses to huli and jimei (the probe pushes to siming).
const BATCHES: usize = 12;
const PER_BATCH: usize = 500;

/// A free port below the kernel's ephemeral range, for nginx: a port
/// found by binding :0 and let go can be handed to one of the replicas
/// (which listen on :0) before nginx binds it, and calls meant for nginx
/// would then reach that replica.
fn free_port() -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let from = low.saturating_sub(12_000).max(1024);
    (0..1000)
        .map(|_| rand::random_range(from..low))
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// Two replicas of `target` on one database, started at the same moment
/// as an orchestrator starts them (the first start creates the schema).
fn replicas(target: &str, dir: &Path, key_hex: &str, extra: &[(&str, String)]) -> [Process; 2] {
    std::thread::scope(|s| {
        let start = |i: usize| {
            let data = dir.join(format!("{target}-{i}"));
            s.spawn(move || Process::start(target, &data, key_hex, extra))
        };
        let (a, b) = (start(1), start(2));
        [a.join().unwrap(), b.join().unwrap()]
    })
}

async fn connect(url: &str, token: &str) -> Authed {
    jixiao::client::connect(url, token).await.expect("connect")
}

fn survey_of(s: &Standings, unit: &str) -> Option<rust_decimal::Decimal> {
    s.rows
        .iter()
        .find(|r| r.unit == format!("units/{unit}"))
        .and_then(|r| r.survey.as_ref())
        .and_then(|d| d.value.parse().ok())
}

/// Freshness as `loadgen standings` measures it: one satisfied response
/// at a time to siming (which holds dissatisfied ones, so each raises its
/// score), from the push's answer to the first `WatchStandings` message
/// that shows the higher score. Returns (p50, p99) after asserting p99.
async fn freshness(
    what: &str,
    pushes: &str,
    aggregator: &str,
    key: &TokenKey,
    from: usize,
) -> (Duration, Duration) {
    let token = |s: &str, r: Role| key.issue(s, &[r], None, 3600).unwrap();
    let mut watch =
        AggregatorServiceClient::new(connect(aggregator, &token("wall", Role::Viewer)).await)
            .watch_standings(WatchStandingsRequest {
                group: GROUP.into(),
                ..Default::default()
            })
            .await
            .expect("watch standings")
            .into_inner();
    let mut platform = ReviewsServiceClient::new(
        connect(pushes, &token("platform-a", Role::SurveyPlatform)).await,
    );
    let mut latest = watch.next().await.expect("a first message").unwrap();
    let mut lags = Vec::new();
    for k in from..from + PROBES {
        let before = survey_of(&latest, "siming").expect("siming has a survey score");
        platform
            .push_responses(PushResponsesRequest {
                campaign: CAMPAIGN.into(),
                responses: vec![response(
                    &format!("probe-{k}"),
                    "siming",
                    "residents",
                    ["satisfied"; 3],
                )],
            })
            .await
            .expect("probe push");
        let committed = Instant::now();
        while survey_of(&latest, "siming").is_none_or(|s| s <= before) {
            latest = tokio::time::timeout(Duration::from_secs(20), watch.next())
                .await
                .unwrap_or_else(|_| panic!("{what}: probe {k} never became visible"))
                .expect("the watch stays open")
                .unwrap();
        }
        lags.push(committed.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lags.sort();
    let (p50, p99) = (percentile(&lags, 0.5), percentile(&lags, 0.99));
    println!(
        "freshness, {what}: p50 {} ms, p99 {} ms, max {} ms over {PROBES} pushes",
        p50.as_millis(),
        p99.as_millis(),
        lags.last().unwrap().as_millis()
    );
    assert!(p99 <= Duration::from_secs(1), "{what}: p99 {p99:?}");
    (p50, p99)
}

/// A figure of a unit's row, as its decimal text.
fn figure(
    s: &Standings,
    unit: &str,
    field: impl Fn(&jixiao_proto::aggregator::StandingRow) -> &Option<jixiao_proto::Decimal>,
) -> Option<String> {
    s.rows
        .iter()
        .find(|r| r.unit == format!("units/{unit}"))
        .and_then(|r| field(r).as_ref())
        .map(|d| d.value.clone())
}

async fn review_scores(reviews: &mut ReviewsServiceClient<Authed>) -> GroupReviewScores {
    reviews
        .get_group_review_scores(GetGroupReviewScoresRequest {
            group: GROUP.into(),
            known_revision: 0,
            ..Default::default()
        })
        .await
        .expect("review scores")
        .into_inner()
}

/// Responses stored for huli and jimei (the stream's units).
async fn streamed(reviews: &mut ReviewsServiceClient<Authed>) -> i64 {
    review_scores(reviews)
        .await
        .units
        .iter()
        .filter(|u| u.unit != "units/siming")
        .map(|u| u.survey_sample)
        .sum()
}

fn batch(b: usize) -> PushResponsesRequest {
    let unit = ["huli", "jimei"][b % 2];
    let answer = ["satisfied", "dissatisfied", "basically_satisfied"][b % 3];
    PushResponsesRequest {
        campaign: CAMPAIGN.into(),
        responses: (0..PER_BATCH)
            .map(|i| response(&format!("s{b}-{i}"), unit, "residents", [answer; 3]))
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_per_service_behind_nginx() {
    let Some(admin) = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty()) else {
        assert!(std::env::var("CI").is_err(), "CI must set {POSTGRES_ENV}");
        eprintln!("skipped: replicas share PostgreSQL databases; set {POSTGRES_ENV}");
        return;
    };
    let Some(nginx) = nginx_bin() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have nginx (tests/run.sh installs it)"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx)");
        return;
    };
    let key_hex = TokenKey::generate_hex();
    let key = TokenKey::from_hex(&key_hex).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (one_port, two_port) = (free_port(), free_port());
    let (one, two) = (
        format!("http://127.0.0.1:{one_port}"),
        format!("http://127.0.0.1:{two_port}"),
    );
    let mut scratch = HashMap::new();
    for name in [
        "plans",
        "indicators",
        "inspections",
        "reviews",
        "aggregator",
    ] {
        scratch.insert(name, Scratch::create(&admin, name).await);
    }
    let db_flag = |name: &str| (format!("--{name}-database-url"), scratch[name].url.clone());

    // The components, each pair on its database; they call plans through
    // nginx's balanced port.
    let mut components = Vec::new();
    for (name, _) in COMPONENTS {
        let (flag, url) = db_flag(name);
        let extra = [
            (flag.as_str(), url),
            ("--plans-addr", two.clone()),
            ("--db-pool-size", POOL_SIZE.to_string()),
        ];
        components.push(replicas(name, dir.path(), &key_hex, &extra));
    }
    let first = |c: &[Process; 2]| vec![c[0].addr().to_string()];
    let both = |c: &[Process; 2]| vec![c[0].addr().to_string(), c[1].addr().to_string()];
    let _nginx = Nginx::start(
        nginx,
        &COMPONENTS,
        &[
            (one_port, components.iter().map(first).collect()),
            (two_port, components.iter().map(both).collect()),
        ],
    );
    // The aggregator replicas: the first follows the components through
    // the one-replica port, the second through the balanced one.
    let (flag, url) = db_flag("aggregator");
    let aggregator = |via: &str, n: usize| {
        let mut extra = vec![
            (flag.as_str(), url.clone()),
            ("--db-pool-size", POOL_SIZE.to_string()),
        ];
        for peer in [
            "--plans-addr",
            "--indicators-addr",
            "--inspections-addr",
            "--reviews-addr",
        ] {
            extra.push((peer, via.to_string()));
        }
        Process::start(
            "aggregator",
            &dir.path().join(format!("aggregator-{n}")),
            &key_hex,
            &extra,
        )
    };
    let aggregators = [aggregator(&one, 1), aggregator(&two, 2)];

    // The year, set up through nginx: siming holds dissatisfied responses
    // so that every satisfied probe raises its score.
    let suite = Suite::attach(
        two.trim_start_matches("http://").parse().unwrap(),
        key.clone(),
    );
    executing_year(&suite).await;
    survey_campaign(
        &mut ReviewsServiceClient::new(suite.office()),
        "survey",
        CampaignMode::RawResponses,
    )
    .await;
    let token = |s: &str, r: Role| key.issue(s, &[r], None, 3600).unwrap();
    let platform_token = token("platform-a", Role::SurveyPlatform);
    ReviewsServiceClient::new(connect(&two, &platform_token).await)
        .push_responses(PushResponsesRequest {
            campaign: CAMPAIGN.into(),
            responses: (0..10)
                .map(|i| {
                    response(
                        &format!("seed-{i}"),
                        "siming",
                        "residents",
                        ["dissatisfied"; 3],
                    )
                })
                .collect(),
        })
        .await
        .expect("seed responses");
    let office_token = token("office", Role::Office);
    let mut offices = Vec::new();
    for a in &aggregators {
        let mut c = AggregatorServiceClient::new(connect(&a.url(), &office_token).await);
        standings_until(&mut c, "siming's seed responses", |s| {
            !s.stale && survey_of(s, "siming").is_some()
        })
        .await;
        offices.push(c);
    }

    // Freshness: one replica per service, then two.
    let single = freshness(
        "one replica per service",
        &one,
        &aggregators[0].url(),
        &key,
        0,
    )
    .await;
    let double = freshness(
        "two replicas per service",
        &two,
        &aggregators[1].url(),
        &key,
        PROBES,
    )
    .await;
    println!(
        "replicas: 1 → p50 {} ms p99 {} ms; 2 → p50 {} ms p99 {} ms",
        single.0.as_millis(),
        single.1.as_millis(),
        double.0.as_millis(),
        double.1.as_millis()
    );

    // SIGKILL: a platform streams through nginx to the first reviews
    // replica (the one-replica port reaches only it), which dies with
    // batches on the wire.
    let mut reader = ReviewsServiceClient::new(connect(&two, &office_token).await);
    let (tx, rx) = tokio::sync::mpsc::channel(BATCHES);
    let mut platform = ReviewsServiceClient::new(connect(&one, &platform_token).await);
    let call = tokio::spawn(async move {
        platform
            .stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    for b in 0..4 {
        tx.send(batch(b)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while streamed(&mut reader).await < (4 * PER_BATCH) as i64 {
        assert!(Instant::now() < deadline, "4 batches stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(batch(4)).await.unwrap();
    tx.send(batch(5)).await.unwrap();
    let reviews = components.last_mut().unwrap();
    reviews[0].kill();
    let broken = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the broken stream ends")
        .unwrap();
    assert!(
        broken.is_err(),
        "a killed replica cannot summarise: {broken:?}"
    );
    drop(tx);
    let kept = streamed(&mut reader).await;
    assert!(
        (4 * PER_BATCH as i64..=6 * PER_BATCH as i64).contains(&kept)
            && kept % PER_BATCH as i64 == 0,
        "stored before the kill: {kept}"
    );
    // The platform resends the whole stream through the balanced port;
    // nginx passes it to the surviving replica.
    let summary = ReviewsServiceClient::new(connect(&two, &platform_token).await)
        .stream_responses(tokio_stream::iter((0..BATCHES).map(batch)))
        .await
        .expect("the resent stream")
        .into_inner();
    let total = (BATCHES * PER_BATCH) as i64;
    assert_eq!(
        (
            i64::from(summary.accepted),
            i64::from(summary.duplicates),
            summary.rejected.len()
        ),
        (total - kept, kept, 0)
    );
    assert_eq!(streamed(&mut reader).await, total, "every response once");

    // The first replica comes back on its port and database; both
    // aggregator replicas show the reviews service's figures.
    reviews[0].spawn();
    let scores = review_scores(&mut reader).await;
    let expected: Vec<(String, rust_decimal::Decimal)> = scores
        .units
        .iter()
        .map(|u| {
            let exact: rust_decimal::Decimal = u
                .survey
                .as_ref()
                .expect("survey score")
                .value
                .parse()
                .unwrap();
            let unit = u.unit.trim_start_matches("units/").to_string();
            (
                unit,
                exact.round_dp_with_strategy(
                    3,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                ),
            )
        })
        .collect();
    for c in &mut offices {
        standings_until(c, "every streamed response, fresh", |s| {
            !s.stale && expected.iter().all(|(u, v)| survey_of(s, u) == Some(*v))
        })
        .await;
    }

    // A correction and a finding, made through nginx on whichever replica
    // it picks, reach both aggregators.
    complete_indicators(&suite).await;
    let mut before = Vec::new();
    for c in &mut offices {
        let s = standings_until(c, "the indicators", |s| {
            figure(s, "siming", |r| &r.indicator).is_some()
        })
        .await;
        before.push(figure(&s, "siming", |r| &r.indicator));
    }
    IndicatorsServiceClient::new(suite.as_roles(PROVIDER, &[Role::Provider], Some(PROVIDER)))
        .correct_value(CorrectValueRequest {
            name: "cycles/2026/units/siming/indicators/GDP_GROWTH/periods/2026".into(),
            value: dec("7"),
            evidence: evidence(),
            reason: "统计局年报修订".into(),
            request_id: "fix-gdp".into(),
        })
        .await
        .expect("correction");
    let created = InspectionsServiceClient::new(suite.as_roles("li", &[Role::Inspector], None))
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
        .expect("inspection")
        .into_inner();
    InspectionsServiceClient::new(suite.office())
        .confirm_finding(ConfirmFindingRequest {
            name: created.findings[0].name.clone(),
        })
        .await
        .expect("confirm");
    for (c, before) in offices.iter_mut().zip(before) {
        standings_until(c, "the correction and the finding", |s| {
            figure(s, "siming", |r| &r.indicator) != before
                && figure(s, "huli", |r| &r.deductions).as_deref() == Some("2.000")
        })
        .await;
    }

    // Publication on both aggregator replicas at once: the office decides
    // every open item, then two clerks publish the same moment.
    set_phase(&suite, "2026", Phase::Assessment).await;
    let err = offices[0]
        .publish_results(PublishResultsRequest {
            group: GROUP.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let decisions: Vec<PublicationDecision> = err
        .get_error_details()
        .precondition_failure()
        .expect("the open items")
        .violations
        .iter()
        .map(|v| {
            let words: Vec<&str> = v.description.split(' ').collect();
            let component = Component::from_str_name(&format!("COMPONENT_{}", words[0]))
                .unwrap_or_else(|| panic!("a component in {:?}", v.description));
            PublicationDecision {
                unit: v.subject.clone(),
                component: component as i32,
                flag: if words[1] == "flag" {
                    words[2].to_string()
                } else {
                    String::new()
                },
                reason: "decided by the office".into(),
            }
        })
        .collect();
    let publish = |c: &AggregatorServiceClient<Authed>, id: &str| {
        let mut c = c.clone();
        let req = PublishResultsRequest {
            group: GROUP.into(),
            decisions: decisions.clone(),
            request_id: id.into(),
            ..Default::default()
        };
        async move { c.publish_results(req).await.map(|r| r.into_inner()) }
    };
    let (a, b) = tokio::join!(
        publish(&offices[0], "clerk-1"),
        publish(&offices[1], "clerk-2")
    );
    let (won, lost) = match (a, b) {
        (Ok(p), Err(e)) | (Err(e), Ok(p)) => (p, e),
        other => panic!("exactly one publication: {other:?}"),
    };
    assert_eq!(won.name, format!("{GROUP}/publications/1"));
    // Both checked "nothing published yet"; the database took one insert
    // and the other caller is told to retry (which then finds version 1),
    // or the loser checked after the winner committed.
    let why = (lost.code(), jixiao_tests::reason(&lost));
    println!("publication on both aggregators: one published, the other {why:?}");
    assert!(
        why == (Code::Aborted, "CONCURRENT_WRITE".into())
            || why.0 == Code::InvalidArgument
                && jixiao_tests::bad_fields(&lost) == ["correction_reason"],
        "{lost:?}"
    );
    for c in &mut offices {
        let listed = c
            .list_publications(ListPublicationsRequest {
                group: GROUP.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let names: Vec<_> = listed
            .publications
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, [won.name.as_str()]);
    }

    drop(aggregators);
    drop(components);
    for (_, s) in scratch {
        s.drop_now().await;
    }
}
