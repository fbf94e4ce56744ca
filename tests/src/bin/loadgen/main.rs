//! Load generator and benchmarks.
//!
//! `loadgen surveys` pushes survey responses through the streaming RPC of a
//! reviews service running in a child process, then loads the same rows
//! straight into the same kind of database by the fastest raw path
//! (PostgreSQL `COPY … FROM STDIN`; SQLite multi-row `INSERT`s in one
//! transaction), and prints both rates, their ratio, the rate of a replay of
//! the same responses (all duplicates) and the service's peak RSS. The
//! service runs four times, with the survey screening switched off, on,
//! on and off (docs/DATA-QUALITY.md); the screening's cost is the ratio of
//! the time on to the time off, and the other figures are the faster
//! screened run's. Both
//! paths get their payload made before the clock starts (the encoded
//! requests; the `COPY` text or the rows to bind), so that what is timed is
//! the service and the database, not this process generating data.
//!
//! `loadgen standings` measures dashboard reads of a 3,000-unit group's
//! standings against a bare tonic baseline, idle and under ingest, and the
//! freshness lag (see `standings.rs`).
//!
//! ```sh
//! cargo run --release -p jixiao-tests --bin loadgen -- surveys --db sqlite
//! cargo run --release -p jixiao-tests --bin loadgen -- surveys --db postgres
//! cargo run --release -p jixiao-tests --bin loadgen -- standings --db sqlite
//! cargo run --release -p jixiao-tests --bin loadgen -- standings --db postgres
//! ```

mod standings;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use jixiao_proto::{
    plans::{
        CreateCycleRequest, CreateGroupRequest, CreateUnitRequest, Cycle, DataQualityRules, Group,
        Phase, Scheme, SetCyclePhaseRequest, Unit, UnitKind, UpdateSchemeRequest,
        plans_service_client::PlansServiceClient,
    },
    reviews::{
        Answer, Campaign, CampaignMode, Channel, CreateCampaignRequest, PushResponsesRequest,
        PushResponsesResponse, Question, SurveyResponse,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{Role, TokenKey};
use jixiao_testkit::{Bearer, with_database};
use sqlx::{Connection, Executor};
use tonic::{service::interceptor::InterceptedService, transport::Channel as Chan};

const CATEGORIES: [&str; 4] = ["service_users", "enterprises", "residents", "deputies"];
const ANSWERS: [&str; 4] = [
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
    "dont_know",
];
const QUESTIONS: usize = 10;
const CAMPAIGN: &str = "cycles/2026/campaigns/bench";
const ANSWER_MS: i64 = 1_780_000_000_000;

struct Args {
    db: String,
    responses: usize,
    batch: usize,
    units: usize,
    readers: usize,
    seconds: f64,
    interval_ms: u64,
    /// `standings`: leave every process on every core.
    shared_cpus: bool,
    /// `standings`: pin PostgreSQL's backends of the run, its background
    /// processes and the server process with the ingest side for the
    /// phase under ingest.
    pin_postgres: bool,
    /// `standings`: every other thread that may move leaves the readers'
    /// core for the read phases (see `standings::quiet`).
    quiet_core: bool,
    /// The TCP congestion control of the services' listening sockets
    /// (see [`listen_loopback`]); `system` keeps the machine's default.
    congestion: String,
    postgres_url: String,
}

fn parse_args() -> Result<(String, Args), String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_default();
    let mut a = Args {
        db: "sqlite".into(),
        responses: 1_000_000,
        batch: 5000,
        units: if command == "standings" { 3000 } else { 100 },
        readers: 16,
        seconds: 10.0,
        interval_ms: 100,
        shared_cpus: false,
        pin_postgres: false,
        quiet_core: false,
        congestion: "cubic".into(),
        postgres_url: std::env::var(jixiao_testkit::POSTGRES_ENV)
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => a.db = value()?,
            "--responses" => {
                a.responses = value()?.parse().map_err(|e| format!("--responses: {e}"))?
            }
            "--batch" => a.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--units" => a.units = value()?.parse().map_err(|e| format!("--units: {e}"))?,
            "--readers" => a.readers = value()?.parse().map_err(|e| format!("--readers: {e}"))?,
            "--interval-ms" => {
                a.interval_ms = value()?
                    .parse()
                    .map_err(|e| format!("--interval-ms: {e}"))?
            }
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--postgres-url" => a.postgres_url = value()?,
            "--shared-cpus" => a.shared_cpus = true,
            "--pin-postgres" => a.pin_postgres = true,
            "--quiet-core" => a.quiet_core = true,
            "--congestion" => a.congestion = value()?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok((command, a))
}

/// A small deterministic generator (xorshift), so every run pushes the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The i-th response: unit, category and answers as indices.
fn shape(i: usize, units: usize) -> (usize, usize, [usize; QUESTIONS]) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut answers = [0; QUESTIONS];
    for a in &mut answers {
        // Mostly satisfied, as real surveys are.
        *a = match rng.next() % 10 {
            0..=5 => 0,
            6..=7 => 1,
            8 => 2,
            _ => 3,
        };
    }
    (i % units, (rng.next() % 4) as usize, answers)
}

fn unit_id(u: usize) -> String {
    format!("u{u:05}")
}

/// Builds responses cheaply: the generator shares the machine with the
/// service it measures, so it formats nothing it can copy.
struct Generator {
    units: Vec<String>,
    questions: Vec<String>,
}

impl Generator {
    fn new(units: usize) -> Self {
        Generator {
            units: (0..units)
                .map(|u| format!("units/{}", unit_id(u)))
                .collect(),
            questions: (1..=QUESTIONS).map(|q| format!("q{q}")).collect(),
        }
    }

