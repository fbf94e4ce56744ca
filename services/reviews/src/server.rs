//! The mountable server. The two methods that take survey batches decode
//! them through [`wire`](crate::wire), without copying their strings;
//! every other method goes to the generated server. Authentication,
//! tracing and metrics are layers around this service, so both paths get
//! them alike.

use std::pin::Pin;

use jixiao_proto::reviews::{PushResponsesResponse, reviews_service_server::ReviewsServiceServer};
use jixiao_runtime::{
    auth::principal,
    error::reply,
    routed::{Answer, HandAnswered, Routed},
};
use tonic::{
    Status, Streaming,
    body::Body,
    codec::Codec,
    server::{ClientStreamingService, Grpc, UnaryService},
};
use tonic_prost::ProstEncoder;

use crate::{
    DOMAIN,
    api::ReviewsApi,
    wire::{Batch, BatchDecoder},
};

const STREAM_RESPONSES: &str = "/jixiao.reviews.v1.ReviewsService/StreamResponses";
const PUSH_RESPONSES: &str = "/jixiao.reviews.v1.ReviewsService/PushResponses";
/// Batches of 5,000 responses exceed tonic's default 4 MiB message limit.
pub(crate) const MAX_MESSAGE: usize = 16 * 1024 * 1024;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Takes [`Batch`]es, answers with prost.
#[derive(Default)]
struct BatchCodec;

impl Codec for BatchCodec {
    type Encode = PushResponsesResponse;
    type Decode = Batch;
    type Encoder = ProstEncoder<PushResponsesResponse>;
    type Decoder = BatchDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> BatchDecoder {
        BatchDecoder
    }
}

struct StreamResponses(ReviewsApi);

impl ClientStreamingService<Batch> for StreamResponses {
    type Response = PushResponsesResponse;
    type Future = BoxFuture<Result<tonic::Response<PushResponsesResponse>, Status>>;

    fn call(&mut self, req: tonic::Request<Streaming<Batch>>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            let p = principal(&req)?;
            reply(DOMAIN, api.stream(p, req.into_inner()).await)
        })
    }
}

struct PushResponses(ReviewsApi);

impl UnaryService<Batch> for PushResponses {
    type Response = PushResponsesResponse;
    type Future = BoxFuture<Result<tonic::Response<PushResponsesResponse>, Status>>;

    fn call(&mut self, req: tonic::Request<Batch>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move {
            let p = principal(&req)?;
            reply(DOMAIN, api.push_batch(&p, req.into_inner()).await)
        })
    }
}

/// The reviews service's methods, the two survey pushes answered here
/// (mounted as `Routed<ReviewsServer>`).
#[derive(Clone)]
pub struct ReviewsServer {
    api: ReviewsApi,
    generated: ReviewsServiceServer<ReviewsApi>,
}

impl ReviewsServer {
    pub fn new(api: ReviewsApi) -> Routed<Self> {
        Routed(ReviewsServer {
            generated: ReviewsServiceServer::new(api.clone())
                .max_decoding_message_size(MAX_MESSAGE),
            api,
        })
    }
}

impl HandAnswered for ReviewsServer {
    type Generated = ReviewsServiceServer<ReviewsApi>;

    fn generated(&self) -> &Self::Generated {
        &self.generated
    }

    fn answers(&self, path: &str) -> bool {
        matches!(path, STREAM_RESPONSES | PUSH_RESPONSES)
    }

    fn answer(&self, req: http::Request<Body>) -> Answer {
        let api = self.api.clone();
        let mut grpc = Grpc::new(BatchCodec).max_decoding_message_size(MAX_MESSAGE);
        Box::pin(async move {
            Ok(if req.uri().path() == STREAM_RESPONSES {
                grpc.client_streaming(StreamResponses(api), req).await
            } else {
                grpc.unary(PushResponses(api), req).await
            })
        })
    }
}
