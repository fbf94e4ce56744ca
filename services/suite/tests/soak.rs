//! A soak run: the whole suite in one `jixiao serve` child process under a
//! steady mix of survey pushes (every tenth batch resent), value
//! corrections, dashboard reads and a dashboard watching, for
//! `JIXIAO_SOAK_SECS` seconds (40 by default, on each database). Errors
//! must be zero, every response must count exactly once, and the
//! process's resident memory must level off; latency percentiles and the
//! memory curve are printed (no timing thresholds: CI machines are noisy).

mod common;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::Process;
use jixiao_proto::{
    aggregator::{
        GetStandingsRequest, WatchStandingsRequest,
        aggregator_service_client::AggregatorServiceClient,
    },
    indicators::{CorrectValueRequest, indicators_service_client::IndicatorsServiceClient},
    reviews::{
        CampaignMode, GetGroupReviewScoresRequest, PushResponsesRequest,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{Role, TokenKey};
use jixiao_testkit::{Backend, Scratch, Suite, on_both_databases};
use jixiao_tests::{
    complete_indicators, dec, evidence, executing_year, percentile, proc_status_kib, response,
    survey_campaign,
};
use tokio_stream::StreamExt;

const GROUP: &str = "cycles/2026/groups/districts";
const CAMPAIGN: &str = "cycles/2026/campaigns/survey";
const UNITS: [&str; 3] = ["siming", "huli", "jimei"];

/// Latencies of one kind of call, and its failures.
#[derive(Default)]
struct Tally {
    took: Vec<Duration>,
    errors: Vec<String>,
}

type Tallies = Arc<Mutex<std::collections::BTreeMap<&'static str, Tally>>>;

fn record(tallies: &Tallies, kind: &'static str, started: Instant, result: Result<(), String>) {
    let mut t = tallies.lock().unwrap();
    let t = t.entry(kind).or_default();
    t.took.push(started.elapsed());
    if let Err(e) = result {
        t.errors.push(e);
    }
}

async fn soak(backend: Backend) {
    let secs: u64 = std::env::var("JIXIAO_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let key_hex = TokenKey::generate_hex();
    let key = TokenKey::from_hex(&key_hex).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut scratch = Vec::new();
    let mut extra = Vec::new();
    if let Backend::Postgres(admin) = &backend {
        for service in [
            "plans",
            "indicators",
            "inspections",
            "reviews",
            "aggregator",
        ] {
            let s = Scratch::create(admin, service).await;
            extra.push((
                match service {
                    "plans" => "--plans-database-url",
                    "indicators" => "--indicators-database-url",
                    "inspections" => "--inspections-database-url",
                    "reviews" => "--reviews-database-url",
                    _ => "--aggregator-database-url",
                },
                s.url.clone(),
            ));
            scratch.push(s);
        }
    }
    let server = Process::start("all", &dir.path().join("data"), &key_hex, &extra);
    let suite = Suite::attach(
        server.url().trim_start_matches("http://").parse().unwrap(),
        key,
    );
    executing_year(&suite).await;
    survey_campaign(
        &mut ReviewsServiceClient::new(suite.office()),
        "survey",
        CampaignMode::RawResponses,
    )
    .await;
    complete_indicators(&suite).await;

    let tallies: Tallies = Arc::default();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();

    // A survey platform: 50 responses every 100 ms, every tenth batch the
    // previous one again (a retry that must count nothing).
    let mut platform =
        ReviewsServiceClient::new(suite.as_roles("platform-a", &[Role::SurveyPlatform], None));
    let t = tallies.clone();
    tasks.spawn(async move {
        let mut unique = 0i64;
        let mut k = 0usize;
        while Instant::now() < end {
            let resend = k % 10 == 9;
            let b = if resend { k - 1 } else { k };
            let answer = if b % 4 == 0 {
                "dissatisfied"
            } else {
                "satisfied"
            };
            let responses = (0..50)
                .map(|i| response(&format!("s{b}-{i}"), UNITS[b % 3], "residents", [answer; 3]))
                .collect();
            let started = Instant::now();
            let result = platform
                .push_responses(PushResponsesRequest {
                    campaign: CAMPAIGN.into(),
                    responses,
                })
                .await
                .map_err(|s| s.to_string())
                .and_then(|r| {
                    let r = r.into_inner();
                    let want = if resend { (0, 50) } else { (50, 0) };
                    if (r.accepted, r.duplicates) == want && r.rejected.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("batch {b}: {r:?}"))
                    }
                });
            if !resend && result.is_ok() {
                unique += 50;
            }
            record(&t, "push 50 responses", started, result);
            k += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        unique
    });

    // A provider corrects a value four times a second.
    let mut stats =
        IndicatorsServiceClient::new(suite.as_roles("stats", &[Role::Provider], Some("stats")));
    let t = tallies.clone();
    tasks.spawn(async move {
        let mut k = 0;
        while Instant::now() < end {
            let started = Instant::now();
            let result = stats
                .correct_value(CorrectValueRequest {
                    name: "cycles/2026/units/siming/indicators/GDP_GROWTH/periods/2026".into(),
                    value: dec(if k % 2 == 0 { "6.5" } else { "6" }),
                    evidence: evidence(),
                    reason: format!("复核 {k}"),
                    request_id: format!("soak-correction-{k}"),
                })
                .await
                .map(|_| ())
                .map_err(|s| s.to_string());
            record(&t, "correct a value", started, result);
            k += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        0
    });

    // Four dashboards read the standings every 50 ms; one watches them.
    for d in 0..4 {
        let mut wall = AggregatorServiceClient::new(suite.as_roles(
            &format!("wall-{d}"),
            &[Role::Viewer],
            None,
        ));
        let t = tallies.clone();
        tasks.spawn(async move {
            while Instant::now() < end {
                let started = Instant::now();
                let result = wall
                    .get_standings(GetStandingsRequest {
                        group: GROUP.into(),
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| s.to_string())
                    .and_then(|r| {
                        let s = r.into_inner();
                        if s.rows.len() == 3 && !s.stale {
                            Ok(())
                        } else {
                            Err(format!(
                                "standings: {} rows, stale {}",
                                s.rows.len(),
                                s.stale
                            ))
                        }
                    });
                record(&t, "read standings", started, result);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            0
        });
    }
    let mut watch = AggregatorServiceClient::new(suite.as_roles("wall-w", &[Role::Viewer], None))
        .watch_standings(WatchStandingsRequest {
            group: GROUP.into(),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let t = tallies.clone();
    tasks.spawn(async move {
        let mut seen = 0i64;
        while Instant::now() < end {
            let started = Instant::now();
            match tokio::time::timeout(Duration::from_secs(5), watch.next()).await {
                Ok(Some(Ok(_))) => seen += 1,
                Ok(Some(Err(s))) => record(&t, "watch", started, Err(s.to_string())),
                Ok(None) => {
                    record(&t, "watch", started, Err("the watch ended".into()));
                    break;
                }
                Err(_) => {}
            }
        }
        -seen
    });

    // Memory of the server, once a second.
    let pid = server.pid();
    let mut curve = Vec::new();
    while Instant::now() < end {
        curve.push(proc_status_kib(pid, "VmRSS").unwrap_or(0));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut unique = 0;
    let mut watched = 0;
    while let Some(n) = tasks.join_next().await {
        match n.unwrap() {
            n if n > 0 => unique = n,
            n => watched -= n,
        }
    }

    let tallies = std::mem::take(&mut *tallies.lock().unwrap());
    println!("soak {secs} s on {backend:?}:");
    let mut errors = Vec::new();
    for (kind, t) in tallies.iter() {
        let mut took = t.took.clone();
        took.sort();
        println!(
            "  {kind:<20} {:>6} calls  {} errors  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            took.len(),
            t.errors.len(),
            percentile(&took, 0.5).as_secs_f64() * 1e3,
            percentile(&took, 0.99).as_secs_f64() * 1e3,
            took.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
        errors.extend(t.errors.iter().take(5).map(|e| format!("{kind}: {e}")));
    }
    println!("  standings messages watched: {watched}");
    println!(
        "  server memory (MiB, every 5 s): {}",
        curve
            .iter()
            .step_by(5)
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(
        errors.is_empty(),
        "errors under load:\n{}",
        errors.join("\n")
    );
    assert!(watched > 0, "the watcher saw the standings change");

    // Every unique response counted once.
    let scores = ReviewsServiceClient::new(suite.office())
        .get_group_review_scores(GetGroupReviewScoresRequest {
            group: GROUP.into(),
            known_revision: 0,
            ..Default::default()
        })
        .await
        .expect("review scores")
        .into_inner();
    let stored: i64 = scores.units.iter().map(|u| u.survey_sample).sum();
    assert_eq!(stored, unique);

    // Levelling off: after warming up, the last quarter of the run holds
    // no more than the second quarter plus a margin.
    let q = curve.len() / 4;
    let peak = |s: &[u64]| s.iter().copied().max().unwrap_or(0);
    let (second, last) = (peak(&curve[q..2 * q]), peak(&curve[3 * q..]));
    let margin = (second / 5).max(24 * 1024);
    assert!(
        last <= second + margin,
        "memory keeps growing: {} KiB in the second quarter, {} KiB in the last",
        second,
        last
    );

    drop(server);
    for s in scratch {
        s.drop_now().await;
    }
}

on_both_databases!(soak);
