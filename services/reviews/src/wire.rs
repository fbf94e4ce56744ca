//! Survey batches as they arrive, decoded in one pass into one buffer.
//!
//! prost decodes every string of a message into a `String` of its own:
//! for a batch of 5,000 responses of ten answers that is 120,000
//! allocations and copies, about half of the ingest's CPU (issue 22).
//! Slicing each string out of the received `Bytes` instead still costs an
//! atomic reference count up and down per string, 17% of the service's
//! CPU on PostgreSQL ingest. So the server decodes `PushResponsesRequest`
//! itself: one pass copies each string, checked to be UTF-8 as prost
//! checks it, into one `String` of the batch and keeps where it lies.
//! Keys, varints, integers and skipped fields go through prost's own
//! functions, so the wire rules are prost's; the tests hold the result to
//! prost's decoding of the same bytes, broken ones included.

use bytes::Buf;
use jixiao_proto::{codec::malformed, reviews::PushResponsesRequest};
use prost::{
    DecodeError,
    encoding::{
        DecodeContext, WireType, check_wire_type, decode_key, decode_varint, int32, int64,
        skip_field,
    },
};
use prost_types::Timestamp;
use tonic::{
    Status,
    codec::{DecodeBuf, Decoder},
};

/// Where a string lies in a batch's text, or an answer in its answers.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// `PushResponsesRequest`: its strings back to back in `text`, each
/// response's answers a run of `answers`.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    text: String,
    campaign: Span,
    responses: Vec<Entry>,
    answers: Vec<(Span, Span)>,
}

/// One `SurveyResponse` of a [`Batch`].
#[derive(Debug, Clone, Default)]
struct Entry {
    response_id: Span,
    unit: Span,
    category: Span,
    channel: i32,
    answer_time: Option<Timestamp>,
    answers: Span,
    respondent: Span,
}

/// A response of a batch, as `SurveyResponse` with borrowed strings.
#[derive(Debug, Clone)]
pub struct Response<'a> {
    pub response_id: &'a str,
    pub unit: &'a str,
    pub category: &'a str,
    pub channel: i32,
    pub answer_time: Option<Timestamp>,
    pub answers: Answers<'a>,
    pub respondent: &'a str,
}

/// A response's answers.
#[derive(Debug, Clone, Copy)]
pub struct Answers<'a> {
    text: &'a str,
    spans: &'a [(Span, Span)],
}

/// An `Answer`, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer<'a> {
    pub question: &'a str,
    pub answer: &'a str,
}

impl<'a> Answers<'a> {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Answer<'a>> + use<'a> {
        let text = self.text;
        self.spans.iter().map(move |(q, a)| Answer {
            question: &text[q.range()],
            answer: &text[a.range()],
        })
    }
}

impl Batch {
    pub fn campaign(&self) -> &str {
        &self.text[self.campaign.range()]
    }

    pub fn responses(&self) -> impl ExactSizeIterator<Item = Response<'_>> {
        self.responses.iter().map(|e| Response {
            response_id: &self.text[e.response_id.range()],
            unit: &self.text[e.unit.range()],
            category: &self.text[e.category.range()],
            channel: e.channel,
            answer_time: e.answer_time,
            answers: Answers {
                text: &self.text,
                spans: &self.answers[e.answers.range()],
            },
            respondent: &self.text[e.respondent.range()],
        })
    }

    fn keep(&mut self, s: &str) -> Span {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        Span {
            start,
            end: self.text.len() as u32,
        }
    }

    fn answers_since(&self, start: usize) -> Span {
        Span {
            start: start as u32,
            end: self.answers.len() as u32,
        }
    }
}

/// Why a message did not decode, with the field it failed in as prost
/// names it (`SurveyResponse.unit: invalid string value: …`).
type Fault = String;

fn at(message: &str, field: &str, why: impl std::fmt::Display) -> Fault {
    format!("{message}.{field}: {why}")
}

