//! What every handler of the service shares: the service value, the phase
//! gate and write windows, plan names and etags.

use jixiao_proto::{
    plans::{Deadlines, LockScope, PlanState},
    types::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
        VerifyAuditChainResponse,
    },
};
use jixiao_runtime::{
    Db, Error, Principal, Role, Violations, audit,
    changes::Changes,
    names,
    paging::Page,
    phases,
    time::{self, now_ms},
};
use sqlx::AnyConnection;

use crate::store::*;

/// Roles that read every plan of a cycle.
pub(crate) const PLAN_READERS: &[Role] = &[Role::Office, Role::Evaluator, Role::Service];

/// The plans service over its database.
#[derive(Clone, Debug)]
pub struct PlansApi {
    pub(crate) db: Db,
    pub(crate) changes: Changes,
}

impl PlansApi {
    pub fn new(db: Db, shutdown: jixiao_runtime::host::Shutdown) -> Self {
        PlansApi {
            db,
            changes: Changes::new(shutdown),
        }
    }
}

impl PlansApi {
    pub(crate) async fn verify_audit(
        &self,
        p: Principal,
        _req: VerifyAuditChainRequest,
    ) -> Result<VerifyAuditChainResponse, Error> {
        audit::verify_for_readers(&self.db.read, &p).await
    }

    pub(crate) async fn list_audit(
        &self,
        p: Principal,
        req: ListAuditRecordsRequest,
    ) -> Result<ListAuditRecordsResponse, Error> {
        if !p.has_any(&[Role::Office, Role::Evaluator]) {
            // A unit reads the trail of its own plans only.
            let own = p.unit.as_deref().filter(|_| p.has(Role::Unit));
            let ok = own.is_some_and(|u| {
                names::parse(&req.resource_prefix, "cycles/*/plans/*", "resource_prefix")
                    .is_ok_and(|ids| ids[1] == u)
            });
            if !ok {
                return Err(Error::denied(format!(
                    "{} may only read the audit trail of its own plan (resource_prefix cycles/{{cycle}}/plans/{{unit}})",
                    p.subject
                )));
            }
        }
        audit::list(&self.db.read, &req).await
    }
}

/// `cycles/{c}/plans/{u}` -> (c, u).
pub(crate) fn plan_name(name: &str, field: &str) -> Result<(String, String), Error> {
    let ids = names::parse(name, "cycles/*/plans/*", field)?;
    Ok((ids[0].to_string(), ids[1].to_string()))
}

pub(crate) fn check_etag(p: &PlanRow, etag: &str) -> Result<(), Error> {
    if !etag.is_empty() && etag != p.revision.to_string() {
        return Err(Error::aborted(
            crate::Reason::EtagMismatch,
            format!(
                "{} changed since it was read (etag {etag}, now {}); read it again",
                p.name(),
                p.revision
            ),
        ));
    }
    Ok(())
}

/// Checks that a plan's state allows `action` (states, not moves: editing
/// a draft changes no state).
pub(crate) fn require_state(p: &PlanRow, allowed: &[PlanState], action: &str) -> Result<(), Error> {
    crate::rules::PLANS.require_state(&p.name(), p.state, allowed, action)
}

/// Checks the plan lifecycle allows moving `p` to `to`.
pub(crate) fn require_move(p: &PlanRow, to: PlanState) -> Result<(), Error> {
    crate::rules::PLANS.require_move(&p.name(), p.state, to)
}

/// The write window of a unit in a scope now.
pub(crate) async fn window(
    conn: &mut AnyConnection,
    cycle: &CycleRow,
    unit: &str,
    scope: LockScope,
) -> Result<(phases::Window, Option<String>), Error> {
    let now = now_ms();
    let exception = active_exception(conn, &cycle.id, unit, scope, now).await?;
    let w = phases::write_window(
        cycle.phase,
        scope,
        cycle.deadline(scope),
        exception.as_ref().map(|e| e.1),
        now,
    );
    let id = if w.late { exception.map(|e| e.0) } else { None };
    Ok((w, id))
}

/// The phase gate of DOMAIN.md §2 (`jixiao_runtime::phases`) for a write
/// of `method` to `cycle`, by or for `unit`; checked before anything else
/// of the request. Returns whether the write is late.
pub(crate) async fn admit(
    db: &Db,
    p: &Principal,
    method: &str,
    cycle: &str,
    unit: Option<&str>,
) -> Result<bool, Error> {
    let mut conn = db.read.acquire().await?;
    let c = load_cycle(&mut conn, cycle).await?;
    let path = format!("/jixiao.plans.v1.PlansService/{method}");
    let call = phases::Call {
        path: &path,
        cycle,
        phase: c.phase,
        office: p.has(Role::Office),
    };
    phases::admit(call, |scope| async move {
        let unit = unit.ok_or_else(|| {
            Error::internal(std::io::Error::other(format!("{method} names no unit")))
        })?;
        Ok(window(&mut conn, &c, unit, scope).await?.0)
    })
    .await
}

pub(crate) const DEADLINE_FIELDS: [&str; 4] = [
    "plan_deadline",
    "data_deadline",
    "review_close",
    "rectification_deadline",
];

/// A cycle's deadlines in unix milliseconds, in [`DEADLINE_FIELDS`] order;
/// a time outside 0001–9999 is recorded under `field.<deadline>`.
pub(crate) fn deadlines_ms(d: &Deadlines, field: &str, v: &mut Violations) -> [Option<i64>; 4] {
    let times = [
        &d.plan_deadline,
        &d.data_deadline,
        &d.review_close,
        &d.rectification_deadline,
    ];
    let mut out = [None; 4];
    for (i, t) in times.into_iter().enumerate() {
        out[i] = time::optional(t, &format!("{field}.{}", DEADLINE_FIELDS[i]), v);
    }
    out
}

pub(crate) fn closed_error(cycle: &CycleRow, scope: LockScope, w: &phases::Window) -> Error {
    let what = match scope {
        LockScope::Plan => "plan submission",
        LockScope::Data => "indicator data",
        LockScope::Review => "reviews",
        LockScope::Rectification => "rectification reports",
        LockScope::Unspecified => "writes",
    };
    Error::precondition(
        phases::reason(w.closed_reason),
        format!(
            "{what} for cycles/{} is closed ({}; phase {}); the office can grant a lock exception",
            cycle.id,
            w.closed_reason,
            cycle.phase.as_str_name()
        ),
    )
}

pub(crate) fn scope_of(v: i32, field: &str) -> Result<LockScope, Error> {
    match LockScope::try_from(v) {
        Ok(s) if s != LockScope::Unspecified => Ok(s),
        _ => Err(Error::invalid(
            field,
            "must be PLAN, DATA, REVIEW or RECTIFICATION",
        )),
    }
}

pub(crate) fn page(size: i32, token: &str, default: i64, max: i64) -> Result<Page, Error> {
    Page::from_request(size, token, default, max)
}

/// Says that the group a resource belongs to changed (`cycles/{c}/groups/{g}…`):
/// its revision is bumped in the write and announced after it.
pub(crate) fn changed_name(w: &mut jixiao_runtime::write::Work<'_>, name: &str) {
    if let ["cycles", cycle, "groups", group, ..] = name.split('/').collect::<Vec<_>>()[..] {
        w.changed(cycle, group);
    }
}
