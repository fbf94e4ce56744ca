//! Prometheus metrics of one process, served as text on an admin port of
//! its own (`GET /metrics`, see [`serve_admin`]), never on the public one.
//!
//! The registry is a value ([`Metrics`]) made once per started suite and
//! handed to the host and to each service, not a process-wide recorder:
//! tests start many suites in one process, and each must count only its
//! own calls.
//!
//! What is counted: every authenticated call by service, method, status
//! code and kind of caller, with its latency (until the response headers,
//! as the call log measures it); calls refused by the per-principal limit;
//! survey responses accepted, duplicate and rejected; indicator values
//! reported and corrected; the aggregator's refresh duration, the freshness
//! of what it publishes and its stale groups; each database pool's
//! connections in use and idle, and writers waiting for a write connection
//! (sampled when scraped). Health and reflection calls are not counted.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::{Db, Dialect};

/// `service`, `method`, `code`, `caller` of a call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: &'static str,
    method: &'static str,
    code: &'static str,
    caller: &'static str,
}

/// `service`, `method` of a call.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: &'static str,
    method: &'static str,
}

/// A path's labels, without an allocation per call: the paths a service
/// answers (a fixed set, checked against the role table) are kept once
/// for the process's life; any other path is `unknown`, so that a caller
/// inventing paths adds neither series nor memory.
fn labels_of(path: &str) -> MethodLabels {
    static KNOWN: std::sync::OnceLock<std::sync::RwLock<HashMap<String, MethodLabels>>> =
        std::sync::OnceLock::new();
    const UNKNOWN: MethodLabels = MethodLabels {
        service: "unknown",
        method: "unknown",
    };
    let known = KNOWN.get_or_init(Default::default);
    if let Some(labels) = known.read().expect("labels lock").get(path) {
        return *labels;
    }
    let Some((service, method)) =
        crate::authz::allowed(path).and_then(|_| path.strip_prefix('/')?.split_once('/'))
    else {
        return UNKNOWN;
    };
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    *known
        .write()
        .expect("labels lock")
        .entry(path.to_string())
        .or_insert_with(|| MethodLabels {
            service: leak(service),
            method: leak(method),
        })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    service: &'static str,
    pool: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Reads a value for a gauge when the metrics are scraped.
type Sampler = Box<dyn Fn(&Metrics) + Send + Sync>;

/// The metrics of one process (cheap to clone: one registry behind it).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Histograms<MethodLabels>,
    limited: Counter,
    responses: Family<OutcomeLabels, Counter>,
    values: Family<KindLabels, Counter>,
    refresh: Histogram,
    freshness: Histogram,
    stale_groups: Gauge,
    pools: Family<PoolLabels, Gauge>,
    write_waiting: Family<ServiceLabels, Gauge>,
    samplers: Mutex<Vec<Sampler>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Call latencies: 0.5 ms to about 16 s.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Refresh and freshness times: 5 ms to about 40 s.
fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "jixiao_rpc_calls",
            "Calls by service, method, gRPC status code and caller (peer: another Jixiao service; client: anyone else)",
            calls.clone(),
        );
        let latency = Histograms::<MethodLabels>::new_with_constructor(latency_buckets);
        registry.register(
            "jixiao_rpc_duration_seconds",
            "Time from a call's arrival to its response headers (a server stream's first answer), by service and method",
            latency.clone(),
        );
        // One series: which methods were refused is in jixiao_rpc_calls
        // (code RESOURCE_EXHAUSTED).
        let limited = Counter::default();
        registry.register(
            "jixiao_rpc_limit_refusals",
            "Calls refused RESOURCE_EXHAUSTED (TOO_MANY_CALLS) because their principal had the most calls in flight one caller may have",
            limited.clone(),
        );
        // Every outcome and kind from the start, so that the first one
        // counted is a change from 0 rather than a new series.
        let responses = Family::<OutcomeLabels, Counter>::default();
        for outcome in ["accepted", "duplicate", "rejected"] {
            drop(responses.get_or_create(&OutcomeLabels { outcome }));
        }
        registry.register(
            "jixiao_survey_responses",
            "Survey responses pushed, by outcome: accepted (stored), duplicate (stored before with the same content), rejected (refused with a reason, CONFLICT included)",
            responses.clone(),
        );
        let values = Family::<KindLabels, Counter>::default();
        for kind in ["reported", "corrected"] {
            drop(values.get_or_create(&KindLabels { kind }));
        }
        registry.register(
            "jixiao_indicator_values",
            "Indicator value versions stored, by kind: reported (first version) or corrected",
            values.clone(),
        );
        let refresh = seconds_buckets();
        registry.register(
            "jixiao_standings_refresh_duration_seconds",
            "Time one refresh of a group's standings takes (fetching the changed parts, recomputing, publishing)",
            refresh.clone(),
        );
        let freshness = seconds_buckets();
        registry.register(
            "jixiao_standings_freshness_seconds",
            "Time from a component's commit (the change time on its signal, on the component's clock) to the end of the refresh that publishes it",
            freshness.clone(),
        );
        let stale_groups = Gauge::default();
        registry.register(
            "jixiao_standings_stale_groups",
            "Groups whose current standings are marked stale (a component could not be reached or its change stream is down)",
            stale_groups.clone(),
        );
        let pools = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "jixiao_db_pool_connections",
            "Database pool connections by service, pool (read, write; shared on PostgreSQL, where one pool does both) and state (in_use, idle)",
            pools.clone(),
        );
        let write_waiting = Family::<ServiceLabels, Gauge>::default();
        registry.register(
            "jixiao_db_write_waiting",
            "Writes waiting for a connection of the service's write pool (SQLite has one writer)",
            write_waiting.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            calls,
            latency,
            limited,
            responses,
            values,
            refresh,
            freshness,
            stale_groups,
            pools,
            write_waiting,
            samplers: Mutex::new(Vec::new()),
        }))
    }

    /// The metrics in Prometheus' text format (0.0.4), gauges sampled now.
    pub fn render(&self) -> String {
        for sample in self.0.samplers.lock().expect("samplers lock").iter() {
            sample(self);
        }
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.0.registry)
            .expect("writing to a String does not fail");
        out
    }

    /// Runs `sample` before each scrape, to set gauges from state that is
    /// cheaper to read then than to track on every change.
    pub fn on_scrape(&self, sample: impl Fn(&Metrics) + Send + Sync + 'static) {
        self.0
            .samplers
            .lock()
            .expect("samplers lock")
            .push(Box::new(sample));
    }

    /// Reports `db`'s pools as `service`'s at every scrape.
    pub fn watch_db(&self, service: &'static str, db: &Db) {
        let db = db.clone();
        self.on_scrape(move |m| {
            let pools: &[(&'static str, &sqlx::AnyPool)] = match db.dialect {
                Dialect::Sqlite => &[("read", &db.read), ("write", &db.write)],
                Dialect::Postgres => &[("shared", &db.write)],
            };
            for (pool, p) in pools {
                let idle = i64::try_from(p.num_idle()).unwrap_or(i64::MAX);
                let size = i64::from(p.size());
                for (state, n) in [("in_use", (size - idle).max(0)), ("idle", idle)] {
                    m.0.pools
                        .get_or_create(&PoolLabels {
                            service,
                            pool,
                            state,
                        })
                        .set(n);
                }
            }
            m.0.write_waiting
                .get_or_create(&ServiceLabels { service })
                .set(db.write_waiting());
        });
    }

    /// Starts measuring a call to `path` (`/package.Service/Method`).
    pub fn meter(&self, path: &str) -> Meter {
        Meter {
            metrics: self.clone(),
            labels: labels_of(path),
            started: Instant::now(),
            peer: false,
        }
    }

    /// Counts one committed push of survey responses.
    pub fn survey_responses(&self, accepted: u64, duplicate: u64, rejected: u64) {
        for (outcome, n) in [
            ("accepted", accepted),
            ("duplicate", duplicate),
            ("rejected", rejected),
        ] {
            if n > 0 {
                self.0
                    .responses
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc_by(n);
            }
        }
    }

    /// Counts indicator value versions stored: `corrected` or reported.
    pub fn values_stored(&self, corrected: bool, n: usize) {
        let kind = if corrected { "corrected" } else { "reported" };
        self.0
            .values
            .get_or_create(&KindLabels { kind })
            .inc_by(n as u64);
    }

    /// One standings refresh took `took`.
    pub fn standings_refreshed(&self, took: Duration) {
        self.0.refresh.observe(took.as_secs_f64());
    }

    /// A change signal received at `signalled` is now in the standings.
    pub fn standings_fresh(&self, written: Instant) {
        self.0.freshness.observe(written.elapsed().as_secs_f64());
    }

    /// How many groups are stale now.
    pub fn set_stale_groups(&self, n: usize) {
        self.0
            .stale_groups
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

/// One call being measured; [`Meter::finish`] records it.
pub struct Meter {
    metrics: Metrics,
    labels: MethodLabels,
    started: Instant,
    peer: bool,
}

type Refusal<E> =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

impl Meter {
    /// The call comes from `principal`: another service of the suite or not.
    pub fn caller(mut self, principal: &crate::Principal) -> Self {
        self.peer = principal.has(crate::Role::Service);
        self
    }

    /// Records the call's outcome and latency.
    pub fn finish(self, code: tonic::Code) {
        let m = &self.metrics.0;
        m.calls
            .get_or_create(&CallLabels {
                service: self.labels.service,
                method: self.labels.method,
                code: code_name(code),
                caller: if self.peer { "peer" } else { "client" },
            })
            .inc();
        m.latency
            .get_or_create(&self.labels)
            .observe(self.started.elapsed().as_secs_f64());
    }

    /// Answers a call refused before any handler ran with `status`.
    pub fn refuse<E: 'static>(self, status: tonic::Status) -> Refusal<E> {
        self.finish(status.code());
        // An async block holds no `E`, so it is Send whatever `E` is.
        Box::pin(async move { Ok(status.into_http()) })
    }

    /// [`Meter::refuse`] for a refusal by the per-principal limit.
    pub fn refuse_limited<E: 'static>(self, status: tonic::Status) -> Refusal<E> {
        self.metrics.0.limited.inc();
        self.refuse(status)
    }
}

