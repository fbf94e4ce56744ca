//! Error reasons: the UPPER_SNAKE word in a refusal's `google.rpc.ErrorInfo`
//! that a caller's code branches on.
//!
//! A reason is a typed value, never a string typed at the call site: the
//! reasons the runtime gives are [`Shared`], and each service declares its
//! own with [`reasons!`](crate::reasons). [`Why`], which every error variant
//! carrying a reason holds, can only be made from such a value, so the set
//! a service can produce is known from its types, and a test beside each
//! service compares it with the list at the top of its proto
//! ([`listed_in`]).

/// A reason enum made by [`reasons!`](crate::reasons).
pub trait ErrorReason: Copy {
    /// The UPPER_SNAKE text sent in `ErrorInfo.reason`.
    fn as_str(self) -> &'static str;
}

/// The reason an error carries; only made from an [`ErrorReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Why(&'static str);

impl Why {
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl<R: ErrorReason> From<R> for Why {
    fn from(r: R) -> Self {
        Why(r.as_str())
    }
}

/// Declares a service's reasons: `Variant = "TEXT"` per reason, giving the
/// enum, its `ALL` list and [`ErrorReason`].
#[macro_export]
macro_rules! reasons {
    ($(#[$m:meta])* $vis:vis enum $name:ident {
        $($(#[$vm:meta])* $variant:ident = $text:literal,)*
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vm])* $variant,)* }

        impl $name {
            /// Every reason of this enum.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The UPPER_SNAKE text a caller sees.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }

        impl $crate::reason::ErrorReason for $name {
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }
    };
}

reasons! {
    /// The reasons the runtime gives, for every service.
    pub enum Shared {
        /// INVALID_ARGUMENT: a BadRequest names every bad field.
        ValidationFailed = "VALIDATION_FAILED",
        /// INVALID_ARGUMENT: the bytes are not the request type.
        MalformedMessage = "MALFORMED_MESSAGE",
        NotFound = "NOT_FOUND",
        AlreadyExists = "ALREADY_EXISTS",
        PermissionDenied = "PERMISSION_DENIED",
        Unauthenticated = "UNAUTHENTICATED",
        /// RESOURCE_EXHAUSTED: the caller has too many calls in flight.
        TooManyCalls = "TOO_MANY_CALLS",
        /// UNAVAILABLE: the database or a service called is unreachable.
        DependencyUnavailable = "DEPENDENCY_UNAVAILABLE",
        /// FAILED_PRECONDITION: a service called refused a look-up.
        DependencyPrecondition = "DEPENDENCY_PRECONDITION",
        Internal = "INTERNAL",
        /// FAILED_PRECONDITION: the request id was used for another request.
        RequestIdReused = "REQUEST_ID_REUSED",
        /// ABORTED: another call wrote the same key at the same moment.
        ConcurrentWrite = "CONCURRENT_WRITE",
        /// DEADLINE_EXCEEDED: what the call waits for did not happen by the
        /// caller's deadline.
        DeadlineExceeded = "DEADLINE_EXCEEDED",
        /// FAILED_PRECONDITION: a state machine does not allow the move.
        InvalidState = "INVALID_STATE",
        /// FAILED_PRECONDITION: the cycle's phase does not take the write.
        WrongPhase = "WRONG_PHASE",
        CycleArchived = "CYCLE_ARCHIVED",
        PlanDeadlinePassed = "PLAN_DEADLINE_PASSED",
        DataDeadlinePassed = "DATA_DEADLINE_PASSED",
        ReviewClosed = "REVIEW_CLOSED",
        RectificationDeadlinePassed = "RECTIFICATION_DEADLINE_PASSED",
    }
}

impl Shared {
    /// What any call to any service may be refused with: listed once, in
    /// `proto/jixiao/type/v1/types.proto`.
    pub const EVERY_SERVICE: &'static [Shared] = &[
        Shared::ValidationFailed,
        Shared::MalformedMessage,
        Shared::NotFound,
        Shared::PermissionDenied,
        Shared::Unauthenticated,
        Shared::TooManyCalls,
        Shared::DependencyUnavailable,
        Shared::Internal,
        Shared::RequestIdReused,
        Shared::ConcurrentWrite,
    ];

    /// The shared reason spelled `text`, if there is one.
    pub fn parse(text: &str) -> Option<Shared> {
        Shared::ALL.iter().copied().find(|r| r.as_str() == text)
    }
}

