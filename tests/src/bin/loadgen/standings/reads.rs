//! The readers' side of the standings benchmark and its baseline: calls
//! that take the answer's bytes without decoding them, their latency
//! figures, and the bare tonic server that answers the same bytes from
//! memory and does nothing else.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use bytes::Bytes;
use jixiao_aggregator::fast::{EncodedCodec, GET_STANDINGS_PATH};
use jixiao_proto::aggregator::GetStandingsRequest;
use jixiao_runtime::{Role, TokenKey};
use tonic::{Status, body::Body, server::NamedService};

use super::{GROUP, status};
use crate::{Authed, authed};

async fn raw_standings(grpc: &mut tonic::client::Grpc<Authed>) -> Result<Bytes, String> {
    grpc.ready().await.map_err(|e| e.to_string())?;
    grpc.unary(
        tonic::Request::new(GetStandingsRequest {
            group: GROUP.into(),
            ..Default::default()
        }),
        http::uri::PathAndQuery::from_static(GET_STANDINGS_PATH),
        // The answer's bytes, not decoded.
        jixiao_proto::codec::Undecoded::default(),
    )
    .await
    .map(|r| r.into_inner())
    .map_err(status)
}

/// Latency figures of one phase.
pub(super) struct Figures {
    pub(super) calls: usize,
    pub(super) p50: Duration,
    pub(super) p99: Duration,
    pub(super) max: Duration,
    pub(super) bytes: usize,
}

impl Figures {
    pub(super) fn of(mut samples: Vec<Duration>, bytes: usize) -> Figures {
        samples.sort();
        let at = |q: f64| jixiao_tests::percentile(&samples, q);
        Figures {
            calls: samples.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: *samples.last().unwrap(),
            bytes,
        }
    }

    pub(super) fn print(&self, what: &str, seconds: f64) {
        println!(
            "{what:<38} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  {:>6.0} calls/s  ({} bytes each)",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.calls as f64 / seconds,
            self.bytes
        );
    }
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `readers` concurrent dashboards, each on its own connection, for `secs`:
/// each starts a call every `every` (or as soon as the last one answered,
/// when that took longer), or back to back when `every` is `None`.
pub(super) async fn read_phase(
    addr: &str,
    key: &TokenKey,
    readers: usize,
    secs: f64,
    every: Option<Duration>,
) -> Result<Figures, String> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for r in 0..readers {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let mut grpc =
            tonic::client::Grpc::new(authed(&channel, key, &format!("wall-{r}"), &[Role::Viewer]))
                .max_decoding_message_size(64 * 1024 * 1024);
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut bytes = 0;
            // Readers start spread over one interval, as independent
            // dashboards would.
            if let Some(every) = every {
                tokio::time::sleep(every.mul_f64(r as f64 / readers as f64)).await;
            }
            while Instant::now() < deadline {
                let started = Instant::now();
                let b = raw_standings(&mut grpc).await?;
                samples.push(started.elapsed());
                bytes = b.len();
                if let Some(every) = every {
                    tokio::time::sleep_until((started + every).into()).await;
                }
            }
            Ok::<_, String>((samples, bytes))
        }));
    }
    let mut all = Vec::new();
    let mut bytes = 0;
    for t in tasks {
        let (s, b) = t.await.map_err(|e| e.to_string())??;
        all.extend(s);
        bytes = b;
    }
    Ok(Figures::of(all, bytes))
}

/// The baseline server: the same method, the same bytes, nothing else.
#[derive(Clone)]
struct Bare(Bytes);

impl NamedService for Bare {
    const NAME: &'static str = "jixiao.aggregator.v1.AggregatorService";
}

struct BareStandings(Bytes);

impl tonic::server::UnaryService<GetStandingsRequest> for BareStandings {
    type Response = Bytes;
    type Future = std::future::Ready<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, _req: tonic::Request<GetStandingsRequest>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(self.0.clone())))
    }
}

impl tower::Service<http::Request<Body>> for Bare {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<http::Response<Body>, std::convert::Infallible>>
                + Send,
        >,
    >;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let bytes = self.0.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(EncodedCodec::<GetStandingsRequest>::default());
            Ok(grpc.unary(BareStandings(bytes), req).await)
        })
    }
}

/// The child side of the baseline: serves the bytes in `file`.
pub async fn serve_bare(file: PathBuf) -> Result<(), String> {
    let bytes = Bytes::from(std::fs::read(&file).map_err(|e| e.to_string())?);
    let listener = crate::listen_loopback()?;
    println!("ADDR {}", listener.local_addr().map_err(|e| e.to_string())?);
    tonic::transport::Server::builder()
        .add_service(Bare(bytes))
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await
        .map_err(|e| e.to_string())
}

pub(super) fn spawn_bare(file: &std::path::Path) -> Result<(std::process::Child, String), String> {
    crate::spawn(&["__bare", &file.display().to_string()])
}
