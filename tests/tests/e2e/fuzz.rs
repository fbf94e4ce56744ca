//! Arbitrary requests to every RPC: each method's request type is read from
//! the compiled descriptors and filled at random (names that exist and names
//! that do not, huge and odd numbers, bad decimals, unknown enum values,
//! out-of-range times, very long and non-ASCII text, nested messages)
//! or is random bytes that are not a message at all, then sent by
//! principals that pass the role gate, in each phase from PLANNING to
//! ASSESSMENT, so the handlers and their validators see it. Every answer must be a clean status: never a
//! panic, a dropped connection or an INTERNAL error; afterwards every
//! service still serves. Seeded, so a failure reproduces.

use std::time::Duration;

use jixiao_proto::plans::Phase;
use jixiao_runtime::Role;
use jixiao_testkit::{Authed, Backend, Suite, on_both_databases};
use jixiao_tests::{DAY, call_bytes, evaluation_year, now_ms, set_phase};
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
    Value,
};
use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;
use tonic::{Code, Status};

/// Requests per method and phase.
const CASES: usize = 12;
/// Random byte strings per method and phase.
const BYTE_CASES: usize = 2;

/// Text that means something somewhere in the suite, and text that breaks
/// naive parsers.
const TEXT: &[&str] = &[
    "",
    " ",
    "x",
    "cycles/2026",
    "cycles/-",
    "cycles/2026/groups/districts",
    "cycles/2026/groups/districts/scheme",
    "cycles/2026/groups/districts/framework",
    "cycles/2026/plans/siming",
    "cycles/2026/campaigns/survey",
    "cycles/2026/inspections/x",
    "cycles/2026/findings/x",
    "units/siming",
    "units/jimei",
    "units/../siming",
    "siming",
    "GDP_GROWTH",
    "KEY_PROJECTS",
    "思明区人民政府",
    "\u{0}",
    "'; DROP TABLE plans; --",
    "%s%n",
    "0",
    "-1",
    "1.5",
    "-0.000",
    "1e308",
    "NaN",
    "99999999999999999999999999999999",
    "0.0000000000000000000000000001",
    "-0.0000000000000000000000000001",
    "79228162514264337593543950335",
    "-79228162514264337593543950335",
    "9.9999999999999999999999999999",
    "1234567890123456789012345678",
    "1e-28",
    "1E+27",
    "999999999999999.9999999999",
    "2026-06-30",
];

fn text(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..20) {
        0 => "长".repeat(rng.random_range(1000..5000)),
        1 => (0..rng.random_range(1..40))
            .map(|_| char::from_u32(rng.random_range(0..0x3000)).unwrap_or('?'))
            .collect(),
        _ => TEXT.choose(rng).unwrap().to_string(),
    }
}

fn int(rng: &mut ChaCha8Rng) -> i64 {
    *[
        0,
        1,
        -1,
        2,
        5,
        100,
        3000,
        i64::from(i32::MAX),
        i64::from(i32::MIN),
        i64::MAX,
        i64::MIN,
    ]
    .choose(rng)
    .unwrap()
}

fn value(rng: &mut ChaCha8Rng, field: &FieldDescriptor, depth: u32) -> Option<Value> {
    Some(match field.kind() {
        Kind::String => Value::String(text(rng)),
        Kind::Bytes => Value::Bytes((0..rng.random_range(0..64)).map(|_| rng.random()).collect()),
        Kind::Bool => Value::Bool(rng.random()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(int(rng) as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(int(rng)),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(int(rng) as u32),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(int(rng) as u64),
        Kind::Float => Value::F32(rng.random()),
        Kind::Double => Value::F64(rng.random()),
        Kind::Enum(e) => {
            let known: Vec<i32> = e.values().map(|v| v.number()).collect();
            Value::EnumNumber(if rng.random_ratio(1, 8) {
                99
            } else {
                *known.choose(rng).unwrap()
            })
        }
        Kind::Message(m) => {
            if depth >= 4 {
                return None;
            }
            Value::Message(message(rng, &m, depth + 1))
        }
    })
}

/// A message with a random subset of its fields set.
fn message(rng: &mut ChaCha8Rng, desc: &MessageDescriptor, depth: u32) -> DynamicMessage {
    let mut m = DynamicMessage::new(desc.clone());
    for field in desc.fields() {
        if field.is_map() || rng.random_ratio(1, 4) {
            continue;
        }
        if field.is_list() {
            let n = rng.random_range(0..4);
            let items: Vec<Value> = (0..n).filter_map(|_| value(rng, &field, depth)).collect();
            m.set_field(&field, Value::List(items));
        } else if let Some(v) = value(rng, &field, depth) {
            m.set_field(&field, v);
        }
    }
    m
}

fn path(method: &MethodDescriptor) -> String {
    format!("/{}/{}", method.parent_service().full_name(), method.name())
}

/// Sends one random request (a few for a client stream) and returns the
/// status; a server stream that opens counts by its first item.
async fn call(channel: Authed, method: &MethodDescriptor, rng: &mut ChaCha8Rng) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<DynamicMessage, ()>::default();
    let path: http::uri::PathAndQuery = path(method).parse().unwrap();
    let input = method.input();
    let request = message(rng, &input, 0);
    let result = match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => grpc
            .unary(tonic::Request::new(request), path, codec)
            .await
            .map(|_| ()),
        (true, false) => {
            let batch: Vec<DynamicMessage> = (0..rng.random_range(0..4))
                .map(|_| message(rng, &input, 0))
                .collect();
            grpc.client_streaming(tonic::Request::new(tokio_stream::iter(batch)), path, codec)
                .await
                .map(|_| ())
        }
        (false, true) => match grpc
            .server_streaming(tonic::Request::new(request), path, codec)
            .await
        {
            Ok(mut s) => {
                match tokio::time::timeout(Duration::from_millis(300), s.get_mut().message()).await
                {
                    Ok(Err(status)) => Err(status),
                    _ => Ok(()),
                }
            }
            Err(s) => Err(s),
        },
        (true, true) => unreachable!("no bidirectional streams"),
    };
    match result {
        Ok(()) => Status::ok(""),
        Err(s) => s,
    }
}

