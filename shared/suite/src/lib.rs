//! The suite's wiring: which services a process runs (`--target`), where
//! their databases are, and starting them on one gRPC server, plus a
//! channel that carries a bearer token ([`client`]). The `jixiao` binary
//! and the test kit both start services through [`start`]; this crate is
//! separate from the binary so the test kit builds on it alone.

pub mod client;
pub mod dashboard;

use std::{fmt, path::PathBuf, str::FromStr};

use jixiao_runtime::{TokenKey, db, host::Services, metrics::Metrics};
use tokio::net::TcpListener;

/// A service of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Plans,
    Indicators,
    Inspections,
    Reviews,
    Aggregator,
}

impl Target {
    /// Every service this build contains.
    pub const ALL: &'static [Target] = &[
        Target::Plans,
        Target::Indicators,
        Target::Inspections,
        Target::Reviews,
        Target::Aggregator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Plans => "plans",
            Target::Indicators => "indicators",
            Target::Inspections => "inspections",
            Target::Reviews => "reviews",
            Target::Aggregator => "aggregator",
        }
    }

    /// Environment variable holding the service's database URL.
    pub fn database_env(self) -> &'static str {
        match self {
            Target::Plans => "JIXIAO_PLANS_DATABASE_URL",
            Target::Indicators => "JIXIAO_INDICATORS_DATABASE_URL",
            Target::Inspections => "JIXIAO_INSPECTIONS_DATABASE_URL",
            Target::Reviews => "JIXIAO_REVIEWS_DATABASE_URL",
            Target::Aggregator => "JIXIAO_AGGREGATOR_DATABASE_URL",
        }
    }

    /// Environment variable holding the address other processes call the
    /// service at.
    pub fn addr_env(self) -> &'static str {
        match self {
            Target::Plans => "JIXIAO_PLANS_ADDR",
            Target::Indicators => "JIXIAO_INDICATORS_ADDR",
            Target::Inspections => "JIXIAO_INSPECTIONS_ADDR",
            Target::Reviews => "JIXIAO_REVIEWS_ADDR",
            Target::Aggregator => "JIXIAO_AGGREGATOR_ADDR",
        }
    }

    /// The services this one calls.
    pub fn calls(self) -> &'static [Target] {
        match self {
            Target::Plans => &[],
            Target::Indicators | Target::Inspections | Target::Reviews => &[Target::Plans],
            Target::Aggregator => &[
                Target::Plans,
                Target::Indicators,
                Target::Inspections,
                Target::Reviews,
            ],
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown service {s:?}; this build has: {}",
                    Target::ALL
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// Parses `all` or a comma-separated list of services.
pub fn parse_targets(spec: &str) -> Result<Vec<Target>, String> {
    if spec.trim() == "all" {
        return Ok(Target::ALL.to_vec());
    }
    let mut out: Vec<Target> = spec
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err("name at least one service, or all".into());
    }
    Ok(out)
}

/// The `service.name` of a process's exported spans: `jixiao-plans` for
/// a process running plans alone, `jixiao` for the whole suite, the
/// services joined with `+` otherwise.
pub fn trace_service_name(targets: &[Target]) -> String {
    if targets.len() == Target::ALL.len() {
        return "jixiao".into();
    }
    let names: Vec<&str> = targets.iter().map(|t| t.as_str()).collect();
    format!("jixiao-{}", names.join("+"))
}

/// What a process needs to run its services.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    pub targets: Vec<Target>,
    /// Folder of the embedded SQLite files.
    pub data_dir: PathBuf,
    /// Database URL per service; a service without one gets a SQLite file
    /// in `data_dir`.
    pub database_urls: Vec<(Target, String)>,
    pub key: TokenKey,
    /// Addresses of the services this process calls but does not run; a
    /// service it runs is called in-process, one not named here at
    /// `http://127.0.0.1:50051`.
    pub peers: Vec<(Target, String)>,
    /// How often the aggregator reconciles every active group with the
    /// component services.
    pub reconcile: std::time::Duration,
    /// TLS for this process's port and its calls to `https://` peers.
    pub tls: jixiao_runtime::tls::Tls,
}

impl SuiteConfig {
    pub fn database_url(&self, target: Target) -> String {
        self.database_urls
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, u)| u.clone())
            .unwrap_or_else(|| db::sqlite_url(&self.data_dir, target.as_str()))
    }

    /// Where `target` is called from this process, whose own address is `own`.
    pub fn addr_of(&self, target: Target, own: &str) -> String {
        if self.targets.contains(&target) {
            return own.to_string();
        }
        self.peers
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| DEFAULT_ADDR.to_string())
    }
}

