//! Everything a group's table is computed from: the figures of each unit
//! as the component services computed them, the office's decisions, the
//! table they give and what still stands between it and its publication.
//! A publication freezes these inputs in the canonical text document of
//! [`document`], whose SHA-256 is the publication digest.
//! `GetPublicationInputs` serves that document; `docs/PUBLICATION-FORMAT.md`
//! specifies it for callers and says how every cell of the table follows
//! from it (a test checks its worked example against this code).

pub mod document;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use rust_decimal::Decimal;

use crate::rules::{self, Component, Row};

pub use document::{FORMAT, FORMAT_1, digest_of};

/// A group's scheme, as far as the table depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeFigures {
    pub indicator_max: Decimal,
    pub survey_max: Decimal,
    pub online_max: Decimal,
    pub mutual_max: Decimal,
    pub cap: Decimal,
}

impl Default for SchemeFigures {
    /// The defaults of DOMAIN.md §3.
    fn default() -> Self {
        SchemeFigures {
            indicator_max: Decimal::from(60),
            survey_max: Decimal::from(30),
            online_max: Decimal::from(5),
            mutual_max: Decimal::from(5),
            cap: Decimal::from(5),
        }
    }
}

/// One indicator's points for one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorItem {
    pub code: String,
    pub weight: Decimal,
    pub points: Decimal,
    /// e.g. MISSING_VALUE, MISSING_TARGET, LATE, DATA_QUALITY.
    pub flags: Vec<String>,
}

/// A unit's indicator component as the indicators service computed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorPart {
    /// Every final value and assessed score is present.
    pub complete: bool,
    pub items: Vec<IndicatorItem>,
}

impl IndicatorPart {
    /// The indicator score: the sum of the points (missing values at 0).
    pub fn total(&self) -> Decimal {
        self.items
            .iter()
            .fold(Decimal::ZERO, |a, i| a.saturating_add(i.points))
    }
}

/// Survey figures of one respondent category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryInput {
    pub code: String,
    pub responses: i64,
    pub mean: Decimal,
}

/// A unit's review components as the reviews service computed them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReviewPart {
    pub survey: Option<Decimal>,
    pub online: Option<Decimal>,
    pub mutual: Option<Decimal>,
    pub sample: i64,
    pub votes: i64,
    pub raters: i64,
    pub satisfaction: Option<Decimal>,
    /// e.g. INSUFFICIENT_SAMPLE, MISSING_CATEGORY, NO_VOTES.
    pub flags: Vec<String>,
    pub categories: Vec<CategoryInput>,
}

/// A finding as it enters the feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingInput {
    pub name: String,
    pub deduction: Decimal,
    /// Rectification state, e.g. REQUIRED, ACCEPTED; `-` when none is required.
    pub rectification: String,
    pub category: String,
    pub description: String,
}

impl FindingInput {
    /// Whether the unit still has to rectify it.
    pub fn to_rectify(&self) -> bool {
        matches!(self.rectification.as_str(), "REQUIRED" | "SENT_BACK")
    }
}

/// A unit's inspection figures as the inspections service computed them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InspectionPart {
    pub deductions: Decimal,
    pub credits: Decimal,
    /// Counting findings (confirmed or upheld).
    pub findings: Vec<FindingInput>,
    /// Contested findings awaiting the office's decision.
    pub contested: Vec<FindingInput>,
    /// Verified self-inspection items.
    pub credit_items: Vec<CreditItem>,
}

/// A verified self-inspection item (only `name` in a /1 document).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreditItem {
    pub name: String,
    pub item_type: String,
    pub credit: Decimal,
    pub problem: String,
}

/// Everything known of one unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitInputs {
    /// `units/{unit}`.
    pub unit: String,
    pub display_name: String,
    /// e.g. PLAN_LATE, PLAN_MISSING.
    pub timeliness: Vec<String>,
    /// Shared with the copies the parts came from: a refresh of a large
    /// group joins them into new inputs without copying each unit's.
    pub indicator: Option<Arc<IndicatorPart>>,
    pub review: Option<Arc<ReviewPart>>,
    pub inspection: Option<Arc<InspectionPart>>,
}

