//! Storage: one database per service, SQLite by default, PostgreSQL in
//! production, reached through sqlx's `Any` driver with portable SQL (`$n`
//! placeholders, decimals as canonical TEXT, times as unix milliseconds).
//!
//! SQLite allows one writer at a time, so writes go through a pool of one
//! connection (no SQLITE_BUSY races between writers) while reads use a pool
//! of several connections over WAL. On PostgreSQL both are the same pool.
//!
//! SQLite's WAL is copied back into the database file by a checkpointer
//! connection of its own rather than by the writer at commit: a checkpoint
//! copies every page a transaction wrote, and on the writer that copy would
//! sit on the one path every write waits for.

use std::{
    path::Path,
    str::FromStr,
    sync::{
        Arc, Weak,
        atomic::{AtomicI64, AtomicU32, Ordering},
    },
    time::Duration,
};

use sqlx::{
    AnyConnection, AnyPool, AssertSqlSafe, ConnectOptions, Executor, SqlSafeStr,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::{Migration, Migrator},
};
use tokio::sync::Notify;

use crate::error::Error;

/// The SQL dialect behind a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A service's migrations, written once in PostgreSQL's dialect; SQLite's
/// are derived from them with [`sqlite_sql`].
pub struct Migrations {
    pub source: &'static Migrator,
}

/// PostgreSQL SQL as SQLite spells it: the one type the two dialects name
/// differently (the runtime's own tables and every service's migrations
/// are written once and differ only by this).
pub fn sqlite_sql(postgres: &str) -> String {
    postgres.replace("BYTEA", "BLOB")
}

impl Migrations {
    /// The SQLite migrations, derived from the source. sqlx records each
    /// migration's checksum of the text it ran; the SQLite text is derived
    /// the same way on every start, so its checksums stay those of the
    /// first run.
    pub fn sqlite(&self) -> Migrator {
        Migrator::with_migrations(
            self.source
                .iter()
                .map(|m| {
                    Migration::new(
                        m.version,
                        m.description.clone(),
                        m.migration_type,
                        AssertSqlSafe(sqlite_sql(m.sql.as_str())).into_sql_str(),
                        m.no_tx,
                    )
                })
                .collect(),
        )
    }
}

/// A service's database.
#[derive(Clone, Debug)]
pub struct Db {
    pub dialect: Dialect,
    /// Pool for reads.
    pub read: AnyPool,
    /// Pool for writes (one connection on SQLite).
    pub write: AnyPool,
    url: String,
    /// SQLite: wakes the checkpointer.
    checkpoints: Option<Arc<Notify>>,
    /// Writes waiting for a write connection now (sqlx does not say).
    write_waiting: Arc<AtomicI64>,
}

/// The writer checkpoints by itself only when the WAL has grown past this
/// many pages (64 MiB of 4 KiB pages), i.e. when the checkpointer fell
/// behind; SQLite's default is 1,000.
/// Connections per PostgreSQL pool, one pool per service in a process:
/// [`set_pool_size`]. Replicas multiply it, and PostgreSQL refuses
/// connections past its `max_connections` (100 by default), so an operator
/// running several replicas sizes it to fit.
static POOL_SIZE: AtomicU32 = AtomicU32::new(DEFAULT_POOL_SIZE);
/// The pool size unless [`set_pool_size`] says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// Sets the connections per PostgreSQL pool of the databases connected
/// from now on (at least 2: a write may wait for a read in one call).
pub fn set_pool_size(n: u32) {
    POOL_SIZE.store(n.max(2), Ordering::Relaxed);
}

