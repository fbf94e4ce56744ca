//! Every SQL statement of the inspections service, as named functions over
//! rows that map their tables one to one. Deductions and credits are
//! canonical decimal text; times are unix milliseconds.

mod documents;
mod findings;
mod inspections;
mod items;

pub use self::{documents::*, findings::*, inspections::*, items::*};
