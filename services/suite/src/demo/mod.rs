//! `jixiao demo`: a whole evaluation year loaded into a running suite
//! through its public RPCs only, as the office, the units, the data
//! providers, the evaluators, the inspectors and two survey platforms would
//! enter it, then published. The year itself is [`year`]; each stage of
//! loading it is a module named after the service it writes to (`plans`,
//! `indicators`, `reviews`, `inspections`), publishing is here.

mod indicators;
mod inspections;
mod plans;
mod quality;
mod reviews;
mod session;
pub mod year;

pub use session::run;

use jixiao_proto::{
    Decimal,
    aggregator::{
        Publication, PublishResultsRequest, VerifyPublicationRequest,
        aggregator_service_client::AggregatorServiceClient,
    },
    plans::{Phase, SetCyclePhaseRequest, plans_service_client::PlansServiceClient},
    types::EvidenceItem,
};
use jixiao_runtime::{Role, TokenKey, time::timestamp};
use tonic::{service::interceptor::InterceptedService, transport::Channel as Transport};

use crate::client::{Authed, Bearer, Calls, failed};
use year::{CYCLE, GroupSpec, YEAR};

const DAY: i64 = 24 * 3600 * 1000;
/// Responses per streamed batch.
const BATCH: usize = 2000;

/// What the loader reports as it goes.
pub enum Step {
    /// A stage finished, in a line for people.
    Done(String),
    /// Survey responses pushed so far, of all.
    Pushed { sent: usize, total: usize },
}

/// A group's published result.
pub struct Published {
    pub group: &'static str,
    pub group_name: &'static str,
    pub publication: Publication,
}

/// The principals of the year, each a channel carrying its own token.
struct Demo {
    channel: Transport,
    key: TokenKey,
    now: i64,
    /// Every call the demo makes, to compare with the server's metrics.
    calls: Calls,
}

fn dec(s: impl Into<String>) -> Option<Decimal> {
    Some(Decimal { value: s.into() })
}

fn ts(ms: i64) -> Option<prost_types::Timestamp> {
    Some(timestamp(ms))
}

impl Demo {
    fn as_principal(&self, subject: &str, roles: &[Role], unit: Option<&str>) -> Authed {
        let token = self
            .key
            .issue(subject, roles, unit, 24 * 3600)
            .expect("signing with a loaded key");
        InterceptedService::new(
            self.channel.clone(),
            Bearer::new(&token)
                .expect("tokens are ASCII")
                .counting(&self.calls),
        )
    }

    fn office(&self) -> Authed {
        self.as_principal("office-chen", &[Role::Office], None)
    }

    /// An evaluated unit; the departments that provide data hold both roles.
    fn unit(&self, id: &str) -> Authed {
        self.as_principal(id, &[Role::Unit, Role::Provider], Some(id))
    }

    fn plans_office(&self) -> PlansServiceClient<Authed> {
        PlansServiceClient::new(self.office())
    }
}

/// Loads the demo year into the suite at `addr` (all five services, signed
/// with `key`) and publishes both groups.
pub async fn load(
    addr: &str,
    key: &TokenKey,
    on: impl FnMut(Step),
) -> Result<Vec<Published>, String> {
    load_counted(addr, key, &Calls::default(), on).await
}

/// [`load`], counting every call it makes in `calls`.
pub async fn load_counted(
    addr: &str,
    key: &TokenKey,
    calls: &Calls,
    mut on: impl FnMut(Step),
) -> Result<Vec<Published>, String> {
    let channel = tonic::transport::Endpoint::from_shared(addr.to_string())
        .map_err(|e| format!("{addr}: {e}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot reach {addr}: {e}"))?;
    let demo = Demo {
        channel,
        key: key.clone(),
        now: jixiao_runtime::time::now_ms(),
        calls: calls.clone(),
    };
    let groups = year::groups();
    demo.setup(&groups).await?;
    on(Step::Done(format!(
        "cycle {CYCLE}: {} districts and {} city departments, frameworks of {} and {} indicators",
        year::DISTRICTS.len(),
        year::DEPARTMENTS.len(),
        groups[0].framework.len(),
        groups[1].framework.len()
    )));
    let late = demo.plan_round(&groups).await?;
    on(Step::Done(format!(
        "plans: {} approved; {late} submitted late under a lock exception; huli's returned once and revised",
        year::DISTRICTS.len() + year::DEPARTMENTS.len()
    )));
    set_phase(&demo, Phase::Execution).await?;
    let values = demo.indicator_values(&groups).await?;
    on(Step::Done(format!(
        "indicators: {values} final values with evidence from 8 providers, assessed scores from the evaluation group"
    )));
    on(Step::Done(demo.data_quality(&groups).await?));
    let (responses, votes, ratings) = demo.reviews(&groups, &mut on).await?;
    on(Step::Done(format!(
        "reviews: {responses} survey responses, {votes} portal votes, {ratings} mutual ratings"
    )));
    on(Step::Done(demo.survey_quality().await?));
    let (findings, items) = demo.inspections(&groups).await?;
    on(Step::Done(format!(
        "inspections: {findings} findings (two contests withdrawn, two upheld), {items} self-inspection items"
    )));
    set_phase(&demo, Phase::Assessment).await?;
    let mut published = Vec::new();
    for g in &groups {
        let publication = demo.publish(g).await?;
        on(Step::Done(format!(
            "published {} version {}: digest {} verified",
            g.id, publication.version, publication.digest
        )));
        published.push(Published {
            group: g.id,
            group_name: g.name,
            publication,
        });
    }
    Ok(published)
}

async fn set_phase(demo: &Demo, phase: Phase) -> Result<(), String> {
    demo.plans_office()
        .set_cycle_phase(SetCyclePhaseRequest {
            name: format!("cycles/{CYCLE}"),
            phase: phase as i32,
        })
        .await
        .map_err(failed(format!("moving to {}", phase.as_str_name())))?;
    Ok(())
}

fn evidence(what: &str, unit: &str) -> Vec<EvidenceItem> {
    // A stable stand-in digest of the file's name, as a provider's upload
    // would compute over its content.
    use sha2::Digest;
    let name = format!("{YEAR}年{what}-{unit}.pdf");
    let sha256 = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    vec![EvidenceItem {
        uri: format!("s3://jixiao-evidence/{YEAR}/{unit}/{what}.pdf"),
        size_bytes: 200_000 + (sha256.as_bytes()[0] as i64) * 1000,
        media_type: "application/pdf".into(),
        name,
        sha256,
    }]
}

impl Demo {
    /// Publishes a group (the aggregator refetches every component first)
    /// and verifies the publication.
    async fn publish(&self, g: &GroupSpec) -> Result<Publication, String> {
        let mut client = AggregatorServiceClient::new(self.office());
        let publication = client
            .publish_results(PublishResultsRequest {
                group: format!("cycles/{CYCLE}/groups/{}", g.id),
                request_id: format!("demo-publish-{}", g.id),
                ..Default::default()
            })
            .await
            .map_err(failed(format!("publishing {}", g.id)))?
            .into_inner();
        let verified = client
            .verify_publication(VerifyPublicationRequest {
                name: publication.name.clone(),
            })
            .await
            .map_err(failed(format!("verifying {}", publication.name)))?
            .into_inner();
        if !verified.valid {
            return Err(format!(
                "{} does not verify: {verified:?}",
                publication.name
            ));
        }
        Ok(publication)
    }
}
