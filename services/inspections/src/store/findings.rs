//! Findings and their rectification: the rows of `findings`.

use jixiao_proto::{
    inspections::{Finding, FindingState, RectificationState},
    types::EvidenceItem,
};
use jixiao_runtime::{
    Error,
    decimal::{self, to_proto},
    evidence::EvidenceList,
    time::opt_timestamp,
};
use prost::Message;
use rust_decimal::Decimal;
use sqlx::AnyConnection;

macro_rules! finding_cols {
    () => {
        "cycle_id, inspection_id, id, unit_id, group_id, position, category, description, evidence, deduction, state, contest_reason, decision_note, rect_due_ms, rect_state, rect_report, rect_evidence"
    };
}

/// A row of `findings`.
#[derive(sqlx::FromRow)]
struct FindingRecord {
    cycle_id: String,
    inspection_id: String,
    id: String,
    unit_id: String,
    group_id: String,
    category: String,
    description: String,
    evidence: Vec<u8>,
    deduction: String,
    state: i64,
    contest_reason: String,
    decision_note: String,
    rect_due_ms: Option<i64>,
    rect_state: i64,
    rect_report: String,
}

/// A finding as the handlers work with it.
pub struct FindingRow {
    pub cycle: String,
    pub inspection: String,
    pub id: String,
    pub unit: String,
    pub group: String,
    pub state: FindingState,
    pub rect_state: RectificationState,
    pub deduction: Decimal,
    pub proto: Finding,
}

impl FindingRecord {
    fn into_row(self) -> Result<FindingRow, Error> {
        let state = FindingState::try_from(self.state as i32).unwrap_or(FindingState::Unspecified);
        let rect_state = RectificationState::try_from(self.rect_state as i32)
            .unwrap_or(RectificationState::Unspecified);
        let deduction = decimal::from_db(&self.deduction)?;
        let evidence = EvidenceList::decode(self.evidence.as_slice()).map_err(Error::internal)?;
        let proto = Finding {
            name: format!(
                "cycles/{}/inspections/{}/findings/{}",
                self.cycle_id, self.inspection_id, self.id
            ),
            category: self.category,
            description: self.description,
            evidence: evidence.items,
            deduction: Some(to_proto(deduction)),
            state: state as i32,
            contest_reason: self.contest_reason,
            decision_note: self.decision_note,
            rectification_due_time: opt_timestamp(self.rect_due_ms),
            rectification_state: rect_state as i32,
            rectification_report: self.rect_report,
        };
        Ok(FindingRow {
            cycle: self.cycle_id,
            inspection: self.inspection_id,
            id: self.id,
            unit: self.unit_id,
            group: self.group_id,
            state,
            rect_state,
            deduction,
            proto,
        })
    }
}

fn rows(records: Vec<FindingRecord>) -> Result<Vec<FindingRow>, Error> {
    records.into_iter().map(FindingRecord::into_row).collect()
}

/// A finding by its ids; NOT_FOUND naming `name` when there is none.
pub async fn finding(
    conn: &mut AnyConnection,
    ids: [&str; 3],
    name: &str,
) -> Result<FindingRow, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        finding_cols!(),
        " FROM findings WHERE cycle_id = $1 AND inspection_id = $2 AND id = $3"
    );
    sqlx::query_as::<_, FindingRecord>(SQL)
        .bind(ids[0])
        .bind(ids[1])
        .bind(ids[2])
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(name.to_string()))?
        .into_row()
}

