//! The tamper-evident audit trail, on SQLite and PostgreSQL: every
//! service's `VerifyAuditChain` walks its chain; a record edited, removed
//! from the middle or cut from the end with plain SQL is named.

use jixiao::Target;
use jixiao_proto::{
    aggregator::aggregator_service_client::AggregatorServiceClient,
    indicators::indicators_service_client::IndicatorsServiceClient,
    inspections::inspections_service_client::InspectionsServiceClient,
    plans::plans_service_client::PlansServiceClient,
    reviews::reviews_service_client::ReviewsServiceClient,
    types::{VerifyAuditChainRequest, VerifyAuditChainResponse},
};
use jixiao_testkit::{Authed, Backend, Suite, on_both_databases};
use jixiao_tests::{DAY, evaluation_year, now_ms};
use sqlx::Connection;
use tonic::Code;

async fn verify(
    channel: Authed,
    target: Target,
) -> Result<VerifyAuditChainResponse, tonic::Status> {
    let req = VerifyAuditChainRequest {};
    let r = match target {
        Target::Plans => {
            PlansServiceClient::new(channel)
                .verify_audit_chain(req)
                .await
        }
        Target::Indicators => {
            IndicatorsServiceClient::new(channel)
                .verify_audit_chain(req)
                .await
        }
        Target::Inspections => {
            InspectionsServiceClient::new(channel)
                .verify_audit_chain(req)
                .await
        }
        Target::Reviews => {
            ReviewsServiceClient::new(channel)
                .verify_audit_chain(req)
                .await
        }
        Target::Aggregator => {
            AggregatorServiceClient::new(channel)
                .verify_audit_chain(req)
                .await
        }
    };
    r.map(|r| r.into_inner())
}

async fn sql(suite: &Suite, statement: &str) {
    let mut conn = sqlx::AnyConnection::connect(&suite.database_url(Target::Plans))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn edited_removed_and_cut_records_are_named(backend: Backend) {
    sqlx::any::install_default_drivers();
    let suite = Suite::start(backend).await;
    evaluation_year(&suite, "2026", now_ms() + DAY).await;

    // Every service verifies, and only the office and evaluators may ask.
    for target in Target::ALL {
        let ok = verify(suite.office(), *target).await.unwrap();
        assert!(ok.valid, "{target}: {ok:?}");
        let denied = verify(suite.unit("siming"), *target).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{target}");
        let anonymous = verify(suite.anonymous(), *target).await.unwrap_err();
        assert_eq!(anonymous.code(), Code::Unauthenticated, "{target}");
    }
    let intact = verify(suite.office(), Target::Plans).await.unwrap();
    // Four units, the cycle, the group and the framework.
    assert_eq!(intact.records, 7, "{intact:?}");
    assert_eq!(intact.head_digest.len(), 64);

    // An edited reason.
    sql(
        &suite,
        "UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 3",
    )
    .await;
    let edited = verify(suite.office(), Target::Plans).await.unwrap();
    assert!(!edited.valid);
    assert_eq!(edited.first_broken_sequence, 3);
    assert!(edited.problem.contains("altered"), "{edited:?}");
    assert_eq!(edited.records, 2, "the records before it verify");
    sql(&suite, "UPDATE audit_log SET reason = '' WHERE seq = 3").await;
    assert!(verify(suite.office(), Target::Plans).await.unwrap().valid);

    // A record cut from the end: the head still points at it.
    sql(&suite, "DELETE FROM audit_log WHERE seq = 7").await;
    let cut = verify(suite.office(), Target::Plans).await.unwrap();
    assert!(!cut.valid);
    assert!(cut.problem.contains("removed from its end"), "{cut:?}");

    // A record removed from the middle.
    sql(&suite, "DELETE FROM audit_log WHERE seq = 4").await;
    let removed = verify(suite.office(), Target::Plans).await.unwrap();
    assert_eq!(removed.first_broken_sequence, 5);
    assert!(removed.problem.contains("missing"), "{removed:?}");
    suite.stop().await;
}

on_both_databases!(edited_removed_and_cut_records_are_named);
