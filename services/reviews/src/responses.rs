//! Survey responses (DOMAIN.md §6) pushed by platforms, in batches or as a
//! client stream: each response is checked against its campaign and
//! stored once under its platform-unique id (a retried push changes
//! nothing); batches queued behind a write are committed together.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use futures::{Stream, StreamExt};
use jixiao_proto::reviews::{CampaignMode, PushResponsesResponse, Rejection};
use jixiao_runtime::{
    Error, Principal, bulk,
    changes::{Change, Changes},
    revisions, text, time,
};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::{
    api::{
        ADMISSION_TTL, CampaignCtx, DONT_KNOW, GROUP_COMMIT_ROWS, MAX_BATCH, ReviewsApi, rejection,
        valid_external_id,
    },
    ingest::{self, Batch, Deltas, NewResponse, Outcome},
    quality, scoring,
    wire::{self, Response},
};

/// How many refusals a stream's answer lists; the rest are only counted,
/// so that a stream of a million refusals still answers well within a
/// client's default 4 MB message limit. A batch's are all listed.
const MAX_LISTED: usize = 1_000;

/// A batch checked against its campaign, ready to store.
struct Checked {
    ctx: Arc<CampaignCtx>,
    rows: Vec<NewResponse>,
    rejected: Vec<Rejection>,
    /// Responses refused as out of window, for the screening.
    outside: Vec<ingest::Outside>,
    /// Made here, while the batch before is being written: the rows'
    /// tally deltas and, on PostgreSQL, their `COPY` text.
    deltas: Deltas,
    copy: String,
    /// `rows`' share of a group commit, with its fingerprint.
    part: ingest::Part,
}

/// Why a response was refused; an out-of-window one is also kept for the
/// OUTSIDE_WINDOW screening.
struct Refused {
    rejection: Rejection,
    outside: Option<Box<ingest::Outside>>,
}

impl From<Rejection> for Refused {
    fn from(rejection: Rejection) -> Refused {
        Refused {
            rejection,
            outside: None,
        }
    }
}

