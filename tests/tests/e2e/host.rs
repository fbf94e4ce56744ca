//! The host as a browser dashboard meets it: gRPC-Web over HTTP/1.1 with a
//! CORS preflight, and authentication on everything but health.

use jixiao_testkit::{Backend, Suite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a raw HTTP/1.1 request and returns the whole response as text
/// (lossy: the gRPC-Web body is binary).
async fn http1(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

fn grpc_web_call(path: &str, token: Option<&str>) -> Vec<u8> {
    // An empty protobuf message in one gRPC frame: flag 0, length 0.
    let body = [0u8, 0, 0, 0, 0];
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\norigin: https://dashboard.example\r\ncontent-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_call_over_grpc_web_with_cors() {
    let suite = Suite::start(Backend::Sqlite).await;
    // The CORS preflight of a browser.
    let preflight = http1(
        suite.addr,
        b"OPTIONS /jixiao.plans.v1.PlansService/ListCycles HTTP/1.1\r\nhost: localhost\r\norigin: https://dashboard.example\r\naccess-control-request-method: POST\r\naccess-control-request-headers: authorization,content-type,x-grpc-web\r\nconnection: close\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    assert!(preflight.starts_with("http/1.1 200"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: https://dashboard.example"),
        "{preflight}"
    );

    // Health answers without a token, over gRPC-Web.
    let health = http1(
        suite.addr,
        &grpc_web_call("/grpc.health.v1.Health/Check", None),
    )
    .await
    .to_ascii_lowercase();
    assert!(health.starts_with("http/1.1 200"), "{health}");
    assert!(
        health.contains("content-type: application/grpc-web+proto"),
        "{health}"
    );
    assert!(health.contains("grpc-status:0"), "{health}");

    // A service call needs a token; with one it succeeds.
    let anonymous = http1(
        suite.addr,
        &grpc_web_call("/jixiao.plans.v1.PlansService/ListCycles", None),
    )
    .await
    .to_ascii_lowercase();
    assert!(anonymous.contains("grpc-status: 16"), "{anonymous}");
    let token = suite.token("dash", &[jixiao_runtime::Role::Viewer], None);
    let listed = http1(
        suite.addr,
        &grpc_web_call("/jixiao.plans.v1.PlansService/ListCycles", Some(&token)),
    )
    .await
    .to_ascii_lowercase();
    assert!(listed.contains("grpc-status:0"), "{listed}");
    suite.stop().await;
}

/// One principal may have 64 calls in flight; the 65th is refused with
/// RESOURCE_EXHAUSTED while other principals are served, and places come
/// back as calls finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_caller_is_limited_and_others_are_not() {
    use jixiao_proto::reviews::{
        ListCampaignsRequest, PushResponsesRequest, reviews_service_client::ReviewsServiceClient,
    };
    use jixiao_runtime::{Role, host::MAX_CALLS_PER_PRINCIPAL};
    use tonic::Code;
    use tonic_types::StatusExt;

    let suite = Suite::start(Backend::Sqlite).await;
    let platform = || suite.as_roles("runaway", &[Role::SurveyPlatform], None);
    // Streams that never send hold their calls open; of MAX + 8 opened at
    // once, MAX are held and 8 refused.
    const EXTRA: usize = 8;
    let mut senders = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..MAX_CALLS_PER_PRINCIPAL + EXTRA {
        let (tx, rx) = tokio::sync::mpsc::channel::<PushResponsesRequest>(1);
        senders.push(tx);
        let mut client = ReviewsServiceClient::new(platform());
        calls.push(tokio::spawn(async move {
            client
                .stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        }));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while calls.iter().filter(|c| c.is_finished()).count() < EXTRA {
        assert!(std::time::Instant::now() < deadline, "never limited");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (done, held): (Vec<_>, Vec<_>) = calls.into_iter().partition(|c| c.is_finished());
    assert_eq!(held.len(), MAX_CALLS_PER_PRINCIPAL);
    for call in done {
        let refused = call.await.unwrap().unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(
            refused.message().contains("64 calls in flight"),
            "{refused:?}"
        );
        // The host refuses it, in its domain (types.proto).
        let info = refused.get_error_details().error_info().cloned().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("TOO_MANY_CALLS", "jixiao.auth")
        );
    }
    let list = |channel| async move {
        ReviewsServiceClient::new(channel)
            .list_campaigns(ListCampaignsRequest {
                parent: "cycles/2026".into(),
                ..Default::default()
            })
            .await
    };
    // The runaway caller is refused; someone else is served meanwhile.
    let refused = list(platform()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(jixiao_tests::reason(&refused), "TOO_MANY_CALLS");
    let other = list(suite.office()).await;
    assert!(
        !matches!(&other, Err(s) if s.code() == Code::ResourceExhausted),
        "{other:?}"
    );
    let calls = held;
    // The streams end; the runaway caller is served again.
    drop(senders);
    for call in calls {
        let _ = call.await;
    }
    let again = list(platform()).await;
    assert!(
        !matches!(&again, Err(s) if s.code() == Code::ResourceExhausted),
        "{again:?}"
    );
    suite.stop().await;
}

/// Limits: a message over a service's size limit is refused before any
/// handler sees it; a batch over the documented count is refused naming
/// the field; a call whose deadline passes ends with DEADLINE_EXCEEDED
/// instead of hanging; and the server keeps serving afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_big_batches_and_deadlines() {
    use jixiao_proto::{
        plans::{
            CreateCycleRequest, Cycle, ListCyclesRequest, plans_service_client::PlansServiceClient,
        },
        reviews::{PushResponsesRequest, reviews_service_client::ReviewsServiceClient},
    };
    use jixiao_runtime::Role;
    use jixiao_tests::{bad_fields, response};
    use tonic::Code;

    let suite = Suite::start(Backend::Sqlite).await;
    // 5 MiB of title: over plans' 4 MiB limit.
    let err = PlansServiceClient::new(suite.office())
        .max_encoding_message_size(64 * 1024 * 1024)
        .create_cycle(CreateCycleRequest {
            cycle_id: "2031".into(),
            cycle: Some(Cycle {
                year: 2031,
                title: "长".repeat(5 * 1024 * 1024 / 3),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{err:?}"
    );

    // 5,001 responses in one batch: refused by count, naming the field.
    jixiao_tests::evaluation_year(&suite, "2026", jixiao_tests::now_ms() + jixiao_tests::DAY).await;
    jixiao_tests::set_phase(&suite, "2026", jixiao_proto::plans::Phase::Execution).await;
    jixiao_tests::survey_campaign(
        &mut ReviewsServiceClient::new(suite.office()),
        "survey",
        jixiao_proto::reviews::CampaignMode::RawResponses,
    )
    .await;
    let err =
        ReviewsServiceClient::new(suite.as_roles("platform-a", &[Role::SurveyPlatform], None))
            .max_encoding_message_size(64 * 1024 * 1024)
            .push_responses(PushResponsesRequest {
                campaign: "cycles/2026/campaigns/survey".into(),
                responses: (0..5001)
                    .map(|i| response(&format!("r{i}"), "siming", "residents", ["satisfied"; 3]))
                    .collect(),
            })
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(bad_fields(&err), ["responses"]);

    // A deadline of a microsecond ends the call at once. Timers have a
    // millisecond's resolution, so a call answered within that millisecond
    // may still come back whole; anything else is DEADLINE_EXCEEDED.
    let mut req = tonic::Request::new(ListCyclesRequest::default());
    req.set_timeout(std::time::Duration::from_micros(1));
    let started = std::time::Instant::now();
    if let Err(err) = PlansServiceClient::new(suite.office())
        .list_cycles(req)
        .await
    {
        assert!(
            matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{err:?}"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(2));

    // Still serving.
    PlansServiceClient::new(suite.office())
        .list_cycles(ListCyclesRequest::default())
        .await
        .expect("serving after the refusals");
    suite.stop().await;
}

/// A call still at work when its `grpc-timeout` passes answers
/// DEADLINE_EXCEEDED from the host, with its reason, rather than tonic's
/// bare CANCELLED "Timeout expired"; the call leaves no place held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_deadline_answers_deadline_exceeded() {
    use jixiao_proto::reviews::{
        PushResponsesRequest, reviews_service_client::ReviewsServiceClient,
    };
    use jixiao_runtime::Role;
    use tonic::Code;
    use tonic_types::StatusExt;

    let suite = Suite::start(Backend::Sqlite).await;
    let platform = suite.as_roles("slow-platform", &[Role::SurveyPlatform], None);
    // A stream that sends nothing keeps its handler waiting. Two seconds
    // leave the host's margin (a tenth, at most 50 ms) well ahead of
    // the client's own timer.
    let (tx, rx) = tokio::sync::mpsc::channel::<PushResponsesRequest>(1);
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.set_timeout(std::time::Duration::from_secs(2));
    let e = ReviewsServiceClient::new(platform)
        .stream_responses(req)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(e.message().contains("deadline"), "{e:?}");
    // The host answers it, in its domain (types.proto).
    let info = e.get_error_details().error_info().cloned().unwrap();
    assert_eq!(
        (info.reason.as_str(), info.domain.as_str()),
        ("DEADLINE_EXCEEDED", "jixiao.host")
    );
    drop(tx);
    suite.stop().await;
}
