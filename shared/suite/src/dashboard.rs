//! The dashboard (`web/`): its built files, `web/dist`, are built into the
//! binary by `build.rs` and served at `/` on the suite's port.

use jixiao_runtime::site::Site;

/// The built dashboard; empty when `web/dist` was missing at build time.
pub const SITE: Site = Site::new(include!(concat!(env!("OUT_DIR"), "/dashboard.rs")));
