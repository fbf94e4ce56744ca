//! The tonic adapter: one line per RPC. Handlers live by resource
//! (`campaigns`, `responses`, `results`, `ratings`, `scores`).

use jixiao_proto::{
    reviews::{
        AcceptInsufficientSampleRequest, Campaign, CreateCampaignRequest, GetCampaignRequest,
        GetGroupReviewScoresRequest, GroupReviewScores, ListCampaignsRequest,
        ListCampaignsResponse, ListMutualRatingsRequest, ListMutualRatingsResponse,
        ListSurveyFlagsRequest, ListSurveyFlagsResponse, MutualRating, PushResponsesRequest,
        PushResponsesResponse, PushUnitResultsRequest, PushUnitResultsResponse, PushVotesRequest,
        PushVotesResponse, ResolveSurveyFlagRequest, SubmitMutualRatingRequest, SurveyFlag,
        UnitReviewScore, WatchReviewChangesRequest, reviews_service_server::ReviewsService,
    },
    types::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
        VerifyAuditChainResponse,
    },
};
use jixiao_runtime::{audit, auth::principal, checked, error::Reply, error::reply};
use tonic::{Request, Streaming};

use futures::StreamExt;

use crate::{DOMAIN, api::ReviewsApi, scores::ChangeStream, wire};

#[tonic::async_trait]
impl ReviewsService for ReviewsApi {
    async fn create_campaign(&self, req: Request<CreateCampaignRequest>) -> Reply<Campaign> {
        checked!(DOMAIN, self, req, create_campaign)
    }
    async fn get_campaign(&self, req: Request<GetCampaignRequest>) -> Reply<Campaign> {
        checked!(DOMAIN, self, req, get_campaign)
    }
    async fn list_campaigns(
        &self,
        req: Request<ListCampaignsRequest>,
    ) -> Reply<ListCampaignsResponse> {
        checked!(DOMAIN, self, req, list_campaigns)
    }
    // The server decodes these two through `wire` (see `server.rs`); the
    // generated types' path converts.
    async fn stream_responses(
        &self,
        req: Request<Streaming<PushResponsesRequest>>,
    ) -> Reply<PushResponsesResponse> {
        let p = principal(&req)?;
        let batches = req.into_inner().map(|b| b.map(wire::Batch::from));
        reply(DOMAIN, self.stream(p, batches).await)
    }
    async fn push_responses(
        &self,
        req: Request<PushResponsesRequest>,
    ) -> Reply<PushResponsesResponse> {
        let p = principal(&req)?;
        reply(DOMAIN, self.push_batch(&p, req.into_inner().into()).await)
    }
    async fn push_unit_results(
        &self,
        req: Request<PushUnitResultsRequest>,
    ) -> Reply<PushUnitResultsResponse> {
        checked!(DOMAIN, self, req, push_unit_results)
    }
    async fn list_survey_flags(
        &self,
        req: Request<ListSurveyFlagsRequest>,
    ) -> Reply<ListSurveyFlagsResponse> {
        checked!(DOMAIN, self, req, list_survey_flags)
    }
    async fn resolve_survey_flag(
        &self,
        req: Request<ResolveSurveyFlagRequest>,
    ) -> Reply<SurveyFlag> {
        checked!(DOMAIN, self, req, resolve_survey_flag)
    }
    async fn push_votes(&self, req: Request<PushVotesRequest>) -> Reply<PushVotesResponse> {
        checked!(DOMAIN, self, req, push_votes)
    }
    async fn submit_mutual_rating(
        &self,
        req: Request<SubmitMutualRatingRequest>,
    ) -> Reply<MutualRating> {
        checked!(DOMAIN, self, req, submit_rating)
    }
    async fn list_mutual_ratings(
        &self,
        req: Request<ListMutualRatingsRequest>,
    ) -> Reply<ListMutualRatingsResponse> {
        checked!(DOMAIN, self, req, list_ratings)
    }
    async fn accept_insufficient_sample(
        &self,
        req: Request<AcceptInsufficientSampleRequest>,
    ) -> Reply<UnitReviewScore> {
        checked!(DOMAIN, self, req, accept_sample)
    }
    async fn get_group_review_scores(
        &self,
        req: Request<GetGroupReviewScoresRequest>,
    ) -> Reply<GroupReviewScores> {
        checked!(DOMAIN, self, req, group_scores)
    }

    type WatchReviewChangesStream = ChangeStream;

    async fn watch_review_changes(
        &self,
        req: Request<WatchReviewChangesRequest>,
    ) -> Reply<ChangeStream> {
        let p = principal(&req)?;
        reply(DOMAIN, self.watch(p, &req.get_ref().cycle).await)
    }
    async fn list_audit_records(
        &self,
        req: Request<ListAuditRecordsRequest>,
    ) -> Reply<ListAuditRecordsResponse> {
        let p = principal(&req)?;
        reply(
            DOMAIN,
            audit::list_for_readers(&self.db.read, &p, req.get_ref()).await,
        )
    }
    async fn verify_audit_chain(
        &self,
        req: Request<VerifyAuditChainRequest>,
    ) -> Reply<VerifyAuditChainResponse> {
        let p = principal(&req)?;
        reply(DOMAIN, audit::verify_for_readers(&self.db.read, &p).await)
    }
}
