//! Survey batches as they arrive, decoded without copying their strings.
//!
//! prost decodes every string of a message into a `String` of its own:
//! for a batch of 5,000 responses of ten answers that is 120,000
//! allocations and copies, about half of the ingest's CPU (issue 22). The
//! server decodes `PushResponsesRequest` instead into wire-compatible types
//! whose strings are `Bytes` slices of the received message, checks that
//! each is UTF-8 (as prost does, so a bad string still refuses the whole
//! message as MALFORMED_MESSAGE) and hands them on as [`ByteString`]s.
//! The tests below hold these types to the contract's field numbers.

use bytes::{Buf, Bytes};
use bytestring::ByteString;
use jixiao_proto::{
    codec::malformed,
    reviews::{PushResponsesRequest, SurveyResponse},
};
use prost::Message;
use prost_types::Timestamp;
use tonic::{
    Status,
    codec::{BufferSettings, DecodeBuf, Decoder},
};

/// `PushResponsesRequest` with its strings as slices of the message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub campaign: ByteString,
    pub responses: Vec<Response>,
}

/// `SurveyResponse`, likewise.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub response_id: ByteString,
    pub unit: ByteString,
    pub category: ByteString,
    pub channel: i32,
    pub answer_time: Option<Timestamp>,
    pub answers: Vec<Answer>,
    pub respondent: ByteString,
}

/// `Answer`, likewise.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub question: ByteString,
    pub answer: ByteString,
}

/// The wire form prost decodes: the contract's field numbers and wire
/// types, with `bytes` where the contract says `string` (the two are
/// encoded alike).
#[derive(Clone, PartialEq, Message)]
struct WireBatch {
    #[prost(bytes = "bytes", tag = "1")]
    campaign: Bytes,
    #[prost(message, repeated, tag = "2")]
    responses: Vec<WireResponse>,
}

#[derive(Clone, PartialEq, Message)]
struct WireResponse {
    #[prost(bytes = "bytes", tag = "1")]
    response_id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    unit: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    category: Bytes,
    /// The `Channel` enum, an int32 on the wire.
    #[prost(int32, tag = "4")]
    channel: i32,
    #[prost(message, optional, tag = "5")]
    answer_time: Option<Timestamp>,
    #[prost(message, repeated, tag = "6")]
    answers: Vec<WireAnswer>,
    #[prost(bytes = "bytes", tag = "7")]
    respondent: Bytes,
}

#[derive(Clone, PartialEq, Message)]
struct WireAnswer {
    #[prost(bytes = "bytes", tag = "1")]
    question: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    answer: Bytes,
}

/// A string field that must be UTF-8, named as prost names it.
fn text(bytes: Bytes, message: &str, field: &str) -> Result<ByteString, Status> {
    ByteString::try_from(bytes).map_err(|_| {
        malformed(&format!(
            "failed to decode Protobuf message: {message}.{field}: invalid string value: data is not UTF-8 encoded"
        ))
    })
}

impl Batch {
    /// Decodes a message; its strings share `bytes`' storage.
    pub fn decode(bytes: Bytes) -> Result<Batch, Status> {
        let wire = WireBatch::decode(bytes)
            .map_err(|e| malformed(&format!("failed to decode Protobuf message: {e}")))?;
        let responses = wire
            .responses
            .into_iter()
            .map(|r| {
                let answers = r
                    .answers
                    .into_iter()
                    .map(|a| {
                        Ok(Answer {
                            question: text(a.question, "Answer", "question")?,
                            answer: text(a.answer, "Answer", "answer")?,
                        })
                    })
                    .collect::<Result<_, Status>>()?;
                Ok(Response {
                    response_id: text(r.response_id, "SurveyResponse", "response_id")?,
                    unit: text(r.unit, "SurveyResponse", "unit")?,
                    category: text(r.category, "SurveyResponse", "category")?,
                    channel: r.channel,
                    answer_time: r.answer_time,
                    answers,
                    respondent: text(r.respondent, "SurveyResponse", "respondent")?,
                })
            })
            .collect::<Result<_, Status>>()?;
        Ok(Batch {
            campaign: text(wire.campaign, "PushResponsesRequest", "campaign")?,
            responses,
        })
    }
}

/// The generated types' batch, for callers that hold one (the generated
/// server's path and tests).
impl From<PushResponsesRequest> for Batch {
    fn from(r: PushResponsesRequest) -> Batch {
        Batch {
            campaign: r.campaign.into(),
            responses: r.responses.into_iter().map(Response::from).collect(),
        }
    }
}

