//! The tonic adapter of the aggregator: authorisation, publication with
//! its completeness check, verification, feedback, archive and
//! distributions. Standings come from [`Live`], never from a fan-out.

use std::{collections::HashMap, pin::Pin};

use futures::Stream;
use jixiao_proto::{
    Decimal as ProtoDecimal,
    aggregator::{
        Archive, ArchiveEntry, Component as ProtoComponent, Distribution, Feedback,
        GetArchiveRequest, GetDistributionRequest, GetFeedbackRequest, GetPublicationRequest,
        GetStandingsRequest, IndicatorLoss, ListPublicationsRequest, ListPublicationsResponse,
        Publication, PublicationDecision, PublishResultsRequest, StandingRow, Standings,
        VerifyPublicationRequest, VerifyPublicationResponse, WatchStandingsRequest,
        aggregator_service_server::AggregatorService,
    },
    types::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
        VerifyAuditChainResponse,
    },
};
use jixiao_runtime::{
    Error, Principal, Role, Violations, audit, checked,
    decimal::{round_half_away, to_proto},
    error::{Reply, Unmet, reply},
    idempotency, names,
    paging::Page,
    text,
    time::{now_ms, timestamp},
};
use rust_decimal::Decimal;
use tokio_stream::StreamExt;
use tonic::{Request, Status};

use crate::{
    DOMAIN,
    inputs::{Decision, GroupInputs, digest_of},
    live::{Live, Snapshot, View, component_from_proto, proto_component, standing_rows},
    rules, store,
};

/// Who reads provisional standings: dashboards (a viewer token is the
/// office's grant), the evaluation group and the office.
const STANDINGS_READERS: &[Role] = &[Role::Office, Role::Evaluator, Role::Viewer, Role::Service];
/// Who reads published versions: everyone with a role that reads results.
const PUBLISHED_READERS: &[Role] = &[
    Role::Office,
    Role::Evaluator,
    Role::Viewer,
    Role::Unit,
    Role::Service,
];

/// The aggregator service.
#[derive(Clone)]
pub struct AggregatorApi {
    db: jixiao_runtime::Db,
    live: Live,
    plans: jixiao_runtime::plans_lookup::PlansLookup,
}

impl AggregatorApi {
    pub fn new(
        db: jixiao_runtime::Db,
        live: Live,
        plans: jixiao_runtime::plans_lookup::PlansLookup,
    ) -> Self {
        AggregatorApi { db, live, plans }
    }

    pub(crate) async fn standings(
        &self,
        p: &Principal,
        req: &GetStandingsRequest,
    ) -> Result<std::sync::Arc<Snapshot>, Error> {
        p.require(STANDINGS_READERS, "read provisional standings")?;
        names::group_name(&req.group, "group")?;
        self.live.view(&req.group).await
    }

    async fn get_standings(
        &self,
        p: Principal,
        req: GetStandingsRequest,
    ) -> Result<Standings, Error> {
        Ok(self.standings(&p, &req).await?.standings.clone())
    }

    // ------------------------------------------------------------ publish

