//! The tonic adapter: one line per RPC.

use jixiao_proto::{
    plans::{
        AmendPlanRequest, ApprovePlanRequest, CheckWriteWindowRequest, CheckWriteWindowResponse,
        CreateCycleRequest, CreateGroupRequest, CreateNoticeRequest, CreatePlanRequest,
        CreateUnitRequest, Cycle, DiffPlanVersionsRequest, DiffPlanVersionsResponse, Framework,
        GetCycleRequest, GetFrameworkRequest, GetGroupRequest, GetGroupTargetsRequest,
        GetPlanRequest, GetSchemeRequest, GetTimelinessReportRequest, GetUnitRequest,
        GrantLockExceptionRequest, Group, GroupTargets, ListCyclesRequest, ListCyclesResponse,
        ListGroupsRequest, ListGroupsResponse, ListLockExceptionsRequest,
        ListLockExceptionsResponse, ListNoticesRequest, ListNoticesResponse,
        ListPlanVersionsRequest, ListPlanVersionsResponse, ListPlansRequest, ListPlansResponse,
        ListUnitsRequest, ListUnitsResponse, LockException, Notice, Plan, PlanChange,
        ReplaceFrameworkRequest, ReturnPlanRequest, Scheme, SetCyclePhaseRequest,
        SubmitPlanRequest, TimelinessReport, Unit, UpdateCycleRequest, UpdateGroupRequest,
        UpdatePlanRequest, UpdateSchemeRequest, WatchPlanChangesRequest,
        plans_service_server::PlansService,
    },
    types::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
        VerifyAuditChainResponse,
    },
};
use jixiao_runtime::{
    Error,
    auth::principal,
    checked,
    error::{Reply, reply},
};
use tonic::Request;

use crate::{DOMAIN, api::*};

macro_rules! public_read {
    ($self:ident, $req:ident, $method:ident) => {{
        principal(&$req)?;
        reply(DOMAIN, $self.$method($req.into_inner()).await)
    }};
}

