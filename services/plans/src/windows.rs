//! Write windows (DOMAIN.md §2): lock exceptions the office grants, the
//! window check other services ask, the timeliness report, and notices.

use jixiao_proto::plans::{
    CheckWriteWindowRequest, CheckWriteWindowResponse, CreateNoticeRequest,
    GetTimelinessReportRequest, GrantLockExceptionRequest, ListLockExceptionsRequest,
    ListLockExceptionsResponse, ListNoticesRequest, ListNoticesResponse, LockException, Notice,
    TimelinessReport, UnitTimeliness,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, idempotency, names, text,
    time::{self, now_ms, opt_timestamp, timestamp},
    write::{self, Key},
};
use serde_json::json;
use sqlx::Row;

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
        admit(&self.db, &p, "GrantLockException", &cycle, None).await?;
        let e = req.lock_exception.clone().unwrap_or_default();
        let mut v = Violations::new();
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
        write::write(&self.db, Some(&self.changes), &p, Key {
            method: "GrantLockException",
            request_id: &req.request_id,
            digest: &digest,
        }, async |w| {
        load_cycle(w.conn, &cycle).await?;
        if sqlx::query("SELECT 1 FROM units WHERE id = $1")
            .bind(&unit)
            .fetch_optional(&mut *w.conn)
            .await?
            .is_none()
        {
            return Err(Error::invalid(
                "lock_exception.unit",
                format!("units/{unit} is not a registered unit"),
            ));
        }
        let id = names::new_id("le");
        sqlx::query(
            "INSERT INTO lock_exceptions (cycle_id, id, unit_id, scope, expire_ms, reason, granted_by, create_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&cycle)
        .bind(&id)
        .bind(&unit)
        .bind(scope as i32 as i64)
        .bind(expire)
        .bind(e.reason.trim())
        .bind(&p.subject)
        .bind(now)
        .execute(&mut *w.conn)
        .await?;
        let granted = LockException {
            name: format!("cycles/{cycle}/lockExceptions/{id}"),
            unit: format!("units/{unit}"),
            scope: scope as i32,
            expire_time: Some(timestamp(expire)),
            reason: e.reason.trim().into(),
            granted_by: p.subject.clone(),
            create_time: Some(timestamp(now)),
        };
        w.audit("lock_exceptions.grant", &granted.name, &granted.reason, json!({"unit": granted.unit, "scope": scope.as_str_name(), "expire_ms": expire}));
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
        let rows = sqlx::query(
            "SELECT id, unit_id, scope, expire_ms, reason, granted_by, create_ms FROM lock_exceptions
             WHERE cycle_id = $1 AND ($2 = '' OR unit_id = $2) ORDER BY create_ms DESC, id DESC LIMIT $3 OFFSET $4",
        )
        .bind(&cycle)
        .bind(&unit)
        .bind(pg.fetch_limit())
        .bind(pg.offset)
        .fetch_all(&self.db.read)
        .await?;
        let mut lock_exceptions = rows
            .iter()
            .map(|r| {
                Ok(LockException {
                    name: format!(
                        "cycles/{cycle}/lockExceptions/{}",
                        r.try_get::<String, _>("id")?
                    ),
                    unit: format!("units/{}", r.try_get::<String, _>("unit_id")?),
                    scope: r.try_get::<i64, _>("scope")? as i32,
                    expire_time: Some(timestamp(r.try_get("expire_ms")?)),
                    reason: r.try_get("reason")?,
                    granted_by: r.try_get("granted_by")?,
                    create_time: Some(timestamp(r.try_get("create_ms")?)),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
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
        let rows = sqlx::query(
            "SELECT m.group_id, m.unit_id, MIN(v.submit_ms) AS first_ms, MAX(v.late) AS any_late
             FROM group_members m
             LEFT JOIN plan_versions v ON v.cycle_id = m.cycle_id AND v.unit_id = m.unit_id
             WHERE m.cycle_id = $1 GROUP BY m.group_id, m.unit_id ORDER BY m.group_id, m.unit_id",
        )
        .bind(&cycle)
        .fetch_all(&mut *conn)
        .await?;
        let units = rows
            .iter()
            .map(|r| {
                let first: Option<i64> = r.try_get("first_ms")?;
                let late: Option<i64> = r.try_get("any_late")?;
                Ok(UnitTimeliness {
                    unit: format!("units/{}", r.try_get::<String, _>("unit_id")?),
                    group: format!(
                        "cycles/{cycle}/groups/{}",
                        r.try_get::<String, _>("group_id")?
                    ),
                    first_submit_time: opt_timestamp(first),
                    late: late.unwrap_or(0) != 0,
                    missing: first.is_none(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
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
        admit(&self.db, &p, "CreateNotice", &cycle, None).await?;
        let n = req.notice.clone().unwrap_or_default();
        let mut v = Violations::new();
        text::required(&mut v, "notice.title", &n.title, text::LABEL);
        text::required(&mut v, "notice.body", &n.body, text::BODY);
        v.into_result()?;
        write::write(&self.db, Some(&self.changes), &p, Key {
            method: "CreateNotice",
            request_id: &req.request_id,
            digest: &digest,
        }, async |w| {
        load_cycle(w.conn, &cycle).await?;
        let id = names::new_id("n");
        let now = now_ms();
        sqlx::query("INSERT INTO notices (cycle_id, id, title, body, author, publish_ms) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&cycle)
            .bind(&id)
            .bind(n.title.trim())
            .bind(n.body.trim())
            .bind(&p.subject)
            .bind(now)
            .execute(&mut *w.conn)
            .await?;
        let created = Notice {
            name: format!("cycles/{cycle}/notices/{id}"),
            title: n.title.trim().into(),
            body: n.body.trim().into(),
            author: p.subject.clone(),
            publish_time: Some(timestamp(now)),
        };
        w.audit("notices.create", &created.name, "", json!({"title": created.title}));
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
        let rows = sqlx::query(
            "SELECT id, title, body, author, publish_ms FROM notices WHERE cycle_id = $1
             ORDER BY publish_ms DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(cycle)
        .bind(pg.fetch_limit())
        .bind(pg.offset)
        .fetch_all(&self.db.read)
        .await?;
        let mut notices = rows
            .iter()
            .map(|r| {
                Ok(Notice {
                    name: format!("cycles/{cycle}/notices/{}", r.try_get::<String, _>("id")?),
                    title: r.try_get("title")?,
                    body: r.try_get("body")?,
                    author: r.try_get("author")?,
                    publish_time: Some(timestamp(r.try_get("publish_ms")?)),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let next_page_token = pg.next_token(&mut notices);
        Ok(ListNoticesResponse {
            notices,
            next_page_token,
        })
    }
}
