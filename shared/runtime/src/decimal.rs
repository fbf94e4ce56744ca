//! Exact decimals: `google.type.Decimal` strings on the wire, canonical TEXT
//! in the database, `rust_decimal::Decimal` in between. Never binary floats.

use std::str::FromStr;

use jixiao_proto::Decimal as ProtoDecimal;
use rust_decimal::{Decimal, RoundingStrategy};

/// Parses a wire decimal. An empty string means 0 (as google.type.Decimal
/// says); exponents ("2.5e-1") are accepted. A value that a decimal of 28
/// significant digits cannot hold exactly is refused, never rounded: a
/// figure that changed on the way in could not be reproduced later.
pub fn parse(text: &str) -> Result<Decimal, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(Decimal::ZERO);
    }
    // google.type.Decimal has no room for spaces around the number.
    if t.len() != text.len() {
        return Err(format!("{text:?} is not a decimal: remove the spaces"));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let (mantissa, exponent) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (
            m,
            e.parse::<i64>()
                .map_err(|_| format!("{text:?} is not a decimal: bad exponent"))?,
        ),
        None => (t, 0),
    };
    let well_formed = !mantissa.is_empty()
        && mantissa
            .strip_prefix('-')
            .unwrap_or(mantissa)
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && mantissa.matches('.').count() <= 1
        && mantissa.chars().any(|c| c.is_ascii_digit());
    if !well_formed {
        return Err(format!("{text:?} is not a decimal"));
    }
    // Trailing zeros of the fraction carry no value; dropping them keeps
    // "1.000…0" (more than 28 places) exact.
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    };
    let inexact = || {
        format!(
            "{text:?} has more digits than a decimal holds exactly (28 significant digits, values up to 79228162514264337593543950335)"
        )
    };
    let mut d = Decimal::from_str_exact(mantissa).map_err(|_| inexact())?;
    if exponent > 0 {
        let factor = u32::try_from(exponent)
            .ok()
            .and_then(|e| 10u128.checked_pow(e))
            .and_then(|f| Decimal::try_from_i128_with_scale(f as i128, 0).ok())
            .ok_or_else(inexact)?;
        d = d.checked_mul(factor).ok_or_else(inexact)?;
    } else if exponent < 0 {
        let scale = u32::try_from(-exponent)
            .ok()
            .and_then(|e| e.checked_add(d.scale()))
            .filter(|s| *s <= 28)
            .ok_or_else(inexact)?;
        d.set_scale(scale).map_err(|_| inexact())?;
    }
    Ok(d)
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

/// Figures a caller sends (values, targets, weights, deductions, scores)
/// lie strictly between -10^15 and 10^15 with at most 10 decimal places.
/// That is far beyond any real figure of an evaluation (a city's GDP in
/// yuan is about 10^13), and it is what keeps every formula of the suite
/// inside the 28 digits of a decimal: a ratio of two figures is at most
/// 10^25, a sum of a billion figures at most 10^24. The formulas are
/// overflow-safe on their own as well; this bound means the extremes are
/// refused at entry, naming the field, instead of scored as a clamp.
pub const FIGURE_LIMIT: i64 = 1_000_000_000_000_000;
/// Decimal places a caller's figure may have.
pub const FIGURE_PLACES: u32 = 10;

/// Checks that a parsed decimal is a figure (see [`FIGURE_LIMIT`]).
pub fn bounded(d: Decimal) -> Result<Decimal, String> {
    let d = d.normalize();
    if d.abs() >= Decimal::from(FIGURE_LIMIT) {
        return Err(format!(
            "{d} is out of range: figures lie strictly between -10^15 and 10^15"
        ));
    }
    if d.scale() > FIGURE_PLACES {
        return Err(format!(
            "{d} has {} decimal places; figures have at most {FIGURE_PLACES}",
            d.scale()
        ));
    }
    Ok(d)
}

/// [`parse`] for a caller's figure.
pub fn parse_figure(text: &str) -> Result<Decimal, String> {
    parse(text).and_then(bounded)
}

/// [`required`] for a caller's figure.
pub fn figure(value: &Option<ProtoDecimal>) -> Result<Decimal, String> {
    required(value).and_then(bounded)
}

