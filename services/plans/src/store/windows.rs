//! Lock exceptions, timeliness and notices.

use jixiao_proto::plans::{LockException, Notice, Plan, PlanVersion, UnitTimeliness};
use jixiao_runtime::{
    Error,
    paging::Page,
    time::{opt_timestamp, timestamp},
};
use sqlx::{AnyConnection, Row};

use super::*;

/// Stores a lock exception (`e`'s reason and grantor) until `expire_ms`.
pub(crate) async fn insert_exception(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
    unit: &str,
    e: &LockException,
    expire_ms: i64,
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO lock_exceptions (cycle_id, id, unit_id, scope, expire_ms, reason, granted_by, create_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(cycle)
    .bind(id)
    .bind(unit)
    .bind(i64::from(e.scope))
    .bind(expire_ms)
    .bind(&e.reason)
    .bind(&e.granted_by)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether the cycle has a lock exception with this id.
pub(crate) async fn exception_exists(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
) -> Result<bool, Error> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT id FROM lock_exceptions WHERE cycle_id = $1 AND id = $2")
            .bind(cycle)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

/// Whether the cycle has a notice with this id.
pub(crate) async fn notice_exists(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
) -> Result<bool, Error> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT id FROM notices WHERE cycle_id = $1 AND id = $2")
            .bind(cycle)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

/// A page of a cycle's lock exceptions, newest first, of one unit or all.
pub(crate) async fn exceptions(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
    page: &Page,
) -> Result<Vec<LockException>, Error> {
    let rows: Vec<(String, String, i64, i64, String, String, i64)> = sqlx::query_as(
        "SELECT id, unit_id, scope, expire_ms, reason, granted_by, create_ms FROM lock_exceptions
         WHERE cycle_id = $1 AND ($2 = '' OR unit_id = $2) ORDER BY create_ms DESC, id DESC LIMIT $3 OFFSET $4",
    )
    .bind(cycle)
    .bind(unit)
    .bind(page.fetch_limit())
    .bind(page.offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, unit, scope, expire_ms, reason, granted_by, create_ms)| LockException {
                name: format!("cycles/{cycle}/lockExceptions/{id}"),
                unit: format!("units/{unit}"),
                scope: scope as i32,
                expire_time: Some(timestamp(expire_ms)),
                reason,
                granted_by,
                create_time: Some(timestamp(create_ms)),
            },
        )
        .collect())
}

/// Each member of a cycle's groups with its first submission and whether
/// any submission was late.
pub(crate) async fn timeliness(
    conn: &mut AnyConnection,
    cycle: &str,
) -> Result<Vec<UnitTimeliness>, Error> {
    let rows: Vec<(String, String, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT m.group_id, m.unit_id, MIN(v.submit_ms) AS first_ms, MAX(v.late) AS any_late
         FROM group_members m
         LEFT JOIN plan_versions v ON v.cycle_id = m.cycle_id AND v.unit_id = m.unit_id
         WHERE m.cycle_id = $1 GROUP BY m.group_id, m.unit_id ORDER BY m.group_id, m.unit_id",
    )
    .bind(cycle)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(group, unit, first, late)| UnitTimeliness {
            unit: format!("units/{unit}"),
            group: format!("cycles/{cycle}/groups/{group}"),
            first_submit_time: opt_timestamp(first),
            late: late.unwrap_or(0) != 0,
            missing: first.is_none(),
        })
        .collect())
}

pub(crate) async fn insert_notice(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
    n: &Notice,
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO notices (cycle_id, id, title, body, author, publish_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(cycle)
    .bind(id)
    .bind(&n.title)
    .bind(&n.body)
    .bind(&n.author)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A page of a cycle's notices, newest first.
pub(crate) async fn notices(
    conn: &mut AnyConnection,
    cycle: &str,
    page: &Page,
) -> Result<Vec<Notice>, Error> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT id, title, body, author, publish_ms FROM notices WHERE cycle_id = $1
         ORDER BY publish_ms DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(cycle)
    .bind(page.fetch_limit())
    .bind(page.offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, title, body, author, publish_ms)| Notice {
            name: format!("cycles/{cycle}/notices/{id}"),
            title,
            body,
            author,
            publish_time: Some(timestamp(publish_ms)),
        })
        .collect())
}

/// A plan's versions (or only version `only`), oldest first.
pub(crate) async fn plan_versions(
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

/// The approved content of each plan of a group: (unit, version, plan).
pub(crate) async fn approved_contents(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<Vec<(String, i64, Plan)>, Error> {
    let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT p.unit_id, p.approved_version, v.content FROM plans p
         JOIN plan_versions v ON v.cycle_id = p.cycle_id AND v.unit_id = p.unit_id AND v.version = p.approved_version
         WHERE p.cycle_id = $1 AND p.group_id = $2 AND p.approved_version > 0",
    )
    .bind(cycle)
    .bind(group)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|(unit, version, content)| Ok((unit, version, decode(&content)?)))
        .collect()
}
