//! `jixiao`: serves any set of Jixiao services, checks their health, and
//! mints tokens.

// Decoding protobuf makes many small allocations; mimalloc serves them
// markedly faster than the system allocator on the ingest path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use jixiao::{SuiteConfig, Target, commands, parse_targets, table::Format};
use jixiao_runtime::{Role, telemetry, tls::Tls};
use keys::KeyArgs;

mod keys;

#[derive(Parser)]
#[command(
    name = "jixiao",
    version,
    about = "Online government performance evaluation (绩效管理) services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start all five services on SQLite in a fresh folder, load a sample
    /// evaluation year through the public RPCs, publish it, print the ranked
    /// tables and keep serving until Ctrl-C.
    Demo(DemoArgs),
    /// Run services on one gRPC port.
    Serve(Box<ServeArgs>),
    /// Exit 0 when a running server reports SERVING (for container health checks).
    Healthcheck(HealthArgs),
    /// Tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Public review data.
    Reviews {
        #[command(subcommand)]
        command: ReviewsCommand,
    },
    /// A group's ranked table: provisional standings, or a published version.
    Standings(StandingsArgs),
    /// A unit's feedback: breakdown, points lost, findings, credits, timeliness.
    Feedback(FeedbackArgs),
    /// Indicator values.
    Values {
        #[command(subcommand)]
        command: ValuesCommand,
    },
    /// Performance plans.
    Plans {
        #[command(subcommand)]
        command: PlansCommand,
    },
    /// Who changed a resource, when and why.
    Audit(AuditArgs),
}

#[derive(Args)]
struct CallerArgs {
    /// Server address.
    #[arg(long, env = "JIXIAO_ADDR", default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// Bearer token (`jixiao token issue`, or the one `serve` or `demo` prints).
    #[arg(long, env = "JIXIAO_TOKEN", hide_env_values = true)]
    token: String,
    /// PEM file of the certificate authority to trust for an `https://` address.
    #[arg(long, env = "JIXIAO_TLS_CA")]
    tls_ca: Option<PathBuf>,
}

impl CallerArgs {
    fn caller(self) -> jixiao::commands::Caller {
        jixiao::commands::Caller {
            addr: self.addr,
            token: self.token,
            tls_ca: self.tls_ca,
        }
    }
}

#[derive(Args)]
struct OutputArgs {
    /// Write CSV.
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    /// Write JSON.
    #[arg(long)]
    json: bool,
}

impl OutputArgs {
    fn format(&self) -> Format {
        match (self.csv, self.json) {
            (true, _) => Format::Csv,
            (_, true) => Format::Json,
            _ => Format::Table,
        }
    }
}

#[derive(Args)]
struct StandingsArgs {
    /// The cycle, e.g. 2026.
    #[arg(long)]
    cycle: String,
    /// The group, e.g. districts.
    #[arg(long)]
    group: String,
    /// The latest published version instead of the provisional standings.
    #[arg(long)]
    published: bool,
    /// A given published version.
    #[arg(long, conflicts_with = "published")]
    version: Option<i32>,
    #[command(flatten)]
    caller: CallerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct FeedbackArgs {
    /// The cycle, e.g. 2026.
    #[arg(long)]
    cycle: String,
    /// The group, e.g. districts.
    #[arg(long)]
    group: String,
    /// The unit, e.g. huli.
    #[arg(long)]
    unit: String,
    #[command(flatten)]
    caller: CallerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Subcommand)]
enum ValuesCommand {
    /// Report indicator values from a CSV file (columns unit, indicator,
    /// period as 2026 / 2026-Q3 / 2026-07, value; optional comment and
    /// evidence_name, evidence_uri, evidence_sha256, evidence_size,
    /// evidence_media_type). Safe to run again.
    Report {
        /// The CSV file.
        file: PathBuf,
        /// The cycle, e.g. 2026.
        #[arg(long)]
        cycle: String,
        #[command(flatten)]
        caller: CallerArgs,
    },
}