/// prost's description of its error, without its "failed to decode" lead.
fn prost_fault(e: DecodeError) -> Fault {
    let text = e.to_string();
    match text.strip_prefix("failed to decode Protobuf message: ") {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

/// The bytes of a length-delimited field, and `buf` past them.
fn delimited<'m>(wire_type: WireType, buf: &mut &'m [u8]) -> Result<&'m [u8], Fault> {
    check_wire_type(WireType::LengthDelimited, wire_type).map_err(prost_fault)?;
    let len = decode_varint(buf).map_err(prost_fault)?;
    match usize::try_from(len) {
        Ok(len) if len <= buf.len() => {
            let (field, rest) = buf.split_at(len);
            *buf = rest;
            Ok(field)
        }
        _ => Err("buffer underflow".to_owned()),
    }
}

/// How deep prost lets groups nest in an unknown field at the top of a
/// message it decodes; one less in each message nested in it.
const RECURSION_LIMIT: u32 = 100;

/// Skips an unknown field as prost does, groups nested at most `limit`
/// deep (prost's `skip_field`, whose recursion count cannot be set from
/// outside prost).
fn skip(wire_type: WireType, tag: u32, buf: &mut &[u8], limit: u32) -> Result<(), Fault> {
    if limit == 0 {
        return Err("recursion limit reached".to_owned());
    }
    if wire_type != WireType::StartGroup {
        return skip_field(wire_type, tag, buf, DecodeContext::default()).map_err(prost_fault);
    }
    loop {
        let (inner, inner_type) = decode_key(buf).map_err(prost_fault)?;
        if inner_type == WireType::EndGroup && inner == tag {
            return Ok(());
        }
        if inner_type == WireType::EndGroup {
            return Err("unexpected end group tag".to_owned());
        }
        skip(inner_type, inner, buf, limit - 1)?;
    }
}

/// The fields of a message nested `depth` deep, each handed to `field`
/// with `buf` just past its key; unknown ones are skipped as prost skips
/// them.
fn fields(
    mut buf: &[u8],
    depth: u32,
    mut field: impl FnMut(u32, WireType, &mut &[u8]) -> Result<bool, Fault>,
) -> Result<(), Fault> {
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(prost_fault)?;
        if !field(tag, wire_type, &mut buf)? {
            skip(wire_type, tag, &mut buf, RECURSION_LIMIT - depth)?;
        }
    }
    Ok(())
}

/// A `google.protobuf.Timestamp` nested `depth` deep, merged into `into`
/// as prost merges a message field given twice.
fn timestamp(bytes: &[u8], depth: u32, into: &mut Timestamp) -> Result<(), Fault> {
    const M: &str = "Timestamp";
    let ctx = DecodeContext::default;
    fields(bytes, depth, |tag, wire_type, buf| {
        match tag {
            1 => int64::merge(wire_type, &mut into.seconds, buf, ctx())
                .map_err(|e| at(M, "seconds", prost_fault(e)))?,
            2 => int32::merge(wire_type, &mut into.nanos, buf, ctx())
                .map_err(|e| at(M, "nanos", prost_fault(e)))?,
            _ => return Ok(false),
        }
        Ok(true)
    })
}

impl Batch {
    /// Decodes a `PushResponsesRequest`.
    pub fn decode(message: &[u8]) -> Result<Batch, Status> {
        Self::read(message)
            .map_err(|why| malformed(&format!("failed to decode Protobuf message: {why}")))
    }

