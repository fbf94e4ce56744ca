//! Calling the suite as a person or a program does: a channel carrying a
//! bearer token (from `jixiao-suite`), and error messages that spell out
//! the details a status carries (which fields were bad, which
//! preconditions failed).

use tonic::Status;
use tonic_types::StatusExt;

pub use jixiao_suite::client::{Authed, Bearer, Calls, Tls, connect, connect_with};

/// Maps a failed call to "what: description" for a command's error.
pub fn failed(what: impl std::fmt::Display) -> impl FnOnce(Status) -> String {
    move |s| format!("{what}: {}", describe(&s))
}

/// `units/{u}` from `u` or `units/{u}` as people write it in files and flags.
pub fn unit_name(unit: &str) -> String {
    if unit.starts_with("units/") {
        unit.to_string()
    } else {
        format!("units/{unit}")
    }
}

/// A failed call in one readable paragraph: the code and message, then each
/// bad field and each failed precondition on its own line.
pub fn describe(status: &Status) -> String {
    let details = status.get_error_details();
    let fields = details
        .bad_request()
        .is_some_and(|b| !b.field_violations.is_empty());
    // A refusal by field lists its fields below; its message says the same.
    let mut out = if fields {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {}", status.code(), status.message())
    };
    if let Some(info) = details.error_info() {
        out.push_str(&format!(" ({})", info.reason));
    }
    if let Some(bad) = details.bad_request() {
        for v in &bad.field_violations {
            out.push_str(&format!("\n  {}: {}", v.field, v.description));
        }
    }
    if let Some(failure) = details.precondition_failure() {
        for v in &failure.violations {
            out.push_str(&format!(
                "\n  {} {}: {}",
                v.r#type, v.subject, v.description
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jixiao_runtime::error::Violations;

    #[test]
    fn a_refusal_by_field_lists_each_field_once() {
        let mut v = Violations::new();
        v.add("values[1].value", "is required");
        v.add("values[2].unit", "units/x is not a unit");
        let status = v
            .into_result()
            .unwrap_err()
            .into_status("jixiao.indicators");
        assert_eq!(
            describe(&status),
            "InvalidArgument (VALIDATION_FAILED)\n  values[1].value: is required\n  values[2].unit: units/x is not a unit"
        );
    }

    #[test]
    fn other_refusals_keep_their_message() {
        let status = jixiao_runtime::Error::not_found("cycles/2031").into_status("jixiao.plans");
        assert_eq!(
            describe(&status),
            "NotFound: cycles/2031 not found (NOT_FOUND)"
        );
    }
}
