//! The end-to-end tests of the suite through its public gRPC interface, as
//! one test binary (one link of the whole suite instead of one per area),
//! with a module per area. Every test starts its own suite on ephemeral
//! ports with fresh databases, so tests share nothing but the process; run
//! one area with a filter on its module:
//!
//! ```text
//! cargo test -p jixiao-tests --test e2e -- demo::
//! ```

mod aggregator;
mod audit;
mod authz;
mod client;
mod contracts;
mod demo;
mod deploy;
mod fuzz;
mod hardening;
mod host;
mod indicators;
mod inspections;
mod metrics;
mod phases;
mod plans;
mod quality;
mod reviews;
mod revisions;
mod survey_quality;
mod tls;
mod traces;
mod verifier;