/// The code as gRPC's documentation spells it (`NOT_FOUND`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes; any
/// other path is 404.
pub async fn serve_admin(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::{extract::State, routing::get};
    async fn scrape(State(metrics): State<Metrics>) -> impl axum::response::IntoResponse {
        (
            [(
                http::header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            metrics.render(),
        )
    }
    let app = axum::Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_method_and_code_and_strangers_share_one_label() {
        let m = Metrics::new();
        m.meter("/jixiao.plans.v1.PlansService/GetCycle")
            .finish(tonic::Code::Ok);
        m.meter("/jixiao.plans.v1.PlansService/GetCycle")
            .finish(tonic::Code::NotFound);
        m.meter("/jixiao.plans.v1.PlansService/GetCycle")
            .finish(tonic::Code::NotFound);
        m.meter("/no.Such/Thing")
            .finish(tonic::Code::PermissionDenied);
        let text = m.render();
        for line in [
            r#"jixiao_rpc_calls_total{service="jixiao.plans.v1.PlansService",method="GetCycle",code="OK",caller="client"} 1"#,
            r#"jixiao_rpc_calls_total{service="jixiao.plans.v1.PlansService",method="GetCycle",code="NOT_FOUND",caller="client"} 2"#,
            r#"jixiao_rpc_calls_total{service="unknown",method="unknown",code="PERMISSION_DENIED",caller="client"} 1"#,
            r#"jixiao_rpc_duration_seconds_count{service="jixiao.plans.v1.PlansService",method="GetCycle"} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn each_registry_counts_only_its_own() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.survey_responses(3, 1, 0);
        a.values_stored(true, 2);
        let (a, b) = (a.render(), b.render());
        assert!(a.contains("jixiao_survey_responses_total{outcome=\"accepted\"} 3"));
        assert!(a.contains("jixiao_indicator_values_total{kind=\"corrected\"} 2"));
        assert!(b.contains("jixiao_survey_responses_total{outcome=\"accepted\"} 0"));
    }

    #[test]
    fn every_code_has_its_documented_name() {
        for i in 0..=16 {
            let code = tonic::Code::from_i32(i);
            let name = code_name(code);
            assert_eq!(
                name.replace('_', "").to_lowercase(),
                format!("{code:?}").to_lowercase()
            );
        }
    }
}
