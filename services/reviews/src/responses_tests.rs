//! An exclusion recomputes what the ingest computed.

use jixiao_proto::reviews::{Answer, Channel, PushResponsesRequest, SurveyResponse};
use rust_decimal::Decimal;

use super::*;

fn ctx() -> CampaignCtx {
    let value = |code: &str, v: &str| {
        let d: Decimal = v.parse().unwrap();
        (code.to_string(), d, scoring::to_units(d))
    };
    CampaignCtx {
        name: "cycles/2026/campaigns/s".into(),
        cycle: "2026".into(),
        group: "g".into(),
        mode: CampaignMode::RawResponses,
        platforms: Default::default(),
        questions: vec!["q1".into(), "q2".into(), "q3".into()],
        open_ms: None,
        close_ms: Some(1_000_000_000),
        units: ["units/a".to_string()].into_iter().collect(),
        answer_values: vec![
            value("satisfied", "1"),
            value("basically_satisfied", "0.8"),
            value("dissatisfied", "0"),
        ],
        categories: vec!["residents".into()],
        screen: quality::Screen::of(&Default::default()),
    }
}

#[test]
fn an_exclusion_recomputes_what_the_ingest_computed() {
    let ctx = ctx();
    for answers in [
        vec![
            ("q1", "satisfied"),
            ("q2", "dont_know"),
            ("q3", "basically_satisfied"),
        ],
        vec![("q3", "dissatisfied"), ("q1", "basically_satisfied")],
        vec![("q2", "dont_know")],
        vec![
            ("q1", "basically_satisfied"),
            ("q2", "basically_satisfied"),
            ("q3", "satisfied"),
        ],
    ] {
        let r = SurveyResponse {
            response_id: "r1".into(),
            unit: "units/a".into(),
            category: "residents".into(),
            channel: Channel::Phone as i32,
            answer_time: Some(jixiao_runtime::time::timestamp(5_000)),
            answers: answers
                .iter()
                .map(|(q, a)| Answer {
                    question: q.to_string(),
                    answer: a.to_string(),
                })
                .collect(),
            respondent: String::new(),
        };
        let batch = crate::wire::Batch::from(PushResponsesRequest {
            campaign: String::new(),
            responses: vec![r],
        });
        let Ok(row) = prepare(&ctx, batch.responses().next().unwrap()) else {
            panic!("{answers:?} is a valid response");
        };
        assert_eq!(
            values_of(&ctx, &row.answers),
            (row.value_units, row.question_values.clone()),
            "{answers:?}"
        );
    }
}
