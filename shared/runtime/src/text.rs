//! Free text a caller sends. Every such field has a maximum length in
//! characters (Unicode scalar values, so a Chinese character counts one),
//! stated in `types.proto` and checked here, so that no comment can grow
//! a table by megabytes. Identifiers and codes have rules of their own
//! (`names`, the scheme's keys).

use crate::{Error, Violations};

/// Titles, display names, places, people, case references, media types.
pub const LABEL: usize = 200;
/// Reasons, notes, comments, justifications, descriptions, reports.
pub const NOTE: usize = 4_000;
/// The body of a notice or a document.
pub const BODY: usize = 20_000;
/// An evidence link.
pub const URI: usize = 2_048;

fn problem(text: &str, required: bool, max: usize) -> Option<String> {
    if required && text.trim().is_empty() {
        return Some("is required".into());
    }
    // PostgreSQL cannot store NUL in text, and escapes would reach every
    // screen and log that shows the text; line breaks and tabs are text.
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Some(format!(
            "holds the control character U+{:04X}; only line breaks and tabs are kept",
            u32::from(c)
        ));
    }
    let n = text.chars().count();
    (n > max).then(|| format!("is {n} characters long; at most {max} are kept"))
}

/// Checks text that must be present (not blank) and at most `max` long.
pub fn required(v: &mut Violations, field: impl Into<String>, text: &str, max: usize) {
    if let Some(p) = problem(text, true, max) {
        v.add(field, p);
    }
}

/// Checks text that may be empty and is at most `max` long.
pub fn optional(v: &mut Violations, field: impl Into<String>, text: &str, max: usize) {
    if let Some(p) = problem(text, false, max) {
        v.add(field, p);
    }
}

/// [`required`] for a request with one text field: INVALID_ARGUMENT
/// naming `field`, or its trimmed text.
pub fn one(field: &str, text: &str, max: usize, why: &str) -> Result<String, Error> {
    if text.trim().is_empty() {
        return Err(Error::invalid(field, why));
    }
    match problem(text, false, max) {
        Some(p) => Err(Error::invalid(field, p)),
        None => Ok(text.trim().to_string()),
    }
}

/// How much of a refused value an answer quotes back.
pub const ECHO: usize = 128;

/// `text` as an answer quotes it back when refusing it: whole when short,
/// otherwise its first [`ECHO`] characters and its length. A caller that
/// sends a megabyte of garbage gets an answer it can read, not its
/// megabyte back once per refusal.
pub fn echo(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(ECHO) {
        None => text.into(),
        Some((cut, _)) => format!("{}… ({} characters)", &text[..cut], text.chars().count()).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_quote_long_values_by_their_start_and_length() {
        assert_eq!(echo("units/huli"), "units/huli");
        let exact = "绩".repeat(ECHO);
        assert_eq!(echo(&exact), exact);
        let long = format!("{exact}效效");
        assert_eq!(echo(&long), format!("{exact}… ({} characters)", ECHO + 2));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let mut v = Violations::new();
        required(&mut v, "a", &"绩".repeat(LABEL), LABEL);
        optional(&mut v, "b", "", LABEL);
        assert!(v.into_result().is_ok());
        let mut v = Violations::new();
        required(&mut v, "a", "  ", LABEL);
        optional(&mut v, "b", &"x".repeat(NOTE + 1), NOTE);
        let Err(Error::Invalid(found)) = v.into_result() else {
            panic!("expected violations")
        };
        let fields: Vec<_> = found.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["a", "b"]);
    }

    #[test]
    fn control_characters_are_refused_but_line_breaks_kept() {
        assert!(one("reason", "第一行\n第二行\t完", NOTE, "say why").is_ok());
        for bad in ["ab\u{0}cd", "ab\u{1b}[31mred", "\u{7f}"] {
            assert!(
                matches!(one("reason", bad, NOTE, "say why"), Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_field_requests_name_the_field() {
        assert_eq!(one("reason", " 复核 ", NOTE, "say why").unwrap(), "复核");
        assert!(matches!(
            one("reason", "", NOTE, "say why"),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            one("reason", &"x".repeat(NOTE + 1), NOTE, "say why"),
            Err(Error::Invalid(_))
        ));
    }
}
