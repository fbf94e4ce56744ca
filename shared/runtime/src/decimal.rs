//! Exact decimals: `google.type.Decimal` strings on the wire, canonical TEXT
//! in the database, `rust_decimal::Decimal` in between. Never binary floats.

use std::str::FromStr;

use jixiao_proto::Decimal as ProtoDecimal;
use rust_decimal::{Decimal, RoundingStrategy};

/// Parses a wire decimal. An empty string means 0 (as google.type.Decimal
/// says); exponents ("2.5e-1") are accepted.
pub fn parse(text: &str) -> Result<Decimal, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Decimal::ZERO);
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.contains(['e', 'E']) {
        Decimal::from_scientific(t).map_err(|e| format!("{text:?} is not a decimal: {e}"))
    } else {
        Decimal::from_str(t).map_err(|e| format!("{text:?} is not a decimal: {e}"))
    }
}

/// Parses an optional wire decimal that must be present.
pub fn required(value: &Option<ProtoDecimal>) -> Result<Decimal, String> {
    match value {
        None => Err("is required".into()),
        Some(d) if d.value.trim().is_empty() => Err("is required".into()),
        Some(d) => parse(&d.value),
    }
}

/// Parses an optional wire decimal; None when absent or empty.
pub fn optional(value: &Option<ProtoDecimal>) -> Result<Option<Decimal>, String> {
    match value {
        None => Ok(None),
        Some(d) if d.value.trim().is_empty() => Ok(None),
        Some(d) => parse(&d.value).map(Some),
    }
}

/// The canonical text of a decimal: no trailing zeros, no exponent.
pub fn canonical(d: Decimal) -> String {
    d.normalize().to_string()
}

/// A decimal for the wire, in canonical text.
pub fn to_proto(d: Decimal) -> ProtoDecimal {
    ProtoDecimal {
        value: canonical(d),
    }
}

/// Parses canonical text read back from the database.
pub fn from_db(text: &str) -> Result<Decimal, crate::Error> {
    Decimal::from_str(text).map_err(crate::Error::internal)
}

/// Rounds to `dp` places, half away from zero (DOMAIN.md §3 rule 1).
pub fn round_half_away(d: Decimal, dp: u32) -> Decimal {
    d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

/// A published figure: rounded to 3 places and written with exactly 3.
pub fn published(d: Decimal) -> String {
    let mut r = round_half_away(d, 3);
    r.rescale(3);
    r.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wire_forms() {
        assert_eq!(parse("").unwrap(), Decimal::ZERO);
        assert_eq!(parse("2.5e-1").unwrap(), Decimal::from_str("0.25").unwrap());
        assert_eq!(
            parse("+84.475").unwrap(),
            Decimal::from_str("84.475").unwrap()
        );
        assert!(parse("abc").is_err());
        assert!(parse("NaN").is_err());
    }

    #[test]
    fn canonical_text_drops_trailing_zeros() {
        assert_eq!(canonical(Decimal::from_str("60.000").unwrap()), "60");
        assert_eq!(canonical(Decimal::from_str("0.10").unwrap()), "0.1");
    }

    #[test]
    fn publishes_three_places_half_away_from_zero() {
        assert_eq!(published(Decimal::from_str("84.4745").unwrap()), "84.475");
        assert_eq!(published(Decimal::from_str("-0.0005").unwrap()), "-0.001");
        assert_eq!(published(Decimal::from_str("78").unwrap()), "78.000");
    }
}
