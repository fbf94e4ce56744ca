//! Everything a group's table is computed from, and its canonical encoding.
//!
//! A publication freezes these inputs as a UTF-8 text document: one record
//! per line, fields separated by tabs, free text percent-encoded, decimals
//! in canonical form (no trailing zeros), units sorted by name. The
//! publication digest is the SHA-256 of that document, so anyone holding
//! it can recompute the digest with `sha256sum` and the table with the
//! rules of DOMAIN.md §3 (`crate::rules`).
//!
//! ```text
//! jixiao.aggregator.inputs/1
//! group      cycles/2026/groups/districts
//! scheme     <indicator_max> <survey_max> <online_max> <mutual_max> <cap>
//! unit       units/huli <display name> <timeliness problems>
//! indicator  complete|incomplete
//! item       <code> <weight> <points> <flags>
//! review     <survey> <online> <mutual> <sample> <votes> <raters> <satisfaction> <flags>
//! category   <code> <responses> <mean>
//! inspection <deductions> <credits>
//! finding    <name> <deduction> <rectification> <category> <description>
//! contested  <name> <deduction> <rectification> <category> <description>
//! credit     <self-inspection item> <item type> <credit> <problem>
//! decision   <unit> <component> <flag> <reason>
//! ```
//!
//! A missing figure is `-`; a list is comma-separated, `-` when empty.

use std::{fmt::Write as _, str::FromStr};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use crate::rules::{self, Component, Row};

/// First line of the document; a new encoding gets a new number.
pub const FORMAT: &str = "jixiao.aggregator.inputs/2";
/// The first encoding, whose credit records name the item only; documents
/// stored in it still decode, re-encode and verify.
pub const FORMAT_1: &str = "jixiao.aggregator.inputs/1";

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
    /// e.g. MISSING_VALUE, MISSING_TARGET, LATE.
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
    pub indicator: Option<IndicatorPart>,
    pub review: Option<ReviewPart>,
    pub inspection: Option<InspectionPart>,
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

