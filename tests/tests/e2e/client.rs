//! The `jixiao` client commands that write (`plans submit` from a JSON
//! file, `values report` from a CSV file) against a live suite: what they
//! store, that running them again stores nothing twice, and that a refusal
//! names the field and the CSV line.

use jixiao::commands::{self, Caller};
use jixiao_proto::{
    indicators::{ListValuesRequest, indicators_service_client::IndicatorsServiceClient},
    plans::{GetPlanRequest, Phase, ReturnPlanRequest, plans_service_client::PlansServiceClient},
};
use jixiao_runtime::Role;
use jixiao_testkit::{Backend, Suite, on_both_databases};
use jixiao_tests::{DAY, approve_plans, evaluation_year, now_ms, set_phase, targets};

fn caller(suite: &Suite, subject: &str, roles: &[Role], unit: Option<&str>) -> Caller {
    Caller {
        addr: suite.url(),
        token: suite.token(subject, roles, unit),
        tls_ca: None,
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn stored_values(suite: &Suite) -> Vec<jixiao_proto::indicators::IndicatorValue> {
    IndicatorsServiceClient::new(suite.office())
        .list_values(ListValuesRequest {
            parent: "cycles/2026".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .values
}

const PLAN: &str = r#"{
  "unit": "siming",
  "targets": {"GDP_GROWTH": "@GDP@", "ENERGY_INTENSITY": "0.45", "APPROVAL_ONLINE_RATE": "95",
              "FOREIGN_TRADE": "300", "INVESTMENT": "1000"},
  "goals": [{"title": "优化营商环境", "description": "一件事一次办",
             "milestones": [{"description": "流程再造方案", "due": "2026-06-30"}]}]
}"#;

async fn plans_and_values_come_from_files(backend: Backend) {
    let suite = Suite::start(backend).await;
    evaluation_year(&suite, "2026", now_ms() + DAY).await;
    let dir = tempfile::tempdir().unwrap();
    let siming = caller(&suite, "siming", &[Role::Unit], Some("siming"));

    // A plan from a file is created and submitted; returned, the revised
    // file is submitted as the next version.
    let file = write(&dir, "plan.json", &PLAN.replace("@GDP@", "7.5"));
    let out = commands::submit_plan(&siming, "2026", &file).await.unwrap();
    assert_eq!(out, "cycles/2026/plans/siming version 1 is SUBMITTED\n");
    let mut office = PlansServiceClient::new(suite.office());
    let plan = office
        .get_plan(GetPlanRequest {
            name: "cycles/2026/plans/siming".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.goals[0].milestones.len(), 1);
    office
        .return_plan(ReturnPlanRequest {
            name: plan.name,
            etag: plan.etag,
            reason: "增速目标偏低".into(),
        })
        .await
        .unwrap();
    let file = write(&dir, "plan.json", &PLAN.replace("@GDP@", "8"));
    let out = commands::submit_plan(&siming, "2026", &file).await.unwrap();
    assert_eq!(out, "cycles/2026/plans/siming version 2 is SUBMITTED\n");
    // Submitted, it cannot be submitted again.
    let err = commands::submit_plan(&siming, "2026", &file)
        .await
        .unwrap_err();
    assert!(err.contains("is SUBMITTED; only a draft"), "{err}");
    // A mistake in the file comes back naming the field.
    let huli = caller(&suite, "huli", &[Role::Unit], Some("huli"));
    let file = write(
        &dir,
        "huli.json",
        &PLAN.replace("siming", "huli").replace("@GDP@", "999"),
    );
    let err = commands::submit_plan(&huli, "2026", &file)
        .await
        .unwrap_err();
    assert!(err.contains("InvalidArgument"), "{err}");
    assert!(err.contains("plan.targets["), "{err}");

    // Values from a CSV file, in the provider's name.
    let plan = office
        .get_plan(GetPlanRequest {
            name: "cycles/2026/plans/siming".into(),
        })
        .await
        .unwrap()
        .into_inner();
    office
        .approve_plan(jixiao_proto::plans::ApprovePlanRequest {
            name: plan.name,
            etag: plan.etag,
            comment: String::new(),
        })
        .await
        .unwrap();
    approve_plans(
        &suite,
        "2026",
        &[("huli", targets(["7", "0.5", "95", "300", "1000"]))],
    )
    .await;
    set_phase(&suite, "2026", Phase::Execution).await;
    let stats = caller(&suite, "stats", &[Role::Provider], Some("stats"));
    let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let csv = format!(
        "unit,indicator,period,value,evidence_name,evidence_media_type,evidence_uri,evidence_sha256,comment\n\
         siming,GDP_GROWTH,2026,7.9,公报.pdf,application/pdf,s3://e/1.pdf,{sha},\n\
         huli,GDP_GROWTH,2026,7.1,公报.pdf,application/pdf,s3://e/2.pdf,{sha},\n\
         siming,GDP_GROWTH,2026-Q2,3.8,,,,,上半年\n"
    );
    let file = write(&dir, "values.csv", &csv);
    let out = commands::report_values(&stats, "2026", &file)
        .await
        .unwrap();
    assert!(out.starts_with("stored 3 values"), "{out}");
    // Run again: the same request ids store nothing new.
    commands::report_values(&stats, "2026", &file)
        .await
        .unwrap();
    let values = stored_values(&suite).await;
    assert_eq!(values.len(), 3);
    assert!(values.iter().all(|v| v.version == 1), "{values:?}");
    // A value out of the plausible range is reported by CSV line; nothing
    // of its batch is stored.
    let bad = write(
        &dir,
        "bad.csv",
        "unit,indicator,period,value\nsiming,ENERGY_INTENSITY,2026,0.4\nhuli,ENERGY_INTENSITY,2026,40\n",
    );
    let err = commands::report_values(&stats, "2026", &bad)
        .await
        .unwrap_err();
    assert!(err.contains("line 3: values[1].value"), "{err}");
    let values = stored_values(&suite).await;
    assert_eq!(values.len(), 3, "the refused batch stored nothing");
    suite.stop().await;
}

on_both_databases!(plans_and_values_come_from_files);
