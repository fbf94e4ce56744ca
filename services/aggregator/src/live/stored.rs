//! The stored copy of each group's standings. It only warms a restart
//! (loaded marked stale and refreshed at once), so it is written behind
//! the readers by one task, the latest table of each group at most once
//! per [`STORE_EVERY`]: under a stream of pushes a group is refreshed
//! several times a second, and storing every ~350 kB table would keep a
//! database write (and, on SQLite, its checkpoints) in this process for
//! each, in the refresh's own time and so in its pause.

use std::time::Duration;

use bytes::Bytes;

use super::Live;
use crate::store;

/// How often a group's stored copy is written at most.
const STORE_EVERY: Duration = Duration::from_secs(1);

impl Live {
    /// Queues a group's newest encoded standings for storing, replacing
    /// one not yet written.
    pub(super) fn store_later(&self, group: &str, revision: i64, encoded: Bytes) {
        self.inner
            .unstored
            .lock()
            .expect("unstored lock")
            .insert(group.to_string(), (revision, encoded));
        self.inner.store_wake.notify_one();
    }

    /// Writes queued copies until shutdown, then what is still queued.
    pub(super) async fn keep_stored(self) {
        loop {
            let stopping = tokio::select! {
                _ = self.inner.store_wake.notified() => false,
                _ = self.inner.shutdown.clone().wait() => true,
            };
            let queued = std::mem::take(&mut *self.inner.unstored.lock().expect("unstored lock"));
            for (group, (revision, encoded)) in queued {
                if let Err(e) =
                    store::save_standings(&self.inner.db, &group, revision, &encoded).await
                {
                    tracing::warn!(group = %group, error = %e, "standings could not be stored");
                }
            }
            if stopping {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(STORE_EVERY) => {}
                _ = self.inner.shutdown.clone().wait() => {}
            }
        }
    }
}
