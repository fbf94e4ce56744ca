//! Shared code of the end-to-end tests and the load generator.
//!
//! - [`fixtures`]: a small evaluation year built through the public RPCs,
//!   the split suite, helpers to read error details and to call any RPC by
//!   path; what the end-to-end tests (`tests/e2e/`) use.
//! - [`measure`]: the `/proc` readers for memory and CPU and latency
//!   percentiles; what the load generator (`src/bin/loadgen/`) and the
//!   soak test use.
//!
//! Everything is re-exported at the crate root, so `jixiao_tests::dec`,
//! `jixiao_tests::percentile` and the like keep working.

pub mod fixtures;
pub mod measure;

pub use fixtures::*;
pub use measure::*;
