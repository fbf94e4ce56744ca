//! Review scores of a group (DOMAIN.md §6), computed from the running
//! tallies: the survey's satisfaction index (category-weighted,
//! re-normalised over the categories present), online votes, the trimmed
//! mutual mean, with their flags; and the change stream the aggregator
//! follows.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use jixiao_proto::reviews::{
    CampaignMode, CategoryFigure, GetGroupReviewScoresRequest, GroupReviewScores, ReviewChange,
    ReviewFlag, UnitReviewScore,
};
use jixiao_runtime::{
    Error, Principal,
    changes::{Changes, unchanged_since},
    decimal::{self, to_proto},
    names,
};
use rust_decimal::Decimal;
use tokio_stream::StreamExt;

use crate::{
    api::{READERS, ReviewsApi, weighted},
    scoring::{self, Tally},
    store,
    tally_cache::{Taken, Tallies},
};

/// The stream of group changes a follower watches.
pub type ChangeStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<ReviewChange, tonic::Status>> + Send>>;

/// The stored figures a group's review scores are computed from.
struct Figures {
    /// The survey campaign and its mode.
    survey: Option<(String, CampaignMode)>,
    /// unit → category → running tally (looked up by `&str`: a group's
    /// table asks a few times per unit and category).
    tallies: HashMap<String, HashMap<String, Tally>>,
    /// Units whose survey flags block publication.
    blocked: HashSet<String>,
    /// unit → (index units, sample size), in unit-results mode.
    results: HashMap<String, (i64, i64)>,
    /// Units whose small sample the office accepted.
    accepted: HashSet<String>,
    /// unit → (counted votes, value units).
    vote_tallies: HashMap<String, (i64, i64)>,
    /// ratee → the values of its latest ratings.
    ratings: HashMap<String, Vec<Decimal>>,
    /// The only units whose scores may have changed since the revision
    /// the caller knows, when that can be told (see `tally_cache`).
    changed: Option<HashSet<String>>,
}

impl ReviewsApi {
    /// A raw-responses campaign's tallies at the group's `revision`: the
    /// copy kept in memory when it is that revision's (see
    /// [`tally_cache`](crate::tally_cache)), with the units changed since
    /// `known` when it can tell; else read and kept if the revision did not
    /// move meanwhile.
    async fn survey_tallies(
        &self,
        cycle: &str,
        gid: &str,
        campaign: &str,
        (revision, known): (i64, i64),
    ) -> Result<Taken, Error> {
        if let Some(held) = self.tallies.get(campaign, revision, known) {
            return Ok(held);
        }
        let read = Arc::new(Tallies::new(
            store::survey_tallies(&self.db.read, campaign).await?,
        ));
        if Changes::revision(&self.db, cycle, gid).await? == revision {
            self.tallies.put(campaign, revision, read.clone());
        }
        Ok(Taken {
            tallies: read,
            changed: None,
        })
    }

