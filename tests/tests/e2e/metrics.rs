//! The metrics on the admin port (issue 21 §1): every call counted by
//! service, method, status code and kind of caller, refusals by the
//! per-principal limit counted apart, the database pools sampled; the
//! public port does not serve them. (That a scrape counts exactly the calls
//! of a whole demo year is tested on the real binary, in
//! services/suite/tests/metrics.rs.)

use jixiao_proto::{
    plans::{
        CreateCycleRequest, GetCycleRequest, ListCyclesRequest,
        plans_service_client::PlansServiceClient,
    },
    reviews::{PushResponsesRequest, reviews_service_client::ReviewsServiceClient},
};
use jixiao_runtime::{Role, host::MAX_CALLS_PER_PRINCIPAL};
use jixiao_testkit::{Backend, Options, Suite, on_both_databases};
use tonic::Code;

on_both_databases!(
    calls_refusals_and_pools_are_on_the_admin_port_only,
    a_scrape_counts_exactly_what_the_demo_year_sent,
);

/// The value of one series (`name{labels}`) in a scrape; None when absent.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

fn calls(method: &str, code: &str) -> String {
    format!(
        r#"jixiao_rpc_calls_total{{service="jixiao.plans.v1.PlansService",method="{method}",code="{code}",caller="client"}}"#
    )
}

