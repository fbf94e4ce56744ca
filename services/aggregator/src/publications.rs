//! Published versions: publication with its completeness check, the
//! immutable versions and their verification against the stored inputs
//! document.

use std::collections::HashMap;

use jixiao_proto::aggregator::{
    GetPublicationInputsRequest, GetPublicationRequest, ListPublicationsRequest,
    ListPublicationsResponse, Publication, PublicationDecision, PublicationInputs,
    PublishResultsRequest, StandingRow, VerifyPublicationRequest, VerifyPublicationResponse,
};
use jixiao_runtime::{
    Error, Principal, Role, Violations,
    error::Unmet,
    idempotency, names,
    paging::Page,
    text,
    time::{now_ms, timestamp},
};

use crate::{
    api::{AggregatorApi, PUBLISHED_READERS},
    inputs::{Decision, GroupInputs, digest_of},
    live::{component_from_proto, proto_component, standing_rows},
    store,
};

impl AggregatorApi {
    pub(crate) async fn publish_results(
        &self,
        p: Principal,
        req: PublishResultsRequest,
    ) -> Result<Publication, Error> {
        p.require(&[Role::Office], "publish results")?;
        let (cycle, _) = names::group_name(&req.group, "group")?;
        let mut v = Violations::new();
        let mut decisions = Vec::with_capacity(req.decisions.len());
        for (i, d) in req.decisions.iter().enumerate() {
            let at = |f: &str| format!("decisions[{i}].{f}");
            if names::unit_id(&d.unit, "unit").is_err() {
                v.add(at("unit"), "must be units/{unit}");
            }
            let component = component_from_proto(d.component());
            if component.is_none() {
                v.add(
                    at("component"),
                    "must be INDICATOR, SURVEY, ONLINE, MUTUAL or INSPECTION",
                );
            }
            if d.reason.trim().is_empty() {
                v.add(at("reason"), "is required: say why the office decided so");
            }
            text::optional(&mut v, at("reason"), &d.reason, text::NOTE);
            if let Some(component) = component {
                decisions.push(Decision {
                    unit: d.unit.clone(),
                    component,
                    flag: d.flag.trim().to_string(),
                    reason: d.reason.trim().to_string(),
                });
            }
        }
        text::optional(
            &mut v,
            "correction_reason",
            &req.correction_reason,
            text::NOTE,
        );
        v.into_result()?;
        let digest = idempotency::request_digest("PublishResults", &req);
        if let Some(done) = store::replay(&self.db, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        self.plans
            .admit(
                &p,
                "/jixiao.aggregator.v1.AggregatorService/PublishResults",
                cycle,
            )
            .await?;
        let cycle_info = self.plans.cycle(cycle).await?;
        // Publish what the services hold now, not what was last streamed.
        let snapshot = self.live.refresh_now(&req.group).await?;
        if snapshot.standings.stale {
            return Err(Error::precondition(
                crate::Reason::StandingsStale,
                format!(
                    "the figures of {} are not current: {}",
                    req.group, snapshot.standings.stale_reason
                ),
            ));
        }
        let mut inputs = snapshot
            .inputs
            .as_deref()
            .cloned()
            .ok_or_else(|| Error::Unavailable {
                dependency: "component services".into(),
                message: "the inputs are not loaded yet".into(),
            })?;
        let open = inputs.open_items();
        let mut v = Violations::new();
        for (i, d) in decisions.iter().enumerate() {
            let matches = open
                .iter()
                .any(|o| o.unit == d.unit && o.component == d.component && o.flag == d.flag);
            if !matches {
                v.add(
                    format!("decisions[{i}]"),
                    format!(
                        "{} has no missing {} component{} to decide",
                        d.unit,
                        d.component.name(),
                        if d.flag.is_empty() {
                            String::new()
                        } else {
                            format!(" or open flag {}", d.flag)
                        }
                    ),
                );
            }
        }
        v.into_result()?;
        decisions.sort();
        decisions
            .dedup_by(|a, b| a.unit == b.unit && a.component == b.component && a.flag == b.flag);
        inputs.decisions = decisions;
        let open = inputs.open_items();
        if !open.is_empty() {
            return Err(Error::unmet(
                crate::Reason::Incomplete,
                format!(
                    "{} cannot be published: {} item(s) are missing or unresolved; record each or decide it explicitly",
                    req.group,
                    open.len()
                ),
                open.iter()
                    .map(|o| Unmet {
                        kind: o.kind().into(),
                        subject: o.unit.clone(),
                        description: o.describe(),
                    })
                    .collect(),
            ));
        }
        let doc = inputs.encode();
        let mut publication = Publication {
            name: String::new(),
            version: 0,
            rows: standing_rows(inputs.table()),
            digest: digest_of(&doc),
            published_by: p.subject.clone(),
            publish_time: Some(timestamp(now_ms())),
            correction_reason: req.correction_reason.trim().to_string(),
            decisions: inputs.decisions.iter().map(decision_proto).collect(),
        };
        store::insert_publication(
            &self.db,
            &p,
            store::NewVersion {
                group: &req.group,
                year: cycle_info.year,
                inputs: &doc,
                publication: &mut publication,
            },
            &req.request_id,
            &digest,
        )
        .await?;
        tracing::info!(publication = %publication.name, digest = %publication.digest, by = %p.subject, "results published");
        Ok(publication)
    }

    async fn stored(&self, name: &str) -> Result<(String, store::StoredPublication), Error> {
        let parts = names::parse(name, "cycles/*/groups/*/publications/*", "name")?;
        let group = format!("cycles/{}/groups/{}", parts[0], parts[1]);
        let version = match parts[2] {
            "latest" => None,
            v => Some(v.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                Error::invalid("name", "the version must be a number from 1 or \"latest\"")
            })?),
        };
        let stored = store::publication(&self.db, &group, version)
            .await?
            .ok_or_else(|| Error::not_found(name.to_string()))?;
        Ok((group, stored))
    }

    pub(crate) async fn get_publication(
        &self,
        p: Principal,
        req: GetPublicationRequest,
    ) -> Result<Publication, Error> {
        p.require(PUBLISHED_READERS, "read published results")?;
        Ok(self.stored(&req.name).await?.1.publication)
    }

    /// The stored inputs document of a version, as its digest covers it
    /// (specified in docs/PUBLICATION-FORMAT.md).
    pub(crate) async fn get_publication_inputs(
        &self,
        p: Principal,
        req: GetPublicationInputsRequest,
    ) -> Result<PublicationInputs, Error> {
        p.require(PUBLISHED_READERS, "read published inputs")?;
        let (_, stored) = self.stored(&req.name).await?;
        Ok(PublicationInputs {
            name: stored.publication.name,
            format: stored.inputs.lines().next().unwrap_or_default().to_string(),
            document: stored.inputs,
            digest: stored.publication.digest,
        })
    }

    pub(crate) async fn list_publications(
        &self,
        p: Principal,
        req: ListPublicationsRequest,
    ) -> Result<ListPublicationsResponse, Error> {
        p.require(PUBLISHED_READERS, "read published results")?;
        names::group_name(&req.group, "group")?;
        let page = Page::from_request(req.page_size, &req.page_token, 50, 500)?;
        // Versions only grow, so the offset token counts down from the top.
        let mut all = store::publications(
            &self.db,
            &req.group,
            i64::MAX,
            page.offset.saturating_add(page.fetch_limit()),
        )
        .await?;
        let mut rows: Vec<Publication> = all.drain(..).skip(page.offset as usize).collect();
        let next_page_token = page.next_token(&mut rows);
        Ok(ListPublicationsResponse {
            publications: rows,
            next_page_token,
        })
    }

    pub(crate) async fn verify_publication(
        &self,
        p: Principal,
        req: VerifyPublicationRequest,
    ) -> Result<VerifyPublicationResponse, Error> {
        p.require(PUBLISHED_READERS, "verify published results")?;
        let (_, stored) = self.stored(&req.name).await?;
        let recomputed_digest = digest_of(&stored.inputs);
        let mut problems = Vec::new();
        if recomputed_digest != stored.digest || stored.digest != stored.publication.digest {
            problems.push(format!(
                "digest differs: published {}, recomputed from the stored inputs {}",
                stored.publication.digest, recomputed_digest
            ));
        }
        match GroupInputs::decode(&stored.inputs) {
            Err(e) => problems.push(format!("the stored inputs do not parse: {e}")),
            Ok(inputs) => {
                if inputs.encode() != stored.inputs {
                    problems.push("the stored inputs are not in canonical form".into());
                }
                let table = standing_rows(inputs.table());
                problems.extend(table_differences(&stored.publication.rows, &table));
                if !inputs.open_items().is_empty() {
                    problems.push("the stored inputs leave items missing or undecided".into());
                }
            }
        }
        Ok(VerifyPublicationResponse {
            valid: problems.is_empty(),
            recomputed_digest,
            problems,
        })
    }
}

fn decision_proto(d: &Decision) -> PublicationDecision {
    PublicationDecision {
        unit: d.unit.clone(),
        component: proto_component(d.component) as i32,
        flag: d.flag.clone(),
        reason: d.reason.clone(),
    }
}

/// Unit by unit, where a recomputed table differs from the published one.
fn table_differences(published: &[StandingRow], recomputed: &[StandingRow]) -> Vec<String> {
    let mut out = Vec::new();
    let by_unit: HashMap<&str, &StandingRow> =
        recomputed.iter().map(|r| (r.unit.as_str(), r)).collect();
    for r in published {
        match by_unit.get(r.unit.as_str()) {
            None => out.push(format!("{} is published but not in the inputs", r.unit)),
            Some(c) if *c != r => out.push(format!(
                "{}: published composite {} rank {}, recomputed {} rank {}",
                r.unit,
                r.composite.as_ref().map_or("-", |d| d.value.as_str()),
                r.rank,
                c.composite.as_ref().map_or("-", |d| d.value.as_str()),
                c.rank
            )),
            Some(_) => {}
        }
    }
    if published.len() != recomputed.len() {
        out.push(format!(
            "published {} rows, the inputs give {}",
            published.len(),
            recomputed.len()
        ));
    }
    out
}