const WRITER_CHECKPOINT_PAGES: u32 = 16_384;
/// A WAL that grew during a burst of writes is cut back to this size when
/// it restarts.
const WAL_SIZE_LIMIT: u64 = 64 << 20;
/// The checkpointer runs at least this often, for writes that do not call
/// [`Db::committed`].
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Tables every service has: the audit trail (a hash chain), the
/// idempotency records and the change counters per group. Created idempotently before the service's own
/// migrations, so that services do not repeat them.
const RUNTIME_TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGINT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        principal TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_digest TEXT NOT NULL,
        digest TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS audit_log_resource ON audit_log (resource, seq)",
    "CREATE TABLE IF NOT EXISTS audit_head (
        id BIGINT PRIMARY KEY,
        seq BIGINT NOT NULL,
        digest TEXT NOT NULL
    )",
    "INSERT INTO audit_head (id, seq, digest) VALUES (1, 0, '') ON CONFLICT (id) DO NOTHING",
    "CREATE TABLE IF NOT EXISTS idempotency (
        principal TEXT NOT NULL,
        request_id TEXT NOT NULL,
        method TEXT NOT NULL,
        request_digest TEXT NOT NULL,
        response BYTEA NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (principal, request_id)
    )",
    // The group revisions a remembered write created, for its replays.
    "CREATE TABLE IF NOT EXISTS idempotency_revisions (
        principal TEXT NOT NULL,
        request_id TEXT NOT NULL,
        group_name TEXT NOT NULL,
        revision BIGINT NOT NULL,
        PRIMARY KEY (principal, request_id, group_name)
    )",
    "CREATE TABLE IF NOT EXISTS group_revisions (
        cycle_id TEXT NOT NULL,
        group_id TEXT NOT NULL,
        revision BIGINT NOT NULL,
        PRIMARY KEY (cycle_id, group_id)
    )",
];

/// SQLite's reader connections per service.
const READERS: u32 = 8;

/// The advisory lock around creating the runtime's tables (a constant
/// key; "jixiao" in ASCII). The functions return void, which sqlx cannot
/// decode, so a constant is selected from them.
const RUNTIME_TABLES_LOCK: &str = "SELECT 1 AS locked FROM pg_advisory_lock(117001224282479)";
const RUNTIME_TABLES_UNLOCK: &str = "SELECT pg_advisory_unlock(117001224282479) AS unlocked";

impl Db {
    /// Connects to `url` (`sqlite://path` or `postgres://...`), creating a
    /// SQLite file when missing, and brings the schema up to date.
    pub async fn connect(url: &str, migrations: &Migrations) -> Result<Db, Error> {
        Db::open(url, migrations, false).await
    }

    /// As [`Db::connect`], for a service whose writes are mostly bulk
    /// ingest: SQLite's one writer runs at the bulk lane's priority (see
    /// [`crate::bulk`]), below the readers, so that reads of a group's
    /// scores do not share a busy core evenly with a platform's stream.
    /// The writer thread inherits the priority of the thread that opens its
    /// connection, so the connection is opened on the lane and kept for
    /// the process's life (no idle timeout, no lifetime); should a failure
    /// ever make the pool reopen it elsewhere, the writer is merely back at
    /// normal priority. PostgreSQL's writer is a server process of its own.
    pub async fn connect_bulk(url: &str, migrations: &Migrations) -> Result<Db, Error> {
        Db::open(url, migrations, true).await
    }

