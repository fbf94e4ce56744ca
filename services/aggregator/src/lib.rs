//! The aggregator (DOMAIN.md §3, §8): combines the indicator, review and
//! inspection components into composite scores and ranks, keeps live
//! standings, publishes immutable versions, gives each unit its feedback,
//! keeps the archive and answers dashboards.
//!
//! The layout every service shares: `grpc` is the tonic adapter (one line
//! per RPC), with `fast` in front of it for the pre-encoded standings read
//! path; the handlers live by resource (`standings`, `publications`,
//! `feedback`, `archive`, `audit`) on the service value of `api`; `store`
//! holds every SQL statement; `rules` the composite and ranking rules as
//! plain functions. Beside them, `inputs` is what a table is computed from
//! and its canonical encoding (the publication digest); `sources` the
//! reads from the other services; `live` the followed, stored standings.

mod api;
mod archive;
mod audit;
pub mod fast;
mod feedback;
mod grpc;
pub mod inputs;
pub mod live;
mod publications;
pub mod rules;
pub mod sources;
mod standings;
pub mod store;

use std::time::Duration;

use jixiao_runtime::{Db, Error, Migrations, host::Shutdown, plans_lookup::PlansLookup};

pub use api::AggregatorApi;
pub use fast::AggregatorServer;
pub use sources::Channels;

/// Error domain of this service.
pub const DOMAIN: &str = "jixiao.aggregator";

jixiao_runtime::reasons! {
    /// The reasons only this service gives; the proto's header lists them
    /// with the shared ones it gives (checked by the test below).
    pub enum Reason {
        /// A PreconditionFailure lists every open item.
        Incomplete = "INCOMPLETE",
        StandingsStale = "STANDINGS_STALE",
    }
}

/// Written in PostgreSQL's dialect; SQLite's is derived (`Migrations`).
static SOURCE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The migrations of this service's database.
pub const MIGRATIONS: Migrations = Migrations { source: &SOURCE };

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

#[cfg(test)]
mod tests {
    use jixiao_runtime::Shared;

    use super::Reason;

    #[test]
    fn reasons_are_the_contract_s() {
        let proto = include_str!("../../../proto/jixiao/aggregator/v1/aggregator.proto");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        if let Err(problems) = jixiao_runtime::reason::check_contract(
            proto,
            &src,
            Reason::ALL,
            &[Shared::DependencyPrecondition],
        ) {
            panic!("{problems}");
        }
    }
}
