//! The aggregator's audit trail: its records and the check of their chain.

use jixiao_proto::types::{
    ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
    VerifyAuditChainResponse,
};
use jixiao_runtime::{Error, Principal, audit};

use crate::api::AggregatorApi;

impl AggregatorApi {
    pub(crate) async fn list_audit_records(
        &self,
        p: Principal,
        req: ListAuditRecordsRequest,
    ) -> Result<ListAuditRecordsResponse, Error> {
        audit::list_for_readers(&self.db.read, &p, &req).await
    }

    pub(crate) async fn verify_audit_chain(
        &self,
        p: Principal,
        _req: VerifyAuditChainRequest,
    ) -> Result<VerifyAuditChainResponse, Error> {
        audit::verify_for_readers(&self.db.read, &p).await
    }
}
