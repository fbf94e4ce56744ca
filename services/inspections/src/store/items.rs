//! Self-inspection items: the rows of `self_items`.

use jixiao_proto::inspections::{ItemState, SelfInspectionItem, StaffAction};
use jixiao_runtime::{
    Error,
    decimal::{self, to_proto},
    paging::Page,
};
use rust_decimal::Decimal;
use sqlx::AnyConnection;

macro_rules! item_cols {
    () => {
        "cycle_id, id, unit_id, group_id, item_type, problem, action_taken, staff_actions, state, credit, note"
    };
}

/// A row of `self_items`.
#[derive(sqlx::FromRow)]
pub struct ItemRecord {
    cycle_id: String,
    id: String,
    unit_id: String,
    pub group_id: String,
    item_type: String,
    problem: String,
    action_taken: String,
    staff_actions: String,
    state: i64,
    credit: String,
    note: String,
}

impl ItemRecord {
    /// The credit granted (0 before verification).
    pub fn credit(&self) -> Result<Decimal, Error> {
        if self.credit.is_empty() {
            Ok(Decimal::ZERO)
        } else {
            decimal::from_db(&self.credit)
        }
    }

    pub fn proto(&self) -> Result<SelfInspectionItem, Error> {
        let actions: Vec<(String, i32)> =
            serde_json::from_str(&self.staff_actions).map_err(Error::internal)?;
        Ok(SelfInspectionItem {
            name: format!("cycles/{}/selfInspectionItems/{}", self.cycle_id, self.id),
            unit: format!("units/{}", self.unit_id),
            item_type: self.item_type.clone(),
            problem: self.problem.clone(),
            action_taken: self.action_taken.clone(),
            staff_actions: actions
                .into_iter()
                .map(|(kind, count)| StaffAction { kind, count })
                .collect(),
            state: self.state as i32,
            credit: if self.credit.is_empty() {
                None
            } else {
                Some(to_proto(decimal::from_db(&self.credit)?))
            },
            note: self.note.clone(),
        })
    }
}

/// A new self-inspection item, REPORTED.
pub struct NewItem<'a> {
    pub cycle: &'a str,
    pub id: &'a str,
    pub unit: &'a str,
    pub group: &'a str,
    pub item_type: &'a str,
    pub problem: &'a str,
    pub action_taken: &'a str,
    pub staff_actions: &'a [StaffAction],
    pub create_ms: i64,
}

pub async fn insert_item(conn: &mut AnyConnection, item: &NewItem<'_>) -> Result<(), Error> {
    const SQL: &str = concat!(
        "INSERT INTO self_items (",
        item_cols!(),
        ", create_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', '', $10)"
    );
    let actions: Vec<(&str, i32)> = item
        .staff_actions
        .iter()
        .map(|a| (a.kind.as_str(), a.count))
        .collect();
    sqlx::query(SQL)
        .bind(item.cycle)
        .bind(item.id)
        .bind(item.unit)
        .bind(item.group)
        .bind(item.item_type)
        .bind(item.problem)
        .bind(item.action_taken)
        .bind(serde_json::to_string(&actions).map_err(Error::internal)?)
        .bind(ItemState::Reported as i32 as i64)
        .bind(item.create_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// An item by its ids; NOT_FOUND when there is none.
pub async fn item(conn: &mut AnyConnection, cycle: &str, id: &str) -> Result<ItemRecord, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        item_cols!(),
        " FROM self_items WHERE cycle_id = $1 AND id = $2"
    );
    sqlx::query_as(SQL)
        .bind(cycle)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("cycles/{cycle}/selfInspectionItems/{id}")))
}

/// Whether the cycle has an item with this id.
pub async fn item_exists(conn: &mut AnyConnection, cycle: &str, id: &str) -> Result<bool, Error> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT id FROM self_items WHERE cycle_id = $1 AND id = $2")
            .bind(cycle)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

/// Records the office's decision on an item.
pub async fn decide_item(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
    state: ItemState,
    credit: Option<Decimal>,
    note: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE self_items SET state = $1, credit = $2, note = $3 WHERE cycle_id = $4 AND id = $5",
    )
    .bind(state as i32 as i64)
    .bind(credit.map(decimal::canonical).unwrap_or_default())
    .bind(note)
    .bind(cycle)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A page of a cycle's items in the order they were reported.
pub async fn items(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
    page: &Page,
) -> Result<Vec<ItemRecord>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        item_cols!(),
        " FROM self_items WHERE cycle_id = $1 AND ($2 = '' OR unit_id = $2) ORDER BY create_ms, id LIMIT $3 OFFSET $4"
    );
    Ok(sqlx::query_as(SQL)
        .bind(cycle)
        .bind(unit)
        .bind(page.fetch_limit())
        .bind(page.offset)
        .fetch_all(&mut *conn)
        .await?)
}

/// The group's verified items by id, in byte order whatever the database's
/// collation (the order of the adjustments, and so of a publication's
/// inputs, depends on nothing but the items).
pub async fn verified_items(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<Vec<ItemRecord>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        item_cols!(),
        " FROM self_items WHERE cycle_id = $1 AND group_id = $2 AND state = $3"
    );
    let mut items: Vec<ItemRecord> = sqlx::query_as(SQL)
        .bind(cycle)
        .bind(group)
        .bind(ItemState::Verified as i32 as i64)
        .fetch_all(&mut *conn)
        .await?;
    items.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(items)
}
