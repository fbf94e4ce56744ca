//! Inspection records: the rows of `inspections`, with their findings.

use jixiao_proto::inspections::{FindingState, Inspection};
use jixiao_runtime::{Error, paging::Page, time::timestamp};
use sqlx::AnyConnection;

use super::findings::findings_of;

macro_rules! inspection_cols {
    () => {
        "cycle_id, id, unit_id, kind, inspect_ms, inspectors, place, notes, recorded_by"
    };
}

/// A row of `inspections`.
#[derive(sqlx::FromRow)]
pub struct InspectionRecord {
    pub cycle_id: String,
    pub id: String,
    pub unit_id: String,
    kind: i64,
    inspect_ms: i64,
    inspectors: String,
    place: String,
    notes: String,
    recorded_by: String,
}

/// A new inspection record.
pub struct NewInspection<'a> {
    pub cycle: &'a str,
    pub id: &'a str,
    pub unit: &'a str,
    pub kind: i32,
    pub inspect_ms: i64,
    pub inspectors: &'a [String],
    pub place: &'a str,
    pub notes: &'a str,
    pub recorded_by: &'a str,
    pub create_ms: i64,
}

pub async fn insert_inspection(
    conn: &mut AnyConnection,
    ins: &NewInspection<'_>,
) -> Result<(), Error> {
    const SQL: &str = concat!(
        "INSERT INTO inspections (",
        inspection_cols!(),
        ", create_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    sqlx::query(SQL)
        .bind(ins.cycle)
        .bind(ins.id)
        .bind(ins.unit)
        .bind(i64::from(ins.kind))
        .bind(ins.inspect_ms)
        .bind(serde_json::to_string(ins.inspectors).map_err(Error::internal)?)
        .bind(ins.place)
        .bind(ins.notes)
        .bind(ins.recorded_by)
        .bind(ins.create_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// An inspection record, if there is one.
pub async fn inspection(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
) -> Result<Option<InspectionRecord>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        inspection_cols!(),
        " FROM inspections WHERE cycle_id = $1 AND id = $2"
    );
    Ok(sqlx::query_as(SQL)
        .bind(cycle)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// A page of a cycle's inspections, newest first, of one unit or all.
pub async fn inspections(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
    page: &Page,
) -> Result<Vec<InspectionRecord>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        inspection_cols!(),
        " FROM inspections WHERE cycle_id = $1 AND ($2 = '' OR unit_id = $2)
         ORDER BY inspect_ms DESC, id DESC LIMIT $3 OFFSET $4"
    );
    Ok(sqlx::query_as(SQL)
        .bind(cycle)
        .bind(unit)
        .bind(page.fetch_limit())
        .bind(page.offset)
        .fetch_all(&mut *conn)
        .await?)
}

/// An inspection with its findings; `hide_drafts` for the inspected unit.
pub async fn inspection_proto(
    conn: &mut AnyConnection,
    r: InspectionRecord,
    hide_drafts: bool,
) -> Result<Inspection, Error> {
    let findings = findings_of(conn, &r.cycle_id, &r.id)
        .await?
        .into_iter()
        .filter(|f| !(hide_drafts && f.state == FindingState::Draft))
        .map(|f| f.proto)
        .collect();
    Ok(Inspection {
        name: format!("cycles/{}/inspections/{}", r.cycle_id, r.id),
        unit: format!("units/{}", r.unit_id),
        kind: r.kind as i32,
        inspect_time: Some(timestamp(r.inspect_ms)),
        inspectors: serde_json::from_str(&r.inspectors).map_err(Error::internal)?,
        place: r.place,
        notes: r.notes,
        findings,
        recorded_by: r.recorded_by,
    })
}