    fn response(&self, i: usize) -> SurveyResponse {
        let (u, c, answers) = shape(i, self.units.len());
        SurveyResponse {
            response_id: format!("r{i:09}"),
            unit: self.units[u].clone(),
            category: CATEGORIES[c].into(),
            channel: Channel::Phone as i32,
            answer_time: Some(jixiao_runtime::time::timestamp(answer_ms(i))),
            answers: answers
                .iter()
                .zip(&self.questions)
                .map(|(a, q)| Answer {
                    question: q.clone(),
                    answer: ANSWERS[*a].into(),
                })
                .collect(),
            respondent: String::new(),
        }
    }
}

/// When the i-th response was answered: two seconds after the one before,
/// as a platform's fieldwork spreads over weeks (a million responses over
/// 23 days), so the screening finds no bursts in honest data.
fn answer_ms(i: usize) -> i64 {
    ANSWER_MS + 2000 * i as i64
}

/// The same response as a row of the responses table.
fn raw_row(i: usize, units: usize) -> (String, String, &'static str, String) {
    let (u, c, answers) = shape(i, units);
    let mut packed = String::with_capacity(200);
    for (q, a) in answers.iter().enumerate() {
        if q > 0 {
            packed.push(';');
        }
        packed.push_str(&format!("q{}={}", q + 1, ANSWERS[*a]));
    }
    (
        format!("r{i:09}"),
        format!("units/{}", unit_id(u)),
        CATEGORIES[c],
        packed,
    )
}

const RAW_TABLE: &str = "CREATE TABLE responses (
    campaign TEXT NOT NULL, response_id TEXT NOT NULL, unit_id TEXT NOT NULL, category TEXT NOT NULL,
    channel BIGINT NOT NULL, answer_ms BIGINT NOT NULL, answers TEXT NOT NULL, digest BIGINT NOT NULL,
    PRIMARY KEY (campaign, response_id))";

