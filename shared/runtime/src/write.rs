//! The write sequence every handler shares, in one place: replay a known
//! request id → the handler's own work → audit records → change signals →
//! the idempotency record → commit → announce. A handler states only its
//! own work (the SQL of its resource, through its store) and says what to
//! record; nothing of a write is stored unless all of it is.
//!
//! Change signals are bumped inside the write transaction, in every
//! service: a committed change always carries its new revision, so a
//! watcher that reads the revision after a signal can never see the
//! change without it or the revision without the change.

use prost::Message;
use serde_json::Value;
use sqlx::AnyConnection;

use crate::{
    Db, Error, Principal, audit,
    changes::{Change, Changes},
    idempotency,
};

/// The idempotency key of a write: the method and the caller's request id
/// with the digest of the request (empty id: no replay, no record).
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub method: &'static str,
    pub request_id: &'a str,
    pub digest: &'a str,
}

impl Key<'static> {
    /// A write that carries no request id (its retries are harmless or
    /// refused by state).
    pub fn none(method: &'static str) -> Self {
        Key {
            method,
            request_id: "",
            digest: "",
        }
    }
}

struct Record {
    action: &'static str,
    resource: String,
    reason: String,
    detail: Value,
}

/// The transaction a handler works in, and what it asks to be recorded.
pub struct Work<'t> {
    /// The write transaction's connection.
    pub conn: &'t mut AnyConnection,
    records: Vec<Record>,
    groups: Vec<(String, String)>,
}

impl Work<'_> {
    /// Records the change in the audit trail.
    pub fn audit(
        &mut self,
        action: &'static str,
        resource: impl Into<String>,
        reason: impl Into<String>,
        detail: Value,
    ) {
        self.records.push(Record {
            action,
            resource: resource.into(),
            reason: reason.into(),
            detail,
        });
    }

    /// Says that a group's figures changed: its revision is bumped in this
    /// transaction and announced after the commit.
    pub fn changed(&mut self, cycle: &str, group: &str) {
        let key = (cycle.to_string(), group.to_string());
        if !self.groups.contains(&key) {
            self.groups.push(key);
        }
    }
}

/// The first answer to a request already written, looked up before the
/// phase gate and validation: a retry of a write that succeeded returns
/// its first answer even after the window has closed, as the contract
/// promises (`write` looks again inside its transaction, for retries that
/// race).
pub async fn replayed<R: Message + Default>(
    db: &Db,
    p: &Principal,
    key: Key<'_>,
) -> Result<Option<R>, Error> {
    if key.request_id.is_empty() {
        return Ok(None);
    }
    let mut conn = db.read.acquire().await?;
    idempotency::replay(&mut conn, p, key.request_id, key.digest).await
}

/// Runs one write. `changes` is the service's broadcast of group changes
/// (`None` for a service without group figures).
pub async fn write<R, F>(
    db: &Db,
    changes: Option<&Changes>,
    p: &Principal,
    key: Key<'_>,
    body: F,
) -> Result<R, Error>
where
    R: Message + Default,
    F: AsyncFnOnce(&mut Work<'_>) -> Result<R, Error>,
{
    let mut tx = db.write.begin().await?;
    if let Some(done) = idempotency::replay(&mut tx, p, key.request_id, key.digest).await? {
        return Ok(done);
    }
    let mut work = Work {
        conn: &mut tx,
        records: Vec::new(),
        groups: Vec::new(),
    };
    let reply = body(&mut work).await?;
    let Work {
        records, groups, ..
    } = work;
    for r in records {
        audit::append(
            &mut tx,
            p,
            audit::Entry {
                action: r.action,
                resource: &r.resource,
                reason: &r.reason,
                detail: r.detail,
            },
        )
        .await?;
    }
    let mut bumped: Vec<Change> = Vec::with_capacity(groups.len());
    for (cycle, group) in &groups {
        bumped.push(Changes::bump(&mut tx, cycle, group).await?);
    }
    idempotency::remember(&mut tx, p, key.request_id, key.method, key.digest, &reply).await?;
    tx.commit().await?;
    db.committed();
    if let Some(changes) = changes {
        changes.announce(bumped);
    }
    Ok(reply)
}
