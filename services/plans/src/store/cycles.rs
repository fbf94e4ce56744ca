//! Cycles: their rows, phases and deadlines.

use jixiao_proto::plans::{Cycle, Phase};
use jixiao_runtime::{Error, paging::Page};
use sqlx::AnyConnection;

use super::*;

pub(crate) async fn cycle_exists(conn: &mut AnyConnection, id: &str) -> Result<bool, Error> {
    Ok(sqlx::query("SELECT 1 FROM cycles WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

/// A new cycle in PLANNING; `deadlines` in plan, data, review, rectification
/// order.
pub(crate) async fn insert_cycle(
    conn: &mut AnyConnection,
    id: &str,
    year: i32,
    title: &str,
    deadlines: [Option<i64>; 4],
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO cycles (id, year, title, phase, plan_deadline_ms, data_deadline_ms, review_close_ms,
         rectification_deadline_ms, create_ms, update_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(id)
    .bind(i64::from(year))
    .bind(title)
    .bind(Phase::Planning as i32 as i64)
    .bind(deadlines[0])
    .bind(deadlines[1])
    .bind(deadlines[2])
    .bind(deadlines[3])
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn update_cycle(
    conn: &mut AnyConnection,
    id: &str,
    title: &str,
    deadlines: [Option<i64>; 4],
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE cycles SET title = $1, plan_deadline_ms = $2, data_deadline_ms = $3, review_close_ms = $4,
         rectification_deadline_ms = $5, update_ms = $6 WHERE id = $7",
    )
    .bind(title)
    .bind(deadlines[0])
    .bind(deadlines[1])
    .bind(deadlines[2])
    .bind(deadlines[3])
    .bind(now_ms)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn set_phase(
    conn: &mut AnyConnection,
    id: &str,
    phase: Phase,
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query("UPDATE cycles SET phase = $1, update_ms = $2 WHERE id = $3")
        .bind(phase as i32 as i64)
        .bind(now_ms)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A page of cycles, newest year first.
pub(crate) async fn cycles(conn: &mut AnyConnection, page: &Page) -> Result<Vec<Cycle>, Error> {
    let sql =
        format!("SELECT {CYCLE_COLS} FROM cycles ORDER BY year DESC, id DESC LIMIT $1 OFFSET $2");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(page.fetch_limit())
        .bind(page.offset)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|r| cycle_row(r).map(|c| c.proto)).collect()
}

/// The ids of a cycle's groups.
pub(crate) async fn group_ids(conn: &mut AnyConnection, cycle: &str) -> Result<Vec<String>, Error> {
    Ok(
        sqlx::query_scalar("SELECT id FROM peer_groups WHERE cycle_id = $1")
            .bind(cycle)
            .fetch_all(&mut *conn)
            .await?,
    )
}