/// The reasons a proto comment block lists: from the first line `// - REASON …`
/// after the line containing `heading`, up to the first line that is not
/// such an item or its indented continuation.
pub fn listed_in(proto: &str, heading: &str) -> Vec<String> {
    let lines = proto
        .lines()
        .skip_while(|l| !l.contains(heading))
        .skip_while(|l| !l.starts_with("// - "));
    let mut out = Vec::new();
    for line in lines {
        if let Some(item) = line.strip_prefix("// - ") {
            let word: String = item
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            out.push(word);
        } else if !line.starts_with("//   ") {
            break;
        }
    }
    out
}

/// Checks a service's reasons against the list at the top of its proto:
/// what it can produce — its own reasons `own`, the shared reasons `also`
/// that it gives beyond every service's, and those of the phase gates of
/// its RPCs — must be exactly what the proto lists. Its sources under
/// `src` must use every own reason and no shared reason it does not list.
/// The error names each difference.
pub fn check_contract<R: ErrorReason + std::fmt::Debug>(
    proto: &str,
    src: &std::path::Path,
    own: &[R],
    also: &[Shared],
) -> Result<(), String> {
    use std::collections::BTreeSet;
    let package = proto
        .lines()
        .find_map(|l| l.strip_prefix("package "))
        .map(|p| p.trim_end_matches(';').to_string())
        .ok_or("the proto has no package line")?;
    let service = proto
        .lines()
        .find_map(|l| l.strip_prefix("service "))
        .and_then(|l| l.split_whitespace().next())
        .ok_or("the proto has no service")?;
    let mut produced: BTreeSet<&str> = own.iter().map(|r| r.as_str()).collect();
    produced.extend(also.iter().map(|r| r.as_str()));
    for line in proto.lines() {
        let Some(rest) = line.trim_start().strip_prefix("rpc ") else {
            continue;
        };
        let method = rest.split('(').next().unwrap_or_default().trim();
        let path = format!("/{package}.{service}/{method}");
        let gate = crate::phases::gate(&path).ok_or(format!("{path} has no phase row"))?;
        produced.extend(gate.reasons().iter().map(|r| r.as_str()));
    }
    let listed: BTreeSet<String> = listed_in(proto, "Error reasons (").into_iter().collect();
    let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    for r in produced.difference(&listed) {
        problems.push(format!("{r} can be produced but is not listed"));
    }
    for r in listed.difference(&produced) {
        problems.push(format!("{r} is listed but not produced"));
    }
    let code = sources(src).map_err(|e| format!("reading {}: {e}", src.display()))?;
    for r in own {
        if !code.contains(&format!("Reason::{r:?}")) {
            problems.push(format!("{} is declared but never used", r.as_str()));
        }
    }
    // Runtime helpers that refuse with a shared reason of their own.
    let indirect = [
        ("Error::AlreadyExists", Shared::AlreadyExists),
        (".require_move(", Shared::InvalidState),
        (".require_state(", Shared::InvalidState),
        ("dependency_error", Shared::DependencyPrecondition),
        ("PlansLookup", Shared::DependencyPrecondition),
    ];
    for r in Shared::ALL {
        let used = code.contains(&format!("Shared::{r:?}"))
            || indirect.iter().any(|(p, s)| s == r && code.contains(p));
        if used && !Shared::EVERY_SERVICE.contains(r) && !produced.contains(r.as_str()) {
            problems.push(format!("{} is used but not declared", r.as_str()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The text of every `.rs` file under `dir`.
fn sources(dir: &std::path::Path) -> std::io::Result<String> {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.push_str(&sources(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_reasons_are_read_from_the_item_lines_only() {
        let proto = "// intro\n// Error reasons (x), a heading\n// on two lines:\n// - ONE (ABORTED): a\n//   continued\n// - TWO: b\n//\n// - THREE: not in the block\n";
        assert_eq!(listed_in(proto, "Error reasons"), ["ONE", "TWO"]);
        assert!(listed_in(proto, "Absent heading").is_empty());
    }

    #[test]
    fn shared_reasons_round_trip() {
        for r in Shared::ALL {
            assert_eq!(Shared::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Shared::parse("DATA_WINDOW_CLOSED"), None);
    }

    /// The reasons every service gives are listed once, in types.proto.
    #[test]
    fn every_service_reasons_are_the_types_contract() {
        let proto = include_str!("../../../proto/jixiao/type/v1/types.proto");
        let listed = listed_in(proto, "Error reasons every service");
        let ours: Vec<&str> = Shared::EVERY_SERVICE.iter().map(|r| r.as_str()).collect();
        assert_eq!(listed, ours);
    }
}