    fn read(message: &[u8]) -> Result<Batch, Fault> {
        if u32::try_from(message.len()).is_err() {
            return Err("the message exceeds 4 GiB".to_owned());
        }
        let mut batch = Batch {
            text: String::with_capacity(message.len()),
            ..Batch::default()
        };
        fields(message, 0, |tag, wire_type, buf| {
            const M: &str = "PushResponsesRequest";
            match tag {
                1 => batch.campaign = batch.string(wire_type, buf, M, "campaign")?,
                2 => {
                    let bytes = delimited(wire_type, buf).map_err(|e| at(M, "responses", e))?;
                    let entry = batch.response(bytes).map_err(|e| at(M, "responses", e))?;
                    batch.responses.push(entry);
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(batch)
    }

    fn response(&mut self, bytes: &[u8]) -> Result<Entry, Fault> {
        const M: &str = "SurveyResponse";
        let mut e = Entry::default();
        let first = self.answers.len();
        fields(bytes, 1, |tag, wire_type, buf| {
            match tag {
                1 => e.response_id = self.string(wire_type, buf, M, "response_id")?,
                2 => e.unit = self.string(wire_type, buf, M, "unit")?,
                3 => e.category = self.string(wire_type, buf, M, "category")?,
                4 => int32::merge(wire_type, &mut e.channel, buf, DecodeContext::default())
                    .map_err(|e| at(M, "channel", prost_fault(e)))?,
                5 => {
                    let bytes = delimited(wire_type, buf).map_err(|e| at(M, "answer_time", e))?;
                    let into = e.answer_time.get_or_insert_with(Timestamp::default);
                    timestamp(bytes, 2, into).map_err(|e| at(M, "answer_time", e))?;
                }
                6 => {
                    let bytes = delimited(wire_type, buf).map_err(|e| at(M, "answers", e))?;
                    let answer = self.answer(bytes).map_err(|e| at(M, "answers", e))?;
                    self.answers.push(answer);
                }
                7 => e.respondent = self.string(wire_type, buf, M, "respondent")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        e.answers = self.answers_since(first);
        Ok(e)
    }

    fn answer(&mut self, bytes: &[u8]) -> Result<(Span, Span), Fault> {
        const M: &str = "Answer";
        let (mut question, mut answer) = (Span::default(), Span::default());
        fields(bytes, 2, |tag, wire_type, buf| {
            match tag {
                1 => question = self.string(wire_type, buf, M, "question")?,
                2 => answer = self.string(wire_type, buf, M, "answer")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok((question, answer))
    }

    /// A string field: kept when it is UTF-8, as prost requires.
    fn string(
        &mut self,
        wire_type: WireType,
        buf: &mut &[u8],
        message: &str,
        field: &str,
    ) -> Result<Span, Fault> {
        let bytes = delimited(wire_type, buf).map_err(|e| at(message, field, e))?;
        let s = std::str::from_utf8(bytes).map_err(|_| {
            at(
                message,
                field,
                "invalid string value: data is not UTF-8 encoded",
            )
        })?;
        Ok(self.keep(s))
    }
}

/// The generated types' batch, for callers that hold one (the generated
/// server's path and tests).
impl From<PushResponsesRequest> for Batch {
    fn from(r: PushResponsesRequest) -> Batch {
        let mut batch = Batch::default();
        batch.campaign = batch.keep(&r.campaign);
        for r in &r.responses {
            let first = batch.answers.len();
            for a in &r.answers {
                let answer = (batch.keep(&a.question), batch.keep(&a.answer));
                batch.answers.push(answer);
            }
            let entry = Entry {
                response_id: batch.keep(&r.response_id),
                unit: batch.keep(&r.unit),
                category: batch.keep(&r.category),
                channel: r.channel,
                answer_time: r.answer_time,
                answers: batch.answers_since(first),
                respondent: batch.keep(&r.respondent),
            };
            batch.responses.push(entry);
        }
        batch
    }
}

/// Decodes [`Batch`]es for the server (see `server.rs`).
#[derive(Debug, Default)]
pub struct BatchDecoder;

impl Decoder for BatchDecoder {
    type Item = Batch;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Batch>, Status> {
        // tonic hands the message over in one piece; this takes it without
        // a copy.
        let bytes = buf.copy_to_bytes(buf.remaining());
        Batch::decode(&bytes).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use jixiao_proto::reviews::{Answer as ProtoAnswer, Channel, SurveyResponse};
    use proptest::prelude::*;
    use prost::Message;

    use super::*;

    impl Batch {
        /// The batch as the generated types hold it.
        fn to_request(&self) -> PushResponsesRequest {
            PushResponsesRequest {
                campaign: self.campaign().to_owned(),
                responses: self
                    .responses()
                    .map(|r| SurveyResponse {
                        response_id: r.response_id.to_owned(),
                        unit: r.unit.to_owned(),
                        category: r.category.to_owned(),
                        channel: r.channel,
                        answer_time: r.answer_time,
                        answers: r
                            .answers
                            .iter()
                            .map(|a| ProtoAnswer {
                                question: a.question.to_owned(),
                                answer: a.answer.to_owned(),
                            })
                            .collect(),
                        respondent: r.respondent.to_owned(),
                    })
                    .collect(),
            }
        }
    }

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

    fn any_request() -> impl Strategy<Value = PushResponsesRequest> {
        (any_text(), proptest::collection::vec(any_response(), 0..4)).prop_map(
            |(campaign, responses)| PushResponsesRequest {
                campaign,
                responses,
            },
        )
    }

    /// What prost makes of `bytes`, and what this decoder does: both
    /// refuse them, or both read the same request.
    fn same_as_prost(bytes: &[u8]) -> Result<(), TestCaseError> {
        match (PushResponsesRequest::decode(bytes), Batch::decode(bytes)) {
            (Ok(expected), Ok(batch)) => prop_assert_eq!(batch.to_request(), expected),
            (Err(_), Err(status)) => {
                prop_assert_eq!(status.code(), tonic::Code::InvalidArgument)
            }
            (expected, got) => prop_assert!(
                false,
                "prost: {:?}, here: {:?}",
                expected.map(|_| ()),
                got.map(|_| ())
            ),
        }
        Ok(())
    }

    proptest! {
        /// Whatever the generated types encode, this decodes to the same
        /// values: same field numbers, same wire types.
        #[test]
        fn decodes_what_the_contract_s_types_encode(request in any_request()) {
            let decoded = Batch::decode(&request.encode_to_vec()).unwrap();
            prop_assert_eq!(decoded.to_request(), request.clone());
            prop_assert_eq!(Batch::from(request.clone()).to_request(), request);
        }

        /// Broken, repeated and foreign bytes are read as prost reads
        /// them: the same refusals, the last of a repeated string, merged
        /// timestamps, unknown fields skipped.
        #[test]
        fn reads_any_bytes_as_prost_does(
            request in any_request(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut bytes = request.encode_to_vec();
            for (at, byte, how) in edits {
                let i = if bytes.is_empty() { 0 } else { at.index(bytes.len()) };
                match how {
                    0 if !bytes.is_empty() => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ => bytes.truncate(i),
                }
            }
            same_as_prost(&bytes)?;
            let mut doubled = request.encode_to_vec();
            doubled.extend(request.encode_to_vec());
            doubled.extend(tail);
            same_as_prost(&doubled)?;
        }
    }

    #[test]
    fn groups_nest_as_deep_as_prost_lets_them() {
        // Unknown field 9 as `depth` groups, one inside the other.
        let groups = |depth: usize| [vec![0x4b; depth], vec![0x4c; depth]].concat();
        let within = |tag: u8, inner: Vec<u8>| {
            let mut out = vec![tag << 3 | 2];
            prost::encoding::encode_varint(inner.len() as u64, &mut out);
            out.extend(inner);
            out
        };
        for depth in 96..=102 {
            let g = groups(depth);
            let in_response = within(2, g.clone());
            let in_answer = within(2, within(6, g.clone()));
            let in_time = within(2, within(5, g.clone()));
            for bytes in [g, in_response, in_answer, in_time] {
                same_as_prost(&bytes).unwrap();
            }
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
        let decoded = Batch::decode(&request.encode_to_vec()).unwrap();
        assert_eq!(decoded.to_request(), request);
        let r = decoded.responses().next().unwrap();
        assert_eq!((r.unit, r.respondent, r.answers.len()), ("units/a", "k", 1));
    }

    #[test]
    fn a_string_that_is_not_utf8_refuses_the_message() {
        // Field 2 (a response) holding field 2 (unit) = 0xff 0xfe.
        let bytes = [0x12, 0x04, 0x12, 0x02, 0xff, 0xfe];
        let status = Batch::decode(&bytes).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("SurveyResponse.unit"),
            "{}",
            status.message()
        );
        let truncated = [0x0a, 0x40, b'c'];
        let status = Batch::decode(&truncated).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