/// An explicit office decision on a missing component (`flag` empty: an
/// explicit zero) or on a quality flag (the figure is accepted as it is).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Decision {
    pub unit: String,
    pub component: Component,
    pub flag: String,
    pub reason: String,
}

/// Something that stands between a group and its publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenItem {
    pub unit: String,
    pub component: Component,
    /// Empty for a missing component.
    pub flag: String,
}

impl OpenItem {
    pub fn kind(&self) -> &'static str {
        if self.flag.is_empty() {
            "MISSING_COMPONENT"
        } else {
            "UNRESOLVED_FLAG"
        }
    }

    pub fn describe(&self) -> String {
        if self.flag.is_empty() {
            format!(
                "{} component missing; record it or decide an explicit zero",
                self.component.name()
            )
        } else {
            format!(
                "{} flag {} unresolved; resolve it or record a decision",
                self.component.name(),
                self.flag
            )
        }
    }
}

/// A flag that holds a publication back until it goes away or the office
/// records a decision for it. Other flags (LATE, NO_SURVEY, ...) are shown
/// but do not block: a missing component already does. The contract lists
/// them (aggregator.proto, "Flags that block publication"; checked by a
/// test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockingFlag {
    /// A final value without an approved target (indicators' ScoreFlag).
    MissingTarget,
    /// An unresolved data-quality flag of the blocking severity on a value
    /// (indicators' ScoreFlag).
    DataQuality,
    /// A survey sample below the minimum, not accepted (reviews' ReviewFlag).
    InsufficientSample,
    /// A respondent category without responses (reviews' ReviewFlag).
    MissingCategory,
    /// An unresolved survey data-quality flag of the blocking severity
    /// (reviews' ReviewFlag).
    SurveyQuality,
    /// A contested finding the office has not decided.
    ContestPending,
}

impl BlockingFlag {
    pub const ALL: [BlockingFlag; 6] = [
        BlockingFlag::MissingTarget,
        BlockingFlag::DataQuality,
        BlockingFlag::InsufficientSample,
        BlockingFlag::MissingCategory,
        BlockingFlag::SurveyQuality,
        BlockingFlag::ContestPending,
    ];

    /// The flag as shown in `StandingRow.flags` and named in decisions.
    pub const fn as_str(self) -> &'static str {
        match self {
            BlockingFlag::MissingTarget => "MISSING_TARGET",
            BlockingFlag::DataQuality => "DATA_QUALITY",
            BlockingFlag::InsufficientSample => "INSUFFICIENT_SAMPLE",
            BlockingFlag::MissingCategory => "MISSING_CATEGORY",
            BlockingFlag::SurveyQuality => "SURVEY_QUALITY",
            BlockingFlag::ContestPending => "CONTEST_PENDING",
        }
    }

    /// The component a decision on the flag names.
    pub const fn component(self) -> Component {
        match self {
            BlockingFlag::MissingTarget | BlockingFlag::DataQuality => Component::Indicator,
            BlockingFlag::InsufficientSample
            | BlockingFlag::MissingCategory
            | BlockingFlag::SurveyQuality => Component::Survey,
            BlockingFlag::ContestPending => Component::Inspection,
        }
    }

    pub fn parse(flag: &str) -> Option<BlockingFlag> {
        BlockingFlag::ALL.into_iter().find(|f| f.as_str() == flag)
    }
}

/// The component a blocking flag concerns; None for a flag that does not
/// block.
pub fn blocking_component(flag: &str) -> Option<Component> {
    BlockingFlag::parse(flag).map(BlockingFlag::component)
}

/// A row of the table with the unit it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRow {
    pub unit: String,
    pub display_name: String,
    pub row: Row,
    pub flags: Vec<String>,
}