    async fn publish(
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
                "STANDINGS_STALE",
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
            return Err(Error::Unmet {
                reason: "INCOMPLETE",
                message: format!(
                    "{} cannot be published: {} item(s) are missing or unresolved; record each or decide it explicitly",
                    req.group,
                    open.len()
                ),
                items: open
                    .iter()
                    .map(|o| Unmet {
                        kind: o.kind().into(),
                        subject: o.unit.clone(),
                        description: o.describe(),
                    })
                    .collect(),
            });
        }
        let doc = inputs.encode();
        let mut publication = Publication {
            name: String::new(),
            version: 0,
            rows: standing_rows(&inputs.table()),
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

    // ------------------------------------------------------------ versions

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

    async fn get_publication(
        &self,
        p: Principal,
        req: GetPublicationRequest,
    ) -> Result<Publication, Error> {
        p.require(PUBLISHED_READERS, "read published results")?;
        Ok(self.stored(&req.name).await?.1.publication)
    }

    async fn list_publications(
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

    async fn verify(
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
                let table = standing_rows(&inputs.table());
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

    // ------------------------------------------------------------ feedback

    async fn feedback(&self, p: Principal, req: GetFeedbackRequest) -> Result<Feedback, Error> {
        names::group_name(&req.group, "group")?;
        let unit_id = names::unit_id(&req.unit, "unit")?;
        if !(p.has_any(&[Role::Office, Role::Evaluator]) || p.acts_for(Role::Unit, unit_id)) {
            return Err(Error::denied(format!(
                "{} may read only its own feedback",
                p.subject
            )));
        }
        let published = store::publication(&self.db, &req.group, None).await?;
        let (inputs, rows, year, is_published) = match published {
            Some(s) => {
                let inputs = GroupInputs::decode(&s.inputs).map_err(|e| {
                    Error::internal(std::io::Error::other(format!("stored inputs: {e}")))
                })?;
                let year = self
                    .plans
                    .cycle(names::group_name(&req.group, "group")?.0)
                    .await
                    .map(|c| c.year)
                    .unwrap_or(0);
                (inputs, s.publication.rows, year, true)
            }
            None => {
                let snapshot = self.live.view(&req.group).await?;
                let inputs =
                    snapshot
                        .inputs
                        .as_deref()
                        .cloned()
                        .ok_or_else(|| Error::Unavailable {
                            dependency: "component services".into(),
                            message: "the provisional inputs are not loaded yet".into(),
                        })?;
                (
                    inputs,
                    snapshot.standings.rows.clone(),
                    snapshot.year,
                    false,
                )
            }
        };
        let unit = inputs
            .units
            .iter()
            .find(|u| u.unit == req.unit)
            .ok_or_else(|| Error::not_found(format!("{} in {}", req.unit, req.group)))?;
        let row = rows
            .into_iter()
            .find(|r| r.unit == req.unit)
            .unwrap_or_default();
        let mut losses: Vec<IndicatorLoss> = Vec::new();
        let mut timeliness: Vec<String> = unit
            .timeliness
            .iter()
            .map(|t| match t.as_str() {
                "PLAN_LATE" => "plan submitted late (方案报送迟缓)".to_string(),
                "PLAN_MISSING" => "plan never submitted".to_string(),
                other => other.to_string(),
            })
            .collect();
        if let Some(ind) = &unit.indicator {
            let mut items: Vec<_> = ind.items.iter().collect();
            items.sort_by(|a, b| {
                (b.weight - b.points)
                    .cmp(&(a.weight - a.points))
                    .then(a.code.cmp(&b.code))
            });
            for i in items {
                losses.push(IndicatorLoss {
                    indicator: i.code.clone(),
                    weight: Some(to_proto(i.weight)),
                    points: Some(to_proto(i.points)),
                    points_lost: Some(to_proto(i.weight - i.points)),
                });
                if i.flags.iter().any(|f| f == "LATE") {
                    timeliness.push(format!("final value of {} reported late", i.code));
                }
            }
        }
        let mut review_details = Vec::new();
        if let Some(r) = &unit.review {
            review_details.push(format!("survey sample {}", r.sample));
            for c in &r.categories {
                review_details.push(format!(
                    "category {}: {} responses, mean {}",
                    c.code,
                    c.responses,
                    round_half_away(c.mean, 3)
                ));
            }
            if let Some(s) = r.satisfaction {
                review_details.push(format!("satisfaction index {}", round_half_away(s, 4)));
            }
            review_details.push(format!("online votes counted {}", r.votes));
            review_details.push(format!("mutual raters {}", r.raters));
            for f in &r.flags {
                review_details.push(format!("flag {f}"));
            }
        }
        let (mut findings, mut credits, mut to_rectify) = (Vec::new(), Vec::new(), Vec::new());
        if let Some(i) = &unit.inspection {
            for f in &i.findings {
                findings.push(format!(
                    "{}: {} ({}), deduction {}",
                    f.name, f.description, f.category, f.deduction
                ));
                if f.to_rectify() {
                    to_rectify.push(format!(
                        "{}: {} (rectification {})",
                        f.name, f.description, f.rectification
                    ));
                }
            }
            for f in &i.contested {
                findings.push(format!(
                    "{}: {} (contested, awaiting the office's decision)",
                    f.name, f.description
                ));
            }
            credits.extend(i.credit_items.iter().map(|c| {
                if c.item_type.is_empty() {
                    c.name.clone()
                } else {
                    format!("{}: {} (+{}, {})", c.item_type, c.problem, c.credit, c.name)
                }
            }));
        }
        let change_from_last_year = match (decimal_of(&row.composite), year) {
            (Some(now), y) if y > 0 => store::archive(&self.db, unit_id)
                .await?
                .into_iter()
                .rfind(|a| a.year < i64::from(y))
                .and_then(|a| decimal_of(&a.row.composite))
                .map(|before| fixed(now - before)),
            _ => None,
        };
        Ok(Feedback {
            unit: req.unit,
            row: Some(row),
            losses,
            review_details,
            findings,
            credits,
            change_from_last_year,
            timeliness_problems: timeliness,
            to_rectify,
            published: is_published,
        })
    }

    async fn archive(&self, p: Principal, req: GetArchiveRequest) -> Result<Archive, Error> {
        p.require(PUBLISHED_READERS, "read the archive")?;
        let unit_id = names::unit_id(&req.unit, "unit")?;
        let entries = store::archive(&self.db, unit_id)
            .await?
            .into_iter()
            .map(|a| ArchiveEntry {
                publication: format!("{}/publications/{}", a.group, a.version),
                cycle: a.cycle,
                group: a.group,
                row: Some(a.row),
            })
            .collect();
        Ok(Archive {
            unit: req.unit,
            entries,
        })
    }

    async fn list_audit(
        &self,
        p: Principal,
        req: ListAuditRecordsRequest,
    ) -> Result<ListAuditRecordsResponse, Error> {
        audit::list_for_readers(&self.db.read, &p, &req).await
    }

    async fn verify_audit(
        &self,
        p: Principal,
        _req: VerifyAuditChainRequest,
    ) -> Result<VerifyAuditChainResponse, Error> {
        audit::verify_for_readers(&self.db.read, &p).await
    }

    async fn distribution(
        &self,
        p: Principal,
        req: GetDistributionRequest,
    ) -> Result<Distribution, Error> {
        p.require(STANDINGS_READERS, "read distributions")?;
        names::group_name(&req.group, "group")?;
        let component = req.component();
        if component == ProtoComponent::Unspecified {
            return Err(Error::invalid("component", "is required"));
        }
        let snapshot = self.live.view(&req.group).await?;
        let pick = |r: &StandingRow| -> Option<Decimal> {
            decimal_of(match component {
                ProtoComponent::Indicator => &r.indicator,
                ProtoComponent::Survey => &r.survey,
                ProtoComponent::Online => &r.online,
                ProtoComponent::Mutual => &r.mutual,
                ProtoComponent::Inspection => &r.adjustment,
                ProtoComponent::Composite | ProtoComponent::Unspecified => &r.composite,
            })
        };
        let mut values: Vec<Decimal> = snapshot.standings.rows.iter().filter_map(pick).collect();
        values.sort();
        Ok(distribution(&values))
    }
}

/// Min, max, mean and median, each a published figure.
fn distribution(sorted: &[Decimal]) -> Distribution {
    let n = sorted.len();
    if n == 0 {
        return Distribution::default();
    }
    let sum = sorted
        .iter()
        .fold(Decimal::ZERO, |a, b| a.saturating_add(*b));
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        sorted[n / 2 - 1] / Decimal::TWO + sorted[n / 2] / Decimal::TWO
    };
    Distribution {
        min: Some(fixed(sorted[0])),
        max: Some(fixed(sorted[n - 1])),
        mean: Some(fixed(sum / Decimal::from(n))),
        median: Some(fixed(median)),
        count: n as i32,
    }
}

fn fixed(d: Decimal) -> ProtoDecimal {
    ProtoDecimal {
        value: rules::published(d).to_string(),
    }
}

fn decimal_of(d: &Option<ProtoDecimal>) -> Option<Decimal> {
    d.as_ref().and_then(|d| d.value.parse().ok())
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

type StandingsStream = Pin<Box<dyn Stream<Item = Result<Standings, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatorService for AggregatorApi {
    async fn get_standings(&self, req: Request<GetStandingsRequest>) -> Reply<Standings> {
        checked!(DOMAIN, self, req, get_standings)
    }

    type WatchStandingsStream = StandingsStream;

    async fn watch_standings(&self, req: Request<WatchStandingsRequest>) -> Reply<StandingsStream> {
        let p = jixiao_runtime::auth::principal(&req)?;
        let run = async {
            p.require(STANDINGS_READERS, "watch standings")?;
            let group = req.into_inner().group;
            names::group_name(&group, "group")?;
            let rx = self.live.subscribe(&group).await?;
            let stream = tokio_stream::wrappers::WatchStream::new(rx).filter_map(|v| match v {
                View::Ready(s) => Some(Ok(s.standings.clone())),
                View::Gone(why) => Some(Err(Error::not_found(why).into_status(DOMAIN))),
                View::Pending => None,
            });
            let stream = self.live.shutdown().cut(stream);
            Ok::<StandingsStream, Error>(Box::pin(stream))
        };
        reply(DOMAIN, run.await)
    }

    async fn publish_results(&self, req: Request<PublishResultsRequest>) -> Reply<Publication> {
        checked!(DOMAIN, self, req, publish)
    }

    async fn get_publication(&self, req: Request<GetPublicationRequest>) -> Reply<Publication> {
        checked!(DOMAIN, self, req, get_publication)
    }

    async fn list_publications(
        &self,
        req: Request<ListPublicationsRequest>,
    ) -> Reply<ListPublicationsResponse> {
        checked!(DOMAIN, self, req, list_publications)
    }

    async fn verify_publication(
        &self,
        req: Request<VerifyPublicationRequest>,
    ) -> Reply<VerifyPublicationResponse> {
        checked!(DOMAIN, self, req, verify)
    }

    async fn get_feedback(&self, req: Request<GetFeedbackRequest>) -> Reply<Feedback> {
        checked!(DOMAIN, self, req, feedback)
    }

    async fn get_archive(&self, req: Request<GetArchiveRequest>) -> Reply<Archive> {
        checked!(DOMAIN, self, req, archive)
    }

    async fn get_distribution(&self, req: Request<GetDistributionRequest>) -> Reply<Distribution> {
        checked!(DOMAIN, self, req, distribution)
    }

    async fn list_audit_records(
        &self,
        req: Request<ListAuditRecordsRequest>,
    ) -> Reply<ListAuditRecordsResponse> {
        checked!(DOMAIN, self, req, list_audit)
    }

    async fn verify_audit_chain(
        &self,
        req: Request<VerifyAuditChainRequest>,
    ) -> Reply<VerifyAuditChainResponse> {
        checked!(DOMAIN, self, req, verify_audit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn distribution_of_an_even_count_takes_the_middle_mean() {
        let v: Vec<Decimal> = ["75.1", "80", "82.25", "90"]
            .iter()
            .map(|s| Decimal::from_str(s).unwrap())
            .collect();
        let d = distribution(&v);
        assert_eq!(d.median.unwrap().value, "81.125");
        assert_eq!(d.mean.unwrap().value, "81.838");
        assert_eq!((d.min.unwrap().value.as_str(), d.count), ("75.100", 4));
    }

    #[test]
    fn an_empty_distribution_has_no_figures() {
        assert_eq!(distribution(&[]).count, 0);
    }
}
