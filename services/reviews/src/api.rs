//! What every handler of the service shares: the service value with its
//! databases, plans look-ups, change broadcast and the short-lived cache
//! of campaign contexts; the phase gate; the campaign binding and mode
//! checks; and the rules for external ids and per-item rejections.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use jixiao_proto::reviews::{Campaign, CampaignMode, Rejection};
use jixiao_runtime::{
    Db, Dialect, Error, Principal, Role, changes::Changes, client::ServiceChannel, decimal,
    host::Shutdown, names, plans_lookup::PlansLookup, text, time::millis,
};
use rust_decimal::Decimal;
use rustc_hash::FxHashSet;

use crate::{quality::Screen, scoring, store};

pub const READERS: &[Role] = &[Role::Office, Role::Evaluator, Role::Service];
/// Answers that are never counted (不了解).
pub const DONT_KNOW: &str = "dont_know";
/// Responses per batch at most.
pub const MAX_BATCH: usize = 5000;
/// Rows written in one transaction at most when batches queue up.
pub const GROUP_COMMIT_ROWS: usize = 40_000;
/// How long a campaign's context (members, scheme) is reused.
const CONTEXT_TTL: Duration = Duration::from_secs(30);
/// How long a stream's admission to a campaign's phase stands before the
/// next batch checks it again.
pub const ADMISSION_TTL: Duration = Duration::from_secs(10);

/// What validating a push needs to know about its campaign.
pub struct CampaignCtx {
    pub name: String,
    pub cycle: String,
    pub group: String,
    pub mode: CampaignMode,
    pub platforms: HashSet<String>,
    /// Question ids; a response refers to them by position once checked.
    pub questions: Vec<String>,
    pub open_ms: Option<i64>,
    pub close_ms: Option<i64>,
    pub units: FxHashSet<String>,
    /// Counted answer codes with their values (decimal and 1e-10 units).
    pub answer_values: Vec<(String, Decimal, i64)>,
    pub categories: Vec<String>,
    /// The scheme's survey screening; None when switched off.
    pub screen: Option<Screen>,
}

impl CampaignCtx {
    pub fn answer_value(&self, code: &str) -> Option<Decimal> {
        self.answer_values
            .iter()
            .find(|(k, _, _)| k == code)
            .map(|(_, v, _)| *v)
    }
}

/// Campaign contexts by campaign name, with when they were fetched.
type ContextCache = HashMap<String, (Arc<CampaignCtx>, Instant)>;

/// The reviews service.
#[derive(Clone)]
pub struct ReviewsApi {
    pub(crate) db: Db,
    /// Native pool for COPY on PostgreSQL.
    pub(crate) pg: Option<sqlx::PgPool>,
    pub(crate) plans: PlansLookup,
    pub(crate) changes: Changes,
    contexts: Arc<Mutex<ContextCache>>,
    /// Raw-responses campaigns' tallies as of their group's revision.
    pub(crate) tallies: Arc<crate::tally_cache::TallyCache>,
    shutdown: Shutdown,
    pub(crate) metrics: jixiao_runtime::metrics::Metrics,
}

pub fn weighted(list: &[jixiao_proto::plans::WeightedKey]) -> Vec<(String, Decimal)> {
    list.iter()
        .filter_map(|k| decimal::figure(&k.value).ok().map(|v| (k.key.clone(), v)))
        .collect()
}

