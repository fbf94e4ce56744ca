//! Change signals for the aggregator: each service keeps a change counter
//! per group (bumped in the same transaction as the change) and broadcasts
//! `(group, revision)` after commit. A watcher first receives the current
//! revision of every group of its cycle, then live changes, so a watcher
//! that reconnects misses nothing. Streams end when the process shuts down.
//!
//! On PostgreSQL several replicas of a service share one database, so a
//! change travels through it: the bump also issues a `NOTIFY`, which
//! PostgreSQL delivers only when the transaction commits, and every
//! replica's listener (`listen` below) feeds what it hears into its own
//! broadcast. A replica hears its own commits twice (announced locally
//! and heard back); only a revision newer than the last one broadcast for
//! its group goes out, so watchers see each once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use futures::Stream;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use tokio::sync::broadcast;
use tokio_stream::{StreamExt, wrappers::BroadcastStream};

use crate::{Db, Dialect, Error, host::Shutdown};

/// The `NOTIFY` channel of a database's change signals, computed by the
/// server: notifications never leave their database, and the schema keeps
/// services that share one database in schemas of their own apart. A
/// channel name is an identifier, at most 63 bytes.
const CHANNEL_SQL: &str = "left('jixiao.' || current_schema(), 63)";

/// One body for both connection types; `$notify` says whether the
/// connection is PostgreSQL's.
macro_rules! bump_body {
    ($conn:ident, $cycle:ident, $group:ident, $notify:expr) => {{
        let row = sqlx::query(
            "INSERT INTO group_revisions (cycle_id, group_id, revision) VALUES ($1, $2, 1)
             ON CONFLICT (cycle_id, group_id) DO UPDATE SET revision = group_revisions.revision + 1
             RETURNING revision",
        )
        .bind($cycle)
        .bind($group)
        .fetch_one(&mut *$conn)
        .await?;
        let change = Change {
            group: format!("cycles/{}/groups/{}", $cycle, $group),
            revision: row.try_get("revision")?,
            traceparent: crate::telemetry::traceparent(),
            time_ms: Some(crate::time::now_ms()),
        };
        if $notify {
            // pg_notify returns void, which sqlx cannot decode: select a
            // constant from it instead.
            let payload = serde_json::to_string(&change).expect("a change serialises");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT 1 AS sent FROM pg_notify({CHANNEL_SQL}, $1)"
            )))
            .bind(payload)
            .execute(&mut *$conn)
            .await?;
        }
        Ok(change)
    }};
}

/// The cycle name that watches every cycle.
pub const ALL_CYCLES: &str = "cycles/-";

/// A group's change counter after a change. Every field travels in the
/// `NOTIFY` payload (JSON) to the other replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `cycles/{cycle}/groups/{group}`.
    pub group: String,
    pub revision: i64,
    /// The W3C `traceparent` of the call that made the change, so that the
    /// work it causes elsewhere (the aggregator's refresh) joins its trace;
    /// `None` for a counter read back rather than made by a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// When the change was written (the writing replica's clock, in the
    /// transaction just before its commit), so that the aggregator can
    /// measure freshness from the commit rather than from the signal's
    /// arrival; `None` for a counter read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<i64>,
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
    shared: Arc<Shared>,
    shutdown: Shutdown,
}

#[derive(Debug)]
struct Shared {
    sender: broadcast::Sender<Change>,
    /// The newest revision broadcast per group, and whether it went out
    /// with the call that made it.
    latest: Mutex<HashMap<String, (i64, bool)>>,
    /// Set once the PostgreSQL listener is started (by the first watcher).
    listening: OnceLock<()>,
}

