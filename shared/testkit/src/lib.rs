//! Starts the Jixiao suite in-process for tests and benchmarks: ephemeral
//! ports, fresh databases (SQLite files in a temporary folder, or a new
//! PostgreSQL database per suite when `JIXIAO_TEST_POSTGRES_URL` is set),
//! readiness by health check, never by sleeping.

use std::{net::SocketAddr, time::Duration};

use jixiao_runtime::{Role, TokenKey};
use jixiao_suite::{SuiteConfig, Target};
use sqlx::{Connection, Executor};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

/// Environment variable with an admin URL of a PostgreSQL server for tests,
/// e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_ENV: &str = "JIXIAO_TEST_POSTGRES_URL";

/// Prefix of the databases the test kit creates, so leftovers can be found.
pub const DB_PREFIX: &str = "jxtest_";

/// Which database the suite runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// Admin URL of a PostgreSQL server; a database per service is created.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL from the environment, if configured.
    pub fn postgres_from_env() -> Option<Backend> {
        std::env::var(POSTGRES_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .map(Backend::Postgres)
    }
}

pub use jixiao_suite::client::{Authed, Bearer};

/// A running suite.
pub struct Suite {
    pub addr: SocketAddr,
    /// The admin port serving `GET /metrics` (none for an attached suite).
    pub admin: Option<SocketAddr>,
    pub key: TokenKey,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), jixiao_suite::StartError>>>,
    postgres: Option<(String, Vec<String>)>,
    config: SuiteConfig,
    traces: Option<Traces>,
    _dir: tempfile::TempDir,
}

/// A suite's own trace pipeline and the runtime that runs its tasks.
struct Traces {
    runtime: Option<tokio::runtime::Runtime>,
    telemetry: jixiao_runtime::telemetry::Telemetry,
}

impl Traces {
    /// A subscriber exporting as the services `targets` to `endpoint`, and
    /// a runtime whose every thread (workers and blocking) uses it.
    fn start(endpoint: &str, targets: &[Target]) -> Traces {
        let export = jixiao_runtime::telemetry::Export {
            endpoint: endpoint.to_string(),
            service: jixiao_suite::trace_service_name(targets),
        };
        let (subscriber, telemetry) = jixiao_runtime::telemetry::subscriber(
            jixiao_runtime::telemetry::LogFormat::Pretty,
            test_log_filter(),
            tracing_subscriber::fmt::TestWriter::new,
            Some(&export),
        )
        .expect("OTLP exporter");
        let dispatch = tracing::Dispatch::new(subscriber);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(move || {
                // Kept for the thread's whole life: dropping the guard would
                // restore the global subscriber.
                std::mem::forget(tracing::dispatcher::set_default(&dispatch));
            })
            .build()
            .expect("suite runtime");
        Traces {
            runtime: Some(runtime),
            telemetry,
        }
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        // Dropping a runtime waits for its tasks, which an async test
        // cannot do; its tasks are ended instead.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        // Stopping the exporter blocks until its last batch is sent, which
        // needs the test's runtime: not on one of its threads.
        let telemetry = self.telemetry.clone();
        std::thread::spawn(move || telemetry.shutdown());
    }
}

/// How to start a suite beyond its backend.
#[derive(Clone, Default)]
pub struct Options {
    /// Services to run; all when empty.
    pub targets: Vec<Target>,
    /// The signing key; a fresh one when absent. Services in split mode
    /// share one.
    pub key: Option<TokenKey>,
    /// Addresses of services run elsewhere.
    pub peers: Vec<(Target, String)>,
    /// TLS for the port and for calls to `https://` peers.
    pub tls: Option<jixiao_runtime::tls::Tls>,
    /// Exports the suite's spans to this OTLP/gRPC address. The suite then
    /// runs on a runtime of its own whose threads log and trace through a
    /// subscriber of its own, as a process of its own would: the process's
    /// global subscriber is the test kit's, shared by every suite.
    pub otlp_endpoint: Option<String>,
}

impl Options {
    /// Only these services.
    pub fn targets(targets: &[Target]) -> Self {
        Options {
            targets: targets.to_vec(),
            ..Default::default()
        }
    }
}

/// Log lines of tests: none unless `JIXIAO_TEST_LOG` asks.
fn test_log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_env("JIXIAO_TEST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"))
}

/// The process's subscriber, as a server's (trace context passed on, trace
/// ids in the logs), exporting nothing.
fn log_init() {
    use tracing_subscriber::util::SubscriberInitExt;
    let (subscriber, _) = jixiao_runtime::telemetry::subscriber(
        jixiao_runtime::telemetry::LogFormat::Pretty,
        test_log_filter(),
        tracing_subscriber::fmt::TestWriter::new,
        None,
    )
    .expect("subscriber");
    let _ = subscriber.try_init();
}

