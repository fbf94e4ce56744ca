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
    pub key: TokenKey,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), jixiao_suite::StartError>>>,
    postgres: Option<(String, Vec<String>)>,
    config: SuiteConfig,
    _dir: tempfile::TempDir,
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

fn log_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JIXIAO_TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let channel = channel_to(&config, addr);
        let mut suite = Suite {
            addr,
            key,
            channel,
            stop: None,
            task: None,
            postgres,
            config,
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
            key,
            channel,
            stop: None,
            task: None,
            postgres: None,
            config,
            _dir: dir,
        }
    }

    async fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        self.task = Some(tokio::spawn(jixiao_suite::start(
            self.config.clone(),
            listener,
            async {
                let _ = stopped.await;
            },
        )));
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
