//! The demo year (`jixiao demo`) loaded through the public RPCs on SQLite
//! and PostgreSQL: it publishes, both tables are the same digit for digit
//! on every run and database (the data comes from fixed seeds), the
//! districts' numbers are plausible by DOMAIN.md §9, and the stories the
//! demo tells (a late plan, contests, rectification) reach the feedback.

use std::str::FromStr;

use jixiao::{Target, demo, table};
use jixiao_proto::aggregator::{
    GetFeedbackRequest, aggregator_service_client::AggregatorServiceClient,
};
use jixiao_runtime::TokenKey;
use jixiao_testkit::{Backend, Options, Suite, on_both_databases};
use rust_decimal::Decimal;

/// rank unit indicator survey online mutual review deductions credits
/// adjustment composite, as published.
const DISTRICTS: [&str; 6] = [
    "1 xiangan 54.909 27.189 4.247 4.333 35.769 4.300 2.200 -2.100 88.578",
    "2 siming 52.123 25.861 4.289 3.667 33.817 4.500 1.500 -3.000 82.940",
    "3 tongan 52.172 26.312 4.138 3.333 33.783 5.600 0.700 -4.900 81.055",
    "4 huli 51.114 26.371 4.293 3.000 33.664 6.300 1.700 -4.600 80.178",
    "5 haicang 50.963 24.162 3.767 4.333 32.262 4.300 0.400 -3.900 79.325",
    "6 jimei 47.606 23.276 4.161 3.333 30.770 3.000 1.900 -1.100 77.276",
];

const DEPARTMENTS: [&str; 10] = [
    "1 stats 52.312 27.156 3.692 3.857 34.705 3.000 1.500 -1.500 85.517",
    "2 approval 54.108 27.427 4.046 4.000 35.473 5.000 0.700 -4.300 85.281",
    "3 commerce 50.333 27.160 4.387 3.857 35.404 4.000 0.700 -3.300 82.437",
    "4 housing 53.261 22.891 4.124 3.714 30.729 4.000 0.700 -3.300 80.690",
    "5 market 48.730 25.993 4.179 3.571 33.743 4.500 1.200 -3.300 79.173",
    "6 fgw 51.925 25.002 4.270 2.286 31.558 5.500 0.700 -4.800 78.683",
    "7 transport 46.146 25.752 3.778 3.571 33.101 3.500 1.400 -2.100 77.147",
    "8 hrss 43.349 24.821 4.189 3.857 32.867 3.500 1.700 -1.800 74.416",
    "9 finance 44.561 24.195 4.102 3.857 32.154 4.000 0.700 -3.300 73.415",
    "10 ecology 41.621 23.783 4.369 3.857 32.009 4.000 0.700 -3.300 70.330",
];

/// The SHA-256 digests of the districts' and the departments' publications
/// (of their canonical inputs documents): the demo names what it creates
/// and nothing in the inputs is a wall-clock time, so the same year gives
/// the same digests on every run, every machine and both databases.
const DIGESTS: [&str; 2] = [
    "c3ff94e495c2393bc8af80eb21ec2f2632084392e21f91675425333009d7f50b",
    "4cd0e19c50a90b12666da721aa15caa776d67d0b14db4bec45fc1b03557fa1b9",
];

/// A published table as lines of the columns above.
fn lines(t: &table::Table) -> Vec<String> {
    t.rows
        .iter()
        .map(|r| {
            let mut cells = vec![r[0].as_str(), r[1].as_str()];
            cells.extend(r[3..12].iter().map(String::as_str));
            cells.join(" ")
        })
        .collect()
}

fn column(t: &table::Table, name: &str) -> Vec<Decimal> {
    let i = t.headers.iter().position(|h| *h == name).unwrap();
    t.rows
        .iter()
        .map(|r| Decimal::from_str(&r[i]).unwrap())
        .collect()
}

fn within(values: &[Decimal], lo: i64, hi: i64) -> bool {
    values
        .iter()
        .all(|v| *v >= Decimal::from(lo) && *v <= Decimal::from(hi))
}

async fn the_demo_year_publishes_the_same_plausible_tables_every_time(backend: Backend) {
    let key = TokenKey::from_hex(&TokenKey::generate_hex()).unwrap();
    let suite = Suite::start_with(
        backend,
        Options {
            targets: Target::ALL.to_vec(),
            key: Some(key.clone()),
            peers: Vec::new(),
            tls: None,
            otlp_endpoint: None,
        },
    )
    .await;
    let mut steps = Vec::new();
    let published = demo::load(&suite.url(), &key, |s| {
        if let demo::Step::Done(line) = s {
            steps.push(line);
        }
    })
    .await
    .expect("the demo year loads and publishes");
    assert!(
        steps.iter().any(|s| s.contains("34420 survey responses")),
        "{steps:?}"
    );
    // The planted straight-lined batch (1,420 identical answers) was
    // flagged and excluded with the unit's other straight-lined responses.
    assert!(
        steps.iter().any(|s| s.starts_with("survey quality:")
            && s.contains("1510 of 2920 responses")
            && s.contains("1510 responses excluded")),
        "{steps:?}"
    );
    // The planted inflated figure and shared file were flagged (the load
    // fails otherwise) and resolved before publication.
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("data quality:") && s.contains("robust z-score")),
        "{steps:?}"
    );

    let districts = table::standings(&published[0].publication.rows);
    let departments = table::standings(&published[1].publication.rows);
    assert_eq!(lines(&districts), DISTRICTS);
    assert_eq!(lines(&departments), DEPARTMENTS);
    let digests: Vec<&str> = published
        .iter()
        .map(|p| p.publication.digest.as_str())
        .collect();
    assert_eq!(digests, DIGESTS);
    // DOMAIN.md §9: what district numbers look like.
    assert!(within(&column(&districts, "composite"), 75, 90));
    assert!(within(&column(&districts, "indicator"), 45, 55));
    assert!(within(&column(&districts, "review"), 30, 36));
    assert!(within(&column(&districts, "deductions"), 3, 8));

    // tong'an's late plan and the findings it must rectify reach its feedback.
    let feedback = AggregatorServiceClient::new(suite.unit("tongan"))
        .get_feedback(GetFeedbackRequest {
            group: "cycles/2026/groups/districts".into(),
            unit: "units/tongan".into(),
        })
        .await
        .expect("own feedback")
        .into_inner();
    assert!(feedback.published);
    assert_eq!(feedback.timeliness_problems.len(), 1, "{feedback:?}");
    assert!(feedback.timeliness_problems[0].contains("plan submitted late"));
    assert!(!feedback.to_rectify.is_empty(), "{feedback:?}");
    let huli = AggregatorServiceClient::new(suite.unit("huli"))
        .get_feedback(GetFeedbackRequest {
            group: "cycles/2026/groups/districts".into(),
            unit: "units/huli".into(),
        })
        .await
        .expect("huli's feedback")
        .into_inner();
    assert!(
        huli.data_quality
            .iter()
            .any(|l| l.contains("FOREIGN_TRADE") && l.contains("PEER_OUTLIER (CORRECTED")),
        "{huli:?}"
    );
    assert_eq!(feedback.losses.len(), 7);
    // Credits say what was found and what it earned.
    assert!(!feedback.credits.is_empty());
    assert!(
        feedback
            .credits
            .iter()
            .all(
                |c| (c.starts_with("problem_found: ") || c.starts_with("staff_action: "))
                    && c.contains(" (+0.")
            ),
        "{:?}",
        feedback.credits
    );
    suite.stop().await;
}

on_both_databases!(the_demo_year_publishes_the_same_plausible_tables_every_time);
