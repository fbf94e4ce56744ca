//! The data-quality rules on indicator values (docs/DATA-QUALITY.md) as
//! plain functions over exact decimals: jumps, peer outliers by median and
//! MAD, a cumulative final below its progress, missing evidence and
//! corrections across the target shortly before the data deadline. Each
//! raised flag keeps the figures that raised it.

use jixiao_proto::{indicators::ValueFlagKind, plans::Scheme, types::QualitySeverity};
use jixiao_runtime::decimal;
use rust_decimal::Decimal;

/// The rule that raised a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Jump,
    YearOnYearJump,
    PeerOutlier,
    FinalBelowProgress,
    EvidenceMissing,
    SharedEvidence,
    BoundaryCorrection,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Jump,
        Kind::YearOnYearJump,
        Kind::PeerOutlier,
        Kind::FinalBelowProgress,
        Kind::EvidenceMissing,
        Kind::SharedEvidence,
        Kind::BoundaryCorrection,
    ];

    pub fn proto(self) -> ValueFlagKind {
        match self {
            Kind::Jump => ValueFlagKind::Jump,
            Kind::YearOnYearJump => ValueFlagKind::YearOnYearJump,
            Kind::PeerOutlier => ValueFlagKind::PeerOutlier,
            Kind::FinalBelowProgress => ValueFlagKind::FinalBelowProgress,
            Kind::EvidenceMissing => ValueFlagKind::EvidenceMissing,
            Kind::SharedEvidence => ValueFlagKind::SharedEvidence,
            Kind::BoundaryCorrection => ValueFlagKind::BoundaryCorrection,
        }
    }

    /// The kind as it appears in a flag's resource name and the database.
    pub fn id(self) -> &'static str {
        match self {
            Kind::Jump => "jump",
            Kind::YearOnYearJump => "year_on_year_jump",
            Kind::PeerOutlier => "peer_outlier",
            Kind::FinalBelowProgress => "final_below_progress",
            Kind::EvidenceMissing => "evidence_missing",
            Kind::SharedEvidence => "shared_evidence",
            Kind::BoundaryCorrection => "boundary_correction",
        }
    }

    pub fn parse(id: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.id() == id)
    }

    /// Statistical signals are warnings; a broken rule of the framework or
    /// of arithmetic (a year-to-date total that shrank) is critical.
    pub fn severity(self) -> QualitySeverity {
        match self {
            Kind::FinalBelowProgress | Kind::EvidenceMissing => QualitySeverity::Critical,
            _ => QualitySeverity::Warning,
        }
    }
}

/// One named figure of a flag's evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Figure {
    Number(Decimal),
    Text(String),
}

/// A flag a rule raised, with its evidence in the rule's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    pub kind: Kind,
    pub evidence: Vec<(String, Figure)>,
}

impl Raised {
    fn new(kind: Kind, evidence: Vec<(&str, Figure)>) -> Raised {
        Raised {
            kind,
            evidence: evidence
                .into_iter()
                .map(|(n, f)| (n.to_string(), f))
                .collect(),
        }
    }

    fn get(&self, name: &str) -> String {
        match self.evidence.iter().find(|(n, _)| n == name) {
            Some((_, Figure::Number(d))) => decimal::canonical(*d),
            Some((_, Figure::Text(t))) => t.clone(),
            None => String::new(),
        }
    }

    /// The flag in one sentence, from its evidence.
    pub fn explanation(&self) -> String {
        let g = |n: &str| self.get(n);
        match self.kind {
            Kind::Jump => format!(
                "changed by {} against {} of {} (threshold {})",
                g("change"),
                g("reference"),
                g("reference_period"),
                g("threshold")
            ),
            Kind::YearOnYearJump => format!(
                "changed by {} against {} in cycle {} (threshold {})",
                g("change"),
                g("reference"),
                g("reference_cycle"),
                g("threshold")
            ),
            Kind::PeerOutlier => format!(
                "robust z-score {} against the median {} (MAD {}) of {} peers (threshold {})",
                g("score"),
                g("median"),
                g("mad"),
                g("peers"),
                g("threshold")
            ),
            Kind::FinalBelowProgress => format!(
                "final value {} below the year-to-date {} of {}",
                g("value"),
                g("progress"),
                g("progress_period")
            ),
            Kind::EvidenceMissing => format!("{} requires evidence; none attached", g("indicator")),
            Kind::SharedEvidence => format!(
                "evidence {} is also attached to {}",
                g("sha256"),
                g("other_value")
            ),
            Kind::BoundaryCorrection => format!(
                "corrected from {} to {} across the target {}, {} hours before the data deadline",
                g("from"),
                g("to"),
                g("target"),
                g("hours_before_deadline")
            ),
        }
    }
}

