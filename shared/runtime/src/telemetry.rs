//! Logs and traces. Log lines are human-readable on a terminal, JSON lines
//! for log collectors (`--log-format json`); the level comes from
//! `RUST_LOG` (default `info`).
//!
//! Every call carries W3C trace context (`traceparent`, `tracestate`): a
//! caller's is honoured, a call without one starts a trace, calls to other
//! services carry it on ([`Traced`]), and every log line of a call names its
//! `trace_id`. With an OTLP endpoint ([`Export`]) the spans are sent to a
//! collector over gRPC; without one nothing is recorded or sent, only the
//! ids are kept so that logs and callers can follow a call.

use std::task::{Context, Poll};

pub use opentelemetry::trace::SpanContext;

use opentelemetry::trace::{
    SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::{
    Resource,
    trace::{Sampler, SdkTracerProvider},
};
use tracing::{Instrument, Span, Subscriber, field::Empty, instrument::Instrumented};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer, Registry, filter::filter_fn, fmt, layer::SubscriberExt,
    util::SubscriberInitExt,
};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    /// Coloured, readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The filter of a server: every call logged.
pub const SERVER_LOGS: &str = "info,sqlx=warn,h2=warn,tower=warn,hyper=warn";
/// The filter of an interactive command (the demo): problems only.
pub const QUIET_LOGS: &str = "warn,sqlx=error";

/// The request headers of W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Where spans are exported, and as which service.
#[derive(Debug, Clone)]
pub struct Export {
    /// The collector's OTLP/gRPC address, e.g. `http://otel-collector:4317`.
    pub endpoint: String,
    /// The `service.name` resource of this process's spans.
    pub service: String,
}

/// The trace pipeline of a process; [`Telemetry::shutdown`] sends what is
/// still buffered.
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Sends the spans buffered so far.
    pub fn flush(&self) {
        if self.exporting
            && let Err(e) = self.provider.force_flush()
        {
            tracing::warn!(error = %e, "spans could not be exported");
        }
    }

    /// Flushes and stops the exporter (a no-op without one). Spans are sent
    /// in batches every few seconds, so a process that stops without this
    /// loses its last calls' spans.
    pub fn shutdown(&self) {
        if self.exporting
            && let Err(e) = self.provider.shutdown()
        {
            tracing::warn!(error = %e, "the last spans could not be exported");
        }
    }
}

/// Marks a subscriber that exports spans: only then are spans given their
/// method as a name and their kind (`otel.name`, `otel.kind`), which would
/// otherwise add to every log line what its `method` field says.
struct Exporting;

impl<S: Subscriber> Layer<S> for Exporting {}

/// The logs and traces of one process (or of one suite in a test process):
/// a log layer filtered by `filter` and writing to `writer`, and the trace
/// layer. The trace layer has a filter of its own, so that calls are traced
/// (and their context passed on) even when no log line is wanted.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    export: Option<&Export>,
) -> Result<(impl Subscriber + Send + Sync + 'static, Telemetry), String>
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let (provider, exporting) = match export {
        // Not sampled unless a caller asks: ids are made, nothing recorded.
        None => (
            SdkTracerProvider::builder()
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
                .build(),
            false,
        ),
        Some(e) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(e.endpoint.as_str())
                .build()
                .map_err(|err| format!("OTLP endpoint {}: {err}", e.endpoint))?;
            let resource = Resource::builder_empty()
                .with_service_name(e.service.clone())
                .build();
            (
                SdkTracerProvider::builder()
                    .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
                true,
            )
        }
    };
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Pretty => fmt::layer().compact().with_writer(writer).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(writer)
            .boxed(),
    };
    // Our own info spans only (calls, refreshes); log events stay logs.
    // Decided per call site and capped at info, so that the libraries'
    // debug and trace call sites stay switched off as before.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("jixiao"))
        .with_location(false)
        .with_target(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(
            filter_fn(|m| {
                m.is_span()
                    && m.target().starts_with("jixiao")
                    && *m.level() <= tracing::Level::INFO
            })
            .with_max_level_hint(tracing::Level::INFO),
        );
    let subscriber = Registry::default()
        .with(logs.with_filter(filter))
        .with(traces)
        .with(exporting.then_some(Exporting));
    Ok((
        subscriber,
        Telemetry {
            provider,
            exporting,
        },
    ))
}