/// The flags that hold a publication back, and the component they concern.
/// Other flags (LATE, NO_SURVEY, ...) are shown but do not block: a missing
/// component already does.
pub fn blocking_component(flag: &str) -> Option<Component> {
    match flag {
        "MISSING_TARGET" => Some(Component::Indicator),
        "INSUFFICIENT_SAMPLE" | "MISSING_CATEGORY" => Some(Component::Survey),
        "CONTEST_PENDING" => Some(Component::Inspection),
        _ => None,
    }
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
    /// Every quality flag of the unit, in a stable order.
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
            push("CONTEST_PENDING");
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
        let review = u.review.clone().unwrap_or_default();
        rules::Inputs {
            indicator: match &u.indicator {
                Some(p) if p.complete || self.decided(&u.unit, Component::Indicator, "") => {
                    Some(p.total())
                }
                Some(_) => None,
                None => zero_if(Component::Indicator),
            },
            survey: review.survey.or_else(|| zero_if(Component::Survey)),
            online: review.online.or_else(|| zero_if(Component::Online)),
            mutual: review.mutual.or_else(|| zero_if(Component::Mutual)),
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

    /// The canonical document.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(256 + self.units.len() * 512);
        let mut line = |fields: &[&str]| {
            out.push_str(&fields.join("\t"));
            out.push('\n');
        };
        line(&[if self.format_1 { FORMAT_1 } else { FORMAT }]);
        line(&["group", &text(&self.group)]);
        let s = &self.scheme;
        line(&[
            "scheme",
            &dec(s.indicator_max),
            &dec(s.survey_max),
            &dec(s.online_max),
            &dec(s.mutual_max),
            &dec(s.cap),
        ]);
        for u in &self.units {
            line(&[
                "unit",
                &text(&u.unit),
                &text(&u.display_name),
                &list(&u.timeliness),
            ]);
            if let Some(i) = &u.indicator {
                line(&[
                    "indicator",
                    if i.complete { "complete" } else { "incomplete" },
                ]);
                for item in &i.items {
                    line(&[
                        "item",
                        &text(&item.code),
                        &dec(item.weight),
                        &dec(item.points),
                        &list(&item.flags),
                    ]);
                }
            }
            if let Some(r) = &u.review {
                line(&[
                    "review",
                    &opt(r.survey),
                    &opt(r.online),
                    &opt(r.mutual),
                    &r.sample.to_string(),
                    &r.votes.to_string(),
                    &r.raters.to_string(),
                    &opt(r.satisfaction),
                    &list(&r.flags),
                ]);
                for c in &r.categories {
                    line(&[
                        "category",
                        &text(&c.code),
                        &c.responses.to_string(),
                        &dec(c.mean),
                    ]);
                }
            }
            if let Some(i) = &u.inspection {
                line(&["inspection", &dec(i.deductions), &dec(i.credits)]);
                for (tag, findings) in [("finding", &i.findings), ("contested", &i.contested)] {
                    for f in findings {
                        line(&[
                            tag,
                            &text(&f.name),
                            &dec(f.deduction),
                            &text(&f.rectification),
                            &text(&f.category),
                            &text(&f.description),
                        ]);
                    }
                }
                for c in &i.credit_items {
                    if self.format_1 {
                        line(&["credit", &text(&c.name)]);
                    } else {
                        line(&[
                            "credit",
                            &text(&c.name),
                            &text(&c.item_type),
                            &dec(c.credit),
                            &text(&c.problem),
                        ]);
                    }
                }
            }
        }
        for d in &self.decisions {
            line(&[
                "decision",
                &text(&d.unit),
                d.component.name(),
                &or_dash(&text(&d.flag)),
                &text(&d.reason),
            ]);
        }
        out
    }

    /// Parses a canonical document.
    pub fn decode(doc: &str) -> Result<GroupInputs, String> {
        let mut lines = doc.split_terminator('\n').enumerate();
        let format_1 = match lines.next() {
            Some((_, FORMAT)) => false,
            Some((_, FORMAT_1)) => true,
            other => {
                return Err(format!(
                    "line 1: expected {FORMAT:?}, found {:?}",
                    other.map(|(_, l)| l).unwrap_or("")
                ));
            }
        };
        let mut g = GroupInputs {
            format_1,
            ..Default::default()
        };
        for (n, l) in lines {
            let at = |e: String| format!("line {}: {e}", n + 1);
            let f: Vec<&str> = l.split('\t').collect();
            let unit = g.units.last_mut();
            let need = |k: usize| {
                if f.len() == k {
                    Ok(())
                } else {
                    Err(at(format!("{} needs {} fields, has {}", f[0], k, f.len())))
                }
            };
            match f[0] {
                "group" => {
                    need(2)?;
                    g.group = untext(f[1]).map_err(at)?;
                }
                "scheme" => {
                    need(6)?;
                    g.scheme = SchemeFigures {
                        indicator_max: undec(f[1]).map_err(at)?,
                        survey_max: undec(f[2]).map_err(at)?,
                        online_max: undec(f[3]).map_err(at)?,
                        mutual_max: undec(f[4]).map_err(at)?,
                        cap: undec(f[5]).map_err(at)?,
                    };
                }
                "unit" => {
                    need(4)?;
                    g.units.push(UnitInputs {
                        unit: untext(f[1]).map_err(at)?,
                        display_name: untext(f[2]).map_err(at)?,
                        timeliness: unlist(f[3]),
                        ..Default::default()
                    });
                }
                "decision" => {
                    need(5)?;
                    g.decisions.push(Decision {
                        unit: untext(f[1]).map_err(at)?,
                        component: Component::parse(f[2])
                            .ok_or_else(|| at(format!("unknown component {:?}", f[2])))?,
                        flag: if f[3] == "-" {
                            String::new()
                        } else {
                            untext(f[3]).map_err(at)?
                        },
                        reason: untext(f[4]).map_err(at)?,
                    });
                }
                tag => {
                    let u = unit.ok_or_else(|| at(format!("{tag} before any unit")))?;
                    unit_record(u, &f, format_1).map_err(at)?;
                }
            }
        }
        Ok(g)
    }

    /// Lower-case hex SHA-256 of the canonical document.
    pub fn digest(&self) -> String {
        digest_of(&self.encode())
    }
}

