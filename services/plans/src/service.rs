//! The tonic adapter of the plans service: authorisation per call, storage
//! in one transaction with the audit record and the idempotency record.

use std::collections::HashSet;

use jixiao_proto::{
    plans::{
        AmendPlanRequest, ApprovePlanRequest, CheckWriteWindowRequest, CheckWriteWindowResponse,
        CreateCycleRequest, CreateGroupRequest, CreateNoticeRequest, CreatePlanRequest,
        CreateUnitRequest, Cycle, Deadlines, DiffPlanVersionsRequest, DiffPlanVersionsResponse,
        FieldChange, Framework, GetCycleRequest, GetFrameworkRequest, GetGroupRequest,
        GetGroupTargetsRequest, GetPlanRequest, GetSchemeRequest, GetTimelinessReportRequest,
        GetUnitRequest, GrantLockExceptionRequest, Group, GroupTargets, ListCyclesRequest,
        ListCyclesResponse, ListGroupsRequest, ListGroupsResponse, ListLockExceptionsRequest,
        ListLockExceptionsResponse, ListNoticesRequest, ListNoticesResponse,
        ListPlanVersionsRequest, ListPlanVersionsResponse, ListPlansRequest, ListPlansResponse,
        ListUnitsRequest, ListUnitsResponse, LockException, LockScope, Notice, Phase, Plan,
        PlanChange, PlanState, PlanVersion, ReplaceFrameworkRequest, ReturnPlanRequest, Scheme,
        SetCyclePhaseRequest, SubmitPlanRequest, TimelinessReport, Unit, UnitKind, UnitTargets,
        UnitTimeliness, UpdateCycleRequest, UpdateGroupRequest, UpdatePlanRequest,
        UpdateSchemeRequest, VersionOutcome, WatchPlanChangesRequest,
        plans_service_server::PlansService,
    },
    types::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
        VerifyAuditChainResponse,
    },
};
use jixiao_runtime::{
    Db, Error, Principal, Role, Violations, audit,
    auth::principal,
    changes::Changes,
    checked, decimal,
    error::{Reply, reply},
    idempotency, names,
    paging::Page,
    phases, text,
    time::{self, millis, now_ms, opt_timestamp, timestamp},
};
use prost::Message;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{AnyConnection, Row, any::AnyRow};
use tonic::Request;

use crate::{DOMAIN, rules};

/// Roles that read every plan of a cycle.
const PLAN_READERS: &[Role] = &[Role::Office, Role::Evaluator, Role::Service];

/// The plans service over its database.
#[derive(Clone, Debug)]
pub struct PlansApi {
    db: Db,
    changes: Changes,
}

impl PlansApi {
    pub fn new(db: Db, shutdown: jixiao_runtime::host::Shutdown) -> Self {
        PlansApi {
            db,
            changes: Changes::new(shutdown),
        }
    }

    /// Tells followers that something a group's scores depend on changed
    /// (every group of the cycle for a cycle-wide change). It runs after
    /// the change committed: a signal lost to a crash in between is caught
    /// by the followers' reconciliation, and a failure here never undoes
    /// the change it reports.
    async fn signal(&self, name: &str) {
        let result = async {
            let parts: Vec<&str> = name.split('/').collect();
            let (cycle, groups) = match parts.as_slice() {
                ["cycles", cycle, "groups", group, ..] => (*cycle, vec![group.to_string()]),
                ["cycles", cycle, ..] => {
                    let rows = sqlx::query("SELECT id FROM peer_groups WHERE cycle_id = $1")
                        .bind(*cycle)
                        .fetch_all(&self.db.read)
                        .await?;
                    let ids = rows
                        .iter()
                        .map(|r| r.try_get::<String, _>("id"))
                        .collect::<Result<Vec<_>, _>>()?;
                    (*cycle, ids)
                }
                _ => return Ok(()),
            };
            let mut tx = self.db.write.begin().await?;
            let mut changes = Vec::with_capacity(groups.len());
            for g in &groups {
                changes.push(Changes::bump(&mut tx, cycle, g).await?);
            }
            tx.commit().await?;
            self.changes.announce(changes);
            Ok::<(), Error>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(resource = name, error = %e, "change signal failed");
        }
    }
}

/// The body of a writing handler whose answer names what changed
/// (`$name` of the answer): the call, then the change signal.
macro_rules! signalled {
    ($self:ident, $req:ident, $method:ident, $name:expr) => {{
        let reply = checked!(DOMAIN, $self, $req, $method);
        if let Ok(r) = &reply {
            let name: String = $name(r.get_ref());
            $self.signal(&name).await;
        }
        reply
    }};
}

// ---------------------------------------------------------------- rows

fn bool_col(row: &AnyRow, col: &str) -> Result<bool, Error> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, Error> {
    M::decode(bytes).map_err(Error::internal)
}

fn phase_of(v: i64) -> Phase {
    Phase::try_from(v as i32).unwrap_or(Phase::Unspecified)
}

struct CycleRow {
    id: String,
    phase: Phase,
    plan_deadline: Option<i64>,
    data_deadline: Option<i64>,
    review_close: Option<i64>,
    rectification_deadline: Option<i64>,
    proto: Cycle,
}

impl CycleRow {
    fn deadline(&self, scope: LockScope) -> Option<i64> {
        match scope {
            LockScope::Plan => self.plan_deadline,
            LockScope::Data => self.data_deadline,
            LockScope::Review => self.review_close,
            LockScope::Rectification => self.rectification_deadline,
            LockScope::Unspecified => None,
        }
    }
}

const CYCLE_COLS: &str = "id, year, title, phase, plan_deadline_ms, data_deadline_ms, review_close_ms, rectification_deadline_ms, create_ms, update_ms";

fn cycle_row(row: &AnyRow) -> Result<CycleRow, Error> {
    let id: String = row.try_get("id")?;
    let phase = phase_of(row.try_get("phase")?);
    let plan_deadline: Option<i64> = row.try_get("plan_deadline_ms")?;
    let data_deadline: Option<i64> = row.try_get("data_deadline_ms")?;
    let review_close: Option<i64> = row.try_get("review_close_ms")?;
    let rectification_deadline: Option<i64> = row.try_get("rectification_deadline_ms")?;
    let proto = Cycle {
        name: format!("cycles/{id}"),
        year: row.try_get::<i64, _>("year")? as i32,
        title: row.try_get("title")?,
        phase: phase as i32,
        deadlines: Some(Deadlines {
            plan_deadline: opt_timestamp(plan_deadline),
            data_deadline: opt_timestamp(data_deadline),
            review_close: opt_timestamp(review_close),
            rectification_deadline: opt_timestamp(rectification_deadline),
        }),
        create_time: Some(timestamp(row.try_get("create_ms")?)),
        update_time: Some(timestamp(row.try_get("update_ms")?)),
    };
    Ok(CycleRow {
        id,
        phase,
        plan_deadline,
        data_deadline,
        review_close,
        rectification_deadline,
        proto,
    })
}

async fn load_cycle(conn: &mut AnyConnection, id: &str) -> Result<CycleRow, Error> {
    let sql = format!("SELECT {CYCLE_COLS} FROM cycles WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("cycles/{id}")))?;
    cycle_row(&row)
}

fn unit_proto(row: &AnyRow) -> Result<Unit, Error> {
    let id: String = row.try_get("id")?;
    Ok(Unit {
        name: format!("units/{id}"),
        display_name_zh: row.try_get("name_zh")?,
        display_name_en: row.try_get("name_en")?,
        kind: row.try_get::<i64, _>("kind")? as i32,
        create_time: Some(timestamp(row.try_get("create_ms")?)),
    })
}

async fn known_units(conn: &mut AnyConnection) -> Result<HashSet<String>, Error> {
    let rows = sqlx::query("SELECT id FROM units")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok(format!("units/{}", r.try_get::<String, _>("id")?)))
        .collect()
}

