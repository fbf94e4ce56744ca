//! The inspections service (DOMAIN.md §7): inspectors record inspections and
//! spot checks with findings that carry point deductions; the office
//! confirms findings and decides contests; units report self-inspection
//! items that earn credits once verified, and rectifications; documents are
//! issued to units. Each unit's inspection adjustment is
//! `clamp(credits − deductions, −cap, 0)` (DOMAIN.md §3 rule 2).
//!
//! The layout every service shares: `grpc` is the tonic adapter (one line
//! per RPC); the handlers live by resource (`inspections`, `findings`,
//! `items`, `documents`, `adjustments`) on the service value of `api`;
//! `store` holds every SQL statement; `rules` the DOMAIN rules (the
//! adjustment, the lifecycles) as plain functions.

mod adjustments;
mod api;
mod documents;
mod findings;
mod grpc;
mod inspections;
mod items;
pub mod rules;
mod store;

use jixiao_runtime::{Db, Error, Migrations, client::ServiceChannel, host::Shutdown};

pub use api::InspectionsApi;

/// Error domain of this service.
pub const DOMAIN: &str = "jixiao.inspections";

jixiao_runtime::reasons! {
    /// The reasons only this service gives; the proto's header lists them
    /// with the shared ones it gives (checked by the test below).
    pub enum Reason {
        SchemeIncomplete = "SCHEME_INCOMPLETE",
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

/// The mountable tonic server; `plans` is a channel to the plans service.
pub fn server(
    db: Db,
    plans: ServiceChannel,
    shutdown: Shutdown,
) -> jixiao_proto::inspections::inspections_service_server::InspectionsServiceServer<InspectionsApi>
{
    jixiao_proto::inspections::inspections_service_server::InspectionsServiceServer::new(
        InspectionsApi::new(db, plans, shutdown),
    )
}

#[cfg(test)]
mod tests {
    use jixiao_runtime::Shared;

    use super::Reason;

    #[test]
    fn reasons_are_the_contract_s() {
        let proto = include_str!("../../../proto/jixiao/inspections/v1/inspections.proto");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        if let Err(problems) = jixiao_runtime::reason::check_contract(
            proto,
            &src,
            Reason::ALL,
            &[
                Shared::AlreadyExists,
                Shared::InvalidState,
                Shared::DependencyPrecondition,
            ],
        ) {
            panic!("{problems}");
        }
    }
}