impl From<SurveyResponse> for Response {
    fn from(r: SurveyResponse) -> Response {
        Response {
            response_id: r.response_id.into(),
            unit: r.unit.into(),
            category: r.category.into(),
            channel: r.channel,
            answer_time: r.answer_time,
            answers: r
                .answers
                .into_iter()
                .map(|a| Answer {
                    question: a.question.into(),
                    answer: a.answer.into(),
                })
                .collect(),
            respondent: r.respondent.into(),
        }
    }
}

/// Decodes [`Batch`]es for the server (see `server.rs`).
#[derive(Debug, Default)]
pub struct BatchDecoder;

impl Decoder for BatchDecoder {
    type Item = Batch;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Batch>, Status> {
        // One contiguous `Bytes` (tonic hands the message over without a
        // copy), so that every string below is a slice of it.
        let bytes = buf.copy_to_bytes(buf.remaining());
        Batch::decode(bytes).map(Some)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use jixiao_proto::reviews::{Answer as ProtoAnswer, Channel};
    use proptest::prelude::*;
    use prost::Message;

    use super::*;

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[a-z0-9/_-]{1,12}", "\\PC{0,8}"]
    }

    fn any_response() -> impl Strategy<Value = SurveyResponse> {
        (
            (any_text(), any_text(), any_text(), any::<i32>()),
            proptest::option::of((any::<i64>(), any::<i32>())),
            proptest::collection::vec((any_text(), any_text()), 0..4),
            any_text(),
        )
            .prop_map(
                |((response_id, unit, category, channel), at, answers, respondent)| {
                    SurveyResponse {
                        response_id,
                        unit,
                        category,
                        channel,
                        answer_time: at.map(|(seconds, nanos)| Timestamp { seconds, nanos }),
                        answers: answers
                            .into_iter()
                            .map(|(question, answer)| ProtoAnswer { question, answer })
                            .collect(),
                        respondent,
                    }
                },
            )
    }

    proptest! {
        /// Whatever the generated types encode, these decode to the same
        /// values: same field numbers, same wire types.
        #[test]
        fn decodes_what_the_contract_s_types_encode(
            campaign in any_text(),
            responses in proptest::collection::vec(any_response(), 0..4),
        ) {
            let request = PushResponsesRequest { campaign, responses };
            let decoded = Batch::decode(Bytes::from(request.encode_to_vec())).unwrap();
            prop_assert_eq!(decoded, Batch::from(request));
        }
    }

    #[test]
    fn every_field_of_the_contract_is_read() {
        // A field added to the contract and not here would be skipped as
        // unknown and the response stored without it.
        let pool =
            prost_reflect::DescriptorPool::decode(jixiao_proto::FILE_DESCRIPTOR_SET).unwrap();
        for (message, fields) in [
            ("jixiao.reviews.v1.PushResponsesRequest", 2),
            ("jixiao.reviews.v1.SurveyResponse", 7),
            ("jixiao.reviews.v1.Answer", 2),
        ] {
            let m = pool.get_message_by_name(message).unwrap();
            assert_eq!(m.fields().count(), fields, "{message}");
        }
        let full = SurveyResponse {
            response_id: "r1".into(),
            unit: "units/a".into(),
            category: "residents".into(),
            channel: Channel::Online as i32,
            answer_time: Some(Timestamp {
                seconds: 5,
                nanos: 6,
            }),
            answers: vec![ProtoAnswer {
                question: "q1".into(),
                answer: "satisfied".into(),
            }],
            respondent: "k".into(),
        };
        let request = PushResponsesRequest {
            campaign: "cycles/2026/campaigns/s".into(),
            responses: vec![full],
        };
        let decoded = Batch::decode(Bytes::from(request.encode_to_vec())).unwrap();
        assert_eq!(decoded, Batch::from(request));
    }

    #[test]
    fn a_string_that_is_not_utf8_refuses_the_message() {
        // Field 2 (a response) holding field 2 (unit) = 0xff 0xfe.
        let bytes = vec![0x12, 0x04, 0x12, 0x02, 0xff, 0xfe];
        let status = Batch::decode(Bytes::from(bytes)).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("SurveyResponse.unit"),
            "{}",
            status.message()
        );
        let truncated = vec![0x0a, 0x40, b'c'];
        let status = Batch::decode(Bytes::from(truncated)).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
