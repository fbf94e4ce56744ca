//! Evidence descriptions (评估材料): the file lives in the caller's store;
//! the suite keeps its name, type, size, SHA-256 and location.

use jixiao_proto::types::EvidenceItem;

use crate::{Violations, text};

/// Evidence items as stored: one protobuf message per list.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EvidenceList {
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<EvidenceItem>,
}

/// Checks evidence descriptions: a name, a media type, a size, a SHA-256
/// of 64 lower-case hex digits and a location.
pub fn check(items: &[EvidenceItem], field: &str, v: &mut Violations) {
    for (i, e) in items.iter().enumerate() {
        let f = format!("{field}[{i}]");
        text::required(v, format!("{f}.name"), &e.name, text::LABEL);
        text::required(v, format!("{f}.media_type"), &e.media_type, text::LABEL);
        v.check(
            e.size_bytes >= 0,
            format!("{f}.size_bytes"),
            "must not be negative",
        );
        v.check(
            e.sha256.len() == 64
                && e.sha256
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            format!("{f}.sha256"),
            "must be 64 lower-case hex digits",
        );
        text::required(v, format!("{f}.uri"), &e.uri, text::URI);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_needs_a_digest() {
        let mut v = Violations::new();
        let good = EvidenceItem {
            name: "a.pdf".into(),
            media_type: "application/pdf".into(),
            size_bytes: 3,
            sha256: "a".repeat(64),
            uri: "s3://x/a.pdf".into(),
        };
        let bad = EvidenceItem {
            sha256: "XYZ".into(),
            ..good.clone()
        };
        check(&[good, bad], "value.evidence", &mut v);
        assert_eq!(v.as_slice().len(), 1);
        assert_eq!(v.as_slice()[0].field, "value.evidence[1].sha256");
    }
}
