//! The canonical encoding of a group's inputs.
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
//!
//! The specification callers implement, field by field with the escaping,
//! number formatting, ordering and the table's arithmetic, is
//! `docs/PUBLICATION-FORMAT.md`; callers fetch a publication's document
//! with `GetPublicationInputs`. A change here is a new [`FORMAT`] and a
//! change of that document.

use std::{fmt::Write as _, str::FromStr, sync::Arc};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::{
    CategoryInput, CreditItem, Decision, FindingInput, GroupInputs, IndicatorItem, IndicatorPart,
    InspectionPart, ReviewPart, SchemeFigures, UnitInputs,
};
use crate::rules::Component;

/// First line of the document; a new encoding gets a new number.
pub const FORMAT: &str = "jixiao.aggregator.inputs/2";
/// The first encoding, whose credit records name the item only; documents
/// stored in it still decode, re-encode and verify.
pub const FORMAT_1: &str = "jixiao.aggregator.inputs/1";

impl GroupInputs {
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
/// The part a detail record (an item, a category, a finding) adds to, once
/// its part's own record has opened it.
fn opened<T: Clone>(part: &mut Option<Arc<T>>) -> Option<&mut T> {
    part.as_mut().map(Arc::make_mut)
}

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
            u.indicator = Some(Arc::new(IndicatorPart {
                complete: match f[1] {
                    "complete" => true,
                    "incomplete" => false,
                    other => return Err(format!("unknown indicator state {other:?}")),
                },
                items: Vec::new(),
            }));
        }
        "item" => {
            need(5)?;
            let part = opened(&mut u.indicator).ok_or_else(|| missing("indicator"))?;
            part.items.push(IndicatorItem {
                code: untext(f[1])?,
                weight: undec(f[2])?,
                points: undec(f[3])?,
                flags: unlist(f[4]),
            });
        }
        "review" => {
            need(9)?;
            u.review = Some(Arc::new(ReviewPart {
                survey: unopt(f[1])?,
                online: unopt(f[2])?,
                mutual: unopt(f[3])?,
                sample: int(f[4])?,
                votes: int(f[5])?,
                raters: int(f[6])?,
                satisfaction: unopt(f[7])?,
                flags: unlist(f[8]),
                categories: Vec::new(),
            }));
        }
        "category" => {
            need(4)?;
            let part = opened(&mut u.review).ok_or_else(|| missing("review"))?;
            part.categories.push(CategoryInput {
                code: untext(f[1])?,
                responses: int(f[2])?,
                mean: undec(f[3])?,
            });
        }
        "inspection" => {
            need(3)?;
            u.inspection = Some(Arc::new(InspectionPart {
                deductions: undec(f[1])?,
                credits: undec(f[2])?,
                ..Default::default()
            }));
        }
        "finding" | "contested" => {
            need(6)?;
            let part = opened(&mut u.inspection).ok_or_else(|| missing("inspection"))?;
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
            let part = opened(&mut u.inspection).ok_or_else(|| missing("inspection"))?;
            part.credit_items.push(CreditItem {
                name: untext(f[1])?,
                ..Default::default()
            });
        }
        "credit" => {
            need(5)?;
            let part = opened(&mut u.inspection).ok_or_else(|| missing("inspection"))?;
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
