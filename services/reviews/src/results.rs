//! Unit-level survey results from a survey firm (index and sample size per
//! unit, one mode per campaign) and online votes from the government
//! portal (DOMAIN.md §6): at most one counted vote per voter and unit, the
//! latest; a retried vote changes nothing.

use jixiao_proto::reviews::{
    CampaignMode, PushUnitResultsRequest, PushUnitResultsResponse, PushVotesRequest,
    PushVotesResponse,
};
use jixiao_runtime::{
    Error, Principal, Violations, decimal, idempotency, text, time,
    write::{self, Key},
};
use rust_decimal::Decimal;
use serde_json::json;

use crate::{
    api::{DONT_KNOW, MAX_BATCH, ReviewsApi, rejection, valid_external_id},
    scoring,
    store::{self, Vote},
};

impl ReviewsApi {
    pub(crate) async fn push_unit_results(
        &self,
        p: Principal,
        req: PushUnitResultsRequest,
    ) -> Result<PushUnitResultsResponse, Error> {
        let digest = idempotency::request_digest("PushUnitResults", &req);
        let ctx = self.context(&req.campaign, "campaign").await?;
        Self::require_bound(&p, &ctx)?;
        // A retry of a write that succeeded gets its first answer, even
        // once the window has closed.
        let key = Key {
            method: "PushUnitResults",
            request_id: &req.request_id,
            digest: &digest,
        };
        if let Some(done) = write::replayed(&self.db, &p, key).await? {
            return Ok(done);
        }
        self.admit(&p, "PushUnitResults", &ctx.cycle).await?;
        Self::require_mode(&ctx, CampaignMode::UnitResults)?;
        let mut v = Violations::new();
        let mut rows = Vec::new();
        for (i, r) in req.results.iter().enumerate() {
            v.check(
                ctx.units.contains(&r.unit),
                format!("results[{i}].unit"),
                format!(
                    "{:?} is not a unit of the campaign's group",
                    text::echo(&r.unit)
                ),
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
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            for (unit, index, sample) in &rows {
                store::put_unit_result(w.conn, &ctx.name, unit, *index, *sample).await?;
            }
            w.changed(&ctx.cycle, &ctx.group);
            w.audit(
                "unit_results.push",
                &ctx.name,
                "",
                json!({"results": rows.len()}),
            );
            Ok(PushUnitResultsResponse {
                accepted: rows.len() as i32,
            })
        })
        .await
    }

    pub(crate) async fn push_votes(
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
        let dialect = self.db.dialect;
        write::write(
            &self.db,
            Some(&self.changes),
            &p,
            Key::none("PushVotes"),
            async |w| {
                // Which vote counts is read, then written: two pushes for
                // one voter and unit must not both read the same latest
                // vote (the tally would count it twice), nor lock the
                // tallies in opposite orders and abort each other.
                store::flags::lock_campaign(w.conn, dialect, &ctx.name).await?;
                let mut out = PushVotesResponse::default();
                for vote in &req.votes {
                    let id = vote.vote_id.as_str();
                    let at = vote.cast_time.as_ref().map(time::valid);
                    let value = ctx.answer_value(&vote.answer);
                    let problem = if !valid_external_id(id) {
                        Some((
                            crate::Refusal::Invalid,
                            "vote_id must be 1-128 letters, digits or -_.:".to_string(),
                        ))
                    } else if vote.voter.trim().is_empty()
                        || vote.voter.chars().count() > text::LABEL
                        || vote.voter.chars().any(char::is_control)
                    {
                        // PostgreSQL cannot store a NUL: refused here, the
                        // vote alone, not the whole push as INTERNAL.
                        Some((
                            crate::Refusal::Invalid,
                            format!(
                                "voter is required, at most {} characters, none of them control characters",
                                text::LABEL
                            ),
                        ))
                    } else if !ctx.units.contains(&vote.unit) {
                        Some((
                            crate::Refusal::UnknownUnit,
                            format!("{:?} is not a unit of the campaign's group", text::echo(&vote.unit)),
                        ))
                    } else if value.is_none() && vote.answer != DONT_KNOW {
                        Some((
                            crate::Refusal::UnknownAnswer,
                            format!("{:?} is not an answer of the scheme", text::echo(&vote.answer)),
                        ))
                    } else if at.is_none() {
                        Some((crate::Refusal::Invalid, "cast_time is required".to_string()))
                    } else if let Some(Err(e)) = &at {
                        Some((crate::Refusal::Invalid, format!("cast_time {e}")))
                    } else if let Some(Ok(t)) = at
                        && (ctx.open_ms.is_some_and(|o| t < o)
                            || ctx.close_ms.is_some_and(|c| t > c))
                    {
                        Some((
                            crate::Refusal::OutOfWindow,
                            "cast outside the campaign's open and close times".to_string(),
                        ))
                    } else {
                        None
                    };
                    if let Some((reason, message)) = problem {
                        out.rejected.push(rejection(id, reason, message));
                        continue;
                    }
                    let v = Vote {
                        campaign: &ctx.name,
                        id,
                        voter: &vote.voter,
                        unit: &vote.unit,
                        answer: &vote.answer,
                        cast_ms: at.and_then(Result::ok).unwrap_or_default(),
                    };
                    if !store::insert_vote(w.conn, &v).await? {
                        if store::same_vote(w.conn, &v).await? {
                            out.duplicates += 1;
                        } else {
                            out.rejected.push(rejection(
                                id,
                                crate::Refusal::Conflict,
                                "this vote_id was stored with other content",
                            ));
                        }
                        continue;
                    }
                    out.accepted += 1;
                    // Only the voter's latest vote for the unit counts.
                    let (replaced, newer) =
                        match store::latest_vote(w.conn, &ctx.name, &vote.unit, &vote.voter)
                            .await?
                        {
                            Some((lid, lms, counted, units)) => {
                                ((counted, units), (v.cast_ms, id) > (lms, lid.as_str()))
                            }
                            None => ((0, 0), true),
                        };
                    if !newer {
                        continue;
                    }
                    let (counted, units) = match value {
                        Some(x) => (1i64, scoring::to_units(x)),
                        None => (0, 0),
                    };
                    store::count_vote(w.conn, &v, counted, units, replaced).await?;
                }
                if out.accepted > 0 {
                    w.changed(&ctx.cycle, &ctx.group);
                } else if out.duplicates > 0 {
                    w.resent(&ctx.cycle, &ctx.group);
                }
                w.audit(
                    "votes.push",
                    &ctx.name,
                    "",
                    json!({"accepted": out.accepted, "duplicates": out.duplicates, "rejected": out.rejected.len()}),
                );
                Ok(out)
            },
        )
        .await
    }
}