/// [`optional`] for a caller's figure.
pub fn optional_figure(value: &Option<ProtoDecimal>) -> Result<Option<Decimal>, String> {
    optional(value).and_then(|d| d.map(bounded).transpose())
}

/// The canonical text of a decimal: no trailing zeros, no exponent.
pub fn canonical(d: Decimal) -> String {
    text(d.normalize())
}

/// `d.to_string()`, digit for digit, without the formatting machinery
/// and its 96-bit divisions: a standings refresh writes nine figures for
/// each of thousands of units, and `Display` was a seventh of its CPU
/// (issue 22, `perf`).
pub fn text(d: Decimal) -> String {
    let Ok(mut m) = u64::try_from(d.mantissa().unsigned_abs()) else {
        return d.to_string();
    };
    // Sign, 20 digits, the point and up to 28 leading zeros.
    let mut buf = [0u8; 50];
    let mut at = buf.len();
    let mut put = |byte: u8| {
        at -= 1;
        buf[at] = byte;
    };
    let scale = d.scale();
    for _ in 0..scale {
        put(b'0' + (m % 10) as u8);
        m /= 10;
    }
    if scale > 0 {
        put(b'.');
    }
    loop {
        put(b'0' + (m % 10) as u8);
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if d.is_sign_negative() {
        put(b'-');
    }
    String::from_utf8_lossy(&buf[at..]).into_owned()
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
    text(r)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn text_is_display_s(lo in any::<u32>(), mid in any::<u32>(), hi in any::<u32>(),
                             negative in any::<bool>(), scale in 0u32..=28, small in any::<bool>()) {
            // Mantissas of every size, and the small ones figures have.
            let (mid, hi) = if small { (mid % 4, 0) } else { (mid, hi) };
            let d = Decimal::from_parts(lo, mid, hi, negative, scale);
            prop_assert_eq!(text(d), d.to_string());
        }
    }

    #[test]
    fn text_writes_every_place_of_the_scale() {
        for (d, expected) in [
            (Decimal::new(78000, 3), "78.000"),
            (Decimal::new(-5, 3), "-0.005"),
            (Decimal::new(0, 3), "0.000"),
            (Decimal::ZERO, "0"),
            (Decimal::MAX, "79228162514264337593543950335"),
        ] {
            assert_eq!(text(d), expected);
            assert_eq!(d.to_string(), expected);
        }
    }

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
        assert!(parse("1e").is_err());
        assert!(parse(".").is_err());
        assert!(parse("1.2.3").is_err());
        assert!(parse("--1").is_err());
    }

    #[test]
    fn figures_are_bounded_in_size_and_places() {
        assert!(parse_figure("999999999999999.9999999999").is_ok());
        assert!(parse_figure("-999999999999999").is_ok());
        assert!(parse_figure("1000000000000000").is_err());
        assert!(parse_figure("-1e15").is_err());
        assert!(parse_figure("0.00000000001").is_err());
        assert!(
            parse_figure("0.1000000000000").is_ok(),
            "trailing zeros are no places"
        );
        assert!(parse_figure("79228162514264337593543950335").is_err());
        assert!(parse_figure("1e-28").is_err());
    }

    #[test]
    fn refuses_what_it_cannot_hold_exactly() {
        // 29 significant digits: rust_decimal's from_str would round to 10.
        assert!(parse("9.9999999999999999999999999999").is_err());
        assert!(parse("79228162514264337593543950336").is_err());
        assert!(parse("1e-29").is_err());
        assert!(parse("1e29").is_err());
        assert!(parse("1e999999999999").is_err());
        assert_eq!(parse("1e-28").unwrap(), Decimal::new(1, 28));
        assert_eq!(
            parse("79228162514264337593543950335").unwrap(),
            Decimal::MAX
        );
        assert_eq!(
            parse("-79228162514264337593543950335").unwrap(),
            Decimal::MIN
        );
        assert_eq!(
            parse("1.00000000000000000000000000000000").unwrap(),
            Decimal::ONE
        );
        assert_eq!(parse("2.5E2").unwrap(), Decimal::from(250));
        assert_eq!(
            parse("0.0000000000000000000000000001").unwrap(),
            Decimal::new(1, 28)
        );
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
