//! Storage: one database per service, SQLite by default, PostgreSQL in
//! production, reached through sqlx's `Any` driver with portable SQL (`$n`
//! placeholders, decimals as canonical TEXT, times as unix milliseconds).
//!
//! SQLite allows one writer at a time, so writes go through a pool of one
//! connection (no SQLITE_BUSY races between writers) while reads use a pool
//! of several connections over WAL. On PostgreSQL both are the same pool.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    AnyPool, Executor,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};

use crate::error::Error;

/// The SQL dialect behind a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A service's migrations, one folder per dialect.
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
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
}

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
    "CREATE TABLE IF NOT EXISTS group_revisions (
        cycle_id TEXT NOT NULL,
        group_id TEXT NOT NULL,
        revision BIGINT NOT NULL,
        PRIMARY KEY (cycle_id, group_id)
    )",
];

impl Db {
    /// Connects to `url` (`sqlite://path` or `postgres://...`), creating a
    /// SQLite file when missing, and brings the schema up to date.
    pub async fn connect(url: &str, migrations: &Migrations) -> Result<Db, Error> {
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
                let write = AnyPoolOptions::new()
                    .max_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options.clone())
                    .await
                    .map_err(unavailable)?;
                // The first write connection switched the file to WAL, which is
                // persistent; readers only need the busy timeout.
                let read = AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA busy_timeout = 10000;").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(unavailable)?;
                Db {
                    dialect,
                    read,
                    write,
                    url,
                }
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(url)
                    .await
                    .map_err(unavailable)?;
                Db {
                    dialect,
                    read: pool.clone(),
                    write: pool,
                    url: url.to_string(),
                }
            }
        };
        for statement in RUNTIME_TABLES {
            let sql = match db.dialect {
                Dialect::Sqlite => statement.replace("BYTEA", "BLOB"),
                Dialect::Postgres => statement.to_string(),
            };
            db.write.execute(sqlx::AssertSqlSafe(sql)).await?;
        }
        let migrator = match db.dialect {
            Dialect::Sqlite => migrations.sqlite,
            Dialect::Postgres => migrations.postgres,
        };
        migrator.run(&db.write).await?;
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

    /// Whether the database answers now.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.read).await.is_ok()
    }
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