/// Where a service not run by this process is called by default.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// Errors starting the suite.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{service}: cannot open its database {url}: {source}")]
    Database {
        service: Target,
        url: String,
        source: jixiao_runtime::Error,
    },
    #[error("cannot create the data folder {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("server: {0}")]
    Server(Box<dyn std::error::Error + Send + Sync>),
}

/// Opens each service's database and serves them all on `listener` until
/// `shutdown` completes.
pub async fn start(
    config: SuiteConfig,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), StartError> {
    start_with_admin(config, listener, None, shutdown).await
}

/// [`start`], with the process's metrics served on `admin` (`GET
/// /metrics`, Prometheus text), a port apart from the public one.
pub async fn start_with_admin(
    config: SuiteConfig,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
    let scheme = if config.tls.serves() { "https" } else { "http" };
    let own = listener
        .local_addr()
        .map(|a| format!("{scheme}://{a}"))
        .map_err(|e| StartError::Server(Box::new(e)))?;
    let (trigger, shutdown_streams) = jixiao_runtime::host::Shutdown::new();
    let metrics = Metrics::new();
    let mut services = Services::new();
    services.site(dashboard::SITE).metrics(metrics.clone());
    // Each service gets its own lazily connected clients, signed as itself.
    let client = |to: Target, subject: &'static str| {
        jixiao_runtime::client::connect(
            &config.addr_of(to, &own),
            &config.key,
            subject,
            &config.tls,
        )
        .map_err(|e| StartError::Server(Box::new(e)))
    };
    let plans_client = |subject: &'static str| client(Target::Plans, subject);
    for &target in &config.targets {
        let url = config.database_url(target);
        let database = |source| StartError::Database {
            service: target,
            url: db::mask_password(&url),
            source,
        };
        let db = match target {
            Target::Plans => {
                let db = jixiao_plans::open(&url).await.map_err(database)?;
                services.add(jixiao_plans::server(db.clone(), shutdown_streams.clone()));
                db
            }
            Target::Indicators => {
                let db = jixiao_indicators::open(&url).await.map_err(database)?;
                let plans = plans_client("indicators")?;
                services.add(jixiao_indicators::server(
                    db.clone(),
                    plans,
                    shutdown_streams.clone(),
                    metrics.clone(),
                ));
                db
            }
            Target::Inspections => {
                let db = jixiao_inspections::open(&url).await.map_err(database)?;
                let plans = plans_client("inspections")?;
                services.add(jixiao_inspections::server(
                    db.clone(),
                    plans,
                    shutdown_streams.clone(),
                ));
                db
            }
            Target::Reviews => {
                let db = jixiao_reviews::open(&url).await.map_err(database)?;
                let plans = plans_client("reviews")?;
                let server = jixiao_reviews::server(
                    db.clone(),
                    plans,
                    shutdown_streams.clone(),
                    metrics.clone(),
                )
                .await
                .map_err(database)?;
                services.add(server);
                db
            }
            Target::Aggregator => {
                let db = jixiao_aggregator::open(&url).await.map_err(database)?;
                let channels = jixiao_aggregator::Channels {
                    plans: client(Target::Plans, "aggregator")?,
                    indicators: client(Target::Indicators, "aggregator")?,
                    inspections: client(Target::Inspections, "aggregator")?,
                    reviews: client(Target::Reviews, "aggregator")?,
                };
                let server = jixiao_aggregator::server(
                    db.clone(),
                    channels,
                    shutdown_streams.clone(),
                    config.reconcile,
                    metrics.clone(),
                )
                .await
                .map_err(database)?;
                services.add(server);
                db
            }
        };
        services.depends_on(db.clone());
        metrics.watch_db(target.as_str(), &db);
        let calls: Vec<String> = target
            .calls()
            .iter()
            .map(|t| format!("{t}={}", config.addr_of(*t, &own)))
            .collect();
        tracing::info!(service = %target, database = %db.display_url(), calls = %calls.join(" "), "service ready");
    }
    let admin = admin.map(|admin| {
        let (metrics, stop) = (metrics.clone(), shutdown_streams.clone().wait());
        tokio::spawn(async move {
            if let Err(e) = jixiao_runtime::metrics::serve_admin(admin, metrics, stop).await {
                tracing::error!(error = %e, "the admin port stopped");
            }
        })
    });
    let shutdown = async move {
        shutdown.await;
        trigger.fire();
    };
    let served = jixiao_runtime::host::serve(listener, services, config.key, &config.tls, shutdown)
        .await
        .map_err(StartError::Server);
    // Its port closes with the public one, so that a restart can bind both.
    if let Some(admin) = admin {
        admin.abort();
    }
    served
}
