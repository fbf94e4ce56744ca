//! The tonic adapter of the reviews service: campaigns, the ingest of
//! responses (streamed or in batches), votes, mutual ratings and review
//! scores.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use jixiao_proto::{
    plans::{MutualScale, Scheme},
    reviews::{
        AcceptInsufficientSampleRequest, Campaign, CampaignMode, CategoryFigure,
        CreateCampaignRequest, GetCampaignRequest, GetGroupReviewScoresRequest, GroupReviewScores,
        ListCampaignsRequest, ListCampaignsResponse, ListMutualRatingsRequest,
        ListMutualRatingsResponse, MutualRating, PushResponsesRequest, PushResponsesResponse,
        PushUnitResultsRequest, PushUnitResultsResponse, PushVotesRequest, PushVotesResponse,
        Rejection, ReviewChange, ReviewFlag, SubmitMutualRatingRequest, SurveyResponse,
        UnitReviewScore, WatchReviewChangesRequest, reviews_service_server::ReviewsService,
    },
    types::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest,
        VerifyAuditChainResponse,
    },
};
use jixiao_runtime::{
    Db, Dialect, Error, Principal, Role, Violations, audit,
    auth::principal,
    changes::{Change, Changes, unchanged_since},
    checked,
    client::ServiceChannel,
    decimal::{self, to_proto},
    error::{Reply, reply},
    host::Shutdown,
    idempotency, names,
    paging::Page,
    plans_lookup::PlansLookup,
    text,
    time::{self, millis, now_ms, timestamp},
};
use prost::Message;
use rust_decimal::Decimal;
use rustc_hash::FxHashSet;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::{Request, Status, Streaming};

use crate::{
    DOMAIN,
    ingest::{self, Batch, Deltas, NewResponse, Outcome},
    scoring::{self, Tally},
};

const READERS: &[Role] = &[Role::Office, Role::Evaluator, Role::Service];
/// Answers that are never counted (不了解).
const DONT_KNOW: &str = "dont_know";
/// Responses per batch at most.
pub const MAX_BATCH: usize = 5000;
/// Rows written in one transaction at most when batches queue up.
const GROUP_COMMIT_ROWS: usize = 40_000;
/// How long a campaign's context (members, scheme) is reused.
const CONTEXT_TTL: Duration = Duration::from_secs(30);
/// How long a stream's admission to a campaign's phase stands before the
/// next batch checks it again.
const ADMISSION_TTL: Duration = Duration::from_secs(10);

/// What validating a push needs to know about its campaign.
struct CampaignCtx {
    name: String,
    cycle: String,
    group: String,
    mode: CampaignMode,
    platforms: HashSet<String>,
    /// Question ids; a response refers to them by position once checked.
    questions: Vec<String>,
    open_ms: Option<i64>,
    close_ms: Option<i64>,
    units: FxHashSet<String>,
    /// Counted answer codes with their values (decimal and 1e-10 units).
    answer_values: Vec<(String, Decimal, i64)>,
    categories: Vec<String>,
}

impl CampaignCtx {
    fn answer_value(&self, code: &str) -> Option<Decimal> {
        self.answer_values
            .iter()
            .find(|(k, _, _)| k == code)
            .map(|(_, v, _)| *v)
    }
}

/// A batch checked against its campaign, ready to store.
struct Checked {
    ctx: Arc<CampaignCtx>,
    rows: Vec<NewResponse>,
    rejected: Vec<Rejection>,
    /// Made here, while the batch before is being written: the rows'
    /// tally deltas and, on PostgreSQL, their `COPY` text.
    deltas: Deltas,
    copy: String,
}

/// Campaign contexts by campaign name, with when they were fetched.
type ContextCache = HashMap<String, (Arc<CampaignCtx>, Instant)>;

/// The reviews service.
#[derive(Clone)]
pub struct ReviewsApi {
    db: Db,
    /// Native pool for COPY on PostgreSQL.
    pg: Option<sqlx::PgPool>,
    plans: PlansLookup,
    changes: Changes,
    contexts: Arc<Mutex<ContextCache>>,
}

fn weighted(list: &[jixiao_proto::plans::WeightedKey]) -> Vec<(String, Decimal)> {
    list.iter()
        .filter_map(|k| decimal::figure(&k.value).ok().map(|v| (k.key.clone(), v)))
        .collect()
}

