//! Units, groups with their members, schemes and frameworks.

use jixiao_proto::plans::{Framework, Scheme, Unit};
use jixiao_runtime::{Error, paging::Page};
use prost::Message;
use sqlx::AnyConnection;

use super::*;

pub(crate) async fn unit_exists(conn: &mut AnyConnection, id: &str) -> Result<bool, Error> {
    Ok(sqlx::query("SELECT 1 FROM units WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

pub(crate) async fn insert_unit(
    conn: &mut AnyConnection,
    id: &str,
    name_zh: &str,
    name_en: &str,
    kind: i32,
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO units (id, name_zh, name_en, kind, create_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(name_zh)
    .bind(name_en)
    .bind(i64::from(kind))
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn unit(conn: &mut AnyConnection, id: &str) -> Result<Option<Unit>, Error> {
    let row = sqlx::query("SELECT id, name_zh, name_en, kind, create_ms FROM units WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(unit_proto).transpose()
}

/// A page of units in id order.
pub(crate) async fn units(conn: &mut AnyConnection, page: &Page) -> Result<Vec<Unit>, Error> {
    let rows = sqlx::query(
        "SELECT id, name_zh, name_en, kind, create_ms FROM units ORDER BY id LIMIT $1 OFFSET $2",
    )
    .bind(page.fetch_limit())
    .bind(page.offset)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(unit_proto).collect()
}

pub(crate) async fn group_exists(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
) -> Result<bool, Error> {
    Ok(
        sqlx::query("SELECT 1 FROM peer_groups WHERE cycle_id = $1 AND id = $2")
            .bind(cycle)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .is_some(),
    )
}

/// A new group with the default scheme and no framework yet.
pub(crate) async fn insert_group(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
    display_name: &str,
    scheme: &Scheme,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO peer_groups (cycle_id, id, display_name, scheme, scheme_rev) VALUES ($1, $2, $3, $4, 1)",
    )
    .bind(cycle)
    .bind(id)
    .bind(display_name)
    .bind(scheme.encode_to_vec())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn rename_group(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
    display_name: &str,
) -> Result<(), Error> {
    sqlx::query("UPDATE peer_groups SET display_name = $1 WHERE cycle_id = $2 AND id = $3")
        .bind(display_name)
        .bind(cycle)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Makes `units` (ids, in order) the members of a group.
pub(crate) async fn replace_members(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
    units: &[String],
) -> Result<(), Error> {
    sqlx::query("DELETE FROM group_members WHERE cycle_id = $1 AND group_id = $2")
        .bind(cycle)
        .bind(group)
        .execute(&mut *conn)
        .await?;
    for (i, id) in units.iter().enumerate() {
        sqlx::query(
            "INSERT INTO group_members (cycle_id, group_id, unit_id, position) VALUES ($1, $2, $3, $4)",
        )
        .bind(cycle)
        .bind(group)
        .bind(id)
        .bind(i as i64)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Saves a group's scheme, moving its etag on.
pub(crate) async fn save_scheme(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
    scheme: &Scheme,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE peer_groups SET scheme = $1, scheme_rev = scheme_rev + 1 WHERE cycle_id = $2 AND id = $3",
    )
    .bind(scheme.encode_to_vec())
    .bind(cycle)
    .bind(group)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn save_framework(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
    framework: &Framework,
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE peer_groups SET framework = $1, framework_ms = $2 WHERE cycle_id = $3 AND id = $4",
    )
    .bind(framework.encode_to_vec())
    .bind(now_ms)
    .bind(cycle)
    .bind(group)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Whether any plan of the group was ever approved.
pub(crate) async fn any_plan_approved(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query(
        "SELECT 1 FROM plans WHERE cycle_id = $1 AND group_id = $2 AND approved_version > 0",
    )
    .bind(cycle)
    .bind(group)
    .fetch_optional(&mut *conn)
    .await?
    .is_some())
}

/// A page of a cycle's group ids.
pub(crate) async fn group_page(
    conn: &mut AnyConnection,
    cycle: &str,
    page: &Page,
) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM peer_groups WHERE cycle_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
    )
    .bind(cycle)
    .bind(page.fetch_limit())
    .bind(page.offset)
    .fetch_all(&mut *conn)
    .await?)
}