/// Installs the process's subscriber with `RUST_LOG`, or `default` when it
/// is unset; later calls are ignored (tests start many suites in one
/// process).
pub fn init(format: LogFormat, default: &str) {
    let _ = init_with(format, default, None);
}

/// [`init`], exporting spans as `export` says.
pub fn init_with(
    format: LogFormat,
    default: &str,
    export: Option<&Export>,
) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let (subscriber, telemetry) = subscriber(format, filter, std::io::stderr, export)?;
    let _ = subscriber.try_init();
    Ok(telemetry)
}

/// Parses a `traceparent` header (W3C Trace Context, level 1): version 00
/// exactly, a later version by its first four fields; `None` for anything
/// malformed, version ff, or an all-zero trace or parent id, in which case
/// the call starts a trace of its own, as the recommendation says.
pub fn parse_traceparent(value: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let lower_hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let version = value.get(..2).filter(|v| lower_hex(v, 2))?;
    if version == "ff" {
        return None;
    }
    // Version 00 has exactly 55 characters; a later one may append fields
    // after a dash, which this reader skips.
    let fixed = value.get(..55)?;
    if version == "00" && value.len() != 55 || value.len() > 55 && !value[55..].starts_with('-') {
        return None;
    }
    let mut parts = fixed.split('-');
    let (_, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !(lower_hex(trace, 32) && lower_hex(parent, 16) && lower_hex(flags, 2)) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(parent).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    let state = tracestate
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        state,
    ))
}

/// A span context as a `traceparent` value.
pub fn format_traceparent(cx: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8() & 1
    )
}

/// The caller's trace context, from its request headers.
pub fn caller_context(headers: &http::HeaderMap) -> Option<SpanContext> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    parse_traceparent(header(TRACEPARENT)?, header(TRACESTATE))
}

/// Makes the span of a call to this service (declared with `trace_id`,
/// `otel.name` and `otel.kind` left empty) continue `parent`'s trace, or
/// start one, and records its trace id for the log lines; `name` names it
/// in exported traces.
pub fn join_trace(span: &Span, parent: Option<SpanContext>, name: &str) {
    name_for_export(span, name, "server");
    if let Some(parent) = &parent {
        let _ =
            span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent.clone()));
    }
    let own = span.context().span().span_context().trace_id();
    let trace_id = if own != TraceId::INVALID {
        own
    } else {
        // No trace layer (a test's own subscriber): the logs still get an id.
        parent.map_or_else(|| TraceId::from_bytes(rand::random()), |p| p.trace_id())
    };
    span.record("trace_id", tracing::field::display(trace_id));
}

/// Names an exported span and gives its kind; before the span starts (its
/// context is first asked for), since a started span keeps its name.
fn name_for_export(span: &Span, name: &str, kind: &str) {
    let exporting = span
        .with_subscriber(|(_, d)| d.downcast_ref::<Exporting>().is_some())
        .unwrap_or(false);
    if exporting {
        span.record("otel.name", name);
        span.record("otel.kind", kind);
    }
}

/// The context of `span` as a `traceparent` value, `None` outside a trace.
pub fn traceparent_of(span: &Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| format_traceparent(&sc))
}

/// The current span's context as a `traceparent` value.
pub fn traceparent() -> Option<String> {
    traceparent_of(&Span::current())
}

/// Wraps a channel to another service: each call gets a client span, child
/// of the current one, whose context travels as `traceparent` (and
/// `tracestate`), so the called service continues the caller's trace.
#[derive(Clone, Debug)]
pub struct Traced<S>(pub S);

impl<S, B> tower::Service<http::Request<B>> for Traced<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let span =
            tracing::info_span!("outgoing", method = %path, otel.name = Empty, otel.kind = Empty);
        name_for_export(&span, &path, "client");
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            if let Ok(v) = http::HeaderValue::from_str(&format_traceparent(&sc)) {
                req.headers_mut().insert(TRACEPARENT, v);
            }
            let state = sc.trace_state().header();
            if !state.is_empty()
                && let Ok(v) = http::HeaderValue::from_str(&state)
            {
                req.headers_mut().insert(TRACESTATE, v);
            }
        }
        self.0.call(req).instrument(span)
    }
}

