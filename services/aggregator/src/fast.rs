//! The standings read path: readers get the bytes encoded once when the
//! standings changed, instead of a copy of thousands of rows encoded anew
//! for every call. `GetStandings` and `WatchStandings` are answered here
//! (a watcher would otherwise cost a copy and an encoding of the table at
//! every refresh, on the readers' workers); every other method goes to the
//! generated server. The same codec serves the bare baseline of the
//! standings benchmark, so the two differ only by what the service adds
//! (authentication, authorisation, lookup).

use std::{future::Future, marker::PhantomData, pin::Pin};

use bytes::{BufMut, Bytes};
use jixiao_proto::{
    aggregator::{
        GetStandingsRequest, WatchStandingsRequest,
        aggregator_service_server::AggregatorServiceServer,
    },
    codec::CheckedDecoder,
};
use tonic::{
    Status,
    body::Body,
    codec::{Codec, EncodeBuf, Encoder},
    server::{Grpc, ServerStreamingService, UnaryService},
};

use jixiao_runtime::routed::{Answer, HandAnswered, Routed};

use crate::{DOMAIN, api::AggregatorApi};

/// The paths of the methods served from pre-encoded bytes.
pub const GET_STANDINGS_PATH: &str = "/jixiao.aggregator.v1.AggregatorService/GetStandings";
pub const WATCH_STANDINGS_PATH: &str = "/jixiao.aggregator.v1.AggregatorService/WatchStandings";

/// Decodes requests with prost (a malformed one is INVALID_ARGUMENT, as
/// everywhere) and sends responses that are already encoded.
pub struct EncodedCodec<D>(PhantomData<D>);

impl<D> Default for EncodedCodec<D> {
    fn default() -> Self {
        EncodedCodec(PhantomData)
    }
}

impl<D: prost::Message + Default + Send + 'static> Codec for EncodedCodec<D> {
    type Encode = Bytes;
    type Decode = D;
    type Encoder = BytesEncoder;
    type Decoder = CheckedDecoder<D>;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> CheckedDecoder<D> {
        CheckedDecoder::default()
    }
}

/// Writes an encoded message as it is.
pub struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

struct Standings(AggregatorApi);

impl UnaryService<GetStandingsRequest> for Standings {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, req: tonic::Request<GetStandingsRequest>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            let p = jixiao_runtime::auth::principal(&req)?;
            let deadline = jixiao_runtime::deadline::Deadline::of(&req);
            let snapshot = api
                .standings(&p, req.get_ref(), deadline)
                .await
                .map_err(|e| e.into_status(DOMAIN))?;
            Ok(tonic::Response::new(snapshot.encoded.clone()))
        })
    }
}

struct Watch(AggregatorApi);

type BytesStream = Pin<Box<dyn futures::Stream<Item = Result<Bytes, Status>> + Send>>;

impl ServerStreamingService<WatchStandingsRequest> for Watch {
    type Response = Bytes;
    type ResponseStream = BytesStream;
    type Future = BoxFuture<Result<tonic::Response<BytesStream>, Status>>;

    fn call(&mut self, req: tonic::Request<WatchStandingsRequest>) -> Self::Future {
        use futures::StreamExt;
        let api = self.0.clone();
        Box::pin(async move {
            let p = jixiao_runtime::auth::principal(&req)?;
            let deadline = jixiao_runtime::deadline::Deadline::of(&req);
            let snapshots = api
                .watch_snapshots(&p, req.get_ref(), deadline)
                .await
                .map_err(|e| e.into_status(DOMAIN))?;
            let bytes: BytesStream = Box::pin(snapshots.map(|s| {
                s.map(|s| s.encoded.clone())
                    .map_err(|e| e.into_status(DOMAIN))
            }));
            Ok(tonic::Response::new(bytes))
        })
    }
}

/// The aggregator's methods, `GetStandings` and `WatchStandings` answered here (mounted as
/// `Routed<AggregatorServer>`).
#[derive(Clone)]
pub struct AggregatorServer {
    api: AggregatorApi,
    generated: AggregatorServiceServer<AggregatorApi>,
}

impl AggregatorServer {
    pub fn new(api: AggregatorApi) -> Routed<Self> {
        Routed(AggregatorServer {
            generated: AggregatorServiceServer::new(api.clone()),
            api,
        })
    }
}

impl HandAnswered for AggregatorServer {
    type Generated = AggregatorServiceServer<AggregatorApi>;

    fn generated(&self) -> &Self::Generated {
        &self.generated
    }

    fn answers(&self, path: &str) -> bool {
        path == GET_STANDINGS_PATH || path == WATCH_STANDINGS_PATH
    }

    fn answer(&self, req: http::Request<Body>) -> Answer {
        let api = self.api.clone();
        if req.uri().path() == WATCH_STANDINGS_PATH {
            return Box::pin(async move {
                let mut grpc = Grpc::new(EncodedCodec::<WatchStandingsRequest>::default());
                Ok(grpc.server_streaming(Watch(api), req).await)
            });
        }
        Box::pin(async move {
            let mut grpc = Grpc::new(EncodedCodec::<GetStandingsRequest>::default());
            Ok(grpc.unary(Standings(api), req).await)
        })
    }
}
