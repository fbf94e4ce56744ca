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
pub mod background;
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

use jixiao_proto::{
    indicators::indicators_service_client::IndicatorsServiceClient,
    reviews::reviews_service_client::ReviewsServiceClient,
};
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
/// group is refetched in full; `metrics` gets the refresh and freshness
/// figures.
pub async fn server(
    db: Db,
    channels: Channels,
    shutdown: Shutdown,
    reconcile: Duration,
    metrics: jixiao_runtime::metrics::Metrics,
) -> Result<jixiao_runtime::routed::Routed<AggregatorServer>, Error> {
    let plans = PlansLookup::new(channels.plans.clone());
    let indicators = IndicatorsServiceClient::new(channels.indicators.clone());
    let reviews = ReviewsServiceClient::new(channels.reviews.clone());
    let live = live::Live::start(
        db.clone(),
        sources::Sources::new(channels),
        shutdown,
        reconcile,
        metrics,
    )
    .await?;
    Ok(AggregatorServer::new(AggregatorApi::new(
        db, live, plans, indicators, reviews,
    )))
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
            &[Shared::DependencyPrecondition, Shared::DeadlineExceeded],
        ) {
            panic!("{problems}");
        }
    }

    /// The flags the contract says block publication are exactly those the
    /// open items come from, each with the component its decision names;
    /// the component services' flags are what the standings show.
    #[test]
    fn blocking_flags_are_the_contract_s() {
        use crate::inputs::{BlockingFlag, OpenItem};
        use crate::rules::Component;
        use jixiao_proto::{indicators::ScoreFlag, reviews::ReviewFlag};

        let proto = include_str!("../../../proto/jixiao/aggregator/v1/aggregator.proto");
        let heading = "Flags that block publication";
        let listed = jixiao_runtime::reason::listed_in(proto, heading);
        let ours: Vec<&str> = BlockingFlag::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(listed, ours, "the flags listed under {heading:?}");
        // Each item names its decision's component in brackets.
        let items = proto
            .lines()
            .skip_while(|l| !l.contains(heading))
            .filter_map(|l| l.strip_prefix("// - "))
            .take(listed.len());
        for (item, flag) in items.zip(BlockingFlag::ALL) {
            let bracket = format!("{} ({}):", flag.as_str(), flag.component().name());
            assert!(
                item.starts_with(&bracket),
                "{item:?} should start {bracket:?}"
            );
        }
        for flag in BlockingFlag::ALL {
            let from_service = match flag.component() {
                Component::Indicator => {
                    ScoreFlag::from_str_name(&format!("SCORE_FLAG_{}", flag.as_str())).is_some()
                }
                Component::Survey => {
                    ReviewFlag::from_str_name(&format!("REVIEW_FLAG_{}", flag.as_str())).is_some()
                }
                _ => flag == BlockingFlag::ContestPending,
            };
            assert!(from_service, "{} is produced by no service", flag.as_str());
        }
        // The kinds of open items a PreconditionFailure lists are those the
        // INCOMPLETE reason describes.
        let incomplete = proto
            .split("// - INCOMPLETE ")
            .nth(1)
            .and_then(|rest| rest.split("\n// - ").next())
            .expect("the INCOMPLETE reason");
        for flag in ["", "MISSING_CATEGORY"] {
            let kind = OpenItem {
                unit: "units/u".into(),
                component: Component::Survey,
                flag: flag.into(),
            }
            .kind();
            assert!(
                incomplete.contains(kind),
                "{kind} is not described in the INCOMPLETE reason"
            );
        }
    }
}
