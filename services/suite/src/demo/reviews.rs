//! Survey responses, portal votes and mutual ratings.

use jixiao_proto::reviews::{
    Answer, Campaign, CampaignMode, Channel, CreateCampaignRequest, MutualRating,
    PushResponsesRequest, PushVotesRequest, Question, SubmitMutualRatingRequest, SurveyResponse,
    Vote, reviews_service_client::ReviewsServiceClient,
};
use jixiao_runtime::Role;
use rand::Rng;

use super::{BATCH, CYCLE, DAY, Demo, GroupSpec, Step, YEAR, ts, year};
use crate::client::failed;

impl Demo {
    /// Survey responses streamed by the survey firm, votes pushed by the
    /// government portal, and the units' ratings of each other.
    pub(super) async fn reviews(
        &self,
        groups: &[GroupSpec],
        on: &mut impl FnMut(Step),
    ) -> Result<(usize, usize, usize), String> {
        let mut office = ReviewsServiceClient::new(self.office());
        let total: usize = groups
            .iter()
            .map(|g| g.units.len() * g.responses_per_unit)
            .sum();
        let (mut sent, mut votes, mut ratings) = (0, 0, 0);
        for g in groups {
            for (id, mode, platform) in [
                ("survey", CampaignMode::RawResponses, "survey-firm"),
                ("portal", CampaignMode::OnlineVotes, "gov-portal"),
            ] {
                office
                    .create_campaign(CreateCampaignRequest {
                        parent: format!("cycles/{CYCLE}"),
                        campaign_id: format!("{id}-{}", g.id),
                        campaign: Some(Campaign {
                            group: format!("cycles/{CYCLE}/groups/{}", g.id),
                            title: format!(
                                "{YEAR}年度{}{}",
                                g.name,
                                if id == "survey" {
                                    "群众满意度调查"
                                } else {
                                    "网上评议"
                                }
                            ),
                            mode: mode as i32,
                            platforms: vec![platform.into()],
                            questions: if mode == CampaignMode::RawResponses {
                                year::QUESTIONS
                                    .iter()
                                    .map(|(id, text)| Question {
                                        id: id.to_string(),
                                        text: text.to_string(),
                                    })
                                    .collect()
                            } else {
                                Vec::new()
                            },
                            open_time: ts(self.now - 90 * DAY),
                            close_time: ts(self.now + 30 * DAY),
                            ..Default::default()
                        }),
                        request_id: format!("demo-campaign-{id}-{}", g.id),
                    })
                    .await
                    .map_err(failed(format!("campaign {id}-{}", g.id)))?;
            }
            sent += self.survey(g, sent, total, on).await?;
            votes += self.votes(g).await?;
            for rater in g.units {
                let mut client = ReviewsServiceClient::new(self.unit(rater.id));
                for ratee in g.units.iter().filter(|u| u.id != rater.id) {
                    client
                        .submit_mutual_rating(SubmitMutualRatingRequest {
                            parent: format!("cycles/{CYCLE}"),
                            rating: Some(MutualRating {
                                rater: format!("units/{}", rater.id),
                                ratee: format!("units/{}", ratee.id),
                                grade: year::grade(rater.id, ratee.id).into(),
                                ..Default::default()
                            }),
                            request_id: format!("demo-rating-{}-{}", rater.id, ratee.id),
                        })
                        .await
                        .map_err(failed(format!("rating of {} by {}", ratee.id, rater.id)))?;
                    ratings += 1;
                }
            }
        }
        Ok((sent, votes, ratings))
    }

    /// Streams one group's survey responses in batches; returns how many.
    async fn survey(
        &self,
        g: &GroupSpec,
        before: usize,
        total: usize,
        on: &mut impl FnMut(Step),
    ) -> Result<usize, String> {
        let campaign = format!("cycles/{CYCLE}/campaigns/survey-{}", g.id);
        let mut responses = Vec::with_capacity(g.units.len() * g.responses_per_unit);
        for u in g.units {
            let mix = year::Mix::survey(u.id);
            let mut rng = year::stream(u.id, "responses");
            for n in 0..g.responses_per_unit {
                let channel = match rng.random_range(0..20) {
                    0..10 => Channel::Phone,
                    10..17 => Channel::Online,
                    _ => Channel::InPerson,
                };
                responses.push(SurveyResponse {
                    response_id: format!("xm{YEAR}-{}-{n:05}", u.id),
                    unit: format!("units/{}", u.id),
                    category: year::category(&mut rng).into(),
                    channel: channel as i32,
                    answer_time: ts(self.now - 60 * DAY + (n as i64) * 97_000),
                    answers: year::QUESTIONS
                        .iter()
                        .map(|(q, _)| Answer {
                            question: q.to_string(),
                            answer: mix.answer(&mut rng).into(),
                        })
                        .collect(),
                    respondent: String::new(),
                });
            }
        }
        let planted = super::quality::planted_survey(g.id, &responses, self.now);
        responses.extend(planted);
        let count = responses.len();
        let mut batches = Vec::new();
        while !responses.is_empty() {
            let rest = responses.split_off(responses.len().min(BATCH));
            batches.push(PushResponsesRequest {
                campaign: campaign.clone(),
                responses: std::mem::replace(&mut responses, rest),
            });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let mut client = ReviewsServiceClient::new(self.as_principal(
            "survey-firm",
            &[Role::SurveyPlatform],
            None,
        ))
        .max_encoding_message_size(16 * 1024 * 1024);
        let call = tokio::spawn(async move {
            client
                .stream_responses(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        let mut sent = before;
        for batch in batches {
            sent += batch.responses.len();
            if tx.send(batch).await.is_err() {
                break;
            }
            on(Step::Pushed {
                sent,
                total: total.max(sent),
            });
        }
        drop(tx);
        let summary = call
            .await
            .map_err(|e| format!("survey stream task: {e}"))?
            .map_err(failed(format!("survey responses of {}", g.id)))?
            .into_inner();
        if summary.accepted as usize + summary.duplicates as usize != count {
            return Err(format!(
                "survey of {}: {} accepted, {} duplicates, {} rejected of {count} (first: {:?})",
                g.id,
                summary.accepted,
                summary.duplicates,
                summary.rejected.len(),
                summary.rejected.first()
            ));
        }
        Ok(count)
    }

    /// Portal votes: voters from one pool of citizens; some vote twice for
    /// the same unit and only their latest vote counts.
    async fn votes(&self, g: &GroupSpec) -> Result<usize, String> {
        let mut portal = ReviewsServiceClient::new(self.as_principal(
            "gov-portal",
            &[Role::SurveyPlatform],
            None,
        ));
        let mut votes = Vec::new();
        for u in g.units {
            let mix = year::Mix::portal(u.id);
            let mut rng = year::stream(u.id, "votes");
            for n in 0..g.votes_per_unit {
                votes.push(Vote {
                    vote_id: format!("portal-{}-{n:04}", u.id),
                    voter: format!("citizen-{:05}", rng.random_range(0..40_000)),
                    unit: format!("units/{}", u.id),
                    answer: mix.answer(&mut rng).into(),
                    cast_time: ts(self.now - 45 * DAY + (n as i64) * 600_000),
                });
            }
        }
        let count = votes.len();
        for chunk in votes.chunks(1000) {
            portal
                .push_votes(PushVotesRequest {
                    campaign: format!("cycles/{CYCLE}/campaigns/portal-{}", g.id),
                    votes: chunk.to_vec(),
                })
                .await
                .map_err(failed(format!("votes of {}", g.id)))?;
        }
        Ok(count)
    }
}
