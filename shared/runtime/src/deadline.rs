//! The caller's deadline (`grpc-timeout`), for calls that wait for a
//! condition (the aggregator's standings with `min_service_revisions`).
//!
//! The host notes the deadline when the call arrives. tonic's server answers
//! an expired `grpc-timeout` itself, with CANCELLED; so the host answers a
//! call still at work DEADLINE_EXCEEDED a moment before, at
//! [`Deadline::host_cutoff`]; a handler that waits for a condition gives
//! up just before that, at [`Deadline::answer_by`], with its own reason.

use std::time::Duration;

use tokio::time::Instant;

/// When a call must be answered, from its `grpc-timeout` header; in the
/// request's extensions when the caller sent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// The caller's deadline, as seen when the call reached the host.
    pub expires: Instant,
    answer_by: Instant,
}

/// How long before the caller's deadline a waiting handler gives up, so
/// that its DEADLINE_EXCEEDED, not tonic's CANCELLED, reaches the caller:
/// tonic's timer started a little before the host saw the call (more on a
/// loaded machine: a 5 ms margin lost the race under a full test run), so
/// a tenth of the timeout between these bounds, and never more than half
/// of it.
pub const MARGIN: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(50));

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        let now = Instant::now();
        let margin = (timeout / 10).clamp(MARGIN.0, MARGIN.1).min(timeout / 2);
        Deadline {
            expires: now + timeout,
            answer_by: now + (timeout - margin),
        }
    }

    /// The deadline of a call arriving now with these headers.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Deadline> {
        let timeout = headers
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_timeout)?;
        Some(Deadline::after(timeout))
    }

    /// The deadline of a tonic request, if the caller set one.
    pub fn of<T>(req: &tonic::Request<T>) -> Option<Deadline> {
        req.extensions().get::<Deadline>().copied()
    }

    /// When a waiting handler answers DEADLINE_EXCEEDED.
    pub fn answer_by(self) -> Instant {
        self.answer_by
    }

    /// When the host answers a call still at work: after a waiting
    /// handler's own answer (which says what it waited for), before
    /// tonic's CANCELLED.
    pub fn host_cutoff(self) -> Instant {
        self.answer_by + (self.expires - self.answer_by) / 2
    }
}

/// A `grpc-timeout` value: at most 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_the_grpc_spec_writes_them() {
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("1500u"), Some(Duration::from_micros(1500)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "123456789m", "12x", "-1S", "1.5S", "S1"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_header_gives_a_deadline_and_the_answer_comes_just_before() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(Deadline::from_headers(&headers), None);
        headers.insert("grpc-timeout", http::HeaderValue::from_static("200m"));
        let before = Instant::now();
        let d = Deadline::from_headers(&headers).expect("deadline");
        assert!(d.expires >= before + Duration::from_millis(200));
        assert_eq!(d.answer_by(), d.expires - Duration::from_millis(20));
        // The host's own answer comes after the handler's, before tonic's.
        assert_eq!(d.host_cutoff(), d.expires - Duration::from_millis(10));
    }

    #[test]
    fn the_margin_is_a_tenth_within_bounds_and_at_most_half() {
        let margin = |ms| {
            let d = Deadline::after(Duration::from_millis(ms));
            d.expires - d.answer_by()
        };
        assert_eq!(margin(20), Duration::from_millis(10));
        assert_eq!(margin(3), Duration::from_micros(1500));
        assert_eq!(margin(300), Duration::from_millis(30));
        assert_eq!(margin(100), Duration::from_millis(20));
        assert_eq!(margin(60_000), Duration::from_millis(50));
    }
}
