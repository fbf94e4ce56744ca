//! Supervision documents: the rows of `documents`.

use jixiao_proto::inspections::Document;
use jixiao_runtime::{Error, paging::Page, time::timestamp};
use sqlx::AnyConnection;

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

/// Whether the cycle has a document with this id.
pub async fn document_exists(
    conn: &mut AnyConnection,
    cycle: &str,
    id: &str,
) -> Result<bool, Error> {
    let found: Option<(String,)> =
        sqlx::query_as("SELECT id FROM documents WHERE cycle_id = $1 AND id = $2")
            .bind(cycle)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
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
