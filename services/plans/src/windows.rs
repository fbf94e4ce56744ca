//! Write windows (DOMAIN.md §2): lock exceptions the office grants, the
//! window check other services ask, the timeliness report, and notices.

use jixiao_proto::plans::{
    CheckWriteWindowRequest, CheckWriteWindowResponse, CreateNoticeRequest,
    GetTimelinessReportRequest, GrantLockExceptionRequest, ListLockExceptionsRequest,
    ListLockExceptionsResponse, ListNoticesRequest, ListNoticesResponse, LockException, Notice,
    TimelinessReport,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, idempotency, names, text,
    time::{self, now_ms, opt_timestamp, timestamp},
    write::{self, Key},
};
use serde_json::json;

use crate::{api::*, store::*};

impl PlansApi {
    pub(crate) async fn grant_lock_exception(
        &self,
        p: Principal,
        req: GrantLockExceptionRequest,
    ) -> Result<LockException, Error> {
        p.require(&[Role::Office], "grant lock exceptions")?;
        let digest = idempotency::request_digest("GrantLockException", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "GrantLockException",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        admit(&self.db, &p, "GrantLockException", &cycle, None).await?;
        let e = req.lock_exception.clone().unwrap_or_default();
        let mut v = Violations::new();
        let id = names::chosen_id(
            "le",
            &req.lock_exception_id,
            "lock_exception_id",
            &p.subject,
            &req.request_id,
            &mut v,
        );
        let unit = names::unit_id(&e.unit, "lock_exception.unit").map(str::to_string);
        if let Err(Error::Invalid(x)) = &unit {
            for i in x {
                v.add(i.field.clone(), i.description.clone());
            }
        }
        let scope = scope_of(e.scope, "lock_exception.scope");
        if scope.is_err() {
            v.add(
                "lock_exception.scope",
                "must be PLAN, DATA, REVIEW or RECTIFICATION",
            );
        }
        let now = now_ms();
        let expire = time::required(&e.expire_time, "lock_exception.expire_time", &mut v);
        v.check(
            expire.is_none_or(|t| t > now),
            "lock_exception.expire_time",
            "must be in the future",
        );
        text::required(&mut v, "lock_exception.reason", &e.reason, text::NOTE);
        v.into_result()?;
        let (unit, scope, expire) = (unit?, scope?, expire.unwrap_or_default());
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            load_cycle(w.conn, &cycle).await?;
            if !unit_exists(w.conn, &unit).await? {
                return Err(Error::invalid(
                    "lock_exception.unit",
                    format!("units/{unit} is not a registered unit"),
                ));
            }
            if exception_exists(w.conn, &cycle, &id).await? {
                return Err(Error::AlreadyExists {
                    resource: format!("cycles/{cycle}/lockExceptions/{id}"),
                });
            }
            let granted = LockException {
                name: format!("cycles/{cycle}/lockExceptions/{id}"),
                unit: format!("units/{unit}"),
                scope: scope as i32,
                expire_time: Some(timestamp(expire)),
                reason: e.reason.trim().into(),
                granted_by: p.subject.clone(),
                create_time: Some(timestamp(now)),
            };
            insert_exception(w.conn, &cycle, &id, &unit, &granted, expire, now).await?;
            w.audit(
                "lock_exceptions.grant",
                &granted.name,
                &granted.reason,
                json!({"unit": granted.unit, "scope": scope.as_str_name(), "expire_ms": expire}),
            );
            Ok(granted)
        })
        .await
    }

    pub(crate) async fn list_lock_exceptions(
        &self,
        p: Principal,
        req: ListLockExceptionsRequest,
    ) -> Result<ListLockExceptionsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let mut unit = if req.unit.is_empty() {
            String::new()
        } else {
            names::unit_id(&req.unit, "unit")?.to_string()
        };
        if !p.has_any(&[Role::Office, Role::Evaluator, Role::Service]) {
            let own = p
                .unit
                .clone()
                .filter(|_| p.has_any(&[Role::Unit, Role::Provider]));
            match own {
                Some(own) if unit.is_empty() || unit == own => unit = own,
                _ => {
                    return Err(Error::denied(format!(
                        "{} may only list its own unit's lock exceptions",
                        p.subject
                    )));
                }
            }
        }
        let pg = page(req.page_size, &req.page_token, 100, 1000)?;
        let mut conn = self.db.read.acquire().await?;
        let mut lock_exceptions = exceptions(&mut conn, &cycle, &unit, &pg).await?;
        let next_page_token = pg.next_token(&mut lock_exceptions);
        Ok(ListLockExceptionsResponse {
            lock_exceptions,
            next_page_token,
        })
    }

    pub(crate) async fn check_write_window(
        &self,
        p: Principal,
        req: CheckWriteWindowRequest,
    ) -> Result<CheckWriteWindowResponse, Error> {
        let cycle = names::cycle_id(&req.cycle, "cycle")?.to_string();
        let unit = names::unit_id(&req.unit, "unit")?.to_string();
        let scope = scope_of(req.scope, "scope")?;
        let own =
            p.unit.as_deref() == Some(unit.as_str()) && p.has_any(&[Role::Unit, Role::Provider]);
        if !(own
            || p.has_any(&[
                Role::Office,
                Role::Evaluator,
                Role::Inspector,
                Role::Service,
            ]))
        {
            return Err(Error::denied(format!(
                "{} may not check the write window of unit {unit}",
                p.subject
            )));
        }
        let mut conn = self.db.read.acquire().await?;
        let c = load_cycle(&mut conn, &cycle).await?;
        let (w, exception) = window(&mut conn, &c, &unit, scope).await?;
        Ok(CheckWriteWindowResponse {
            open: w.open,
            late: w.late,
            deadline: opt_timestamp(c.deadline(scope)),
            lock_exception: exception
                .map(|id| format!("cycles/{cycle}/lockExceptions/{id}"))
                .unwrap_or_default(),
            closed_reason: w.closed_reason.to_string(),
        })
    }

    pub(crate) async fn timeliness(
        &self,
        p: Principal,
        req: GetTimelinessReportRequest,
    ) -> Result<TimelinessReport, Error> {
        p.require(
            &[Role::Office, Role::Evaluator, Role::Service],
            "read the timeliness report",
        )?;
        let cycle = names::cycle_id(&req.cycle, "cycle")?.to_string();
        let mut conn = self.db.read.acquire().await?;
        let c = load_cycle(&mut conn, &cycle).await?;
        let units = timeliness(&mut conn, &cycle).await?;
        Ok(TimelinessReport {
            cycle: c.proto.name,
            plan_deadline: opt_timestamp(c.plan_deadline),
            units,
        })
    }

    pub(crate) async fn create_notice(
        &self,
        p: Principal,
        req: CreateNoticeRequest,
    ) -> Result<Notice, Error> {
        p.require(&[Role::Office], "publish notices")?;
        let digest = idempotency::request_digest("CreateNotice", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "CreateNotice",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        admit(&self.db, &p, "CreateNotice", &cycle, None).await?;
        let n = req.notice.clone().unwrap_or_default();
        let mut v = Violations::new();
        let id = names::chosen_id(
            "n",
            &req.notice_id,
            "notice_id",
            &p.subject,
            &req.request_id,
            &mut v,
        );
        text::required(&mut v, "notice.title", &n.title, text::LABEL);
        text::required(&mut v, "notice.body", &n.body, text::BODY);
        v.into_result()?;
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            load_cycle(w.conn, &cycle).await?;
            if notice_exists(w.conn, &cycle, &id).await? {
                return Err(Error::AlreadyExists {
                    resource: format!("cycles/{cycle}/notices/{id}"),
                });
            }
            let now = now_ms();
            let created = Notice {
                name: format!("cycles/{cycle}/notices/{id}"),
                title: n.title.trim().into(),
                body: n.body.trim().into(),
                author: p.subject.clone(),
                publish_time: Some(timestamp(now)),
            };
            insert_notice(w.conn, &cycle, &id, &created, now).await?;
            w.audit(
                "notices.create",
                &created.name,
                "",
                json!({"title": created.title}),
            );
            Ok(created)
        })
        .await
    }

    pub(crate) async fn list_notices(
        &self,
        req: ListNoticesRequest,
    ) -> Result<ListNoticesResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?;
        let pg = page(req.page_size, &req.page_token, 50, 500)?;
        let mut conn = self.db.read.acquire().await?;
        let mut notices = notices(&mut conn, cycle, &pg).await?;
        let next_page_token = pg.next_token(&mut notices);
        Ok(ListNoticesResponse {
            notices,
            next_page_token,
        })
    }
}
