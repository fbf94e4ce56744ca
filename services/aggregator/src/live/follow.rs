//! Following the component services: their change streams mark the
//! groups they name, and a periodic reconciliation marks every active group
//! in case a signal was lost.

use std::time::{Duration, Instant};

use futures::StreamExt;

use super::{ALL_SOURCES, FULL, Live};
use crate::sources::Source;

/// Every this many reconciliations is a full one: a crash between a plans
/// commit and its counter bump would otherwise go unseen.
const FULL_EVERY: u32 = 10;

/// The moment on this process's clock when a change was written, from the
/// component's wall-clock time: freshness is measured from the commit, not
/// from the signal's arrival. A counter read back (no time) or a time
/// ahead of ours (clocks apart) counts from now.
fn written_at(written_ms: Option<i64>) -> Instant {
    let now = Instant::now();
    written_ms
        .map(|ms| jixiao_runtime::time::now_ms().saturating_sub(ms))
        .filter(|age| *age > 0)
        .and_then(|age| now.checked_sub(Duration::from_millis(age as u64)))
        .unwrap_or(now)
}

impl Live {
    /// Follows one service's change stream for as long as the process runs,
    /// reconnecting with backoff; while it is down every group is stale.
    pub(super) async fn follow(self, source: Source) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let reason = match self.inner.sources.watch(source).await {
                Ok(mut stream) => {
                    backoff = Duration::from_millis(100);
                    let was_down = self
                        .inner
                        .down
                        .lock()
                        .expect("down lock")
                        .remove(&source)
                        .is_some();
                    if was_down {
                        tracing::info!(service = source.service(), "change stream back");
                    }
                    // Whatever changed while the stream was away is picked
                    // up by refetching this source for every group.
                    // The component services score from plans data, so a
                    // plan-side change refetches every source.
                    let bits = if source == Source::Plans {
                        ALL_SOURCES | FULL
                    } else {
                        source.bit()
                    };
                    for cell in self.known() {
                        self.mark(cell, bits);
                    }
                    loop {
                        tokio::select! {
                            item = stream.next() => match item {
                                Some(Ok(signal)) => {
                                    let cell = self.cell(&signal.group);
                                    self.cause(&cell, source, signal.revision, signal.cause);
                                    self.signal(cell, bits, written_at(signal.written_ms));
                                }
                                Some(Err(e)) => break e.to_string(),
                                None => break format!("{} closed its change stream", source.service()),
                            },
                            _ = self.inner.shutdown.clone().wait() => return,
                        }
                    }
                }
                Err(e) => e.to_string(),
            };
            let newly_down = self
                .inner
                .down
                .lock()
                .expect("down lock")
                .insert(source, reason.clone())
                .is_none();
            if newly_down {
                tracing::warn!(service = source.service(), reason = %reason, "change stream down; standings are stale");
                for cell in self.known() {
                    self.mark(cell, source.bit());
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.inner.shutdown.clone().wait() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Refetches every active group now and then: plans data always (its
    /// timeliness flags move with the clock), the components when their
    /// counters moved, and everything in full every [`FULL_EVERY`] rounds.
    pub(super) async fn reconcile(self, every: Duration) {
        for round in 0u32.. {
            let bits = if round % FULL_EVERY == 0 {
                ALL_SOURCES | FULL
            } else {
                ALL_SOURCES
            };
            match self.inner.sources.active_groups().await {
                Ok(groups) => {
                    for g in groups {
                        let cell = self.cell(&g);
                        self.mark(cell, bits);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reconciliation could not list groups"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.inner.shutdown.clone().wait() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::written_at;

    #[test]
    fn freshness_counts_from_the_write_on_the_component_s_clock() {
        let before = Instant::now();
        let at = written_at(Some(jixiao_runtime::time::now_ms() - 2_000));
        let age = before.duration_since(at);
        assert!(age >= Duration::from_millis(1_900), "{age:?}");
        // No time (a counter read back) or a time ahead of this clock: now.
        assert!(written_at(None) >= before);
        assert!(written_at(Some(jixiao_runtime::time::now_ms() + 60_000)) >= before);
    }
}
