//! The protobuf codec of every stub: prost's, except that a message that
//! does not decode (invalid UTF-8 in a string, a truncated message, a wrong
//! wire type) is the sender's error, INVALID_ARGUMENT with a BadRequest
//! detail, not INTERNAL as tonic-prost answers.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Code, Status,
    codec::{BufferSettings, DecodeBuf, Decoder},
};
use tonic_prost::{ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt};

/// Named by the generated stubs (`codec_path` in build.rs).
#[derive(Debug, Clone, Copy)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CheckedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CheckedDecoder(ProstDecoder::default())
    }
}

/// prost's decoder with malformed messages answered as INVALID_ARGUMENT.
#[derive(Debug)]
pub struct CheckedDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Default for CheckedDecoder<U> {
    fn default() -> Self {
        CheckedDecoder(ProstDecoder::default())
    }
}

impl<U: Message + Default> Decoder for CheckedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|s| {
            if s.code() == Code::Internal {
                malformed(s.message())
            } else {
                s
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// A client codec that encodes the request with prost and hands over the
/// answer's bytes undecoded (without a copy), for a caller that decodes
/// them elsewhere (the aggregator, on its background lane) or not at all
/// (the standings benchmark's readers).
#[derive(Debug, Clone, Copy)]
pub struct Undecoded<Req>(PhantomData<Req>);

impl<Req> Default for Undecoded<Req> {
    fn default() -> Self {
        Undecoded(PhantomData)
    }
}

impl<Req: Message + Send + 'static> tonic::codec::Codec for Undecoded<Req> {
    type Encode = Req;
    type Decode = bytes::Bytes;
    type Encoder = ProstEncoder<Req>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> BytesDecoder {
        BytesDecoder
    }
}

/// The decoder of [`Undecoded`]: a message's bytes as they came.
#[derive(Debug)]
pub struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = bytes::Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<bytes::Bytes>, Status> {
        use bytes::Buf;
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

/// The ErrorInfo domain of the host's own answers: a request that does not
/// decode here, and (in `jixiao_runtime::host`) a passed deadline.
pub const HOST_DOMAIN: &str = "jixiao.host";

/// The status of a message that is not valid protobuf for its type. The
/// server's framework decodes a request before any handler sees it, so the
/// refusal is the host's (domain `jixiao.host`, as types.proto says), on
/// every service and every kind of call alike.
pub fn malformed(why: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation(
        "(message)",
        format!("is not a valid protobuf encoding of the request type: {why}"),
    );
    details.set_error_info(
        "MALFORMED_MESSAGE",
        HOST_DOMAIN,
        std::collections::HashMap::new(),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        format!("the message could not be decoded: {why}"),
        details,
    )
}
