//! The append-only audit trail: who changed what, when and why. Each record
//! carries the SHA-256 of its content chained to the previous record, so a
//! record altered or removed afterwards breaks the chain.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::{
    auth::Principal,
    error::Error,
    paging,
    time::{now_ms, timestamp},
};
use jixiao_proto::types::{AuditRecord, ListAuditRecordsRequest, ListAuditRecordsResponse};

/// One change to record.
pub struct Entry<'a> {
    pub action: &'a str,
    pub resource: &'a str,
    pub reason: &'a str,
    pub detail: Value,
}

/// Appends a record inside the caller's transaction (`conn` is the
/// transaction's connection), so the change and its record commit together.
pub async fn append(
    conn: &mut AnyConnection,
    principal: &Principal,
    entry: Entry<'_>,
) -> Result<i64, Error> {
    append_body!(conn, principal, entry)
}

/// [`append`] on a native PostgreSQL connection (bulk paths that use COPY).
pub async fn append_pg(
    conn: &mut sqlx::PgConnection,
    principal: &Principal,
    entry: Entry<'_>,
) -> Result<i64, Error> {
    append_body!(conn, principal, entry)
}

/// One body for both connection types: the SQL is portable, only the
/// connection type differs.
macro_rules! append_body {
    ($conn:ident, $principal:ident, $entry:ident) => {{
        // Bumping the head row first serialises concurrent writers on
        // PostgreSQL (row lock) so the chain never forks; it returns the
        // previous digest.
        let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, digest")
            .fetch_one(&mut *$conn)
            .await?;
        let seq: i64 = head.try_get("seq")?;
        let prev: String = head.try_get("digest")?;
        let at_ms = now_ms();
        let detail = $entry.detail.to_string();
        let digest = chain_digest(&prev, seq, at_ms, &$principal.subject, $entry.action, $entry.resource, $entry.reason, &detail);
        sqlx::query(
            "INSERT INTO audit_log (seq, at_ms, principal, action, resource, reason, detail, prev_digest, digest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(seq)
        .bind(at_ms)
        .bind(&$principal.subject)
        .bind($entry.action)
        .bind($entry.resource)
        .bind($entry.reason)
        .bind(&detail)
        .bind(&prev)
        .bind(&digest)
        .execute(&mut *$conn)
        .await?;
        sqlx::query("UPDATE audit_head SET digest = $1 WHERE id = 1")
            .bind(&digest)
            .execute(&mut *$conn)
            .await?;
        Ok(seq)
    }};
}
use append_body;

/// The digest of one record: SHA-256 over the previous digest and every
/// field, each length-prefixed so that no two records encode alike.
#[allow(clippy::too_many_arguments)]
pub fn chain_digest(
    prev: &str,
    seq: i64,
    at_ms: i64,
    principal: &str,
    action: &str,
    resource: &str,
    reason: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    let at = at_ms.to_string();
    for part in [prev, &seq, &at, principal, action, resource, reason, detail] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Lists records whose resource starts with the request's prefix, oldest
/// first. Authorisation is the caller's business.
pub async fn list(
    pool: &sqlx::AnyPool,
    req: &ListAuditRecordsRequest,
) -> Result<ListAuditRecordsResponse, Error> {
    let page = paging::Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
    let pattern = format!("{}%", escape_like(&req.resource_prefix));
    let rows = sqlx::query(
        "SELECT seq, at_ms, principal, action, resource, reason, detail, digest
         FROM audit_log WHERE resource LIKE $1 ESCAPE '\\' ORDER BY seq LIMIT $2 OFFSET $3",
    )
    .bind(pattern)
    .bind(page.fetch_limit())
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let mut records = Vec::with_capacity(rows.len());
    for row in &rows {
        records.push(AuditRecord {
            sequence: row.try_get("seq")?,
            time: Some(timestamp(row.try_get("at_ms")?)),
            principal: row.try_get("principal")?,
            action: row.try_get("action")?,
            resource: row.try_get("resource")?,
            reason: row.try_get("reason")?,
            detail_json: row.try_get("detail")?,
            digest: row.try_get("digest")?,
        });
    }
    let next_page_token = page.next_token(&mut records);
    Ok(ListAuditRecordsResponse {
        records,
        next_page_token,
    })
}

/// The audit trail for the office and evaluators, who read all of it.
pub async fn list_for_readers(
    pool: &sqlx::AnyPool,
    principal: &Principal,
    req: &ListAuditRecordsRequest,
) -> Result<ListAuditRecordsResponse, Error> {
    principal.require(
        &[crate::Role::Office, crate::Role::Evaluator],
        "read the audit trail",
    )?;
    list(pool, req).await
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_change_with_every_field_and_the_previous_record() {
        let base = chain_digest("", 1, 10, "office", "a", "r", "", "{}");
        assert_eq!(base.len(), 64);
        assert_ne!(base, chain_digest("x", 1, 10, "office", "a", "r", "", "{}"));
        assert_ne!(
            base,
            chain_digest("", 1, 10, "office", "a", "r", "why", "{}")
        );
        // Length prefixes keep field boundaries apart.
        assert_ne!(
            chain_digest("", 1, 10, "ab", "c", "r", "", "{}"),
            chain_digest("", 1, 10, "a", "bc", "r", "", "{}")
        );
    }
}