    /// `revision`: the group's, read before anything else; `known`: the
    /// revision whose scores the caller holds and would merge changes into
    /// (0: it wants them whole).
    async fn figures(
        &self,
        cycle: &str,
        gid: &str,
        revision: i64,
        known: i64,
    ) -> Result<Figures, Error> {
        let read = &self.db.read;
        let mut survey: Option<(String, CampaignMode)> = None;
        let mut votes: Option<String> = None;
        let campaigns = {
            let mut conn = read.acquire().await?;
            store::group_campaigns(&mut conn, cycle, gid).await?
        };
        for (id, mode) in campaigns {
            let name = format!("cycles/{cycle}/campaigns/{id}");
            match CampaignMode::try_from(mode as i32) {
                Ok(m @ (CampaignMode::RawResponses | CampaignMode::UnitResults)) => {
                    survey = Some((name, m))
                }
                Ok(CampaignMode::OnlineVotes) => votes = Some(name),
                _ => {}
            }
        }
        let survey_name = survey.as_ref().map(|s| s.0.clone()).unwrap_or_default();
        let raw = matches!(survey, Some((_, CampaignMode::RawResponses)));
        let votes = votes.unwrap_or_default();
        let survey_rows = async {
            if raw {
                self.survey_tallies(cycle, gid, &survey_name, (revision, known))
                    .await
                    .map(|t| (t, Vec::new()))
            } else {
                store::unit_results(read, &survey_name).await.map(|r| {
                    let whole = Taken {
                        tallies: Arc::default(),
                        changed: None,
                    };
                    (whole, r)
                })
            }
        };
        let started = std::time::Instant::now();
        // Under ingest every round trip queues; these go out together.
        let ((taken, results), accepted, vote_rows, rating_rows) = tokio::try_join!(
            survey_rows,
            store::accepted_samples(read, &survey_name),
            store::vote_tallies(read, &votes),
            store::rating_values(read, cycle),
        )?;
        let read = started.elapsed();
        let Taken { tallies, changed } = taken;
        let of_interest = |unit: &str| changed.as_ref().is_none_or(|c| c.contains(unit));
        // A partial answer screens and scores the changed units alone: a
        // unit's flags and scores come from its own figures only.
        let rows: Vec<&store::TallyRow> = tallies
            .rows
            .iter()
            .filter(|t| of_interest(&t.unit))
            .collect();
        let blocked = if raw {
            self.blocked_units(&survey_name, &rows).await?
        } else {
            HashSet::new()
        };
        tracing::debug!(
            group = gid,
            tallies = rows.len(),
            changed = changed.as_ref().map(HashSet::len),
            read_ms = read.as_millis() as u64,
            screened_ms = (started.elapsed() - read).as_millis() as u64,
            "review figures read"
        );
        let mut f = Figures {
            survey,
            tallies: HashMap::new(),
            blocked,
            results: HashMap::new(),
            accepted: accepted.into_iter().collect(),
            vote_tallies: HashMap::new(),
            ratings: HashMap::new(),
            changed,
        };
        for t in rows {
            f.tallies.entry(t.unit.clone()).or_default().insert(
                t.category.clone(),
                Tally {
                    responses: t.responses,
                    value_units: t.value_units,
                },
            );
        }
        for (unit, index, sample) in results {
            f.results.insert(unit, (index, sample));
        }
        for (unit, counted, value_units) in vote_rows {
            f.vote_tallies.insert(unit, (counted, value_units));
        }
        for (ratee, value_units) in rating_rows {
            f.ratings
                .entry(ratee)
                .or_default()
                .push(scoring::from_units(value_units));
        }
        Ok(f)
    }

    /// The review scores of a group, from the running tallies; with
    /// `changes_only`, only the units changed since `known` when that can
    /// be told.
    pub(crate) async fn scores(
        &self,
        group_name: &str,
        known: i64,
        changes_only: bool,
    ) -> Result<GroupReviewScores, Error> {
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
        let (members, scheme, figures) = tokio::try_join!(
            self.plans.members(group_name),
            self.plans.scheme(group_name),
            self.figures(cycle, gid, revision, if changes_only { known } else { 0 }),
        )?;
        let Figures {
            survey,
            tallies,
            blocked,
            results,
            accepted,
            vote_tallies,
            ratings,
            changed,
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
        let units = members
            .units
            .iter()
            .filter(|unit| changed.as_ref().is_none_or(|c| c.contains(unit.as_str())))
            .map(|unit| {
                let mut row = UnitReviewScore {
                    unit: unit.clone(),
                    ..Default::default()
                };
                match &survey {
                    Some((_, CampaignMode::RawResponses)) => {
                        let of_unit = tallies.get(unit.as_str());
                        let tally =
                            |c: &str| of_unit.and_then(|t| t.get(c)).copied().unwrap_or_default();
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
                if blocked.contains(unit) {
                    row.flags.push(ReviewFlag::SurveyQuality as i32);
                }
                row
            })
            .collect();
        Ok(GroupReviewScores {
            group: group_name.to_string(),
            units,
            revision,
            unchanged: false,
            changes_only: changed.is_some(),
        })
    }

    pub(crate) async fn group_scores(
        &self,
        p: Principal,
        req: GetGroupReviewScoresRequest,
    ) -> Result<GroupReviewScores, Error> {
        p.require(READERS, "read group review scores")?;
        self.scores(&req.group, req.known_revision, req.changes_only)
            .await
    }

    /// The change signals of a cycle's groups (or of every cycle).
    pub(crate) async fn watch(&self, p: Principal, cycle: &str) -> Result<ChangeStream, Error> {
        let changes = self.changes.watch_for(&self.db, &p, cycle).await?;
        Ok(Box::pin(changes.map(|c| {
            Ok(ReviewChange {
                group: c.group,
                revision: c.revision,
                traceparent: c.traceparent.unwrap_or_default(),
                change_time: c.time_ms.map(jixiao_runtime::time::timestamp),
            })
        })))
    }
}
