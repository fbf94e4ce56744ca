//! One error type for every service, mapped to gRPC statuses the AIP-193 way:
//! a canonical code, a `google.rpc.ErrorInfo` with an UPPER_SNAKE reason and
//! the service's domain, and a `google.rpc.BadRequest` naming every bad field.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::reason::{Shared, Why};

/// A bad field: its path in the request (`plan.targets[2].value`) and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field in the request, e.g. `plan.targets[2].value`.
    pub field: String,
    /// What is wrong, in words a caller can act on.
    pub description: String,
}

/// Collects every bad field of a request, so that one answer names them all.
#[derive(Debug, Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Records a violation unless `ok` holds.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, description: impl Into<String>) {
        if !ok {
            self.add(field, description);
        }
    }

    pub fn extend(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Violation] {
        &self.0
    }

    /// `Ok(())` when nothing was recorded, else the INVALID_ARGUMENT error.
    pub fn into_result(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self.0))
        }
    }
}

/// One unmet condition of a refused call, as `google.rpc.PreconditionFailure`
/// carries it: `kind` (e.g. `MISSING_COMPONENT`), the `subject` it concerns
/// (e.g. `units/huli`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    pub kind: String,
    pub subject: String,
    pub description: String,
}

/// Every way a call can fail, independent of transport.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {}", summarize(.0))]
    Invalid(Vec<Violation>),
    /// Bytes that are not a valid protobuf encoding of the request type
    /// (seen by a handler reading a client stream).
    #[error("the message could not be decoded: {0}")]
    Malformed(String),
    #[error("{resource} not found")]
    NotFound { resource: String },
    #[error("{resource} already exists")]
    AlreadyExists { resource: String },
    /// The system is not in a state that allows the call; `reason` is the
    /// machine-readable UPPER_SNAKE reason (e.g. `PLAN_DEADLINE_PASSED`).
    #[error("{message}")]
    FailedPrecondition { reason: Why, message: String },
    /// Like `FailedPrecondition`, listing every unmet condition in a
    /// PreconditionFailure detail.
    #[error("{message}")]
    Unmet {
        reason: Why,
        message: String,
        items: Vec<Unmet>,
    },
    /// A concurrency conflict, e.g. a stale etag.
    #[error("{message}")]
    Aborted { reason: Why, message: String },
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller has too many calls in flight.
    #[error("{0}")]
    Busy(String),
    /// What the call waits for did not happen by the caller's deadline.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A dependency (database or another service) cannot be reached.
    #[error("{dependency} is unavailable: {message}")]
    Unavailable { dependency: String, message: String },
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn summarize(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub fn not_found(resource: impl Into<String>) -> Self {
        Error::NotFound {
            resource: resource.into(),
        }
    }

    pub fn precondition(reason: impl Into<Why>, message: impl Into<String>) -> Self {
        Error::FailedPrecondition {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A concurrency conflict (ABORTED), e.g. a stale etag.
    pub fn aborted(reason: impl Into<Why>, message: impl Into<String>) -> Self {
        Error::Aborted {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A refusal listing every unmet condition.
    pub fn unmet(reason: impl Into<Why>, message: impl Into<String>, items: Vec<Unmet>) -> Self {
        Error::Unmet {
            reason: reason.into(),
            message: message.into(),
            items,
        }
    }

    pub fn denied(message: impl Into<String>) -> Self {
        Error::PermissionDenied(message.into())
    }

    /// A single bad field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::Invalid(vec![Violation {
            field: field.into(),
            description: description.into(),
        }])
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Internal(Box::new(e))
    }

    /// The machine-readable reason carried in ErrorInfo.
    pub fn reason(&self) -> &'static str {
        let shared = match self {
            Error::Invalid(_) => Shared::ValidationFailed,
            Error::Malformed(_) => Shared::MalformedMessage,
            Error::NotFound { .. } => Shared::NotFound,
            Error::AlreadyExists { .. } => Shared::AlreadyExists,
            Error::FailedPrecondition { reason, .. }
            | Error::Unmet { reason, .. }
            | Error::Aborted { reason, .. } => return reason.as_str(),
            Error::PermissionDenied(_) => Shared::PermissionDenied,
            Error::Unauthenticated(_) => Shared::Unauthenticated,
            Error::Busy(_) => Shared::TooManyCalls,
            Error::DeadlineExceeded(_) => Shared::DeadlineExceeded,
            Error::Unavailable { .. } => Shared::DependencyUnavailable,
            Error::Internal(_) => Shared::Internal,
        };
        shared.as_str()
    }

    pub fn code(&self) -> Code {
        match self {
            Error::Invalid(_) | Error::Malformed(_) => Code::InvalidArgument,
            Error::NotFound { .. } => Code::NotFound,
            Error::AlreadyExists { .. } => Code::AlreadyExists,
            Error::FailedPrecondition { .. } | Error::Unmet { .. } => Code::FailedPrecondition,
            Error::Aborted { .. } => Code::Aborted,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::Busy(_) => Code::ResourceExhausted,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Unavailable { .. } => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
        }
    }

    /// Converts to a gRPC status for the service whose domain is
    /// `jixiao.<service>`. Internal errors are logged with their chain here
    /// and reach the caller without any detail (no SQL leaks out).
    pub fn into_status(self, domain: &str) -> Status {
        let mut details = ErrorDetails::new();
        let mut metadata = HashMap::new();
        match &self {
            Error::Invalid(violations) => {
                let fit = fitting(
                    violations
                        .iter()
                        .map(|v| [v.field.as_str(), &v.description]),
                );
                for v in &violations[..fit] {
                    details.add_bad_request_violation(
                        clip(&v.field, MAX_DETAIL),
                        clip(&v.description, MAX_DETAIL),
                    );
                }
                if fit < violations.len() {
                    details.add_bad_request_violation(
                        "…",
                        format!("and {} more", violations.len() - fit),
                    );
                }
            }
            Error::Malformed(why) => {
                details.add_bad_request_violation(
                    "(message)",
                    clip(
                        &format!("is not a valid protobuf encoding of the request type: {why}"),
                        MAX_DETAIL,
                    ),
                );
            }
            Error::NotFound { resource } | Error::AlreadyExists { resource } => {
                metadata.insert("resource".to_string(), clip(resource, MAX_DETAIL));
            }
            Error::Unmet { items, .. } => {
                let fit = fitting(
                    items
                        .iter()
                        .map(|u| [u.kind.as_str(), &u.subject, &u.description]),
                );
                for u in &items[..fit] {
                    details.add_precondition_failure_violation(
                        clip(&u.kind, MAX_DETAIL),
                        clip(&u.subject, MAX_DETAIL),
                        clip(&u.description, MAX_DETAIL),
                    );
                }
                if fit < items.len() {
                    details.add_precondition_failure_violation(
                        "MORE",
                        "",
                        format!("and {} more of the same kinds", items.len() - fit),
                    );
                }
            }
            Error::Unavailable { dependency, .. } => {
                metadata.insert("dependency".to_string(), dependency.clone());
            }
            Error::Internal(source) => {
                tracing::error!(error = %chain(source.as_ref()), "internal error");
            }
            _ => {}
        }
        details.set_error_info(self.reason(), domain, metadata);
        Status::with_error_details(self.code(), clip(&self.to_string(), MAX_MESSAGE), details)
    }
}

