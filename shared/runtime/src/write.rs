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
    /// Groups whose current revision the answer names without a change.
    current: Vec<(String, String)>,
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

    /// Says that the write changed nothing of a group but resent what was
    /// stored before (a push whose items were all known): its answer names
    /// the group's current revision, which is at least the one that stored
    /// them, so the caller can still read its writes
    /// ([`crate::revisions`]).
    pub fn resent(&mut self, cycle: &str, group: &str) {
        let key = (cycle.to_string(), group.to_string());
        if !self.current.contains(&key) {
            self.current.push(key);
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
    let mut tx = db.begin_write().await?;
    if let Some(done) = idempotency::replay(&mut tx, p, key.request_id, key.digest).await? {
        return Ok(done);
    }
    let mut work = Work {
        conn: &mut tx,
        records: Vec::new(),
        groups: Vec::new(),
        current: Vec::new(),
    };
    let reply = body(&mut work).await?;
    let Work {
        records,
        groups,
        current,
        ..
    } = work;
    // Group counters first, the audit head last: every write of a service
    // locks the same rows in this order (the survey ingest too), so two
    // writes on PostgreSQL never wait for each other in a cycle. (Audit
    // first here and counters first in the ingest deadlocked pushes of
    // votes and responses to one group.) The audit head, which every
    // write takes, is then also held for the shortest time.
    // The groups too are locked in one order (sorted); the answer names
    // them in the order the write did.
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by(|&a, &b| groups[a].cmp(&groups[b]));
    let mut bumped: Vec<Option<Change>> = groups.iter().map(|_| None).collect();
    for i in order {
        let (cycle, group) = &groups[i];
        bumped[i] = Some(Changes::bump(&mut tx, cycle, group).await?);
    }
    let bumped: Vec<Change> = bumped.into_iter().flatten().collect();
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
    let mut resent: Vec<Change> = Vec::new();
    for (cycle, group) in current.iter().filter(|g| !groups.contains(g)) {
        let revision = Changes::revision_on(&mut tx, cycle, group).await?;
        if revision > 0 {
            resent.push(Change {
                group: format!("cycles/{cycle}/groups/{group}"),
                revision,
                traceparent: None,
                time_ms: None,
            });
        }
    }
    idempotency::remember(&mut tx, p, key.request_id, key.method, key.digest, &reply).await?;
    idempotency::remember_revisions(&mut tx, p, key.request_id, &bumped).await?;
    tx.commit().await?;
    db.committed();
    // The answer's `jixiao-revision` header (see `revisions`).
    crate::revisions::note(bumped.iter().chain(&resent));
    if let Some(changes) = changes {
        changes.announce(bumped);
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use jixiao_proto::types::VerifyAuditChainRequest as Answer;
    use sqlx::migrate::Migrator;

    use super::*;
    use crate::{Migrations, Role, db::sqlite_url, revisions};

    fn change(group: &str, revision: i64) -> Change {
        Change {
            group: format!("cycles/2026/groups/{group}"),
            revision,
            traceparent: None,
            time_ms: None,
        }
    }

    /// What a write's answer says it created: the bumped revisions, the
    /// first answer's again on a replay, the current one for a resend.
    #[tokio::test]
    async fn a_write_notes_its_revisions_and_a_replay_notes_them_again() {
        static NONE: Migrator = Migrator::DEFAULT;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&sqlite_url(dir.path(), "t"), &Migrations { source: &NONE })
            .await
            .unwrap();
        let p = Principal {
            subject: "platform-a".into(),
            roles: vec![Role::SurveyPlatform],
            unit: None,
        };
        let key = |id: &'static str| Key {
            method: "Push",
            request_id: id,
            digest: "d",
        };
        let run = |id: &'static str,
                   changed: &'static [&'static str],
                   resent: &'static [&'static str]| {
            let (db, p) = (db.clone(), p.clone());
            async move {
                let (out, noted) = revisions::collect(write(&db, None, &p, key(id), async |w| {
                    for g in changed {
                        w.changed("2026", g);
                    }
                    for g in resent {
                        w.resent("2026", g);
                    }
                    Ok(Answer::default())
                }))
                .await;
                out.unwrap();
                // When each change was written is not the point here.
                noted
                    .into_iter()
                    .map(|c| Change { time_ms: None, ..c })
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            run("a", &["districts"], &[]).await,
            [change("districts", 1)]
        );
        assert_eq!(
            run("b", &["districts", "departments"], &[]).await,
            [change("districts", 2), change("departments", 1)]
        );
        // The same request id: the first answer, and its revisions, even
        // though the counter has moved on since.
        assert_eq!(
            run("a", &["districts"], &[]).await,
            [change("districts", 1)]
        );
        // A resend names the current revision without moving it; a group
        // never changed has none to name; a group changed by the same write
        // is named once, with its new revision.
        assert_eq!(
            run("", &[], &["districts", "nowhere"]).await,
            [change("districts", 2)]
        );
        assert_eq!(
            run("", &["departments"], &["departments"]).await,
            [change("departments", 2)]
        );
        // Outside a call nothing is noted, and the write still works.
        write(&db, None, &p, key("c"), async |w| {
            w.changed("2026", "districts");
            Ok(Answer::default())
        })
        .await
        .unwrap();
        assert_eq!(
            Changes::revision(&db, "2026", "districts").await.unwrap(),
            3
        );
    }
}
