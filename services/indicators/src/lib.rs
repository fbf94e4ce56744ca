//! The indicators service (DOMAIN.md §5): data-provider units report
//! indicator values with evidence; values are checked at entry against the
//! framework and approved plans of the plans service, every version is
//! kept, progress is tracked, and each unit's indicator score (the
//! 60-point component) is computed.
//!
//! The layout every service shares: `grpc` is the tonic adapter (one line
//! per RPC); the handlers live by resource (`values`, `assessments`,
//! `scores`, `progress`) on the service value of `api`; `store` holds every
//! SQL statement; `scoring` the five scoring methods and `rules` the entry
//! rules as plain functions.

mod api;
mod assessments;
mod flags;
mod grpc;
mod progress;
pub mod quality;
pub mod rules;
mod scores;
pub mod scoring;
mod store;
mod values;

use jixiao_runtime::{
    Db, Error, Migrations, client::ServiceChannel, host::Shutdown, metrics::Metrics,
};

pub use api::IndicatorsApi;

/// Error domain of this service.
pub const DOMAIN: &str = "jixiao.indicators";

jixiao_runtime::reasons! {
    /// The reasons only this service gives; the proto's header lists them
    /// with the shared ones it gives (checked by the test below).
    pub enum Reason {
        /// A data-quality flag's resolution is final.
        FlagResolved = "FLAG_RESOLVED",
        /// CORRECTED needs a version later than the flagged one.
        NotCorrected = "NOT_CORRECTED",
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

/// The mountable tonic server; `plans` is a channel to the plans service,
/// `metrics` counts the values stored.
pub fn server(
    db: Db,
    plans: ServiceChannel,
    shutdown: Shutdown,
    metrics: Metrics,
) -> jixiao_proto::indicators::indicators_service_server::IndicatorsServiceServer<IndicatorsApi> {
    jixiao_proto::indicators::indicators_service_server::IndicatorsServiceServer::new(
        IndicatorsApi::new(db, plans, shutdown, metrics),
    )
}

#[cfg(test)]
mod tests {
    use jixiao_runtime::Shared;

    use super::Reason;

    #[test]
    fn reasons_are_the_contract_s() {
        let proto = include_str!("../../../proto/jixiao/indicators/v1/indicators.proto");
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