struct GroupRow {
    group: Group,
    scheme: Scheme,
    framework: Option<Framework>,
}

async fn load_group(conn: &mut AnyConnection, cycle: &str, group: &str) -> Result<GroupRow, Error> {
    let row = sqlx::query(
        "SELECT display_name, scheme, scheme_rev, framework FROM peer_groups WHERE cycle_id = $1 AND id = $2",
    )
    .bind(cycle)
    .bind(group)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found(format!("cycles/{cycle}/groups/{group}")))?;
    let mut scheme: Scheme = decode(&row.try_get::<Vec<u8>, _>("scheme")?)?;
    scheme.name = format!("cycles/{cycle}/groups/{group}/scheme");
    scheme.etag = row.try_get::<i64, _>("scheme_rev")?.to_string();
    let framework = match row.try_get::<Option<Vec<u8>>, _>("framework")? {
        Some(b) => Some(decode::<Framework>(&b)?),
        None => None,
    };
    let members = sqlx::query(
        "SELECT unit_id FROM group_members WHERE cycle_id = $1 AND group_id = $2 ORDER BY position",
    )
    .bind(cycle)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?;
    let units = members
        .iter()
        .map(|r| Ok(format!("units/{}", r.try_get::<String, _>("unit_id")?)))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(GroupRow {
        group: Group {
            name: format!("cycles/{cycle}/groups/{group}"),
            display_name: row.try_get("display_name")?,
            units,
            revision: 0,
        },
        scheme,
        framework,
    })
}

/// The group of a unit in a cycle.
async fn group_of(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
) -> Result<Option<String>, Error> {
    let row =
        sqlx::query("SELECT group_id FROM group_members WHERE cycle_id = $1 AND unit_id = $2")
            .bind(cycle)
            .bind(unit)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match row {
        Some(r) => Some(r.try_get("group_id")?),
        None => None,
    })
}

struct PlanRow {
    cycle: String,
    unit: String,
    group: String,
    state: PlanState,
    content: Plan,
    version: i64,
    approved_version: i64,
    amending: bool,
    amend_reason: String,
    late: bool,
    return_reason: String,
    revision: i64,
    update_ms: i64,
}

impl PlanRow {
    fn name(&self) -> String {
        format!("cycles/{}/plans/{}", self.cycle, self.unit)
    }

    fn proto(&self) -> Plan {
        Plan {
            name: self.name(),
            unit: format!("units/{}", self.unit),
            group: format!("cycles/{}/groups/{}", self.cycle, self.group),
            state: self.state as i32,
            targets: self.content.targets.clone(),
            goals: self.content.goals.clone(),
            version: self.version as i32,
            approved_version: self.approved_version as i32,
            amending: self.amending,
            late: self.late,
            return_reason: self.return_reason.clone(),
            etag: self.revision.to_string(),
            update_time: Some(timestamp(self.update_ms)),
        }
    }
}

const PLAN_COLS: &str = "cycle_id, unit_id, group_id, state, content, version, approved_version, amending, amend_reason, late, return_reason, revision, update_ms";

fn plan_row(row: &AnyRow) -> Result<PlanRow, Error> {
    Ok(PlanRow {
        cycle: row.try_get("cycle_id")?,
        unit: row.try_get("unit_id")?,
        group: row.try_get("group_id")?,
        state: PlanState::try_from(row.try_get::<i64, _>("state")? as i32)
            .unwrap_or(PlanState::Unspecified),
        content: decode(&row.try_get::<Vec<u8>, _>("content")?)?,
        version: row.try_get("version")?,
        approved_version: row.try_get("approved_version")?,
        amending: bool_col(row, "amending")?,
        amend_reason: row.try_get("amend_reason")?,
        late: bool_col(row, "late")?,
        return_reason: row.try_get("return_reason")?,
        revision: row.try_get("revision")?,
        update_ms: row.try_get("update_ms")?,
    })
}

async fn load_plan(conn: &mut AnyConnection, cycle: &str, unit: &str) -> Result<PlanRow, Error> {
    let sql = format!("SELECT {PLAN_COLS} FROM plans WHERE cycle_id = $1 AND unit_id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(cycle)
        .bind(unit)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("cycles/{cycle}/plans/{unit}")))?;
    plan_row(&row)
}

/// Writes the mutable columns of a plan back, bumping its revision.
async fn save_plan(conn: &mut AnyConnection, p: &mut PlanRow) -> Result<(), Error> {
    p.revision += 1;
    p.update_ms = now_ms();
    sqlx::query(
        "UPDATE plans SET state = $1, content = $2, version = $3, approved_version = $4, amending = $5,
         amend_reason = $6, late = $7, return_reason = $8, revision = $9, update_ms = $10
         WHERE cycle_id = $11 AND unit_id = $12",
    )
    .bind(p.state as i32 as i64)
    .bind(p.content.encode_to_vec())
    .bind(p.version)
    .bind(p.approved_version)
    .bind(i64::from(p.amending))
    .bind(&p.amend_reason)
    .bind(i64::from(p.late))
    .bind(&p.return_reason)
    .bind(p.revision)
    .bind(p.update_ms)
    .bind(&p.cycle)
    .bind(&p.unit)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `cycles/{c}/plans/{u}` -> (c, u).
fn plan_name(name: &str, field: &str) -> Result<(String, String), Error> {
    let ids = names::parse(name, "cycles/*/plans/*", field)?;
    Ok((ids[0].to_string(), ids[1].to_string()))
}

fn check_etag(p: &PlanRow, etag: &str) -> Result<(), Error> {
    if !etag.is_empty() && etag != p.revision.to_string() {
        return Err(Error::Aborted {
            reason: "ETAG_MISMATCH",
            message: format!(
                "{} changed since it was read (etag {etag}, now {}); read it again",
                p.name(),
                p.revision
            ),
        });
    }
    Ok(())
}

fn require_state(p: &PlanRow, allowed: &[PlanState], action: &str) -> Result<(), Error> {
    if allowed.contains(&p.state) {
        Ok(())
    } else {
        Err(Error::precondition(
            "INVALID_STATE",
            format!("{} is {}; cannot {action}", p.name(), p.state.as_str_name()),
        ))
    }
}

/// The lock exception in force for a unit and scope, if any: (id, until).
async fn active_exception(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
    scope: LockScope,
    now: i64,
) -> Result<Option<(String, i64)>, Error> {
    let row = sqlx::query(
        "SELECT id, expire_ms FROM lock_exceptions
         WHERE cycle_id = $1 AND unit_id = $2 AND scope = $3 AND expire_ms >= $4
         ORDER BY expire_ms DESC LIMIT 1",
    )
    .bind(cycle)
    .bind(unit)
    .bind(scope as i32 as i64)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(r) => Some((r.try_get("id")?, r.try_get("expire_ms")?)),
        None => None,
    })
}

