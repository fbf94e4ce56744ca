//! `loadgen standings`: dashboard reads of a large group's standings.
//!
//! The services run in child processes as deployed: the aggregator, the
//! reviews service, and plans, indicators and inspections together. A
//! group of 3,000 units (`--units`) gets a
//! full year (an assessed indicator, 1,000,000 survey responses, a vote and
//! a mutual rating per unit), then 16 concurrent readers call
//! `GetStandings`:
//!
//! 1. idle, against the aggregator;
//! 2. idle, against a bare tonic server (another child process) that
//!    answers the same method with the same bytes from memory and does
//!    nothing else: the baseline;
//! 3. while survey responses stream in at half the ingest rate measured
//!    while loading, with a probe that pushes one response at a time to a
//!    unit no other push touches and times how long the push takes from
//!    its commit to the first standings message that shows it.
//!
//! 4. the bare server under the same ingest: what the machine alone does
//!    to a read's tail meanwhile.
//!
//! At the end the run prints one `growth` line (setup time, freshness,
//! read p99 against bare, resident memory of the aggregator and of the
//! reviews service) for comparing group sizes, and the load average
//! before and after, so that a run on a busy machine is recognisable.
//!
//! Readers receive each response's bytes whole but do not decode them, so
//! the figures are the service's latency, not the client's parsing. The
//! processes are pinned to cores as deployed (see [`Placement`]) unless
//! `--shared-cpus` is given; the freshness probe runs on the ingest side,
//! as a dashboard on another machine would. The services' listeners use
//! the congestion control `--congestion` names, cubic by default (see
//! `listen_loopback`: BBR's pacing on loopback, these machines' default,
//! stalls about one large answer in fifty for 10 ms in any server).

mod placement;
mod quiet;
mod reads;
mod year;

use std::time::{Duration, Instant};