impl Shared {
    /// Broadcasts `c` unless a revision at least as new went out for its
    /// group: a newer revision carries everything an older one did. The
    /// send happens under the lock so that a group's revisions go out in
    /// order.
    ///
    /// One exception: a revision that went out read back (no traceparent,
    /// e.g. by the listener's resync between a commit and its own
    /// announcement) goes out once more with the call that made it, so the
    /// work it causes still joins that call's trace.
    fn publish(&self, c: Change) {
        let mut latest = self.latest.lock().expect("latest revisions");
        let (seen, traced) = latest.entry(c.group.clone()).or_default();
        let traced_now = c.traceparent.is_some();
        if c.revision > *seen || (c.revision == *seen && !*traced && traced_now) {
            (*seen, *traced) = (c.revision, traced_now);
            // No watcher is fine: watchers read current revisions on connect.
            let _ = self.sender.send(c);
        }
    }
}

impl Changes {
    pub fn new(shutdown: Shutdown) -> Self {
        let (sender, _) = broadcast::channel(4096);
        Changes {
            shared: Arc::new(Shared {
                sender,
                latest: Mutex::default(),
                listening: OnceLock::new(),
            }),
            shutdown,
        }
    }

    /// Bumps a group's counter inside the caller's transaction (and on
    /// PostgreSQL queues its notification for the commit).
    pub async fn bump(conn: &mut AnyConnection, cycle: &str, group: &str) -> Result<Change, Error> {
        let notify = conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME;
        bump_body!(conn, cycle, group, notify)
    }

    /// [`Changes::bump`] on a native PostgreSQL connection.
    pub async fn bump_pg(
        conn: &mut sqlx::PgConnection,
        cycle: &str,
        group: &str,
    ) -> Result<Change, Error> {
        bump_body!(conn, cycle, group, true)
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
            self.shared.publish(c);
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
        if db.dialect == Dialect::Postgres {
            self.shared.listening.get_or_init(|| {
                tokio::spawn(listen(
                    db.clone(),
                    Arc::downgrade(&self.shared),
                    self.shutdown.clone(),
                ));
            });
        }
        // Subscribe first so nothing committed meanwhile is missed.
        let live = BroadcastStream::new(self.shared.sender.subscribe());
        let current = read_back(db, cycle).await?;
        let prefix = cycle.map(|c| format!("cycles/{c}/")).unwrap_or_default();
        // A lagging watcher skips to newer revisions, which carry everything
        // the skipped ones did.
        let live = live.filter_map(move |c| c.ok().filter(|c| c.group.starts_with(&prefix)));
        Ok(self.shutdown.cut(tokio_stream::iter(current).chain(live)))
    }
}

/// How long the listener waits before connecting again after a failure.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// Feeds every replica's commits, heard through PostgreSQL, into this
/// replica's broadcast until shutdown (or until the service is gone).
/// Notifications sent while the listener is not connected are lost, so
/// after every (re)connection the counters, which are the truth, are read
/// again and whatever moved is broadcast.
async fn listen(db: Db, shared: Weak<Shared>, shutdown: Shutdown) {
    tokio::select! {
        _ = shutdown.wait() => {}
        _ = follow_database(&db, &shared) => {}
    }
}

async fn follow_database(db: &Db, shared: &Weak<Shared>) {
    loop {
        let mut listener = match subscribe(db).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other replicas' changes; retrying");
                tokio::time::sleep(RELISTEN_AFTER).await;
                continue;
            }
        };
        // Some(why) when the listener fails (it is then made anew, which
        // rereads the counters again); None when the service is gone.
        let failure: Option<String> = async {
            loop {
                match resync(db, shared).await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => return Some(e.to_string()),
                }
                // `Ok(None)`: the connection was lost and is already
                // back (eager reconnect), so reread what it missed.
                loop {
                    match listener.try_recv().await {
                        Ok(Some(n)) => {
                            let shared = shared.upgrade()?;
                            match serde_json::from_str::<Change>(n.payload()) {
                                Ok(c) => shared.publish(c),
                                Err(e) => {
                                    tracing::warn!(error = %e, payload = n.payload(), "unreadable change notification")
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return Some(e.to_string()),
                    }
                }
            }
        }
        .await;
        match failure {
            Some(e) => {
                tracing::warn!(error = %e, "lost the change listener; listening again");
                tokio::time::sleep(RELISTEN_AFTER).await;
            }
            None => return,
        }
    }
}

