//! The survey screening rules of docs/DATA-QUALITY.md as plain functions
//! over counts: what the ingest marks on each response (`straight_lined`,
//! `late`), and when a unit's counts raise a flag, with the figures that
//! raised it. Counts are integers and shares are compared without
//! dividing, so every decision is exact.

use jixiao_proto::{plans::Scheme, reviews::SurveyFlagKind, types::QualitySeverity};
use jixiao_runtime::decimal;
use rust_decimal::Decimal;

/// The screening rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    StraightLining,
    OutsideWindow,
    Burst,
    RepeatedRespondent,
    CategorySurge,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::StraightLining,
        Kind::OutsideWindow,
        Kind::Burst,
        Kind::RepeatedRespondent,
        Kind::CategorySurge,
    ];

    pub fn proto(self) -> SurveyFlagKind {
        match self {
            Kind::StraightLining => SurveyFlagKind::StraightLining,
            Kind::OutsideWindow => SurveyFlagKind::OutsideWindow,
            Kind::Burst => SurveyFlagKind::Burst,
            Kind::RepeatedRespondent => SurveyFlagKind::RepeatedRespondent,
            Kind::CategorySurge => SurveyFlagKind::CategorySurge,
        }
    }

    /// The kind in flag names and stored rows, e.g. `straight_lining`.
    pub fn id(self) -> &'static str {
        match self {
            Kind::StraightLining => "straight_lining",
            Kind::OutsideWindow => "outside_window",
            Kind::Burst => "burst",
            Kind::RepeatedRespondent => "repeated_respondent",
            Kind::CategorySurge => "category_surge",
        }
    }

    pub fn parse(id: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.id() == id)
    }

    /// Fixed per kind: a repeated respondent is one person counted twice;
    /// the others have honest explanations often enough (a whole street
    /// that is satisfied, paper forms keyed in at once, a late campaign
    /// push) to be worth a look rather than a hold.
    pub fn severity(self) -> QualitySeverity {
        match self {
            Kind::RepeatedRespondent => QualitySeverity::Critical,
            _ => QualitySeverity::Warning,
        }
    }
}

/// A scheme's survey thresholds, defaults filled in (plans.proto,
/// `DataQualityRules`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    pub straight_min_answers: usize,
    pub straight_share: Decimal,
    pub straight_min_responses: i64,
    pub outside_window_limit: i64,
    pub burst_size: i64,
    pub respondent_limit: i64,
    pub surge_window_ms: i64,
    pub surge_factor: Decimal,
    pub surge_min_responses: i64,
    pub blocking: QualitySeverity,
}

impl Screen {
    /// None when the scheme switched screening off.
    pub fn of(scheme: &Scheme) -> Option<Screen> {
        let q = scheme.data_quality.clone().unwrap_or_default();
        if q.survey_screening_off {
            return None;
        }
        let or = |n: i32, default: i64| if n > 0 { i64::from(n) } else { default };
        let dec = |d: &Option<jixiao_proto::Decimal>, default: Decimal| {
            decimal::optional(d).ok().flatten().unwrap_or(default)
        };
        Some(Screen {
            straight_min_answers: or(q.straight_lining_min_answers, 4) as usize,
            straight_share: dec(&q.straight_lining_share, Decimal::new(5, 1)),
            straight_min_responses: or(q.straight_lining_min_responses, 10),
            outside_window_limit: i64::from(q.outside_window_limit.max(0)),
            burst_size: or(q.burst_size, 5),
            respondent_limit: or(q.respondent_limit, 1),
            surge_window_ms: or(q.surge_window_hours, 72) * 3_600_000,
            surge_factor: dec(&q.surge_factor, Decimal::ONE),
            surge_min_responses: or(q.surge_min_responses, 10),
            blocking: jixiao_runtime::quality::blocking(&q),
        })
    }

    /// Whether an unresolved flag of `severity` blocks publication.
    pub fn blocks(&self, severity: QualitySeverity) -> bool {
        jixiao_runtime::quality::blocks(self.blocking, severity)
    }
}

