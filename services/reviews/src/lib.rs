//! The reviews service (DOMAIN.md §6): survey platforms push citizen survey
//! responses (streamed or in batches, idempotent by response id) or
//! unit-level results, the portal pushes online votes, units rate each
//! other; the service keeps running tallies and computes the survey (30),
//! online (5) and mutual (5) components.
//!
//! The layout every service shares: `grpc` is the tonic adapter (one line
//! per RPC); the handlers live by resource (`campaigns`, `responses`,
//! `results`, `ratings`, `scores`, `flags`) on the service value of `api`;
//! `store` holds the SQL, except the response ingest, whose bulk path per
//! database is `ingest`; `scoring` the review arithmetic and `quality` the
//! survey screening rules, as plain functions. `server` mounts `grpc`,
//! except for the two methods that take survey batches, which `wire`
//! decodes without copying their strings.

mod api;
mod campaigns;
mod flags;
mod grpc;
pub mod ingest;
pub mod quality;
mod ratings;
mod responses;
mod results;
mod scores;
pub mod scoring;
mod server;
mod store;
mod tally_cache;
mod wire;

use jixiao_runtime::{
    Db, Error, Migrations, client::ServiceChannel, host::Shutdown, metrics::Metrics,
};

pub use api::{MAX_BATCH, ReviewsApi};
pub use server::ReviewsServer;

/// Error domain of this service.
pub const DOMAIN: &str = "jixiao.reviews";

jixiao_runtime::reasons! {
    /// The reasons only this service gives; the proto's header lists them
    /// with the shared ones it gives (checked by the test below).
    pub enum Reason {
        CampaignExists = "CAMPAIGN_EXISTS",
        WrongMode = "WRONG_MODE",
        FlagResolved = "FLAG_RESOLVED",
    }
}

jixiao_runtime::reasons! {
    /// Why a single response, result or vote of a push is refused; the
    /// push goes on with the others (listed in the proto's header too).
    pub enum Refusal {
        Conflict = "CONFLICT",
        UnknownUnit = "UNKNOWN_UNIT",
        UnknownCategory = "UNKNOWN_CATEGORY",
        UnknownQuestion = "UNKNOWN_QUESTION",
        UnknownAnswer = "UNKNOWN_ANSWER",
        OutOfWindow = "OUT_OF_WINDOW",
        Invalid = "INVALID",
    }
}

/// Written in PostgreSQL's dialect; SQLite's is derived (`Migrations`).
static SOURCE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The migrations of this service's database.
pub const MIGRATIONS: Migrations = Migrations { source: &SOURCE };

/// Opens (and migrates) the service's database; its writer works at bulk
/// priority, since most of what it writes is survey ingest.
pub async fn open(url: &str) -> Result<Db, Error> {
    Db::connect_bulk(url, &MIGRATIONS).await
}

/// The mountable tonic server; `plans` is a channel to the plans service,
/// `metrics` counts the survey responses pushed.
pub async fn server(
    db: Db,
    plans: ServiceChannel,
    shutdown: Shutdown,
    metrics: Metrics,
) -> Result<jixiao_runtime::routed::Routed<ReviewsServer>, Error> {
    let api = ReviewsApi::new(db, plans, shutdown, metrics).await?;
    Ok(ReviewsServer::new(api))
}

#[cfg(test)]
mod tests {
    use jixiao_runtime::Shared;

    use super::{Reason, Refusal};

    #[test]
    fn reasons_are_the_contract_s() {
        let proto = include_str!("../../../proto/jixiao/reviews/v1/reviews.proto");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        if let Err(problems) = jixiao_runtime::reason::check_contract(
            proto,
            &src,
            Reason::ALL,
            &[Shared::AlreadyExists, Shared::DependencyPrecondition],
        ) {
            panic!("{problems}");
        }
    }

    #[test]
    fn refusals_are_the_contract_s() {
        let proto = include_str!("../../../proto/jixiao/reviews/v1/reviews.proto");
        let listed = jixiao_runtime::reason::listed_in(proto, "Refusal reasons of single");
        let ours: Vec<&str> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(listed, ours);
    }
}
