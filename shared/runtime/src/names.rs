//! Resource names (AIP-122): `cycles/2026`, `units/siming`,
//! `cycles/2026/groups/districts`. Ids are lower-case letters, digits and
//! dashes, starting with a letter or digit, at most 63 characters.

use crate::error::Error;

/// A fresh id for a resource the server names (`insp-…`, `notice-…`).
///
/// All 32 hex digits of a UUIDv7: its 48-bit time prefix keeps ids in
/// creation order, and the uuid crate fills the rest from a per-process
/// counter and random bits, so two ids made in the same millisecond, in one
/// process or in two replicas, still differ. (A 20-digit prefix, as used
/// before, is the same for every id of one millisecond.)
pub fn new_id(kind: &str) -> String {
    format!("{kind}-{}", uuid::Uuid::now_v7().simple())
}

/// Whether `id` is a valid resource id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !id.starts_with(['-', '_'])
}

/// Like [`parse`], but the ids may also hold upper-case letters (indicator
/// codes such as `GDP_GROWTH`, periods such as `2026-Q1`).
pub fn parse_loose<'a>(name: &'a str, pattern: &str, field: &str) -> Result<Vec<&'a str>, Error> {
    split(name, pattern, field, |id| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// Splits `name` along `pattern` ("cycles/*/groups/*") and returns the ids
/// in place of the stars, or INVALID_ARGUMENT naming `field`.
pub fn parse<'a>(name: &'a str, pattern: &str, field: &str) -> Result<Vec<&'a str>, Error> {
    split(name, pattern, field, valid_id)
}

fn split<'a>(
    name: &'a str,
    pattern: &str,
    field: &str,
    valid: impl Fn(&str) -> bool,
) -> Result<Vec<&'a str>, Error> {
    let parts: Vec<&str> = name.split('/').collect();
    let want: Vec<&str> = pattern.split('/').collect();
    let bad = || {
        Error::invalid(
            field,
            format!("must be a resource name of the form {pattern}, got {name:?}"),
        )
    };
    if parts.len() != want.len() {
        return Err(bad());
    }
    let mut ids = Vec::new();
    for (p, w) in parts.iter().zip(&want) {
        if *w == "*" {
            if !valid(p) {
                return Err(bad());
            }
            ids.push(*p);
        } else if p != w {
            return Err(bad());
        }
    }
    Ok(ids)
}

/// The one id of a name with one star.
pub fn parse_one<'a>(name: &'a str, pattern: &str, field: &str) -> Result<&'a str, Error> {
    Ok(parse(name, pattern, field)?[0])
}

/// `units/{id}` -> id.
pub fn unit_id<'a>(name: &'a str, field: &str) -> Result<&'a str, Error> {
    parse_one(name, "units/*", field)
}

/// `cycles/{id}` -> id.
pub fn cycle_id<'a>(name: &'a str, field: &str) -> Result<&'a str, Error> {
    parse_one(name, "cycles/*", field)
}

/// `cycles/{cycle}/groups/{group}` -> (cycle, group).
pub fn group_name<'a>(name: &'a str, field: &str) -> Result<(&'a str, &'a str), Error> {
    let ids = parse(name, "cycles/*/groups/*", field)?;
    Ok((ids[0], ids[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_refuses_others() {
        assert_eq!(
            group_name("cycles/2026/groups/districts", "g").unwrap(),
            ("2026", "districts")
        );
        assert!(group_name("cycles/2026/units/districts", "g").is_err());
        assert!(unit_id("units/Siming", "u").is_err());
        assert!(unit_id("units/", "u").is_err());
        assert!(unit_id("units/a/b", "u").is_err());
        assert_eq!(unit_id("units/xiang-an", "u").unwrap(), "xiang-an");
    }

    #[test]
    fn new_ids_are_valid_and_distinct_within_one_millisecond() {
        let ids: std::collections::HashSet<String> =
            (0..100_000).map(|_| new_id("notice")).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(ids.iter().all(|id| valid_id(id)));
    }

    proptest::proptest! {
        #[test]
        fn any_name_parses_or_fails_cleanly(
            name in "(cycles|units|groups|plans|/|[a-z0-9_-]{0,8}|\\PC{0,4}){0,10}",
        ) {
            let _ = group_name(&name, "g");
            let _ = unit_id(&name, "u");
            let _ = cycle_id(&name, "c");
            let _ = parse(&name, "cycles/{cycle}/plans/{plan}/versions/{version}", "n");
            let _ = valid_id(&name);
        }
    }
}