async fn calls_refusals_and_pools_are_on_the_admin_port_only(backend: Backend) {
    let postgres = matches!(backend, Backend::Postgres(_));
    let suite = Suite::start(backend).await;
    let admin = suite.admin.expect("an admin port");
    assert_ne!(admin.port(), suite.addr.port());

    // One call per outcome: answered, not found, no token, wrong role.
    PlansServiceClient::new(suite.office())
        .list_cycles(ListCyclesRequest::default())
        .await
        .unwrap();
    for _ in 0..2 {
        let missing = PlansServiceClient::new(suite.office())
            .get_cycle(GetCycleRequest {
                name: "cycles/2031".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
    }
    let anonymous = PlansServiceClient::new(suite.anonymous())
        .list_cycles(ListCyclesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let denied = PlansServiceClient::new(suite.unit("siming"))
        .create_cycle(CreateCycleRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // A runaway survey platform: streams that never send hold their calls
    // open, and of MAX + 8 opened at once, 8 are refused by the limit.
    const EXTRA: usize = 8;
    let platform = || suite.as_roles("runaway", &[Role::SurveyPlatform], None);
    let mut senders = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..MAX_CALLS_PER_PRINCIPAL + EXTRA {
        let (tx, rx) = tokio::sync::mpsc::channel::<PushResponsesRequest>(1);
        senders.push(tx);
        let mut client = ReviewsServiceClient::new(platform());
        streams.push(tokio::spawn(async move {
            client
                .stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        }));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while streams.iter().filter(|c| c.is_finished()).count() < EXTRA {
        assert!(std::time::Instant::now() < deadline, "never limited");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let scrape = suite.scrape().await;
    drop(senders);
    for s in streams {
        let _ = s.await;
    }

    for (series, want) in [
        (calls("ListCycles", "OK"), 1.0),
        (calls("GetCycle", "NOT_FOUND"), 2.0),
        (calls("ListCycles", "UNAUTHENTICATED"), 1.0),
        (calls("CreateCycle", "PERMISSION_DENIED"), 1.0),
        (
            r#"jixiao_rpc_duration_seconds_count{service="jixiao.plans.v1.PlansService",method="GetCycle"}"#.into(),
            2.0,
        ),
        (
            r#"jixiao_rpc_calls_total{service="jixiao.reviews.v1.ReviewsService",method="StreamResponses",code="RESOURCE_EXHAUSTED",caller="client"}"#.into(),
            EXTRA as f64,
        ),
        (
            "jixiao_rpc_limit_refusals_total".into(),
            EXTRA as f64,
        ),
    ] {
        assert_eq!(value(&scrape, &series), Some(want), "{series} in\n{scrape}");
    }
    // The aggregator follows the components as a peer: its calls are
    // counted apart from the clients'.
    assert!(
        scrape
            .lines()
            .any(|l| l.starts_with("jixiao_rpc_calls_total{") && l.contains("caller=\"peer\"")),
        "{scrape}"
    );
    // Every service's pools, as the database has them: SQLite a reader and
    // a writer pool, PostgreSQL one pool for both.
    for service in [
        "plans",
        "indicators",
        "inspections",
        "reviews",
        "aggregator",
    ] {
        let pools: &[&str] = if postgres {
            &["shared"]
        } else {
            &["read", "write"]
        };
        for pool in pools {
            let idle = format!(
                r#"jixiao_db_pool_connections{{service="{service}",pool="{pool}",state="idle"}}"#
            );
            assert!(value(&scrape, &idle).is_some_and(|n| n >= 0.0), "{idle}");
        }
        let waiting = format!(r#"jixiao_db_write_waiting{{service="{service}"}}"#);
        assert_eq!(value(&scrape, &waiting), Some(0.0), "{waiting}");
    }

    // The public port answers gRPC and the dashboard, not the metrics.
    let (_, public) = jixiao_testkit::http_get(suite.addr, "/metrics").await;
    assert!(!public.contains("jixiao_rpc_calls_total"), "{public}");
    // The admin port answers nothing else.
    let (status, _) = jixiao_testkit::http_get(admin, "/").await;
    assert_eq!(status, 404);
    suite.stop().await;
}

/// The demo year through a suite of its own: the scrape's client calls per
/// method are exactly the calls the demo sent, its survey responses and
/// indicator values are counted, and the refreshes they caused measured.
async fn a_scrape_counts_exactly_what_the_demo_year_sent(backend: Backend) {
    use jixiao::{client::Calls, demo};
    let key =
        jixiao_runtime::TokenKey::from_hex(&jixiao_runtime::TokenKey::generate_hex()).unwrap();
    let suite = Suite::start_with(
        backend,
        Options {
            key: Some(key.clone()),
            ..Default::default()
        },
    )
    .await;
    let sent = Calls::default();
    let mut steps = Vec::new();
    demo::load_counted(&suite.url(), &key, &sent, |s| {
        if let demo::Step::Done(line) = s {
            steps.push(line);
        }
    })
    .await
    .expect("the demo year loads and publishes");
    let scrape = suite.scrape().await;

    let mut counted = std::collections::BTreeMap::<String, u64>::new();
    for line in scrape
        .lines()
        .filter(|l| l.starts_with("jixiao_rpc_calls_total{") && l.contains(r#"caller="client""#))
    {
        let label = |name: &str| {
            let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            line[start..].split('"').next().unwrap().to_string()
        };
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *counted
            .entry(format!("{}/{}", label("service"), label("method")))
            .or_default() += n;
    }
    let sent = sent.counts();
    assert_eq!(counted, sent);

    // What the steps say was sent, as the services counted it.
    let said = |prefix: &str| -> f64 {
        steps
            .iter()
            .find_map(|s| s.strip_prefix(prefix))
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} in {steps:?}"))
    };
    assert_eq!(
        value(
            &scrape,
            r#"jixiao_survey_responses_total{outcome="accepted"}"#
        ),
        Some(said("reviews: "))
    );
    assert_eq!(
        value(&scrape, r#"jixiao_indicator_values_total{kind="reported"}"#),
        Some(said("indicators: "))
    );
    // Each correction the demo sent (it expects every one to be stored).
    let corrections = sent
        .get("jixiao.indicators.v1.IndicatorsService/CorrectValue")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        value(
            &scrape,
            r#"jixiao_indicator_values_total{kind="corrected"}"#
        ),
        Some(corrections as f64)
    );
    for series in [
        "jixiao_standings_refresh_duration_seconds_count",
        "jixiao_standings_freshness_seconds_count",
    ] {
        assert!(value(&scrape, series).is_some_and(|n| n > 0.0), "{series}");
    }
    suite.stop().await;
}