/// Creates a fresh PostgreSQL database and returns its URL.
async fn create_pg_database(admin_url: &str, name: &str) -> String {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
    conn.execute(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE template0"
    )))
    .await
    .expect("create test database");
    conn.close().await.ok();
    with_database(admin_url, name)
}

/// A PostgreSQL database of its own for a service run outside the test
/// kit (a child process); dropped by [`Scratch::drop_now`].
pub struct Scratch {
    admin: String,
    name: String,
    pub url: String,
}

impl Scratch {
    /// Creates an empty database on the server at `admin`.
    pub async fn create(admin: &str, label: &str) -> Scratch {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{DB_PREFIX}{}_{label}", &run[..12]);
        let url = create_pg_database(admin, &name).await;
        Scratch {
            admin: admin.to_string(),
            name,
            url,
        }
    }

    pub async fn drop_now(self) {
        drop_databases(&self.admin, &[self.name]).await;
    }
}

/// Where a suite run with `config` listens at `addr`.
fn url_of(config: &SuiteConfig, addr: SocketAddr) -> String {
    let scheme = if config.tls.serves() { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

/// A lazily connected channel to a suite run with `config` at `addr`.
fn channel_to(config: &SuiteConfig, addr: SocketAddr) -> Channel {
    config
        .tls
        .endpoint(&url_of(config, addr))
        .expect("endpoint")
        .tcp_nodelay(true)
        .connect_lazy()
}

/// The admin URL with another database name.
pub fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{base}/{name}{query}")
}

impl Suite {
    /// Starts every service of this build in one process.
    pub async fn start(backend: Backend) -> Suite {
        Self::start_with(backend, Options::default()).await
    }

    /// Starts the named services in one process.
    pub async fn start_targets(backend: Backend, targets: &[Target]) -> Suite {
        Self::start_with(backend, Options::targets(targets)).await
    }

    /// Starts a suite as `options` say.
    pub async fn start_with(backend: Backend, options: Options) -> Suite {
        log_init();
        let targets = if options.targets.is_empty() {
            Target::ALL.to_vec()
        } else {
            options.targets.clone()
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let key = options
            .key
            .clone()
            .unwrap_or_else(|| TokenKey::from_hex(&TokenKey::generate_hex()).expect("key"));
        let mut database_urls = Vec::new();
        let mut postgres = None;
        if let Backend::Postgres(admin) = &backend {
            let run = uuid::Uuid::new_v4().simple().to_string();
            let mut names = Vec::new();
            for t in &targets {
                let name = format!("{DB_PREFIX}{}_{}", &run[..12], t.as_str());
                database_urls.push((*t, create_pg_database(admin, &name).await));
                names.push(name);
            }
            postgres = Some((admin.clone(), names));
        }
        let config = SuiteConfig {
            targets,
            data_dir: dir.path().join("data"),
            database_urls,
            key: key.clone(),
            peers: options.peers,
            reconcile: Duration::from_secs(30),
            tls: options.tls.unwrap_or_default(),
        };
        let traces = options
            .otlp_endpoint
            .as_deref()
            .map(|endpoint| Traces::start(endpoint, &config.targets));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let channel = channel_to(&config, addr);
        let mut suite = Suite {
            addr,
            admin: None,
            key,
            channel,
            stop: None,
            task: None,
            postgres,
            config,
            traces,
            _dir: dir,
        };
        suite.serve(listener).await;
        suite
    }

    /// A handle on a suite serving elsewhere (a child process) at `addr`,
    /// signing tokens with `key`; stopping it stops nothing.
    pub fn attach(addr: SocketAddr, key: TokenKey) -> Suite {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = SuiteConfig {
            targets: Target::ALL.to_vec(),
            data_dir: dir.path().join("data"),
            database_urls: Vec::new(),
            key: key.clone(),
            peers: Vec::new(),
            reconcile: Duration::from_secs(30),
            tls: Default::default(),
        };
        let channel = channel_to(&config, addr);
        Suite {
            addr,
            admin: None,
            key,
            channel,
            stop: None,
            task: None,
            postgres: None,
            config,
            traces: None,
            _dir: dir,
        }
    }

    async fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.config.clone();
        let stopped = async {
            let _ = stopped.await;
        };
        // The metrics port, taken up by the runtime that serves the suite.
        let admin = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        admin.set_nonblocking(true).expect("non-blocking");
        self.admin = Some(admin.local_addr().expect("addr"));
        let admin = move || Some(tokio::net::TcpListener::from_std(admin).expect("listener"));
        self.task = Some(
            match self.traces.as_ref().and_then(|t| t.runtime.as_ref()) {
                Some(runtime) => {
                    // The listener moves to the reactor of the runtime serving it.
                    let listener = listener.into_std().expect("listener");
                    runtime.spawn(async move {
                        let listener = tokio::net::TcpListener::from_std(listener)
                            .map_err(|e| jixiao_suite::StartError::Server(Box::new(e)))?;
                        jixiao_suite::start_with_admin(config, listener, admin(), stopped).await
                    })
                }
                None => tokio::spawn(jixiao_suite::start_with_admin(
                    config,
                    listener,
                    admin(),
                    stopped,
                )),
            },
        );
        self.stop = Some(stop);
        let targets = self.config.targets.clone();
        self.wait_serving(&targets).await;
    }

    /// The address other services call this one at.
    pub fn url(&self) -> String {
        url_of(&self.config, self.addr)
    }

    /// The database URL of one of this suite's services.
    pub fn database_url(&self, target: Target) -> String {
        self.config.database_url(target)
    }

    /// Sends the spans this suite has buffered to its OTLP endpoint now
    /// rather than at the next batch (a no-op without one).
    pub async fn flush_traces(&self) {
        if let Some(t) = &self.traces {
            let telemetry = t.telemetry.clone();
            tokio::task::spawn_blocking(move || telemetry.flush())
                .await
                .expect("flush");
        }
    }

    /// Stops serving (as a crash or an upgrade would) and keeps the data.
    pub async fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Serves again on the same address with the same data.
    pub async fn resume(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(listener).await;
    }

    /// Waits until every service reports SERVING (or the suite failed).
    async fn wait_serving(&self, targets: &[Target]) {
        use tonic_health::pb::{
            HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
        };
        let names: Vec<&str> = targets.iter().map(|t| service_name(*t)).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut client = HealthClient::new(self.channel.clone());
        for name in names {
            loop {
                if let Some(task) = &self.task
                    && task.is_finished()
                {
                    panic!("the suite stopped while starting");
                }
                let ok = client
                    .check(HealthCheckRequest {
                        service: name.into(),
                    })
                    .await
                    .is_ok_and(|r| r.into_inner().status() == ServingStatus::Serving);
                if ok {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name} did not become SERVING"
                );
                // Yield to the server task, then poll again.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// What the suite's admin port answers to `GET /metrics`.
    pub async fn scrape(&self) -> String {
        let admin = self.admin.expect("a suite started by the test kit");
        let (status, body) = http_get(admin, "/metrics").await;
        assert_eq!(status, 200, "GET /metrics on the admin port: {body}");
        body
    }

    /// An unauthenticated channel.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A channel that authenticates with `token`.
    pub fn authed(&self, token: &str) -> Authed {
        InterceptedService::new(
            self.channel.clone(),
            Bearer::new(token).expect("ascii token"),
        )
    }

    /// A channel without any token.
    pub fn anonymous(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), Bearer::anonymous())
    }

    /// Mints a token.
    pub fn token(&self, subject: &str, roles: &[Role], unit: Option<&str>) -> String {
        self.key.issue(subject, roles, unit, 3600).expect("token")
    }

    /// A channel for the office.
    pub fn office(&self) -> Authed {
        self.authed(&self.token("office", &[Role::Office], None))
    }

    /// A channel for an assessed unit.
    pub fn unit(&self, unit: &str) -> Authed {
        self.authed(&self.token(unit, &[Role::Unit], Some(unit)))
    }

    /// A channel for a principal with these roles.
    pub fn as_roles(&self, subject: &str, roles: &[Role], unit: Option<&str>) -> Authed {
        self.authed(&self.token(subject, roles, unit))
    }

    /// Stops the suite (graceful drain) and drops its PostgreSQL databases.
    pub async fn stop(mut self) {
        self.halt().await;
        if let Some((admin, names)) = self.postgres.take() {
            drop_databases(&admin, &names).await;
        }
    }
}

/// A plain HTTP/1.1 `GET`: the status code and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    // A server that does not speak HTTP/1.1 may close with an error.
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn drop_databases(admin: &str, names: &[String]) {
    if let Ok(mut conn) = sqlx::AnyConnection::connect(admin).await {
        for name in names {
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
        conn.close().await.ok();
    }
}

/// The gRPC service name of a target, as health checks know it.
pub fn service_name(t: Target) -> &'static str {
    match t {
        Target::Plans => "jixiao.plans.v1.PlansService",
        Target::Indicators => "jixiao.indicators.v1.IndicatorsService",
        Target::Inspections => "jixiao.inspections.v1.InspectionsService",
        Target::Reviews => "jixiao.reviews.v1.ReviewsService",
        Target::Aggregator => "jixiao.aggregator.v1.AggregatorService",
    }
}

/// Defines a scenario test twice: on SQLite, and on PostgreSQL when
/// `JIXIAO_TEST_POSTGRES_URL` is set (CI sets it; it is skipped with a note
/// otherwise). The scenario is an `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario($crate::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::Backend::postgres_from_env() {
                    Some(backend) => super::$scenario(backend).await,
                    None if std::env::var("CI").is_ok() => {
                        panic!("CI must set {} so PostgreSQL is tested", $crate::POSTGRES_ENV)
                    }
                    None => eprintln!("skipped: set {} to run on PostgreSQL", $crate::POSTGRES_ENV),
                }
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_the_database_of_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