/// Lower-case hex SHA-256 of a document.
pub fn digest_of(doc: &str) -> String {
    hex::encode(Sha256::digest(doc.as_bytes()))
}

/// Parses one record that belongs to the current unit.
fn unit_record(u: &mut UnitInputs, f: &[&str], format_1: bool) -> Result<(), String> {
    let need = |k: usize| {
        if f.len() == k {
            Ok(())
        } else {
            Err(format!("{} needs {} fields, has {}", f[0], k, f.len()))
        }
    };
    let missing = |what: &str| format!("{} before its {what} record", f[0]);
    match f[0] {
        "indicator" => {
            need(2)?;
            u.indicator = Some(IndicatorPart {
                complete: match f[1] {
                    "complete" => true,
                    "incomplete" => false,
                    other => return Err(format!("unknown indicator state {other:?}")),
                },
                items: Vec::new(),
            });
        }
        "item" => {
            need(5)?;
            let part = u.indicator.as_mut().ok_or_else(|| missing("indicator"))?;
            part.items.push(IndicatorItem {
                code: untext(f[1])?,
                weight: undec(f[2])?,
                points: undec(f[3])?,
                flags: unlist(f[4]),
            });
        }
        "review" => {
            need(9)?;
            u.review = Some(ReviewPart {
                survey: unopt(f[1])?,
                online: unopt(f[2])?,
                mutual: unopt(f[3])?,
                sample: int(f[4])?,
                votes: int(f[5])?,
                raters: int(f[6])?,
                satisfaction: unopt(f[7])?,
                flags: unlist(f[8]),
                categories: Vec::new(),
            });
        }
        "category" => {
            need(4)?;
            let part = u.review.as_mut().ok_or_else(|| missing("review"))?;
            part.categories.push(CategoryInput {
                code: untext(f[1])?,
                responses: int(f[2])?,
                mean: undec(f[3])?,
            });
        }
        "inspection" => {
            need(3)?;
            u.inspection = Some(InspectionPart {
                deductions: undec(f[1])?,
                credits: undec(f[2])?,
                ..Default::default()
            });
        }
        "finding" | "contested" => {
            need(6)?;
            let part = u.inspection.as_mut().ok_or_else(|| missing("inspection"))?;
            let finding = FindingInput {
                name: untext(f[1])?,
                deduction: undec(f[2])?,
                rectification: untext(f[3])?,
                category: untext(f[4])?,
                description: untext(f[5])?,
            };
            if f[0] == "finding" {
                part.findings.push(finding);
            } else {
                part.contested.push(finding);
            }
        }
        "credit" if format_1 => {
            need(2)?;
            let part = u.inspection.as_mut().ok_or_else(|| missing("inspection"))?;
            part.credit_items.push(CreditItem {
                name: untext(f[1])?,
                ..Default::default()
            });
        }
        "credit" => {
            need(5)?;
            let part = u.inspection.as_mut().ok_or_else(|| missing("inspection"))?;
            part.credit_items.push(CreditItem {
                name: untext(f[1])?,
                item_type: untext(f[2])?,
                credit: undec(f[3])?,
                problem: untext(f[4])?,
            });
        }
        other => return Err(format!("unknown record {other:?}")),
    }
    Ok(())
}

/// Characters escaped in free text: controls (tab, newline), `%` and `,`
/// (the list separator).
const ESCAPED: &AsciiSet = &CONTROLS.add(b'%').add(b',');

fn text(s: &str) -> String {
    utf8_percent_encode(s, ESCAPED).to_string()
}

fn untext(s: &str) -> Result<String, String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|e| format!("bad text {s:?}: {e}"))
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

