//! Idempotent creates and pushes. A request carrying a `request_id` is
//! remembered with a digest of its content and its answer, in the same
//! transaction as the change; the same request again returns the stored
//! answer and changes nothing, a different request under the same id is
//! refused.

use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::{auth::Principal, changes::Change, error::Error, time::now_ms};

/// The digest of a request's content.
pub fn request_digest(method: &str, request: &impl Message) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(request.encode_to_vec());
    hex::encode(h.finalize())
}

/// The longest `request_id` kept, in characters.
pub const REQUEST_ID_MAX: usize = 128;

/// INVALID_ARGUMENT unless `request_id` is at most [`REQUEST_ID_MAX`]
/// characters without control characters: it is stored beside the answer,
/// and PostgreSQL cannot store a NUL (which would otherwise fail the write
/// as INTERNAL, while SQLite stored it).
fn check(request_id: &str) -> Result<(), Error> {
    if request_id.chars().count() > REQUEST_ID_MAX || request_id.chars().any(char::is_control) {
        return Err(Error::invalid(
            "request_id",
            format!("must be at most {REQUEST_ID_MAX} characters, none of them control characters"),
        ));
    }
    Ok(())
}

/// Looks up an earlier answer to the same request. `Ok(None)` when the
/// request is new (or carries no request id).
pub async fn replay<R: Message + Default>(
    conn: &mut AnyConnection,
    principal: &Principal,
    request_id: &str,
    digest: &str,
) -> Result<Option<R>, Error> {
    if request_id.is_empty() {
        return Ok(None);
    }
    check(request_id)?;
    let row = sqlx::query(
        "SELECT request_digest, response FROM idempotency WHERE principal = $1 AND request_id = $2",
    )
    .bind(&principal.subject)
    .bind(request_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let stored: String = row.try_get("request_digest")?;
    if stored != digest {
        return Err(Error::precondition(
            crate::Shared::RequestIdReused,
            format!("request_id {request_id:?} was already used for a different request"),
        ));
    }
    let bytes: Vec<u8> = row.try_get("response")?;
    let answer = R::decode(bytes.as_slice()).map_err(Error::internal)?;
    // The replay tells the caller the revisions its first answer created.
    let rows = sqlx::query(
        "SELECT group_name, revision FROM idempotency_revisions
         WHERE principal = $1 AND request_id = $2",
    )
    .bind(&principal.subject)
    .bind(request_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut written = Vec::with_capacity(rows.len());
    for r in rows {
        written.push(Change {
            group: r.try_get("group_name")?,
            revision: r.try_get("revision")?,
            traceparent: None,
            time_ms: None,
        });
    }
    crate::revisions::note(&written);
    Ok(Some(answer))
}

/// Remembers, beside the answer, the group revisions the write created, so
/// that a replay can name them ([`crate::revisions`]).
pub async fn remember_revisions(
    conn: &mut AnyConnection,
    principal: &Principal,
    request_id: &str,
    changes: &[Change],
) -> Result<(), Error> {
    if request_id.is_empty() {
        return Ok(());
    }
    for c in changes {
        sqlx::query(
            "INSERT INTO idempotency_revisions (principal, request_id, group_name, revision)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (principal, request_id, group_name)
             DO UPDATE SET revision = excluded.revision",
        )
        .bind(&principal.subject)
        .bind(request_id)
        .bind(&c.group)
        .bind(c.revision)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Remembers the answer to a request inside the change's transaction.
pub async fn remember(
    conn: &mut AnyConnection,
    principal: &Principal,
    request_id: &str,
    method: &str,
    digest: &str,
    response: &impl Message,
) -> Result<(), Error> {
    if request_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO idempotency (principal, request_id, method, request_digest, response, at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&principal.subject)
    .bind(request_id)
    .bind(method)
    .bind(digest)
    .bind(response.encode_to_vec())
    .bind(now_ms())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