/// The consistency constant that makes the MAD estimate the standard
/// deviation of normally distributed figures.
pub const MAD_SCALE: Decimal = Decimal::from_parts(14826, 0, 0, false, 4);

/// The thresholds that apply to one indicator: the scheme's, with the
/// indicator's overrides and the documented defaults for unset fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thresholds {
    pub jump: Decimal,
    pub year_on_year: Decimal,
    pub outlier: Decimal,
    pub min_peers: usize,
    pub window_hours: i64,
    pub blocking: QualitySeverity,
    pub cumulative: bool,
    pub evidence_required: bool,
}

impl Thresholds {
    pub fn of(scheme: &Scheme, indicator: &str) -> Thresholds {
        let q = scheme.data_quality.clone().unwrap_or_default();
        let own = q.indicators.iter().find(|i| i.indicator == indicator);
        let pick = |own: Option<&Option<jixiao_proto::Decimal>>,
                    group: &Option<jixiao_proto::Decimal>,
                    default: Decimal| {
            own.and_then(|o| decimal::optional(o).ok().flatten())
                .or_else(|| decimal::optional(group).ok().flatten())
                .unwrap_or(default)
        };
        let half = Decimal::new(5, 1);
        Thresholds {
            jump: pick(own.map(|o| &o.jump_threshold), &q.jump_threshold, half),
            year_on_year: pick(
                own.map(|o| &o.year_on_year_threshold),
                &q.year_on_year_threshold,
                half,
            ),
            outlier: pick(
                own.map(|o| &o.outlier_threshold),
                &q.outlier_threshold,
                Decimal::new(35, 1),
            ),
            min_peers: if q.outlier_min_peers > 0 {
                q.outlier_min_peers as usize
            } else {
                5
            },
            window_hours: if q.boundary_window_hours > 0 {
                i64::from(q.boundary_window_hours)
            } else {
                72
            },
            blocking: jixiao_runtime::quality::blocking(&q),
            cumulative: own.is_some_and(|o| o.cumulative),
            evidence_required: own.is_some_and(|o| o.evidence_required),
        }
    }

    /// Whether an unresolved flag of `severity` blocks publication.
    pub fn blocks(&self, severity: QualitySeverity) -> bool {
        jixiao_runtime::quality::blocks(self.blocking, severity)
    }
}

/// `|value − reference| / |reference|`; None for a zero reference (no
/// relative change exists).
pub fn relative_change(value: Decimal, reference: Decimal) -> Option<Decimal> {
    if reference.is_zero() {
        return None;
    }
    (value - reference)
        .abs()
        .checked_div(reference.abs())
        .map(|d| d.normalize())
}

/// JUMP against an earlier figure of the year: `earlier` is the figure at
/// `earlier_share` of the year, pro-rated to `share` for a cumulative
/// indicator.
pub fn jump(
    value: Decimal,
    earlier: Decimal,
    earlier_period: &str,
    pro_rate: Option<(Decimal, Decimal)>,
    threshold: Decimal,
) -> Option<Raised> {
    let reference = match pro_rate {
        Some((earlier_share, share)) if !earlier_share.is_zero() => {
            (earlier * share).checked_div(earlier_share)?.normalize()
        }
        _ => earlier,
    };
    let change = relative_change(value, reference)?;
    (change > threshold).then(|| {
        Raised::new(
            Kind::Jump,
            vec![
                ("value", Figure::Number(value)),
                ("reference", Figure::Number(reference)),
                ("reference_period", Figure::Text(earlier_period.into())),
                ("change", Figure::Number(change)),
                ("threshold", Figure::Number(threshold)),
            ],
        )
    })
}

/// YEAR_ON_YEAR_JUMP of a final value against the previous cycle's.
pub fn year_on_year(
    value: Decimal,
    last: Decimal,
    last_cycle: &str,
    threshold: Decimal,
) -> Option<Raised> {
    let change = relative_change(value, last)?;
    (change > threshold).then(|| {
        Raised::new(
            Kind::YearOnYearJump,
            vec![
                ("value", Figure::Number(value)),
                ("reference", Figure::Number(last)),
                ("reference_cycle", Figure::Text(last_cycle.into())),
                ("change", Figure::Number(change)),
                ("threshold", Figure::Number(threshold)),
            ],
        )
    })
}