impl ReviewsApi {
    pub async fn new(
        db: Db,
        plans: ServiceChannel,
        shutdown: Shutdown,
        metrics: jixiao_runtime::metrics::Metrics,
    ) -> Result<Self, Error> {
        let pg = match db.dialect {
            Dialect::Postgres => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect(db.url())
                    .await
                    .map_err(|e| Error::Unavailable {
                        dependency: "database".into(),
                        message: e.to_string(),
                    })?,
            ),
            Dialect::Sqlite => None,
        };
        Ok(ReviewsApi {
            db,
            pg,
            plans: PlansLookup::new(plans),
            changes: Changes::new(shutdown.clone()),
            contexts: Arc::default(),
            tallies: Arc::default(),
            shutdown,
            metrics,
        })
    }

    pub(crate) async fn load_campaign(&self, cycle: &str, id: &str) -> Result<Campaign, Error> {
        store::campaign(&self.db.read, cycle, id).await
    }

    /// The campaign's context, cached for a short while once its cycle has
    /// left PLANNING.
    pub(crate) async fn context(&self, name: &str, field: &str) -> Result<Arc<CampaignCtx>, Error> {
        if let Some((ctx, at)) = self.contexts.lock().expect("contexts").get(name)
            && (at.elapsed() < CONTEXT_TTL || self.draining())
        {
            return Ok(ctx.clone());
        }
        let ids = names::parse(name, "cycles/*/campaigns/*", field)?;
        let campaign = self.load_campaign(ids[0], ids[1]).await?;
        let members = self.plans.members(&campaign.group).await?;
        let scheme = self.plans.scheme(&campaign.group).await?;
        let ctx = Arc::new(CampaignCtx {
            name: name.to_string(),
            cycle: ids[0].to_string(),
            group: campaign
                .group
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            mode: CampaignMode::try_from(campaign.mode).unwrap_or(CampaignMode::Unspecified),
            platforms: campaign.platforms.iter().cloned().collect(),
            questions: campaign.questions.iter().map(|q| q.id.clone()).collect(),
            open_ms: campaign.open_time.as_ref().map(millis),
            close_ms: campaign.close_time.as_ref().map(millis),
            units: members.units.iter().cloned().collect(),
            answer_values: weighted(&scheme.answer_values)
                .into_iter()
                .map(|(k, v)| (k, v, scoring::to_units(v)))
                .collect(),
            categories: scheme
                .category_weights
                .iter()
                .map(|k| k.key.clone())
                .collect(),
            screen: Screen::of(&scheme),
        });
        // Kept only once the members are final: a context read in PLANNING
        // (by a read of the group's scores) would otherwise carry members
        // edited since into the survey's first pushes.
        if members.fixed {
            self.contexts
                .lock()
                .expect("contexts")
                .insert(name.to_string(), (ctx.clone(), Instant::now()));
        }
        Ok(ctx)
    }

    /// Whether shutdown has begun. Calls in flight then keep the campaign
    /// context and stream admission they have rather than ask the plans
    /// service again: in `jixiao serve` it is reached through this
    /// process's own port, which the drain has closed, and a stream cut
    /// off there would miss the drain the README promises. The drain is
    /// bounded (`DRAIN_GRACE`), so a stale admission lasts seconds.
    pub(crate) fn draining(&self) -> bool {
        self.shutdown.begun()
    }

    /// The phase gate of DOMAIN.md §2 (`jixiao_runtime::phases`) for a
    /// write of `method` to `cycle`; returns whether it is late.
    pub(crate) async fn admit(
        &self,
        p: &Principal,
        method: &str,
        cycle: &str,
    ) -> Result<bool, Error> {
        let path = format!("/jixiao.reviews.v1.ReviewsService/{method}");
        self.plans.admit(p, &path, cycle).await
    }

    /// PERMISSION_DENIED unless the caller is a platform bound to the campaign.
    pub(crate) fn require_bound(p: &Principal, ctx: &CampaignCtx) -> Result<(), Error> {
        if p.has(Role::SurveyPlatform) && ctx.platforms.contains(&p.subject) {
            Ok(())
        } else {
            Err(Error::denied(format!(
                "{} is not a survey platform bound to {}",
                p.subject, ctx.name
            )))
        }
    }

    pub(crate) fn require_mode(ctx: &CampaignCtx, mode: CampaignMode) -> Result<(), Error> {
        if ctx.mode == mode {
            Ok(())
        } else {
            Err(Error::precondition(
                crate::Reason::WrongMode,
                format!(
                    "{} takes {}, not {}",
                    ctx.name,
                    ctx.mode.as_str_name(),
                    mode.as_str_name()
                ),
            ))
        }
    }
}

pub fn valid_external_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

pub fn rejection(id: &str, reason: crate::Refusal, message: impl Into<String>) -> Rejection {
    Rejection {
        id: text::echo(id).into_owned(),
        reason: reason.as_str().into(),
        message: message.into(),
    }
}
