//! The tonic adapter: one line per RPC. Handlers live by resource
//! (`inspections`, `findings`, `items`, `documents`, `adjustments`).

use jixiao_proto::{
    inspections::{
        ConfirmFindingRequest, ContestFindingRequest, CreateInspectionRequest,
        CreateSelfInspectionItemRequest, DecideContestRequest, Document, Finding,
        GetGroupAdjustmentsRequest, GetInspectionRequest, GroupAdjustments, Inspection,
        IssueDocumentRequest, ListDocumentsRequest, ListDocumentsResponse, ListInspectionsRequest,
        ListInspectionsResponse, ListOverdueRectificationsRequest,
        ListOverdueRectificationsResponse, ListSelfInspectionItemsRequest,
        ListSelfInspectionItemsResponse, RecordSpotCheckRequest, ReportRectificationRequest,
        ReviewRectificationRequest, SelfInspectionItem, VerifySelfInspectionItemRequest,
        WatchAdjustmentChangesRequest, inspections_service_server::InspectionsService,
    },
    types::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
        VerifyAuditChainResponse,
    },
};
use jixiao_runtime::{audit, auth::principal, checked, error::Reply, error::reply};
use tonic::Request;

use crate::{DOMAIN, adjustments::ChangeStream, api::InspectionsApi};

#[tonic::async_trait]
impl InspectionsService for InspectionsApi {
    async fn create_inspection(&self, req: Request<CreateInspectionRequest>) -> Reply<Inspection> {
        checked!(DOMAIN, self, req, create_inspection)
    }
    async fn get_inspection(&self, req: Request<GetInspectionRequest>) -> Reply<Inspection> {
        checked!(DOMAIN, self, req, get_inspection)
    }
    async fn list_inspections(
        &self,
        req: Request<ListInspectionsRequest>,
    ) -> Reply<ListInspectionsResponse> {
        checked!(DOMAIN, self, req, list_inspections)
    }
    async fn record_spot_check(&self, req: Request<RecordSpotCheckRequest>) -> Reply<Inspection> {
        checked!(DOMAIN, self, req, record_spot_check)
    }
    async fn confirm_finding(&self, req: Request<ConfirmFindingRequest>) -> Reply<Finding> {
        checked!(DOMAIN, self, req, confirm)
    }
    async fn contest_finding(&self, req: Request<ContestFindingRequest>) -> Reply<Finding> {
        checked!(DOMAIN, self, req, contest)
    }
    async fn decide_contest(&self, req: Request<DecideContestRequest>) -> Reply<Finding> {
        checked!(DOMAIN, self, req, decide)
    }
    async fn report_rectification(
        &self,
        req: Request<ReportRectificationRequest>,
    ) -> Reply<Finding> {
        checked!(DOMAIN, self, req, report_rectification)
    }
    async fn review_rectification(
        &self,
        req: Request<ReviewRectificationRequest>,
    ) -> Reply<Finding> {
        checked!(DOMAIN, self, req, review_rectification)
    }
    async fn list_overdue_rectifications(
        &self,
        req: Request<ListOverdueRectificationsRequest>,
    ) -> Reply<ListOverdueRectificationsResponse> {
        checked!(DOMAIN, self, req, overdue)
    }
    async fn create_self_inspection_item(
        &self,
        req: Request<CreateSelfInspectionItemRequest>,
    ) -> Reply<SelfInspectionItem> {
        checked!(DOMAIN, self, req, create_item)
    }
    async fn verify_self_inspection_item(
        &self,
        req: Request<VerifySelfInspectionItemRequest>,
    ) -> Reply<SelfInspectionItem> {
        checked!(DOMAIN, self, req, verify_item)
    }
    async fn list_self_inspection_items(
        &self,
        req: Request<ListSelfInspectionItemsRequest>,
    ) -> Reply<ListSelfInspectionItemsResponse> {
        checked!(DOMAIN, self, req, list_items)
    }
    async fn issue_document(&self, req: Request<IssueDocumentRequest>) -> Reply<Document> {
        checked!(DOMAIN, self, req, issue_document)
    }
    async fn list_documents(
        &self,
        req: Request<ListDocumentsRequest>,
    ) -> Reply<ListDocumentsResponse> {
        checked!(DOMAIN, self, req, list_documents)
    }
    async fn get_group_adjustments(
        &self,
        req: Request<GetGroupAdjustmentsRequest>,
    ) -> Reply<GroupAdjustments> {
        checked!(DOMAIN, self, req, adjustments)
    }

    type WatchAdjustmentChangesStream = ChangeStream;

    async fn watch_adjustment_changes(
        &self,
        req: Request<WatchAdjustmentChangesRequest>,
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