/// The raw path: the same rows straight into the same kind of database.
async fn raw_load(db: &str, url: &str, a: &Args) -> Result<Duration, String> {
    sqlx::any::install_default_drivers();
    let e = |e: sqlx::Error| e.to_string();
    if db == "postgres" {
        let mut conn = sqlx::PgConnection::connect(url).await.map_err(e)?;
        conn.execute(RAW_TABLE).await.map_err(e)?;
        // The COPY text is made before the clock starts, as the service
        // path's requests are.
        let chunks: Vec<String> = (0..a.responses)
            .step_by(a.batch)
            .map(|first| {
                let mut chunk = String::with_capacity(a.batch * 200);
                for i in first..(first + a.batch).min(a.responses) {
                    let (id, unit, cat, answers) = raw_row(i, a.units);
                    chunk.push_str(&format!(
                        "{CAMPAIGN}\t{id}\t{unit}\t{cat}\t1\t{}\t{answers}\t{i}\n",
                        answer_ms(i)
                    ));
                }
                chunk
            })
            .collect();
        let started = Instant::now();
        let mut tx = conn.begin().await.map_err(e)?;
        let mut copy = tx
            .copy_in_raw("COPY responses FROM STDIN")
            .await
            .map_err(e)?;
        for chunk in &chunks {
            copy.send(chunk.as_bytes()).await.map_err(e)?;
        }
        copy.finish().await.map_err(e)?;
        tx.commit().await.map_err(e)?;
        Ok(started.elapsed())
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .map_err(e)?;
        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .await
            .map_err(e)?;
        conn.execute(RAW_TABLE).await.map_err(e)?;
        let rows: Vec<_> = (0..a.responses).map(|i| raw_row(i, a.units)).collect();
        let started = Instant::now();
        let mut tx = conn.begin().await.map_err(e)?;
        const ROWS: usize = 1000;
        let mut i = 0;
        while i < a.responses {
            let n = ROWS.min(a.responses - i);
            let mut sql = String::from("INSERT INTO responses VALUES ");
            // Anonymous `?` parameters: sqlx resolves numbered ones by name,
            // which costs more the more parameters a statement has.
            for r in 0..n {
                sql.push_str(if r == 0 {
                    "(?, ?, ?, ?, ?, ?, ?, ?)"
                } else {
                    ", (?, ?, ?, ?, ?, ?, ?, ?)"
                });
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (k, (id, unit, cat, answers)) in rows.iter().enumerate().skip(i).take(n) {
                q = q
                    .bind(CAMPAIGN)
                    .bind(id.as_str())
                    .bind(unit.as_str())
                    .bind(*cat)
                    .bind(1i64)
                    .bind(answer_ms(k))
                    .bind(answers.as_str())
                    .bind(k as i64);
            }
            q.execute(&mut *tx).await.map_err(e)?;
            i += n;
        }
        tx.commit().await.map_err(e)?;
        Ok(started.elapsed())
    }
}

type Authed = InterceptedService<Chan, Bearer>;

fn authed(channel: &Chan, key: &TokenKey, subject: &str, roles: &[Role]) -> Authed {
    let token = key.issue(subject, roles, None, 3600).expect("token");
    InterceptedService::new(channel.clone(), Bearer::new(&token).expect("ascii token"))
}

/// Registers units, a cycle, a group (through `channel`, the plans
/// service) and a campaign (through `reviews`).
async fn set_up(
    channel: &Chan,
    reviews: &Chan,
    key: &TokenKey,
    units: usize,
) -> Result<(), String> {
    let e = |s: tonic::Status| s.message().to_string();
    let mut plans = PlansServiceClient::new(authed(channel, key, "office", &[Role::Office]));
    // Eight at a time: one by one, 30,000 units would take most of an hour
    // of round trips.
    let created: Vec<Result<(), String>> = futures::stream::iter((0..units).map(|u| {
        let mut plans = plans.clone();
        async move {
            plans
                .create_unit(CreateUnitRequest {
                    unit_id: unit_id(u),
                    unit: Some(Unit {
                        display_name_zh: format!("单位{u}"),
                        kind: UnitKind::CityDepartment as i32,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .map(|_| ())
                .map_err(e)
        }
    }))
    .buffer_unordered(8)
    .collect()
    .await;
    created.into_iter().collect::<Result<(), String>>()?;
    plans
        .create_cycle(CreateCycleRequest {
            cycle_id: "2026".into(),
            cycle: Some(Cycle {
                year: 2026,
                title: "bench".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map_err(e)?;
    plans
        .create_group(CreateGroupRequest {
            parent: "cycles/2026".into(),
            group_id: "all".into(),
            group: Some(Group {
                display_name: "all".into(),
                units: (0..units)
                    .map(|u| format!("units/{}", unit_id(u)))
                    .collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map_err(e)?;
    ReviewsServiceClient::new(authed(reviews, key, "office", &[Role::Office]))
        .create_campaign(CreateCampaignRequest {
            parent: "cycles/2026".into(),
            campaign_id: "bench".into(),
            campaign: Some(Campaign {
                group: "cycles/2026/groups/all".into(),
                title: "bench".into(),
                mode: CampaignMode::RawResponses as i32,
                platforms: vec!["loadgen".into()],
                questions: (1..=QUESTIONS)
                    .map(|q| Question {
                        id: format!("q{q}"),
                        text: format!("question {q}"),
                    })
                    .collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map_err(e)?;
    Ok(())
}

/// Moves the cycle to EXECUTION: surveys are pushed during the year (the
/// phase table of DOMAIN.md §2). The standings benchmark first completes
/// the setup that only PLANNING takes.
async fn start_year(channel: &Chan, key: &TokenKey) -> Result<(), String> {
    PlansServiceClient::new(authed(channel, key, "office", &[Role::Office]))
        .set_cycle_phase(SetCyclePhaseRequest {
            name: "cycles/2026".into(),
            phase: Phase::Execution as i32,
        })
        .await
        .map(|_| ())
        .map_err(|s| s.message().to_string())
}

/// Streams every response once; returns the time and the summary counts.
async fn push_all(
    channel: &Chan,
    key: &TokenKey,
    a: &Args,
) -> Result<(Duration, i32, i32, usize), String> {
    let mut client =
        ReviewsServiceClient::new(authed(channel, key, "loadgen", &[Role::SurveyPlatform]))
            .max_encoding_message_size(16 * 1024 * 1024);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (total, batch, units) = (a.responses, a.batch, a.units);
    let producer = tokio::spawn(async move {
        let generator = Generator::new(units);
        let mut i = 0;
        while i < total {
            let n = batch.min(total - i);
            let responses = (i..i + n).map(|k| generator.response(k)).collect();
            if tx
                .send(PushResponsesRequest {
                    campaign: CAMPAIGN.into(),
                    responses,
                })
                .await
                .is_err()
            {
                return;
            }
            i += n;
        }
    });
    let started = Instant::now();
    let summary = client
        .stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let elapsed = started.elapsed();
    producer.await.ok();
    Ok((
        elapsed,
        summary.accepted,
        summary.duplicates,
        summary.rejected.len(),
    ))
}

/// Every batch of the surveys run, encoded before the clock starts: the
/// benchmark measures the service, not this process making requests.
fn encoded_batches(a: &Args, batch: usize) -> Vec<bytes::Bytes> {
    let generator = Generator::new(a.units);
    (0..a.responses)
        .step_by(batch)
        .map(|first| {
            let responses = (first..(first + batch).min(a.responses))
                .map(|k| generator.response(k))
                .collect();
            let request = PushResponsesRequest {
                campaign: CAMPAIGN.into(),
                responses,
            };
            bytes::Bytes::from(prost::Message::encode_to_vec(&request))
        })
        .collect()
}

/// Streams encoded batches over `StreamResponses`; returns the time and
/// the summary counts.
async fn push_encoded(
    channel: &Chan,
    key: &TokenKey,
    batches: &[bytes::Bytes],
) -> Result<(Duration, i32, i32, usize), String> {
    let mut grpc =
        tonic::client::Grpc::new(authed(channel, key, "loadgen", &[Role::SurveyPlatform]))
            .max_encoding_message_size(16 * 1024 * 1024);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let stream = tokio_stream::iter(batches.to_vec());
    let started = Instant::now();
    let summary: PushResponsesResponse = grpc
        .client_streaming(
            tonic::Request::new(stream),
            http::uri::PathAndQuery::from_static(
                "/jixiao.reviews.v1.ReviewsService/StreamResponses",
            ),
            jixiao_aggregator::fast::EncodedCodec::<PushResponsesResponse>::default(),
        )
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    Ok((
        started.elapsed(),
        summary.accepted,
        summary.duplicates,
        summary.rejected.len(),
    ))
}

/// How busy a process's threads were over `wall`, by thread name, e.g.
/// `1.62 cores (tokio-rt-worker 1.21, sqlx-sqlite-worker 0.41)`.
fn cpu_use(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    wall: Duration,
) -> String {
    let wall = wall.as_secs_f64();
    let mut parts: Vec<(String, f64)> = after
        .iter()
        .map(|(name, s)| (name.clone(), (s - before.get(name).unwrap_or(&0.0)) / wall))
        .filter(|(_, cores)| *cores >= 0.01)
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = parts.iter().map(|p| p.1).sum();
    let list: Vec<String> = parts.iter().map(|(n, c)| format!("{n} {c:.2}")).collect();
    format!("{total:.2} cores ({})", list.join(", "))
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    jixiao_tests::proc_status_kib(pid, "VmHWM").map(|kb| kb as f64 / 1024.0)
}

/// Runs services in this process (the child side). `databases` is
/// `service=url,...`; services without one use SQLite files in `data_dir`.
async fn serve_child(
    data_dir: PathBuf,
    key_hex: String,
    targets: String,
    databases: String,
    peers: String,
) -> Result<(), String> {
    let key = TokenKey::from_hex(&key_hex)?;
    // Problems only, unless RUST_LOG asks for more (e.g.
    // `jixiao_aggregator=debug` shows every standings refresh and its time).
    jixiao_runtime::telemetry::init(
        jixiao_runtime::telemetry::LogFormat::Pretty,
        jixiao_runtime::telemetry::QUIET_LOGS,
    );
    let listener = listen_loopback()?;
    println!("ADDR {}", listener.local_addr().map_err(|e| e.to_string())?);
    let database_urls = targets_spec(&databases)?;
    let called = targets_spec(&peers)?;
    let config = jixiao::SuiteConfig {
        targets: jixiao::parse_targets(&targets)?,
        data_dir,
        database_urls,
        key,
        peers: called,
        reconcile: std::time::Duration::from_secs(30),
        tls: Default::default(),
    };
    jixiao::start(config, listener, std::future::pending())
        .await
        .map_err(|e| e.to_string())
}

/// `service=value,...` (database URLs or addresses) as pairs.
fn targets_spec(spec: &str) -> Result<Vec<(jixiao::Target, String)>, String> {
    spec.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (target, value) = s.split_once('=').ok_or(format!("bad spec {s:?}"))?;
            Ok((target.parse::<jixiao::Target>()?, value.to_string()))
        })
        .collect()
}

/// Starts `loadgen __serve` as a child process and returns it with its
/// address. `databases` is `service=url,...`; `peers` (`service=http://…,…`)
/// says where the services it calls but does not run listen.
fn spawn_child(
    dir: &Path,
    key: &str,
    targets: &str,
    databases: &str,
    peers: &str,
) -> Result<(Child, String), String> {
    spawn(&[
        "__serve",
        &dir.display().to_string(),
        key,
        targets,
        databases,
        peers,
    ])
}

/// The environment variable that hands `--congestion` to the children.
const CONGESTION_ENV: &str = "LOADGEN_CONGESTION";

/// `--congestion`, for the children this process starts.
static CONGESTION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// A listening socket on 127.0.0.1 whose connections use the congestion
/// control `--congestion` names (`cubic` unless told otherwise). Why not
/// the machine's default: where that is BBR (as on these machines), its
/// pacing holds the rest of a large answer after the first frame for about
/// 10 ms on roughly one loopback call in fifty, in any server; captured
/// with tcpdump, the held bytes leave in one burst 10 ms later with no
/// loss, no window and no wait on the server's side. That put a 10-11 ms
/// p99 on the aggregator and the bare baseline alike, or on one of them
/// by chance, hiding what the service itself costs. Connections inherit
/// the listener's setting; what a service sends over them is what the
/// benchmark times.
fn listen_loopback() -> Result<tokio::net::TcpListener, String> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    let congestion = std::env::var(CONGESTION_ENV).unwrap_or_else(|_| "cubic".into());
    if congestion != "system" {
        socket
            .set_tcp_congestion(congestion.as_bytes())
            .map_err(|e| format!("congestion control {congestion:?}: {e}"))?;
    }
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().expect("an address");
    socket.bind(&addr.into()).map_err(|e| e.to_string())?;
    socket.listen(1024).map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    tokio::net::TcpListener::from_std(socket.into()).map_err(|e| e.to_string())
}

/// The machine's default TCP congestion control, for the report.
fn system_congestion() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_string())
}

/// Starts this binary with `args` and reads the `ADDR host:port` line it
/// prints once it listens.
fn spawn(args: &[&str]) -> Result<(Child, String), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(args)
        .env(
            CONGESTION_ENV,
            CONGESTION.get().map_or("cubic", String::as_str),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .strip_prefix("ADDR ")
        .ok_or(format!("unexpected child output {line:?}"))?
        .to_string();
    Ok((child, addr))
}

/// PostgreSQL databases made for one benchmark run (none on SQLite).
struct BenchDatabases {
    admin: String,
    /// (service, database name, URL)
    made: Vec<(String, String, String)>,
}

impl BenchDatabases {
    async fn create(a: &Args, services: &[&str]) -> Result<BenchDatabases, String> {
        let mut out = BenchDatabases {
            admin: a.postgres_url.clone(),
            made: Vec::new(),
        };
        if a.db != "postgres" {
            return Ok(out);
        }
        let run = format!(
            "jxbench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        sqlx::any::install_default_drivers();
        let mut admin = sqlx::AnyConnection::connect(&a.postgres_url)
            .await
            .map_err(|e| e.to_string())?;
        for s in services {
            let name = format!("{run}_{s}");
            admin
                .execute(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {name} TEMPLATE template0"
                )))
                .await
                .map_err(|e| e.to_string())?;
            let url = with_database(&a.postgres_url, &name);
            out.made.push((s.to_string(), name, url));
        }
        Ok(out)
    }

    /// `service=url,...` of `services` for `loadgen __serve`.
    fn spec(&self, services: &[&str]) -> String {
        self.made
            .iter()
            .filter(|m| services.contains(&m.0.as_str()))
            .map(|(s, _, url)| format!("{s}={url}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Process ids of the PostgreSQL backends connected to these
    /// databases now, and of the server's own background processes
    /// (checkpointer, WAL writer, background writer, autovacuum), whose
    /// work follows the run's writes.
    async fn backend_pids(&self) -> Vec<u32> {
        if self.made.is_empty() {
            return Vec::new();
        }
        let Ok(mut admin) = sqlx::AnyConnection::connect(&self.admin).await else {
            return Vec::new();
        };
        let names: Vec<&str> = self.made.iter().map(|m| m.1.as_str()).collect();
        let pids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT pid::bigint FROM pg_stat_activity WHERE datname IN ('{}') OR backend_type <> 'client backend'",
            names.join("', '")
        )))
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
        pids.into_iter()
            .filter_map(|p| u32::try_from(p).ok())
            .collect()
    }

    async fn drop_all(self) {
        if self.made.is_empty() {
            return;
        }
        if let Ok(mut admin) = sqlx::AnyConnection::connect(&self.admin).await {
            for (_, name, _) in &self.made {
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await;
            }
        }
    }
}

/// What one run of the service measured.
struct ServiceRun {
    ingest: Duration,
    replay: Duration,
    /// The replay cut into batches one response smaller.
    rebatched: Duration,
    cpu: String,
    replay_cpu: String,
    rss: Option<f64>,
}

/// Switches the survey screening off in the group's scheme (PLANNING).
async fn screening_off(channel: &Chan, key: &TokenKey) -> Result<(), String> {
    PlansServiceClient::new(authed(channel, key, "office", &[Role::Office]))
        .update_scheme(UpdateSchemeRequest {
            scheme: Some(Scheme {
                name: "cycles/2026/groups/all/scheme".into(),
                data_quality: Some(DataQualityRules {
                    survey_screening_off: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["data_quality".into()],
            }),
        })
        .await
        .map(|_| ())
        .map_err(|s| s.message().to_string())
}

/// Starts a fresh service, pushes every batch and pushes them again.
async fn service_run(
    a: &Args,
    screening: bool,
    batches: &[bytes::Bytes],
    rebatched: &[bytes::Bytes],
) -> Result<ServiceRun, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let created = BenchDatabases::create(a, &["reviews"]).await?;
    let databases = created.spec(&["reviews"]);
    let key_hex = TokenKey::generate_hex();
    let key = TokenKey::from_hex(&key_hex)?;
    let (mut child, addr) = spawn_child(
        &dir.path().join("data"),
        &key_hex,
        "plans,reviews",
        &databases,
        "",
    )?;
    let result = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        set_up(&channel, &channel, &key, a.units).await?;
        if !screening {
            screening_off(&channel, &key).await?;
        }
        start_year(&channel, &key).await?;
        let cpu_before = jixiao_tests::thread_cpu_seconds(child.id());
        let (ingest, accepted, dupes, rejected) = push_encoded(&channel, &key, batches).await?;
        let cpu = cpu_use(
            &cpu_before,
            &jixiao_tests::thread_cpu_seconds(child.id()),
            ingest,
        );
        if accepted as usize != a.responses || rejected != 0 {
            return Err(format!(
                "first ingest: accepted {accepted}, duplicates {dupes}, rejected {rejected}"
            ));
        }
        let cpu_before = jixiao_tests::thread_cpu_seconds(child.id());
        let (replay, accepted2, dupes2, _) = push_encoded(&channel, &key, batches).await?;
        let replay_cpu = cpu_use(
            &cpu_before,
            &jixiao_tests::thread_cpu_seconds(child.id()),
            replay,
        );
        if accepted2 != 0 || dupes2 as usize != a.responses {
            return Err(format!("replay: accepted {accepted2}, duplicates {dupes2}"));
        }
        // The same responses cut into other batches: every id looked up.
        let (rebatched, accepted3, dupes3, _) = push_encoded(&channel, &key, rebatched).await?;
        if accepted3 != 0 || dupes3 as usize != a.responses {
            return Err(format!(
                "replay in other batches: accepted {accepted3}, duplicates {dupes3}"
            ));
        }
        Ok(ServiceRun {
            ingest,
            replay,
            rebatched,
            cpu,
            replay_cpu,
            rss: peak_rss_mb(child.id()),
        })
    }
    .await;
    child.kill().ok();
    child.wait().ok();
    created.drop_all().await;
    result
}

async fn surveys(a: Args) -> Result<(), String> {
    if !matches!(a.db.as_str(), "sqlite" | "postgres") {
        return Err(format!("--db must be sqlite or postgres, not {}", a.db));
    }
    let batches = encoded_batches(&a, a.batch);
    let rebatched = encoded_batches(&a, a.batch.saturating_sub(1).max(1));
    println!(
        "pushing {} responses of {QUESTIONS} answers in batches of {} over the streaming RPC ({}, {} units), screening off then on",
        a.responses, a.batch, a.db, a.units
    );
    // Off, on, on, off: a drift of the machine over the four runs (the
    // writeback of the run before, other load) weighs on both alike. Each
    // run starts after `sync`, so none pays for the files of the one before.
    let mut runs: Vec<(bool, ServiceRun)> = Vec::new();
    for screening in [false, true, true, false] {
        let _ = Command::new("sync").status();
        runs.push((
            screening,
            service_run(&a, screening, &batches, &rebatched).await?,
        ));
    }
    drop((batches, rebatched));
    let pick = |screening: bool| -> (ServiceRun, Duration) {
        let mine: Vec<&ServiceRun> = runs
            .iter()
            .filter(|r| r.0 == screening)
            .map(|r| &r.1)
            .collect();
        let total: Duration = mine.iter().map(|r| r.ingest).sum();
        // The faster run's figures; the overhead compares the sums.
        let best = mine.iter().min_by_key(|r| r.ingest).expect("two runs");
        (
            ServiceRun {
                ingest: best.ingest,
                replay: best.replay,
                rebatched: best.rebatched,
                cpu: best.cpu.clone(),
                replay_cpu: best.replay_cpu.clone(),
                rss: mine.iter().filter_map(|r| r.rss).reduce(f64::max),
            },
            total,
        )
    };
    let ((on, on_total), (off, off_total)) = (pick(true), pick(false));
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let created = BenchDatabases::create(&a, &["raw"]).await?;
    let raw_url = match created.made.first() {
        Some(m) => m.2.clone(),
        None => format!("sqlite://{}", dir.path().join("raw.db").display()),
    };
    let raw = raw_load(&a.db, &raw_url, &a).await;
    created.drop_all().await;
    let raw = raw?;
    let rate = |d: Duration| a.responses as f64 / d.as_secs_f64();
    let (ours, base, again) = (rate(on.ingest), rate(raw), rate(on.replay));
    let raw_path = if a.db == "postgres" {
        "COPY FROM STDIN"
    } else {
        "multi-row INSERT, one transaction"
    };
    println!(
        "service ingest   {:>10.0} responses/s  ({:.2} s)",
        ours,
        on.ingest.as_secs_f64()
    );
    println!(
        "raw {raw_path:<33} {:>10.0} responses/s  ({:.2} s)",
        base,
        raw.as_secs_f64()
    );
    println!("ratio service/raw {:.2}  (target >= 0.75)", ours / base);
    println!("service CPU during first ingest: {}", on.cpu);
    println!(
        "replay (all duplicates) {:>10.0} responses/s  ({:.2} s), {:.2}x first ingest  (target >= 1.5x)",
        again,
        on.replay.as_secs_f64(),
        again / ours
    );
    println!("service CPU during replay: {}", on.replay_cpu);
    println!(
        "replay in other batches {:>10.0} responses/s  ({:.2} s), {:.2}x first ingest  (each id looked up)",
        rate(on.rebatched),
        on.rebatched.as_secs_f64(),
        rate(on.rebatched) / ours
    );
    println!(
        "screening off    {:>10.0} responses/s  ({:.2} s); screening adds {:+.1}% to the ingest time, two runs each  (target <= 10%)",
        rate(off.ingest),
        off.ingest.as_secs_f64(),
        (on_total.as_secs_f64() / off_total.as_secs_f64() - 1.0) * 100.0
    );
    for (screening, run) in &runs {
        println!(
            "  run: screening {}, ingest {:.2} s",
            if *screening { "on " } else { "off" },
            run.ingest.as_secs_f64()
        );
    }
    println!(
        "service CPU during first ingest, screening off: {}",
        off.cpu
    );
    for (label, run) in [("screening on", &on), ("screening off", &off)] {
        match run.rss {
            Some(mb) => println!("service peak RSS, {label}: {mb:.0} MB  (target < 300 MB)"),
            None => println!("service peak RSS unavailable (no /proc)"),
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if argv.get(1).map(String::as_str) == Some("__bare") {
        return match runtime.block_on(standings::serve_bare(PathBuf::from(&argv[2]))) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bare: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if argv.get(1).map(String::as_str) == Some("__serve") {
        let [dir, key, targets, databases, peers] = [2, 3, 4, 5, 6].map(|i| argv[i].clone());
        return match runtime.block_on(serve_child(
            PathBuf::from(dir),
            key,
            targets,
            databases,
            peers,
        )) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("child: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let result = parse_args().inspect(|(_, args)| {
        CONGESTION.get_or_init(|| args.congestion.clone());
    });
    let result = result.and_then(|(command, args)| match command.as_str() {
        "surveys" => runtime.block_on(surveys(args)),
        "standings" => {
            let (readers, secs) = (args.readers, args.seconds);
            let every = Duration::from_millis(args.interval_ms);
            runtime.block_on(standings::run(args, readers, secs, every))
        }
        _ => Err("usage: loadgen surveys|standings [--db sqlite|postgres] [--responses N] [--batch N] [--units N] [--readers N] [--interval-ms MS] [--seconds S] [--postgres-url URL] [--shared-cpus] [--pin-postgres] [--quiet-core] [--congestion cubic|bbr|system]".into()),
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
