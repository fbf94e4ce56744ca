//! Shared fixtures for the end-to-end tests: a small evaluation year built
//! through the public RPCs, and helpers to read error details.

use jixiao::Target;
use jixiao_proto::{
    Decimal,
    plans::{
        CreateCycleRequest, CreateGroupRequest, CreateUnitRequest, Cycle, Deadlines, Direction,
        Group, Indicator, ReplaceFrameworkRequest, ScoringMethod, Unit, UnitKind,
        plans_service_client::PlansServiceClient,
    },
    reviews::{
        Answer, Campaign, CampaignMode, Channel, CreateCampaignRequest, Question, SurveyResponse,
        reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{TokenKey, tls::Tls};
use jixiao_testkit::{Authed, Backend, Options, Suite};
use tonic::Status;
use tonic_types::StatusExt;

pub type Plans = PlansServiceClient<Authed>;

pub const DAY: i64 = 24 * 3600 * 1000;

pub fn dec(s: &str) -> Option<Decimal> {
    Some(Decimal { value: s.into() })
}

pub fn ts(ms: i64) -> Option<prost_types::Timestamp> {
    Some(jixiao_runtime::time::timestamp(ms))
}

pub fn now_ms() -> i64 {
    jixiao_runtime::time::now_ms()
}

/// The fixture's annual period.
pub fn annual() -> Option<jixiao_proto::types::Period> {
    Some(jixiao_proto::types::Period {
        kind: jixiao_proto::types::PeriodKind::Annual as i32,
        year: 2026,
        index: 0,
    })
}

/// Evidence for a reported value.
pub fn evidence() -> Vec<jixiao_proto::types::EvidenceItem> {
    vec![jixiao_proto::types::EvidenceItem {
        name: "2026年统计公报.pdf".into(),
        media_type: "application/pdf".into(),
        size_bytes: 482_113,
        sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        uri: "s3://evidence/2026/stats/bulletin.pdf".into(),
    }]
}

/// The districts' final values of the fixture framework's five reported
/// indicators (GDP_GROWTH, ENERGY_INTENSITY, APPROVAL_ONLINE_RATE,
/// FOREIGN_TRADE, INVESTMENT). Against the targets the indicators and
/// aggregator tests approve, they score (with KEY_PROJECTS 4.5, 4, 0)
/// siming 53, huli 48 and jimei 42.583334.
pub fn final_values() -> Vec<jixiao_proto::indicators::IndicatorValue> {
    let finals = [
        ("siming", ["6", "0.5", "96", "300", "1200"]),
        ("huli", ["7.7", "0.4", "94", "240", "1200"]),
        ("jimei", ["5", "0.6", "95", "100", "800"]),
    ];
    let codes = [
        "GDP_GROWTH",
        "ENERGY_INTENSITY",
        "APPROVAL_ONLINE_RATE",
        "FOREIGN_TRADE",
        "INVESTMENT",
    ];
    finals
        .iter()
        .flat_map(|(unit, vs)| {
            codes
                .iter()
                .zip(vs)
                .map(move |(c, v)| jixiao_proto::indicators::IndicatorValue {
                    unit: format!("units/{unit}"),
                    indicator: c.to_string(),
                    period: annual(),
                    value: dec(v),
                    evidence: evidence(),
                    ..Default::default()
                })
        })
        .collect()
}

/// The ErrorInfo reason of a failed call.
pub fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// The fields a BadRequest names.
pub fn bad_fields(status: &Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The units of the fixture: three districts and a statistics bureau that
/// provides data.
pub const DISTRICTS: [&str; 3] = ["siming", "huli", "jimei"];
pub const PROVIDER: &str = "stats";

/// A cycle with a `districts` group and a framework covering every scoring
/// method (weights 20 + 15 + 10 + 5 + 5 + 5 = 60). `plan_deadline_ms`
/// sets the plan deadline.
pub async fn evaluation_year(suite: &Suite, cycle: &str, plan_deadline_ms: i64) -> Plans {
    let mut office = PlansServiceClient::new(suite.office());
    for (id, zh, en, kind) in [
        (
            "siming",
            "思明区人民政府",
            "Siming District",
            UnitKind::DistrictGovernment,
        ),
        (
            "huli",
            "湖里区人民政府",
            "Huli District",
            UnitKind::DistrictGovernment,
        ),
        (
            "jimei",
            "集美区人民政府",
            "Jimei District",
            UnitKind::DistrictGovernment,
        ),
        (
            "stats",
            "市统计局",
            "Statistics Bureau",
            UnitKind::CityDepartment,
        ),
    ] {
        let r = office
            .create_unit(CreateUnitRequest {
                unit_id: id.into(),
                unit: Some(Unit {
                    display_name_zh: zh.into(),
                    display_name_en: en.into(),
                    kind: kind as i32,
                    ..Default::default()
                }),
                request_id: format!("unit-{id}"),
            })
            .await;
        // Units outlive cycles: a second year finds them registered.
        if let Err(s) = r {
            assert_eq!(s.code(), tonic::Code::AlreadyExists, "{s:?}");
        }
    }
    office
        .create_cycle(CreateCycleRequest {
            cycle_id: cycle.into(),
            cycle: Some(Cycle {
                year: 2026,
                title: "2026年度绩效评估".into(),
                deadlines: Some(Deadlines {
                    plan_deadline: ts(plan_deadline_ms),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create cycle");
    districts(&mut office, cycle).await;
    office
}

/// The `districts` group of the three districts in `cycle`, with the
/// fixture's framework.
pub async fn districts(office: &mut PlansServiceClient<Authed>, cycle: &str) {
    office
        .create_group(CreateGroupRequest {
            parent: format!("cycles/{cycle}"),
            group_id: "districts".into(),
            group: Some(Group {
                display_name: "区人民政府".into(),
                units: DISTRICTS.iter().map(|u| format!("units/{u}")).collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create group");
    office
        .replace_framework(ReplaceFrameworkRequest {
            name: format!("cycles/{cycle}/groups/districts/framework"),
            indicators: framework(),
            request_id: String::new(),
        })
        .await
        .expect("framework");
}

pub fn indicator(
    code: &str,
    weight: &str,
    method: ScoringMethod,
    direction: Direction,
    range: (&str, &str),
) -> Indicator {
    Indicator {
        code: code.into(),
        display_name: code.into(),
        measurement_unit: "%".into(),
        direction: direction as i32,
        weight: dec(weight),
        method: method as i32,
        plausible_min: dec(range.0),
        plausible_max: dec(range.1),
        provider: format!("units/{PROVIDER}"),
        ..Default::default()
    }
}

pub fn framework() -> Vec<Indicator> {
    vec![
        indicator(
            "GDP_GROWTH",
            "20",
            ScoringMethod::Ratio,
            Direction::HigherIsBetter,
            ("-20", "30"),
        ),
        indicator(
            "ENERGY_INTENSITY",
            "15",
            ScoringMethod::Ratio,
            Direction::LowerIsBetter,
            ("0", "2"),
        ),
        indicator(
            "APPROVAL_ONLINE_RATE",
            "10",
            ScoringMethod::Threshold,
            Direction::HigherIsBetter,
            ("0", "100"),
        ),
        indicator(
            "FOREIGN_TRADE",
            "5",
            ScoringMethod::PeerBest,
            Direction::HigherIsBetter,
            ("0", "10000"),
        ),
        indicator(
            "INVESTMENT",
            "5",
            ScoringMethod::PeerRank,
            Direction::HigherIsBetter,
            ("0", "5000"),
        ),
        indicator(
            "KEY_PROJECTS",
            "5",
            ScoringMethod::Assessed,
            Direction::HigherIsBetter,
            ("0", "5"),
        ),
    ]
}

/// Targets of one unit for the fixture framework, in framework order:
/// GDP_GROWTH, ENERGY_INTENSITY, APPROVAL_ONLINE_RATE, FOREIGN_TRADE, INVESTMENT.
pub fn targets(values: [&str; 5]) -> Vec<jixiao_proto::plans::Target> {
    [
        "GDP_GROWTH",
        "ENERGY_INTENSITY",
        "APPROVAL_ONLINE_RATE",
        "FOREIGN_TRADE",
        "INVESTMENT",
    ]
    .iter()
    .zip(values)
    .map(|(code, v)| jixiao_proto::plans::Target {
        indicator: code.to_string(),
        value: dec(v),
        assigned: false,
    })
    .collect()
}

/// Each district drafts, submits, and the office approves its plan.
pub async fn approve_plans(
    suite: &Suite,
    cycle: &str,
    plans: &[(&str, Vec<jixiao_proto::plans::Target>)],
) {
    use jixiao_proto::plans::{ApprovePlanRequest, CreatePlanRequest, Plan, SubmitPlanRequest};
    let mut office = PlansServiceClient::new(suite.office());
    for (unit, targets) in plans {
        let mut client = PlansServiceClient::new(suite.unit(unit));
        let created = client
            .create_plan(CreatePlanRequest {
                parent: format!("cycles/{cycle}"),
                plan: Some(Plan {
                    unit: format!("units/{unit}"),
                    targets: targets.clone(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("create plan")
            .into_inner();
        let submitted = client
            .submit_plan(SubmitPlanRequest {
                name: created.name.clone(),
                etag: created.etag,
                request_id: String::new(),
            })
            .await
            .expect("submit plan")
            .into_inner();
        office
            .approve_plan(ApprovePlanRequest {
                name: submitted.name,
                etag: submitted.etag,
                comment: String::new(),
            })
            .await
            .expect("approve plan");
    }
}

/// Moves a cycle to a phase.
pub async fn set_phase(suite: &Suite, cycle: &str, phase: jixiao_proto::plans::Phase) {
    PlansServiceClient::new(suite.office())
        .set_cycle_phase(jixiao_proto::plans::SetCyclePhaseRequest {
            name: format!("cycles/{cycle}"),
            phase: phase as i32,
        })
        .await
        .expect("set phase");
}

/// [`evaluation_year`] with the three districts' plans approved (GDP
/// targets 8, 7 and 6) and the cycle in EXECUTION.
pub async fn executing_year(suite: &Suite) -> Plans {
    let plans = evaluation_year(suite, "2026", now_ms() + DAY).await;
    approve_plans(
        suite,
        "2026",
        &[
            ("siming", targets(["8", "0.45", "95", "300", "1000"])),
            ("huli", targets(["7", "0.5", "95", "300", "1000"])),
            ("jimei", targets(["6", "0.45", "95", "300", "1000"])),
        ],
    )
    .await;
    set_phase(suite, "2026", jixiao_proto::plans::Phase::Execution).await;
    plans
}

/// Every indicator of the three districts in: the provider's final values
/// and an assessed KEY_PROJECTS score of 4 each.
pub async fn complete_indicators(indicators: &Suite) {
    use jixiao_proto::indicators::{
        BatchReportValuesRequest, EnterAssessedScoreRequest,
        indicators_service_client::IndicatorsServiceClient,
    };
    IndicatorsServiceClient::new(indicators.as_roles(
        PROVIDER,
        &[jixiao_runtime::Role::Provider],
        Some(PROVIDER),
    ))
    .batch_report_values(BatchReportValuesRequest {
        parent: "cycles/2026".into(),
        values: final_values(),
        request_id: String::new(),
    })
    .await
    .expect("final values");
    let mut evaluator = IndicatorsServiceClient::new(indicators.as_roles(
        "eval-1",
        &[jixiao_runtime::Role::Evaluator],
        None,
    ));
    for unit in DISTRICTS {
        evaluator
            .enter_assessed_score(EnterAssessedScoreRequest {
                parent: "cycles/2026".into(),
                unit: format!("units/{unit}"),
                indicator: "KEY_PROJECTS".into(),
                score: dec("4"),
                justification: "按期推进".into(),
                request_id: String::new(),
            })
            .await
            .expect("assessed score");
    }
}

/// A survey campaign of the districts group in cycle 2026, bound to
/// `platform-a`, with questions q1–q3 and a window around today.
pub async fn survey_campaign(
    office: &mut ReviewsServiceClient<Authed>,
    id: &str,
    mode: CampaignMode,
) -> Campaign {
    office
        .create_campaign(CreateCampaignRequest {
            parent: "cycles/2026".into(),
            campaign_id: id.into(),
            campaign: Some(Campaign {
                group: "cycles/2026/groups/districts".into(),
                title: "2026年度群众满意度调查".into(),
                mode: mode as i32,
                platforms: vec!["platform-a".into()],
                questions: ["q1", "q2", "q3"]
                    .iter()
                    .map(|q| Question {
                        id: q.to_string(),
                        text: format!("问题 {q}"),
                    })
                    .collect(),
                open_time: ts(now_ms() - 30 * DAY),
                close_time: ts(now_ms() + 30 * DAY),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("campaign")
        .into_inner()
}

/// A fixed time in the campaign's window, so a resent response is the same.
pub fn answered_at() -> i64 {
    (now_ms() / DAY - 1) * DAY
}

/// A phone response to q1–q3.
pub fn response(id: &str, unit: &str, category: &str, answers: [&str; 3]) -> SurveyResponse {
    SurveyResponse {
        response_id: id.into(),
        unit: format!("units/{unit}"),
        category: category.into(),
        channel: Channel::Phone as i32,
        answer_time: ts(answered_at()),
        answers: ["q1", "q2", "q3"]
            .iter()
            .zip(answers)
            .map(|(q, a)| Answer {
                question: q.to_string(),
                answer: a.into(),
            })
            .collect(),
    }
}

/// The five services, each on its own port and database, sharing a key,
/// as in production.
pub struct Split {
    pub plans: Suite,
    pub indicators: Suite,
    pub inspections: Suite,
    pub reviews: Suite,
    pub aggregator: Suite,
}

impl Split {
    pub async fn start(backend: Backend) -> Split {
        Self::start_with(backend, None).await
    }

    /// With TLS on every port and every call between services.
    pub async fn start_with(backend: Backend, tls: Option<Tls>) -> Split {
        let key = TokenKey::from_hex(&TokenKey::generate_hex()).unwrap();
        let one = |target: Target, peers: Vec<(Target, String)>| Options {
            targets: vec![target],
            key: Some(key.clone()),
            peers,
            tls: tls.clone(),
        };
        let plans = Suite::start_with(backend.clone(), one(Target::Plans, vec![])).await;
        let to_plans = vec![(Target::Plans, plans.url())];
        let indicators =
            Suite::start_with(backend.clone(), one(Target::Indicators, to_plans.clone())).await;
        let inspections =
            Suite::start_with(backend.clone(), one(Target::Inspections, to_plans.clone())).await;
        let reviews = Suite::start_with(backend.clone(), one(Target::Reviews, to_plans)).await;
        let peers = vec![
            (Target::Plans, plans.url()),
            (Target::Indicators, indicators.url()),
            (Target::Inspections, inspections.url()),
            (Target::Reviews, reviews.url()),
        ];
        let aggregator = Suite::start_with(backend, one(Target::Aggregator, peers)).await;
        Split {
            plans,
            indicators,
            inspections,
            reviews,
            aggregator,
        }
    }

    pub async fn stop(self) {
        self.aggregator.stop().await;
        self.reviews.stop().await;
        self.inspections.stop().await;
        self.indicators.stop().await;
        self.plans.stop().await;
    }
}

/// Reads the districts' standings until `done` holds, retrying failed
/// reads, for up to 20 s (a change reaches them within about a second).
pub async fn standings_until(
    office: &mut jixiao_proto::aggregator::aggregator_service_client::AggregatorServiceClient<
        Authed,
    >,
    what: &str,
    done: impl Fn(&jixiao_proto::aggregator::Standings) -> bool,
) -> jixiao_proto::aggregator::Standings {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let s = office
            .get_standings(jixiao_proto::aggregator::GetStandingsRequest {
                group: "cycles/2026/groups/districts".into(),
            })
            .await
            .map(|r| r.into_inner());
        if let Ok(s) = &s
            && done(s)
        {
            return s.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "standings never showed {what}: {s:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A figure of `/proc/{pid}/status` in KiB (`VmRSS`, `VmHWM`, …).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time used so far by each thread of a process, in seconds, keyed by
/// thread name (threads of the same name summed). Linux only; empty
/// elsewhere. Clock ticks are taken as USER_HZ = 100, as on every Linux
/// build of note.
pub fn thread_cpu_seconds(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (name) state ppid ..."; the name may hold spaces.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line.
        let ticks: u64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        *out.entry(name).or_insert(0.0) += ticks as f64 / 100.0;
    }
    out
}

/// The `q` quantile of sorted samples (0 for none).
pub fn percentile(sorted: &[std::time::Duration], q: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// Every method of the suite's services, read from the compiled
/// descriptors: (path, client streaming, server streaming).
pub fn rpc_methods() -> Vec<(String, bool, bool)> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(jixiao_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for file in &set.file {
        let package = file.package();
        if !package.starts_with("jixiao.") {
            continue;
        }
        for service in &file.service {
            for m in &service.method {
                out.push((
                    format!("/{package}.{}/{}", service.name(), m.name()),
                    m.client_streaming(),
                    m.server_streaming(),
                ));
            }
        }
    }
    out
}

/// Calls `path` with an empty request (an empty stream for client
/// streams) and returns the status code; a server stream that opens is Ok
/// unless its first item fails within two seconds.
pub async fn call_empty(
    channel: Authed,
    path: &str,
    client_streaming: bool,
    server_streaming: bool,
) -> tonic::Code {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path: http::uri::PathAndQuery = path.parse().unwrap();
    let result: Result<(), Status> = match (client_streaming, server_streaming) {
        (false, false) => grpc
            .unary(tonic::Request::new(()), path, codec)
            .await
            .map(|_| ()),
        (true, false) => grpc
            .client_streaming(
                tonic::Request::new(tokio_stream::iter(Vec::<()>::new())),
                path,
                codec,
            )
            .await
            .map(|_| ()),
        (false, true) => match grpc
            .server_streaming(tonic::Request::new(()), path, codec)
            .await
        {
            Ok(mut s) => {
                match tokio::time::timeout(std::time::Duration::from_secs(2), s.get_mut().message())
                    .await
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
        Ok(()) => tonic::Code::Ok,
        Err(s) => s.code(),
    }
}

/// Sends `bytes` as the request message of `path` (as the one message of
/// a client stream when `client_streaming`) and returns the status.
pub async fn call_raw(
    channel: Authed,
    path: &str,
    client_streaming: bool,
    bytes: Vec<u8>,
) -> Status {
    call_bytes(channel, path, client_streaming, bytes)
        .await
        .expect_err("malformed bytes were accepted")
}

/// Sends `bytes` as the request message of `path` (as the one message of
/// a client stream when `client_streaming`); the reply is not decoded.
pub async fn call_bytes(
    channel: Authed,
    path: &str,
    client_streaming: bool,
    bytes: Vec<u8>,
) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path: http::uri::PathAndQuery = path.parse().unwrap();
    if client_streaming {
        grpc.client_streaming(
            tonic::Request::new(tokio_stream::iter(vec![bytes])),
            path,
            RawCodec,
        )
        .await
        .map(|_| ())
    } else {
        grpc.unary(tonic::Request::new(bytes), path, RawCodec)
            .await
            .map(|_| ())
    }
}

/// Sends bytes as they are; ignores what comes back.
#[derive(Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        use bytes::BufMut;
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = ();
    type Error = Status;
    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<()>, Status> {
        use bytes::Buf;
        let n = buf.remaining();
        buf.advance(n);
        Ok(Some(()))
    }
}
