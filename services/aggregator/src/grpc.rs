//! The tonic adapter: one line per RPC. Handlers live by resource
//! (`standings`, `publications`, `feedback`, `archive`, `audit`);
//! `GetStandings` is served from pre-encoded bytes by `fast` before it
//! reaches this adapter.

use jixiao_proto::{
    aggregator::{
        Archive, Distribution, Feedback, GetArchiveRequest, GetDistributionRequest,
        GetFeedbackRequest, GetPublicationInputsRequest, GetPublicationRequest,
        GetStandingsRequest, ListPublicationsRequest, ListPublicationsResponse, Publication,
        PublicationInputs, PublishResultsRequest, Standings, VerifyPublicationRequest,
        VerifyPublicationResponse, WatchStandingsRequest,
        aggregator_service_server::AggregatorService,
    },
    types::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
        VerifyAuditChainResponse,
    },
};
use jixiao_runtime::{
    checked,
    deadline::Deadline,
    error::{Reply, reply},
    principal,
};
use tonic::Request;

use crate::{DOMAIN, api::AggregatorApi, standings::StandingsStream};

#[tonic::async_trait]
impl AggregatorService for AggregatorApi {
    async fn get_standings(&self, req: Request<GetStandingsRequest>) -> Reply<Standings> {
        checked!(DOMAIN, self, req, get_standings)
    }

    type WatchStandingsStream = StandingsStream;

    async fn watch_standings(&self, req: Request<WatchStandingsRequest>) -> Reply<StandingsStream> {
        // The caller's deadline bounds the wait for `min_service_revisions`.
        let (p, deadline) = (principal(&req)?, Deadline::of(&req));
        reply(
            DOMAIN,
            self.watch_standings(p, req.into_inner(), deadline).await,
        )
    }
    async fn publish_results(&self, req: Request<PublishResultsRequest>) -> Reply<Publication> {
        checked!(DOMAIN, self, req, publish_results)
    }
    async fn get_publication(&self, req: Request<GetPublicationRequest>) -> Reply<Publication> {
        checked!(DOMAIN, self, req, get_publication)
    }
    async fn list_publications(
        &self,
        req: Request<ListPublicationsRequest>,
    ) -> Reply<ListPublicationsResponse> {
        checked!(DOMAIN, self, req, list_publications)
    }
    async fn verify_publication(
        &self,
        req: Request<VerifyPublicationRequest>,
    ) -> Reply<VerifyPublicationResponse> {
        checked!(DOMAIN, self, req, verify_publication)
    }
    async fn get_publication_inputs(
        &self,
        req: Request<GetPublicationInputsRequest>,
    ) -> Reply<PublicationInputs> {
        checked!(DOMAIN, self, req, get_publication_inputs)
    }
    async fn get_feedback(&self, req: Request<GetFeedbackRequest>) -> Reply<Feedback> {
        checked!(DOMAIN, self, req, get_feedback)
    }
    async fn get_archive(&self, req: Request<GetArchiveRequest>) -> Reply<Archive> {
        checked!(DOMAIN, self, req, get_archive)
    }
    async fn get_distribution(&self, req: Request<GetDistributionRequest>) -> Reply<Distribution> {
        checked!(DOMAIN, self, req, get_distribution)
    }
    async fn list_audit_records(
        &self,
        req: Request<ListAuditRecordsRequest>,
    ) -> Reply<ListAuditRecordsResponse> {
        checked!(DOMAIN, self, req, list_audit_records)
    }
    async fn verify_audit_chain(
        &self,
        req: Request<VerifyAuditChainRequest>,
    ) -> Reply<VerifyAuditChainResponse> {
        checked!(DOMAIN, self, req, verify_audit_chain)
    }
}
