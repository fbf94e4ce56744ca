//! Plans and their versions.

use jixiao_proto::plans::{Plan, PlanState, VersionOutcome};
use jixiao_runtime::{Error, paging::Page, time::now_ms};
use prost::Message;
use sqlx::AnyConnection;

use super::*;

pub(crate) async fn plan_exists(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
) -> Result<bool, Error> {
    Ok(
        sqlx::query("SELECT 1 FROM plans WHERE cycle_id = $1 AND unit_id = $2")
            .bind(cycle)
            .bind(unit)
            .fetch_optional(&mut *conn)
            .await?
            .is_some(),
    )
}

/// A new plan in DRAFT, version 0, revision 1.
pub(crate) async fn insert_plan(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
    group: &str,
    content: &Plan,
    now_ms: i64,
) -> Result<(), Error> {
    let sql = format!(
        "INSERT INTO plans ({PLAN_COLS}) VALUES ($1, $2, $3, $4, $5, 0, 0, 0, '', 0, '', 1, $6)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(cycle)
        .bind(unit)
        .bind(group)
        .bind(PlanState::Draft as i32 as i64)
        .bind(content.encode_to_vec())
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// What a list of plans is narrowed to (empty, 0: any).
pub(crate) struct PlanFilter<'a> {
    pub(crate) cycle: &'a str,
    pub(crate) group: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) state: i32,
}

/// A page of plans in group and unit order.
pub(crate) async fn plans(
    conn: &mut AnyConnection,
    f: &PlanFilter<'_>,
    page: &Page,
) -> Result<Vec<Plan>, Error> {
    let sql = format!(
        "SELECT {PLAN_COLS} FROM plans WHERE cycle_id = $1
         AND ($2 = '' OR group_id = $2) AND ($3 = '' OR unit_id = $3) AND ($4 = 0 OR state = $4)
         ORDER BY group_id, unit_id LIMIT $5 OFFSET $6"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(f.cycle)
        .bind(f.group)
        .bind(f.unit)
        .bind(i64::from(f.state))
        .bind(page.fetch_limit())
        .bind(page.offset)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| plan_row(r).map(|p| p.proto()))
        .collect()
}

/// Records a submission as the plan's version `plan.version`, pending.
pub(crate) async fn insert_version(
    conn: &mut AnyConnection,
    plan: &PlanRow,
    by: &str,
    late: bool,
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO plan_versions (cycle_id, unit_id, version, content, submitted_by, submit_ms, late, amendment,
         amendment_reason, outcome, decided_by, decide_ms, decision_note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', NULL, '')",
    )
    .bind(&plan.cycle)
    .bind(&plan.unit)
    .bind(plan.version)
    .bind(plan.content.encode_to_vec())
    .bind(by)
    .bind(now_ms)
    .bind(i64::from(late))
    .bind(i64::from(plan.amending))
    .bind(&plan.amend_reason)
    .bind(VersionOutcome::Pending as i32 as i64)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the office's decision on the pending version.
pub(crate) async fn decide_version(
    conn: &mut AnyConnection,
    p: &jixiao_runtime::Principal,
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

/// Marks an earlier approved version as superseded by a new approval.
pub(crate) async fn supersede_version(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
    version: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE plan_versions SET outcome = $1 WHERE cycle_id = $2 AND unit_id = $3 AND version = $4",
    )
    .bind(VersionOutcome::Superseded as i32 as i64)
    .bind(cycle)
    .bind(unit)
    .bind(version)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