/// All inputs of one group's table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupInputs {
    /// `cycles/{cycle}/groups/{group}`.
    pub group: String,
    pub scheme: SchemeFigures,
    /// Sorted by unit.
    pub units: Vec<UnitInputs>,
    /// Sorted.
    pub decisions: Vec<Decision>,
    /// Decoded from a [`FORMAT_1`] document, and encoded as one.
    pub format_1: bool,
}

impl UnitInputs {
    /// Every quality flag of the unit, each once where it first occurs: the
    /// items' flags in item order, then the review's as the reviews service
    /// lists them (MISSING_CATEGORY before INSUFFICIENT_SAMPLE), then
    /// CONTEST_PENDING. The contract (aggregator.proto, `StandingRow.flags`)
    /// states this order; publication digests depend on it.
    pub fn flags(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |f: &str| {
            if !out.iter().any(|o| o == f) {
                out.push(f.to_string());
            }
        };
        if let Some(i) = &self.indicator {
            for item in &i.items {
                item.flags.iter().for_each(|f| push(f));
            }
        }
        if let Some(r) = &self.review {
            r.flags.iter().for_each(|f| push(f));
        }
        if self
            .inspection
            .as_ref()
            .is_some_and(|i| !i.contested.is_empty())
        {
            push(BlockingFlag::ContestPending.as_str());
        }
        out
    }
}

impl GroupInputs {
    fn decided(&self, unit: &str, component: Component, flag: &str) -> bool {
        self.decisions
            .iter()
            .any(|d| d.unit == unit && d.component == component && d.flag == flag)
    }

    /// The figures the rules see for one unit: a missing component stays
    /// missing unless the office decided an explicit zero (for the
    /// indicator score: the points earned, missing values at zero).
    fn rule_inputs(&self, u: &UnitInputs) -> rules::Inputs {
        let zero_if = |c| self.decided(&u.unit, c, "").then_some(Decimal::ZERO);
        let review =
            |figure: fn(&ReviewPart) -> Option<Decimal>| u.review.as_ref().and_then(|r| figure(r));
        rules::Inputs {
            indicator: match &u.indicator {
                Some(p) if p.complete || self.decided(&u.unit, Component::Indicator, "") => {
                    Some(p.total())
                }
                Some(_) => None,
                None => zero_if(Component::Indicator),
            },
            survey: review(|r| r.survey).or_else(|| zero_if(Component::Survey)),
            online: review(|r| r.online).or_else(|| zero_if(Component::Online)),
            mutual: review(|r| r.mutual).or_else(|| zero_if(Component::Mutual)),
            inspection: match &u.inspection {
                Some(i) => Some((i.deductions, i.credits)),
                None => zero_if(Component::Inspection).map(|z| (z, z)),
            },
        }
    }

    /// The table of DOMAIN.md §3: one ranked row per unit, in unit order.
    pub fn table(&self) -> Vec<UnitRow> {
        let mut rows: Vec<Row> = self
            .units
            .iter()
            .map(|u| rules::row(&self.rule_inputs(u), self.scheme.cap))
            .collect();
        rules::rank(&mut rows);
        self.units
            .iter()
            .zip(rows)
            .map(|(u, row)| UnitRow {
                unit: u.unit.clone(),
                display_name: u.display_name.clone(),
                row,
                flags: u.flags(),
            })
            .collect()
    }

    /// Missing components and blocking flags without a decision.
    pub fn open_items(&self) -> Vec<OpenItem> {
        let table = self.table();
        let mut out = Vec::new();
        for (u, r) in self.units.iter().zip(&table) {
            for c in &r.row.missing {
                out.push(OpenItem {
                    unit: u.unit.clone(),
                    component: *c,
                    flag: String::new(),
                });
            }
            for f in &r.flags {
                if let Some(c) = blocking_component(f)
                    && !self.decided(&u.unit, c, f)
                {
                    out.push(OpenItem {
                        unit: u.unit.clone(),
                        component: c,
                        flag: f.clone(),
                    });
                }
            }
        }
        out
    }
}
