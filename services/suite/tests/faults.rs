//! Faults with real processes and real signals: a service runs as a child
//! `jixiao serve` process and is killed with SIGKILL in the middle of the
//! work, then started again on the same port and database. Loopback only;
//! every wait is bounded.

mod common;

use std::{
    process::{Command, Stdio},
    str::FromStr,
    time::Duration,
};

use common::Process;
use jixiao::Target;
use jixiao_proto::{
    aggregator::aggregator_service_client::AggregatorServiceClient,
    reviews::{
        CampaignMode, GetGroupReviewScoresRequest, GroupReviewScores, PushResponsesRequest,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{Role, TokenKey};
use jixiao_testkit::{Authed, Backend, Options, Scratch, Suite, on_both_databases};
use jixiao_tests::{
    evaluation_year, now_ms, response, set_phase, standings_until, survey_campaign,
};
use rust_decimal::{Decimal, RoundingStrategy};

const GROUP: &str = "cycles/2026/groups/districts";
const CAMPAIGN: &str = "cycles/2026/campaigns/survey";

async fn channel(url: &str, token: &str) -> Authed {
    jixiao::client::connect(url, token).await.expect("connect")
}

async fn review_scores(reviews: &mut ReviewsServiceClient<Authed>) -> Option<GroupReviewScores> {
    reviews
        .get_group_review_scores(GetGroupReviewScoresRequest {
            group: GROUP.into(),
            known_revision: 0,
            ..Default::default()
        })
        .await
        .ok()
        .map(|r| r.into_inner())
}

const BATCHES: usize = 24;
const PER_BATCH: usize = 500;
const UNITS: [&str; 3] = ["siming", "huli", "jimei"];

/// Batch `b`: 500 responses for one district; every third batch is
/// dissatisfied, so a lost or doubled batch moves the district's score.
fn batch(b: usize) -> PushResponsesRequest {
    let unit = UNITS[b % 3];
    let answer = if b % 3 == (b / 3) % 3 {
        "dissatisfied"
    } else {
        "satisfied"
    };
    PushResponsesRequest {
        campaign: CAMPAIGN.into(),
        responses: (0..PER_BATCH)
            .map(|i| response(&format!("b{b}-{i}"), unit, "residents", [answer; 3]))
            .collect(),
    }
}

/// Fault 1 and 4: the reviews service is killed with SIGKILL while a
/// platform streams responses; the aggregator marks the standings stale;
/// the service restarts on its database, the platform resends the whole
/// stream, and every response counts exactly once: in the reviews
/// service's tallies and in the aggregator's standings, which are fresh
/// again.
async fn reviews_killed_mid_stream_count_exactly_once_resent(backend: Backend) {
    let key_hex = TokenKey::generate_hex();
    let key = TokenKey::from_hex(&key_hex).unwrap();
    let components = Suite::start_with(
        backend.clone(),
        Options {
            targets: vec![Target::Plans, Target::Indicators, Target::Inspections],
            key: Some(key.clone()),
            peers: vec![],
            tls: None,
            otlp_endpoint: None,
        },
    )
    .await;
    evaluation_year(&components, "2026", now_ms() + 24 * 3600 * 1000).await;
    // Surveys are pushed during the year.
    set_phase(&components, "2026", jixiao_proto::plans::Phase::Execution).await;
    let scratch = match &backend {
        Backend::Postgres(admin) => Some(Scratch::create(admin, "reviews").await),
        Backend::Sqlite => None,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut extra = vec![("--plans-addr", components.url())];
    if let Some(s) = &scratch {
        extra.push(("--reviews-database-url", s.url.clone()));
    }
    let mut reviews = Process::start("reviews", &dir.path().join("data"), &key_hex, &extra);
    let aggregator = Suite::start_with(
        backend.clone(),
        Options {
            targets: vec![Target::Aggregator],
            key: Some(key.clone()),
            peers: vec![
                (Target::Plans, components.url()),
                (Target::Indicators, components.url()),
                (Target::Inspections, components.url()),
                (Target::Reviews, reviews.url()),
            ],
            tls: None,
            otlp_endpoint: None,
        },
    )
    .await;
    let token = |subject: &str, role: Role| key.issue(subject, &[role], None, 3600).unwrap();
    let office_token = token("office", Role::Office);
    let platform_token = token("platform-a", Role::SurveyPlatform);
    survey_campaign(
        &mut ReviewsServiceClient::new(channel(&reviews.url(), &office_token).await),
        "survey",
        CampaignMode::RawResponses,
    )
    .await;
    let mut reader = ReviewsServiceClient::new(channel(&reviews.url(), &office_token).await);
    let mut office = AggregatorServiceClient::new(aggregator.office());
    standings_until(&mut office, "fresh standings", |s| !s.stale).await;

    // A third of the stream is stored; two more batches are on the wire
    // when the process dies.
    let (tx, rx) = tokio::sync::mpsc::channel(BATCHES);
    let mut platform = ReviewsServiceClient::new(channel(&reviews.url(), &platform_token).await);
    let call = tokio::spawn(async move {
        platform
            .stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    for b in 0..8 {
        tx.send(batch(b)).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stored = review_scores(&mut reader)
            .await
            .map_or(0, |s| s.units.iter().map(|u| u.survey_sample).sum::<i64>());
        if stored >= 8 * PER_BATCH as i64 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "8 batches stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tx.send(batch(8)).await.unwrap();
    tx.send(batch(9)).await.unwrap();
    reviews.kill();
    let broken = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the broken stream ends")
        .unwrap();
    assert!(
        broken.is_err(),
        "a killed server cannot summarise: {broken:?}"
    );
    drop(tx);

    // Down: the standings stay readable, marked stale, naming the service.
    let stale = standings_until(&mut office, "the stale mark", |s| s.stale).await;
    assert!(
        stale.stale_reason.contains("reviews service"),
        "{}",
        stale.stale_reason
    );
    assert_eq!(stale.rows.len(), 3);

    // Back on the same port and database; batches are all or nothing.
    reviews.spawn();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let kept = loop {
        if let Some(s) = review_scores(&mut reader).await {
            break s.units.iter().map(|u| u.survey_sample).sum::<i64>();
        }
        assert!(tokio::time::Instant::now() < deadline, "reviews is back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        (8 * PER_BATCH as i64..=10 * PER_BATCH as i64).contains(&kept)
            && kept % PER_BATCH as i64 == 0,
        "stored before the kill: {kept}"
    );

    // The platform resends the whole stream; what was stored counts once.
    let summary = ReviewsServiceClient::new(channel(&reviews.url(), &platform_token).await)
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
    let scores = review_scores(&mut reader).await.expect("scores");
    for u in &scores.units {
        assert_eq!(u.survey_sample, total / 3, "{}", u.unit);
    }

    // The aggregator is fresh again and shows every response: each
    // district's survey figure is the reviews service's, rounded.
    let expected: Vec<(String, Decimal)> = scores
        .units
        .iter()
        .map(|u| {
            let exact = Decimal::from_str(&u.survey.as_ref().expect("survey score").value).unwrap();
            (
                u.unit.clone(),
                exact.round_dp_with_strategy(3, RoundingStrategy::MidpointAwayFromZero),
            )
        })
        .collect();
    standings_until(&mut office, "every response, fresh", |s| {
        !s.stale
            && expected.iter().all(|(unit, survey)| {
                s.rows.iter().any(|r| {
                    &r.unit == unit
                        && r.survey
                            .as_ref()
                            .and_then(|d| Decimal::from_str(&d.value).ok())
                            == Some(*survey)
                })
            })
    })
    .await;

    aggregator.stop().await;
    reviews.kill();
    components.stop().await;
    if let Some(s) = scratch {
        s.drop_now().await;
    }
}

on_both_databases!(reviews_killed_mid_stream_count_exactly_once_resent);

/// A PostgreSQL server of the test's own (a fresh cluster in a temporary
/// folder, on its own port), so stopping it disturbs no other test.
struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
}

impl OwnPostgres {
    /// `None` where PostgreSQL's programs are not installed.
    fn start() -> Option<OwnPostgres> {
        let bin = ["/usr/local/bin".to_string()]
            .into_iter()
            .chain(
                std::fs::read_dir("/usr/lib/postgresql")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| format!("{}/bin", e.path().display())),
            )
            .map(std::path::PathBuf::from)
            .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())?;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let pg = OwnPostgres { dir, bin, port };
        // PostgreSQL refuses to run as root; on CI machines the tests do.
        if is_root() {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(pg.dir.path()));
        }
        let data = pg.data();
        run(pg
            .as_owner("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data));
        pg.up();
        Some(pg)
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn as_owner(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run(self
            .as_owner("pg_ctl")
            .args(["start", "-w", "-t", "30", "-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .arg("-D")
            .arg(self.data()));
    }

    /// Fast shutdown: sessions are ended, as in a real restart.
    fn down(&self) {
        run(self
            .as_owner("pg_ctl")
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(self.data()));
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self
            .as_owner("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(c: &mut Command) {
    let out = c.output().expect("run a PostgreSQL program");
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether each service is SERVING (the five names, then the process).
async fn serving(suite: &Suite) -> Vec<bool> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut client = HealthClient::new(suite.channel());
    let mut out = Vec::new();
    for name in Target::ALL
        .iter()
        .map(|t| jixiao_testkit::service_name(*t))
        .chain([""])
    {
        let status = client
            .check(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .map(|r| r.into_inner().status());
        out.push(matches!(status, Ok(ServingStatus::Serving)));
    }
    out
}

async fn serving_until(suite: &Suite, want: bool, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = serving(suite).await;
        if now.iter().all(|s| *s == want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "services never all {}: {now:?}",
            if want { "SERVING" } else { "NOT_SERVING" }
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fault 2: PostgreSQL restarts under light load. During the outage calls
/// fail with UNAVAILABLE well before their deadline and every service
/// reports NOT_SERVING; once the database is back every service serves
/// again by itself, reads and writes alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_is_unavailable_then_recovered() {
    use jixiao_proto::plans::{
        CreateUnitRequest, GetCycleRequest, Unit, UnitKind,
        plans_service_client::PlansServiceClient,
    };
    let Some(pg) = OwnPostgres::start() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have PostgreSQL's programs (initdb, pg_ctl)"
        );
        eprintln!("skipped: PostgreSQL's programs are not installed");
        return;
    };
    let suite = Suite::start(Backend::Postgres(pg.admin_url())).await;
    evaluation_year(&suite, "2026", now_ms() + 24 * 3600 * 1000).await;
    let deadline = Duration::from_secs(10);

    // Light load: a cycle read every 100 ms, each with a 10 s deadline.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let mut reader = PlansServiceClient::new(suite.office());
    let load = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        loop {
            let mut req = tonic::Request::new(GetCycleRequest {
                name: "cycles/2026".into(),
            });
            req.set_timeout(deadline);
            let started = tokio::time::Instant::now();
            let code = match reader.get_cycle(req).await {
                Ok(_) => tonic::Code::Ok,
                Err(s) => s.code(),
            };
            outcomes.push((code, started.elapsed()));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = &mut stopped => return outcomes,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    pg.down();
    serving_until(&suite, false, Duration::from_secs(15)).await;
    let mut plans = PlansServiceClient::new(suite.office());
    let xiangan = || CreateUnitRequest {
        unit_id: "xiangan".into(),
        unit: Some(Unit {
            display_name_zh: "翔安区人民政府".into(),
            display_name_en: "Xiang'an District".into(),
            kind: UnitKind::DistrictGovernment as i32,
            ..Default::default()
        }),
        request_id: "unit-xiangan".into(),
    };
    let mut req = tonic::Request::new(xiangan());
    req.set_timeout(deadline);
    let started = tokio::time::Instant::now();
    let err = plans.create_unit(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(started.elapsed() < deadline, "{:?}", started.elapsed());

    pg.up();
    serving_until(&suite, true, Duration::from_secs(30)).await;
    // Reads and writes work again, without a restart of the suite.
    let created = plans
        .create_unit(xiangan())
        .await
        .expect("a write after the restart");
    assert_eq!(created.into_inner().name, "units/xiangan");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    let outcomes = load.await.unwrap();

    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(code, _)| *code != tonic::Code::Ok)
        .collect();
    assert!(!failed.is_empty(), "the outage was seen by the load");
    for (code, took) in &failed {
        assert_eq!(*code, tonic::Code::Unavailable, "{outcomes:?}");
        assert!(*took < deadline, "{outcomes:?}");
    }
    assert_eq!(
        outcomes.last().map(|(c, _)| *c),
        Some(tonic::Code::Ok),
        "the load recovered: {outcomes:?}"
    );
    suite.stop().await;
    drop(pg);
}
