//! The tonic adapter: one line per RPC. Handlers live by resource
//! (`values`, `assessments`, `scores`, `progress`).

use jixiao_proto::{
    indicators::{
        AssessedScore, BatchReportValuesRequest, BatchReportValuesResponse, CorrectValueRequest,
        EnterAssessedScoreRequest, GetGroupScoresRequest, GetProgressRequest, GetProgressResponse,
        GetProviderCompletenessRequest, GetProviderCompletenessResponse, GetValueRequest,
        GroupScores, IndicatorValue, ListValueFlagsRequest, ListValueFlagsResponse,
        ListValueHistoryRequest, ListValueHistoryResponse, ListValuesRequest, ListValuesResponse,
        ReportValueRequest, ResolveValueFlagRequest, ValueFlag, WatchScoreChangesRequest,
        indicators_service_server::IndicatorsService,
    },
    types::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
        VerifyAuditChainResponse,
    },
};
use jixiao_runtime::{audit, auth::principal, checked, error::Reply, error::reply};
use tonic::Request;

use crate::{DOMAIN, api::IndicatorsApi, scores::ChangeStream};

#[tonic::async_trait]
impl IndicatorsService for IndicatorsApi {
    async fn report_value(&self, req: Request<ReportValueRequest>) -> Reply<IndicatorValue> {
        checked!(DOMAIN, self, req, report_value)
    }
    async fn batch_report_values(
        &self,
        req: Request<BatchReportValuesRequest>,
    ) -> Reply<BatchReportValuesResponse> {
        checked!(DOMAIN, self, req, batch_report)
    }
    async fn correct_value(&self, req: Request<CorrectValueRequest>) -> Reply<IndicatorValue> {
        checked!(DOMAIN, self, req, correct_value)
    }
    async fn get_value(&self, req: Request<GetValueRequest>) -> Reply<IndicatorValue> {
        checked!(DOMAIN, self, req, get_value)
    }
    async fn list_values(&self, req: Request<ListValuesRequest>) -> Reply<ListValuesResponse> {
        checked!(DOMAIN, self, req, list_values)
    }
    async fn list_value_history(
        &self,
        req: Request<ListValueHistoryRequest>,
    ) -> Reply<ListValueHistoryResponse> {
        checked!(DOMAIN, self, req, history)
    }
    async fn enter_assessed_score(
        &self,
        req: Request<EnterAssessedScoreRequest>,
    ) -> Reply<AssessedScore> {
        checked!(DOMAIN, self, req, enter_assessed)
    }
    async fn get_progress(&self, req: Request<GetProgressRequest>) -> Reply<GetProgressResponse> {
        checked!(DOMAIN, self, req, progress)
    }
    async fn get_provider_completeness(
        &self,
        req: Request<GetProviderCompletenessRequest>,
    ) -> Reply<GetProviderCompletenessResponse> {
        checked!(DOMAIN, self, req, completeness)
    }
    async fn get_group_scores(&self, req: Request<GetGroupScoresRequest>) -> Reply<GroupScores> {
        checked!(DOMAIN, self, req, group_scores)
    }

    async fn resolve_value_flag(&self, req: Request<ResolveValueFlagRequest>) -> Reply<ValueFlag> {
        checked!(DOMAIN, self, req, resolve_value_flag)
    }
    async fn list_value_flags(
        &self,
        req: Request<ListValueFlagsRequest>,
    ) -> Reply<ListValueFlagsResponse> {
        checked!(DOMAIN, self, req, list_value_flags)
    }

    type WatchScoreChangesStream = ChangeStream;

    async fn watch_score_changes(
        &self,
        req: Request<WatchScoreChangesRequest>,
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
