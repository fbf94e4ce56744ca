//! Resource names (AIP-122): `cycles/2026`, `units/siming`,
//! `cycles/2026/groups/districts`. Ids are 1-63 lower-case letters, digits,
//! `-` or `_`, starting with a letter or digit ([`valid_id`]; [`ID_RULE`]
//! says so to callers).

use crate::error::{Error, Violations};

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

/// The id of a resource the caller creates (AIP-133): `requested` when the
/// caller names one, checked under `field` (a valid id, and not of the form
/// of the ids the server makes, `{kind}-` and 32 hex digits, which stay the
/// server's); else derived from the caller and its request id
/// ([`derived_id`]); else, with no request id, a fresh [`new_id`].
pub fn chosen_id(
    kind: &str,
    requested: &str,
    field: &str,
    subject: &str,
    request_id: &str,
    v: &mut Violations,
) -> String {
    if requested.is_empty() {
        return if request_id.is_empty() {
            new_id(kind)
        } else {
            derived_id(kind, subject, request_id)
        };
    }
    if !valid_id(requested) {
        v.add(field, ID_RULE);
    } else if is_server_form(kind, requested) {
        v.add(
            field,
            format!("{kind}- followed by 32 hex digits is the form of the ids the server makes"),
        );
    }
    requested.to_string()
}

/// The id the server gives a resource created by `subject` under
/// `request_id`: `{kind}-` and the first 32 hex digits of the SHA-256 of
/// kind, subject and request id, each ended by a NUL (a subject is printable
/// text, so no two pairs of subject and request id hash the same bytes).
/// The same request names the same resource on every run and every machine;
/// two callers (request ids are each caller's own, as in the idempotency
/// records) or two request ids give different ids.
pub fn derived_id(kind: &str, subject: &str, request_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [kind, subject, request_id] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("{kind}-{}", &hex::encode(h.finalize())[..32])
}

/// Whether `id` has the form of an id the server makes for `kind`.
fn is_server_form(kind: &str, id: &str) -> bool {
    id.strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            hex.len() == 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// What [`valid_id`] accepts, as the violation of a refused id says it.
pub const ID_RULE: &str =
    "must be 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit";

/// Whether `id` is a valid resource id: 1-63 lower-case ASCII letters,
/// digits, `-` or `_`, not starting with `-` or `_`. (Underscores, trailing
/// dashes and `--` are accepted: stored ids, unit ids among them, may hold
/// them.)
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
    fn ids_are_what_the_rule_says() {
        for ok in [
            "siming",
            "2026",
            "xiang-an",
            "unit_7",
            "a",
            "a-",
            "a--b",
            "9_",
            &"a".repeat(63),
        ] {
            assert!(valid_id(ok), "{ok:?} is refused");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "Siming",
            "a.b",
            "a b",
            "长",
            &"a".repeat(64),
        ] {
            assert!(!valid_id(bad), "{bad:?} is accepted");
        }
        assert!(ID_RULE.contains("1-63") && ID_RULE.contains("'_'"));
        let mut v = Violations::new();
        chosen_id("insp", "-a", "inspection_id", "li", "r1", &mut v);
        assert_eq!(v.as_slice()[0].description, ID_RULE);
    }

    #[test]
    fn new_ids_are_valid_and_distinct_within_one_millisecond() {
        let ids: std::collections::HashSet<String> =
            (0..100_000).map(|_| new_id("notice")).collect();
        assert_eq!(ids.len(), 100_000);
        assert!(ids.iter().all(|id| valid_id(id)));
    }

    #[test]
    fn chosen_ids_are_the_caller_s_or_derived_from_its_request() {
        let mut v = Violations::new();
        assert_eq!(
            chosen_id("insp", "siming-1", "inspection_id", "li", "r1", &mut v),
            "siming-1"
        );
        let derived = chosen_id("insp", "", "inspection_id", "li", "r1", &mut v);
        assert_eq!(derived, derived_id("insp", "li", "r1"));
        assert!(valid_id(&derived) && is_server_form("insp", &derived));
        assert_ne!(derived, derived_id("insp", "wang", "r1"));
        assert_ne!(derived, derived_id("insp", "li", "r2"));
        assert_ne!(
            derived_id("insp", "l", "ir1"),
            derived_id("insp", "li", "r1")
        );
        assert!(v.is_empty());
        let random = chosen_id("insp", "", "inspection_id", "li", "", &mut v);
        assert!(is_server_form("insp", &random) && random != derived);
        assert!(v.is_empty());
        chosen_id("insp", "Siming", "inspection_id", "li", "r1", &mut v);
        chosen_id("insp", &derived, "inspection_id", "li", "r1", &mut v);
        assert_eq!(v.as_slice().len(), 2);
        assert!(v.as_slice().iter().all(|x| x.field == "inspection_id"));
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
