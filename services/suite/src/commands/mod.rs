//! The `jixiao` client commands for the daily work: standings and feedback
//! tables, indicator values from a CSV file, a plan from a JSON file, and
//! the audit trail of a resource. Each goes through the public RPCs with
//! the caller's token, so the server decides what the caller may do.
//!
//! One module per area: [`standings`] and [`feedback`] read the
//! aggregator's tables, [`report_values`] writes to indicators,
//! [`import_responses`] to reviews, [`submit_plan`] to plans, and
//! [`audit`] and [`verify_audit`] read every service's trail.

mod audit;
mod plans;
mod responses;
mod tables;
mod values;

pub use audit::{audit, verify_audit};
pub use plans::submit_plan;
pub use responses::import_responses;
pub use tables::{feedback, standings};
pub use values::report_values;

use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    client::{Authed, Tls, connect_with},
    table::Format,
};

/// Where to call and as whom.
pub struct Caller {
    pub addr: String,
    pub token: String,
    /// PEM file of the authority trusted for an `https://` address.
    pub tls_ca: Option<std::path::PathBuf>,
}

impl Caller {
    async fn channel(&self) -> Result<Authed, String> {
        let tls = Tls::from_files(None, None, self.tls_ca.as_deref())?;
        connect_with(&self.addr, &self.token, &tls).await
    }
}

/// A status line: above an aligned table, or on stderr when the output
/// is for a program.
fn note(out: &mut String, format: Format, line: &str) {
    if format == Format::Table {
        out.push_str(line);
        out.push('\n');
    } else {
        eprintln!("{line}");
    }
}

fn group_name(cycle: &str, group: &str) -> String {
    format!("cycles/{cycle}/groups/{group}")
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref().map_or("-".into(), |t| t.to_string())
}

fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!("{what} {{bar:40}} {{pos}}/{{len}}"))
            .expect("a valid template"),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::{
        plans::plan_from_file,
        values::{period, read_values},
    };

    proptest::proptest! {
        #[test]
        fn any_period_or_values_file_parses_or_fails_cleanly(
            cell in "[0-9QM-]{0,8}|\\PC{0,8}",
            csv in "(unit,indicator,period,value(,comment)?\n)?([a-z0-9,.\"QM -]{0,30}\n){0,8}",
        ) {
            let _ = period(&cell);
            let _ = read_values(&csv);
            let _ = plan_from_file(&csv);
        }
    }
}
