//! What every Jixiao service stands on: errors mapped to gRPC statuses,
//! authentication, the gRPC host, storage with audit and idempotency,
//! decimals, times, pagination and telemetry.

pub mod audit;
pub mod auth;
pub mod authz;
pub mod bulk;
pub mod changes;
pub mod client;
pub mod db;
pub mod deadline;
pub mod decimal;
pub mod error;
pub mod evidence;
pub mod host;
pub mod idempotency;
pub mod lifecycle;
pub mod metrics;
pub mod names;
pub mod paging;
pub mod phases;
pub mod plans_lookup;
pub mod quality;
pub mod reason;
pub mod revisions;
pub mod routed;
pub mod site;
pub mod telemetry;
pub mod text;
pub mod time;
pub mod tls;
pub mod write;

pub use auth::{Principal, Role, TokenKey, principal};
pub use db::{Db, Dialect, Migrations};
pub use error::{Error, Violations};
pub use reason::{ErrorReason, Shared};
