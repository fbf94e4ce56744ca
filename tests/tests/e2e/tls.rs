//! The split suite over TLS: every port speaks TLS with a certificate
//! issued by an authority generated for the test, and every call between
//! the services goes over TLS trusting that authority. Plain-text callers
//! and callers that trust another authority are refused.

use std::time::Duration;

use jixiao_proto::{
    aggregator::aggregator_service_client::AggregatorServiceClient,
    plans::{GetCycleRequest, plans_service_client::PlansServiceClient},
};
use jixiao_runtime::tls::Tls;
use jixiao_testkit::{Backend, on_both_databases};
use jixiao_tests::{Split, complete_indicators, executing_year, standings_until};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A fresh authority: (its certificate, TLS for a server at 127.0.0.1 or
/// localhost holding a certificate it issued and trusting it).
fn authority() -> (String, Tls) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Jixiao test authority");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let ca_pem = ca_cert.pem();
    let tls = Tls::from_pem(
        Some((leaf.pem().as_bytes(), key.serialize_pem().as_bytes())),
        Some(ca_pem.as_bytes()),
    );
    (ca_pem, tls)
}

async fn the_split_suite_runs_over_tls(backend: Backend) {
    let (_, tls) = authority();
    let split = Split::start_with(backend, Some(tls.clone())).await;
    assert!(split.plans.url().starts_with("https://"));
    executing_year(&split.plans).await;
    // The indicators service checks the values against the framework it
    // reads from plans over TLS.
    complete_indicators(&split.indicators).await;

    // The aggregator follows and reads all four services over TLS.
    let mut office = AggregatorServiceClient::new(split.aggregator.office());
    standings_until(&mut office, "standings over TLS", |s| {
        !s.stale && s.rows.len() == 3 && s.rows.iter().all(|r| r.indicator.is_some())
    })
    .await;

    // Plain text is refused, and so is a caller trusting another authority.
    let port = split.plans.addr.port();
    let plain = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2));
    let got = match plain.connect().await {
        Ok(channel) => PlansServiceClient::new(channel)
            .get_cycle(GetCycleRequest {
                name: "cycles/2026".into(),
            })
            .await
            .map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(got.is_err(), "a plain-text call reached a TLS port");
    let (other_ca, _) = authority();
    let stranger = Tls::from_pem(None, Some(other_ca.as_bytes()))
        .endpoint(&format!("https://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(
        stranger.is_err(),
        "a certificate from another authority was trusted"
    );
    // An https address without an authority to trust is a clear error.
    let err = Tls::default()
        .endpoint(&format!("https://127.0.0.1:{port}"))
        .unwrap_err();
    assert!(err.contains("JIXIAO_TLS_CA"), "{err}");

    split.stop().await;
}

on_both_databases!(the_split_suite_runs_over_tls);
