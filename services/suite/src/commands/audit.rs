//! `jixiao audit`: every service's audit trail of a resource, and
//! `jixiao audit --verify`: their hash chains.

use jixiao_proto::{
    aggregator::aggregator_service_client::AggregatorServiceClient,
    indicators::indicators_service_client::IndicatorsServiceClient,
    inspections::inspections_service_client::InspectionsServiceClient,
    plans::plans_service_client::PlansServiceClient,
    reviews::reviews_service_client::ReviewsServiceClient,
    types::{AuditRecord, ListAuditRecordsRequest, VerifyAuditChainRequest},
};

use super::{Caller, note, time};
use crate::{
    client::{Authed, failed},
    table::{Format, Table},
};

/// The services that keep an audit trail.
const AUDITED: [&str; 5] = [
    "plans",
    "indicators",
    "inspections",
    "reviews",
    "aggregator",
];

async fn audit_page(
    channel: &Authed,
    service: &str,
    req: ListAuditRecordsRequest,
) -> Result<jixiao_proto::types::ListAuditRecordsResponse, tonic::Status> {
    let c = channel.clone();
    let r = match service {
        "plans" => PlansServiceClient::new(c).list_audit_records(req).await,
        "indicators" => {
            IndicatorsServiceClient::new(c)
                .list_audit_records(req)
                .await
        }
        "inspections" => {
            InspectionsServiceClient::new(c)
                .list_audit_records(req)
                .await
        }
        "reviews" => ReviewsServiceClient::new(c).list_audit_records(req).await,
        _ => {
            AggregatorServiceClient::new(c)
                .list_audit_records(req)
                .await
        }
    };
    r.map(|r| r.into_inner())
}

async fn verify_chain(
    channel: &Authed,
    service: &str,
) -> Result<jixiao_proto::types::VerifyAuditChainResponse, tonic::Status> {
    let (c, req) = (channel.clone(), VerifyAuditChainRequest {});
    let r = match service {
        "plans" => PlansServiceClient::new(c).verify_audit_chain(req).await,
        "indicators" => {
            IndicatorsServiceClient::new(c)
                .verify_audit_chain(req)
                .await
        }
        "inspections" => {
            InspectionsServiceClient::new(c)
                .verify_audit_chain(req)
                .await
        }
        "reviews" => ReviewsServiceClient::new(c).verify_audit_chain(req).await,
        _ => {
            AggregatorServiceClient::new(c)
                .verify_audit_chain(req)
                .await
        }
    };
    r.map(|r| r.into_inner())
}

fn audited(service: Option<&str>) -> Result<Vec<&'static str>, String> {
    match service {
        None => Ok(AUDITED.to_vec()),
        Some(s) => AUDITED
            .iter()
            .find(|a| **a == s)
            .map(|a| vec![*a])
            .ok_or(format!(
                "{s:?} keeps no audit trail; choose {}",
                AUDITED.join(", ")
            )),
    }
}

/// `jixiao audit --verify`: walks each service's audit hash chain; fails
/// when any chain is broken.
pub async fn verify_audit(
    caller: &Caller,
    service: Option<&str>,
    format: Format,
) -> Result<String, String> {
    let channel = caller.channel().await?;
    let mut t = Table::new(&[
        "service",
        "valid",
        "records",
        "first_broken",
        "problem",
        "head_digest",
    ]);
    let mut broken = 0;
    for service in audited(service)? {
        let v = verify_chain(&channel, service)
            .await
            .map_err(failed(format!("the {service} service's audit chain")))?;
        broken += usize::from(!v.valid);
        t.push(vec![
            service.to_string(),
            v.valid.to_string(),
            v.records.to_string(),
            v.first_broken_sequence.to_string(),
            v.problem,
            v.head_digest,
        ]);
    }
    let out = t.render(format);
    if broken > 0 {
        return Err(format!("{broken} audit chain(s) do not verify:\n{out}"));
    }
    Ok(out)
}

/// `jixiao audit`: who changed a resource (a name or a prefix), when and
/// why, from every service's trail (or one), oldest first.
pub async fn audit(
    caller: &Caller,
    resource: &str,
    service: Option<&str>,
    format: Format,
) -> Result<String, String> {
    let channel = caller.channel().await?;
    let services = audited(service)?;
    let mut records: Vec<(&str, AuditRecord)> = Vec::new();
    for service in services {
        let mut page_token = String::new();
        loop {
            let page = audit_page(
                &channel,
                service,
                ListAuditRecordsRequest {
                    resource_prefix: resource.to_string(),
                    page_size: 1000,
                    page_token,
                },
            )
            .await
            .map_err(failed(format!("audit records of the {service} service")))?;
            records.extend(page.records.into_iter().map(|r| (service, r)));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
    }
    records.sort_by_key(|(s, r)| (r.time.map(|t| (t.seconds, t.nanos)), *s, r.sequence));
    let mut t = Table::new(&[
        "time",
        "service",
        "seq",
        "principal",
        "action",
        "resource",
        "reason",
    ]);
    for (service, r) in &records {
        t.push(vec![
            time(&r.time),
            service.to_string(),
            r.sequence.to_string(),
            r.principal.clone(),
            r.action.clone(),
            r.resource.clone(),
            r.reason.clone(),
        ]);
    }
    let mut out = String::new();
    note(
        &mut out,
        format,
        &format!("{} audit records under {resource:?}", records.len()),
    );
    out.push_str(&t.render(format));
    Ok(out)
}
