//! The standings read path: readers get the bytes encoded once when the
//! standings changed, instead of a copy of thousands of rows encoded anew
//! for every call. `GetStandings` is answered here; every other method goes
//! to the generated server. The same codec serves the bare baseline of the
//! standings benchmark, so the two differ only by what the service adds
//! (authentication, authorisation, lookup).

use std::{future::Future, marker::PhantomData, pin::Pin};

use bytes::{BufMut, Bytes};
use jixiao_proto::{
    aggregator::{GetStandingsRequest, aggregator_service_server::AggregatorServiceServer},
    codec::CheckedDecoder,
};
use tonic::{
    Status,
    body::Body,
    codec::{Codec, EncodeBuf, Encoder},
    server::{Grpc, UnaryService},
};

use jixiao_runtime::routed::{Answer, HandAnswered, Routed};

use crate::{DOMAIN, api::AggregatorApi};

/// The path of the method served from pre-encoded bytes.
pub const GET_STANDINGS_PATH: &str = "/jixiao.aggregator.v1.AggregatorService/GetStandings";

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

/// The aggregator's methods, `GetStandings` answered here (mounted as
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
        path == GET_STANDINGS_PATH
    }

    fn answer(&self, req: http::Request<Body>) -> Answer {
        let api = self.api.clone();
        Box::pin(async move {
            let mut grpc = Grpc::new(EncodedCodec::<GetStandingsRequest>::default());
            Ok(grpc.unary(Standings(api), req).await)
        })
    }
}