    async fn open(url: &str, migrations: &Migrations, bulk: bool) -> Result<Db, Error> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(Error::invalid(
                "database_url",
                "must start with sqlite: or postgres:",
            ));
        };
        let db = match dialect {
            Dialect::Sqlite => {
                let url = with_create_mode(url);
                let options = AnyConnectOptions::from_str(&url)?;
                let mut write = AnyPoolOptions::new().max_connections(1);
                if bulk {
                    write = write.idle_timeout(None).max_lifetime(None);
                }
                let write = write
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(sqlx::AssertSqlSafe(format!(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;
                                 PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
                            )))
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options.clone());
                let write = if bulk {
                    crate::bulk::spawn(write).await?
                } else {
                    write.await
                }
                .map_err(unavailable)?;
                // The first write connection switched the file to WAL, which is
                // persistent; readers only need the busy timeout.
                let mut read = AnyPoolOptions::new().max_connections(READERS);
                if bulk {
                    // All opened here and kept: one opened later by a read
                    // on the lane would inherit the lane's priority.
                    read = read
                        .min_connections(READERS)
                        .idle_timeout(None)
                        .max_lifetime(None);
                }
                let read = read
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA busy_timeout = 10000;").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options.clone())
                    .await
                    .map_err(unavailable)?;
                let wake = Arc::new(Notify::new());
                let checkpointer = options.connect().await.map_err(unavailable)?;
                tokio::spawn(checkpoint(Arc::downgrade(&wake), checkpointer));
                Db {
                    dialect,
                    read,
                    write,
                    url,
                    checkpoints: Some(wake),
                    write_waiting: Arc::default(),
                }
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(POOL_SIZE.load(Ordering::Relaxed))
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await
                    .map_err(unavailable)?;
                Db {
                    dialect,
                    read: pool.clone(),
                    write: pool,
                    url: url.to_string(),
                    checkpoints: None,
                    write_waiting: Arc::default(),
                }
            }
        };
        // Replicas of a service start at the same time on one PostgreSQL
        // database, and concurrent `CREATE TABLE IF NOT EXISTS` of one
        // table can fail there: the runtime's tables are created under a
        // session lock (sqlx locks the migrations itself).
        let mut conn = db.write.acquire().await?;
        if db.dialect == Dialect::Postgres {
            conn.execute(RUNTIME_TABLES_LOCK).await?;
        }
        let created: Result<(), sqlx::Error> = async {
            for statement in RUNTIME_TABLES {
                let sql = match db.dialect {
                    Dialect::Sqlite => sqlite_sql(statement),
                    Dialect::Postgres => statement.to_string(),
                };
                conn.execute(sqlx::AssertSqlSafe(sql)).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = created {
            // Closing the session releases its lock; back in the pool it
            // would keep it.
            drop(conn.detach());
            return Err(e.into());
        }
        if db.dialect == Dialect::Postgres {
            conn.execute(RUNTIME_TABLES_UNLOCK).await?;
        }
        drop(conn);
        match db.dialect {
            Dialect::Postgres => migrations.source.run(&db.write).await?,
            Dialect::Sqlite => migrations.sqlite().run(&db.write).await?,
        }
        Ok(db)
    }

    /// The URL the pools connect to (with credentials: keep it out of logs).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL with any password masked, for startup lines and logs.
    pub fn display_url(&self) -> String {
        mask_password(&self.url)
    }

    /// Tells the checkpointer that a large write committed (SQLite; a
    /// no-op on PostgreSQL). Small writes need not call it: the checkpointer
    /// also runs every second.
    pub fn committed(&self) {
        if let Some(wake) = &self.checkpoints {
            wake.notify_one();
        }
    }

    /// Begins a write transaction, counted among the writes waiting for
    /// a write connection until it has one.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        /// Leaves the count when the wait ends, also when the call is dropped.
        struct Waiting<'a>(&'a AtomicI64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.write_waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&self.write_waiting);
        self.write.begin().await
    }

    /// Writes waiting for a write connection now (see [`Db::begin_write`]).
    pub fn write_waiting(&self) -> i64 {
        self.write_waiting.load(Ordering::Relaxed)
    }

    /// Whether the database answers now.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.read).await.is_ok()
    }
}

/// Copies committed WAL pages into the SQLite file, on its own connection,
/// whenever woken and at least every [`CHECKPOINT_EVERY`], until the `Db`
/// is gone. PASSIVE: it never waits for or blocks the writer or readers.
async fn checkpoint(wake: Weak<Notify>, mut conn: AnyConnection) {
    while let Some(notify) = wake.upgrade() {
        let _ = tokio::time::timeout(CHECKPOINT_EVERY, notify.notified()).await;
        drop(notify);
        if let Err(e) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::warn!(error = %e, "WAL checkpoint failed; the writer will checkpoint instead");
        }
    }
    let _ = sqlx::Connection::close(conn).await;
}

fn unavailable(e: sqlx::Error) -> Error {
    Error::Unavailable {
        dependency: "database".into(),
        message: e.to_string(),
    }
}

fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// The SQLite URL of a service's file in a data folder.
pub fn sqlite_url(data_dir: &Path, service: &str) -> String {
    format!(
        "sqlite://{}",
        data_dir.join(format!("{service}.db")).display()
    )
}