/// Calls whose authorisation depends on the request: the principal is
/// passed on and checked inside.
#[tonic::async_trait]
impl PlansService for PlansApi {
    async fn create_cycle(&self, req: Request<CreateCycleRequest>) -> Reply<Cycle> {
        checked!(DOMAIN, self, req, create_cycle)
    }
    async fn get_cycle(&self, req: Request<GetCycleRequest>) -> Reply<Cycle> {
        public_read!(self, req, get_cycle)
    }
    async fn list_cycles(&self, req: Request<ListCyclesRequest>) -> Reply<ListCyclesResponse> {
        public_read!(self, req, list_cycles)
    }
    async fn update_cycle(&self, req: Request<UpdateCycleRequest>) -> Reply<Cycle> {
        checked!(DOMAIN, self, req, update_cycle)
    }
    async fn set_cycle_phase(&self, req: Request<SetCyclePhaseRequest>) -> Reply<Cycle> {
        checked!(DOMAIN, self, req, set_cycle_phase)
    }
    async fn create_unit(&self, req: Request<CreateUnitRequest>) -> Reply<Unit> {
        checked!(DOMAIN, self, req, create_unit)
    }
    async fn get_unit(&self, req: Request<GetUnitRequest>) -> Reply<Unit> {
        public_read!(self, req, get_unit)
    }
    async fn list_units(&self, req: Request<ListUnitsRequest>) -> Reply<ListUnitsResponse> {
        public_read!(self, req, list_units)
    }
    async fn create_group(&self, req: Request<CreateGroupRequest>) -> Reply<Group> {
        checked!(DOMAIN, self, req, create_group)
    }
    async fn get_group(&self, req: Request<GetGroupRequest>) -> Reply<Group> {
        public_read!(self, req, get_group)
    }
    async fn list_groups(&self, req: Request<ListGroupsRequest>) -> Reply<ListGroupsResponse> {
        public_read!(self, req, list_groups)
    }
    async fn update_group(&self, req: Request<UpdateGroupRequest>) -> Reply<Group> {
        checked!(DOMAIN, self, req, update_group)
    }
    async fn get_scheme(&self, req: Request<GetSchemeRequest>) -> Reply<Scheme> {
        public_read!(self, req, get_scheme)
    }
    async fn update_scheme(&self, req: Request<UpdateSchemeRequest>) -> Reply<Scheme> {
        checked!(DOMAIN, self, req, update_scheme)
    }
    async fn replace_framework(&self, req: Request<ReplaceFrameworkRequest>) -> Reply<Framework> {
        checked!(DOMAIN, self, req, replace_framework)
    }
    async fn get_framework(&self, req: Request<GetFrameworkRequest>) -> Reply<Framework> {
        public_read!(self, req, get_framework)
    }
    async fn create_plan(&self, req: Request<CreatePlanRequest>) -> Reply<Plan> {
        checked!(DOMAIN, self, req, create_plan)
    }
    async fn get_plan(&self, req: Request<GetPlanRequest>) -> Reply<Plan> {
        checked!(DOMAIN, self, req, get_plan)
    }
    async fn list_plans(&self, req: Request<ListPlansRequest>) -> Reply<ListPlansResponse> {
        checked!(DOMAIN, self, req, list_plans)
    }
    async fn update_plan(&self, req: Request<UpdatePlanRequest>) -> Reply<Plan> {
        checked!(DOMAIN, self, req, update_plan)
    }
    async fn submit_plan(&self, req: Request<SubmitPlanRequest>) -> Reply<Plan> {
        checked!(DOMAIN, self, req, submit_plan)
    }
    async fn approve_plan(&self, req: Request<ApprovePlanRequest>) -> Reply<Plan> {
        checked!(DOMAIN, self, req, approve_plan)
    }
    async fn return_plan(&self, req: Request<ReturnPlanRequest>) -> Reply<Plan> {
        checked!(DOMAIN, self, req, return_plan)
    }
    async fn amend_plan(&self, req: Request<AmendPlanRequest>) -> Reply<Plan> {
        checked!(DOMAIN, self, req, amend_plan)
    }
    async fn get_group_targets(&self, req: Request<GetGroupTargetsRequest>) -> Reply<GroupTargets> {
        checked!(DOMAIN, self, req, group_targets)
    }
    async fn list_plan_versions(
        &self,
        req: Request<ListPlanVersionsRequest>,
    ) -> Reply<ListPlanVersionsResponse> {
        checked!(DOMAIN, self, req, list_plan_versions)
    }
    async fn diff_plan_versions(
        &self,
        req: Request<DiffPlanVersionsRequest>,
    ) -> Reply<DiffPlanVersionsResponse> {
        checked!(DOMAIN, self, req, diff_plan_versions)
    }
    async fn grant_lock_exception(
        &self,
        req: Request<GrantLockExceptionRequest>,
    ) -> Reply<LockException> {
        checked!(DOMAIN, self, req, grant_lock_exception)
    }
    async fn list_lock_exceptions(
        &self,
        req: Request<ListLockExceptionsRequest>,
    ) -> Reply<ListLockExceptionsResponse> {
        checked!(DOMAIN, self, req, list_lock_exceptions)
    }
    async fn check_write_window(
        &self,
        req: Request<CheckWriteWindowRequest>,
    ) -> Reply<CheckWriteWindowResponse> {
        checked!(DOMAIN, self, req, check_write_window)
    }
    async fn get_timeliness_report(
        &self,
        req: Request<GetTimelinessReportRequest>,
    ) -> Reply<TimelinessReport> {
        checked!(DOMAIN, self, req, timeliness)
    }
    async fn create_notice(&self, req: Request<CreateNoticeRequest>) -> Reply<Notice> {
        checked!(DOMAIN, self, req, create_notice)
    }
    async fn list_notices(&self, req: Request<ListNoticesRequest>) -> Reply<ListNoticesResponse> {
        public_read!(self, req, list_notices)
    }
    async fn list_audit_records(
        &self,
        req: Request<ListAuditRecordsRequest>,
    ) -> Reply<ListAuditRecordsResponse> {
        checked!(DOMAIN, self, req, list_audit)
    }
    type WatchPlanChangesStream =
        std::pin::Pin<Box<dyn futures::Stream<Item = Result<PlanChange, tonic::Status>> + Send>>;

    async fn watch_plan_changes(
        &self,
        req: Request<WatchPlanChangesRequest>,
    ) -> Reply<Self::WatchPlanChangesStream> {
        let p = principal(&req)?;
        let run = async {
            let changes = self
                .changes
                .watch_for(&self.db, &p, &req.get_ref().cycle)
                .await?;
            let stream = tokio_stream::StreamExt::map(changes, |c| {
                Ok(PlanChange {
                    group: c.group,
                    revision: c.revision,
                    traceparent: c.traceparent.unwrap_or_default(),
                    change_time: c.time_ms.map(jixiao_runtime::time::timestamp),
                })
            });
            Ok::<Self::WatchPlanChangesStream, Error>(Box::pin(stream))
        };
        reply(DOMAIN, run.await)
    }

    async fn verify_audit_chain(
        &self,
        req: Request<VerifyAuditChainRequest>,
    ) -> Reply<VerifyAuditChainResponse> {
        checked!(DOMAIN, self, req, verify_audit)
    }
}
