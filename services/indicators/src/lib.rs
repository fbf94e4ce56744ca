//! The indicators service (DOMAIN.md §5): data-provider units report
//! indicator values with evidence; values are checked at entry against the
//! framework and approved plans of the plans service, every version is
//! kept, progress is tracked, and each unit's indicator score (the
//! 60-point component) is computed.
//!
//! `scoring` holds the five scoring methods as plain functions; `rules` the
//! entry rules; `service` the tonic adapter.

pub mod rules;
pub mod scoring;
pub mod service;

use jixiao_runtime::{Db, Error, Migrations, client::ServiceChannel, host::Shutdown};

pub use service::IndicatorsApi;

/// Error domain of this service.
pub const DOMAIN: &str = "jixiao.indicators";

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

/// The mountable tonic server; `plans` is a channel to the plans service.
pub fn server(
    db: Db,
    plans: ServiceChannel,
    shutdown: Shutdown,
) -> jixiao_proto::indicators::indicators_service_server::IndicatorsServiceServer<IndicatorsApi> {
    jixiao_proto::indicators::indicators_service_server::IndicatorsServiceServer::new(
        IndicatorsApi::new(db, plans, shutdown),
    )
}
