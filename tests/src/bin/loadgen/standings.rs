//! `loadgen standings`: dashboard reads of a large group's standings.
//!
//! The whole suite runs in a child process. A group of 3,000 units gets a
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
//! Readers receive each response's bytes whole but do not decode them, so
//! the figures are the service's latency, not the client's parsing. The
//! processes are pinned to cores as deployed (see [`Placement`]) unless
//! `--shared-cpus` is given.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use bytes::{Buf, Bytes};
use futures::StreamExt;
use jixiao_aggregator::fast::{EncodedCodec, GET_STANDINGS_PATH};
use jixiao_proto::{
    aggregator::{
        GetStandingsRequest, Standings, WatchStandingsRequest,
        aggregator_service_client::AggregatorServiceClient,
    },
    indicators::{EnterAssessedScoreRequest, indicators_service_client::IndicatorsServiceClient},
    plans::{
        Direction, Indicator, Phase, ReplaceFrameworkRequest, ScoringMethod, SetCyclePhaseRequest,
        plans_service_client::PlansServiceClient,
    },
    reviews::{
        Answer, Campaign, CampaignMode, Channel, CreateCampaignRequest, MutualRating,
        PushResponsesRequest, PushVotesRequest, SubmitMutualRatingRequest, SurveyResponse, Vote,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{Role, TokenKey};
use prost::Message;
use tonic::{
    Status,
    body::Body,
    codec::{Codec, DecodeBuf, Decoder},
    server::NamedService,
    transport::Channel as Chan,
};

use crate::{
    Args, Authed, CAMPAIGN, Generator, QUESTIONS, authed, push_all, set_up, spawn_child, unit_id,
};

const GROUP: &str = "cycles/2026/groups/all";
/// The largest batch the reviews service takes.
const MAX_BATCH: usize = 5000;
/// The probe unit: the load never pushes to it.
const PROBE: usize = 0;

fn status(s: Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// Runs `f` over `items` with `n` calls in flight.
async fn concurrently<T, F, Fut>(n: usize, items: Vec<T>, f: F) -> Result<(), String>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let results: Vec<Result<(), String>> = futures::stream::iter(items.into_iter().map(f))
        .buffer_unordered(n)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Everything besides the survey: a framework with one assessed indicator,
/// an assessed score, a vote and a mutual rating for every unit.
async fn complete_year(channel: &Chan, key: &TokenKey, units: usize) -> Result<(), String> {
    let office = authed(channel, key, "office", &[Role::Office]);
    PlansServiceClient::new(office.clone())
        .replace_framework(ReplaceFrameworkRequest {
            name: format!("{GROUP}/framework"),
            indicators: vec![Indicator {
                code: "KEY_WORK".into(),
                display_name: "重点工作".into(),
                measurement_unit: "分".into(),
                direction: Direction::HigherIsBetter as i32,
                weight: Some(jixiao_proto::Decimal { value: "60".into() }),
                method: ScoringMethod::Assessed as i32,
                plausible_min: Some(jixiao_proto::Decimal { value: "0".into() }),
                plausible_max: Some(jixiao_proto::Decimal { value: "60".into() }),
                provider: format!("units/{}", unit_id(0)),
                ..Default::default()
            }],
            request_id: String::new(),
        })
        .await
        .map_err(status)?;
    PlansServiceClient::new(office.clone())
        .set_cycle_phase(SetCyclePhaseRequest {
            name: "cycles/2026".into(),
            phase: Phase::Execution as i32,
        })
        .await
        .map_err(status)?;
    ReviewsServiceClient::new(office)
        .create_campaign(CreateCampaignRequest {
            parent: "cycles/2026".into(),
            campaign_id: "portal".into(),
            campaign: Some(Campaign {
                group: GROUP.into(),
                title: "portal".into(),
                mode: CampaignMode::OnlineVotes as i32,
                platforms: vec!["loadgen".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map_err(status)?;
    let answers = ["satisfied", "basically_satisfied", "dissatisfied"];
    ReviewsServiceClient::new(authed(channel, key, "loadgen", &[Role::SurveyPlatform]))
        .push_votes(PushVotesRequest {
            campaign: "cycles/2026/campaigns/portal".into(),
            votes: (0..units)
                .map(|u| Vote {
                    vote_id: format!("v{u}"),
                    voter: format!("voter-{u}"),
                    unit: format!("units/{}", unit_id(u)),
                    answer: answers[u % 3].into(),
                    cast_time: Some(jixiao_runtime::time::timestamp(crate::ANSWER_MS)),
                })
                .collect(),
        })
        .await
        .map_err(status)?;
    let evaluator = IndicatorsServiceClient::new(authed(channel, key, "eval", &[Role::Evaluator]));
    concurrently(16, (0..units).collect(), |u| {
        let mut client = evaluator.clone();
        async move {
            client
                .enter_assessed_score(EnterAssessedScoreRequest {
                    parent: "cycles/2026".into(),
                    unit: format!("units/{}", unit_id(u)),
                    indicator: "KEY_WORK".into(),
                    score: Some(jixiao_proto::Decimal {
                        value: format!("{}.{}", 45 + u % 11, u % 1000),
                    }),
                    justification: "年度重点工作考评".into(),
                    request_id: String::new(),
                })
                .await
                .map(|_| ())
                .map_err(status)
        }
    })
    .await?;
    let grades = ["excellent", "good", "fair"];
    concurrently(16, (0..units).collect(), |u| {
        let rater = unit_id(u);
        let token = key
            .issue(&rater, &[Role::Unit], Some(&rater), 3600)
            .expect("token");
        let mut client =
            ReviewsServiceClient::new(tonic::service::interceptor::InterceptedService::new(
                channel.clone(),
                jixiao_testkit::Bearer::new(&token).expect("ascii token"),
            ));
        async move {
            client
                .submit_mutual_rating(SubmitMutualRatingRequest {
                    parent: "cycles/2026".into(),
                    rating: Some(MutualRating {
                        rater: format!("units/{rater}"),
                        ratee: format!("units/{}", unit_id((u + 1) % units)),
                        grade: grades[u % 3].into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .map(|_| ())
                .map_err(status)
        }
    })
    .await
}

/// Sends a request and takes the answer's bytes without decoding them.
#[derive(Default)]
struct RawCodec;

struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = GetStandingsRequest;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<GetStandingsRequest>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(Default::default())
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_standings(grpc: &mut tonic::client::Grpc<Authed>) -> Result<Bytes, String> {
    grpc.ready().await.map_err(|e| e.to_string())?;
    grpc.unary(
        tonic::Request::new(GetStandingsRequest {
            group: GROUP.into(),
            ..Default::default()
        }),
        http::uri::PathAndQuery::from_static(GET_STANDINGS_PATH),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
    .map_err(status)
}

/// Latency figures of one phase.
struct Figures {
    calls: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    bytes: usize,
}

impl Figures {
    fn of(mut samples: Vec<Duration>, bytes: usize) -> Figures {
        samples.sort();
        let at = |q: f64| jixiao_tests::percentile(&samples, q);
        Figures {
            calls: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: *samples.last().unwrap(),
            bytes,
        }
    }

    fn print(&self, what: &str, seconds: f64) {
        println!(
            "{what:<38} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  {:>6.0} calls/s  ({} bytes each)",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.calls as f64 / seconds,
            self.bytes
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `readers` concurrent dashboards, each on its own connection, for `secs`:
/// each starts a call every `every` (or as soon as the last one answered,
/// when that took longer), or back to back when `every` is `None`.
async fn read_phase(
    addr: &str,
    key: &TokenKey,
    readers: usize,
    secs: f64,
    every: Option<Duration>,
) -> Result<Figures, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for r in 0..readers {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let mut grpc =
            tonic::client::Grpc::new(authed(&channel, key, &format!("wall-{r}"), &[Role::Viewer]))
                .max_decoding_message_size(64 * 1024 * 1024);
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut bytes = 0;
            // Readers start spread over one interval, as independent
            // dashboards would.
            if let Some(every) = every {
                tokio::time::sleep(every.mul_f64(r as f64 / readers as f64)).await;
            }
            while Instant::now() < deadline {
                let started = Instant::now();
                let b = raw_standings(&mut grpc).await?;
                samples.push(started.elapsed());
                bytes = b.len();
                if let Some(every) = every {
                    tokio::time::sleep_until((started + every).into()).await;
                }
            }
            Ok::<_, String>((samples, bytes))
        }));
    }
    let mut all = Vec::new();
    let mut bytes = 0;
    for t in tasks {
        let (s, b) = t.await.map_err(|e| e.to_string())??;
        all.extend(s);
        bytes = b;
    }
    Ok(Figures::of(all, bytes))
}

// ---------------------------------------------------------------- baseline

/// The baseline server: the same method, the same bytes, nothing else.
#[derive(Clone)]
struct Bare(Bytes);

impl NamedService for Bare {
    const NAME: &'static str = "jixiao.aggregator.v1.AggregatorService";
}

struct BareStandings(Bytes);

impl tonic::server::UnaryService<GetStandingsRequest> for BareStandings {
    type Response = Bytes;
    type Future = std::future::Ready<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, _req: tonic::Request<GetStandingsRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(self.0.clone())))
    }
}

impl tower::Service<http::Request<Body>> for Bare {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<http::Response<Body>, std::convert::Infallible>>
                + Send,
        >,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let bytes = self.0.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(EncodedCodec::<GetStandingsRequest>::default());
            Ok(grpc.unary(BareStandings(bytes), req).await)
        })
    }
}

/// The child side of the baseline: serves the bytes in `file`.
pub async fn serve_bare(file: PathBuf) -> Result<(), String> {
    let bytes = Bytes::from(std::fs::read(&file).map_err(|e| e.to_string())?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    println!("ADDR {}", listener.local_addr().map_err(|e| e.to_string())?);
    tonic::transport::Server::builder()
        .add_service(Bare(bytes))
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await
        .map_err(|e| e.to_string())
}

fn spawn_bare(file: &std::path::Path) -> Result<(std::process::Child, String), String> {
    crate::spawn(&["__bare", &file.display().to_string()])
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
                    response_id: format!("probe-{k}"),
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

// ---------------------------------------------------------------- placement

/// Which core each side runs on. Deployed, the aggregator and the
/// dashboards do not share CPUs with the ingest path (the component
/// services and the platform pushing); on one 2-core machine that is
/// emulated by pinning: the aggregator, the bare baseline and the readers
/// on core 0, the component services and the pushing thread on core 1.
/// Unpinned (`--shared-cpus`), the readers' tail under ingest is the
/// scheduler's, as the bare server under the same ingest shows.
#[derive(Clone, Copy)]
struct Placement {
    pinned: bool,
}

impl Placement {
    const READS: usize = 0;
    const INGEST: usize = 1;

    fn new(shared: bool) -> Placement {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pinned = !shared && cores >= 2 && which_taskset();
        Placement { pinned }
    }

    fn describe(&self) -> &'static str {
        if self.pinned {
            "aggregator, bare baseline and readers on core 0; component services and the pushing client on core 1"
        } else {
            "every process on every core"
        }
    }

    /// Pins a process, all its threads (and those they start), to `core`.
    fn process(&self, pid: u32, core: usize) -> Result<(), String> {
        self.taskset(&["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
    }

    /// Pins the calling thread (and those it starts) to `core`.
    fn this_thread(&self, core: usize) -> Result<(), String> {
        let me = std::fs::read_link("/proc/thread-self").map_err(|e| e.to_string())?;
        let tid = me
            .file_name()
            .and_then(|t| t.to_str())
            .ok_or("no thread id")?
            .to_string();
        self.taskset(&["-p", "-c", &core.to_string(), &tid])
    }

    fn taskset(&self, args: &[&str]) -> Result<(), String> {
        if !self.pinned {
            return Ok(());
        }
        let out = std::process::Command::new("taskset")
            .args(args)
            .output()
            .map_err(|e| format!("taskset: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "taskset {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

fn which_taskset() -> bool {
    std::process::Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

// ---------------------------------------------------------------- run

pub async fn run(a: Args, readers: usize, secs: f64, every: Duration) -> Result<(), String> {
    let place = Placement::new(a.shared_cpus);
    println!("placement: {}", place.describe());
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
    let components = ["plans", "indicators", "inspections", "reviews"];
    let (mut child, addr) = spawn_child(
        &dir.path().join("components"),
        &key_hex,
        &components.join(","),
        &created.spec(&components),
        "",
    )?;
    let peers = components
        .iter()
        .map(|c| format!("{c}=http://{addr}"))
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
            child.kill().ok();
            return Err(e);
        }
    };
    let mut bare_child = None;
    let result = async {
        place.process(child.id(), Placement::INGEST)?;
        place.process(agg_child.id(), Placement::READS)?;
        let connect = |addr: String| async move {
            tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| e.to_string())?
                .tcp_nodelay(true)
                .connect()
                .await
                .map_err(|e| e.to_string())
        };
        let channel = connect(addr.clone()).await?;
        let agg_channel = connect(agg_addr.clone()).await?;
        println!("setting up {} units ({}): framework, votes, assessed scores, mutual ratings", a.units, a.db);
        set_up(&channel, &key, a.units).await?;
        complete_year(&channel, &key, a.units).await?;
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
            (a.units, a.responses, key.clone(), addr.clone());
        let ingest_task = std::thread::spawn(move || {
            place.this_thread(Placement::INGEST)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{ingest_addr}"))
                    .map_err(|e| e.to_string())?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                steady_ingest(channel, ingest_key, units, first, ingest_rate, stop_rx).await
            })
        });
        // Let the ingest settle before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let measuring = Instant::now();
        let probe_task = tokio::spawn(probe(
            channel.clone(),
            agg_channel.clone(),
            key.clone(),
            Instant::now() + Duration::from_secs_f64(secs),
        ));
        let loaded = read_phase(&agg_addr, &key, readers, secs, paced).await?;
        let lags = probe_task.await.map_err(|e| e.to_string())??;
        // The same load against the bare server: what this machine's
        // scheduler alone does to a read's tail while ingest runs.
        let bare_loaded = read_phase(&bare_addr, &key, readers, secs, paced).await?;
        stop_tx.send(true).ok();
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
            "ratio idle p99 aggregator/bare {:.2} (target <= 2.0)",
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
        Ok(())
    }
    .await;
    if let Some(mut b) = bare_child {
        b.kill().ok();
        b.wait().ok();
    }
    for c in [&mut agg_child, &mut child] {
        c.kill().ok();
        c.wait().ok();
    }
    created.drop_all().await;
    result
}