/// The median of figures (the mean of the middle two for an even count).
pub fn median(values: &[Decimal]) -> Option<Decimal> {
    let mut v = values.to_vec();
    v.sort();
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some(((v[n / 2 - 1] + v[n / 2]) / Decimal::TWO).normalize()),
    }
}

/// PEER_OUTLIER over a group's values of one indicator and period: each
/// value's robust z-score `|v − median| / (1.4826 × MAD)`. Returns the
/// indexes of the outliers with their flags; none with fewer than
/// `min_peers` values or a MAD of 0 (most peers agree exactly, so no scale
/// exists to measure a distance by).
pub fn outliers(values: &[Decimal], threshold: Decimal, min_peers: usize) -> Vec<(usize, Raised)> {
    if values.len() < min_peers.max(1) {
        return Vec::new();
    }
    let Some(med) = median(values) else {
        return Vec::new();
    };
    let deviations: Vec<Decimal> = values.iter().map(|v| (*v - med).abs()).collect();
    let Some(mad) = median(&deviations) else {
        return Vec::new();
    };
    if mad.is_zero() {
        return Vec::new();
    }
    let scale = MAD_SCALE * mad;
    values
        .iter()
        .zip(&deviations)
        .enumerate()
        .filter_map(|(i, (v, dev))| {
            // Decided without a division, so exactly: |v − median| >
            // threshold × scale. The score is shown to 6 places.
            let limit = threshold.checked_mul(scale)?;
            let score = dev.checked_div(scale)?.round_dp(6).normalize();
            (*dev > limit).then(|| {
                (
                    i,
                    Raised::new(
                        Kind::PeerOutlier,
                        vec![
                            ("value", Figure::Number(*v)),
                            ("median", Figure::Number(med)),
                            ("mad", Figure::Number(mad)),
                            ("score", Figure::Number(score)),
                            ("threshold", Figure::Number(threshold)),
                            ("peers", Figure::Number(Decimal::from(values.len()))),
                        ],
                    ),
                )
            })
        })
        .collect()
}

/// FINAL_BELOW_PROGRESS: a year-to-date total only grows, so a final value
/// below the last progress figure contradicts it.
pub fn final_below_progress(value: Decimal, progress: Decimal, period: &str) -> Option<Raised> {
    (value < progress).then(|| {
        Raised::new(
            Kind::FinalBelowProgress,
            vec![
                ("value", Figure::Number(value)),
                ("progress", Figure::Number(progress)),
                ("progress_period", Figure::Text(period.into())),
            ],
        )
    })
}

/// EVIDENCE_MISSING where the scheme requires evidence.
pub fn evidence_missing(required: bool, evidence: usize, indicator: &str) -> Option<Raised> {
    (required && evidence == 0).then(|| {
        Raised::new(
            Kind::EvidenceMissing,
            vec![("indicator", Figure::Text(indicator.into()))],
        )
    })
}

/// SHARED_EVIDENCE: the digest is attached to another unit's value too.
pub fn shared_evidence(sha256: &str, other_value: &str) -> Raised {
    Raised::new(
        Kind::SharedEvidence,
        vec![
            ("sha256", Figure::Text(sha256.into())),
            ("other_value", Figure::Text(other_value.into())),
        ],
    )
}

/// Whether `value` meets `target` in the indicator's direction.
pub fn meets(higher_is_better: bool, target: Decimal, value: Decimal) -> bool {
    if higher_is_better {
        value >= target
    } else {
        value <= target
    }
}

/// BOUNDARY_CORRECTION: a correction from missing the target to meeting
/// it, at `now_ms`, no more than `window_hours` before the data deadline
/// (or after it). Hours are exact decimals (negative after the deadline).
pub fn boundary_correction(
    higher_is_better: bool,
    target: Decimal,
    from: Decimal,
    to: Decimal,
    now_ms: i64,
    deadline_ms: i64,
    window_hours: i64,
) -> Option<Raised> {
    if meets(higher_is_better, target, from) || !meets(higher_is_better, target, to) {
        return None;
    }
    let hours = (Decimal::from(deadline_ms - now_ms) / Decimal::from(3_600_000))
        .round_dp(2)
        .normalize();
    (hours <= Decimal::from(window_hours)).then(|| {
        Raised::new(
            Kind::BoundaryCorrection,
            vec![
                ("from", Figure::Number(from)),
                ("to", Figure::Number(to)),
                ("target", Figure::Number(target)),
                ("hours_before_deadline", Figure::Number(hours)),
            ],
        )
    })
}

#[cfg(test)]
#[path = "quality_tests.rs"]
mod tests;