/// A status travels in HTTP/2 trailers, which clients cap (16 KiB by
/// default) after percent-encoding the message and base64-encoding the
/// details: errors that echo a huge input, or list thousands of items,
/// are cut to fit, saying so.
const MAX_MESSAGE: usize = 1000;
const MAX_DETAIL: usize = 200;
const DETAILS_BUDGET: usize = 6000;

/// How many of the items fit the details budget, each text clipped.
fn fitting<'a, const N: usize>(items: impl Iterator<Item = [&'a str; N]>) -> usize {
    let mut used = 0;
    let mut fit = 0;
    for texts in items {
        used += texts
            .iter()
            .map(|t| t.len().min(MAX_DETAIL) + 8)
            .sum::<usize>();
        if used > DETAILS_BUDGET {
            break;
        }
        fit += 1;
    }
    fit
}

/// `s` cut at a character boundary to at most `max` bytes, marked with "…".
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What a tonic handler answers.
pub type Reply<T> = Result<tonic::Response<T>, Status>;

/// A call's result as a tonic reply, errors in the service's domain
/// (`jixiao.<service>`).
pub fn reply<T>(domain: &str, result: Result<T, Error>) -> Reply<T> {
    result
        .map(tonic::Response::new)
        .map_err(|e| e.into_status(domain))
}

/// The body of a tonic handler whose authorisation depends on the request:
/// the authenticated principal and the request go to `$self.$method`, its
/// error is mapped in `$domain`.
#[macro_export]
macro_rules! checked {
    ($domain:expr, $self:ident, $req:ident, $method:ident) => {{
        let p = $crate::auth::principal(&$req)?;
        $crate::error::reply($domain, $self.$method(p, $req.into_inner()).await)
    }};
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        let lost = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::Io(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            // A server shutting down or restarting ends its sessions with
            // these: the next call gets a new connection, so the caller may
            // retry rather than report a bug.
            sqlx::Error::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
            _ => false,
        };
        if e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
        {
            // Two writers raced for the same key: the check before the
            // insert passed for both. A retry finds the row and answers as
            // the service does for an existing resource or a replayed request.
            return Error::aborted(
                Shared::ConcurrentWrite,
                "another call wrote the same resource at the same moment; retry the call",
            );
        }
        if lost {
            Error::Unavailable {
                dependency: "database".into(),
                message: e.to_string(),
            }
        } else {
            Error::internal(e)
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_every_field_in_bad_request() {
        let mut v = Violations::new();
        v.add("plan.targets[0].value", "is required");
        v.add("plan.unit", "unknown unit");
        let status = v.into_result().unwrap_err().into_status("jixiao.plans");
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|f| f.field.clone())
            .collect();
        assert_eq!(fields, ["plan.targets[0].value", "plan.unit"]);
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "VALIDATION_FAILED");
        assert_eq!(info.domain, "jixiao.plans");
    }

    #[test]
    fn a_status_fits_the_trailers_whatever_it_echoes() {
        let mut v = Violations::new();
        for i in 0..5000 {
            v.add(
                format!("values[{i}].unit"),
                format!("{} is unknown", "长".repeat(5000)),
            );
        }
        let status = v
            .into_result()
            .unwrap_err()
            .into_status("jixiao.indicators");
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        let size: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        assert!(size < 16 * 1024, "{size} bytes of trailers");
        let violations = status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .clone();
        assert_eq!(violations[0].field, "values[0].unit");
        assert!(violations[0].description.ends_with('…'));
        let last = violations.last().unwrap();
        assert_eq!(
            last.description,
            format!("and {} more", 5000 - (violations.len() - 1))
        );
    }

    #[test]
    fn internal_errors_do_not_leak_their_source() {
        let e = Error::internal(std::io::Error::other("SELECT secret FROM t"));
        let status = e.into_status("jixiao.plans");
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("SELECT"));
    }
}