/// The current counters of a cycle's groups (of every cycle for `None`),
/// as changes read back: no call made them here.
async fn read_back(db: &Db, cycle: Option<&str>) -> Result<Vec<Change>, Error> {
    let rows = sqlx::query(
        "SELECT cycle_id, group_id, revision FROM group_revisions
         WHERE $1 = '' OR cycle_id = $1 ORDER BY cycle_id, group_id",
    )
    .bind(cycle.unwrap_or_default())
    .fetch_all(&db.read)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Change {
                group: format!(
                    "cycles/{}/groups/{}",
                    r.try_get::<String, _>("cycle_id")?,
                    r.try_get::<String, _>("group_id")?
                ),
                revision: r.try_get("revision")?,
                traceparent: None,
                time_ms: None,
            })
        })
        .collect()
}

/// A listener on this database's change channel.
async fn subscribe(db: &Db) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(db.url()).await?;
    let channel: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {CHANNEL_SQL}")))
        .fetch_one(&mut listener)
        .await?;
    listener.listen(&channel).await?;
    Ok(listener)
}

/// Broadcasts every counter newer than what went out; false when the
/// service is gone.
async fn resync(db: &Db, shared: &Weak<Shared>) -> Result<bool, Error> {
    let current = read_back(db, None).await?;
    let Some(shared) = shared.upgrade() else {
        return Ok(false);
    };
    for c in current {
        shared.publish(c);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use sqlx::{Connection, Executor, migrate::Migrator};

    use super::*;
    use crate::Migrations;

    type Watch = Pin<Box<dyn Stream<Item = Change> + Send>>;

    /// A guard against a hang, not a timing requirement.
    const PATIENT: Duration = Duration::from_secs(20);

    async fn next(w: &mut Watch) -> Change {
        tokio::time::timeout(PATIENT, w.next())
            .await
            .expect("a change within the wait")
            .expect("the stream stays open")
    }

    /// Commits a bump of `group` on `db`; announces it when `changes` is given.
    async fn commit(db: &Db, changes: Option<&Changes>, group: &str) -> Change {
        let mut tx = db.write.begin().await.unwrap();
        let c = Changes::bump(&mut tx, "2026", group).await.unwrap();
        tx.commit().await.unwrap();
        if let Some(changes) = changes {
            changes.announce([c.clone()]);
        }
        c
    }

    fn change(group: &str, revision: i64) -> Change {
        Change {
            group: format!("cycles/2026/groups/{group}"),
            revision,
            traceparent: None,
            time_ms: None,
        }
    }

    /// Two replicas of a service on one PostgreSQL database (two `Db`s,
    /// two `Changes`), and a third database beside them: each replica's
    /// watchers hear the other's commits once, also after the listener's
    /// connection was cut, and nothing crosses into the other database.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_hear_each_others_commits_through_postgres() {
        let Some(admin) = std::env::var("JIXIAO_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipped: set JIXIAO_TEST_POSTGRES_URL to run on PostgreSQL");
            return;
        };
        static NONE: Migrator = Migrator::DEFAULT;
        let none = Migrations { source: &NONE };
        sqlx::any::install_default_drivers();
        let mut server = AnyConnection::connect(&admin).await.unwrap();
        let run = uuid::Uuid::new_v4().simple().to_string();
        let names = [
            format!("jxtest_{}_changes", &run[..12]),
            format!("jxtest_{}_other", &run[..12]),
        ];
        let mut urls = Vec::new();
        for name in &names {
            server
                .execute(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {name} TEMPLATE template0"
                )))
                .await
                .unwrap();
            let (base, _) = admin.rsplit_once('/').expect("admin URL names a database");
            urls.push(format!("{base}/{name}"));
        }
        let (trigger, shutdown) = Shutdown::new();
        let (db_a, db_b) = (
            Db::connect(&urls[0], &none).await.unwrap(),
            Db::connect(&urls[0], &none).await.unwrap(),
        );
        let (a, b) = (
            Changes::new(shutdown.clone()),
            Changes::new(shutdown.clone()),
        );
        let mut on_a: Watch = Box::pin(a.watch(&db_a, None).await.unwrap());
        let mut on_b: Watch = Box::pin(b.watch(&db_b, None).await.unwrap());
        let (db_c, db_c2) = (
            Db::connect(&urls[1], &none).await.unwrap(),
            Db::connect(&urls[1], &none).await.unwrap(),
        );
        let c = Changes::new(shutdown.clone());
        let mut on_c: Watch = Box::pin(c.watch(&db_c, None).await.unwrap());

        let first = commit(&db_a, Some(&a), "districts").await;
        // Made by a write, it says when: the rest is the counter's.
        assert!(first.time_ms.is_some());
        assert_eq!(
            Change {
                time_ms: None,
                ..first.clone()
            },
            change("districts", 1)
        );
        assert_eq!(next(&mut on_b).await, first);
        // B's own commit reaches A's watchers too; A's first commit went
        // out once on A although A also heard it back from the database.
        let second = commit(&db_b, Some(&b), "districts").await;
        assert_eq!(next(&mut on_a).await, first);
        assert_eq!(next(&mut on_a).await, second);
        assert_eq!(next(&mut on_b).await, second);

        // Cut B's listener: whatever commits around the reconnection is
        // heard, by notification or by rereading the counters.
        let cut = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()",
        )
        .fetch_all(&db_b.read)
        .await
        .unwrap();
        assert_eq!(cut.len(), 2, "A's and B's listeners");
        let third = commit(&db_a, None, "departments").await;
        // A counter reread says no time: compare the counters.
        let heard = next(&mut on_b).await;
        assert_eq!((heard.group, heard.revision), (third.group, third.revision));

        // The other database's watcher: its first live change is the one
        // committed there (heard only through PostgreSQL, in commit order
        // after A's), never one of A's.
        let elsewhere = commit(&db_c2, None, "elsewhere").await;
        assert_eq!(next(&mut on_c).await, elsewhere);

        trigger.fire();
        drop((on_a, on_b, on_c));
        for db in [db_a, db_b, db_c, db_c2] {
            db.write.close().await;
        }
        for name in &names {
            server
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await
                .unwrap();
        }
    }

    #[test]
    fn a_revision_read_back_goes_out_again_with_its_call() {
        let (_trigger, shutdown) = Shutdown::new();
        let changes = Changes::new(shutdown);
        let mut rx = changes.shared.sender.subscribe();
        let traced = |revision, tp: Option<&str>| Change {
            traceparent: tp.map(str::to_string),
            ..change("g", revision)
        };
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        for c in [
            traced(3, None),
            traced(3, Some(tp)),
            traced(3, Some(tp)),
            traced(3, None),
            traced(2, Some(tp)),
            traced(4, Some(tp)),
            traced(4, None),
        ] {
            changes.shared.publish(c);
        }
        let mut sent = Vec::new();
        while let Ok(c) = rx.try_recv() {
            sent.push((c.revision, c.traceparent.is_some()));
        }
        assert_eq!(sent, [(3, false), (3, true), (4, true)]);
    }

    #[test]
    fn only_an_equal_nonzero_counter_keeps_a_copy() {
        assert!(unchanged_since(7, 7));
        assert!(!unchanged_since(6, 7));
        assert!(!unchanged_since(8, 7));
        // 0 means the caller holds nothing, even for a group never changed.
        assert!(!unchanged_since(0, 0));
    }
}