/// Masks the password of a database URL.
pub fn mask_password(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One source, two dialects: SQLite gets the type map, the same
    /// versions and descriptions, and checksums of the text it runs.
    #[test]
    fn sqlite_migrations_are_derived_from_the_source() {
        let source = Migrator::with_migrations(vec![Migration::new(
            1,
            "t".into(),
            sqlx::migrate::MigrationType::Simple,
            AssertSqlSafe("CREATE TABLE t (b BYTEA NOT NULL);".to_string()).into_sql_str(),
            false,
        )]);
        let source: &'static Migrator = Box::leak(Box::new(source));
        let m = Migrations { source };
        let lite = m.sqlite();
        let lite: Vec<_> = lite.iter().collect();
        let pg: Vec<_> = m.source.iter().collect();
        assert_eq!(lite[0].sql.as_str(), "CREATE TABLE t (b BLOB NOT NULL);");
        assert_eq!(pg[0].sql.as_str(), "CREATE TABLE t (b BYTEA NOT NULL);");
        assert_eq!(
            (lite[0].version, &lite[0].description),
            (1, &pg[0].description)
        );
        assert_ne!(lite[0].checksum, pg[0].checksum);
    }

    /// The nice values of this process's SQLite connection threads.
    #[cfg(target_os = "linux")]
    fn sqlite_thread_nices() -> Vec<i32> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| {
                let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
                let (name, rest) = stat.rsplit_once(')')?;
                name.contains("sqlx-sqlite").then_some(())?;
                // Field 19 of stat; `rest` starts at field 3.
                rest.split_whitespace().nth(16)?.parse().ok()
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_bulk_services_sqlite_writer_runs_below_its_readers() {
        static NONE: Migrator = Migrator::DEFAULT;
        let lowered = || {
            sqlite_thread_nices()
                .into_iter()
                .filter(|n| *n >= crate::bulk::NICE)
                .count()
        };
        let before = lowered();
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect_bulk(&sqlite_url(dir.path(), "t"), &Migrations { source: &NONE })
            .await
            .unwrap();
        db.write.execute("CREATE TABLE t (x TEXT)").await.unwrap();
        // Writes and reads from the lane, as survey ingest makes them.
        let on_lane = db.clone();
        let read = crate::bulk::run(async move {
            on_lane.write.execute("INSERT INTO t VALUES ('a')").await?;
            let reads = (0..READERS).map(|_| {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM t").fetch_one(&on_lane.read)
            });
            Ok(futures::future::try_join_all(reads).await?)
        })
        .await
        .unwrap();
        assert_eq!(read, vec![1; READERS as usize]);
        // The one writer runs on the lane's priority, the readers not.
        assert_eq!(lowered(), before + 1);
    }

    #[tokio::test]
    async fn the_checkpointer_copies_committed_pages_into_the_file_off_the_writer() {
        static NONE: Migrator = Migrator::DEFAULT;
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&sqlite_url(dir.path(), "t"), &Migrations { source: &NONE })
            .await
            .unwrap();
        let file = dir.path().join("t.db");
        let size = || std::fs::metadata(&file).unwrap().len();
        db.write
            .execute("CREATE TABLE t (x TEXT NOT NULL)")
            .await
            .unwrap();
        // Another checkpoint may be under way after the schema writes: wait
        // until the file stands still before taking its size.
        let mut before = size();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if size() == before {
                break;
            }
            before = size();
        }
        // ~2 MB of rows: far below the writer's own checkpoint threshold,
        // so only the checkpointer can move them into the file.
        db.write
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO t SELECT printf('%01000d', i) FROM n",
            )
            .await
            .unwrap();
        db.committed();
        let mut grew = false;
        for _ in 0..100 {
            if size() >= before + 1_000_000 {
                grew = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(grew, "file stayed at {} bytes (was {before})", size());
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://app:s3cret@db:5432/plans"),
            "postgres://app:***@db:5432/plans"
        );
        assert_eq!(
            mask_password("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(
            mask_password("sqlite://data/plans.db"),
            "sqlite://data/plans.db"
        );
    }
}