/// The findings of an inspection in their order.
pub async fn findings_of(
    conn: &mut AnyConnection,
    cycle: &str,
    inspection: &str,
) -> Result<Vec<FindingRow>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        finding_cols!(),
        " FROM findings WHERE cycle_id = $1 AND inspection_id = $2 ORDER BY position"
    );
    rows(
        sqlx::query_as(SQL)
            .bind(cycle)
            .bind(inspection)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// A finding to store, validated.
pub struct NewFinding {
    pub category: String,
    pub description: String,
    pub evidence: Vec<EvidenceItem>,
    pub deduction: Decimal,
    pub rect_due_ms: Option<i64>,
}

/// Stores the findings of a new inspection, numbered `f1`, `f2`, … in
/// DRAFT; one with a rectification deadline requires rectification.
pub async fn insert_findings(
    conn: &mut AnyConnection,
    cycle: &str,
    inspection: &str,
    unit: &str,
    group: &str,
    findings: &[NewFinding],
) -> Result<(), Error> {
    const SQL: &str = concat!(
        "INSERT INTO findings (",
        finding_cols!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '', '', $12, $13, '', $14)"
    );
    for (i, f) in findings.iter().enumerate() {
        let rect_state = if f.rect_due_ms.is_some() {
            RectificationState::Required
        } else {
            RectificationState::Unspecified
        };
        sqlx::query(SQL)
            .bind(cycle)
            .bind(inspection)
            .bind(format!("f{}", i + 1))
            .bind(unit)
            .bind(group)
            .bind(i as i64)
            .bind(&f.category)
            .bind(&f.description)
            .bind(
                EvidenceList {
                    items: f.evidence.clone(),
                }
                .encode_to_vec(),
            )
            .bind(decimal::canonical(f.deduction))
            .bind(FindingState::Draft as i32 as i64)
            .bind(f.rect_due_ms)
            .bind(rect_state as i32 as i64)
            .bind(EvidenceList::default().encode_to_vec())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Saves a finding's lifecycle fields.
pub async fn update_finding(conn: &mut AnyConnection, f: &FindingRow) -> Result<(), Error> {
    sqlx::query(
        "UPDATE findings SET state = $1, contest_reason = $2, decision_note = $3, rect_state = $4, rect_report = $5
         WHERE cycle_id = $6 AND inspection_id = $7 AND id = $8",
    )
    .bind(f.state as i32 as i64)
    .bind(&f.proto.contest_reason)
    .bind(&f.proto.decision_note)
    .bind(f.rect_state as i32 as i64)
    .bind(&f.proto.rectification_report)
    .bind(&f.cycle)
    .bind(&f.inspection)
    .bind(&f.id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Counting findings whose rectification is due before `now_ms` and not
/// reported (or sent back), of one unit or all (`unit` empty).
pub async fn overdue_findings(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
    now_ms: i64,
) -> Result<Vec<FindingRow>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        finding_cols!(),
        " FROM findings WHERE cycle_id = $1 AND ($2 = '' OR unit_id = $2)
         AND rect_due_ms IS NOT NULL AND rect_due_ms < $3 AND rect_state IN ($4, $5) AND state IN ($6, $7)
         ORDER BY rect_due_ms, inspection_id, id"
    );
    rows(
        sqlx::query_as(SQL)
            .bind(cycle)
            .bind(unit)
            .bind(now_ms)
            .bind(RectificationState::Required as i32 as i64)
            .bind(RectificationState::SentBack as i32 as i64)
            .bind(FindingState::Confirmed as i32 as i64)
            .bind(FindingState::Upheld as i32 as i64)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// The group's findings that count or are contested, by inspection id (in
/// byte order whatever the database's collation) and their position in it.
pub async fn group_findings(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<Vec<FindingRow>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        finding_cols!(),
        " FROM findings WHERE cycle_id = $1 AND group_id = $2 AND state IN ($3, $4, $5) ORDER BY inspection_id, position"
    );
    let mut found = rows(
        sqlx::query_as(SQL)
            .bind(cycle)
            .bind(group)
            .bind(FindingState::Confirmed as i32 as i64)
            .bind(FindingState::Upheld as i32 as i64)
            .bind(FindingState::Contested as i32 as i64)
            .fetch_all(&mut *conn)
            .await?,
    )?;
    // Stable: each inspection's findings stay in their position order.
    found.sort_by(|a, b| a.inspection.cmp(&b.inspection));
    Ok(found)
}
