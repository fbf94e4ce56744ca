//! The blocking rule every data-quality flag shares, values' and survey
//! responses' alike (docs/DATA-QUALITY.md, "Publication"): a scheme names
//! the least severity whose unresolved flags hold publication back.

use jixiao_proto::{plans::DataQualityRules, types::QualitySeverity};

/// The least severity that blocks: CRITICAL unless the scheme says WARNING.
pub fn blocking(q: &DataQualityRules) -> QualitySeverity {
    match QualitySeverity::try_from(q.blocking_severity) {
        Ok(QualitySeverity::Warning) => QualitySeverity::Warning,
        _ => QualitySeverity::Critical,
    }
}

/// Whether an unresolved flag of `severity` blocks under `blocking`.
pub fn blocks(blocking: QualitySeverity, severity: QualitySeverity) -> bool {
    severity as i32 >= blocking as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_blocks_by_default_and_warning_makes_every_flag_block() {
        let unset = DataQualityRules::default();
        assert_eq!(blocking(&unset), QualitySeverity::Critical);
        assert!(blocks(blocking(&unset), QualitySeverity::Critical));
        assert!(!blocks(blocking(&unset), QualitySeverity::Warning));
        let strict = DataQualityRules {
            blocking_severity: QualitySeverity::Warning as i32,
            ..Default::default()
        };
        assert!(blocks(blocking(&strict), QualitySeverity::Warning));
    }
}
