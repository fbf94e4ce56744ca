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

pub fn millis(ts: &Timestamp) -> i64 {
    ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000
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
}
