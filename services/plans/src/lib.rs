//! The plans service (DOMAIN.md §2, §4): cycles with phases and deadlines,
//! peer groups, units, each group's scoring scheme and indicator framework,
//! performance plans with their review workflow and versions, lock
//! exceptions, timeliness and notices.
//!
//! The layout every service shares: `grpc` is the tonic adapter (one line
//! per RPC); the handlers live by resource (`cycles`, `setup`, `plans`,
//! `versions`, `windows`) on the service value of `api`; `store` holds
//! the tables' rows and loaders; `rules` the domain rules as plain
//! functions.

mod api;
mod cycles;
mod grpc;
mod plans;
pub mod rules;
mod setup;
mod store;
mod versions;
mod windows;

use jixiao_runtime::{Db, Error, Migrations};

pub use api::PlansApi;

/// Error domain of this service.
pub const DOMAIN: &str = "jixiao.plans";

jixiao_runtime::reasons! {
    /// The reasons only this service gives; the proto's header lists them
    /// with the shared ones it gives (checked by the test below).
    pub enum Reason {
        /// ABORTED: the resource changed since the caller read it.
        EtagMismatch = "ETAG_MISMATCH",
        FrameworkIncomplete = "FRAMEWORK_INCOMPLETE",
        PhaseOrder = "PHASE_ORDER",
        PlansApproved = "PLANS_APPROVED",
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

/// The mountable tonic server for this service; change streams end on
/// `shutdown`.
pub fn server(
    db: Db,
    shutdown: jixiao_runtime::host::Shutdown,
) -> jixiao_proto::plans::plans_service_server::PlansServiceServer<PlansApi> {
    jixiao_proto::plans::plans_service_server::PlansServiceServer::new(PlansApi::new(db, shutdown))
}

#[cfg(test)]
mod tests {
    use jixiao_runtime::Shared;

    use super::Reason;

    #[test]
    fn reasons_are_the_contract_s() {
        let proto = include_str!("../../../proto/jixiao/plans/v1/plans.proto");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        if let Err(problems) = jixiao_runtime::reason::check_contract(
            proto,
            &src,
            Reason::ALL,
            &[Shared::AlreadyExists, Shared::InvalidState],
        ) {
            panic!("{problems}");
        }
    }
}