/// The canonical decimal: no trailing zeros, no exponent.
fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

fn undec(s: &str) -> Result<Decimal, String> {
    Decimal::from_str(s).map_err(|e| format!("bad decimal {s:?}: {e}"))
}

fn opt(d: Option<Decimal>) -> String {
    d.map(dec).unwrap_or_else(|| "-".into())
}

fn unopt(s: &str) -> Result<Option<Decimal>, String> {
    if s == "-" {
        Ok(None)
    } else {
        undec(s).map(Some)
    }
}

fn int(s: &str) -> Result<i64, String> {
    s.parse().map_err(|e| format!("bad integer {s:?}: {e}"))
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        let mut out = String::new();
        for (i, s) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{}", text(s));
        }
        out
    }
}

fn unlist(s: &str) -> Vec<String> {
    if s == "-" {
        Vec::new()
    } else {
        s.split(',')
            .map(|p| untext(p).unwrap_or_else(|_| p.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn unit(name: &str, indicator: &str, review: [&str; 3], ded: &str, cred: &str) -> UnitInputs {
        UnitInputs {
            unit: format!("units/{name}"),
            display_name: format!("{name}\t区, \"x\" 100%"),
            timeliness: vec![],
            indicator: Some(IndicatorPart {
                complete: true,
                items: vec![IndicatorItem {
                    code: "GDP".into(),
                    weight: d("60"),
                    points: d(indicator),
                    flags: vec![],
                }],
            }),
            review: Some(ReviewPart {
                survey: Some(d(review[0])),
                online: Some(d(review[1])),
                mutual: Some(d(review[2])),
                sample: 100,
                votes: 10,
                raters: 5,
                satisfaction: Some(d("0.85")),
                flags: vec![],
                categories: vec![CategoryInput {
                    code: "residents".into(),
                    responses: 100,
                    mean: d("0.850"),
                }],
            }),
            inspection: Some(InspectionPart {
                deductions: d(ded),
                credits: d(cred),
                findings: vec![FindingInput {
                    name: "cycles/2026/inspections/i1/findings/f1".into(),
                    deduction: d(ded),
                    rectification: "REQUIRED".into(),
                    category: "absence".into(),
                    description: "desk empty,\nphone unanswered".into(),
                }],
                contested: vec![],
                credit_items: vec![CreditItem {
                    name: "cycles/2026/selfInspectionItems/s1".into(),
                    item_type: "problem_found".into(),
                    credit: d("0.5"),
                    problem: "迟到, 早退".into(),
                }],
            }),
        }
    }

    fn group() -> GroupInputs {
        GroupInputs {
            group: "cycles/2026/groups/districts".into(),
            scheme: SchemeFigures::default(),
            units: vec![
                unit("a", "50.125", ["25.5", "4.1", "4.75"], "4.0", "5.0"),
                unit("b", "49.9", ["24.0", "4.5", "4.6"], "7.5", "1.0"),
            ],
            decisions: vec![],
            format_1: false,
        }
    }

    #[test]
    fn the_document_round_trips_and_is_canonical() {
        let g = group();
        let doc = g.encode();
        let back = GroupInputs::decode(&doc).unwrap();
        // Decimals come back normalised (0.850 → 0.85), so compare documents.
        assert_eq!(back.encode(), doc);
        assert_eq!(back.units[0].display_name, g.units[0].display_name);
        assert_eq!(
            back.units[0].inspection.as_ref().unwrap().findings[0].description,
            "desk empty,\nphone unanswered"
        );
        assert_eq!(back.digest(), g.digest());
        assert_eq!(g.digest().len(), 64);
    }

    #[test]
    fn the_table_follows_the_worked_examples() {
        let t = group().table();
        assert_eq!(t[0].row.composite.unwrap().to_string(), "84.475");
        assert_eq!(t[1].row.composite.unwrap().to_string(), "78.000");
        assert_eq!((t[0].row.rank, t[1].row.rank), (1, 2));
    }

    #[test]
    fn any_change_of_an_input_changes_the_digest() {
        let base = group().digest();
        let mut g = group();
        g.units[1].review.as_mut().unwrap().categories[0].responses += 1;
        assert_ne!(g.digest(), base);
        let mut g = group();
        g.scheme.cap = d("4");
        assert_ne!(g.digest(), base);
    }

    #[test]
    fn missing_components_and_blocking_flags_are_open_until_decided() {
        let mut g = group();
        g.units[0].review.as_mut().unwrap().survey = None;
        g.units[1].review.as_mut().unwrap().flags = vec!["INSUFFICIENT_SAMPLE".into()];
        let open = g.open_items();
        assert_eq!(open.len(), 2);
        assert_eq!(open[0].kind(), "MISSING_COMPONENT");
        assert_eq!(open[1].flag, "INSUFFICIENT_SAMPLE");
        assert_eq!(g.table()[0].row.composite, None);
        g.decisions = vec![
            Decision {
                unit: "units/a".into(),
                component: Component::Survey,
                flag: String::new(),
                reason: "no survey ran".into(),
            },
            Decision {
                unit: "units/b".into(),
                component: Component::Survey,
                flag: "INSUFFICIENT_SAMPLE".into(),
                reason: "small unit".into(),
            },
        ];
        assert!(g.open_items().is_empty());
        // The explicit zero: 50.125 + 0 + 4.1 + 4.75 + 0.
        assert_eq!(g.table()[0].row.composite.unwrap().to_string(), "58.975");
        let doc = g.encode();
        assert_eq!(GroupInputs::decode(&doc).unwrap().encode(), doc);
    }

    #[test]
    fn a_malformed_document_is_refused_with_its_line() {
        let doc = group().encode().replace("review\t25.5", "review\tabc");
        let e = GroupInputs::decode(&doc).unwrap_err();
        assert!(e.starts_with("line "), "{e}");
        assert!(GroupInputs::decode("other/1\n").is_err());
    }

    #[test]
    fn first_format_documents_still_decode_and_reencode_the_same() {
        let mut g = group();
        g.format_1 = true;
        for u in &mut g.units {
            for i in u.inspection.iter_mut() {
                for c in &mut i.credit_items {
                    *c = CreditItem {
                        name: c.name.clone(),
                        ..Default::default()
                    };
                }
            }
        }
        let doc = g.encode();
        assert!(doc.starts_with("jixiao.aggregator.inputs/1\n"));
        assert!(doc.contains("credit\tcycles/2026/selfInspectionItems/s1\n"));
        let back = GroupInputs::decode(&doc).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.encode(), doc);
        // The current format carries the item's type, credit and problem.
        let now = group().encode();
        assert!(now.starts_with("jixiao.aggregator.inputs/2\n"));
        assert!(now.contains("credit\tcycles/2026/selfInspectionItems/s1\tproblem_found\t0.5\t"));
    }

    // Verification decodes documents read back from storage, where anyone
    // with database access could have changed them: any text must come
    // back as a clean error, never a panic.
    fn record() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let tag = prop::sample::select(vec![
            "group",
            "scheme",
            "unit",
            "indicator",
            "item",
            "review",
            "category",
            "inspection",
            "finding",
            "contested",
            "credit",
            "decision",
            "bogus",
        ]);
        (tag, prop::collection::vec("[-0-9a-z.%,]{0,6}", 0..10))
            .prop_map(|(tag, fields)| format!("{tag}\t{}", fields.join("\t")))
    }

    proptest::proptest! {
        #[test]
        fn any_document_decodes_or_fails_cleanly(
            header in proptest::bool::ANY,
            records in proptest::collection::vec(record(), 0..30),
            noise in "\\PC{0,40}",
        ) {
            let mut doc = if header { format!("{FORMAT}\n") } else { String::new() };
            for r in &records {
                doc.push_str(r);
                doc.push('\n');
            }
            doc.push_str(&noise);
            let _ = GroupInputs::decode(&doc);
        }
    }
}
