//! Survey flags (docs/DATA-QUALITY.md): the rules of `quality` applied to
//! a campaign's stored counts whenever they are read, so a flag always
//! reflects everything received, in whatever order; the office's list; and
//! resolution, where EXCLUDED takes the flagged responses out of the
//! tallies so the survey score is recomputed exactly.

use std::collections::{HashMap, HashSet};

use jixiao_proto::{
    reviews::{
        CampaignMode, ListSurveyFlagsRequest, ListSurveyFlagsResponse, ResolveSurveyFlagRequest,
        SurveyFlag,
    },
    types::{QualityEvidence, QualityFlagState},
};
use jixiao_runtime::{
    Error, Principal, Role, decimal, idempotency, names, text,
    time::{now_ms, timestamp},
    write::{self, Key},
};
use serde_json::json;
use sqlx::AnyConnection;

use crate::{
    Reason,
    api::{CampaignCtx, ReviewsApi},
    quality::{self, Figure, Kind, Raised, Screen},
    responses::values_of,
    store::{
        self, TallyRow,
        flags::{self as fstore, Extras, Resolution},
    },
};

/// A raised flag of a unit with where it stands.
pub(crate) struct Flag {
    pub unit: String,
    pub raised: Raised,
    pub resolution: Option<Resolution>,
    pub excluded: i64,
}

impl Flag {
    /// OPEN unless the latest resolution covers every flagged response.
    pub fn state(&self) -> QualityFlagState {
        match &self.resolution {
            Some(r) if self.raised.flagged <= r.covered => {
                QualityFlagState::try_from(r.state).unwrap_or(QualityFlagState::Open)
            }
            _ => QualityFlagState::Open,
        }
    }

    fn proto(&self, campaign: &str) -> SurveyFlag {
        let kind = self.raised.kind;
        let r = self.resolution.as_ref();
        SurveyFlag {
            name: format!("{campaign}/{}/flags/{}", self.unit, kind.id()),
            unit: self.unit.clone(),
            kind: kind.proto() as i32,
            severity: kind.severity() as i32,
            evidence: self
                .raised
                .evidence
                .iter()
                .map(|f| match f {
                    Figure::Number(name, v) => QualityEvidence {
                        name: name.to_string(),
                        number: Some(decimal::to_proto(*v)),
                        text: String::new(),
                    },
                    Figure::Text(name, t) => QualityEvidence {
                        name: name.to_string(),
                        number: None,
                        text: t.clone(),
                    },
                })
                .collect(),
            explanation: self.raised.explanation(),
            state: self.state() as i32,
            resolved_by: r.map(|r| r.resolved_by.clone()).unwrap_or_default(),
            resolve_time: r.map(|r| timestamp(r.resolve_ms)),
            resolution_reason: r.map(|r| r.reason.clone()).unwrap_or_default(),
            excluded_responses: self.excluded,
        }
    }
}

fn rfc3339(ms: i64) -> String {
    timestamp(ms).to_string()
}

