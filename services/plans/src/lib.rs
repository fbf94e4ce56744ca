//! The plans service (DOMAIN.md §2, §4): cycles with phases and deadlines,
//! peer groups, units, each group's scoring scheme and indicator framework,
//! performance plans with their review workflow and versions, lock
//! exceptions, timeliness and notices.
//!
//! `rules` holds the domain rules as plain functions; `service` is the tonic
//! adapter with the storage and authorisation of each call.

pub mod rules;
pub mod service;

use jixiao_runtime::{Db, Error, Migrations};

pub use service::PlansApi;

/// Error domain of this service.
pub const DOMAIN: &str = "jixiao.plans";

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The migrations of this service's database.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// Opens (and migrates) the service's database.
pub async fn open(url: &str) -> Result<Db, Error> {
    Db::connect(url, &MIGRATIONS).await
}

/// The mountable tonic server for this service; change streams end on
/// `shutdown`.
pub fn server(
    db: Db,
    shutdown: jixiao_runtime::host::Shutdown,
) -> jixiao_proto::plans::plans_service_server::PlansServiceServer<PlansApi> {
    jixiao_proto::plans::plans_service_server::PlansServiceServer::new(PlansApi::new(db, shutdown))
}
