//! The `jixiao demo` session: a fresh data folder, the five services in
//! this process on SQLite, the year loaded through the public RPCs, both
//! ranked tables printed, then serving until Ctrl-C with an address and
//! tokens to explore with.

use std::{net::SocketAddr, path::Path, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};
use jixiao_runtime::{Role, TokenKey, telemetry};

use super::{Published, Step, load_counted};
use crate::{SuiteConfig, Target, table};

/// Marks a folder the demo made, so a later demo may wipe it and nothing
/// else ever is.
const MARKER: &str = ".jixiao-demo";

/// Empties `dir` if an earlier demo made it; refuses any other non-empty folder.
fn fresh_folder(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| format!("{shown}: {e}"))?
            .next()
            .is_none();
        if !empty && !dir.join(MARKER).exists() {
            return Err(format!(
                "{shown} holds files the demo did not make; pass --data-dir with a new folder"
            ));
        }
        std::fs::remove_dir_all(dir).map_err(|e| format!("{shown}: {e}"))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{shown}: {e}"))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `jixiao demo`; the next demo run empties this folder\n",
    )
    .map_err(|e| format!("{shown}: {e}"))
}

async fn wait_serving(addr: &str) -> Result<(), String> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(addr.to_string())
            .map_err(|e| e.to_string())?
            .connect()
            .await
        {
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
                .map(|r| r.into_inner().status());
            if matches!(status, Ok(ServingStatus::Serving)) {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("the services at {addr} did not start"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_tables(published: &[Published]) {
    for p in published {
        println!(
            "\n{} (cycles/2026/groups/{}), published version {}",
            p.group_name, p.group, p.publication.version
        );
        println!("digest sha256:{}", p.publication.digest);
        print!(
            "{}",
            table::standings(&p.publication.rows).render(table::Format::Table)
        );
    }
}

/// Asks the aggregator to re-verify every publication of the demo from its
/// stored inputs, as anyone may.
async fn verify_all(url: &str, key: &TokenKey, published: &[Published]) -> Result<(), String> {
    use jixiao_proto::aggregator::{
        VerifyPublicationRequest, aggregator_service_client::AggregatorServiceClient,
    };
    let token = key.issue("dashboard", &[Role::Viewer], None, 3600)?;
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let mut client = AggregatorServiceClient::with_interceptor(
        channel,
        crate::client::Bearer::new(&token).map_err(|e| e.to_string())?,
    );
    for p in published {
        let answer = client
            .verify_publication(VerifyPublicationRequest {
                name: p.publication.name.clone(),
            })
            .await
            .map_err(|s| format!("verifying {}: {}", p.publication.name, s.message()))?
            .into_inner();
        if !answer.valid {
            return Err(format!(
                "{} does not reproduce: {}",
                p.publication.name,
                answer.problems.join("; ")
            ));
        }
        println!(
            "  ✓ verified {} (sha256:{})",
            p.publication.name, answer.recomputed_digest
        );
    }
    Ok(())
}

/// Where the demo writes the calls it made, per method, in its folder.
pub const CALLS_FILE: &str = "calls.tsv";

/// Runs the demo until Ctrl-C or SIGTERM; with `exit`, verifies every
/// publication and stops once the year is loaded (CI runs it so). With
/// `admin`, the metrics are served there.
pub async fn run(
    data_dir: &Path,
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    exit: bool,
) -> Result<(), String> {
    telemetry::init(telemetry::LogFormat::Pretty, telemetry::QUIET_LOGS);
    fresh_folder(data_dir)?;
    let (key, _) = TokenKey::load_or_create(&data_dir.join("token.key"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let url = format!("http://{addr}");
    let admin = crate::bind_admin(admin).await?;
    let metrics_at = admin.as_ref().and_then(|l| l.local_addr().ok());
    let config = SuiteConfig {
        targets: Target::ALL.to_vec(),
        data_dir: data_dir.to_path_buf(),
        database_urls: Vec::new(),
        key: key.clone(),
        peers: Vec::new(),
        reconcile: Duration::from_secs(30),
        tls: Default::default(),
    };
    println!(
        "jixiao demo: plans, indicators, inspections, reviews and aggregator on {addr}, SQLite in {}",
        data_dir.display()
    );
    if let Some(at) = metrics_at {
        println!("metrics on http://{at}/metrics (admin port)");
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            _ = crate::shutdown_signal() => {}
            _ = stopped => {}
        }
    };
    let mut server = tokio::spawn(crate::start_with_admin(config, listener, admin, shutdown));
    let calls = crate::client::Calls::default();
    let loading = async {
        wait_serving(&url).await?;
        println!(
            "loading the {} evaluation year through the public RPCs…",
            super::year::YEAR
        );
        let mut bar: Option<ProgressBar> = None;
        let published = load_counted(&url, &key, &calls, |step| match step {
            Step::Done(line) => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                println!("  ✓ {line}");
            }
            Step::Pushed { sent, total } => {
                let b = bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(total as u64);
                    b.set_style(
                        ProgressStyle::with_template(
                            "  survey responses {bar:40} {pos}/{len} ({per_sec})",
                        )
                        .expect("a valid template"),
                    );
                    b
                });
                b.set_position(sent as u64);
            }
        })
        .await?;
        Ok::<_, String>(published)
    };
    let published = tokio::select! {
        p = loading => p?,
        done = &mut server => {
            return match done {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
        }
    };
    let counts = calls.counts();
    let lines: String = counts
        .iter()
        .map(|(method, n)| format!("{method}\t{n}\n"))
        .collect();
    std::fs::write(data_dir.join(CALLS_FILE), lines)
        .map_err(|e| format!("{}: {e}", data_dir.join(CALLS_FILE).display()))?;
    println!(
        "  ✓ {} calls through the public RPCs, per method in {}",
        counts.values().sum::<u64>(),
        data_dir.join(CALLS_FILE).display()
    );
    print_tables(&published);
    if exit {
        verify_all(&url, &key, &published).await?;
        let _ = stop.send(());
        println!("\nloaded, published and verified; stopping (--exit)");
        return match server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        };
    }
    let office = key.issue("office", &[Role::Office], None, 30 * 24 * 3600)?;
    let viewer = key.issue("dashboard", &[Role::Viewer], None, 30 * 24 * 3600)?;
    println!("\nserving on {url} until Ctrl-C");
    println!("dashboard, signed in as the viewer for this browser tab: {url}/#token={viewer}");
    println!("office token (30 days):\n{office}");
    println!("viewer token (30 days):\n{viewer}");
    println!("\ntry, in another terminal (`jixiao` is target/debug/jixiao after the build):");
    println!("  export JIXIAO_ADDR={url} JIXIAO_TOKEN=<the office token above>");
    println!("  jixiao standings --cycle 2026 --group districts");
    println!("  jixiao standings --cycle 2026 --group departments --published --csv");
    println!("  jixiao feedback --cycle 2026 --group districts --unit tongan");
    println!("  jixiao audit cycles/2026/plans/huli");
    println!("  grpcurl -plaintext {addr} list");
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