/// Every flag the stored counts raise now, by unit (member order of the
/// tallies) and kind. `categories`: the scheme's, in its order.
pub(crate) fn raise<'t>(
    s: &Screen,
    categories: &[String],
    tallies: impl IntoIterator<Item = &'t TallyRow>,
    extras: &Extras,
) -> Vec<Flag> {
    let mut raised: Vec<(String, Raised)> = Vec::new();
    let mut by_unit: HashMap<&str, Vec<&TallyRow>> = HashMap::new();
    for t in tallies {
        by_unit.entry(t.unit.as_str()).or_default().push(t);
    }
    for (unit, rows) in &by_unit {
        let received: i64 = rows.iter().map(|t| t.responses + t.excluded).sum();
        let straight: i64 = rows.iter().map(|t| t.straight).sum();
        raised
            .extend(quality::straight_lining(straight, received, s).map(|r| (unit.to_string(), r)));
        let surges = categories
            .iter()
            .filter_map(|c| {
                let t = rows.iter().find(|t| t.category == *c)?;
                let late = t.late;
                quality::category_surge(c, late, t.responses + t.excluded - late, s)
            })
            .collect();
        raised.extend(quality::merge_surges(surges).map(|r| (unit.to_string(), r)));
    }
    for (unit, n, earliest, latest) in &extras.refusals {
        raised.extend(
            quality::outside_window(*n, &rfc3339(*earliest), &rfc3339(*latest), s)
                .map(|r| (unit.clone(), r)),
        );
    }
    let mut seconds: HashMap<&str, Vec<(i64, String)>> = HashMap::new();
    for (unit, channel, second, n) in &extras.seconds {
        let channel = jixiao_proto::reviews::Channel::try_from(*channel as i32)
            .map(|c| c.as_str_name().trim_start_matches("CHANNEL_").to_string())
            .unwrap_or_default();
        seconds
            .entry(unit)
            .or_default()
            .push((*n, format!("{} {channel}", rfc3339(second * 1000))));
    }
    for (unit, list) in &seconds {
        raised.extend(quality::burst(list, s).map(|r| (unit.to_string(), r)));
    }
    let mut keys: HashMap<&str, Vec<i64>> = HashMap::new();
    for (unit, _, n) in &extras.respondents {
        keys.entry(unit).or_default().push(*n);
    }
    for (unit, counts) in &keys {
        raised.extend(quality::repeated_respondent(counts, s).map(|r| (unit.to_string(), r)));
    }
    raised.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.kind.cmp(&b.1.kind)));
    raised
        .into_iter()
        .map(|(unit, raised)| {
            let kind = raised.kind.id();
            Flag {
                resolution: extras
                    .resolutions
                    .iter()
                    .find(|r| r.unit == unit && r.kind == kind)
                    .cloned(),
                excluded: extras
                    .excluded
                    .iter()
                    .find(|(u, k, _)| *u == unit && k == kind)
                    .map_or(0, |e| e.2),
                unit,
                raised,
            }
        })
        .collect()
}

/// Units with an OPEN flag of the blocking severity.
pub(crate) fn blocked(s: &Screen, flags: &[Flag]) -> HashSet<String> {
    flags
        .iter()
        .filter(|f| s.blocks(f.raised.kind.severity()) && f.state() == QualityFlagState::Open)
        .map(|f| f.unit.clone())
        .collect()
}

/// A screened campaign's figures as stored now, and the flags they raise.
struct Screened {
    screen: Screen,
    tallies: Vec<TallyRow>,
    extras: Extras,
    flags: Vec<Flag>,
}

/// The campaign's flags from what is stored now (None: not screened).
async fn flags_on(conn: &mut AnyConnection, ctx: &CampaignCtx) -> Result<Option<Screened>, Error> {
    let Some(screen) = ctx.screen.clone() else {
        return Ok(None);
    };
    if ctx.mode != CampaignMode::RawResponses {
        return Ok(None);
    }
    let tallies = store::survey_tallies(&mut *conn, &ctx.name).await?;
    let extras = fstore::extras(conn, &ctx.name, screen.burst_size).await?;
    let flags = raise(&screen, &ctx.categories, &tallies, &extras);
    Ok(Some(Screened {
        screen,
        tallies,
        extras,
        flags,
    }))
}

impl ReviewsApi {
    /// The units of a campaign whose survey flags block publication.
    pub(crate) async fn blocked_units(
        &self,
        campaign: &str,
        tallies: &[&TallyRow],
    ) -> Result<HashSet<String>, Error> {
        let ctx = self.context(campaign, "campaign").await?;
        let Some(s) = ctx.screen.clone() else {
            return Ok(HashSet::new());
        };
        let mut conn = self.db.read.acquire().await?;
        let extras = fstore::extras(&mut conn, campaign, s.burst_size).await?;
        Ok(blocked(
            &s,
            &raise(&s, &ctx.categories, tallies.iter().copied(), &extras),
        ))
    }

