//! The aggregator (DOMAIN.md §3, §8): combines the indicator, review and
//! inspection components into composite scores and ranks, keeps live
//! standings, publishes immutable versions, gives each unit its feedback,
//! keeps the archive and answers dashboards.
//!
//! `rules` holds the composite and ranking rules as plain functions;
//! `inputs` what a table is computed from and its canonical encoding (the
//! publication digest); `sources` the reads from the other services;
//! `live` the followed, stored standings; `store` the database; `service`
//! the tonic adapter and `fast` the pre-encoded standings read path.

pub mod fast;
pub mod inputs;
pub mod live;
pub mod rules;
pub mod service;
pub mod sources;
pub mod store;

use std::time::Duration;

use jixiao_runtime::{Db, Error, Migrations, host::Shutdown, plans_lookup::PlansLookup};

pub use fast::AggregatorServer;
pub use service::AggregatorApi;
pub use sources::Channels;

/// Error domain of this service.
pub const DOMAIN: &str = "jixiao.aggregator";

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

/// Loads the stored standings, starts following the component services and
/// returns the mountable server. `reconcile` is how often every active
/// group is refetched in full.
pub async fn server(
    db: Db,
    channels: Channels,
    shutdown: Shutdown,
    reconcile: Duration,
) -> Result<AggregatorServer, Error> {
    let plans = PlansLookup::new(channels.plans.clone());
    let live = live::Live::start(
        db.clone(),
        sources::Sources::new(channels),
        shutdown,
        reconcile,
    )
    .await?;
    Ok(AggregatorServer::new(AggregatorApi::new(db, live, plans)))
}
