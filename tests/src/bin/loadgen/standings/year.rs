//! The year behind the standings benchmark's table: everything besides
//! the survey.

use std::time::{Duration, Instant};

use futures::StreamExt;
use jixiao_proto::{
    indicators::{EnterAssessedScoreRequest, indicators_service_client::IndicatorsServiceClient},
    plans::{
        Direction, Indicator, Phase, ReplaceFrameworkRequest, ScoringMethod, SetCyclePhaseRequest,
        plans_service_client::PlansServiceClient,
    },
    reviews::{
        Campaign, CampaignMode, CreateCampaignRequest, MutualRating, PushVotesRequest,
        SubmitMutualRatingRequest, Vote, reviews_service_client::ReviewsServiceClient,
    },
};
use jixiao_runtime::{Role, TokenKey};
use tonic::transport::Channel as Chan;

use super::{GROUP, status};
use crate::{authed, unit_id};

/// Runs `f` over `items` with `n` calls in flight.
async fn concurrently<T, F, Fut>(n: usize, items: Vec<T>, f: F) -> Result<(), String>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let results: Vec<Result<(), String>> = futures::stream::iter(items.into_iter().map(f))
        .buffer_unordered(n)
        .collect()
        .await;
    results.into_iter().collect()
}

/// The time each step of the setup took, for telling a step whose cost
/// grows faster than the group from the others.
#[derive(Default)]
pub(super) struct Steps(Vec<(&'static str, Duration)>);

impl Steps {
    pub(super) fn done(&mut self, step: &'static str, since: &mut Instant) {
        self.0.push((step, since.elapsed()));
        *since = Instant::now();
    }

    pub(super) fn describe(&self) -> String {
        self.0
            .iter()
            .map(|(step, d)| format!("{step} {:.1} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Everything besides the survey: a framework with one assessed indicator,
/// an assessed score, a vote and a mutual rating for every unit. `channel`
/// reaches plans and indicators, `reviews` the reviews service.
pub(super) async fn complete_year(
    channel: &Chan,
    reviews: &Chan,
    key: &TokenKey,
    units: usize,
    steps: &mut Steps,
) -> Result<(), String> {
    let mut since = Instant::now();
    let office = authed(channel, key, "office", &[Role::Office]);
    PlansServiceClient::new(office.clone())
        .replace_framework(ReplaceFrameworkRequest {
            name: format!("{GROUP}/framework"),
            indicators: vec![Indicator {
                code: "KEY_WORK".into(),
                display_name: "重点工作".into(),
                measurement_unit: "分".into(),
                direction: Direction::HigherIsBetter as i32,
                weight: Some(jixiao_proto::Decimal { value: "60".into() }),
                method: ScoringMethod::Assessed as i32,
                plausible_min: Some(jixiao_proto::Decimal { value: "0".into() }),
                plausible_max: Some(jixiao_proto::Decimal { value: "60".into() }),
                provider: format!("units/{}", unit_id(0)),
                ..Default::default()
            }],
            request_id: String::new(),
        })
        .await
        .map_err(status)?;
    PlansServiceClient::new(office.clone())
        .set_cycle_phase(SetCyclePhaseRequest {
            name: "cycles/2026".into(),
            phase: Phase::Execution as i32,
        })
        .await
        .map_err(status)?;
    ReviewsServiceClient::new(authed(reviews, key, "office", &[Role::Office]))
        .create_campaign(CreateCampaignRequest {
            parent: "cycles/2026".into(),
            campaign_id: "portal".into(),
            campaign: Some(Campaign {
                group: GROUP.into(),
                title: "portal".into(),
                mode: CampaignMode::OnlineVotes as i32,
                platforms: vec!["loadgen".into()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map_err(status)?;
    steps.done("framework, phase and campaign", &mut since);
    let answers = ["satisfied", "basically_satisfied", "dissatisfied"];
    let mut platform =
        ReviewsServiceClient::new(authed(reviews, key, "loadgen", &[Role::SurveyPlatform]));
    // In batches no larger than the service takes.
    for first in (0..units).step_by(super::MAX_BATCH) {
        platform
            .push_votes(PushVotesRequest {
                campaign: "cycles/2026/campaigns/portal".into(),
                votes: (first..units.min(first + super::MAX_BATCH))
                    .map(|u| Vote {
                        vote_id: format!("v{u}"),
                        voter: format!("voter-{u}"),
                        unit: format!("units/{}", unit_id(u)),
                        answer: answers[u % 3].into(),
                        cast_time: Some(jixiao_runtime::time::timestamp(crate::ANSWER_MS)),
                    })
                    .collect(),
            })
            .await
            .map_err(status)?;
    }
    steps.done("votes", &mut since);
    let evaluator = IndicatorsServiceClient::new(authed(channel, key, "eval", &[Role::Evaluator]));
    concurrently(16, (0..units).collect(), |u| {
        let mut client = evaluator.clone();
        async move {
            client
                .enter_assessed_score(EnterAssessedScoreRequest {
                    parent: "cycles/2026".into(),
                    unit: format!("units/{}", unit_id(u)),
                    indicator: "KEY_WORK".into(),
                    score: Some(jixiao_proto::Decimal {
                        value: format!("{}.{}", 45 + u % 11, u % 1000),
                    }),
                    justification: "年度重点工作考评".into(),
                    request_id: String::new(),
                })
                .await
                .map(|_| ())
                .map_err(status)
        }
    })
    .await?;
    steps.done("assessed scores", &mut since);
    let grades = ["excellent", "good", "fair"];
    concurrently(16, (0..units).collect(), |u| {
        let rater = unit_id(u);
        let token = key
            .issue(&rater, &[Role::Unit], Some(&rater), 3600)
            .expect("token");
        let mut client =
            ReviewsServiceClient::new(tonic::service::interceptor::InterceptedService::new(
                reviews.clone(),
                jixiao_testkit::Bearer::new(&token).expect("ascii token"),
            ));
        async move {
            client
                .submit_mutual_rating(SubmitMutualRatingRequest {
                    parent: "cycles/2026".into(),
                    rating: Some(MutualRating {
                        rater: format!("units/{rater}"),
                        ratee: format!("units/{}", unit_id((u + 1) % units)),
                        grade: grades[u % 3].into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .map(|_| ())
                .map_err(status)
        }
    })
    .await?;
    steps.done("mutual ratings", &mut since);
    Ok(())
}
