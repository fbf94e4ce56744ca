//! Times are stored as unix milliseconds and travel as protobuf Timestamps.

use prost_types::Timestamp;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Unix milliseconds of a timestamp. Saturates rather than wrapping on
/// values outside the range [`valid`] admits, so a stray value can never
/// panic or turn into a time inside a window; requests go through
/// [`valid`] first.
pub fn millis(ts: &Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos) / 1_000_000)
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of
/// `google.protobuf.Timestamp`.
pub const MIN_SECONDS: i64 = -62_135_596_800;
pub const MAX_SECONDS: i64 = 253_402_300_799;

/// Checks a caller's timestamp: inside 0001–9999 with nanos in
/// 0..1_000_000_000, as the Timestamp contract requires. Returns its unix
/// milliseconds, or what is wrong with it.
pub fn valid(ts: &Timestamp) -> Result<i64, String> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(format!("nanos must lie in 0..999999999, got {}", ts.nanos));
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds) {
        return Err(format!(
            "must lie between 0001-01-01 and 9999-12-31, got {} seconds since 1970",
            ts.seconds
        ));
    }
    Ok(millis(ts))
}

/// [`valid`] for a timestamp that must be present, recording what is wrong
/// under `field`.
pub fn required(ts: &Option<Timestamp>, field: &str, v: &mut crate::Violations) -> Option<i64> {
    match ts {
        None => {
            v.add(field, "is required");
            None
        }
        Some(t) => optional_inner(t, field, v),
    }
}

/// [`valid`] for a timestamp that may be absent.
pub fn optional(ts: &Option<Timestamp>, field: &str, v: &mut crate::Violations) -> Option<i64> {
    ts.as_ref().and_then(|t| optional_inner(t, field, v))
}

fn optional_inner(t: &Timestamp, field: &str, v: &mut crate::Violations) -> Option<i64> {
    match valid(t) {
        Ok(ms) => Some(ms),
        Err(e) => {
            v.add(field, e);
            None
        }
    }
}

/// An optional stored time as an optional Timestamp.
pub fn opt_timestamp(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_before_1970() {
        for ms in [0, 1, 999, 1_780_000_000_123, -1, -1001] {
            assert_eq!(millis(&timestamp(ms)), ms);
        }
    }

    #[test]
    fn only_years_1_to_9999_with_nanos_in_range_are_valid() {
        let t = |seconds, nanos| Timestamp { seconds, nanos };
        assert!(valid(&t(MIN_SECONDS, 0)).is_ok());
        assert!(valid(&t(MAX_SECONDS, 999_999_999)).is_ok());
        assert!(valid(&t(MAX_SECONDS + 1, 0)).is_err());
        assert!(valid(&t(MIN_SECONDS - 1, 0)).is_err());
        assert!(valid(&t(0, -1)).is_err());
        assert!(valid(&t(0, 1_000_000_000)).is_err());
        // Year 3×10^10 must not wrap into a plausible time.
        assert!(valid(&t(1_000_000_000_000_000_000, 0)).is_err());
        assert_eq!(millis(&t(i64::MAX, i32::MAX)), i64::MAX);
        assert_eq!(millis(&t(i64::MIN, i32::MIN)), i64::MIN);
    }
}