async fn arbitrary_requests_get_clean_statuses(backend: Backend) {
    let suite = Suite::start(backend).await;
    evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let pool = DescriptorPool::decode(jixiao_proto::FILE_DESCRIPTOR_SET).unwrap();
    // Principals that pass the gate of one method or another.
    let callers = [
        suite.office(),
        suite.unit("siming"),
        suite.as_roles("stats", &[Role::Provider], Some("stats")),
        suite.as_roles("platform-a", &[Role::SurveyPlatform], None),
        suite.as_roles("eval-1", &[Role::Evaluator], None),
        suite.as_roles("insp-1", &[Role::Inspector], None),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(20261128);
    let mut cases = 0;
    let mut bad = Vec::new();
    // Writes are gated by phase before they are validated, so each phase
    // lets a different set of handlers see the requests in full.
    for phase in [Phase::Planning, Phase::Execution, Phase::Assessment] {
        if phase != Phase::Planning {
            set_phase(&suite, "2026", phase).await;
        }
        for service in pool.services() {
            if !service.full_name().starts_with("jixiao.") {
                continue;
            }
            for method in service.methods() {
                // Bytes sent to a server stream that happen to decode would
                // open a stream this unary caller cannot read.
                let byte_cases = if method.is_server_streaming() {
                    0
                } else {
                    BYTE_CASES
                };
                for case in 0..CASES + byte_cases {
                    let channel = callers[case % callers.len()].clone();
                    let answer = if case < CASES {
                        tokio::time::timeout(
                            Duration::from_secs(20),
                            call(channel, &method, &mut rng),
                        )
                        .await
                    } else {
                        let bytes: Vec<u8> =
                            (0..rng.random_range(1..48)).map(|_| rng.random()).collect();
                        tokio::time::timeout(
                            Duration::from_secs(20),
                            call_bytes(
                                channel,
                                &path(&method),
                                method.is_client_streaming(),
                                bytes,
                            ),
                        )
                        .await
                        .map(|r| r.err().unwrap_or_else(|| Status::ok("")))
                    };
                    let status =
                        answer.unwrap_or_else(|_| Status::deadline_exceeded("no answer in 20 s"));
                    cases += 1;
                    if matches!(
                        status.code(),
                        Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented
                    ) || status.code() == Code::DeadlineExceeded
                    {
                        bad.push(format!(
                            "{} in {} case {case}: {:?} {}",
                            method.full_name(),
                            phase.as_str_name(),
                            status.code(),
                            status.message()
                        ));
                    }
                }
            }
        }
    }
    println!("{cases} arbitrary requests");
    assert!(
        bad.is_empty(),
        "{} unclean answers:\n{}",
        bad.len(),
        bad.join("\n")
    );

    // Every service still serves, and a plain request still works.
    use jixiao_proto::plans::{GetCycleRequest, plans_service_client::PlansServiceClient};
    let cycle = PlansServiceClient::new(suite.office())
        .get_cycle(GetCycleRequest {
            name: "cycles/2026".into(),
        })
        .await
        .expect("the suite still answers");
    assert_eq!(cycle.into_inner().name, "cycles/2026");
    suite.stop().await;
}

on_both_databases!(arbitrary_requests_get_clean_statuses);