    pub(crate) async fn list_survey_flags(
        &self,
        p: Principal,
        req: ListSurveyFlagsRequest,
    ) -> Result<ListSurveyFlagsResponse, Error> {
        let mut unit = if req.unit.is_empty() {
            None
        } else {
            Some(names::unit_id(&req.unit, "unit")?.to_string())
        };
        if !p.has_any(&[Role::Office, Role::Evaluator, Role::Service]) {
            // A unit sees its own flags, and only those.
            let own = p.unit.clone().filter(|_| p.has(Role::Unit));
            match (&own, &unit) {
                (Some(own), Some(asked)) if own != asked => {
                    return Err(Error::denied(format!(
                        "{} may list only its own unit's survey flags",
                        p.subject
                    )));
                }
                (Some(_), _) => unit = own,
                (None, _) => {
                    return Err(Error::denied(format!(
                        "{} lists survey flags of no unit",
                        p.subject
                    )));
                }
            }
        }
        let ctx = self.context(&req.campaign, "campaign").await?;
        let mut conn = self.db.read.acquire().await?;
        let Some(Screened { flags, .. }) = flags_on(&mut conn, &ctx).await? else {
            return Ok(ListSurveyFlagsResponse::default());
        };
        Ok(ListSurveyFlagsResponse {
            flags: flags
                .iter()
                .filter(|f| unit.as_ref().is_none_or(|u| f.unit == format!("units/{u}")))
                .filter(|f| !req.open_only || f.state() == QualityFlagState::Open)
                .map(|f| f.proto(&ctx.name))
                .collect(),
            screened: true,
        })
    }

    pub(crate) async fn resolve_survey_flag(
        &self,
        p: Principal,
        req: ResolveSurveyFlagRequest,
    ) -> Result<SurveyFlag, Error> {
        let digest = idempotency::request_digest("ResolveSurveyFlag", &req);
        let ids = names::parse(&req.name, "cycles/*/campaigns/*/units/*/flags/*", "name")?;
        let (campaign, unit) = (format!("cycles/{}/campaigns/{}", ids[0], ids[1]), ids[2]);
        let kind = Kind::parse(ids[3])
            .ok_or_else(|| Error::invalid("name", format!("{:?} is not a survey flag", ids[3])))?;
        let resolution = match QualityFlagState::try_from(req.resolution) {
            Ok(QualityFlagState::Excluded) if kind == Kind::OutsideWindow => {
                return Err(Error::invalid(
                    "resolution",
                    "out-of-window responses were refused, never counted: EXPLAINED only",
                ));
            }
            Ok(s @ (QualityFlagState::Explained | QualityFlagState::Excluded)) => s,
            _ => {
                return Err(Error::invalid(
                    "resolution",
                    "must be EXPLAINED or EXCLUDED",
                ));
            }
        };
        let reason = text::one(
            "reason",
            &req.reason,
            text::NOTE,
            "a resolution needs a reason",
        )?;
        {
            let mut conn = self.db.read.acquire().await?;
            if let Some(done) = idempotency::replay(&mut conn, &p, &req.request_id, &digest).await?
            {
                return Ok(done);
            }
        }
        // A token that also acts for the unit may not clear its own flags.
        if p.acts_for(Role::Unit, unit) {
            return Err(Error::denied(format!(
                "{} may not resolve flags on its own unit's responses",
                p.subject
            )));
        }
        self.admit(&p, "ResolveSurveyFlag", ids[0]).await?;
        let ctx = self.context(&campaign, "name").await?;
        let key = Key {
            method: "ResolveSurveyFlag",
            request_id: &req.request_id,
            digest: &digest,
        };
        let dialect = self.db.dialect;
        write::write(&self.db, Some(&self.changes), &p, key, async |w| {
            fstore::lock_campaign(w.conn, dialect, &campaign).await?;
            let not_raised = || Error::not_found(req.name.clone());
            let mut screened = flags_on(w.conn, &ctx).await?.ok_or_else(not_raised)?;
            let at = screened
                .flags
                .iter()
                .position(|f| f.unit == format!("units/{unit}") && f.raised.kind == kind)
                .ok_or_else(not_raised)?;
            let mut flag = screened.flags.swap_remove(at);
            if flag.state() != QualityFlagState::Open {
                return Err(Error::precondition(
                    Reason::FlagResolved,
                    format!("{} is resolved and nothing was flagged since", req.name),
                ));
            }
            let excluded = if resolution == QualityFlagState::Excluded {
                exclude(w.conn, &ctx, &screened, unit, kind).await?
            } else {
                0
            };
            let r = Resolution {
                unit: format!("units/{unit}"),
                kind: kind.id().to_string(),
                state: resolution as i32,
                covered: flag.raised.flagged,
                reason: reason.clone(),
                resolved_by: p.subject.clone(),
                resolve_ms: now_ms(),
            };
            fstore::put_resolution(w.conn, &campaign, &r).await?;
            flag.resolution = Some(r);
            flag.excluded += excluded;
            w.changed(&ctx.cycle, &ctx.group);
            w.audit(
                "responses.resolve_flag",
                &req.name,
                &reason,
                json!({
                    "resolution": resolution.as_str_name(),
                    "flagged": flag.raised.flagged,
                    "excluded": excluded,
                }),
            );
            Ok(flag.proto(&campaign))
        })
        .await
    }
}