use futures::StreamExt;
use jixiao_proto::{
    aggregator::{
        GetStandingsRequest, Standings, WatchStandingsRequest,
        aggregator_service_client::AggregatorServiceClient,
    },
    reviews::{
        Answer, Channel, PushResponsesRequest, SurveyResponse,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{Role, TokenKey};
use prost::Message;
use tonic::{Status, transport::Channel as Chan};

use crate::{Args, CAMPAIGN, Generator, QUESTIONS, authed, push_all, set_up, spawn_child, unit_id};
use placement::Placement;
pub use reads::serve_bare;
use reads::{Figures, ms, read_phase, spawn_bare};
use year::{Steps, complete_year};

const GROUP: &str = "cycles/2026/groups/all";
/// The largest batch the reviews service takes.
const MAX_BATCH: usize = 5000;
/// The probe unit: the load never pushes to it.
const PROBE: usize = 0;

fn status(s: Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

// ---------------------------------------------------------------- load

/// Streams responses to every unit but the probe at `rate` per second until
/// `stop`; returns how many were sent.
async fn steady_ingest(
    channel: Chan,
    key: TokenKey,
    units: usize,
    first: usize,
    rate: f64,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<usize, String> {
    // Ten batches a second (more when they would exceed the largest batch
    // allowed): a platform pushing at this rate sends large batches, and
    // one stream of small ones tops out well below it.
    let batch = ((rate / 10.0) as usize).clamp(500, MAX_BATCH);
    let mut client =
        ReviewsServiceClient::new(authed(&channel, &key, "loadgen", &[Role::SurveyPlatform]))
            .max_encoding_message_size(16 * 1024 * 1024);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let producer = tokio::spawn(async move {
        let generator = Generator::new(units);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(batch as f64 / rate));
        let (mut i, mut sent) = (first, 0);
        while !*stop.borrow() {
            tick.tick().await;
            let mut responses = Vec::with_capacity(batch);
            while responses.len() < batch {
                if i % units != PROBE {
                    responses.push(generator.response(i));
                }
                i += 1;
            }
            sent += batch;
            if tx
                .send(PushResponsesRequest {
                    campaign: CAMPAIGN.into(),
                    responses,
                })
                .await
                .is_err()
            {
                break;
            }
        }
        sent
    });
    let summary = client
        .stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(status)?
        .into_inner();
    let sent = producer.await.map_err(|e| e.to_string())?;
    if summary.accepted as usize != sent {
        return Err(format!(
            "steady ingest: sent {sent}, accepted {}",
            summary.accepted
        ));
    }
    Ok(sent)
}

fn probe_survey(s: &Standings) -> Option<rust_decimal::Decimal> {
    let unit = format!("units/{}", unit_id(PROBE));
    s.rows
        .iter()
        .find(|r| r.unit == unit)
        .and_then(|r| r.survey.as_ref())
        .and_then(|d| d.value.parse().ok())
}

/// Pushes one satisfied response at a time to the probe unit (which only
/// raises its survey score) and measures commit → first standings message
/// showing a higher score.
async fn probe(
    tag: &'static str,
    channel: Chan,
    aggregator: Chan,
    key: TokenKey,
    until: Instant,
) -> Result<Vec<Duration>, String> {
    let mut watch =
        AggregatorServiceClient::new(authed(&aggregator, &key, "probe-wall", &[Role::Viewer]))
            .max_decoding_message_size(64 * 1024 * 1024)
            .watch_standings(WatchStandingsRequest {
                group: GROUP.into(),
                ..Default::default()
            })
            .await
            .map_err(status)?
            .into_inner();
    let mut latest = watch.next().await.ok_or("watch ended")?.map_err(status)?;
    let mut platform =
        ReviewsServiceClient::new(authed(&channel, &key, "loadgen", &[Role::SurveyPlatform]));
    let mut lags = Vec::new();
    let mut k = 0;
    while Instant::now() < until {
        let before = probe_survey(&latest).ok_or("the probe unit has no survey score")?;
        platform
            .push_responses(PushResponsesRequest {
                campaign: CAMPAIGN.into(),
                responses: vec![SurveyResponse {
                    response_id: format!("{tag}-{k}"),
                    unit: format!("units/{}", unit_id(PROBE)),
                    category: "residents".into(),
                    channel: Channel::Phone as i32,
                    answer_time: Some(jixiao_runtime::time::timestamp(crate::ANSWER_MS)),
                    answers: (1..=QUESTIONS)
                        .map(|q| Answer {
                            question: format!("q{q}"),
                            answer: "satisfied".into(),
                        })
                        .collect(),
                    respondent: String::new(),
                }],
            })
            .await
            .map_err(status)?;
        let committed = Instant::now();
        loop {
            latest = watch.next().await.ok_or("watch ended")?.map_err(status)?;
            if probe_survey(&latest).is_some_and(|s| s > before) {
                break;
            }
        }
        lags.push(committed.elapsed());
        k += 1;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Ok(lags)
}

/// Runs `work` on a thread of its own with the ingest side (see
/// [`Placement`]), in a runtime of its own.
fn on_ingest_side<T, F, Fut>(
    place: Placement,
    work: F,
) -> std::thread::JoinHandle<Result<T, String>>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    std::thread::spawn(move || {
        place.this_thread(Placement::INGEST)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(work())
    })
}

/// A connection to a service of the run.
async fn connect(addr: String) -> Result<Chan, String> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| e.to_string())
}

// ---------------------------------------------------------------- run

pub async fn run(a: Args, readers: usize, secs: f64, every: Duration) -> Result<(), String> {
    let place = Placement::new(a.shared_cpus);
    println!("placement: {}", place.describe());
    println!(
        "services' loopback congestion control: {} (the machine's default: {})",
        a.congestion,
        crate::system_congestion()
    );
    place.process(std::process::id(), Placement::READS)?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let created = crate::BenchDatabases::create(
        &a,
        &[
            "plans",
            "indicators",
            "inspections",
            "reviews",
            "aggregator",
        ],
    )
    .await?;
    let key_hex = TokenKey::generate_hex();
    let key = TokenKey::from_hex(&key_hex)?;
    // As deployed: the aggregator in a process of its own, following the
    // component services in another.
    // The reviews service in a process of its own, so that its memory
    // can be told apart from the other components'.
    let components = ["plans", "indicators", "inspections"];
    let (mut child, addr) = spawn_child(
        &dir.path().join("components"),
        &key_hex,
        &components.join(","),
        &created.spec(&components),
        "",
    )?;
    let (mut reviews_child, reviews_addr) = match spawn_child(
        &dir.path().join("reviews"),
        &key_hex,
        "reviews",
        &created.spec(&["reviews"]),
        &format!("plans=http://{addr}"),
    ) {
        Ok(c) => c,
        Err(e) => {
            child.kill().ok();
            return Err(e);
        }
    };
    let peers = components
        .iter()
        .map(|c| format!("{c}=http://{addr}"))
        .chain([format!("reviews=http://{reviews_addr}")])
        .collect::<Vec<_>>()
        .join(",");
    let (mut agg_child, agg_addr) = match spawn_child(
        &dir.path().join("aggregator"),
        &key_hex,
        "aggregator",
        &created.spec(&["aggregator"]),
        &peers,
    ) {
        Ok(c) => c,
        Err(e) => {
            for c in [&mut reviews_child, &mut child] {
                c.kill().ok();
            }
            return Err(e);
        }
    };
    let load_before = load_average();
    let mut bare_child = None;
    let result = async {
        place.process(child.id(), Placement::INGEST)?;
        place.process(reviews_child.id(), Placement::INGEST)?;
        place.process(agg_child.id(), Placement::READS)?;
        let plans_channel = connect(addr.clone()).await?;
        let channel = connect(reviews_addr.clone()).await?;
        let agg_channel = connect(agg_addr.clone()).await?;
        println!("setting up {} units ({}): framework, votes, assessed scores, mutual ratings", a.units, a.db);
        let setting_up = Instant::now();
        let mut steps = Steps::default();
        set_up(&plans_channel, &channel, &key, a.units).await?;
        steps.done("units, group and survey campaign", &mut { setting_up });
        complete_year(&plans_channel, &channel, &key, a.units, &mut steps).await?;
        let setup = setting_up.elapsed();
        println!("set up in {:.1} s ({})", setup.as_secs_f64(), steps.describe());
        println!("pushing {} survey responses", a.responses);
        let (ingest, accepted, _, rejected) = push_all(&channel, &key, &a).await?;
        if accepted as usize != a.responses || rejected != 0 {
            return Err(format!("ingest: accepted {accepted}, rejected {rejected}"));
        }
        let capacity = a.responses as f64 / ingest.as_secs_f64();
        println!("ingest capacity {capacity:.0} responses/s ({:.1} s)", ingest.as_secs_f64());

        // Wait until every unit is ranked.
        let mut viewer = AggregatorServiceClient::new(authed(&agg_channel, &key, "wall", &[Role::Viewer]))
            .max_decoding_message_size(64 * 1024 * 1024);
        let waited = Instant::now();
        let table = loop {
            let s = viewer
                .get_standings(GetStandingsRequest {
                    group: GROUP.into(),
                    ..Default::default()
                })
                .await
                .map_err(status)?
                .into_inner();
            let ranked = s.rows.iter().filter(|r| r.rank > 0).count();
            if ranked == a.units && !s.stale {
                break s;
            }
            if waited.elapsed() > Duration::from_secs(120) {
                return Err(format!("only {ranked} of {} units ranked after 120 s", a.units));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let top = &table.rows[0];
        println!(
            "standings: {} rows, revision {}, first {} composite {}",
            table.rows.len(),
            table.revision,
            top.unit,
            top.composite.as_ref().map_or("-", |d| d.value.as_str())
        );
        let bytes_file = dir.path().join("standings.bin");
        std::fs::write(&bytes_file, table.encode_to_vec()).map_err(|e| e.to_string())?;
        let (bare, bare_addr) = spawn_bare(&bytes_file)?;
        place.process(bare.id(), Placement::READS)?;
        bare_child = Some(bare);

        let quieted = (a.quiet_core && place.pinned()).then(|| quiet::quiet(Placement::READS, Placement::INGEST));
        if let Some(q) = &quieted {
            println!("{}", q.describe());
        }
        println!("{readers} readers, {secs} s per phase");
        let saturated = read_phase(&agg_addr, &key, readers, secs, None).await?;
        saturated.print("aggregator, back to back (saturation)", secs);
        let bare_saturated = read_phase(&bare_addr, &key, readers, secs, None).await?;
        bare_saturated.print("bare tonic, back to back (saturation)", secs);
        let paced = Some(every);
        println!("each reader now starts a call every {} ms", every.as_millis());
        let idle = read_phase(&agg_addr, &key, readers, secs, paced).await?;
        idle.print("aggregator GetStandings, idle", secs);
        let base = read_phase(&bare_addr, &key, readers, secs, paced).await?;
        base.print("bare tonic, same bytes from memory", secs);

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let ingest_rate = capacity / 2.0;
        // The pushing client gets a thread, a runtime and a connection of
        // its own, so that generating and encoding responses never delays
        // the readers' own calls in this process's run queue.
        let (units, first, ingest_key, ingest_addr) =
            (a.units, a.responses, key.clone(), reviews_addr.clone());
        let ingest_task = on_ingest_side(place, move || async move {
            let channel = connect(ingest_addr).await?;
            steady_ingest(channel, ingest_key, units, first, ingest_rate, stop_rx).await
        });
        // Let the ingest settle before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
        // `--pin-postgres`: PostgreSQL's backends for these databases (the
        // services' and the aggregator's connections, all open by now), its
        // background processes and the server process (so that what it
        // starts during the phase, autovacuum workers after the ingest's
        // inserts, starts there too) join the ingest side for the phase, as
        // if the database were not on the aggregator's machine.
        let backends = if a.pin_postgres {
            let mut pids = created.backend_pids().await;
            let servers: std::collections::BTreeSet<u32> =
                pids.iter().filter_map(|p| placement::postgres_parent(*p)).collect();
            pids.extend(servers);
            pids
        } else {
            Vec::new()
        };
        let pinned = place.pin_for_now(&backends, Placement::INGEST);
        if !backends.is_empty() {
            println!(
                "PostgreSQL processes pinned with the ingest side for the phase: {} of {}",
                pinned.len(),
                backends.len()
            );
        }
        let measuring = Instant::now();
        // The freshness probe watches the standings as a dashboard on
        // another machine would: on the ingest side, with a runtime and
        // connections of its own, so that decoding every new table (3,000
        // rows each refresh) never takes the readers' core.
        let (until, probe_key) = (Instant::now() + Duration::from_secs_f64(secs), key.clone());
        let (probe_reviews, probe_aggregator) = (reviews_addr.clone(), agg_addr.clone());
        let probe_task = on_ingest_side(place, move || async move {
            let (reviews, aggregator) = (connect(probe_reviews).await?, connect(probe_aggregator).await?);
            probe("probe", reviews, aggregator, probe_key, until).await
        });
        let loaded = read_phase(&agg_addr, &key, readers, secs, paced).await?;
        let lags = probe_task
            .join()
            .map_err(|_| "the probe thread panicked".to_string())??;
        // The same load against the bare server: what this machine's
        // scheduler alone does to a read's tail while ingest runs.
        let bare_loaded = read_phase(&bare_addr, &key, readers, secs, paced).await?;
        stop_tx.send(true).ok();
        drop(pinned);
        drop(quieted);
        let sent = ingest_task
            .join()
            .map_err(|_| "the ingest thread panicked".to_string())??;
        let elapsed = measuring.elapsed().as_secs_f64() + 1.0;
        loaded.print("aggregator GetStandings, under ingest", secs);
        bare_loaded.print("bare tonic, under the same ingest", secs);
        let lag = Figures::of(lags, 0);
        println!(
            "ingest during the phase {:.0} responses/s (target {ingest_rate:.0}, half of capacity)",
            sent as f64 / elapsed
        );
        println!(
            "freshness (push committed -> visible in standings): p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms  over {} pushes  (target p99 < 1000 ms)",
            ms(lag.p50),
            ms(lag.p99),
            ms(lag.max),
            lag.calls
        );
        println!(
            "saturation ratio p99 aggregator/bare {:.2}",
            ms(saturated.p99) / ms(bare_saturated.p99)
        );
        println!("idle p99 {:.2} ms (target < 20 ms)", ms(idle.p99));
        println!(
            "ratio idle p99 aggregator/bare {:.2} (target <= 1.5)",
            ms(idle.p99) / ms(base.p99)
        );
        println!(
            "ratio p99 under ingest/idle {:.2} (target <= 1.5)",
            ms(loaded.p99) / ms(idle.p99)
        );
        println!(
            "bare tonic under the same ingest: p99 {:.2}x its idle figure; aggregator/bare under ingest {:.2}",
            ms(bare_loaded.p99) / ms(base.p99),
            ms(loaded.p99) / ms(bare_loaded.p99)
        );
        let rss = |pid: u32| {
            let mb = |f| jixiao_tests::proc_status_kib(pid, f).map_or(0.0, |k| k as f64 / 1024.0);
            format!("{:.0} MB (peak {:.0} MB)", mb("VmRSS"), mb("VmHWM"))
        };
        println!(
            "growth: {} units, {} responses, {}: setup {:.1} s + responses {:.1} s; freshness p99 {:.0} ms; idle read p99 {:.2}x bare; aggregator RSS {}; reviews RSS {}",
            a.units,
            a.responses,
            a.db,
            setup.as_secs_f64(),
            ingest.as_secs_f64(),
            ms(lag.p99),
            ms(idle.p99) / ms(base.p99),
            rss(agg_child.id()),
            rss(reviews_child.id()),
        );
        Ok(())
    }
    .await;
    if let Some(mut b) = bare_child {
        b.kill().ok();
        b.wait().ok();
    }
    for c in [&mut agg_child, &mut reviews_child, &mut child] {
        c.kill().ok();
        c.wait().ok();
    }
    created.drop_all().await;
    println!(
        "load average before {load_before}, after {}",
        load_average()
    );
    result
}

/// `/proc/loadavg`'s first three figures (1, 5 and 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
