//! Change signals for the aggregator: each service keeps a change counter
//! per group (bumped in the same transaction as the change) and broadcasts
//! `(group, revision)` after commit. A watcher first receives the current
//! revision of every group of its cycle, then live changes, so a watcher
//! that reconnects misses nothing. Streams end when the process shuts down.

use futures::Stream;
use sqlx::{AnyConnection, Row};
use tokio::sync::broadcast;
use tokio_stream::{StreamExt, wrappers::BroadcastStream};

use crate::{Db, Error, host::Shutdown};

/// One body for both connection types.
macro_rules! bump_body {
    ($conn:ident, $cycle:ident, $group:ident) => {{
        let row = sqlx::query(
            "INSERT INTO group_revisions (cycle_id, group_id, revision) VALUES ($1, $2, 1)
             ON CONFLICT (cycle_id, group_id) DO UPDATE SET revision = group_revisions.revision + 1
             RETURNING revision",
        )
        .bind($cycle)
        .bind($group)
        .fetch_one(&mut *$conn)
        .await?;
        Ok(Change {
            group: format!("cycles/{}/groups/{}", $cycle, $group),
            revision: row.try_get("revision")?,
        })
    }};
}

/// The cycle name that watches every cycle.
pub const ALL_CYCLES: &str = "cycles/-";

/// A group's change counter after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `cycles/{cycle}/groups/{group}`.
    pub group: String,
    pub revision: i64,
}

/// Whether a reader holding the figures of revision `known` (0: none) may
/// keep them: a group's counter moves with every change, so an equal
/// counter means an equal answer.
pub fn unchanged_since(known: i64, current: i64) -> bool {
    known > 0 && known == current
}

/// The broadcast side, one per service.
#[derive(Clone, Debug)]
pub struct Changes {
    sender: broadcast::Sender<Change>,
    shutdown: Shutdown,
}

impl Changes {
    pub fn new(shutdown: Shutdown) -> Self {
        let (sender, _) = broadcast::channel(4096);
        Changes { sender, shutdown }
    }

    /// Bumps a group's counter inside the caller's transaction.
    pub async fn bump(conn: &mut AnyConnection, cycle: &str, group: &str) -> Result<Change, Error> {
        bump_body!(conn, cycle, group)
    }

    /// [`Changes::bump`] on a native PostgreSQL connection.
    pub async fn bump_pg(
        conn: &mut sqlx::PgConnection,
        cycle: &str,
        group: &str,
    ) -> Result<Change, Error> {
        bump_body!(conn, cycle, group)
    }

    /// [`Changes::revision`] inside the caller's transaction.
    pub async fn revision_on(
        conn: &mut AnyConnection,
        cycle: &str,
        group: &str,
    ) -> Result<i64, Error> {
        let row = sqlx::query(
            "SELECT revision FROM group_revisions WHERE cycle_id = $1 AND group_id = $2",
        )
        .bind(cycle)
        .bind(group)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(match row {
            Some(r) => r.try_get("revision")?,
            None => 0,
        })
    }

    /// The current counter of a group (0 before any change).
    pub async fn revision(db: &Db, cycle: &str, group: &str) -> Result<i64, Error> {
        let row = sqlx::query(
            "SELECT revision FROM group_revisions WHERE cycle_id = $1 AND group_id = $2",
        )
        .bind(cycle)
        .bind(group)
        .fetch_optional(&db.read)
        .await?;
        Ok(match row {
            Some(r) => r.try_get("revision")?,
            None => 0,
        })
    }

    /// Announces committed changes.
    pub fn announce(&self, changes: impl IntoIterator<Item = Change>) {
        for c in changes {
            // No watcher is fine: watchers read current revisions on connect.
            let _ = self.sender.send(c);
        }
    }

    /// [`Changes::watch`] for a caller: the office, evaluators and other
    /// services may watch; `cycle_name` is `cycles/{cycle}`, or `cycles/-`
    /// for every cycle (AIP-159), which the aggregator follows.
    pub async fn watch_for(
        &self,
        db: &Db,
        principal: &crate::Principal,
        cycle_name: &str,
    ) -> Result<impl Stream<Item = Change> + Send + 'static, Error> {
        use crate::Role;
        principal.require(
            &[Role::Office, Role::Evaluator, Role::Service],
            "watch changes",
        )?;
        if cycle_name == ALL_CYCLES {
            return self.watch(db, None).await;
        }
        let cycle = crate::names::cycle_id(cycle_name, "cycle")?;
        self.watch(db, Some(cycle)).await
    }

    /// The current revisions of a cycle's groups (of every cycle for
    /// `None`), then live changes.
    pub async fn watch(
        &self,
        db: &Db,
        cycle: Option<&str>,
    ) -> Result<impl Stream<Item = Change> + Send + 'static, Error> {
        // Subscribe first so nothing committed meanwhile is missed.
        let live = BroadcastStream::new(self.sender.subscribe());
        let rows = sqlx::query(
            "SELECT cycle_id, group_id, revision FROM group_revisions
             WHERE $1 = '' OR cycle_id = $1 ORDER BY cycle_id, group_id",
        )
        .bind(cycle.unwrap_or_default())
        .fetch_all(&db.read)
        .await?;
        let mut current = Vec::new();
        for r in &rows {
            current.push(Change {
                group: format!(
                    "cycles/{}/groups/{}",
                    r.try_get::<String, _>("cycle_id")?,
                    r.try_get::<String, _>("group_id")?
                ),
                revision: r.try_get("revision")?,
            });
        }
        let prefix = cycle.map(|c| format!("cycles/{c}/")).unwrap_or_default();
        // A lagging watcher skips to newer revisions, which carry everything
        // the skipped ones did.
        let live = live.filter_map(move |c| c.ok().filter(|c| c.group.starts_with(&prefix)));
        Ok(self.shutdown.cut(tokio_stream::iter(current).chain(live)))
    }
}

#[cfg(test)]
mod tests {
    use super::unchanged_since;

    #[test]
    fn only_an_equal_nonzero_counter_keeps_a_copy() {
        assert!(unchanged_since(7, 7));
        assert!(!unchanged_since(6, 7));
        assert!(!unchanged_since(8, 7));
        // 0 means the caller holds nothing, even for a group never changed.
        assert!(!unchanged_since(0, 0));
    }
}
