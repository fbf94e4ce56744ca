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
    /// UNAUTHENTICATED is always the token check's, whoever answers it (a
    /// survey stream whose token lapsed): its domain is
    /// [`AUTH_DOMAIN`](crate::auth::AUTH_DOMAIN). MALFORMED_MESSAGE is
    /// always the decoder's ([`HOST_DOMAIN`](crate::host::HOST_DOMAIN)),
    /// also when a stream's handler passes it on.
    pub fn into_status(self, domain: &str) -> Status {
        let domain = match self {
            Error::Unauthenticated(_) => crate::auth::AUTH_DOMAIN,
            Error::Malformed(_) => crate::host::HOST_DOMAIN,
            _ => domain,
        };
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
                metadata.insert("dependency".to_string(), clip(dependency, MAX_DETAIL));
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

/// A status travels in HTTP/2 headers or trailers, which clients cap:
/// Python grpcio's soft limit is 8 KiB, past which some answers arrive as
/// RESOURCE_EXHAUSTED instead of the status sent. What counts is
/// `grpc-message` after percent-encoding (up to three bytes for each byte
/// of non-ASCII text) plus `grpc-status-details-bin`, the base64 (4 bytes
/// for every 3) of the encoded `google.rpc.Status`, which carries the
/// message a second time. Errors that echo a huge input, or list thousands
/// of items, are cut to fit, saying so. With these bounds the worst case is
/// about 3 × 400 bytes of message plus 4/3 × (400 + 2000 + some 400 of
/// ErrorInfo, type URLs and the "and N more" entry) of details: under
/// 5 KiB (the unit tests measure the worst cases), well under 8 KiB.
const MAX_MESSAGE: usize = 400;
/// The longest field, subject or description carried in a detail.
const MAX_DETAIL: usize = 200;
/// The bytes of the violations or unmet items in a detail, framing included.
const DETAILS_BUDGET: usize = 2000;

/// How many of the items fit the details budget, each text clipped: its
/// bytes, at most [`MAX_DETAIL`], and 8 for the protobuf framing (an item
/// of `N` texts takes at most `3 + 3 × N` bytes of tags and lengths).
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

/// SQLite's primary result codes for a lock held elsewhere.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

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
        // PostgreSQL ended one of two writes that waited for each other
        // (deadlock_detected) or could not serialise it: nothing of it was
        // kept, and the same call again succeeds.
        if e.as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| matches!(&*c, "40P01" | "40001"))
        {
            return Error::aborted(
                Shared::ConcurrentWrite,
                "another call wrote the same rows at the same moment and this one was rolled back; retry the call",
            );
        }
        // SQLite: another process holds the file's write lock past the
        // busy timeout (a second server started on the same data
        // directory). Nothing of this call was written; a retry may pass.
        if e.as_database_error()
            .and_then(|d| d.try_downcast_ref::<sqlx::sqlite::SqliteError>())
            .and_then(sqlx::error::DatabaseError::code)
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|c| matches!(c & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
        {
            return Error::aborted(
                Shared::ConcurrentWrite,
                "another process holds the SQLite database's write lock (SQLite serves one server process per data directory); retry the call",
            );
        }
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

    /// A database error with only a SQLSTATE, as PostgreSQL reports one.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn writes_the_database_rolled_back_in_a_race_are_retried_not_internal() {
        for code in ["40P01", "40001"] {
            let e = Error::from(sqlx::Error::Database(Box::new(Sqlstate(code))));
            let status = e.into_status("jixiao");
            assert_eq!(status.code(), tonic::Code::Aborted, "{code}");
            assert!(status.message().contains("retry"), "{code}");
        }
        let other = Error::from(sqlx::Error::Database(Box::new(Sqlstate("22012"))));
        assert_eq!(other.into_status("jixiao").code(), tonic::Code::Internal);
    }

    #[tokio::test]
    async fn a_sqlite_file_locked_by_another_process_is_retried_not_internal() {
        use sqlx::{ConnectOptions, Connection, Executor, sqlite::SqliteConnectOptions};
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("db.sqlite"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut holder = options.connect().await.unwrap();
        holder.execute("CREATE TABLE t (x INTEGER)").await.unwrap();
        let mut held = holder.begin().await.unwrap();
        held.execute("INSERT INTO t VALUES (1)").await.unwrap();
        // As a second server's writer (through the Any driver) finds it.
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let mut other = sqlx::AnyConnection::connect(&url).await.unwrap();
        other.execute("PRAGMA busy_timeout = 0").await.unwrap();
        let e = other.execute("INSERT INTO t VALUES (2)").await.unwrap_err();
        let status = Error::from(e).into_status("jixiao");
        assert_eq!(status.code(), tonic::Code::Aborted, "{status:?}");
        assert!(status.message().contains("retry"), "{status:?}");
    }

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

    /// The bytes a status takes in the headers: `grpc-message`
    /// percent-encoded as tonic does it (controls, non-ASCII bytes and
    /// ` "#%<>`?{}`), and `grpc-status-details-bin`, the unpadded base64 of
    /// the encoded `google.rpc.Status`.
    fn header_bytes(status: &Status) -> usize {
        const TONIC_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
            .add(b' ')
            .add(b'"')
            .add(b'#')
            .add(b'%')
            .add(b'<')
            .add(b'>')
            .add(b'`')
            .add(b'?')
            .add(b'{')
            .add(b'}');
        let message =
            percent_encoding::percent_encode(status.message().as_bytes(), TONIC_SET).to_string();
        let details = status.details().len().div_ceil(3) * 4;
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        assert_eq!(headers["grpc-message"].len(), message.len());
        let sent_details = headers
            .get("grpc-status-details-bin")
            .map_or(0, |v| v.len());
        assert!(sent_details <= details && details <= sent_details + 3);
        message.len() + details
    }

    /// Every header the status adds, as HTTP/2 clients count them against
    /// their limit (name, value and 32 bytes each).
    fn header_list_size(status: &Status) -> usize {
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum()
    }

    /// Well under the 8 KiB that Python grpcio accepts by default.
    const HEADER_BOUND: usize = 6 * 1024;

    #[test]
    fn a_status_fits_the_trailers_whatever_it_echoes() {
        // Texts that take the most room once encoded: CJK (three bytes,
        // each percent-encoded to three) and ASCII that tonic escapes.
        let long = |n: usize| "长".repeat(n);
        let field_200 = format!("{}ab", long(66));
        assert_eq!(field_200.len(), 200);
        let mut worst: Vec<(&str, Error)> = Vec::new();

        let mut v = Violations::new();
        for i in 0..10_000 {
            v.add(format!("{field_200}[{i}]"), long(67));
        }
        worst.push((
            "10,000 violations of 200-byte CJK",
            v.into_result().unwrap_err(),
        ));
        let mut v = Violations::new();
        for i in 0..10_000 {
            v.add(
                format!("values[{i}].unit"),
                format!("{} is unknown", long(5000)),
            );
        }
        worst.push((
            "10,000 violations of huge CJK",
            v.into_result().unwrap_err(),
        ));
        let mut v = Violations::new();
        for i in 0..10_000 {
            v.add(format!("min_service_revisions[{i}]"), "unknown service");
        }
        worst.push(("10,000 short violations", v.into_result().unwrap_err()));

        let items = (0..10_000)
            .map(|i| Unmet {
                kind: format!("MISSING_COMPONENT_{}", "X".repeat(300)),
                subject: format!("units/{}-{i}", long(100)),
                description: long(100),
            })
            .collect();
        worst.push((
            "10,000 unmet items",
            Error::unmet(Shared::NotFound, "%".repeat(5000), items),
        ));
        let items = (0..10_000)
            .map(|i| Unmet {
                kind: "MISSING_COMPONENT".into(),
                subject: format!("units/u{i}"),
                description: "no score".into(),
            })
            .collect();
        worst.push((
            "10,000 short unmet items",
            Error::unmet(Shared::NotFound, long(5000), items),
        ));
        let huge = format!("cycles/{}?{{}}", long(100_000));
        worst.push(("a huge NotFound", Error::not_found(huge.clone())));
        worst.push((
            "a huge AlreadyExists",
            Error::AlreadyExists {
                resource: huge.clone(),
            },
        ));
        worst.push(("a huge Malformed", Error::Malformed(huge.clone())));
        worst.push((
            "a huge precondition",
            Error::precondition(Shared::NotFound, huge.clone()),
        ));
        worst.push(("a huge refusal", Error::denied(huge.clone())));
        worst.push((
            "a huge Unavailable",
            Error::Unavailable {
                dependency: huge.clone(),
                message: huge,
            },
        ));

        for (what, error) in worst {
            let status = error.into_status("jixiao.aggregator");
            let size = header_bytes(&status);
            assert!(
                size <= HEADER_BOUND,
                "{what}: {size} bytes of grpc-message and details"
            );
            let all = header_list_size(&status);
            assert!(all <= HEADER_BOUND, "{what}: {all} bytes of headers");
            // What is cut says so.
            assert!(
                status.message().ends_with('…'),
                "{what}: {}",
                status.message()
            );
        }

        let mut v = Violations::new();
        for i in 0..10_000 {
            v.add(
                format!("values[{i}].unit"),
                format!("{} is unknown", long(5000)),
            );
        }
        let status = v
            .into_result()
            .unwrap_err()
            .into_status("jixiao.indicators");
        let violations = status
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .clone();
        assert_eq!(violations[0].field, "values[0].unit");
        assert!(violations[0].description.ends_with('…'));
        let last = violations.last().unwrap();
        assert_eq!(last.field, "…");
        assert_eq!(
            last.description,
            format!("and {} more", 10_000 - (violations.len() - 1))
        );

        let items = (0..10_000)
            .map(|i| Unmet {
                kind: "MISSING_COMPONENT".into(),
                subject: format!("units/u{i}"),
                description: "no score".into(),
            })
            .collect();
        let status = Error::unmet(Shared::NotFound, "unmet", items).into_status("jixiao.a");
        let failures = status
            .get_error_details()
            .precondition_failure()
            .unwrap()
            .violations
            .clone();
        assert!(failures.len() > 10);
        let last = failures.last().unwrap();
        assert_eq!(last.r#type, "MORE");
        assert_eq!(
            last.description,
            format!(
                "and {} more of the same kinds",
                10_000 - (failures.len() - 1)
            )
        );
    }

    #[test]
    fn the_token_check_and_the_decoder_answer_in_their_own_domains() {
        let domain = |e: Error| {
            let status = e.into_status("jixiao.reviews");
            status
                .get_error_details()
                .error_info()
                .unwrap()
                .domain
                .clone()
        };
        assert_eq!(domain(Error::Malformed("truncated".into())), "jixiao.host");
        assert_eq!(
            domain(Error::Unauthenticated("expired".into())),
            "jixiao.auth"
        );
        assert_eq!(
            domain(Error::invalid("unit", "is required")),
            "jixiao.reviews"
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