#[derive(Subcommand)]
enum PlansCommand {
    /// Create or revise a unit's plan from a JSON file and submit it
    /// ({"unit": "siming", "targets": {"GDP_GROWTH": "7.0"}, "goals": [...]}).
    Submit {
        /// The JSON file.
        file: PathBuf,
        /// The cycle, e.g. 2026.
        #[arg(long)]
        cycle: String,
        #[command(flatten)]
        caller: CallerArgs,
    },
}

#[derive(Args)]
struct AuditArgs {
    /// A resource name or prefix, e.g. cycles/2026/plans/huli.
    #[arg(required_unless_present = "verify")]
    resource: Option<String>,
    /// Walk every service's audit hash chain instead; exit 1 if one is broken.
    #[arg(long, conflicts_with = "resource")]
    verify: bool,
    /// Only this service's trail (plans, indicators, inspections, reviews, aggregator).
    #[arg(long)]
    service: Option<String>,
    #[command(flatten)]
    caller: CallerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Subcommand)]
enum ReviewsCommand {
    /// Push survey responses from a CSV file through the streaming RPC
    /// (columns: response_id, unit, category, channel, answer_time, then one
    /// per question id). Safe to run again: stored responses count once.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The campaign, e.g. cycles/2026/campaigns/survey.
        #[arg(long)]
        campaign: String,
        /// The token is a survey platform's bound to the campaign.
        #[command(flatten)]
        caller: CallerArgs,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Services to run: `all`, or a comma-separated list such as `plans`.
    #[arg(long, env = "JIXIAO_TARGET", default_value = "all")]
    target: String,
    /// Address to listen on.
    #[arg(long, env = "JIXIAO_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Address of the admin port serving `GET /metrics` (Prometheus text);
    /// none unless set. Keep it off the public network.
    #[arg(long, env = "JIXIAO_ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// Log format.
    #[arg(long, env = "JIXIAO_LOG_FORMAT", value_enum, default_value_t)]
    log_format: telemetry::LogFormat,
    /// OTLP/gRPC address of an OpenTelemetry collector to send traces to,
    /// e.g. `http://otel-collector:4317`; none are sent unless set.
    #[arg(long, env = "JIXIAO_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Database URL of the plans service (default: SQLite file in the data folder).
    #[arg(long, env = "JIXIAO_PLANS_DATABASE_URL")]
    plans_database_url: Option<String>,
    /// Database URL of the indicators service (default: SQLite file in the data folder).
    #[arg(long, env = "JIXIAO_INDICATORS_DATABASE_URL")]
    indicators_database_url: Option<String>,
    /// Database URL of the inspections service (default: SQLite file in the data folder).
    #[arg(long, env = "JIXIAO_INSPECTIONS_DATABASE_URL")]
    inspections_database_url: Option<String>,
    /// Database URL of the reviews service (default: SQLite file in the data folder).
    #[arg(long, env = "JIXIAO_REVIEWS_DATABASE_URL")]
    reviews_database_url: Option<String>,
    /// Database URL of the aggregator (default: SQLite file in the data folder).
    #[arg(long, env = "JIXIAO_AGGREGATOR_DATABASE_URL")]
    aggregator_database_url: Option<String>,
    /// Address of the plans service, for services that call it (default:
    /// this process when it runs plans, else http://127.0.0.1:50051).
    #[arg(long, env = "JIXIAO_PLANS_ADDR")]
    plans_addr: Option<String>,
    /// Address of the indicators service, for the aggregator (default as for plans).
    #[arg(long, env = "JIXIAO_INDICATORS_ADDR")]
    indicators_addr: Option<String>,
    /// Address of the inspections service, for the aggregator (default as for plans).
    #[arg(long, env = "JIXIAO_INSPECTIONS_ADDR")]
    inspections_addr: Option<String>,
    /// Address of the reviews service, for the aggregator (default as for plans).
    #[arg(long, env = "JIXIAO_REVIEWS_ADDR")]
    reviews_addr: Option<String>,
    /// Seconds between the aggregator's full refetches of every active group
    /// (a safety net under the change streams).
    #[arg(long, env = "JIXIAO_RECONCILE_SECS", default_value_t = 30)]
    reconcile_secs: u64,
    /// Connections each service keeps to its PostgreSQL database at most.
    /// Replicas multiply it: keep replicas × services × this under the
    /// server's `max_connections`.
    #[arg(long, env = "JIXIAO_DB_POOL_SIZE", default_value_t = jixiao_runtime::db::DEFAULT_POOL_SIZE)]
    db_pool_size: u32,
    /// PEM certificate chain of this process's port: with `--tls-key` the
    /// port speaks TLS only.
    #[arg(long, env = "JIXIAO_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "JIXIAO_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM certificate authority trusted when calling `https://` peers.
    #[arg(long, env = "JIXIAO_TLS_CA")]
    tls_ca: Option<PathBuf>,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Args)]
