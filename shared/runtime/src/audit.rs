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
use jixiao_proto::types::{
    AuditRecord, ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainResponse,
};

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

/// Lists records whose resource is the request's prefix or lies under it, oldest
/// first. Authorisation is the caller's business.
pub async fn list(
    pool: &sqlx::AnyPool,
    req: &ListAuditRecordsRequest,
) -> Result<ListAuditRecordsResponse, Error> {
    let page = paging::Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
    // PostgreSQL refuses NUL in a query's text: a control character is
    // the caller's mistake, not an internal error.
    let mut v = crate::Violations::new();
    crate::text::optional(
        &mut v,
        "resource_prefix",
        &req.resource_prefix,
        crate::text::URI,
    );
    v.into_result()?;
    // A prefix matches whole name segments: `cycles/x/plans/ab` is that
    // resource and what lies under it, never `cycles/x/plans/ab2`.
    let exact = req.resource_prefix.trim_end_matches('/');
    let pattern = if exact.is_empty() {
        "%".to_string()
    } else {
        format!("{}/%", escape_like(exact))
    };
    let rows = sqlx::query(
        "SELECT seq, at_ms, principal, action, resource, reason, detail, digest
         FROM audit_log WHERE ($1 = '' OR resource = $1 OR resource LIKE $2 ESCAPE '\\')
         ORDER BY seq LIMIT $3 OFFSET $4",
    )
    .bind(exact)
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

/// Walks the chain from its first record: each record must follow its
/// predecessor's sequence number, name its digest, and hash to its own;
/// the head must point at the last record. A row edited, inserted or
/// deleted with plain SQL afterwards is named by sequence number.
pub async fn verify(pool: &sqlx::AnyPool) -> Result<VerifyAuditChainResponse, Error> {
    const PAGE: i64 = 2000;
    let mut out = VerifyAuditChainResponse {
        valid: true,
        ..Default::default()
    };
    // The head first: records committed after it are not this walk's
    // business, and the head and its record commit together.
    let head = sqlx::query("SELECT seq, digest FROM audit_head WHERE id = 1")
        .fetch_one(pool)
        .await?;
    let (head_seq, head_digest): (i64, String) = (head.try_get("seq")?, head.try_get("digest")?);
    let (mut last_seq, mut last_digest) = (0i64, String::new());
    let broken = |out: &mut VerifyAuditChainResponse, seq: i64, problem: String| {
        out.valid = false;
        out.first_broken_sequence = seq;
        out.problem = problem;
    };
    'walk: loop {
        let rows = sqlx::query(
            "SELECT seq, at_ms, principal, action, resource, reason, detail, prev_digest, digest
             FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
        )
        .bind(last_seq)
        .bind(head_seq)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            let prev: String = row.try_get("prev_digest")?;
            let digest: String = row.try_get("digest")?;
            if seq != last_seq + 1 {
                broken(
                    &mut out,
                    seq,
                    format!(
                        "record {seq} follows record {last_seq}: records in between are missing"
                    ),
                );
                break 'walk;
            }
            if prev != last_digest {
                broken(
                    &mut out,
                    seq,
                    format!("record {seq} does not name the digest of record {last_seq}"),
                );
                break 'walk;
            }
            let recomputed = chain_digest(
                &prev,
                seq,
                row.try_get("at_ms")?,
                &row.try_get::<String, _>("principal")?,
                &row.try_get::<String, _>("action")?,
                &row.try_get::<String, _>("resource")?,
                &row.try_get::<String, _>("reason")?,
                &row.try_get::<String, _>("detail")?,
            );
            if recomputed != digest {
                broken(
                    &mut out,
                    seq,
                    format!("record {seq} was altered: its content no longer hashes to its digest"),
                );
                break 'walk;
            }
            out.records += 1;
            (last_seq, last_digest) = (seq, digest);
        }
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    out.head_digest = last_digest.clone();
    if out.valid && (head_seq, head_digest.as_str()) != (last_seq, last_digest.as_str()) {
        out.valid = false;
        out.problem = if head_seq == last_seq {
            format!("the head's digest is not that of record {last_seq}")
        } else {
            format!(
                "the head points at record {head_seq} but the chain ends at record {last_seq}: records were removed from its end"
            )
        };
    }
    Ok(out)
}

/// [`verify`] for the office and evaluators.
pub async fn verify_for_readers(
    pool: &sqlx::AnyPool,
    principal: &Principal,
) -> Result<VerifyAuditChainResponse, Error> {
    principal.require(
        &[crate::Role::Office, crate::Role::Evaluator],
        "verify the audit trail",
    )?;
    verify(pool).await
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
