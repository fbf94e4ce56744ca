//! Traces across services: the split suite exports its spans over OTLP to
//! a collector started here (the collector's trace service from the
//! published OpenTelemetry protos), and one value report is followed
//! through indicators, its call to plans, the change signal to the
//! aggregator, the standings refresh it causes and the refresh's call back
//! to indicators, all in the trace of the reporting caller.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use jixiao_proto::{
    aggregator::{
        GetStandingsRequest, Standings, aggregator_service_client::AggregatorServiceClient,
    },
    indicators::{
        BatchReportValuesRequest, ReportValueRequest,
        indicators_service_client::IndicatorsServiceClient,
    },
};
use jixiao_runtime::Role;
use jixiao_testkit::{Backend, on_both_databases};
use jixiao_tests::{Split, executing_year, final_values, standings_until};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{KeyValue, any_value::Value},
    trace::v1::span::SpanKind,
};

const GROUP: &str = "cycles/2026/groups/districts";
const REPORT: &str = "/jixiao.indicators.v1.IndicatorsService/ReportValue";
const SCORES: &str = "/jixiao.indicators.v1.IndicatorsService/GetGroupScores";
const PLANS: &str = "/jixiao.plans.v1.PlansService/";

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Exported {
    /// The `service.name` of the process that sent it.
    service: String,
    name: String,
    kind: SpanKind,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

/// A collector that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Exported>>>);

fn text(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some((kv.key.clone(), s.clone())),
            Value::IntValue(i) => Some((kv.key.clone(), i.to_string())),
            _ => None,
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut kept = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .map(|r| text(&r.attributes))
                .and_then(|mut a| a.remove("service.name"))
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                kept.push(Exported {
                    service: service.clone(),
                    kind: span.kind(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    attributes: text(&span.attributes),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Listens on an ephemeral port; returns its OTLP address.
    async fn start() -> (Collector, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let collector = Collector::default();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (collector, format!("http://{addr}"))
    }

    fn named(&self, name: &str) -> Vec<Exported> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    fn trace(&self, trace_id: &str) -> Vec<Exported> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

/// The one span of `spans` that `what` describes.
fn find<'a>(
    spans: &'a [Exported],
    what: &str,
    is: impl Fn(&Exported) -> bool,
) -> Option<&'a Exported> {
    let found: Vec<&Exported> = spans.iter().filter(|s| is(s)).collect();
    assert!(found.len() <= 1, "more than one {what}: {found:#?}");
    found.first().copied()
}

fn indicator(s: &Standings, unit: &str) -> Option<String> {
    s.rows
        .iter()
        .find(|r| r.unit == format!("units/{unit}"))
        .and_then(|r| r.indicator.as_ref())
        .map(|d| d.value.clone())
}

/// The whole path of one value report: the caller's traceparent is
/// honoured (the report's span is a child of the caller's span), the
/// report's call to plans, the aggregator's refresh (parented by the
/// report through the change signal) and the refresh's call to indicators
/// are one trace, exported by the three processes under their own names;
/// a malformed traceparent starts a trace of its own.
async fn a_value_report_and_the_refresh_it_causes_are_one_trace(backend: Backend) {
    let (collector, endpoint) = Collector::start().await;
    let split = Split::start_traced(backend, &endpoint).await;
    executing_year(&split.plans).await;
    let mut stats = IndicatorsServiceClient::new(split.indicators.as_roles(
        "stats",
        &[Role::Provider],
        Some("stats"),
    ));
    jixiao_tests::assess_key_projects(&split.indicators).await;
    // Every final value but jimei's GDP growth, which the traced call
    // reports.
    let (gdp, others): (Vec<_>, Vec<_>) = final_values()
        .into_iter()
        .partition(|v| v.unit == "units/jimei" && v.indicator == "GDP_GROWTH");
    stats
        .batch_report_values(BatchReportValuesRequest {
            parent: "cycles/2026".into(),
            values: others,
            request_id: String::new(),
        })
        .await
        .expect("final values");
    let mut office = AggregatorServiceClient::new(split.aggregator.office());
    let before = standings_until(&mut office, "the other values", |s| {
        indicator(s, "huli").as_deref() == Some("48.000")
    })
    .await;
    assert_ne!(indicator(&before, "jimei").as_deref(), Some("46.583"));
    // Let the refreshes the batch set off run out (a pause is at most
    // 500 ms): a refresh already under way when the traced report commits
    // may read its value before the report's signal arrives, and the
    // standings would then show it from a refresh in another trace.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The caller is in a trace of its own, which the suite joins.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = "a1b2c3d4e5f60718";
    let mut report = tonic::Request::new(ReportValueRequest {
        parent: "cycles/2026".into(),
        value: gdp.into_iter().next(),
        request_id: String::new(),
    });
    report.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
    );
    stats.report_value(report).await.expect("report");
    // 20 × 5/6 + 15 × 0.45/0.6 + 10 + 5 × 100/300 + 5 × 0.6 + 4 = 46.583334
    standings_until(&mut office, "jimei's reported growth", |s| {
        indicator(s, "jimei").as_deref() == Some("46.583")
    })
    .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for suite in [&split.plans, &split.indicators, &split.aggregator] {
            suite.flush_traces().await;
        }
        let spans = collector.trace(&trace_id);
        let report = find(&spans, "report", |s| s.name == REPORT);
        // The report may read several things from plans: any one will do.
        let to_plans = report.and_then(|r| {
            spans.iter().find(|s| {
                s.service == "jixiao-indicators"
                    && s.parent == r.span_id
                    && s.name.starts_with(PLANS)
            })
        });
        let in_plans = to_plans.and_then(|c| {
            find(&spans, "plans' answer", |s| {
                s.service == "jixiao-plans" && s.parent == c.span_id
            })
        });
        let refresh = find(&spans, "refresh", |s| {
            s.service == "jixiao-aggregator" && s.name == "refresh"
        });
        let to_indicators = refresh.and_then(|r| {
            spans.iter().find(|s| {
                s.service == "jixiao-aggregator" && s.parent == r.span_id && s.name == SCORES
            })
        });
        let in_indicators = to_indicators.and_then(|c| {
            find(&spans, "indicators' answer", |s| {
                s.service == "jixiao-indicators" && s.parent == c.span_id
            })
        });
        if let (
            Some(report),
            Some(to_plans),
            Some(in_plans),
            Some(refresh),
            Some(to_indicators),
            Some(in_indicators),
        ) = (
            report,
            to_plans,
            in_plans,
            refresh,
            to_indicators,
            in_indicators,
        ) {
            // Calls are server spans, calls to other services client spans.
            for (s, kind) in [
                (report, SpanKind::Server),
                (to_plans, SpanKind::Client),
                (in_plans, SpanKind::Server),
                (refresh, SpanKind::Internal),
                (to_indicators, SpanKind::Client),
                (in_indicators, SpanKind::Server),
            ] {
                assert_eq!(s.kind, kind, "{s:#?}");
            }
            // The caller's span is the report's parent: its traceparent
            // was honoured, not replaced.
            assert_eq!(report.parent, caller_span);
            assert_eq!(report.service, "jixiao-indicators");
            assert_eq!(report.attributes["principal"], "stats");
            assert!(in_plans.name.starts_with(PLANS));
            // The refresh hangs under the report (its span, or one inside
            // it), through the change signal.
            assert!(
                spans
                    .iter()
                    .any(|s| s.service == "jixiao-indicators" && s.span_id == refresh.parent),
                "the refresh's parent is not in indicators: {spans:#?}"
            );
            assert_eq!(refresh.attributes["group"], GROUP);
            assert_eq!(in_indicators.name, SCORES);
            assert_eq!(in_indicators.attributes["principal"], "aggregator");
            // Every span of the trace names its trace id in the logs too.
            for s in [report, in_plans, in_indicators] {
                assert_eq!(s.attributes["trace_id"], trace_id, "{s:#?}");
            }
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let refreshes = collector.named("refresh");
            panic!(
                "the trace never reached the collector whole: {spans:#?}\nrefreshes in any trace: {refreshes:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A malformed traceparent (an all-zero trace id) is not honoured: the
    // call starts a trace of its own.
    let zeros = "0".repeat(32);
    let mut read = tonic::Request::new(GetStandingsRequest {
        group: GROUP.into(),
        ..Default::default()
    });
    read.metadata_mut().insert(
        "traceparent",
        format!("00-{zeros}-{caller_span}-01").parse().unwrap(),
    );
    AggregatorServiceClient::new(split.aggregator.as_roles("wall", &[Role::Viewer], None))
        .get_standings(read)
        .await
        .expect("standings");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let own = loop {
        split.aggregator.flush_traces().await;
        let found = collector
            .named("/jixiao.aggregator.v1.AggregatorService/GetStandings")
            .into_iter()
            .find(|s| s.attributes.get("principal").map(String::as_str) == Some("wall"));
        if let Some(s) = found {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the wall's read was never exported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(own.parent, "", "{own:#?}");
    assert_ne!(own.trace_id, zeros);
    assert_eq!(own.attributes["trace_id"], own.trace_id);
    split.stop().await;
}

on_both_databases!(a_value_report_and_the_refresh_it_causes_are_one_trace);