/// The write window of a unit in a scope now.
async fn window(
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
async fn admit(
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

const DEADLINE_FIELDS: [&str; 4] = [
    "plan_deadline",
    "data_deadline",
    "review_close",
    "rectification_deadline",
];

/// A cycle's deadlines in unix milliseconds, in [`DEADLINE_FIELDS`] order;
/// a time outside 0001–9999 is recorded under `field.<deadline>`.
fn deadlines_ms(d: &Deadlines, field: &str, v: &mut Violations) -> [Option<i64>; 4] {
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

fn closed_error(cycle: &CycleRow, scope: LockScope, w: &phases::Window) -> Error {
    let what = match scope {
        LockScope::Plan => "plan submission",
        LockScope::Data => "indicator data",
        LockScope::Review => "reviews",
        LockScope::Rectification => "rectification reports",
        LockScope::Unspecified => "writes",
    };
    Error::precondition(
        w.closed_reason,
        format!(
            "{what} for cycles/{} is closed ({}; phase {}); the office can grant a lock exception",
            cycle.id,
            w.closed_reason,
            cycle.phase.as_str_name()
        ),
    )
}

fn scope_of(v: i32, field: &str) -> Result<LockScope, Error> {
    match LockScope::try_from(v) {
        Ok(s) if s != LockScope::Unspecified => Ok(s),
        _ => Err(Error::invalid(
            field,
            "must be PLAN, DATA, REVIEW or RECTIFICATION",
        )),
    }
}

fn page(size: i32, token: &str, default: i64, max: i64) -> Result<Page, Error> {
    Page::from_request(size, token, default, max)
}

// ---------------------------------------------------------------- calls

impl PlansApi {
    async fn create_cycle(&self, p: Principal, req: CreateCycleRequest) -> Result<Cycle, Error> {
        p.require(&[Role::Office], "create cycles")?;
        let digest = idempotency::request_digest("CreateCycle", &req);
        let mut v = Violations::new();
        v.check(
            names::valid_id(&req.cycle_id),
            "cycle_id",
            "must be 1-63 lower-case letters, digits or dashes",
        );
        let cycle = req.cycle.clone().unwrap_or_default();
        v.check(
            (2000..=2100).contains(&cycle.year),
            "cycle.year",
            "must be a year between 2000 and 2100",
        );
        text::required(&mut v, "cycle.title", &cycle.title, text::LABEL);
        let d = cycle.deadlines.unwrap_or_default();
        deadlines_ms(&d, "cycle.deadlines", &mut v);
        v.into_result()?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let exists = sqlx::query("SELECT 1 FROM cycles WHERE id = $1")
            .bind(&req.cycle_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(Error::AlreadyExists {
                resource: format!("cycles/{}", req.cycle_id),
            });
        }
        let now = now_ms();
        let ms = |t: &Option<prost_types::Timestamp>| t.as_ref().map(millis);
        let sql = format!(
            "INSERT INTO cycles ({CYCLE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&req.cycle_id)
            .bind(i64::from(cycle.year))
            .bind(cycle.title.trim())
            .bind(Phase::Planning as i32 as i64)
            .bind(ms(&d.plan_deadline))
            .bind(ms(&d.data_deadline))
            .bind(ms(&d.review_close))
            .bind(ms(&d.rectification_deadline))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let created = load_cycle(&mut tx, &req.cycle_id).await?.proto;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "cycles.create",
                resource: &created.name,
                reason: "",
                detail: json!({"year": cycle.year, "title": created.title}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "CreateCycle",
            &digest,
            &created,
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn update_cycle(&self, p: Principal, req: UpdateCycleRequest) -> Result<Cycle, Error> {
        p.require(&[Role::Office], "update cycles")?;
        let cycle = req.cycle.unwrap_or_default();
        let id = names::cycle_id(&cycle.name, "cycle.name")?.to_string();
        admit(&self.db, &p, "UpdateCycle", &id, None).await?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid("update_mask", "name the fields to change"));
        }
        let mut tx = self.db.write.begin().await?;
        let current = load_cycle(&mut tx, &id).await?;
        let mut title = current.proto.title.clone();
        let mut d = [
            current.plan_deadline,
            current.data_deadline,
            current.review_close,
            current.rectification_deadline,
        ];
        let new = cycle.deadlines.unwrap_or_default();
        let mut v = Violations::new();
        let new_d = deadlines_ms(&new, "cycle.deadlines", &mut v);
        let fields = DEADLINE_FIELDS;
        for path in &paths {
            match path.as_str() {
                "title" => {
                    text::required(&mut v, "cycle.title", &cycle.title, text::LABEL);
                    title = cycle.title.trim().to_string();
                }
                "deadlines" => d = new_d,
                other => match other
                    .strip_prefix("deadlines.")
                    .and_then(|f| fields.iter().position(|x| *x == f))
                {
                    Some(i) => d[i] = new_d[i],
                    None => v.add(
                        "update_mask",
                        format!("{other:?} cannot be updated; use title or deadlines[.<field>]"),
                    ),
                },
            }
        }
        v.into_result()?;
        sqlx::query(
            "UPDATE cycles SET title = $1, plan_deadline_ms = $2, data_deadline_ms = $3, review_close_ms = $4,
             rectification_deadline_ms = $5, update_ms = $6 WHERE id = $7",
        )
        .bind(&title)
        .bind(d[0])
        .bind(d[1])
        .bind(d[2])
        .bind(d[3])
        .bind(now_ms())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        let updated = load_cycle(&mut tx, &id).await?.proto;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "cycles.update",
                resource: &updated.name,
                reason: "",
                detail: json!({"fields": paths, "deadlines_ms": d}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn set_cycle_phase(
        &self,
        p: Principal,
        req: SetCyclePhaseRequest,
    ) -> Result<Cycle, Error> {
        p.require(&[Role::Office], "change a cycle's phase")?;
        let id = names::cycle_id(&req.name, "name")?.to_string();
        admit(&self.db, &p, "SetCyclePhase", &id, None).await?;
        let phase = match Phase::try_from(req.phase) {
            Ok(ph) if ph != Phase::Unspecified => ph,
            _ => return Err(Error::invalid("phase", "must be a phase")),
        };
        let mut tx = self.db.write.begin().await?;
        let current = load_cycle(&mut tx, &id).await?;
        if (phase as i32) <= (current.phase as i32) {
            return Err(Error::precondition(
                "PHASE_ORDER",
                format!(
                    "cycles/{id} is in {}; phases only move forward",
                    current.phase.as_str_name()
                ),
            ));
        }
        sqlx::query("UPDATE cycles SET phase = $1, update_ms = $2 WHERE id = $3")
            .bind(phase as i32 as i64)
            .bind(now_ms())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let updated = load_cycle(&mut tx, &id).await?.proto;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "cycles.set_phase",
                resource: &updated.name,
                reason: "",
                detail: json!({"from": current.phase.as_str_name(), "to": phase.as_str_name()}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn create_unit(&self, p: Principal, req: CreateUnitRequest) -> Result<Unit, Error> {
        p.require(&[Role::Office], "register units")?;
        let digest = idempotency::request_digest("CreateUnit", &req);
        let unit = req.unit.clone().unwrap_or_default();
        let mut v = Violations::new();
        v.check(
            names::valid_id(&req.unit_id),
            "unit_id",
            "must be 1-63 lower-case letters, digits or dashes",
        );
        text::required(
            &mut v,
            "unit.display_name_zh",
            &unit.display_name_zh,
            text::LABEL,
        );
        text::optional(
            &mut v,
            "unit.display_name_en",
            &unit.display_name_en,
            text::LABEL,
        );
        v.check(
            UnitKind::try_from(unit.kind).is_ok_and(|k| k != UnitKind::Unspecified),
            "unit.kind",
            "must be DISTRICT_GOVERNMENT, CITY_DEPARTMENT or OTHER",
        );
        v.into_result()?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        if sqlx::query("SELECT 1 FROM units WHERE id = $1")
            .bind(&req.unit_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            return Err(Error::AlreadyExists {
                resource: format!("units/{}", req.unit_id),
            });
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO units (id, name_zh, name_en, kind, create_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&req.unit_id)
        .bind(unit.display_name_zh.trim())
        .bind(unit.display_name_en.trim())
        .bind(i64::from(unit.kind))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let created = Unit {
            name: format!("units/{}", req.unit_id),
            display_name_zh: unit.display_name_zh.trim().into(),
            display_name_en: unit.display_name_en.trim().into(),
            kind: unit.kind,
            create_time: Some(timestamp(now)),
        };
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "units.create",
                resource: &created.name,
                reason: "",
                detail: json!({"name_zh": created.display_name_zh}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "CreateUnit",
            &digest,
            &created,
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Checks a member list: registered units, no repeats, no unit already
    /// in another group of the cycle.
    async fn check_members(
        conn: &mut AnyConnection,
        cycle: &str,
        group: &str,
        units: &[String],
        field: &str,
        v: &mut Violations,
    ) -> Result<Vec<String>, Error> {
        let known = known_units(conn).await?;
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        for (i, u) in units.iter().enumerate() {
            let f = format!("{field}[{i}]");
            if !known.contains(u) {
                v.add(f, format!("{u:?} is not a registered unit"));
                continue;
            }
            let id = u.trim_start_matches("units/").to_string();
            if !seen.insert(id.clone()) {
                v.add(f, format!("{u} appears twice"));
                continue;
            }
            if let Some(other) = group_of(conn, cycle, &id).await?
                && other != group
            {
                v.add(
                    f,
                    format!("{u} already belongs to group {other} of this cycle"),
                );
            }
            ids.push(id);
        }
        Ok(ids)
    }

    async fn write_members(
        conn: &mut AnyConnection,
        cycle: &str,
        group: &str,
        ids: &[String],
    ) -> Result<(), Error> {
        sqlx::query("DELETE FROM group_members WHERE cycle_id = $1 AND group_id = $2")
            .bind(cycle)
            .bind(group)
            .execute(&mut *conn)
            .await?;
        for (i, id) in ids.iter().enumerate() {
            sqlx::query("INSERT INTO group_members (cycle_id, group_id, unit_id, position) VALUES ($1, $2, $3, $4)")
                .bind(cycle)
                .bind(group)
                .bind(id)
                .bind(i as i64)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn create_group(&self, p: Principal, req: CreateGroupRequest) -> Result<Group, Error> {
        p.require(&[Role::Office], "create groups")?;
        let digest = idempotency::request_digest("CreateGroup", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        admit(&self.db, &p, "CreateGroup", &cycle, None).await?;
        let group = req.group.clone().unwrap_or_default();
        let mut v = Violations::new();
        v.check(
            names::valid_id(&req.group_id),
            "group_id",
            "must be 1-63 lower-case letters, digits or dashes",
        );
        text::required(
            &mut v,
            "group.display_name",
            &group.display_name,
            text::LABEL,
        );
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let ids = Self::check_members(
            &mut tx,
            &cycle,
            &req.group_id,
            &group.units,
            "group.units",
            &mut v,
        )
        .await?;
        v.into_result()?;
        let exists = sqlx::query("SELECT 1 FROM peer_groups WHERE cycle_id = $1 AND id = $2")
            .bind(&cycle)
            .bind(&req.group_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(Error::AlreadyExists {
                resource: format!("cycles/{cycle}/groups/{}", req.group_id),
            });
        }
        let scheme = rules::default_scheme(String::new());
        sqlx::query("INSERT INTO peer_groups (cycle_id, id, display_name, scheme, scheme_rev) VALUES ($1, $2, $3, $4, 1)")
            .bind(&cycle)
            .bind(&req.group_id)
            .bind(group.display_name.trim())
            .bind(scheme.encode_to_vec())
            .execute(&mut *tx)
            .await?;
        Self::write_members(&mut tx, &cycle, &req.group_id, &ids).await?;
        let created = load_group(&mut tx, &cycle, &req.group_id).await?.group;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "groups.create",
                resource: &created.name,
                reason: "",
                detail: json!({"units": created.units}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "CreateGroup",
            &digest,
            &created,
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn update_group(&self, p: Principal, req: UpdateGroupRequest) -> Result<Group, Error> {
        p.require(&[Role::Office], "update groups")?;
        let group = req.group.unwrap_or_default();
        let (cycle, gid) = names::group_name(&group.name, "group.name")?;
        admit(&self.db, &p, "UpdateGroup", cycle, None).await?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid("update_mask", "name the fields to change"));
        }
        let mut tx = self.db.write.begin().await?;
        let current = load_group(&mut tx, cycle, gid).await?;
        let mut v = Violations::new();
        let mut display = current.group.display_name.clone();
        let mut members = None;
        for path in &paths {
            match path.as_str() {
                "display_name" => {
                    text::required(
                        &mut v,
                        "group.display_name",
                        &group.display_name,
                        text::LABEL,
                    );
                    display = group.display_name.trim().to_string();
                }
                "units" => {
                    members = Some(
                        Self::check_members(
                            &mut tx,
                            cycle,
                            gid,
                            &group.units,
                            "group.units",
                            &mut v,
                        )
                        .await?,
                    )
                }
                other => v.add(
                    "update_mask",
                    format!("{other:?} cannot be updated; use display_name or units"),
                ),
            }
        }
        v.into_result()?;
        sqlx::query("UPDATE peer_groups SET display_name = $1 WHERE cycle_id = $2 AND id = $3")
            .bind(&display)
            .bind(cycle)
            .bind(gid)
            .execute(&mut *tx)
            .await?;
        if let Some(ids) = &members {
            Self::write_members(&mut tx, cycle, gid, ids).await?;
        }
        let updated = load_group(&mut tx, cycle, gid).await?.group;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "groups.update",
                resource: &updated.name,
                reason: "",
                detail: json!({"fields": paths, "units": updated.units}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn update_scheme(&self, p: Principal, req: UpdateSchemeRequest) -> Result<Scheme, Error> {
        p.require(&[Role::Office], "change scoring schemes")?;
        let incoming = req.scheme.unwrap_or_default();
        let ids = names::parse(&incoming.name, "cycles/*/groups/*/scheme", "scheme.name")?;
        let (cycle, gid) = (ids[0], ids[1]);
        admit(&self.db, &p, "UpdateScheme", cycle, None).await?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid("update_mask", "name the fields to change"));
        }
        let mut tx = self.db.write.begin().await?;
        let current = load_group(&mut tx, cycle, gid).await?;
        if !incoming.etag.is_empty() && incoming.etag != current.scheme.etag {
            return Err(Error::Aborted {
                reason: "ETAG_MISMATCH",
                message: format!("{} changed since it was read; read it again", incoming.name),
            });
        }
        let mut s = current.scheme.clone();
        let mut v = Violations::new();
        for path in &paths {
            match path.as_str() {
                "indicator_max" => s.indicator_max = incoming.indicator_max.clone(),
                "survey_max" => s.survey_max = incoming.survey_max.clone(),
                "online_max" => s.online_max = incoming.online_max.clone(),
                "mutual_max" => s.mutual_max = incoming.mutual_max.clone(),
                "inspection_cap" => s.inspection_cap = incoming.inspection_cap.clone(),
                "answer_values" => s.answer_values = incoming.answer_values.clone(),
                "category_weights" => s.category_weights = incoming.category_weights.clone(),
                "min_sample" => s.min_sample = incoming.min_sample,
                "mutual_scale" => s.mutual_scale = incoming.mutual_scale,
                "grade_values" => s.grade_values = incoming.grade_values.clone(),
                "mutual_trim_min_raters" => {
                    s.mutual_trim_min_raters = incoming.mutual_trim_min_raters
                }
                "peer_rank_floor" => s.peer_rank_floor = incoming.peer_rank_floor.clone(),
                "at_risk_threshold" => s.at_risk_threshold = incoming.at_risk_threshold.clone(),
                "credit_points" => s.credit_points = incoming.credit_points.clone(),
                "spot_check_deductions" => {
                    s.spot_check_deductions = incoming.spot_check_deductions.clone()
                }
                other => v.add("update_mask", format!("{other:?} is not a scheme field")),
            }
        }
        rules::check_scheme(&mut s, &mut v, "scheme");
        v.into_result()?;
        let mut stored = s.clone();
        stored.name.clear();
        stored.etag.clear();
        sqlx::query("UPDATE peer_groups SET scheme = $1, scheme_rev = scheme_rev + 1 WHERE cycle_id = $2 AND id = $3")
            .bind(stored.encode_to_vec())
            .bind(cycle)
            .bind(gid)
            .execute(&mut *tx)
            .await?;
        let updated = load_group(&mut tx, cycle, gid).await?.scheme;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "schemes.update",
                resource: &updated.name,
                reason: "",
                detail: json!({"fields": paths}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn replace_framework(
        &self,
        p: Principal,
        req: ReplaceFrameworkRequest,
    ) -> Result<Framework, Error> {
        p.require(&[Role::Office], "define indicator frameworks")?;
        let digest = idempotency::request_digest("ReplaceFramework", &req);
        let ids = names::parse(&req.name, "cycles/*/groups/*/framework", "name")?;
        let (cycle, gid) = (ids[0], ids[1]);
        admit(&self.db, &p, "ReplaceFramework", cycle, None).await?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let g = load_group(&mut tx, cycle, gid).await?;
        let known = known_units(&mut tx).await?;
        let members: HashSet<String> = g.group.units.iter().cloned().collect();
        let indicator_max = decimal::figure(&g.scheme.indicator_max)
            .map_err(|e| Error::internal(std::io::Error::other(e)))?;
        let mut indicators = req.indicators.clone();
        let mut v = Violations::new();
        let total = rules::check_framework(
            &mut indicators,
            &rules::FrameworkContext {
                known_units: &known,
                members: &members,
                indicator_max,
            },
            &mut v,
        );
        v.into_result()?;
        let approved = sqlx::query(
            "SELECT 1 FROM plans WHERE cycle_id = $1 AND group_id = $2 AND approved_version > 0",
        )
        .bind(cycle)
        .bind(gid)
        .fetch_optional(&mut *tx)
        .await?;
        if approved.is_some() {
            return Err(Error::precondition(
                "PLANS_APPROVED",
                format!(
                    "plans of {} were approved against the current framework; it can no longer be replaced",
                    g.group.name
                ),
            ));
        }
        let now = now_ms();
        let framework = Framework {
            name: format!("cycles/{cycle}/groups/{gid}/framework"),
            indicators,
            total_weight: Some(decimal::to_proto(total)),
            update_time: Some(timestamp(now)),
        };
        sqlx::query("UPDATE peer_groups SET framework = $1, framework_ms = $2 WHERE cycle_id = $3 AND id = $4")
            .bind(framework.encode_to_vec())
            .bind(now)
            .bind(cycle)
            .bind(gid)
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "frameworks.replace",
                resource: &framework.name,
                reason: "",
                detail: json!({"indicators": framework.indicators.iter().map(|i| &i.code).collect::<Vec<_>>(), "total_weight": decimal::canonical(total)}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "ReplaceFramework",
            &digest,
            &framework,
        )
        .await?;
        tx.commit().await?;
        Ok(framework)
    }

    /// The framework a plan is checked against; FRAMEWORK_INCOMPLETE when
    /// the group has none yet.
    fn framework_of(g: &GroupRow) -> Result<Framework, Error> {
        g.framework.clone().ok_or_else(|| {
            Error::precondition(
                "FRAMEWORK_INCOMPLETE",
                format!("{} has no indicator framework yet", g.group.name),
            )
        })
    }

    async fn create_plan(&self, p: Principal, req: CreatePlanRequest) -> Result<Plan, Error> {
        let digest = idempotency::request_digest("CreatePlan", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let mut plan = req.plan.clone().unwrap_or_default();
        let unit = names::unit_id(&plan.unit, "plan.unit")?.to_string();
        p.require_office_or_unit(Role::Unit, &unit, "create a plan")?;
        admit(&self.db, &p, "CreatePlan", &cycle, Some(&unit)).await?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let gid = group_of(&mut tx, &cycle, &unit).await?.ok_or_else(|| {
            Error::invalid(
                "plan.unit",
                format!("units/{unit} is not in any group of cycles/{cycle}"),
            )
        })?;
        let g = load_group(&mut tx, &cycle, &gid).await?;
        let framework = Self::framework_of(&g)?;
        let mut v = Violations::new();
        rules::check_plan(
            &mut plan,
            &framework,
            &format!("units/{unit}"),
            false,
            &mut v,
        );
        v.into_result()?;
        if sqlx::query("SELECT 1 FROM plans WHERE cycle_id = $1 AND unit_id = $2")
            .bind(&cycle)
            .bind(&unit)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            return Err(Error::AlreadyExists {
                resource: format!("cycles/{cycle}/plans/{unit}"),
            });
        }
        let mut targets = plan.targets.clone();
        rules::apply_assigned_targets(&mut targets, &framework, &format!("units/{unit}"));
        let content = Plan {
            targets,
            goals: plan.goals.clone(),
            ..Default::default()
        };
        let now = now_ms();
        let sql = format!(
            "INSERT INTO plans ({PLAN_COLS}) VALUES ($1, $2, $3, $4, $5, 0, 0, 0, '', 0, '', 1, $6)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&cycle)
            .bind(&unit)
            .bind(&gid)
            .bind(PlanState::Draft as i32 as i64)
            .bind(content.encode_to_vec())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let created = load_plan(&mut tx, &cycle, &unit).await?.proto();
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "plans.create",
                resource: &created.name,
                reason: "",
                detail: json!({"targets": created.targets.len(), "goals": created.goals.len()}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "CreatePlan",
            &digest,
            &created,
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    fn may_read_plan(p: &Principal, unit: &str) -> Result<(), Error> {
        if p.has_any(PLAN_READERS) || p.acts_for(Role::Unit, unit) {
            Ok(())
        } else {
            Err(Error::denied(format!(
                "{} may not read the plan of unit {unit}",
                p.subject
            )))
        }
    }

    async fn get_plan(&self, p: Principal, req: GetPlanRequest) -> Result<Plan, Error> {
        let (cycle, unit) = plan_name(&req.name, "name")?;
        Self::may_read_plan(&p, &unit)?;
        let mut conn = self.db.read.acquire().await?;
        Ok(load_plan(&mut conn, &cycle, &unit).await?.proto())
    }

    async fn list_plans(
        &self,
        p: Principal,
        req: ListPlansRequest,
    ) -> Result<ListPlansResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        // A unit lists only its own plan; readers list all.
        let only_unit = if p.has_any(PLAN_READERS) {
            None
        } else if p.has(Role::Unit) {
            Some(p.own_unit()?.to_string())
        } else {
            return Err(Error::denied(format!("{} may not list plans", p.subject)));
        };
        let group = if req.group.is_empty() {
            None
        } else {
            Some(names::group_name(&req.group, "group")?.1.to_string())
        };
        if PlanState::try_from(req.state).is_err() {
            return Err(Error::invalid(
                "state",
                "must be a plan state, or unset for every state",
            ));
        }
        let pg = page(req.page_size, &req.page_token, 100, 1000)?;
        let sql = format!(
            "SELECT {PLAN_COLS} FROM plans WHERE cycle_id = $1
             AND ($2 = '' OR group_id = $2) AND ($3 = '' OR unit_id = $3) AND ($4 = 0 OR state = $4)
             ORDER BY group_id, unit_id LIMIT $5 OFFSET $6"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&cycle)
            .bind(group.unwrap_or_default())
            .bind(only_unit.unwrap_or_default())
            .bind(i64::from(req.state))
            .bind(pg.fetch_limit())
            .bind(pg.offset)
            .fetch_all(&self.db.read)
            .await?;
        let mut plans = rows
            .iter()
            .map(|r| plan_row(r).map(|p| p.proto()))
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = pg.next_token(&mut plans);
        Ok(ListPlansResponse {
            plans,
            next_page_token,
        })
    }

    async fn update_plan(&self, p: Principal, req: UpdatePlanRequest) -> Result<Plan, Error> {
        let mut incoming = req.plan.unwrap_or_default();
        let (cycle, unit) = plan_name(&incoming.name, "plan.name")?;
        if !p.acts_for(Role::Unit, &unit) {
            return Err(Error::denied(format!("only unit {unit} edits its plan")));
        }
        admit(&self.db, &p, "UpdatePlan", &cycle, Some(&unit)).await?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "name the fields to change: targets, goals",
            ));
        }
        let mut tx = self.db.write.begin().await?;
        let mut plan = load_plan(&mut tx, &cycle, &unit).await?;
        check_etag(&plan, &incoming.etag)?;
        require_state(&plan, &[PlanState::Draft, PlanState::Returned], "edit it")?;
        let g = load_group(&mut tx, &cycle, &plan.group).await?;
        let framework = Self::framework_of(&g)?;
        let mut v = Violations::new();
        rules::check_plan(
            &mut incoming,
            &framework,
            &format!("units/{unit}"),
            false,
            &mut v,
        );
        for path in &paths {
            match path.as_str() {
                "targets" => {
                    let mut targets = incoming.targets.clone();
                    rules::apply_assigned_targets(
                        &mut targets,
                        &framework,
                        &format!("units/{unit}"),
                    );
                    plan.content.targets = targets;
                }
                "goals" => plan.content.goals = incoming.goals.clone(),
                other => v.add(
                    "update_mask",
                    format!("{other:?} cannot be updated; use targets or goals"),
                ),
            }
        }
        v.into_result()?;
        save_plan(&mut tx, &mut plan).await?;
        let updated = plan.proto();
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "plans.update",
                resource: &updated.name,
                reason: "",
                detail: json!({"fields": paths}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    async fn submit_plan(&self, p: Principal, req: SubmitPlanRequest) -> Result<Plan, Error> {
        let digest = idempotency::request_digest("SubmitPlan", &req);
        let (cycle, unit) = plan_name(&req.name, "name")?;
        if !p.acts_for(Role::Unit, &unit) {
            return Err(Error::denied(format!("only unit {unit} submits its plan")));
        }
        let opened_late = admit(&self.db, &p, "SubmitPlan", &cycle, Some(&unit)).await?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let c = load_cycle(&mut tx, &cycle).await?;
        let mut plan = load_plan(&mut tx, &cycle, &unit).await?;
        check_etag(&plan, &req.etag)?;
        require_state(&plan, &[PlanState::Draft, PlanState::Returned], "submit it")?;
        let g = load_group(&mut tx, &cycle, &plan.group).await?;
        let framework = Self::framework_of(&g)?;
        let mut content = plan.content.clone();
        let mut v = Violations::new();
        rules::check_plan(
            &mut content,
            &framework,
            &format!("units/{unit}"),
            true,
            &mut v,
        );
        v.into_result()?;
        // An amendment of an approved plan is the office's decision to take,
        // not a deadline matter (late only when a lock exception let it in
        // outside its phases); a first plan obeys the plan deadline.
        let late = if plan.amending {
            opened_late
        } else {
            let (w, _) = window(&mut tx, &c, &unit, LockScope::Plan).await?;
            if !w.open {
                return Err(closed_error(&c, LockScope::Plan, &w));
            }
            w.late
        };
        plan.version += 1;
        plan.state = PlanState::Submitted;
        plan.late = late;
        plan.return_reason.clear();
        plan.content = content;
        sqlx::query(
            "INSERT INTO plan_versions (cycle_id, unit_id, version, content, submitted_by, submit_ms, late, amendment,
             amendment_reason, outcome, decided_by, decide_ms, decision_note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', NULL, '')",
        )
        .bind(&cycle)
        .bind(&unit)
        .bind(plan.version)
        .bind(plan.content.encode_to_vec())
        .bind(&p.subject)
        .bind(now_ms())
        .bind(i64::from(late))
        .bind(i64::from(plan.amending))
        .bind(&plan.amend_reason)
        .bind(VersionOutcome::Pending as i32 as i64)
        .execute(&mut *tx)
        .await?;
        save_plan(&mut tx, &mut plan).await?;
        let submitted = plan.proto();
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "plans.submit",
                resource: &submitted.name,
                reason: &plan.amend_reason,
                detail: json!({"version": plan.version, "late": late, "amendment": plan.amending}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "SubmitPlan",
            &digest,
            &submitted,
        )
        .await?;
        tx.commit().await?;
        Ok(submitted)
    }

    /// Records the office's decision on the pending version.
    async fn decide(
        conn: &mut AnyConnection,
        p: &Principal,
        plan: &PlanRow,
        outcome: VersionOutcome,
        note: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE plan_versions SET outcome = $1, decided_by = $2, decide_ms = $3, decision_note = $4
             WHERE cycle_id = $5 AND unit_id = $6 AND version = $7",
        )
        .bind(outcome as i32 as i64)
        .bind(&p.subject)
        .bind(now_ms())
        .bind(note)
        .bind(&plan.cycle)
        .bind(&plan.unit)
        .bind(plan.version)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn approve_plan(&self, p: Principal, req: ApprovePlanRequest) -> Result<Plan, Error> {
        p.require(&[Role::Office], "approve plans")?;
        let (cycle, unit) = plan_name(&req.name, "name")?;
        admit(&self.db, &p, "ApprovePlan", &cycle, Some(&unit)).await?;
        let mut v = Violations::new();
        text::optional(&mut v, "comment", &req.comment, text::NOTE);
        v.into_result()?;
        let mut tx = self.db.write.begin().await?;
        let mut plan = load_plan(&mut tx, &cycle, &unit).await?;
        check_etag(&plan, &req.etag)?;
        require_state(&plan, &[PlanState::Submitted], "approve it")?;
        Self::decide(
            &mut tx,
            &p,
            &plan,
            VersionOutcome::Approved,
            req.comment.trim(),
        )
        .await?;
        if plan.approved_version > 0 {
            sqlx::query("UPDATE plan_versions SET outcome = $1 WHERE cycle_id = $2 AND unit_id = $3 AND version = $4")
                .bind(VersionOutcome::Superseded as i32 as i64)
                .bind(&cycle)
                .bind(&unit)
                .bind(plan.approved_version)
                .execute(&mut *tx)
                .await?;
        }
        plan.state = PlanState::Approved;
        plan.approved_version = plan.version;
        plan.amending = false;
        plan.amend_reason.clear();
        save_plan(&mut tx, &mut plan).await?;
        let approved = plan.proto();
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "plans.approve",
                resource: &approved.name,
                reason: req.comment.trim(),
                detail: json!({"version": plan.version}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(approved)
    }

    async fn return_plan(&self, p: Principal, req: ReturnPlanRequest) -> Result<Plan, Error> {
        p.require(&[Role::Office], "return plans")?;
        let (cycle, unit) = plan_name(&req.name, "name")?;
        admit(&self.db, &p, "ReturnPlan", &cycle, Some(&unit)).await?;
        text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "a returned plan needs a reason",
        )?;
        let mut tx = self.db.write.begin().await?;
        let mut plan = load_plan(&mut tx, &cycle, &unit).await?;
        check_etag(&plan, &req.etag)?;
        require_state(&plan, &[PlanState::Submitted], "return it")?;
        Self::decide(
            &mut tx,
            &p,
            &plan,
            VersionOutcome::Returned,
            req.reason.trim(),
        )
        .await?;
        plan.state = PlanState::Returned;
        plan.return_reason = req.reason.trim().to_string();
        save_plan(&mut tx, &mut plan).await?;
        let returned = plan.proto();
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "plans.return",
                resource: &returned.name,
                reason: req.reason.trim(),
                detail: json!({"version": plan.version}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(returned)
    }

    async fn amend_plan(&self, p: Principal, req: AmendPlanRequest) -> Result<Plan, Error> {
        let (cycle, unit) = plan_name(&req.name, "name")?;
        if !p.acts_for(Role::Unit, &unit) {
            return Err(Error::denied(format!("only unit {unit} amends its plan")));
        }
        admit(&self.db, &p, "AmendPlan", &cycle, Some(&unit)).await?;
        text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "an amendment needs a reason",
        )?;
        let mut tx = self.db.write.begin().await?;
        let mut plan = load_plan(&mut tx, &cycle, &unit).await?;
        check_etag(&plan, &req.etag)?;
        require_state(&plan, &[PlanState::Approved], "amend it")?;
        plan.state = PlanState::Draft;
        plan.amending = true;
        plan.amend_reason = req.reason.trim().to_string();
        save_plan(&mut tx, &mut plan).await?;
        let amended = plan.proto();
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "plans.amend",
                resource: &amended.name,
                reason: req.reason.trim(),
                detail: json!({"approved_version": plan.approved_version}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(amended)
    }

    async fn versions(
        conn: &mut AnyConnection,
        cycle: &str,
        unit: &str,
        only: Option<i64>,
    ) -> Result<Vec<PlanVersion>, Error> {
        let rows = sqlx::query(
            "SELECT version, content, submitted_by, submit_ms, late, amendment, amendment_reason, outcome,
             decided_by, decide_ms, decision_note
             FROM plan_versions WHERE cycle_id = $1 AND unit_id = $2 AND ($3 = 0 OR version = $3) ORDER BY version",
        )
        .bind(cycle)
        .bind(unit)
        .bind(only.unwrap_or(0))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                let version: i64 = r.try_get("version")?;
                let content: Plan = decode(&r.try_get::<Vec<u8>, _>("content")?)?;
                Ok(PlanVersion {
                    name: format!("cycles/{cycle}/plans/{unit}/versions/{version}"),
                    version: version as i32,
                    targets: content.targets,
                    goals: content.goals,
                    submitted_by: r.try_get("submitted_by")?,
                    submit_time: Some(timestamp(r.try_get("submit_ms")?)),
                    late: bool_col(r, "late")?,
                    amendment: bool_col(r, "amendment")?,
                    amendment_reason: r.try_get("amendment_reason")?,
                    outcome: r.try_get::<i64, _>("outcome")? as i32,
                    decided_by: r.try_get("decided_by")?,
                    decide_time: opt_timestamp(r.try_get("decide_ms")?),
                    decision_note: r.try_get("decision_note")?,
                })
            })
            .collect()
    }

    async fn group_targets(
        &self,
        p: Principal,
        req: GetGroupTargetsRequest,
    ) -> Result<GroupTargets, Error> {
        p.require(PLAN_READERS, "read a group's approved targets")?;
        let (cycle, gid) = names::group_name(&req.group, "group")?;
        let mut conn = self.db.read.acquire().await?;
        let g = load_group(&mut conn, cycle, gid).await?;
        let rows = sqlx::query(
            "SELECT p.unit_id, p.approved_version, v.content FROM plans p
             JOIN plan_versions v ON v.cycle_id = p.cycle_id AND v.unit_id = p.unit_id AND v.version = p.approved_version
             WHERE p.cycle_id = $1 AND p.group_id = $2 AND p.approved_version > 0",
        )
        .bind(cycle)
        .bind(gid)
        .fetch_all(&mut *conn)
        .await?;
        let mut approved = std::collections::HashMap::new();
        for r in &rows {
            let unit: String = r.try_get("unit_id")?;
            let content: Plan = decode(&r.try_get::<Vec<u8>, _>("content")?)?;
            approved.insert(
                format!("units/{unit}"),
                (
                    r.try_get::<i64, _>("approved_version")? as i32,
                    content.targets,
                ),
            );
        }
        let units = g
            .group
            .units
            .iter()
            .map(|u| {
                let (approved_version, targets) = approved.remove(u).unwrap_or_default();
                UnitTargets {
                    unit: u.clone(),
                    approved_version,
                    targets,
                }
            })
            .collect();
        Ok(GroupTargets {
            group: g.group.name,
            units,
        })
    }

    async fn list_plan_versions(
        &self,
        p: Principal,
        req: ListPlanVersionsRequest,
    ) -> Result<ListPlanVersionsResponse, Error> {
        let (cycle, unit) = plan_name(&req.parent, "parent")?;
        Self::may_read_plan(&p, &unit)?;
        let pg = page(req.page_size, &req.page_token, 50, 500)?;
        let mut conn = self.db.read.acquire().await?;
        load_plan(&mut conn, &cycle, &unit).await?;
        let all = Self::versions(&mut conn, &cycle, &unit, None).await?;
        let mut versions: Vec<_> = all
            .into_iter()
            .skip(pg.offset as usize)
            .take(pg.fetch_limit() as usize)
            .collect();
        let next_page_token = pg.next_token(&mut versions);
        Ok(ListPlanVersionsResponse {
            versions,
            next_page_token,
        })
    }

    async fn diff_plan_versions(
        &self,
        p: Principal,
        req: DiffPlanVersionsRequest,
    ) -> Result<DiffPlanVersionsResponse, Error> {
        let (cycle, unit) = plan_name(&req.name, "name")?;
        Self::may_read_plan(&p, &unit)?;
        let mut v = Violations::new();
        v.check(
            req.from_version >= 1,
            "from_version",
            "must be a version number from 1",
        );
        v.check(
            req.to_version >= 1,
            "to_version",
            "must be a version number from 1",
        );
        v.into_result()?;
        let mut conn = self.db.read.acquire().await?;
        let mut get = async |n: i32, field: &str| -> Result<PlanVersion, Error> {
            Self::versions(&mut conn, &cycle, &unit, Some(i64::from(n)))
                .await?
                .pop()
                .ok_or_else(|| {
                    Error::invalid(
                        field,
                        format!("cycles/{cycle}/plans/{unit} has no version {n}"),
                    )
                })
        };
        let a = get(req.from_version, "from_version").await?;
        let b = get(req.to_version, "to_version").await?;
        let changes = rules::diff(&a.targets, &a.goals, &b.targets, &b.goals)
            .into_iter()
            .map(|c| FieldChange {
                field: c.field,
                old_value: c.old,
                new_value: c.new,
            })
            .collect();
        Ok(DiffPlanVersionsResponse { changes })
    }

    async fn grant_lock_exception(
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
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        load_cycle(&mut tx, &cycle).await?;
        if sqlx::query("SELECT 1 FROM units WHERE id = $1")
            .bind(&unit)
            .fetch_optional(&mut *tx)
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
        .execute(&mut *tx)
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
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "lock_exceptions.grant",
                resource: &granted.name,
                reason: &granted.reason,
                detail: json!({"unit": granted.unit, "scope": scope.as_str_name(), "expire_ms": expire}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "GrantLockException",
            &digest,
            &granted,
        )
        .await?;
        tx.commit().await?;
        Ok(granted)
    }

    async fn list_lock_exceptions(
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

    async fn check_write_window(
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

    async fn timeliness(
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

    async fn create_notice(&self, p: Principal, req: CreateNoticeRequest) -> Result<Notice, Error> {
        p.require(&[Role::Office], "publish notices")?;
        let digest = idempotency::request_digest("CreateNotice", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        admit(&self.db, &p, "CreateNotice", &cycle, None).await?;
        let n = req.notice.clone().unwrap_or_default();
        let mut v = Violations::new();
        text::required(&mut v, "notice.title", &n.title, text::LABEL);
        text::required(&mut v, "notice.body", &n.body, text::BODY);
        v.into_result()?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        load_cycle(&mut tx, &cycle).await?;
        let id = names::new_id("n");
        let now = now_ms();
        sqlx::query("INSERT INTO notices (cycle_id, id, title, body, author, publish_ms) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&cycle)
            .bind(&id)
            .bind(n.title.trim())
            .bind(n.body.trim())
            .bind(&p.subject)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let created = Notice {
            name: format!("cycles/{cycle}/notices/{id}"),
            title: n.title.trim().into(),
            body: n.body.trim().into(),
            author: p.subject.clone(),
            publish_time: Some(timestamp(now)),
        };
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "notices.create",
                resource: &created.name,
                reason: "",
                detail: json!({"title": created.title}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "CreateNotice",
            &digest,
            &created,
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn verify_audit(
        &self,
        p: Principal,
        _req: VerifyAuditChainRequest,
    ) -> Result<VerifyAuditChainResponse, Error> {
        audit::verify_for_readers(&self.db.read, &p).await
    }

    async fn list_audit(
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

// ---------------------------------------------------------------- reads

impl PlansApi {
    async fn get_cycle(&self, req: GetCycleRequest) -> Result<Cycle, Error> {
        let id = names::cycle_id(&req.name, "name")?;
        let mut conn = self.db.read.acquire().await?;
        Ok(load_cycle(&mut conn, id).await?.proto)
    }

    async fn list_cycles(&self, req: ListCyclesRequest) -> Result<ListCyclesResponse, Error> {
        let pg = page(req.page_size, &req.page_token, 50, 500)?;
        let sql = format!(
            "SELECT {CYCLE_COLS} FROM cycles ORDER BY year DESC, id DESC LIMIT $1 OFFSET $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(pg.fetch_limit())
            .bind(pg.offset)
            .fetch_all(&self.db.read)
            .await?;
        let mut cycles = rows
            .iter()
            .map(|r| cycle_row(r).map(|c| c.proto))
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = pg.next_token(&mut cycles);
        Ok(ListCyclesResponse {
            cycles,
            next_page_token,
        })
    }

    async fn get_unit(&self, req: GetUnitRequest) -> Result<Unit, Error> {
        let id = names::unit_id(&req.name, "name")?;
        let row =
            sqlx::query("SELECT id, name_zh, name_en, kind, create_ms FROM units WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.db.read)
                .await?
                .ok_or_else(|| Error::not_found(req.name.clone()))?;
        unit_proto(&row)
    }

    async fn list_units(&self, req: ListUnitsRequest) -> Result<ListUnitsResponse, Error> {
        let pg = page(req.page_size, &req.page_token, 100, 1000)?;
        let rows = sqlx::query("SELECT id, name_zh, name_en, kind, create_ms FROM units ORDER BY id LIMIT $1 OFFSET $2")
            .bind(pg.fetch_limit())
            .bind(pg.offset)
            .fetch_all(&self.db.read)
            .await?;
        let mut units = rows.iter().map(unit_proto).collect::<Result<Vec<_>, _>>()?;
        let next_page_token = pg.next_token(&mut units);
        Ok(ListUnitsResponse {
            units,
            next_page_token,
        })
    }

    async fn get_group(&self, req: GetGroupRequest) -> Result<Group, Error> {
        let (cycle, gid) = names::group_name(&req.name, "name")?;
        let revision = Changes::revision(&self.db, cycle, gid).await?;
        let mut conn = self.db.read.acquire().await?;
        let mut group = load_group(&mut conn, cycle, gid).await?.group;
        group.revision = revision;
        Ok(group)
    }

    async fn list_groups(&self, req: ListGroupsRequest) -> Result<ListGroupsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?;
        let pg = page(req.page_size, &req.page_token, 50, 500)?;
        let mut conn = self.db.read.acquire().await?;
        load_cycle(&mut conn, cycle).await?;
        let rows = sqlx::query(
            "SELECT id FROM peer_groups WHERE cycle_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
        )
        .bind(cycle)
        .bind(pg.fetch_limit())
        .bind(pg.offset)
        .fetch_all(&mut *conn)
        .await?;
        let mut groups = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id")?;
            groups.push(load_group(&mut conn, cycle, &id).await?.group);
        }
        let next_page_token = pg.next_token(&mut groups);
        Ok(ListGroupsResponse {
            groups,
            next_page_token,
        })
    }

    async fn get_scheme(&self, req: GetSchemeRequest) -> Result<Scheme, Error> {
        let ids = names::parse(&req.name, "cycles/*/groups/*/scheme", "name")?;
        let mut conn = self.db.read.acquire().await?;
        Ok(load_group(&mut conn, ids[0], ids[1]).await?.scheme)
    }

    async fn get_framework(&self, req: GetFrameworkRequest) -> Result<Framework, Error> {
        let ids = names::parse(&req.name, "cycles/*/groups/*/framework", "name")?;
        let mut conn = self.db.read.acquire().await?;
        let g = load_group(&mut conn, ids[0], ids[1]).await?;
        Ok(g.framework.unwrap_or_else(|| Framework {
            name: req.name.clone(),
            total_weight: Some(decimal::to_proto(Decimal::ZERO)),
            ..Default::default()
        }))
    }

    async fn list_notices(&self, req: ListNoticesRequest) -> Result<ListNoticesResponse, Error> {
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

/// Calls any authenticated principal may make: reads of the cycle's public
/// set-up (cycles, units, groups, schemes, frameworks, notices).
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
        signalled!(self, req, update_cycle, |c: &Cycle| c.name.clone())
    }
    async fn set_cycle_phase(&self, req: Request<SetCyclePhaseRequest>) -> Reply<Cycle> {
        signalled!(self, req, set_cycle_phase, |c: &Cycle| c.name.clone())
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
        signalled!(self, req, create_group, |g: &Group| g.name.clone())
    }
    async fn get_group(&self, req: Request<GetGroupRequest>) -> Reply<Group> {
        public_read!(self, req, get_group)
    }
    async fn list_groups(&self, req: Request<ListGroupsRequest>) -> Reply<ListGroupsResponse> {
        public_read!(self, req, list_groups)
    }
    async fn update_group(&self, req: Request<UpdateGroupRequest>) -> Reply<Group> {
        signalled!(self, req, update_group, |g: &Group| g.name.clone())
    }
    async fn get_scheme(&self, req: Request<GetSchemeRequest>) -> Reply<Scheme> {
        public_read!(self, req, get_scheme)
    }
    async fn update_scheme(&self, req: Request<UpdateSchemeRequest>) -> Reply<Scheme> {
        signalled!(self, req, update_scheme, |s: &Scheme| s.name.clone())
    }
    async fn replace_framework(&self, req: Request<ReplaceFrameworkRequest>) -> Reply<Framework> {
        signalled!(self, req, replace_framework, |f: &Framework| f.name.clone())
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
        signalled!(self, req, submit_plan, |p: &Plan| p.group.clone())
    }
    async fn approve_plan(&self, req: Request<ApprovePlanRequest>) -> Reply<Plan> {
        signalled!(self, req, approve_plan, |p: &Plan| p.group.clone())
    }
    async fn return_plan(&self, req: Request<ReturnPlanRequest>) -> Reply<Plan> {
        signalled!(self, req, return_plan, |p: &Plan| p.group.clone())
    }
    async fn amend_plan(&self, req: Request<AmendPlanRequest>) -> Reply<Plan> {
        signalled!(self, req, amend_plan, |p: &Plan| p.group.clone())
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
