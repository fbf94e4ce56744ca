//! Publications anyone can re-verify: `GetPublicationInputs` serves the
//! document a publication's digest covers to whoever reads the publication
//! (and to no one else), and `tests/python/verify_publication.py`, written
//! from docs/PUBLICATION-FORMAT.md alone, recomputes the digest and every
//! cell of every demo publication, and names the cell of a document altered
//! by one figure.

use std::{path::PathBuf, process::Command, str::FromStr};

use jixiao::{Target, demo};
use jixiao_aggregator::inputs::{FORMAT, digest_of};
use jixiao_proto::{
    aggregator::{
        Component, GetPublicationInputsRequest, PublicationDecision, PublishResultsRequest,
        aggregator_service_client::AggregatorServiceClient,
    },
    plans::Phase,
};
use jixiao_runtime::{Role, TokenKey};
use jixiao_testkit::{Backend, Options, Suite, on_both_databases};
use jixiao_tests::{complete_indicators, executing_year, reason, set_phase};
use rust_decimal::Decimal;
use tonic::Code;
use tonic_types::StatusExt;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/verify_publication.py")
}

/// Runs the verifier; its exit code and what it printed.
fn verifier(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("python3")
        .arg(script())
        .args(args)
        .output()
        .expect("python3 runs (install tests/python/requirements.txt)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The file name `--save` gives a publication's downloads.
fn saved(dir: &tempfile::TempDir, publication: &str, ext: &str) -> PathBuf {
    dir.path()
        .join(format!("{}.{ext}", publication.replace('/', "_")))
}

/// Adds 0.001 to the points of the first indicator item of `unit`.
fn alter_first_item(doc: &str, unit: &str) -> String {
    let mut in_unit = false;
    let mut done = false;
    let mut out = String::new();
    for line in doc.split_terminator('\n') {
        let mut f: Vec<String> = line.split('\t').map(str::to_string).collect();
        if f[0] == "unit" {
            in_unit = f[1] == unit;
        } else if in_unit && !done && f[0] == "item" {
            let points = Decimal::from_str(&f[3]).unwrap() + Decimal::new(1, 3);
            f[3] = points.normalize().to_string();
            done = true;
        }
        out.push_str(&f.join("\t"));
        out.push('\n');
    }
    assert!(done, "{unit} has an item");
    out
}

fn plus_thousandth(published: &str) -> String {
    (Decimal::from_str(published).unwrap() + Decimal::new(1, 3)).to_string()
}

async fn every_demo_publication_reverifies_and_an_altered_document_fails(backend: Backend) {
    let key = TokenKey::from_hex(&TokenKey::generate_hex()).unwrap();
    let suite = Suite::start_with(
        backend,
        Options {
            targets: Target::ALL.to_vec(),
            key: Some(key.clone()),
            peers: Vec::new(),
            tls: None,
            otlp_endpoint: None,
        },
    )
    .await;
    let published = demo::load(&suite.url(), &key, |_| {})
        .await
        .expect("the demo year loads and publishes");
    assert_eq!(published.len(), 2);

    // A dashboard's token is enough to re-verify everything published.
    let addr = suite.addr.to_string();
    let viewer = suite.token("wall", &[Role::Viewer], None);
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().to_str().unwrap();
    let (code, out) = verifier(&[
        "--addr", &addr, "--token", &viewer, "--all", "2026", "--save", save,
    ]);
    assert_eq!(code, Some(0), "{out}");
    for p in &published {
        let name = &p.publication.name;
        assert!(out.contains(&format!("{name}: verified (")), "{out}");
    }
    assert!(out.contains("verified 2 of 2 publications"), "{out}");

    // Offline, the saved document and table verify as well.
    let districts = &published[0].publication;
    assert!(
        districts.name.contains("/groups/districts/"),
        "{}",
        districts.name
    );
    let doc_file = saved(&dir, &districts.name, "inputs");
    let table_file = saved(&dir, &districts.name, "publication.json");
    let (code, out) = verifier(&[
        "--document",
        doc_file.to_str().unwrap(),
        "--publication",
        table_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("{}: verified (", districts.name)),
        "{out}"
    );

    // One indicator point of huli altered by 0.001: the digest no longer
    // matches, and the verifier names the cells that move and why.
    let doc = std::fs::read_to_string(&doc_file).unwrap();
    let altered = dir.path().join("altered.inputs");
    std::fs::write(&altered, alter_first_item(&doc, "units/huli")).unwrap();
    let (code, out) = verifier(&[
        "--document",
        altered.to_str().unwrap(),
        "--publication",
        table_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("{}: MISMATCH", districts.name)),
        "{out}"
    );
    assert!(out.contains("digest: the document hashes to "), "{out}");
    let huli = districts
        .rows
        .iter()
        .find(|r| r.unit == "units/huli")
        .unwrap();
    let cell = |d: &Option<jixiao_proto::Decimal>| d.as_ref().unwrap().value.clone();
    for (name, was) in [
        ("indicator", cell(&huli.indicator)),
        ("composite", cell(&huli.composite)),
    ] {
        let expected = format!(
            "units/huli {name}: document gives {}, published {was} (",
            plus_thousandth(&was)
        );
        assert!(out.contains(&expected), "{expected:?} in\n{out}");
    }
    // Nothing else moved: huli keeps its rank, the other units verify.
    assert_eq!(out.matches("units/").count(), 2, "{out}");
    suite.stop().await;
}

/// The components a refused publication lists as open, turned into the
/// decisions that resolve them (an explicit zero, or the flag accepted).
fn decisions_for(err: &tonic::Status) -> Vec<PublicationDecision> {
    let components = ["INDICATOR", "SURVEY", "ONLINE", "MUTUAL", "INSPECTION"];
    let failure = err
        .get_error_details()
        .precondition_failure()
        .expect("the open items")
        .clone();
    failure
        .violations
        .iter()
        .map(|v| {
            let words: Vec<&str> = v.description.split_whitespace().collect();
            let component = components
                .iter()
                .find(|c| words.contains(c))
                .and_then(|c| Component::from_str_name(&format!("COMPONENT_{c}")))
                .unwrap_or_else(|| panic!("a component in {v:?}"));
            let flag = if v.r#type == "UNRESOLVED_FLAG" {
                let at = words.iter().position(|w| *w == "flag").expect("flag") + 1;
                words[at].to_string()
            } else {
                String::new()
            };
            PublicationDecision {
                unit: v.subject.clone(),
                component: component as i32,
                flag,
                reason: "no figure this year; the office decides".into(),
            }
        })
        .collect()
}

async fn publication_inputs_are_served_to_whoever_reads_the_publication(backend: Backend) {
    let suite = Suite::start(backend).await;
    executing_year(&suite).await;
    complete_indicators(&suite).await;
    set_phase(&suite, "2026", Phase::Assessment).await;
    let group = "cycles/2026/groups/districts";
    let mut office = AggregatorServiceClient::new(suite.office());
    // No reviews were run: every review component is open until the office
    // decides an explicit zero for it.
    let err = office
        .publish_results(PublishResultsRequest {
            group: group.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "INCOMPLETE", "{err:?}");
    let decisions = decisions_for(&err);
    assert!(!decisions.is_empty());
    let publication = office
        .publish_results(PublishResultsRequest {
            group: group.into(),
            decisions,
            request_id: "publish-1".into(),
            ..Default::default()
        })
        .await
        .expect("published with decisions")
        .into_inner();
    assert_eq!(publication.name, format!("{group}/publications/1"));

    // The document the digest covers, with its format; "latest" resolves.
    let inputs = office
        .get_publication_inputs(GetPublicationInputsRequest {
            name: format!("{group}/publications/latest"),
        })
        .await
        .expect("the inputs")
        .into_inner();
    assert_eq!(inputs.name, publication.name);
    assert_eq!(inputs.format, FORMAT);
    assert!(inputs.document.starts_with(&format!("{FORMAT}\n")));
    assert_eq!(inputs.digest, publication.digest);
    assert_eq!(digest_of(&inputs.document), publication.digest);
    assert!(inputs.document.contains("\ndecision\tunits/"));

    // Every role that reads the publication reads its document; the others
    // are refused, and so is a call without a token.
    for role in Role::ALL {
        let unit = matches!(role, Role::Unit | Role::Provider).then_some("siming");
        let got = AggregatorServiceClient::new(suite.as_roles("caller", &[role], unit))
            .get_publication_inputs(GetPublicationInputsRequest {
                name: publication.name.clone(),
            })
            .await;
        let reads = matches!(
            role,
            Role::Office | Role::Evaluator | Role::Unit | Role::Viewer | Role::Service
        );
        match got {
            Ok(r) if reads => assert_eq!(r.into_inner().document, inputs.document),
            Err(s) if !reads => assert_eq!(s.code(), Code::PermissionDenied, "{role:?}: {s:?}"),
            other => panic!("{role:?}: {other:?}"),
        }
    }
    let err = AggregatorServiceClient::new(suite.anonymous())
        .get_publication_inputs(GetPublicationInputsRequest {
            name: publication.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Unknown versions and groups are NOT_FOUND; a malformed name is
    // INVALID_ARGUMENT.
    for name in [
        format!("{group}/publications/2"),
        "cycles/2026/groups/nosuch/publications/1".to_string(),
        "cycles/1999/groups/districts/publications/latest".to_string(),
    ] {
        let err = office
            .get_publication_inputs(GetPublicationInputsRequest { name: name.clone() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{name}: {err:?}");
    }
    for name in ["publications/1", &format!("{group}/publications/0")] {
        let err = office
            .get_publication_inputs(GetPublicationInputsRequest { name: name.into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
    }

    // The independent verifier agrees, explicit zeros included, with a
    // unit's token.
    let siming = suite.token("siming", &[Role::Unit], Some("siming"));
    let (code, out) = verifier(&[
        "--addr",
        &suite.addr.to_string(),
        "--token",
        &siming,
        &publication.name,
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("{}: verified (", publication.name)),
        "{out}"
    );
    suite.stop().await;
}

on_both_databases!(
    every_demo_publication_reverifies_and_an_altered_document_fails,
    publication_inputs_are_served_to_whoever_reads_the_publication,
);
