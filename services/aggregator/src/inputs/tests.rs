use std::str::FromStr;

use super::*;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn unit(name: &str, indicator: &str, review: [&str; 3], ded: &str, cred: &str) -> UnitInputs {
    UnitInputs {
        unit: format!("units/{name}"),
        display_name: format!("{name}\t区, \"x\" 100%"),
        timeliness: vec![],
        indicator: Some(Arc::new(IndicatorPart {
            complete: true,
            items: vec![IndicatorItem {
                code: "GDP".into(),
                weight: d("60"),
                points: d(indicator),
                flags: vec![],
            }],
        })),
        review: Some(Arc::new(ReviewPart {
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
        })),
        inspection: Some(Arc::new(InspectionPart {
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
        })),
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

/// The fenced block of docs/PUBLICATION-FORMAT.md between its markers.
fn specified(what: &str) -> String {
    let spec = include_str!("../../../../docs/PUBLICATION-FORMAT.md");
    let begin = format!("<!-- example {what}: begin -->\n```text\n");
    let start = spec.find(&begin).expect("begin marker") + begin.len();
    let end = spec[start..].find("```\n<!-- example").expect("end marker");
    spec[start..start + end].to_string()
}

#[test]
fn the_specified_example_is_what_the_code_computes() {
    let doc = specified("document");
    let g = GroupInputs::decode(&doc).unwrap();
    assert_eq!(g.encode(), doc, "the example is canonical");
    assert_eq!(
        g.digest(),
        "e0b84f15e7f1a0fcfcb098a97af324bc26775fa88ad6805ffc110be448b88510"
    );
    assert!(g.open_items().is_empty());
    let text = |d: Option<Decimal>| d.map_or("-".to_string(), |d| d.to_string());
    let mut rows: Vec<String> = g
        .table()
        .iter()
        .map(|u| {
            let r = &u.row;
            let flags = if u.flags.is_empty() {
                "-".into()
            } else {
                u.flags.join(",")
            };
            format!(
                "{} {} {} {} {} {} {} {} {} {} {} {flags}\n",
                r.rank,
                u.unit,
                text(r.indicator),
                text(r.survey),
                text(r.online),
                text(r.mutual),
                text(r.review_total),
                text(r.deductions),
                text(r.credits),
                text(r.adjustment),
                text(r.composite),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(rows.concat(), specified("table"));
}

#[test]
fn any_change_of_an_input_changes_the_digest() {
    let base = group().digest();
    let mut g = group();
    Arc::make_mut(g.units[1].review.as_mut().unwrap()).categories[0].responses += 1;
    assert_ne!(g.digest(), base);
    let mut g = group();
    g.scheme.cap = d("4");
    assert_ne!(g.digest(), base);
}

#[test]
fn missing_components_and_blocking_flags_are_open_until_decided() {
    let mut g = group();
    Arc::make_mut(g.units[0].review.as_mut().unwrap()).survey = None;
    Arc::make_mut(g.units[1].review.as_mut().unwrap()).flags = vec!["INSUFFICIENT_SAMPLE".into()];
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

/// `StandingRow.flags` keeps the order the inputs give (aggregator.proto;
/// docs/PUBLICATION-FORMAT.md §3.2): item by item, then the review's flags
/// as the reviews service lists them, then CONTEST_PENDING, each once.
#[test]
fn flags_keep_the_order_of_the_inputs() {
    let mut u = group().units.remove(0);
    let items = &mut Arc::make_mut(u.indicator.as_mut().unwrap()).items;
    items[0].flags = vec!["LATE".into()];
    let mut second = items[0].clone();
    second.code = "TAX".into();
    second.flags = vec!["MISSING_TARGET".into(), "LATE".into()];
    items.push(second);
    Arc::make_mut(u.review.as_mut().unwrap()).flags = vec![
        "MISSING_CATEGORY".into(),
        "INSUFFICIENT_SAMPLE".into(),
        "NO_VOTES".into(),
    ];
    let inspection = Arc::make_mut(u.inspection.as_mut().unwrap());
    inspection.contested = inspection.findings.clone();
    assert_eq!(
        u.flags(),
        [
            "LATE",
            "MISSING_TARGET",
            "MISSING_CATEGORY",
            "INSUFFICIENT_SAMPLE",
            "NO_VOTES",
            "CONTEST_PENDING"
        ]
    );
    let mut g = group();
    g.units[0] = u;
    let open: Vec<_> = g
        .open_items()
        .into_iter()
        .filter(|o| o.unit == "units/a")
        .map(|o| o.flag)
        .collect();
    assert_eq!(
        open,
        [
            "MISSING_TARGET",
            "MISSING_CATEGORY",
            "INSUFFICIENT_SAMPLE",
            "CONTEST_PENDING"
        ]
    );
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
        for i in u.inspection.iter_mut().map(Arc::make_mut) {
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