/// Checks one response against its campaign and prepares it for storage.
/// This runs for every response pushed: it reads the batch's strings in
/// place and copies only those it stores.
fn prepare(ctx: &CampaignCtx, r: Response<'_>) -> Result<NewResponse, Refused> {
    let id = r.response_id;
    let (unit, category) = (r.unit, r.category);
    if !valid_external_id(id) {
        return Err(rejection(
            id,
            crate::Refusal::Invalid,
            "response_id must be 1-128 letters, digits or -_.:",
        )
        .into());
    }
    // A field left out is the sender's slip, not a lookup that missed.
    for (field, value) in [("unit", unit), ("category", category)] {
        if value.is_empty() {
            return Err(
                rejection(id, crate::Refusal::Invalid, format!("{field} is required")).into(),
            );
        }
    }
    if !ctx.units.contains(unit) {
        return Err(rejection(
            id,
            crate::Refusal::UnknownUnit,
            format!(
                "{:?} is not a unit of the campaign's group",
                text::echo(unit)
            ),
        )
        .into());
    }
    if !ctx.categories.iter().any(|c| c == category) {
        return Err(rejection(
            id,
            crate::Refusal::UnknownCategory,
            format!(
                "{:?} is not a respondent category of the scheme",
                text::echo(category)
            ),
        )
        .into());
    }
    if !matches!(
        jixiao_proto::reviews::Channel::try_from(r.channel),
        Ok(jixiao_proto::reviews::Channel::Phone
            | jixiao_proto::reviews::Channel::InPerson
            | jixiao_proto::reviews::Channel::Online)
    ) {
        return Err(rejection(
            id,
            crate::Refusal::Invalid,
            format!("channel {} is not PHONE, IN_PERSON or ONLINE", r.channel),
        )
        .into());
    }
    let at = match r.answer_time.as_ref().map(time::valid) {
        None => {
            return Err(rejection(id, crate::Refusal::Invalid, "answer_time is required").into());
        }
        Some(Err(e)) => {
            return Err(rejection(id, crate::Refusal::Invalid, format!("answer_time {e}")).into());
        }
        Some(Ok(ms)) => ms,
    };
    if ctx.open_ms.is_some_and(|o| at < o) || ctx.close_ms.is_some_and(|c| at > c) {
        return Err(Refused {
            rejection: rejection(
                id,
                crate::Refusal::OutOfWindow,
                "answered outside the campaign's open and close times",
            ),
            outside: Some(Box::new(ingest::Outside {
                response_id: id.to_owned(),
                unit: unit.to_owned(),
                answer_ms: at,
            })),
        });
    }
    if r.answers.is_empty() {
        return Err(rejection(id, crate::Refusal::Invalid, "a response needs answers").into());
    }
    let mut packed = String::with_capacity(r.answers.len() * 24);
    let mut asked: Vec<u16> = Vec::with_capacity(r.answers.len());
    let mut question_values = Vec::with_capacity(r.answers.len());
    let (mut sum, mut counted) = (0i64, 0i64);
    for (i, a) in r.answers.iter().enumerate() {
        let (question, answer) = (a.question, a.answer);
        // Platforms send answers in the questionnaire's order: look there
        // first.
        let q = if ctx.questions.get(i).is_some_and(|q| q == question) {
            Some(i)
        } else {
            ctx.questions.iter().position(|q| q == question)
        };
        let Some(q) = q else {
            return Err(rejection(
                id,
                crate::Refusal::UnknownQuestion,
                format!(
                    "{:?} is not a question of the campaign",
                    text::echo(question)
                ),
            )
            .into());
        };
        let q = q as u16;
        if asked.contains(&q) {
            return Err(rejection(
                id,
                crate::Refusal::Invalid,
                format!("question {} is answered twice", text::echo(question)),
            )
            .into());
        }
        asked.push(q);
        match ctx.answer_values.iter().find(|(k, _, _)| k == answer) {
            Some((_, _, units)) => {
                question_values.push((q, *units));
                sum += units;
                counted += 1;
            }
            None if answer == DONT_KNOW => {}
            None => {
                return Err(rejection(
                    id,
                    crate::Refusal::UnknownAnswer,
                    format!("{:?} is not an answer of the scheme", text::echo(answer)),
                )
                .into());
            }
        }
        if !packed.is_empty() {
            packed.push(';');
        }
        packed.push_str(question);
        packed.push('=');
        packed.push_str(answer);
    }
    let respondent = r.respondent;
    if !respondent.is_empty()
        && (respondent.trim().is_empty()
            || respondent.chars().count() > 128
            || respondent.chars().any(char::is_control))
    {
        return Err(rejection(
            id,
            crate::Refusal::Invalid,
            "respondent must be 1-128 characters, not blank, none of them control characters",
        )
        .into());
    }
    let mut h = Sha256::new();
    for part in [
        unit.as_bytes(),
        category.as_bytes(),
        &i64::from(r.channel).to_be_bytes(),
        &at.to_be_bytes(),
        packed.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    // Only a keyed response hashes its key: digests stored before keys
    // existed stay those of their content.
    if !respondent.is_empty() {
        h.update((respondent.len() as u64).to_be_bytes());
        h.update(respondent.as_bytes());
    }
    let marks = match &ctx.screen {
        Some(s) if counted > 0 => {
            let codes = r.answers.iter().map(|a| a.answer);
            let mut marks = 0;
            if quality::straight_lined(codes, s.straight_min_answers) {
                marks |= ingest::STRAIGHT;
            }
            if quality::late(at, ctx.close_ms, s.surge_window_ms) {
                marks |= ingest::LATE;
            }
            marks
        }
        _ => 0,
    };
    let digest = i64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"));
    Ok(NewResponse {
        response_id: id.to_owned(),
        unit: unit.to_owned(),
        category: category.to_owned(),
        channel: r.channel,
        answer_ms: at,
        answers: packed,
        digest,
        value_units: (counted > 0).then(|| scoring::mean_units(sum, counted)),
        question_values,
        respondent: respondent.to_owned(),
        marks,
    })
}

/// A stored response's value and per-question values from its packed
/// answers (`q1=satisfied;q2=dont_know`), computed as `prepare` computed
/// them: an exclusion takes out exactly what the ingest added.
pub(crate) fn values_of(ctx: &CampaignCtx, packed: &str) -> (Option<i64>, Vec<(u16, i64)>) {
    let (mut sum, mut counted, mut values) = (0i64, 0i64, Vec::new());
    for (question, answer) in packed.split(';').filter_map(|a| a.split_once('=')) {
        let Some(q) = ctx.questions.iter().position(|id| id == question) else {
            continue;
        };
        if let Some((_, _, units)) = ctx.answer_values.iter().find(|(k, _, _)| k == answer) {
            values.push((q as u16, *units));
            sum += units;
            counted += 1;
        }
    }
    (
        (counted > 0).then(|| scoring::mean_units(sum, counted)),
        values,
    )
}

impl ReviewsApi {
    /// Checks a batch against its campaign: the caller must be bound to
    /// it; each response is prepared or rejected with its reason.
    /// `copy`: make the batch's `COPY` text now (PostgreSQL), worth it
    /// while the stream is pushing new responses.
    async fn check(
        &self,
        p: &Principal,
        req: wire::Batch,
        gate: Option<&str>,
        copy: bool,
    ) -> Result<Checked, Error> {
        let ctx = self.context(req.campaign(), "campaign").await?;
        Self::require_bound(p, &ctx)?;
        if let Some(method) = gate {
            self.admit(p, method, &ctx.cycle).await?;
        }
        Self::require_mode(&ctx, CampaignMode::RawResponses)?;
        if req.responses().len() > MAX_BATCH {
            return Err(Error::invalid(
                "responses",
                format!("at most {MAX_BATCH} responses per batch"),
            ));
        }
        let (mut rejected, mut outside) = (Vec::new(), Vec::new());
        let mut rows = Vec::with_capacity(req.responses().len());
        for r in req.responses() {
            match prepare(&ctx, r) {
                Ok(row) => rows.push(row),
                Err(refused) => {
                    rejected.push(refused.rejection);
                    if ctx.screen.is_some() {
                        outside.extend(refused.outside.map(|o| *o));
                    }
                }
            }
        }
        let deltas = Deltas::of(&rows, ctx.screen.is_some());
        let part = ingest::Part {
            rows: rows.len(),
            fingerprint: ingest::fingerprint(&ctx.name, &rows),
        };
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
            outside,
            deltas,
            copy,
            part,
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
        let (mut deltas, mut copy, mut outside) = (Deltas::default(), Vec::new(), Vec::new());
        let mut parts = Vec::with_capacity(batches.len());
        for b in batches {
            parts.push(b.part);
            out.rejected.extend(b.rejected);
            outside.extend(b.outside);
            rows.extend(b.rows);
            deltas.merge(b.deltas);
            copy.push(b.copy);
        }
        if copy.iter().any(String::is_empty) {
            copy.clear();
        }
        let batch = Batch {
            campaign: &ctx.name,
            cycle: &ctx.cycle,
            group: &ctx.group,
            questions: &ctx.questions,
            rows: &rows,
            copy: &copy,
            deltas: &deltas,
            outside: &outside,
            screened: ctx.screen.is_some(),
            parts: &parts,
        };
        let (outcomes, change) = self.store(p, &batch).await?;
        // The answer's `jixiao-revision`: the revision this push created or,
        // when its responses were stored before (a resent push), the
        // group's current one, which is at least the one that stored them;
        // none when every response was refused (conflicts), as types.proto
        // says.
        let resent = outcomes.iter().any(|o| matches!(o, Outcome::Duplicate));
        match &change {
            Some(c) => revisions::note([c]),
            None if resent => {
                let revision = Changes::revision(&self.db, &ctx.cycle, &ctx.group).await?;
                if revision > 0 {
                    revisions::note(&[Change {
                        group: format!("cycles/{}/groups/{}", ctx.cycle, ctx.group),
                        revision,
                        traceparent: None,
                        time_ms: None,
                    }]);
                }
            }
            None => {}
        }
        self.changes.announce(change);
        // CONFLICTs (a stored response sent again changed) lead the list:
        // a stream's answer lists only its first refusals, and these are
        // the ones a platform must look at.
        let mut conflicts = Vec::new();
        for (row, o) in rows.iter().zip(outcomes) {
            match o {
                Outcome::Stored => out.accepted += 1,
                Outcome::Duplicate => out.duplicates += 1,
                Outcome::Conflict => conflicts.push(rejection(
                    &row.response_id,
                    crate::Refusal::Conflict,
                    "this response_id was stored with other content; it is not overwritten",
                )),
            }
        }
        conflicts.append(&mut out.rejected);
        out.rejected = conflicts;
        for r in &out.rejected {
            *out.rejected_by_reason.entry(r.reason.clone()).or_default() += 1;
        }
        let count = |n: i32| u64::try_from(n).unwrap_or(0);
        self.metrics.survey_responses(
            count(out.accepted),
            count(out.duplicates),
            out.rejected.len() as u64,
        );
        Ok(out)
    }

    /// [`commit`](Self::commit) in a task of its own, which runs to its
    /// end even when the caller goes away (a cancelled stream, a passed
    /// deadline). Dropped half-way, the transaction would be dropped in the
    /// middle of a `COPY`, leaving its PostgreSQL connection out of step
    /// with the pool for every later push. Batches are stored or not as a
    /// whole either way; a resend finds out which.
    async fn commit_detached(
        &self,
        p: &Principal,
        batches: Vec<Checked>,
    ) -> Result<PushResponsesResponse, Error> {
        let (api, p) = (self.clone(), p.clone());
        bulk::write(Box::pin(async move { api.commit(&p, batches).await })).await
    }

    /// Validates and stores one batch; returns its summary. Survey pushes
    /// are bulk work (see [`bulk`]).
    pub(crate) async fn push_batch(
        &self,
        p: &Principal,
        req: wire::Batch,
    ) -> Result<PushResponsesResponse, Error> {
        let (api, p) = (self.clone(), p.clone());
        bulk::run(async move {
            let checked = api.check(&p, req, Some("PushResponses"), false).await?;
            api.commit_detached(&p, vec![checked]).await
        })
        .await
    }

    async fn store(
        &self,
        p: &Principal,
        batch: &Batch<'_>,
    ) -> Result<(Vec<Outcome>, Option<Change>), Error> {
        if batch.rows.is_empty() && batch.outside.is_empty() {
            return Ok((Vec::new(), None));
        }
        let stored = match &self.pg {
            Some(pool) => {
                let mut tx = pool.begin().await?;
                let out = ingest::store_pg(&mut tx, p, batch).await?;
                tx.commit().await?;
                out
            }
            None => {
                let mut tx = self.db.begin_write().await?;
                let out = ingest::store_sqlite(&mut tx, p, batch).await?;
                tx.commit().await?;
                // The checkpoint copies this batch's pages off the writer.
                self.db.committed();
                out
            }
        };
        if let Some(c) = &stored.change {
            let added = stored.added.deltas(batch.deltas);
            let refused = batch.outside.iter().map(|o| o.unit.as_str());
            self.tallies.advance(
                batch.campaign,
                c.revision,
                added,
                batch.deltas.units().chain(refused),
            );
        }
        Ok((stored.outcomes, stored.change))
    }

    /// A client stream. Batches are checked as they arrive while earlier
    /// ones are written; batches that queued up meanwhile are written
    /// together in one transaction (group commit), so a fast platform costs
    /// fewer commits. Every batch is durable once its transaction commits;
    /// the summary covers the whole stream. Decoding, checking and writing
    /// are bulk work (see [`bulk`]).
    pub(crate) async fn stream(
        &self,
        p: Principal,
        input: impl Stream<Item = Result<wire::Batch, tonic::Status>> + Send + Unpin + 'static,
    ) -> Result<PushResponsesResponse, Error> {
        let api = self.clone();
        // Boxed: the stream's future holds the commits' lane futures, and
        // unboxed the nesting exceeds the compiler's layout depth.
        bulk::run(Box::pin(async move { api.stream_on_lane(p, input).await })).await
    }

    async fn stream_on_lane(
        &self,
        p: Principal,
        mut input: impl Stream<Item = Result<wire::Batch, tonic::Status>> + Send + Unpin + 'static,
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
                let (next, last) = match input.next().await.transpose() {
                    Ok(Some(m)) => {
                        let (api, checker) = (api.clone(), checker.clone());
                        let copy = !resent.load(Ordering::Relaxed);
                        // A campaign's phase gate is checked when the stream
                        // first sends to it and again once that check is
                        // ADMISSION_TTL old, so the batches of a stream in
                        // flight need not ask the plans service each.
                        let now = Instant::now();
                        let gate = match admitted.get(m.campaign()) {
                            Some(at)
                                if now.duration_since(*at) < ADMISSION_TTL || api.draining() =>
                            {
                                None
                            }
                            _ => {
                                admitted.insert(m.campaign().to_owned(), now);
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
                        // The codec answers undecodable bytes as INVALID_ARGUMENT;
                        // the host ends the stream of a token that lapsed.
                        let e = match s.code() {
                            tonic::Code::InvalidArgument => Error::Malformed(
                                s.message()
                                    .trim_start_matches("the message could not be decoded: ")
                                    .to_string(),
                            ),
                            tonic::Code::Unauthenticated => {
                                Error::Unauthenticated(s.message().to_string())
                            }
                            _ => Error::invalid(
                                "stream",
                                format!("the stream broke: {}", s.message()),
                            ),
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
                        self.commit_detached(&p, group).await?;
                        return Err(e);
                    }
                }
            }
            let summary = self.commit_detached(&p, group).await?;
            resending.store(summary.duplicates > summary.accepted, Ordering::Relaxed);
            total.accepted += summary.accepted;
            total.duplicates += summary.duplicates;
            let room = MAX_LISTED.saturating_sub(total.rejected.len());
            total
                .rejected
                .extend(summary.rejected.into_iter().take(room));
            for (reason, n) in summary.rejected_by_reason {
                *total.rejected_by_reason.entry(reason).or_default() += n;
            }
        }
        reader.abort();
        Ok(total)
    }
}

#[cfg(test)]
#[path = "responses_tests.rs"]
mod tests;