struct DemoArgs {
    /// The demo's folder; emptied first if an earlier demo made it.
    #[arg(long, default_value = "./demo-data")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Address of an admin port serving `GET /metrics` (Prometheus text).
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Verify every publication and exit once the year is loaded, instead
    /// of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
}

#[derive(Args)]
struct HealthArgs {
    /// Server address.
    #[arg(long, env = "JIXIAO_ADDR", default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// Service to check; empty checks the server as a whole.
    #[arg(long, default_value = "")]
    service: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    timeout_secs: u64,
    /// PEM file of the certificate authority to trust for an `https://` address.
    #[arg(long, env = "JIXIAO_TLS_CA")]
    tls_ca: Option<PathBuf>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token signed with the configured key.
    Issue {
        /// Role(s): office, evaluator, inspector, unit, provider, survey_platform, viewer, service.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The unit id, for the roles unit and provider (e.g. siming).
        #[arg(long)]
        unit: Option<String>,
        /// Token subject; defaults to the unit id or the first role.
        #[arg(long)]
        subject: Option<String>,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 24 * 30)]
        ttl_hours: u64,
        #[command(flatten)]
        key: KeyArgs,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => {
            jixiao::demo::run(&args.data_dir, args.listen, args.admin_listen, args.exit).await
        }
        Command::Serve(args) => serve(*args).await,
        Command::Healthcheck(args) => healthcheck(args).await,
        Command::Token {
            command:
                TokenCommand::Issue {
                    roles,
                    unit,
                    subject,
                    ttl_hours,
                    key,
                },
        } => issue(&roles, unit, subject, ttl_hours, &key),
        Command::Reviews {
            command:
                ReviewsCommand::Import {
                    file,
                    campaign,
                    caller,
                },
        } => print_out(commands::import_responses(&caller.caller(), &file, &campaign).await),
        Command::Standings(a) => {
            let published = a.version.or(a.published.then_some(0));
            let format = a.output.format();
            print_out(
                commands::standings(&a.caller.caller(), &a.cycle, &a.group, published, format)
                    .await,
            )
        }
        Command::Feedback(a) => {
            let format = a.output.format();
            print_out(
                commands::feedback(&a.caller.caller(), &a.cycle, &a.group, &a.unit, format).await,
            )
        }
        Command::Values {
            command:
                ValuesCommand::Report {
                    file,
                    cycle,
                    caller,
                },
        } => print_out(commands::report_values(&caller.caller(), &cycle, &file).await),
        Command::Plans {
            command:
                PlansCommand::Submit {
                    file,
                    cycle,
                    caller,
                },
        } => print_out(commands::submit_plan(&caller.caller(), &cycle, &file).await),
        Command::Audit(a) => {
            let format = a.output.format();
            let caller = a.caller.caller();
            let service = a.service.as_deref();
            print_out(match &a.resource {
                Some(resource) if !a.verify => {
                    commands::audit(&caller, resource, service, format).await
                }
                _ => commands::verify_audit(&caller, service, format).await,
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jixiao: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Prints what a client command wrote.
fn print_out(result: Result<String, String>) -> Result<(), String> {
    print!("{}", result?);
    Ok(())
}

fn issue(
    roles: &[String],
    unit: Option<String>,
    subject: Option<String>,
    ttl_hours: u64,
    key: &KeyArgs,
) -> Result<(), String> {
    let roles = roles
        .iter()
        .map(|r| r.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()?;
    let (key, _) = key.load(false)?;
    let subject = subject
        .or_else(|| unit.clone())
        .unwrap_or_else(|| roles[0].as_str().to_string());
    let token = key.issue(&subject, &roles, unit.as_deref(), ttl_hours * 3600)?;
    println!("{token}");
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let targets = parse_targets(&args.target)?;
    let export = args.otlp_endpoint.map(|endpoint| telemetry::Export {
        endpoint,
        service: jixiao_suite::trace_service_name(&targets),
    });
    let traces = telemetry::init_with(args.log_format, telemetry::SERVER_LOGS, export.as_ref())?;
    let (key, generated) = args.key.load(true)?;
    jixiao_runtime::db::set_pool_size(args.db_pool_size);
    let mut database_urls = Vec::new();
    for (target, url) in [
        (Target::Plans, args.plans_database_url),
        (Target::Indicators, args.indicators_database_url),
        (Target::Inspections, args.inspections_database_url),
        (Target::Reviews, args.reviews_database_url),
        (Target::Aggregator, args.aggregator_database_url),
    ] {
        if let Some(url) = url {
            database_urls.push((target, url));
        }
    }
    let peers = [
        (Target::Plans, args.plans_addr),
        (Target::Indicators, args.indicators_addr),
        (Target::Inspections, args.inspections_addr),
        (Target::Reviews, args.reviews_addr),
    ]
    .into_iter()
    .filter_map(|(t, a)| a.map(|a| (t, a)))
    .collect();
    let config = SuiteConfig {
        targets: targets.clone(),
        data_dir: args.key.data_dir.clone(),
        database_urls,
        key: key.clone(),
        peers,
        reconcile: Duration::from_secs(args.reconcile_secs.max(1)),
        tls: Tls::from_files(
            args.tls_cert.as_deref(),
            args.tls_key.as_deref(),
            args.tls_ca.as_deref(),
        )?,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let admin = jixiao::bind_admin(args.admin_listen).await?;
    for t in &targets {
        tracing::info!(service = %t, database = %jixiao_runtime::db::mask_password(&config.database_url(*t)), "configured");
    }
    println!(
        "jixiao serving {} on {addr} ({}gRPC, gRPC-Web; health and reflection open)",
        targets
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if config.tls.serves() { "TLS, " } else { "" }
    );
    let scheme = if config.tls.serves() { "https" } else { "http" };
    let own = format!("{scheme}://{addr}");
    println!("  dashboard    {own}/ (sign in with a token)");
    if let Some(at) = admin.as_ref().and_then(|l| l.local_addr().ok()) {
        println!("  metrics      http://{at}/metrics (admin port)");
    }
    for t in &targets {
        println!(
            "  {t:<12} database {}",
            jixiao_runtime::db::mask_password(&config.database_url(*t))
        );
        let calls: Vec<String> = t
            .calls()
            .iter()
            .filter(|c| !targets.contains(c))
            .map(|c| format!("{c} at {}", config.addr_of(*c, &own)))
            .collect();
        if !calls.is_empty() {
            println!("  {:<12} calls {}", "", calls.join(", "));
        }
    }
    if generated {
        let token = key.issue("office", &[Role::Office], None, 30 * 24 * 3600)?;
        println!(
            "  development key {} (set JIXIAO_TOKEN_KEY in production)",
            args.key.data_dir.join("token.key").display()
        );
        println!("  office token (30 days):\n{token}");
    }
    let served = jixiao::start_with_admin(config, listener, admin, jixiao::shutdown_signal()).await;
    // The spans of the last calls are still buffered: send them.
    traces.shutdown();
    served.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

async fn healthcheck(args: HealthArgs) -> Result<(), String> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let timeout = Duration::from_secs(args.timeout_secs);
    let check = async {
        let channel = Tls::from_files(None, None, args.tls_ca.as_deref())?
            .endpoint(&args.addr)?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|e| format!("{}: {e}", args.addr))?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: args.service.clone(),
            })
            .await
            .map_err(|e| format!("{}: {}", args.addr, e.message()))?
            .into_inner()
            .status();
        if status == ServingStatus::Serving {
            println!("SERVING");
            Ok(())
        } else {
            Err(format!("{} reports {}", args.addr, status.as_str_name()))
        }
    };
    tokio::time::timeout(timeout, check)
        .await
        .map_err(|_| format!("{}: no answer within {timeout:?}", args.addr))?
}
