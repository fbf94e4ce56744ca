//! Every SQL statement of the plans service, as named functions over the
//! row types of its tables. Deadlines and times are unix milliseconds;
//! schemes, frameworks and plan contents are stored as protobuf.

use std::collections::HashSet;

use jixiao_proto::plans::{
    Cycle, Deadlines, Framework, Group, LockScope, Phase, Plan, PlanState, Scheme, Unit,
};
use jixiao_runtime::{
    Error,
    time::{now_ms, opt_timestamp, timestamp},
};
use prost::Message;
use sqlx::{AnyConnection, Row, any::AnyRow};

pub(crate) fn bool_col(row: &AnyRow, col: &str) -> Result<bool, Error> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

pub(crate) fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, Error> {
    M::decode(bytes).map_err(Error::internal)
}

pub(crate) fn phase_of(v: i64) -> Phase {
    Phase::try_from(v as i32).unwrap_or(Phase::Unspecified)
}

pub(crate) struct CycleRow {
    pub(crate) id: String,
    pub(crate) phase: Phase,
    pub(crate) plan_deadline: Option<i64>,
    pub(crate) data_deadline: Option<i64>,
    pub(crate) review_close: Option<i64>,
    pub(crate) rectification_deadline: Option<i64>,
    pub(crate) proto: Cycle,
}

impl CycleRow {
    pub(crate) fn deadline(&self, scope: LockScope) -> Option<i64> {
        jixiao_runtime::phases::deadline(&self.proto, scope)
    }
}

pub(crate) const CYCLE_COLS: &str = "id, year, title, phase, plan_deadline_ms, data_deadline_ms, review_close_ms, rectification_deadline_ms, create_ms, update_ms";

pub(crate) fn cycle_row(row: &AnyRow) -> Result<CycleRow, Error> {
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

pub(crate) async fn load_cycle(conn: &mut AnyConnection, id: &str) -> Result<CycleRow, Error> {
    let sql = format!("SELECT {CYCLE_COLS} FROM cycles WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("cycles/{id}")))?;
    cycle_row(&row)
}

pub(crate) fn unit_proto(row: &AnyRow) -> Result<Unit, Error> {
    let id: String = row.try_get("id")?;
    Ok(Unit {
        name: format!("units/{id}"),
        display_name_zh: row.try_get("name_zh")?,
        display_name_en: row.try_get("name_en")?,
        kind: row.try_get::<i64, _>("kind")? as i32,
        create_time: Some(timestamp(row.try_get("create_ms")?)),
    })
}

pub(crate) async fn known_units(conn: &mut AnyConnection) -> Result<HashSet<String>, Error> {
    let rows = sqlx::query("SELECT id FROM units")
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok(format!("units/{}", r.try_get::<String, _>("id")?)))
        .collect()
}

/// A group's own row, without its members: what a look-up of its scheme
/// or framework needs. Writers elsewhere ask for the scheme on every
/// score or rating, so its cost must not grow with the group.
pub(crate) struct GroupSettings {
    /// `cycles/{cycle}/groups/{group}`.
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) scheme: Scheme,
    pub(crate) framework: Option<Framework>,
}

pub(crate) async fn load_settings(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<GroupSettings, Error> {
    let name = format!("cycles/{cycle}/groups/{group}");
    let row = sqlx::query(
        "SELECT display_name, scheme, scheme_rev, framework FROM peer_groups WHERE cycle_id = $1 AND id = $2",
    )
    .bind(cycle)
    .bind(group)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found(name.clone()))?;
    let mut scheme: Scheme = decode(&row.try_get::<Vec<u8>, _>("scheme")?)?;
    scheme.name = format!("{name}/scheme");
    scheme.etag = row.try_get::<i64, _>("scheme_rev")?.to_string();
    let framework = match row.try_get::<Option<Vec<u8>>, _>("framework")? {
        Some(b) => Some(decode::<Framework>(&b)?),
        None => None,
    };
    Ok(GroupSettings {
        display_name: row.try_get("display_name")?,
        name,
        scheme,
        framework,
    })
}

/// A group's members as `units/{u}`, in their order.
pub(crate) async fn load_members(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<Vec<String>, Error> {
    let members = sqlx::query(
        "SELECT unit_id FROM group_members WHERE cycle_id = $1 AND group_id = $2 ORDER BY position",
    )
    .bind(cycle)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?;
    members
        .iter()
        .map(|r| Ok(format!("units/{}", r.try_get::<String, _>("unit_id")?)))
        .collect()
}

pub(crate) struct GroupRow {
    pub(crate) group: Group,
    pub(crate) scheme: Scheme,
    pub(crate) framework: Option<Framework>,
}

/// A group with its members: for the calls that answer with them.
pub(crate) async fn load_group(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<GroupRow, Error> {
    let s = load_settings(conn, cycle, group).await?;
    let units = load_members(conn, cycle, group).await?;
    Ok(GroupRow {
        group: Group {
            name: s.name,
            display_name: s.display_name,
            units,
            revision: 0,
        },
        scheme: s.scheme,
        framework: s.framework,
    })
}

/// The group of a unit in a cycle.
pub(crate) async fn group_of(
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

pub(crate) struct PlanRow {
    pub(crate) cycle: String,
    pub(crate) unit: String,
    pub(crate) group: String,
    pub(crate) state: PlanState,
    pub(crate) content: Plan,
    pub(crate) version: i64,
    pub(crate) approved_version: i64,
    pub(crate) amending: bool,
    pub(crate) amend_reason: String,
    pub(crate) late: bool,
    pub(crate) return_reason: String,
    pub(crate) revision: i64,
    pub(crate) update_ms: i64,
}

impl PlanRow {
    pub(crate) fn name(&self) -> String {
        format!("cycles/{}/plans/{}", self.cycle, self.unit)
    }

    pub(crate) fn proto(&self) -> Plan {
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

pub(crate) const PLAN_COLS: &str = "cycle_id, unit_id, group_id, state, content, version, approved_version, amending, amend_reason, late, return_reason, revision, update_ms";

pub(crate) fn plan_row(row: &AnyRow) -> Result<PlanRow, Error> {
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

pub(crate) async fn load_plan(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
) -> Result<PlanRow, Error> {
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
pub(crate) async fn save_plan(conn: &mut AnyConnection, p: &mut PlanRow) -> Result<(), Error> {
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

/// The lock exception in force for a unit and scope, if any: (id, until).
pub(crate) async fn active_exception(
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

mod cycles;
mod plans;
mod setup;
mod windows;

pub(crate) use self::{cycles::*, plans::*, setup::*, windows::*};