/// A span context from a `traceparent` carried on a change signal.
pub fn link_of(traceparent: &str) -> Option<SpanContext> {
    if traceparent.is_empty() {
        return None;
    }
    parse_traceparent(traceparent, None)
}

/// Opens the span of work caused by earlier calls (a refresh following
/// change signals): a child of the first cause, so the trace of the call
/// that caused it shows it, and linked to the others, which it serves too.
pub fn caused_by(span: &Span, causes: &[SpanContext]) {
    let mut causes = causes.iter();
    if let Some(first) = causes.next() {
        let _ =
            span.set_parent(opentelemetry::Context::new().with_remote_span_context(first.clone()));
    }
    for other in causes {
        span.add_link(other.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";

    #[test]
    fn a_well_formed_traceparent_is_read() {
        let cx = parse_traceparent(&format!("00-{TRACE}-{PARENT}-01"), Some("vendor=abc")).unwrap();
        assert_eq!(cx.trace_id().to_string(), TRACE);
        assert_eq!(cx.span_id().to_string(), PARENT);
        assert!(cx.is_sampled());
        assert!(cx.is_remote());
        assert_eq!(cx.trace_state().header(), "vendor=abc");
        assert_eq!(format_traceparent(&cx), format!("00-{TRACE}-{PARENT}-01"));
        let unsampled = parse_traceparent(&format!("00-{TRACE}-{PARENT}-00"), None).unwrap();
        assert!(!unsampled.is_sampled());
        // A later version may carry more fields, which are skipped.
        let later = parse_traceparent(&format!("01-{TRACE}-{PARENT}-01-extra"), None).unwrap();
        assert_eq!(later.trace_id().to_string(), TRACE);
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        let zeros = "0".repeat(32);
        let bad = [
            String::new(),
            "garbage".into(),
            // all-zero trace id, all-zero parent id
            format!("00-{zeros}-{PARENT}-01"),
            format!("00-{TRACE}-0000000000000000-01"),
            // version ff is forbidden; 00 has exactly four fields
            format!("ff-{TRACE}-{PARENT}-01"),
            format!("00-{TRACE}-{PARENT}-01-extra"),
            // later versions still need a dash after the four fields
            format!("01-{TRACE}-{PARENT}-01x"),
            // upper case, short ids, non-hex
            format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
            format!("00-{}-{PARENT}-01", &TRACE[1..]),
            format!("00-{TRACE}-{}-01", &PARENT[1..]),
            format!("00-{TRACE}-{PARENT}-0g"),
            format!("0x-{TRACE}-{PARENT}-01"),
            format!("00_{TRACE}_{PARENT}_01"),
        ];
        for value in bad {
            assert!(
                parse_traceparent(&value, None).is_none(),
                "{value:?} was accepted"
            );
        }
    }

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: LogFormat, parent: Option<SpanContext>) -> (String, Option<String>) {
        let lines = Lines::default();
        let writer = lines.clone();
        let (subscriber, _telemetry) =
            subscriber(format, EnvFilter::new("info"), move || writer.clone(), None).unwrap();
        let outgoing = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "rpc",
                method = "/m",
                trace_id = Empty,
                otel.name = Empty,
                otel.kind = Empty
            );
            join_trace(&span, parent, "/m");
            let _in = span.enter();
            tracing::info!("inside the call");
            traceparent()
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        (text, outgoing)
    }

    #[test]
    fn every_log_line_of_a_call_names_its_trace() {
        let caller = parse_traceparent(&format!("00-{TRACE}-{PARENT}-01"), None);
        for format in [LogFormat::Pretty, LogFormat::Json] {
            let (text, outgoing) = logged(format, caller.clone());
            assert!(text.contains("inside the call"), "{text}");
            assert!(text.contains(TRACE), "{format:?}: {text}");
            // Calls made inside continue the caller's trace from this span.
            let outgoing = outgoing.unwrap();
            assert!(outgoing.starts_with(&format!("00-{TRACE}-")), "{outgoing}");
            assert!(!outgoing.contains(PARENT), "{outgoing}");
        }
        let (text, outgoing) = logged(LogFormat::Json, None);
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let id = line["span"]["trace_id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 32);
        assert_ne!(id, TRACE);
        assert!(outgoing.unwrap().contains(&id));
    }
}