impl ReviewsApi {
    pub async fn new(db: Db, plans: ServiceChannel, shutdown: Shutdown) -> Result<Self, Error> {
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
            changes: Changes::new(shutdown),
            contexts: Arc::default(),
        })
    }

    async fn load_campaign(&self, cycle: &str, id: &str) -> Result<Campaign, Error> {
        let row = sqlx::query("SELECT body FROM campaigns WHERE cycle_id = $1 AND id = $2")
            .bind(cycle)
            .bind(id)
            .fetch_optional(&self.db.read)
            .await?
            .ok_or_else(|| Error::not_found(format!("cycles/{cycle}/campaigns/{id}")))?;
        Campaign::decode(row.try_get::<Vec<u8>, _>("body")?.as_slice()).map_err(Error::internal)
    }

    /// The campaign's context, cached for a short while.
    async fn context(&self, name: &str, field: &str) -> Result<Arc<CampaignCtx>, Error> {
        if let Some((ctx, at)) = self.contexts.lock().expect("contexts").get(name)
            && at.elapsed() < CONTEXT_TTL
        {
            return Ok(ctx.clone());
        }
        let ids = names::parse(name, "cycles/*/campaigns/*", field)?;
        let campaign = self.load_campaign(ids[0], ids[1]).await?;
        let group = self.plans.group(&campaign.group).await?;
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
            units: group.units.iter().cloned().collect(),
            answer_values: weighted(&scheme.answer_values)
                .into_iter()
                .map(|(k, v)| (k, v, scoring::to_units(v)))
                .collect(),
            categories: scheme
                .category_weights
                .iter()
                .map(|k| k.key.clone())
                .collect(),
        });
        self.contexts
            .lock()
            .expect("contexts")
            .insert(name.to_string(), (ctx.clone(), Instant::now()));
        Ok(ctx)
    }

    /// The phase gate of DOMAIN.md §2 (`jixiao_runtime::phases`) for a
    /// write of `method` to `cycle`; returns whether it is late.
    async fn admit(&self, p: &Principal, method: &str, cycle: &str) -> Result<bool, Error> {
        let path = format!("/jixiao.reviews.v1.ReviewsService/{method}");
        self.plans.admit(p, &path, cycle).await
    }

    /// PERMISSION_DENIED unless the caller is a platform bound to the campaign.
    fn require_bound(p: &Principal, ctx: &CampaignCtx) -> Result<(), Error> {
        if p.has(Role::SurveyPlatform) && ctx.platforms.contains(&p.subject) {
            Ok(())
        } else {
            Err(Error::denied(format!(
                "{} is not a survey platform bound to {}",
                p.subject, ctx.name
            )))
        }
    }

    fn require_mode(ctx: &CampaignCtx, mode: CampaignMode) -> Result<(), Error> {
        if ctx.mode == mode {
            Ok(())
        } else {
            Err(Error::precondition(
                "WRONG_MODE",
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

fn valid_external_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

fn rejection(id: &str, reason: &str, message: impl Into<String>) -> Rejection {
    Rejection {
        id: id.to_string(),
        reason: reason.into(),
        message: message.into(),
    }
}

/// Checks one response against its campaign and prepares it for storage.
/// This runs for every response pushed: it moves the request's strings
/// rather than copying them and keeps allocations to the packed answers.
fn prepare(ctx: &CampaignCtx, r: SurveyResponse) -> Result<NewResponse, Rejection> {
    let id = r.response_id.as_str();
    if !valid_external_id(id) {
        return Err(rejection(
            id,
            "INVALID",
            "response_id must be 1-128 letters, digits or -_.:",
        ));
    }
    if !ctx.units.contains(&r.unit) {
        return Err(rejection(
            id,
            "UNKNOWN_UNIT",
            format!("{:?} is not a unit of the campaign's group", r.unit),
        ));
    }
    if !ctx.categories.contains(&r.category) {
        return Err(rejection(
            id,
            "UNKNOWN_CATEGORY",
            format!(
                "{:?} is not a respondent category of the scheme",
                r.category
            ),
        ));
    }
    if !matches!(
        jixiao_proto::reviews::Channel::try_from(r.channel),
        Ok(jixiao_proto::reviews::Channel::Phone
            | jixiao_proto::reviews::Channel::InPerson
            | jixiao_proto::reviews::Channel::Online)
    ) {
        return Err(rejection(
            id,
            "INVALID",
            format!("channel {} is not PHONE, IN_PERSON or ONLINE", r.channel),
        ));
    }
    let at = match r.answer_time.as_ref().map(time::valid) {
        None => return Err(rejection(id, "INVALID", "answer_time is required")),
        Some(Err(e)) => return Err(rejection(id, "INVALID", format!("answer_time {e}"))),
        Some(Ok(ms)) => ms,
    };
    if ctx.open_ms.is_some_and(|o| at < o) || ctx.close_ms.is_some_and(|c| at > c) {
        return Err(rejection(
            id,
            "OUT_OF_WINDOW",
            "answered outside the campaign's open and close times",
        ));
    }
    if r.answers.is_empty() {
        return Err(rejection(id, "INVALID", "a response needs answers"));
    }
    let mut packed = String::with_capacity(r.answers.len() * 24);
    let mut asked: Vec<u16> = Vec::with_capacity(r.answers.len());
    let mut question_values = Vec::with_capacity(r.answers.len());
    let (mut sum, mut counted) = (0i64, 0i64);
    for (i, a) in r.answers.iter().enumerate() {
        // Platforms send answers in the questionnaire's order: look there
        // first.
        let q = if ctx.questions.get(i) == Some(&a.question) {
            Some(i)
        } else {
            ctx.questions.iter().position(|q| *q == a.question)
        };
        let Some(q) = q else {
            return Err(rejection(
                id,
                "UNKNOWN_QUESTION",
                format!("{:?} is not a question of the campaign", a.question),
            ));
        };
        let q = q as u16;
        if asked.contains(&q) {
            return Err(rejection(
                id,
                "INVALID",
                format!("question {} is answered twice", a.question),
            ));
        }
        asked.push(q);
        match ctx.answer_values.iter().find(|(k, _, _)| *k == a.answer) {
            Some((_, _, units)) => {
                question_values.push((q, *units));
                sum += units;
                counted += 1;
            }
            None if a.answer == DONT_KNOW => {}
            None => {
                return Err(rejection(
                    id,
                    "UNKNOWN_ANSWER",
                    format!("{:?} is not an answer of the scheme", a.answer),
                ));
            }
        }
        if !packed.is_empty() {
            packed.push(';');
        }
        packed.push_str(&a.question);
        packed.push('=');
        packed.push_str(&a.answer);
    }
    let mut h = Sha256::new();
    for part in [
        r.unit.as_bytes(),
        r.category.as_bytes(),
        &i64::from(r.channel).to_be_bytes(),
        &at.to_be_bytes(),
        packed.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let digest = i64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"));
    Ok(NewResponse {
        response_id: r.response_id,
        unit: r.unit,
        category: r.category,
        channel: r.channel,
        answer_ms: at,
        answers: packed,
        digest,
        value_units: (counted > 0).then(|| scoring::mean_units(sum, counted)),
        question_values,
    })
}

// ---------------------------------------------------------------- ingest

impl ReviewsApi {
    /// Checks a batch against its campaign: the caller must be bound to
    /// it; each response is prepared or rejected with its reason.
    /// `copy`: make the batch's `COPY` text now (PostgreSQL), worth it
    /// while the stream is pushing new responses.
    async fn check(
        &self,
        p: &Principal,
        req: PushResponsesRequest,
        gate: Option<&str>,
        copy: bool,
    ) -> Result<Checked, Error> {
        let ctx = self.context(&req.campaign, "campaign").await?;
        Self::require_bound(p, &ctx)?;
        if let Some(method) = gate {
            self.admit(p, method, &ctx.cycle).await?;
        }
        Self::require_mode(&ctx, CampaignMode::RawResponses)?;
        if req.responses.len() > MAX_BATCH {
            return Err(Error::invalid(
                "responses",
                format!("at most {MAX_BATCH} responses per batch"),
            ));
        }
        let mut rejected = Vec::new();
        let mut rows = Vec::with_capacity(req.responses.len());
        for r in req.responses {
            match prepare(&ctx, r) {
                Ok(row) => rows.push(row),
                Err(rej) => rejected.push(rej),
            }
        }
        let deltas = Deltas::of(&rows);
        let copy = {
            let wanted = copy;
            let mut copy = String::new();
            if wanted && self.pg.is_some() {
                copy.reserve(rows.len() * 200);
                ingest::copy_lines(&mut copy, &ctx.name, &rows);
            }
            copy
        };
        Ok(Checked {
            ctx,
            rows,
            rejected,
            deltas,
            copy,
        })
    }

    /// Stores checked batches of one campaign in one transaction.
    async fn commit(
        &self,
        p: &Principal,
        batches: Vec<Checked>,
    ) -> Result<PushResponsesResponse, Error> {
        let Some(ctx) = batches.first().map(|b| b.ctx.clone()) else {
            return Ok(PushResponsesResponse::default());
        };
        let mut out = PushResponsesResponse::default();
        let mut rows = Vec::with_capacity(batches.iter().map(|b| b.rows.len()).sum());
        let (mut deltas, mut copy) = (Deltas::default(), Vec::new());
        for b in batches {
            out.rejected.extend(b.rejected);
            rows.extend(b.rows);
            deltas.merge(b.deltas);
            copy.push(b.copy);
        }
        if copy.iter().any(String::is_empty) {
            copy.clear();
        }
        let (outcomes, change) = self.store(p, &ctx, &rows, &copy, &deltas).await?;
        self.changes.announce(change);
        for (row, o) in rows.iter().zip(outcomes) {
            match o {
                Outcome::Stored => out.accepted += 1,
                Outcome::Duplicate => out.duplicates += 1,
                Outcome::Conflict => out.rejected.push(rejection(
                    &row.response_id,
                    "CONFLICT",
                    "this response_id was stored with other content; it is not overwritten",
                )),
            }
        }
        Ok(out)
    }

    /// Validates and stores one batch; returns its summary.
    async fn push_batch(
        &self,
        p: &Principal,
        req: PushResponsesRequest,
    ) -> Result<PushResponsesResponse, Error> {
        let checked = self.check(p, req, Some("PushResponses"), false).await?;
        self.commit(p, vec![checked]).await
    }

    async fn store(
        &self,
        p: &Principal,
        ctx: &CampaignCtx,
        rows: &[NewResponse],
        copy: &[String],
        deltas: &Deltas,
    ) -> Result<(Vec<Outcome>, Option<Change>), Error> {
        if rows.is_empty() {
            return Ok((Vec::new(), None));
        }
        let batch = Batch {
            campaign: &ctx.name,
            cycle: &ctx.cycle,
            group: &ctx.group,
            questions: &ctx.questions,
            rows,
            copy,
            deltas,
        };
        match &self.pg {
            Some(pool) => {
                let mut tx = pool.begin().await?;
                let out = ingest::store_pg(&mut tx, p, &batch).await?;
                tx.commit().await?;
                Ok(out)
            }
            None => {
                let mut tx = self.db.write.begin().await?;
                let out = ingest::store_sqlite(&mut tx, p, &batch).await?;
                tx.commit().await?;
                // The checkpoint copies this batch's pages off the writer.
                self.db.committed();
                Ok(out)
            }
        }
    }

    /// A client stream. Batches are checked as they arrive while earlier
    /// ones are written; batches that queued up meanwhile are written
    /// together in one transaction (group commit), so a fast platform costs
    /// fewer commits. Every batch is durable once its transaction commits;
    /// the summary covers the whole stream.
    async fn stream(
        &self,
        p: Principal,
        mut input: Streaming<PushResponsesRequest>,
    ) -> Result<PushResponsesResponse, Error> {
        // Each batch is checked by a task of its own while the reader
        // decodes the next one; the handles queue in stream order.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<JoinHandle<Result<Checked, Error>>>(8);
        let (api, checker) = (self.clone(), p.clone());
        // A stream that is resending what is stored gains nothing from
        // COPY text made ahead.
        let resending = Arc::new(AtomicBool::new(false));
        let resent = resending.clone();
        let reader = tokio::spawn(async move {
            let mut admitted = HashMap::<String, Instant>::new();
            loop {
                let (next, last) = match input.message().await {
                    Ok(Some(m)) => {
                        let (api, checker) = (api.clone(), checker.clone());
                        let copy = !resent.load(Ordering::Relaxed);
                        // A campaign's phase gate is checked when the stream
                        // first sends to it and again once that check is
                        // ADMISSION_TTL old, so the batches of a stream in
                        // flight need not ask the plans service each.
                        let now = Instant::now();
                        let gate = match admitted.get(&m.campaign) {
                            Some(at) if now.duration_since(*at) < ADMISSION_TTL => None,
                            _ => {
                                admitted.insert(m.campaign.clone(), now);
                                Some("StreamResponses")
                            }
                        };
                        (
                            tokio::spawn(async move { api.check(&checker, m, gate, copy).await }),
                            false,
                        )
                    }
                    Ok(None) => return,
                    Err(s) => {
                        // The codec answers undecodable bytes as INVALID_ARGUMENT.
                        let e = if s.code() == tonic::Code::InvalidArgument {
                            Error::Malformed(
                                s.message()
                                    .trim_start_matches("the message could not be decoded: ")
                                    .to_string(),
                            )
                        } else {
                            Error::invalid("stream", format!("the stream broke: {}", s.message()))
                        };
                        (tokio::spawn(std::future::ready(Err(e))), true)
                    }
                };
                if tx.send(next).await.is_err() || last {
                    return;
                }
            }
        });
        let checked = |h: JoinHandle<Result<Checked, Error>>| async move {
            h.await.map_err(Error::internal)?
        };
        let mut total = PushResponsesResponse::default();
        let mut peeked = None;
        loop {
            let first = match peeked.take() {
                Some(c) => c,
                None => match rx.recv().await {
                    Some(h) => checked(h).await?,
                    None => break,
                },
            };
            let mut rows = first.rows.len();
            let mut group = vec![first];
            while rows < GROUP_COMMIT_ROWS {
                let Ok(h) = rx.try_recv() else { break };
                match checked(h).await {
                    Ok(c) if c.ctx.name == group[0].ctx.name => {
                        rows += c.rows.len();
                        group.push(c);
                    }
                    Ok(c) => {
                        peeked = Some(c);
                        break;
                    }
                    Err(e) => {
                        // Store what came before the failure, then report it.
                        self.commit(&p, group).await?;
                        return Err(e);
                    }
                }
            }
            let summary = self.commit(&p, group).await?;
            resending.store(summary.duplicates > summary.accepted, Ordering::Relaxed);
            total.accepted += summary.accepted;
            total.duplicates += summary.duplicates;
            total.rejected.extend(summary.rejected);
        }
        reader.abort();
        Ok(total)
    }

    async fn push_unit_results(
        &self,
        p: Principal,
        req: PushUnitResultsRequest,
    ) -> Result<PushUnitResultsResponse, Error> {
        let digest = idempotency::request_digest("PushUnitResults", &req);
        let ctx = self.context(&req.campaign, "campaign").await?;
        Self::require_bound(&p, &ctx)?;
        self.admit(&p, "PushUnitResults", &ctx.cycle).await?;
        Self::require_mode(&ctx, CampaignMode::UnitResults)?;
        let mut v = Violations::new();
        let mut rows = Vec::new();
        for (i, r) in req.results.iter().enumerate() {
            v.check(
                ctx.units.contains(&r.unit),
                format!("results[{i}].unit"),
                format!("{:?} is not a unit of the campaign's group", r.unit),
            );
            match decimal::figure(&r.index) {
                Ok(x) if x >= Decimal::ZERO && x <= Decimal::ONE => rows.push((
                    r.unit.clone(),
                    scoring::to_units(x),
                    i64::from(r.sample_size),
                )),
                Ok(_) => v.add(format!("results[{i}].index"), "must lie between 0 and 1"),
                Err(e) => v.add(format!("results[{i}].index"), e),
            }
            v.check(
                r.sample_size >= 0,
                format!("results[{i}].sample_size"),
                "must not be negative",
            );
        }
        v.into_result()?;
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        for (unit, index, sample) in &rows {
            sqlx::query(
                "INSERT INTO unit_results (campaign, unit_id, index_units, sample_size) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (campaign, unit_id) DO UPDATE SET index_units = excluded.index_units, sample_size = excluded.sample_size",
            )
            .bind(&ctx.name)
            .bind(unit)
            .bind(*index)
            .bind(*sample)
            .execute(&mut *tx)
            .await?;
        }
        let change = Changes::bump(&mut tx, &ctx.cycle, &ctx.group).await?;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "unit_results.push",
                resource: &ctx.name,
                reason: "",
                detail: json!({"results": rows.len()}),
            },
        )
        .await?;
        let out = PushUnitResultsResponse {
            accepted: rows.len() as i32,
        };
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "PushUnitResults",
            &digest,
            &out,
        )
        .await?;
        tx.commit().await?;
        self.changes.announce([change]);
        Ok(out)
    }

    async fn push_votes(
        &self,
        p: Principal,
        req: PushVotesRequest,
    ) -> Result<PushVotesResponse, Error> {
        let ctx = self.context(&req.campaign, "campaign").await?;
        Self::require_bound(&p, &ctx)?;
        self.admit(&p, "PushVotes", &ctx.cycle).await?;
        Self::require_mode(&ctx, CampaignMode::OnlineVotes)?;
        if req.votes.len() > MAX_BATCH {
            return Err(Error::invalid(
                "votes",
                format!("at most {MAX_BATCH} votes per batch"),
            ));
        }
        let mut out = PushVotesResponse::default();
        let mut tx = self.db.write.begin().await?;
        for vote in &req.votes {
            let id = vote.vote_id.as_str();
            let at = vote.cast_time.as_ref().map(time::valid);
            let value = ctx.answer_value(&vote.answer);
            let problem = if !valid_external_id(id) {
                Some((
                    "INVALID",
                    "vote_id must be 1-128 letters, digits or -_.:".to_string(),
                ))
            } else if vote.voter.trim().is_empty() || vote.voter.chars().count() > text::LABEL {
                Some((
                    "INVALID",
                    format!("voter is required, at most {} characters", text::LABEL),
                ))
            } else if !ctx.units.contains(&vote.unit) {
                Some((
                    "UNKNOWN_UNIT",
                    format!("{:?} is not a unit of the campaign's group", vote.unit),
                ))
            } else if value.is_none() && vote.answer != DONT_KNOW {
                Some((
                    "UNKNOWN_ANSWER",
                    format!("{:?} is not an answer of the scheme", vote.answer),
                ))
            } else if at.is_none() {
                Some(("INVALID", "cast_time is required".to_string()))
            } else if let Some(Err(e)) = &at {
                Some(("INVALID", format!("cast_time {e}")))
            } else if let Some(Ok(t)) = at
                && (ctx.open_ms.is_some_and(|o| t < o) || ctx.close_ms.is_some_and(|c| t > c))
            {
                Some((
                    "OUT_OF_WINDOW",
                    "cast outside the campaign's open and close times".to_string(),
                ))
            } else {
                None
            };
            if let Some((reason, message)) = problem {
                out.rejected.push(rejection(id, reason, message));
                continue;
            }
            let at = at.and_then(Result::ok).unwrap_or_default();
            let inserted = sqlx::query(
                "INSERT INTO votes (campaign, vote_id, voter, unit_id, answer, cast_ms) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (campaign, vote_id) DO NOTHING RETURNING vote_id",
            )
            .bind(&ctx.name)
            .bind(id)
            .bind(&vote.voter)
            .bind(&vote.unit)
            .bind(&vote.answer)
            .bind(at)
            .fetch_optional(&mut *tx)
            .await?;
            if inserted.is_none() {
                let stored = sqlx::query("SELECT voter, unit_id, answer, cast_ms FROM votes WHERE campaign = $1 AND vote_id = $2")
                    .bind(&ctx.name)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let same = stored.try_get::<String, _>("voter")? == vote.voter
                    && stored.try_get::<String, _>("unit_id")? == vote.unit
                    && stored.try_get::<String, _>("answer")? == vote.answer
                    && stored.try_get::<i64, _>("cast_ms")? == at;
                if same {
                    out.duplicates += 1;
                } else {
                    out.rejected.push(rejection(
                        id,
                        "CONFLICT",
                        "this vote_id was stored with other content",
                    ));
                }
                continue;
            }
            out.accepted += 1;
            // Only the voter's latest vote for the unit counts.
            let latest = sqlx::query("SELECT vote_id, cast_ms, counted, value_units FROM latest_votes WHERE campaign = $1 AND unit_id = $2 AND voter = $3")
                .bind(&ctx.name)
                .bind(&vote.unit)
                .bind(&vote.voter)
                .fetch_optional(&mut *tx)
                .await?;
            let (old_counted, old_value, newer) = match &latest {
                Some(l) => {
                    let (lid, lms): (String, i64) = (l.try_get("vote_id")?, l.try_get("cast_ms")?);
                    (
                        l.try_get::<i64, _>("counted")?,
                        l.try_get::<i64, _>("value_units")?,
                        (at, id) > (lms, lid.as_str()),
                    )
                }
                None => (0, 0, true),
            };
            if !newer {
                continue;
            }
            let (counted, units) = match value {
                Some(v) => (1i64, scoring::to_units(v)),
                None => (0, 0),
            };
            sqlx::query(
                "INSERT INTO latest_votes (campaign, unit_id, voter, vote_id, cast_ms, counted, value_units) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (campaign, unit_id, voter) DO UPDATE SET vote_id = excluded.vote_id, cast_ms = excluded.cast_ms,
                 counted = excluded.counted, value_units = excluded.value_units",
            )
            .bind(&ctx.name)
            .bind(&vote.unit)
            .bind(&vote.voter)
            .bind(id)
            .bind(at)
            .bind(counted)
            .bind(units)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO vote_tallies (campaign, unit_id, counted, value_units) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (campaign, unit_id) DO UPDATE SET counted = vote_tallies.counted + excluded.counted,
                 value_units = vote_tallies.value_units + excluded.value_units",
            )
            .bind(&ctx.name)
            .bind(&vote.unit)
            .bind(counted - old_counted)
            .bind(units - old_value)
            .execute(&mut *tx)
            .await?;
        }
        let change = if out.accepted > 0 {
            Some(Changes::bump(&mut tx, &ctx.cycle, &ctx.group).await?)
        } else {
            None
        };
        audit::append(
            &mut tx,
            &p,
            audit::Entry { action: "votes.push", resource: &ctx.name, reason: "", detail: json!({"accepted": out.accepted, "duplicates": out.duplicates, "rejected": out.rejected.len()}) },
        )
        .await?;
        tx.commit().await?;
        self.changes.announce(change);
        Ok(out)
    }
}

// ---------------------------------------------------------------- campaigns and ratings

impl ReviewsApi {
    async fn create_campaign(
        &self,
        p: Principal,
        req: CreateCampaignRequest,
    ) -> Result<Campaign, Error> {
        p.require(&[Role::Office], "create campaigns")?;
        let digest = idempotency::request_digest("CreateCampaign", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        self.admit(&p, "CreateCampaign", &cycle).await?;
        let mut c = req.campaign.clone().unwrap_or_default();
        let mut v = Violations::new();
        v.check(
            names::valid_id(&req.campaign_id),
            "campaign_id",
            "must be 1-63 lower-case letters, digits or dashes",
        );
        let mode = CampaignMode::try_from(c.mode).unwrap_or(CampaignMode::Unspecified);
        v.check(
            mode != CampaignMode::Unspecified,
            "campaign.mode",
            "must be RAW_RESPONSES, UNIT_RESULTS or ONLINE_VOTES",
        );
        text::required(&mut v, "campaign.title", &c.title, text::LABEL);
        v.check(
            !c.platforms.is_empty() && c.platforms.iter().all(|p| !p.trim().is_empty()),
            "campaign.platforms",
            "bind at least one platform",
        );
        if mode == CampaignMode::RawResponses {
            v.check(
                !c.questions.is_empty(),
                "campaign.questions",
                "a survey needs questions",
            );
        }
        let mut seen = HashSet::new();
        for (i, q) in c.questions.iter().enumerate() {
            v.check(
                valid_external_id(&q.id) && seen.insert(q.id.clone()),
                format!("campaign.questions[{i}].id"),
                "must be a unique id of letters, digits or -_.:",
            );
            text::required(
                &mut v,
                format!("campaign.questions[{i}].text"),
                &q.text,
                text::NOTE,
            );
        }
        let open = time::optional(&c.open_time, "campaign.open_time", &mut v);
        let close = time::optional(&c.close_time, "campaign.close_time", &mut v);
        if let (Some(o), Some(cl)) = (open, close) {
            v.check(o < cl, "campaign.close_time", "must come after open_time");
        }
        let group_ok = match names::group_name(&c.group, "campaign.group") {
            Ok((gc, _)) if gc == cycle => true,
            _ => {
                v.add(
                    "campaign.group",
                    format!("must be a group of cycles/{cycle}"),
                );
                false
            }
        };
        v.into_result()?;
        if group_ok {
            self.plans.group(&c.group).await.map_err(|e| match e {
                Error::NotFound { resource } => {
                    Error::invalid("campaign.group", format!("{resource} does not exist"))
                }
                e => e,
            })?;
        }
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let gid = c.group.rsplit('/').next().unwrap_or_default().to_string();
        // One survey campaign (raw or unit results) and one vote campaign per group.
        let survey_modes = [
            CampaignMode::RawResponses as i64,
            CampaignMode::UnitResults as i64,
        ];
        let existing =
            sqlx::query("SELECT id, mode FROM campaigns WHERE cycle_id = $1 AND group_id = $2")
                .bind(&cycle)
                .bind(&gid)
                .fetch_all(&mut *tx)
                .await?;
        for r in &existing {
            let m: i64 = r.try_get("mode")?;
            let id: String = r.try_get("id")?;
            if id == req.campaign_id {
                return Err(Error::AlreadyExists {
                    resource: format!("cycles/{cycle}/campaigns/{id}"),
                });
            }
            if m == mode as i64
                || (survey_modes.contains(&m) && survey_modes.contains(&(mode as i64)))
            {
                return Err(Error::precondition(
                    "CAMPAIGN_EXISTS",
                    format!("{} already has campaign {id} of this kind", c.group),
                ));
            }
        }
        c.name = format!("cycles/{cycle}/campaigns/{}", req.campaign_id);
        sqlx::query("INSERT INTO campaigns (cycle_id, id, group_id, body, mode) VALUES ($1, $2, $3, $4, $5)")
            .bind(&cycle)
            .bind(&req.campaign_id)
            .bind(&gid)
            .bind(c.encode_to_vec())
            .bind(mode as i64)
            .execute(&mut *tx)
            .await?;
        for platform in &c.platforms {
            sqlx::query("INSERT INTO campaign_platforms (cycle_id, campaign_id, platform) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(&cycle)
                .bind(&req.campaign_id)
                .bind(platform)
                .execute(&mut *tx)
                .await?;
        }
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "campaigns.create",
                resource: &c.name,
                reason: "",
                detail: json!({"mode": mode.as_str_name(), "platforms": c.platforms}),
            },
        )
        .await?;
        idempotency::remember(&mut tx, &p, &req.request_id, "CreateCampaign", &digest, &c).await?;
        tx.commit().await?;
        Ok(c)
    }

    async fn get_campaign(&self, p: Principal, req: GetCampaignRequest) -> Result<Campaign, Error> {
        let ids = names::parse(&req.name, "cycles/*/campaigns/*", "name")?;
        let c = self.load_campaign(ids[0], ids[1]).await?;
        if !(p.has_any(READERS) || c.platforms.contains(&p.subject)) {
            return Err(Error::denied(format!(
                "{} may not read {}",
                p.subject, req.name
            )));
        }
        Ok(c)
    }

    async fn list_campaigns(
        &self,
        p: Principal,
        req: ListCampaignsRequest,
    ) -> Result<ListCampaignsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let pg = Page::from_request(req.page_size, &req.page_token, 50, 500)?;
        let all = p.has_any(READERS);
        if !all && !p.has(Role::SurveyPlatform) {
            return Err(Error::denied(format!(
                "{} may not list campaigns",
                p.subject
            )));
        }
        let rows = sqlx::query(
            "SELECT c.body FROM campaigns c WHERE c.cycle_id = $1 AND ($2 = 1 OR EXISTS (SELECT 1 FROM campaign_platforms p
             WHERE p.cycle_id = c.cycle_id AND p.campaign_id = c.id AND p.platform = $3)) ORDER BY c.id LIMIT $4 OFFSET $5",
        )
        .bind(&cycle)
        .bind(i64::from(all))
        .bind(&p.subject)
        .bind(pg.fetch_limit())
        .bind(pg.offset)
        .fetch_all(&self.db.read)
        .await?;
        let mut campaigns = rows
            .iter()
            .map(|r| {
                Campaign::decode(r.try_get::<Vec<u8>, _>("body")?.as_slice())
                    .map_err(Error::internal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next_page_token = pg.next_token(&mut campaigns);
        Ok(ListCampaignsResponse {
            campaigns,
            next_page_token,
        })
    }

    async fn submit_rating(
        &self,
        p: Principal,
        req: SubmitMutualRatingRequest,
    ) -> Result<MutualRating, Error> {
        let digest = idempotency::request_digest("SubmitMutualRating", &req);
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let r = req.rating.clone().unwrap_or_default();
        let rater = names::unit_id(&r.rater, "rating.rater")?.to_string();
        if !p.acts_for(Role::Unit, &rater) {
            return Err(Error::denied(format!(
                "{} may only rate as its own unit",
                p.subject
            )));
        }
        self.admit(&p, "SubmitMutualRating", &cycle).await?;
        let mut v = Violations::new();
        v.check(
            r.ratee != r.rater,
            "rating.ratee",
            "a unit cannot rate itself",
        );
        let groups = self.plans.groups(&cycle).await?;
        let ratee_group = groups.iter().find(|g| g.units.contains(&r.ratee));
        v.check(
            groups.iter().any(|g| g.units.contains(&r.rater)),
            "rating.rater",
            format!("{} is not assessed in cycles/{cycle}", r.rater),
        );
        let Some(ratee_group) = ratee_group else {
            v.add(
                "rating.ratee",
                format!("{:?} is not assessed in cycles/{cycle}", r.ratee),
            );
            return Err(v.into_result().unwrap_err());
        };
        let scheme: Scheme = self.plans.scheme(&ratee_group.name).await?;
        let value = if scheme.mutual_scale == MutualScale::Numeric as i32 {
            match decimal::figure(&r.score) {
                Ok(s) if s >= Decimal::ZERO && s <= Decimal::ONE_HUNDRED => {
                    Some(s / Decimal::ONE_HUNDRED)
                }
                Ok(_) => {
                    v.add("rating.score", "must lie between 0 and 100");
                    None
                }
                Err(e) => {
                    v.add("rating.score", e);
                    None
                }
            }
        } else {
            let grades = weighted(&scheme.grade_values);
            let found = grades.iter().find(|(k, _)| *k == r.grade).map(|(_, v)| *v);
            v.check(
                found.is_some(),
                "rating.grade",
                format!(
                    "must be one of {}",
                    grades
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            found
        };
        v.into_result()?;
        let value = value.unwrap_or_default();
        let mut tx = self.db.write.begin().await?;
        if let Some(done) = idempotency::replay(&mut tx, &p, &req.request_id, &digest).await? {
            return Ok(done);
        }
        let now = now_ms();
        let score = decimal::optional_figure(&r.score)
            .ok()
            .flatten()
            .map(decimal::canonical)
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO mutual_ratings (cycle_id, rater, ratee, grade, score, value_units, rate_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (cycle_id, rater, ratee) DO UPDATE SET grade = excluded.grade, score = excluded.score,
             value_units = excluded.value_units, rate_ms = excluded.rate_ms",
        )
        .bind(&cycle)
        .bind(&r.rater)
        .bind(&r.ratee)
        .bind(&r.grade)
        .bind(&score)
        .bind(scoring::to_units(value))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let gid = ratee_group.name.rsplit('/').next().unwrap_or_default();
        let change = Changes::bump(&mut tx, &cycle, gid).await?;
        let stored = MutualRating {
            name: format!(
                "cycles/{cycle}/mutualRatings/{rater}~{}",
                r.ratee.trim_start_matches("units/")
            ),
            rater: r.rater.clone(),
            ratee: r.ratee.clone(),
            grade: r.grade.clone(),
            score: decimal::optional_figure(&r.score)
                .ok()
                .flatten()
                .map(to_proto),
            rate_time: Some(timestamp(now)),
        };
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "mutual_ratings.submit",
                resource: &stored.name,
                reason: "",
                detail: json!({"grade": r.grade, "score": score}),
            },
        )
        .await?;
        idempotency::remember(
            &mut tx,
            &p,
            &req.request_id,
            "SubmitMutualRating",
            &digest,
            &stored,
        )
        .await?;
        tx.commit().await?;
        self.changes.announce([change]);
        Ok(stored)
    }

    async fn list_ratings(
        &self,
        p: Principal,
        req: ListMutualRatingsRequest,
    ) -> Result<ListMutualRatingsResponse, Error> {
        let cycle = names::cycle_id(&req.parent, "parent")?.to_string();
        let rater = names::unit_id(&req.rater, "rater")?.to_string();
        if !(p.has_any(&[Role::Office, Role::Evaluator]) || p.acts_for(Role::Unit, &rater)) {
            return Err(Error::denied(format!(
                "{} may not read the ratings given by {}",
                p.subject, req.rater
            )));
        }
        let pg = Page::from_request(req.page_size, &req.page_token, 100, 1000)?;
        let rows = sqlx::query(
            "SELECT ratee, grade, score, rate_ms FROM mutual_ratings WHERE cycle_id = $1 AND rater = $2 ORDER BY ratee LIMIT $3 OFFSET $4",
        )
        .bind(&cycle)
        .bind(&req.rater)
        .bind(pg.fetch_limit())
        .bind(pg.offset)
        .fetch_all(&self.db.read)
        .await?;
        let mut ratings = rows
            .iter()
            .map(|r| {
                let ratee: String = r.try_get("ratee")?;
                let score: String = r.try_get("score")?;
                Ok(MutualRating {
                    name: format!(
                        "cycles/{cycle}/mutualRatings/{rater}~{}",
                        ratee.trim_start_matches("units/")
                    ),
                    rater: req.rater.clone(),
                    ratee,
                    grade: r.try_get("grade")?,
                    score: if score.is_empty() {
                        None
                    } else {
                        Some(to_proto(decimal::from_db(&score)?))
                    },
                    rate_time: Some(timestamp(r.try_get("rate_ms")?)),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let next_page_token = pg.next_token(&mut ratings);
        Ok(ListMutualRatingsResponse {
            ratings,
            next_page_token,
        })
    }

    async fn accept_sample(
        &self,
        p: Principal,
        req: AcceptInsufficientSampleRequest,
    ) -> Result<UnitReviewScore, Error> {
        p.require(&[Role::Office], "accept small samples")?;
        text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "say why the sample is accepted",
        )?;
        let ctx = self.context(&req.campaign, "campaign").await?;
        self.admit(&p, "AcceptInsufficientSample", &ctx.cycle)
            .await?;
        if !ctx.units.contains(&req.unit) {
            return Err(Error::invalid(
                "unit",
                format!("{:?} is not a unit of the campaign's group", req.unit),
            ));
        }
        let mut tx = self.db.write.begin().await?;
        sqlx::query(
            "INSERT INTO sample_acceptances (campaign, unit_id, reason, accepted_by, accept_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (campaign, unit_id) DO UPDATE SET reason = excluded.reason, accepted_by = excluded.accepted_by, accept_ms = excluded.accept_ms",
        )
        .bind(&ctx.name)
        .bind(&req.unit)
        .bind(req.reason.trim())
        .bind(&p.subject)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let change = Changes::bump(&mut tx, &ctx.cycle, &ctx.group).await?;
        audit::append(
            &mut tx,
            &p,
            audit::Entry {
                action: "samples.accept",
                resource: &ctx.name,
                reason: req.reason.trim(),
                detail: json!({"unit": req.unit}),
            },
        )
        .await?;
        tx.commit().await?;
        self.changes.announce([change]);
        let scores = self
            .scores(&format!("cycles/{}/groups/{}", ctx.cycle, ctx.group), 0)
            .await?;
        scores
            .units
            .into_iter()
            .find(|u| u.unit == req.unit)
            .ok_or_else(|| Error::not_found(req.unit.clone()))
    }
}

// ---------------------------------------------------------------- scores

/// The stored figures a group's review scores are computed from.
struct Figures {
    /// The survey campaign and its mode.
    survey: Option<(String, CampaignMode)>,
    /// (unit, category) → running tally.
    tallies: HashMap<(String, String), Tally>,
    /// unit → (index units, sample size), in unit-results mode.
    results: HashMap<String, (i64, i64)>,
    /// Units whose small sample the office accepted.
    accepted: HashSet<String>,
    /// unit → (counted votes, value units).
    vote_tallies: HashMap<String, (i64, i64)>,
    /// ratee → the values of its latest ratings.
    ratings: HashMap<String, Vec<Decimal>>,
}

impl ReviewsApi {
    async fn figures(&self, cycle: &str, gid: &str) -> Result<Figures, Error> {
        let read = &self.db.read;
        let campaigns =
            sqlx::query("SELECT id, mode FROM campaigns WHERE cycle_id = $1 AND group_id = $2")
                .bind(cycle)
                .bind(gid)
                .fetch_all(read)
                .await?;
        let mut survey: Option<(String, CampaignMode)> = None;
        let mut votes: Option<String> = None;
        for r in &campaigns {
            let name = format!("cycles/{cycle}/campaigns/{}", r.try_get::<String, _>("id")?);
            match CampaignMode::try_from(r.try_get::<i64, _>("mode")? as i32) {
                Ok(m @ (CampaignMode::RawResponses | CampaignMode::UnitResults)) => {
                    survey = Some((name, m))
                }
                Ok(CampaignMode::OnlineVotes) => votes = Some(name),
                _ => {}
            }
        }
        let survey_name = survey.as_ref().map(|s| s.0.clone()).unwrap_or_default();
        let raw = matches!(survey, Some((_, CampaignMode::RawResponses)));
        let rows = |sql: &'static str, bind: String| async move {
            sqlx::query(sql).bind(bind).fetch_all(read).await
        };
        let (survey_rows, accepted_rows, vote_rows, rating_rows) = tokio::try_join!(
            rows(
                if raw {
                    "SELECT unit_id, category, responses, value_units FROM survey_tallies WHERE campaign = $1"
                } else {
                    "SELECT unit_id, index_units, sample_size FROM unit_results WHERE campaign = $1"
                },
                survey_name.clone(),
            ),
            rows(
                "SELECT unit_id FROM sample_acceptances WHERE campaign = $1",
                survey_name,
            ),
            rows(
                "SELECT unit_id, counted, value_units FROM vote_tallies WHERE campaign = $1",
                votes.unwrap_or_default(),
            ),
            rows(
                "SELECT ratee, value_units FROM mutual_ratings WHERE cycle_id = $1",
                cycle.to_string(),
            ),
        )?;
        let mut f = Figures {
            survey,
            tallies: HashMap::new(),
            results: HashMap::new(),
            accepted: HashSet::new(),
            vote_tallies: HashMap::new(),
            ratings: HashMap::new(),
        };
        for r in survey_rows {
            if raw {
                f.tallies.insert(
                    (r.try_get("unit_id")?, r.try_get("category")?),
                    Tally {
                        responses: r.try_get("responses")?,
                        value_units: r.try_get("value_units")?,
                    },
                );
            } else {
                f.results.insert(
                    r.try_get("unit_id")?,
                    (r.try_get("index_units")?, r.try_get("sample_size")?),
                );
            }
        }
        for r in accepted_rows {
            f.accepted.insert(r.try_get("unit_id")?);
        }
        for r in vote_rows {
            f.vote_tallies.insert(
                r.try_get("unit_id")?,
                (r.try_get("counted")?, r.try_get("value_units")?),
            );
        }
        for r in rating_rows {
            f.ratings
                .entry(r.try_get("ratee")?)
                .or_default()
                .push(scoring::from_units(r.try_get("value_units")?));
        }
        Ok(f)
    }

    /// The review scores of a group, from the running tallies.
    async fn scores(&self, group_name: &str, known: i64) -> Result<GroupReviewScores, Error> {
        let (cycle, gid) = names::group_name(group_name, "group")?;
        // Read before the figures: a change committed meanwhile carries a
        // later revision, so a follower never takes old figures for new.
        let revision = Changes::revision(&self.db, cycle, gid).await?;
        if unchanged_since(known, revision) {
            return Ok(GroupReviewScores {
                group: group_name.to_string(),
                revision,
                unchanged: true,
                ..Default::default()
            });
        }
        // Under ingest every round trip queues; these go out together.
        let (group, scheme, figures) = tokio::try_join!(
            self.plans.group(group_name),
            self.plans.scheme(group_name),
            self.figures(cycle, gid),
        )?;
        let Figures {
            survey,
            tallies,
            results,
            accepted,
            vote_tallies,
            ratings,
        } = figures;
        let max = |d: &Option<jixiao_proto::Decimal>| decimal::figure(d).unwrap_or_default();
        let (survey_max, online_max, mutual_max) = (
            max(&scheme.survey_max),
            max(&scheme.online_max),
            max(&scheme.mutual_max),
        );
        let weights = weighted(&scheme.category_weights);
        let trim = usize::try_from(scheme.mutual_trim_min_raters).unwrap_or(5);
        let min_sample = i64::from(scheme.min_sample);
        let units = group
            .units
            .iter()
            .map(|unit| {
                let mut row = UnitReviewScore {
                    unit: unit.clone(),
                    ..Default::default()
                };
                match &survey {
                    Some((_, CampaignMode::RawResponses)) => {
                        let tally = |c: &str| {
                            tallies
                                .get(&(unit.clone(), c.to_string()))
                                .copied()
                                .unwrap_or_default()
                        };
                        let (index, missing) = scoring::satisfaction_index(&weights, tally);
                        row.survey_sample = weights.iter().map(|(c, _)| tally(c).responses).sum();
                        row.categories = weights
                            .iter()
                            .map(|(c, _)| CategoryFigure {
                                category: c.clone(),
                                responses: tally(c).responses,
                                mean: tally(c).mean().map(|m| {
                                    to_proto(decimal::round_half_away(m, scoring::SCORE_DP))
                                }),
                            })
                            .collect();
                        if let Some(index) = index {
                            row.satisfaction_index =
                                Some(to_proto(decimal::round_half_away(index, scoring::SCORE_DP)));
                            row.survey = Some(to_proto(scoring::score(survey_max, index)));
                        }
                        if !missing.is_empty() {
                            row.flags.push(ReviewFlag::MissingCategory as i32);
                        }
                    }
                    Some((_, CampaignMode::UnitResults)) => {
                        if let Some((index, sample)) = results.get(unit) {
                            let index = scoring::from_units(*index);
                            row.satisfaction_index = Some(to_proto(index));
                            row.survey = Some(to_proto(scoring::score(survey_max, index)));
                            row.survey_sample = *sample;
                        }
                    }
                    _ => {}
                }
                if row.survey.is_none() {
                    row.flags.push(ReviewFlag::NoSurvey as i32);
                } else if row.survey_sample < min_sample && !accepted.contains(unit) {
                    row.flags.push(ReviewFlag::InsufficientSample as i32);
                }
                match vote_tallies.get(unit) {
                    Some((n, v)) if *n > 0 => {
                        row.votes = *n;
                        row.online = Some(to_proto(scoring::score(
                            online_max,
                            scoring::from_units(*v) / Decimal::from(*n),
                        )));
                    }
                    _ => row.flags.push(ReviewFlag::NoVotes as i32),
                }
                match ratings
                    .get(unit)
                    .and_then(|r| scoring::mutual_mean(r, trim).map(|m| (r.len(), m)))
                {
                    Some((n, mean)) => {
                        row.raters = n as i32;
                        row.mutual = Some(to_proto(scoring::score(mutual_max, mean)));
                    }
                    None => row.flags.push(ReviewFlag::NoRatings as i32),
                }
                row
            })
            .collect();
        Ok(GroupReviewScores {
            group: group_name.to_string(),
            units,
            revision,
            unchanged: false,
        })
    }

    async fn group_scores(
        &self,
        p: Principal,
        req: GetGroupReviewScoresRequest,
    ) -> Result<GroupReviewScores, Error> {
        p.require(READERS, "read group review scores")?;
        self.scores(&req.group, req.known_revision).await
    }

    async fn verify_audit(
        &self,
        p: Principal,
        _req: VerifyAuditChainRequest,
    ) -> Result<VerifyAuditChainResponse, Error> {
        audit::verify_for_readers(&self.db.read, &p).await
    }

    async fn list_audit(
        &self,
        p: Principal,
        req: ListAuditRecordsRequest,
    ) -> Result<ListAuditRecordsResponse, Error> {
        audit::list_for_readers(&self.db.read, &p, &req).await
    }
}

type ChangeStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<ReviewChange, Status>> + Send>>;

#[tonic::async_trait]
impl ReviewsService for ReviewsApi {
    async fn create_campaign(&self, req: Request<CreateCampaignRequest>) -> Reply<Campaign> {
        checked!(DOMAIN, self, req, create_campaign)
    }
    async fn get_campaign(&self, req: Request<GetCampaignRequest>) -> Reply<Campaign> {
        checked!(DOMAIN, self, req, get_campaign)
    }
    async fn list_campaigns(
        &self,
        req: Request<ListCampaignsRequest>,
    ) -> Reply<ListCampaignsResponse> {
        checked!(DOMAIN, self, req, list_campaigns)
    }
    async fn stream_responses(
        &self,
        req: Request<Streaming<PushResponsesRequest>>,
    ) -> Reply<PushResponsesResponse> {
        checked!(DOMAIN, self, req, stream)
    }
    async fn push_responses(
        &self,
        req: Request<PushResponsesRequest>,
    ) -> Reply<PushResponsesResponse> {
        let p = principal(&req)?;
        reply(DOMAIN, self.push_batch(&p, req.into_inner()).await)
    }
    async fn push_unit_results(
        &self,
        req: Request<PushUnitResultsRequest>,
    ) -> Reply<PushUnitResultsResponse> {
        checked!(DOMAIN, self, req, push_unit_results)
    }
    async fn push_votes(&self, req: Request<PushVotesRequest>) -> Reply<PushVotesResponse> {
        checked!(DOMAIN, self, req, push_votes)
    }
    async fn submit_mutual_rating(
        &self,
        req: Request<SubmitMutualRatingRequest>,
    ) -> Reply<MutualRating> {
        checked!(DOMAIN, self, req, submit_rating)
    }
    async fn list_mutual_ratings(
        &self,
        req: Request<ListMutualRatingsRequest>,
    ) -> Reply<ListMutualRatingsResponse> {
        checked!(DOMAIN, self, req, list_ratings)
    }
    async fn accept_insufficient_sample(
        &self,
        req: Request<AcceptInsufficientSampleRequest>,
    ) -> Reply<UnitReviewScore> {
        checked!(DOMAIN, self, req, accept_sample)
    }
    async fn get_group_review_scores(
        &self,
        req: Request<GetGroupReviewScoresRequest>,
    ) -> Reply<GroupReviewScores> {
        checked!(DOMAIN, self, req, group_scores)
    }

    type WatchReviewChangesStream = ChangeStream;

    async fn watch_review_changes(
        &self,
        req: Request<WatchReviewChangesRequest>,
    ) -> Reply<ChangeStream> {
        let p = principal(&req)?;
        let run = async {
            let changes = self
                .changes
                .watch_for(&self.db, &p, &req.get_ref().cycle)
                .await?;
            let stream = changes.map(|c| {
                Ok(ReviewChange {
                    group: c.group,
                    revision: c.revision,
                })
            });
            Ok::<ChangeStream, Error>(Box::pin(stream))
        };
        reply(DOMAIN, run.await)
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
