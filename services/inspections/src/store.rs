//! Every SQL statement of the inspections service, as named functions over
//! rows that map their tables one to one. Deductions and credits are
//! canonical decimal text; times are unix milliseconds.

use jixiao_proto::{
    inspections::{
        Document, Finding, FindingState, Inspection, ItemState, RectificationState,
        SelfInspectionItem, StaffAction,
    },
    types::EvidenceItem,
};
use jixiao_runtime::{
    Error,
    decimal::{self, to_proto},
    evidence::EvidenceList,
    paging::Page,
    time::{opt_timestamp, timestamp},
};
use prost::Message;
use rust_decimal::Decimal;
use sqlx::AnyConnection;

// ---------------------------------------------------------------- findings

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

/// The group's findings that count or are contested, in inspection order.
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
    rows(
        sqlx::query_as(SQL)
            .bind(cycle)
            .bind(group)
            .bind(FindingState::Confirmed as i32 as i64)
            .bind(FindingState::Upheld as i32 as i64)
            .bind(FindingState::Contested as i32 as i64)
            .fetch_all(&mut *conn)
            .await?,
    )
}

// ---------------------------------------------------------------- inspections

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

// ---------------------------------------------------------------- self-inspection items

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

/// The group's verified items in the order they were reported.
pub async fn verified_items(
    conn: &mut AnyConnection,
    cycle: &str,
    group: &str,
) -> Result<Vec<ItemRecord>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        item_cols!(),
        " FROM self_items WHERE cycle_id = $1 AND group_id = $2 AND state = $3 ORDER BY create_ms, id"
    );
    Ok(sqlx::query_as(SQL)
        .bind(cycle)
        .bind(group)
        .bind(ItemState::Verified as i32 as i64)
        .fetch_all(&mut *conn)
        .await?)
}

// ---------------------------------------------------------------- documents

/// A row of `documents`.
#[derive(sqlx::FromRow)]
struct DocumentRecord {
    cycle_id: String,
    id: String,
    kind: i64,
    unit_id: String,
    title: String,
    body: String,
    findings: String,
    issue_ms: i64,
}

impl DocumentRecord {
    fn proto(self) -> Result<Document, Error> {
        Ok(Document {
            name: format!("cycles/{}/documents/{}", self.cycle_id, self.id),
            kind: self.kind as i32,
            unit: format!("units/{}", self.unit_id),
            title: self.title,
            body: self.body,
            findings: serde_json::from_str(&self.findings).map_err(Error::internal)?,
            issue_time: Some(timestamp(self.issue_ms)),
        })
    }
}

pub async fn insert_document(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
    doc: &Document,
    unit: &str,
    issue_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO documents (cycle_id, id, kind, unit_id, title, body, findings, issue_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(cycle)
    .bind(id)
    .bind(i64::from(doc.kind))
    .bind(unit)
    .bind(&doc.title)
    .bind(&doc.body)
    .bind(serde_json::to_string(&doc.findings).map_err(Error::internal)?)
    .bind(issue_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A page of a cycle's documents, newest first.
pub async fn documents(
    conn: &mut AnyConnection,
    cycle: &str,
    unit: &str,
    page: &Page,
) -> Result<Vec<Document>, Error> {
    let records: Vec<DocumentRecord> = sqlx::query_as(
        "SELECT cycle_id, id, kind, unit_id, title, body, findings, issue_ms FROM documents
         WHERE cycle_id = $1 AND ($2 = '' OR unit_id = $2)
         ORDER BY issue_ms DESC, id DESC LIMIT $3 OFFSET $4",
    )
    .bind(cycle)
    .bind(unit)
    .bind(page.fetch_limit())
    .bind(page.offset)
    .fetch_all(&mut *conn)
    .await?;
    records.into_iter().map(DocumentRecord::proto).collect()
}
