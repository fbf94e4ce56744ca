//! The gRPC host: one tonic server per process mounting the enabled
//! services, with `grpc.health.v1` per service, reflection (v1 and v1alpha),
//! grpc-web with CORS for browser dashboards, authentication and request
//! tracing, a database probe behind each service's health, and graceful
//! shutdown (NOT_SERVING, stop accepting, drain).

use std::{
    convert::Infallible,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::FutureExt;
use tokio::net::TcpListener;
use tonic::{
    body::Body, server::NamedService, service::RoutesBuilder, transport::server::TcpIncoming,
};
use tonic_health::ServingStatus;
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::{Db, auth::TokenKey, tls::Tls};

mod cutoff;
mod shutdown;
pub(crate) use cutoff::streams;
pub use shutdown::{DRAIN_GRACE, Shutdown, ShutdownTrigger};

/// The gRPC services a process mounts, with their names for health checks
/// and reflection.
#[derive(Default)]
pub struct Services {
    routes: RoutesBuilder,
    names: Vec<&'static str>,
    /// The database behind each service, probed for its health.
    databases: Vec<(&'static str, Db)>,
    /// Files answered to `GET` requests on the same port (the dashboard).
    site: crate::site::Site,
    /// Where the calls are counted.
    metrics: crate::metrics::Metrics,
}

/// The ErrorInfo domain of the host's own answers (a passed deadline, a
/// request that does not decode), as types.proto lists them.
pub use jixiao_proto::codec::HOST_DOMAIN;

/// How often a service's database is probed, and how long a probe may
/// take before the database counts as down.
const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Services {
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts a generated tonic server (e.g. `PlansServiceServer::new(svc)`).
    pub fn add<S>(&mut self, svc: S) -> &mut Self
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(svc);
        self
    }

    /// The last mounted service reports NOT_SERVING while `db` does not
    /// answer, and SERVING again once it does.
    pub fn depends_on(&mut self, db: Db) -> &mut Self {
        let name = *self.names.last().expect("a service mounted first");
        self.databases.push((name, db));
        self
    }

    /// Fully-qualified names of the mounted services.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Counts the calls in `metrics` (see [`crate::metrics`]).
    pub fn metrics(&mut self, metrics: crate::metrics::Metrics) -> &mut Self {
        self.metrics = metrics;
        self
    }

    /// Serves `site`'s files to `GET` requests that are not gRPC (see
    /// [`crate::site`]); gRPC and gRPC-Web calls are not affected.
    pub fn site(&mut self, site: crate::site::Site) -> &mut Self {
        self.site = site;
        self
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves `services` on `listener` until `shutdown` completes, then marks
/// every service NOT_SERVING, stops accepting and drains in-flight calls.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    key: TokenKey,
    tls: &Tls,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), BoxError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in &services.names {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    let reflection = |names: &[&'static str]| {
        let mut b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(jixiao_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in names {
            b = b.with_service_name(*name);
        }
        b
    };
    let reflection_v1 = reflection(&services.names).build_v1()?;
    let reflection_v1alpha = reflection(&services.names).build_v1alpha()?;

    let names = services.names.clone();
    let site = services.site;
    let metrics = services.metrics;
    let probing = tokio::spawn(probe(services.databases, reporter.clone()));
    let mut routes = services.routes;
    routes
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (begun_tx, begun) = tokio::sync::oneshot::channel();
    let drain = async move {
        shutdown.await;
        let _ = begun_tx.send(());
        probing.abort();
        tracing::info!("shutting down: marking services NOT_SERVING and draining calls");
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in names {
            reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    };
    let mut builder = tonic::transport::Server::builder();
    if let Some(config) = tls.server() {
        builder = builder.tls_config(config)?;
    }
    let serving = builder
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .accept_http1(true)
        .layer(crate::site::SiteLayer::new(site))
        .layer(cors())
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(AuthLayer::new(key).with_metrics(metrics))
        .add_routes(routes.routes())
        .serve_with_incoming_shutdown(incoming, drain);
    shutdown::bounded(serving, begun).await?;
    Ok(())
}

/// Keeps each service's health in step with its database: NOT_SERVING
/// while it does not answer (and the whole process, "", with it), so that
/// balancers and orchestrators send calls elsewhere; the pools reconnect by
/// themselves once it is back.
async fn probe(databases: Vec<(&'static str, Db)>, reporter: tonic_health::server::HealthReporter) {
    let mut down: Vec<bool> = vec![false; databases.len()];
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut changed = false;
        for (i, (name, db)) in databases.iter().enumerate() {
            let up = tokio::time::timeout(PROBE_TIMEOUT, db.ping())
                .await
                .unwrap_or(false);
            let was_up = !down[i];
            if up == was_up {
                continue;
            }
            changed = true;
            down[i] = !up;
            if up {
                tracing::info!(service = name, "database answers again; SERVING");
                reporter
                    .set_service_status(*name, ServingStatus::Serving)
                    .await;
            } else {
                tracing::warn!(service = name, database = %db.display_url(), "database does not answer; NOT_SERVING");
                reporter
                    .set_service_status(*name, ServingStatus::NotServing)
                    .await;
            }
        }
        if changed {
            let all_up = !down.contains(&true);
            reporter
                .set_service_status(
                    "",
                    if all_up {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    },
                )
                .await;
        }
    }
}

/// Browsers may call from any origin: every call still needs a bearer token.
fn cors() -> CorsLayer {
    use http::{HeaderName, Method};
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            HeaderName::from_static("authorization"),
            HeaderName::from_static("content-type"),
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
            HeaderName::from_static(crate::revisions::HEADER),
        ])
}

/// Paths served without a token: health checks and reflection.
fn is_open(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// Calls one principal may have in flight; more are refused with
/// RESOURCE_EXHAUSTED (`TOO_MANY_CALLS`), so that one runaway caller cannot
/// take every worker and connection from the others. Calls between the
/// services (role `service`) are not limited: their callers bound them.
pub const MAX_CALLS_PER_PRINCIPAL: usize = 64;

/// HTTP/2 streams one connection may have open at once: a little more
/// than one principal's calls, so that one connection cannot hold the
/// calls of many principals' worth of streams.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 128;

/// In-flight calls per principal.
#[derive(Default)]
struct InFlight(std::sync::Mutex<std::collections::HashMap<String, usize>>);

/// One admitted call; leaving gives its place back.
struct Admitted {
    counts: Arc<InFlight>,
    subject: String,
}

impl InFlight {
    fn admit(self: &Arc<Self>, subject: &str, max: usize) -> Option<Admitted> {
        let mut counts = self.0.lock().expect("in-flight lock");
        let n = counts.entry(subject.to_string()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Admitted {
            counts: self.clone(),
            subject: subject.to_string(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().expect("in-flight lock");
        if let Some(n) = counts.get_mut(&self.subject) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.subject);
            }
        }
    }
}

/// Authenticates every call (except health and reflection), puts the
/// principal into the request's extensions, limits each principal's calls
/// in flight, and logs each call with its method, principal, outcome and
/// latency.
#[derive(Clone)]
pub struct AuthLayer {
    key: TokenKey,
    max_calls: usize,
    in_flight: Arc<InFlight>,
    metrics: crate::metrics::Metrics,
}

impl AuthLayer {
    pub fn new(key: TokenKey) -> Self {
        Self::with_limit(key, MAX_CALLS_PER_PRINCIPAL)
    }

    /// With another per-principal limit (tests).
    pub fn with_limit(key: TokenKey, max_calls: usize) -> Self {
        AuthLayer {
            key,
            max_calls,
            in_flight: Arc::default(),
            metrics: Default::default(),
        }
    }

    /// Counts the calls in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            key: self.key.clone(),
            max_calls: self.max_calls,
            in_flight: self.in_flight.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    key: TokenKey,
    max_calls: usize,
    in_flight: Arc<InFlight>,
    metrics: crate::metrics::Metrics,
}

impl<S> Service<http::Request<Body>> for AuthService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let path = req.uri().path().to_string();
        // Take the service that was driven to readiness; leave a clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_open(&path) || req.method() == http::Method::OPTIONS {
            return Box::pin(inner.call(req));
        }
        // The call's span, in the caller's trace or a new one; entered now
        // so that a refusal's log line names the trace too.
        let span = tracing::info_span!(
            "rpc",
            method = %path,
            principal = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
        );
        crate::telemetry::join_trace(
            &span,
            crate::telemetry::caller_context(req.headers()),
            &path,
        );
        let in_call = span.enter();
        let meter = self.metrics.meter(&path);
        // Two authorization headers would leave it to chance which one
        // speaks for the call: refused as if none were sent.
        let mut headers = req.headers().get_all(http::header::AUTHORIZATION).iter();
        let verified = match (headers.next(), headers.next()) {
            (_, Some(_)) => Err(crate::Error::Unauthenticated(
                "send one authorization header, not several".into(),
            )),
            (header, None) => self.key.verify_header(header.and_then(|v| v.to_str().ok())),
        };
        let (principal, holds_until) = match verified {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(method = %path, code = "UNAUTHENTICATED", error = %e, "call refused");
                return meter.refuse(e.into_status(crate::auth::AUTH_DOMAIN));
            }
        };
        let meter = meter.caller(&principal);
        // The role gate of DOMAIN.md §1 (`crate::authz`), before any handler.
        let allowed = crate::authz::allowed(&path).unwrap_or(&[]);
        if !principal.has_any(allowed) {
            let e = crate::Error::denied(if allowed.is_empty() {
                format!("no role may call {path}")
            } else {
                format!(
                    "{} may not call {path}: it needs one of the roles {}",
                    principal.subject,
                    allowed
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
            tracing::warn!(method = %path, principal = %principal.subject, code = "PERMISSION_DENIED", "call refused");
            return meter.refuse(e.into_status(crate::auth::AUTH_DOMAIN));
        }
        // The phase gate of DOMAIN.md §2 (`crate::phases`): a write nobody
        // placed in the calendar stays closed. Handlers check their row.
        if crate::phases::gate(&path).is_none() {
            let e = crate::Error::precondition(
                crate::Shared::WrongPhase,
                format!("{path} has no row in the phase table and takes no writes"),
            );
            tracing::warn!(method = %path, code = "FAILED_PRECONDITION", "call refused");
            return meter.refuse(e.into_status("jixiao.phases"));
        }
        let admitted = if principal.has(crate::Role::Service) {
            None
        } else {
            match self.in_flight.admit(&principal.subject, self.max_calls) {
                Some(a) => Some(a),
                None => {
                    tracing::warn!(method = %path, principal = %principal.subject, code = "RESOURCE_EXHAUSTED", "call refused");
                    let e = crate::Error::Busy(format!(
                        "{} has {} calls in flight, the most one caller may have; retry when some have finished",
                        principal.subject, self.max_calls
                    ));
                    return meter.refuse_limited(e.into_status(crate::auth::AUTH_DOMAIN));
                }
            }
        };
        span.record("principal", principal.subject.as_str());
        drop(in_call);
        let deadline = crate::deadline::Deadline::from_headers(req.headers());
        // A stream ends when its token lapses (see [`cutoff`]). Not the
        // services' own: each call of theirs carries a fresh token and any
        // holder of the key can mint one, so cutting their change streams
        // would only force the aggregator to refetch everything every few
        // minutes.
        let streams = cutoff::streams(&path);
        let lapse = if streams && !principal.has(crate::Role::Service) {
            cutoff::Cutoff::lapse(holds_until)
        } else {
            None
        };
        if let Some(lapse) = lapse {
            req = req.map(|body| Body::new(cutoff::Lapsing::new(body, lapse, path.clone())));
        }
        // A server stream also ends at its caller's deadline.
        let stream_cutoff = streams
            .then(|| cutoff::Cutoff::first(lapse, deadline.map(cutoff::Cutoff::deadline)))
            .flatten();
        req.extensions_mut().insert(principal);
        if let Some(deadline) = deadline {
            req.extensions_mut().insert(deadline);
        }
        Box::pin(
            async move {
                let started = Instant::now();
                let call = AssertUnwindSafe(inner.call(req)).catch_unwind();
                // tonic answers an expired `grpc-timeout` itself, with
                // CANCELLED, dropping the call before it is metered or
                // logged; the host answers DEADLINE_EXCEEDED a moment before.
                let call = async move {
                    match deadline {
                        Some(d) => tokio::time::timeout_at(d.host_cutoff(), call)
                            .await
                            .unwrap_or_else(|_| Ok(Ok(past_deadline()))),
                        None => call.await,
                    }
                };
                // What the call's writes created, for its answer's header.
                let (result, written) = crate::revisions::collect(call).await;
                let mut result = match result {
                    Ok(result) => result,
                    Err(panic) => {
                        tracing::error!(method = %path, panic = panic_text(&*panic), "handler panicked");
                        meter.finish(tonic::Code::Internal);
                        return Ok(panicked(&path));
                    }
                };
                if let Ok(res) = &mut result {
                    let code = res
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map(tonic::Code::from_i32)
                        .unwrap_or(tonic::Code::Ok);
                    if code == tonic::Code::Ok {
                        add_revisions(res.headers_mut(), &path, &written);
                    }
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    meter.finish(code);
                    if code == tonic::Code::Ok {
                        tracing::info!(code = ?code, latency_ms = ms, "call");
                    } else {
                        let message = res
                            .headers()
                            .get("grpc-message")
                            .map(|v| {
                                percent_encoding::percent_decode(v.as_bytes())
                                    .decode_utf8_lossy()
                                    .into_owned()
                            })
                            .unwrap_or_default();
                        tracing::info!(code = ?code, latency_ms = ms, message, "call failed");
                    }
                }
                // The call holds its place until its response body ends: a
                // server stream is in flight for as long as it streams, or
                // until its cutoff if its client stopped reading.
                result.map(|res| {
                    res.map(|body| {
                        let (inner, admitted) = match stream_cutoff {
                            Some(c) => (Body::new(cutoff::Severable::new(body, admitted, c.at)), None),
                            None => (body, admitted),
                        };
                        Body::new(Guarded {
                            inner,
                            _admitted: admitted,
                            cutoff: stream_cutoff.map(cutoff::Timed::new),
                            method: path,
                            done: false,
                        })
                    })
                })
            }
            .instrument(span),
        )
    }
}

/// The `jixiao-revision` header of an OK answer: one value per group
/// revision the call's writes created (see [`crate::revisions`]).
fn add_revisions(headers: &mut http::HeaderMap, path: &str, written: &[crate::changes::Change]) {
    let Some(service) = crate::revisions::service_of(path) else {
        return;
    };
    for change in written {
        if let Ok(v) = http::HeaderValue::from_str(&crate::revisions::value(service, change)) {
            headers.append(crate::revisions::HEADER, v);
        }
    }
}

/// A response body that keeps its call admitted until it ends, ends a
/// stream at its cutoff with the cutoff's status (see [`cutoff`]), and
/// turns a panic while it streams into an INTERNAL status in the trailers
/// instead of a reset connection.
struct Guarded {
    inner: Body,
    _admitted: Option<Admitted>,
    cutoff: Option<cutoff::Timed>,
    method: String,
    done: bool,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let (inner, timed) = (&mut this.inner, &mut this.cutoff);
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            cutoff::poll_until(timed, cx, |cx| Pin::new(inner).poll_frame(cx))
        }));
        let ended = |this: &mut Self, status: tonic::Status| {
            this.done = true;
            let mut trailers = http::HeaderMap::new();
            let _ = status.add_header(&mut trailers);
            Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))))
        };
        match polled {
            Ok(Poll::Ready(Some(Ok(frame)))) => {
                // Nothing follows the trailers, a lapse included.
                if matches!(&frame, Ok(f) if f.is_trailers()) {
                    this.done = true;
                }
                Poll::Ready(Some(frame))
            }
            Ok(Poll::Ready(Some(Err(cutoff)))) => {
                tracing::info!(method = %this.method, why = ?cutoff.why, "response stream cut");
                ended(this, cutoff.status())
            }
            Ok(Poll::Ready(None)) => Poll::Ready(None),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => {
                tracing::error!(method = %this.method, panic = panic_text(&*panic), "stream panicked");
                ended(this, internal_status(&this.method))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not text)")
}

/// What a caller sees of a bug: INTERNAL, nothing of the panic itself.
fn internal_status(method: &str) -> tonic::Status {
    crate::Error::Internal(format!("{method} panicked").into()).into_status("jixiao")
}

/// The answer to a call still at work when its caller's deadline comes.
/// Work it handed on (a survey push's commit) still finishes; a retry
/// finds out what was stored.
fn past_deadline() -> http::Response<Body> {
    past_deadline_status().into_http()
}

fn past_deadline_status() -> tonic::Status {
    crate::Error::DeadlineExceeded(
        "the call's deadline (grpc-timeout) passed before it finished".into(),
    )
    .into_status(HOST_DOMAIN)
}

fn panicked(method: &str) -> http::Response<Body> {
    internal_status(method).into_http()
}