/// Takes the responses a flag stands for out of the tallies; how many.
/// Counts per category and question are the same integer sums the ingest
/// added, so what remains is what storing only the others would give.
async fn exclude(
    conn: &mut AnyConnection,
    ctx: &CampaignCtx,
    screened: &Screened,
    unit: &str,
    kind: Kind,
) -> Result<i64, Error> {
    let (s, extras) = (&screened.screen, &screened.extras);
    let unit_name = format!("units/{unit}");
    let stored = fstore::unit_responses(conn, &ctx.name, &unit_name).await?;
    let picked: Vec<&fstore::Stored> = match kind {
        Kind::StraightLining => stored
            .iter()
            .filter(|r| {
                let codes = r
                    .answers
                    .split(';')
                    .filter_map(|a| a.split_once('='))
                    .map(|a| a.1);
                quality::straight_lined(codes, s.straight_min_answers)
                    && values_of(ctx, &r.answers).0.is_some()
            })
            .collect(),
        Kind::Burst => {
            let crowded: HashSet<(i64, i64)> = extras
                .seconds
                .iter()
                .filter(|(u, ..)| *u == unit_name)
                .map(|(_, c, sec, _)| (*c, *sec))
                .collect();
            stored
                .iter()
                .filter(|r| crowded.contains(&(r.channel, r.answer_ms.div_euclid(1000))))
                .collect()
        }
        Kind::RepeatedRespondent => {
            let repeated: HashSet<&str> = extras
                .respondents
                .iter()
                .filter(|(u, _, n)| *u == unit_name && *n > s.respondent_limit)
                .map(|(_, k, _)| k.as_str())
                .collect();
            let mut keyed: Vec<&fstore::Stored> = stored
                .iter()
                .filter(|r| repeated.contains(r.respondent.as_str()))
                .collect();
            // Each key keeps its earliest `respondent_limit` responses.
            keyed.sort_by(|a, b| {
                (&a.respondent, a.answer_ms, &a.response_id).cmp(&(
                    &b.respondent,
                    b.answer_ms,
                    &b.response_id,
                ))
            });
            keyed
                .chunk_by(|a, b| a.respondent == b.respondent)
                .flat_map(|run| run.iter().skip(s.respondent_limit as usize).copied())
                .collect()
        }
        Kind::CategorySurge => {
            let surging: HashSet<&str> = screened
                .tallies
                .iter()
                .filter(|t| t.unit == unit_name)
                .filter(|t| {
                    quality::category_surge(
                        &t.category,
                        t.late,
                        t.responses + t.excluded - t.late,
                        s,
                    )
                    .is_some()
                })
                .map(|t| t.category.as_str())
                .collect();
            stored
                .iter()
                .filter(|r| {
                    surging.contains(r.category.as_str())
                        && quality::late(r.answer_ms, ctx.close_ms, s.surge_window_ms)
                })
                .collect()
        }
        Kind::OutsideWindow => Vec::new(),
    };
    let mut categories: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut questions: HashMap<u16, (i64, i64)> = HashMap::new();
    for r in &picked {
        let (value, answers) = values_of(ctx, &r.answers);
        if let Some(v) = value {
            let c = categories.entry(r.category.as_str()).or_default();
            c.0 += 1;
            c.1 += v;
        }
        for (q, v) in answers {
            let e = questions.entry(q).or_default();
            e.0 += 1;
            e.1 += v;
        }
    }
    let ids: Vec<&str> = picked.iter().map(|r| r.response_id.as_str()).collect();
    fstore::exclude(conn, &ctx.name, &unit_name, kind.id(), &ids).await?;
    for (category, (n, v)) in categories {
        fstore::subtract_category(conn, &ctx.name, &unit_name, category, n, v).await?;
    }
    for (q, (n, v)) in questions {
        let question = &ctx.questions[usize::from(q)];
        fstore::subtract_question(conn, &ctx.name, &unit_name, question, n, v).await?;
    }
    Ok(ids.len() as i64)
}