/// A response gives one answer code to every question it answers, and
/// answers at least `min_answers` questions. `codes` are its answer codes;
/// an all-"don't know" response has no value and is never counted here.
pub fn straight_lined<'a>(mut codes: impl Iterator<Item = &'a str>, min_answers: usize) -> bool {
    let Some(first) = codes.next() else {
        return false;
    };
    let mut n = 1;
    for c in codes {
        if c != first {
            return false;
        }
        n += 1;
    }
    n >= min_answers
}

/// A response answered within the closing window counts towards a surge.
pub fn late(answer_ms: i64, close_ms: Option<i64>, window_ms: i64) -> bool {
    close_ms.is_some_and(|c| answer_ms > c.saturating_sub(window_ms))
}

/// One figure of a flag's evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Figure {
    Number(&'static str, Decimal),
    Text(&'static str, String),
}

/// A flag a unit's counts raise now: its figures, and the count of
/// flagged responses a resolution covers (more of them later opens the
/// flag again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    pub kind: Kind,
    pub evidence: Vec<Figure>,
    pub flagged: i64,
}

impl Raised {
    fn number(&self, name: &str) -> String {
        self.evidence
            .iter()
            .find_map(|f| match f {
                Figure::Number(n, v) if *n == name => Some(v.normalize().to_string()),
                Figure::Text(n, t) if *n == name => Some(t.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// The flag in one sentence, from its evidence.
    pub fn explanation(&self) -> String {
        let n = |name| self.number(name);
        match self.kind {
            Kind::StraightLining => format!(
                "{} of {} responses give one answer to every question (share {} > {})",
                n("straight_lined"),
                n("responses"),
                n("share"),
                n("threshold")
            ),
            Kind::OutsideWindow => format!(
                "{} answered outside the campaign window (allowed {}), from {} to {}",
                plural(&n("refused"), "response was", "responses were"),
                n("limit"),
                n("earliest"),
                n("latest")
            ),
            Kind::Burst => format!(
                "{} responses in {} seconds with {} or more answers from one channel; the largest, {} at {}",
                n("responses"),
                n("seconds"),
                n("threshold"),
                n("largest"),
                n("at")
            ),
            Kind::RepeatedRespondent => format!(
                "{} more than {} times, {} responses in all",
                plural(
                    &n("respondents"),
                    "respondent answered",
                    "respondents answered"
                ),
                n("limit"),
                n("responses")
            ),
            Kind::CategorySurge => format!(
                "{} responses of {} came in the last {} hours against {} before (factor {})",
                n("late"),
                n("category"),
                n("window_hours"),
                n("before"),
                n("threshold")
            ),
        }
    }
}

/// `n` with the singular or the plural words after it.
fn plural(n: &str, one: &str, many: &str) -> String {
    format!("{n} {}", if n == "1" { one } else { many })
}

/// STRAIGHT_LINING: more than `share` of the unit's `received` responses
/// with a value are straight-lined, and at least `min_responses` are.
pub fn straight_lining(straight: i64, received: i64, s: &Screen) -> Option<Raised> {
    let over = s
        .straight_share
        .checked_mul(Decimal::from(received))
        .is_some_and(|most| Decimal::from(straight) > most);
    (straight >= s.straight_min_responses && over).then(|| Raised {
        kind: Kind::StraightLining,
        evidence: vec![
            Figure::Number("straight_lined", straight.into()),
            Figure::Number("responses", received.into()),
            Figure::Number(
                "share",
                decimal::round_half_away(Decimal::from(straight) / Decimal::from(received), 6),
            ),
            Figure::Number("threshold", s.straight_share),
        ],
        flagged: straight,
    })
}

/// OUTSIDE_WINDOW: more than `limit` responses refused as out of window;
/// `earliest` and `latest` are their answer times (RFC 3339).
pub fn outside_window(refused: i64, earliest: &str, latest: &str, s: &Screen) -> Option<Raised> {
    (refused > s.outside_window_limit).then(|| Raised {
        kind: Kind::OutsideWindow,
        evidence: vec![
            Figure::Number("refused", refused.into()),
            Figure::Number("limit", s.outside_window_limit.into()),
            Figure::Text("earliest", earliest.to_string()),
            Figure::Text("latest", latest.to_string()),
        ],
        flagged: refused,
    })
}

/// BURST: seconds with `burst_size` or more responses from one channel.
/// `seconds` are (responses in it, when as RFC 3339 and channel) for the
/// unit's crowded seconds, any size.
pub fn burst(seconds: &[(i64, String)], s: &Screen) -> Option<Raised> {
    let bursts: Vec<&(i64, String)> = seconds.iter().filter(|b| b.0 >= s.burst_size).collect();
    let largest = bursts
        .iter()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))?;
    let responses: i64 = bursts.iter().map(|b| b.0).sum();
    Some(Raised {
        kind: Kind::Burst,
        evidence: vec![
            Figure::Number("responses", responses.into()),
            Figure::Number("seconds", (bursts.len() as i64).into()),
            Figure::Number("threshold", s.burst_size.into()),
            Figure::Number("largest", largest.0.into()),
            Figure::Text("at", largest.1.clone()),
        ],
        flagged: responses,
    })
}

/// REPEATED_RESPONDENT: respondent keys with more than `respondent_limit`
/// responses; `counts` are the responses of each key with more than one.
pub fn repeated_respondent(counts: &[i64], s: &Screen) -> Option<Raised> {
    let over: Vec<i64> = counts
        .iter()
        .copied()
        .filter(|n| *n > s.respondent_limit)
        .collect();
    let responses: i64 = over.iter().sum();
    (!over.is_empty()).then(|| Raised {
        kind: Kind::RepeatedRespondent,
        evidence: vec![
            Figure::Number("respondents", (over.len() as i64).into()),
            Figure::Number("limit", s.respondent_limit.into()),
            Figure::Number("responses", responses.into()),
        ],
        flagged: responses,
    })
}

/// CATEGORY_SURGE of one category: `late` responses (received in the
/// closing window) at least `surge_factor` times the `before` ones, and at
/// least `surge_min_responses` of them.
pub fn category_surge(category: &str, late: i64, before: i64, s: &Screen) -> Option<Raised> {
    // A factor so large that the product overflows is never reached.
    let grew = s
        .surge_factor
        .checked_mul(Decimal::from(before))
        .is_some_and(|needed| Decimal::from(late) >= needed);
    (late >= s.surge_min_responses && grew).then(|| Raised {
        kind: Kind::CategorySurge,
        evidence: vec![
            Figure::Text("category", category.to_string()),
            Figure::Number("late", late.into()),
            Figure::Number("before", before.into()),
            Figure::Number("window_hours", Decimal::from(s.surge_window_ms / 3_600_000)),
            Figure::Number("threshold", s.surge_factor),
        ],
        flagged: late,
    })
}

/// One CATEGORY_SURGE flag per unit: the surging categories' figures are
/// summed, the first (by the scheme's order) named.
pub fn merge_surges(mut surges: Vec<Raised>) -> Option<Raised> {
    if surges.len() <= 1 {
        return surges.pop();
    }
    let flagged = surges.iter().map(|r| r.flagged).sum();
    let mut first = surges.remove(0);
    let names: Vec<String> = std::iter::once(&first)
        .chain(surges.iter())
        .map(|r| r.number("category"))
        .collect();
    let sum = |name| -> Decimal {
        std::iter::once(&first)
            .chain(surges.iter())
            .map(|r| r.number(name).parse::<Decimal>().unwrap_or_default())
            .sum()
    };
    let (late, before) = (sum("late"), sum("before"));
    for f in &mut first.evidence {
        match f {
            Figure::Text("category", t) => *t = names.join(", "),
            Figure::Number("late", v) => *v = late,
            Figure::Number("before", v) => *v = before,
            _ => {}
        }
    }
    first.flagged = flagged;
    Some(first)
}

#[cfg(test)]
#[path = "quality_tests.rs"]
mod tests;
