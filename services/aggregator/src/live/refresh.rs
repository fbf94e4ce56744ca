//! One group's refresh: refetch the parts whose sources were marked,
//! recompute the table off the async workers, hand it to readers and store
//! it; then pause before the next round, which takes whatever was marked
//! meanwhile.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use jixiao_proto::aggregator::{StandingRow, Standings};
use jixiao_runtime::{Error, client::CALL_TIMEOUT, time::timestamp};
use prost::Message;

use super::{ALL_SOURCES, Cell, FULL, Live, PATIENT, Snapshot, View, standing_rows};
use crate::{
    inputs::{GroupInputs, IndicatorPart, InspectionPart, ReviewPart, UnitInputs},
    sources::{ByUnit, PlansPart, Revised, Source, Sources},
};

/// Bounds of the pause between two refreshes of one group.
const MIN_GAP: Duration = Duration::from_millis(50);
const MAX_GAP: Duration = Duration::from_millis(500);
/// What a change should wait for, at worst, before readers see it: DOMAIN.md
/// §8 allows one second, issue 22 asks for a p99 of 250 ms under ingest.
const FRESHNESS: Duration = Duration::from_millis(250);
/// A round waits for a source at least this long before publishing
/// without it (see [`patience`]).
const LEAST_PATIENCE: Duration = Duration::from_secs(1);
/// ... and this many times its last full answer's time, so that a large
/// group that is slow to score is waited for.
const PATIENCE_FACTOR: u32 = 4;

/// How long a round waits for a source's answer. A component that hangs
/// (a stopped process, a query stuck behind a lock) keeps its connection
/// open, so only the call timeout would end the wait, and meanwhile the
/// other components' changes wait with it; past its patience the source
/// counts as failed: its last figures stay, marked stale, and the rounds
/// leave it to a probe of its own ([`Live::probe`]) until it answers, so
/// that a hang holds at most one round. A source not yet answered in full,
/// or a refresh for a publication (which must not go without any source),
/// waits the whole call timeout. A plan-side change or a reconciliation refetches
/// in full too, and is as patient as any other round: those are when a
/// hung source is most often asked.
fn patience(expected: Option<Duration>, patient: bool) -> Duration {
    match expected {
        Some(took) if !patient => (took * PATIENCE_FACTOR).clamp(LEAST_PATIENCE, CALL_TIMEOUT),
        _ => CALL_TIMEOUT,
    }
}

/// A source's answer, or UNAVAILABLE once `patience` has run out, with
/// the time it took.
async fn answer<T>(
    source: Source,
    patience: Duration,
    get: impl Future<Output = Result<Revised<T>, Error>>,
) -> Answer<T> {
    let asked = tokio::time::Instant::now();
    let got = tokio::time::timeout(patience, get).await;
    let took = asked.elapsed();
    let no_answer = || Error::Unavailable {
        dependency: source.service().into(),
        message: format!("no answer within {} ms", patience.as_millis()),
    };
    let got = match got {
        Err(_) => Err(no_answer()),
        // The call's own timeout ends it at the same moment when the
        // patience is the call timeout: one wording for both.
        Ok(Err(Error::Unavailable { .. } | Error::DeadlineExceeded(_))) if took >= patience => {
            Err(no_answer())
        }
        Ok(got) => got,
    };
    (got, took)
}

/// A fetch's outcome and how long it took.
type Answer<T> = (Result<Revised<T>, Error>, Duration);

/// How long an answer with every unit's figures took (an "unchanged"
/// answer, or one of the units changed since the copy held, says nothing
/// about how long the whole figures take).
fn full_answer_took<T>(a: &Option<Answer<T>>) -> Option<Duration> {
    match a {
        Some((Ok(Revised { whole: true, .. }), took)) => Some(*took),
        _ => None,
    }
}

/// Whether a round gave up on the source: no answer within its patience.
fn gave_up<T>(a: &Option<Answer<T>>, patience: Duration) -> bool {
    matches!(a, Some((Err(_), took)) if *took >= patience)
}

/// What a round heard from a source: how long its answer with figures
/// took, and whether the round gave up on it.
fn heard<T>(a: &Option<Answer<T>>, patience: Duration) -> (Option<Duration>, bool) {
    (full_answer_took(a), gave_up(a, patience))
}

/// What a source's answers with figures are expected to take, after one
/// that took `took`. An answer slowed by something else (a process stopped
/// while the call was in flight, then resumed) raises it at most twofold,
/// so one such answer does not make the next hang a long wait; a source
/// that has become slow for good (a large group under heavy ingest) gets
/// there in a few answers.
fn next_expected(previous: Option<Duration>, took: Duration) -> Duration {
    previous.map_or(took, |p| took.min(p * 2))
}

/// When a fetch that failed is tried again. A replica restarting, a
/// balancer's hiccup or a pool timing out under load must not leave a
/// group stale until the next reconciliation, up to 30 s away.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The pause after a refresh that took `took`. Under a steady stream of
/// pushes, refreshing back to back would spend a core of this service and
/// of the component services on tables nobody has read yet, so a group
/// pauses twice as long as its refresh took (refreshing a third of the
/// time); but a change that lands just after a refresh started waits for
/// the rest of it, the pause and one more refresh, so the pause shrinks
/// when refreshes are slow, to keep that within [`FRESHNESS`].
fn gap(took: Duration) -> Duration {
    let lazy = took * 2;
    let fresh = FRESHNESS.saturating_sub(took * 2);
    lazy.min(fresh).clamp(MIN_GAP, MAX_GAP)
}

/// The last figures fetched from each service (shared, so that computing
/// a table off the async workers needs no copy).
#[derive(Default)]
pub(super) struct Parts {
    plans: Option<Held<PlansPart>>,
    indicators: Option<Held<ByUnit<IndicatorPart>>>,
    reviews: Option<Held<ByUnit<ReviewPart>>>,
    inspections: Option<Held<ByUnit<InspectionPart>>>,
    /// Last fetch failure per source.
    failed: BTreeMap<Source, String>,
    /// What each source's answers with figures are expected to take (see
    /// [`next_expected`]).
    expected: BTreeMap<Source, Duration>,
    /// Sources given up on, each asked by its probe until it answers.
    probing: BTreeSet<Source>,
}

impl Parts {
    /// Notes how long a source's answer with figures took.
    fn answered_in(&mut self, source: Source, took: Duration) {
        let previous = self.expected.get(&source).copied();
        self.expected.insert(source, next_expected(previous, took));
    }
}

impl Parts {
    /// The revision of each service whose figures are held, keyed as
    /// `Standings.service_revisions` names it: the table computed from
    /// these parts includes every change up to it (each service reads its
    /// counter before its figures).
    fn service_revisions(&self) -> HashMap<String, i64> {
        [
            (Source::Plans, self.plans.as_ref().map(|h| h.revision)),
            (
                Source::Indicators,
                self.indicators.as_ref().map(|h| h.revision),
            ),
            (Source::Reviews, self.reviews.as_ref().map(|h| h.revision)),
            (
                Source::Inspections,
                self.inspections.as_ref().map(|h| h.revision),
            ),
        ]
        .into_iter()
        .filter_map(|(s, r)| Some((s.key().to_string(), r?)))
        .collect()
    }
}

/// A part as fetched, with the change counters it was read under.
struct Held<T> {
    value: Arc<T>,
    /// The source's counter for the group.
    revision: i64,
    /// The plan-side counter of a change known committed before the read:
    /// the component services score from plans data without counting its
    /// changes, so a copy is only asked about while this still holds.
    plans_revision: i64,
}

/// Fetches a part when its source is marked or nothing is held, asking
/// the service to skip the work when the held copy is still current
/// (never in a full refresh, nor after a plan-side change).
async fn fetch<T, F, Fut>(
    held: &Option<Held<T>>,
    marked: bool,
    full: bool,
    plans_revision: i64,
    patience: Duration,
    source: Source,
    get: F,
) -> Option<Answer<T>>
where
    F: FnOnce(i64, Option<Arc<T>>) -> Fut,
    Fut: Future<Output = Result<Revised<T>, Error>>,
{
    let known = match held {
        None => 0,
        Some(_) if !marked => return None,
        Some(h) if !full && h.plans_revision == plans_revision => h.revision,
        Some(_) => 0,
    };
    let copy = held.as_ref().map(|h| h.value.clone());
    Some(answer(source, patience, get(known, copy)).await)
}

/// Whether a fetch was answered relative to the copy held ("unchanged",
/// or the units changed since it).
fn kept<T>(got: &Option<Result<Revised<T>, Error>>) -> bool {
    matches!(got, Some(Ok(Revised { whole: false, .. })))
}

/// Takes a fetched part; says whether anything readers see changed.
fn settle<T: Send + Sync + 'static>(
    slot: &mut Option<Held<T>>,
    failed: &mut BTreeMap<Source, String>,
    source: Source,
    got: Option<Result<Revised<T>, Error>>,
    plans_revision: i64,
) -> bool {
    match got {
        Some(Ok(Revised { revision, part, .. })) => {
            let new = match (part, slot.as_mut()) {
                (None, Some(h)) => {
                    h.revision = revision;
                    h.plans_revision = plans_revision;
                    false
                }
                // Only asked about a copy that is held.
                (None, None) => false,
                // Figures equal to the copy held come as `None`.
                (Some(v), _) => {
                    let held = Held {
                        value: Arc::new(v),
                        revision,
                        plans_revision,
                    };
                    crate::background::discard(slot.replace(held));
                    true
                }
            };
            failed.remove(&source).is_some() || new
        }
        Some(Err(e)) => {
            let why = e.to_string();
            failed.insert(source, why.clone()).as_ref() != Some(&why)
        }
        None => false,
    }
}

impl Live {
    pub(super) async fn refresh_loop(self, cell: Arc<Cell>) {
        let mut last: Option<(tokio::time::Instant, Duration)> = None;
        loop {
            if let Some((at, pause)) = last {
                tokio::time::sleep_until(at + pause).await;
            }
            let (dirty, covers, signalled) = {
                let mut w = cell.work.lock().expect("work lock");
                if w.dirty == 0 {
                    w.running = false;
                    return;
                }
                (
                    std::mem::take(&mut w.dirty),
                    w.requested,
                    w.signalled.take(),
                )
            };
            let started = tokio::time::Instant::now();
            match tracing::Instrument::instrument(
                self.refresh(&cell, dirty),
                self.refresh_span(&cell),
            )
            .await
            {
                Ok(()) => {
                    if let Some(at) = signalled {
                        self.inner.metrics.standings_fresh(at);
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %cell.name, error = %e, "standings refresh failed");
                    self.retry_soon(&cell.name, dirty);
                }
            }
            let elapsed = started.elapsed();
            self.inner.metrics.standings_refreshed(elapsed);
            tracing::debug!(group = %cell.name, sources = dirty, took_ms = elapsed.as_millis() as u64, "standings refreshed");
            last = Some((tokio::time::Instant::now(), gap(elapsed)));
            cell.done.send_replace(covers);
        }
    }

    async fn refresh(&self, cell: &Cell, dirty: u8) -> Result<(), Error> {
        let mut parts = cell.parts.lock().await;
        let parts = &mut *parts;
        let group = cell.name.as_str();
        let src = &self.inner.sources;
        // The plan-side counter of the plans data held: a component's copy
        // may only be kept if it was read after that data was committed.
        let plans_revision = parts.plans.as_ref().map_or(0, |h| h.revision);
        let full = dirty & FULL != 0;
        let patient = dirty & PATIENT != 0;
        // A source given up on is its probe's until it answers (but a
        // publication asks every source).
        let fetch_if = |s: Source| dirty & s.bit() != 0 && (patient || !parts.probing.contains(&s));
        let fetching = tokio::time::Instant::now();
        let wait = |s: Source| patience(parts.expected.get(&s).copied(), patient);
        let (p, i, r, n) = tokio::join!(
            async {
                if fetch_if(Source::Plans) || parts.plans.is_none() {
                    let s = Source::Plans;
                    let held = parts.plans.as_ref().map(|h| h.value.clone());
                    Some(answer(s, wait(s), src.plans_part(group, held)).await)
                } else {
                    None
                }
            },
            fetch(
                &parts.indicators,
                fetch_if(Source::Indicators),
                full,
                plans_revision,
                wait(Source::Indicators),
                Source::Indicators,
                |k, held| src.indicators(group, k, held)
            ),
            fetch(
                &parts.reviews,
                fetch_if(Source::Reviews),
                full,
                plans_revision,
                wait(Source::Reviews),
                Source::Reviews,
                |k, held| src.reviews(group, k, held)
            ),
            fetch(
                &parts.inspections,
                fetch_if(Source::Inspections),
                full,
                plans_revision,
                wait(Source::Inspections),
                Source::Inspections,
                |k, held| src.inspections(group, k, held)
            ),
        );
        tracing::debug!(
            group,
            took_ms = fetching.elapsed().as_millis() as u64,
            "standings fetched"
        );
        for (s, (took, given_up)) in [
            (Source::Plans, heard(&p, wait(Source::Plans))),
            (Source::Indicators, heard(&i, wait(Source::Indicators))),
            (Source::Reviews, heard(&r, wait(Source::Reviews))),
            (Source::Inspections, heard(&n, wait(Source::Inspections))),
        ] {
            if let Some(took) = took {
                parts.answered_in(s, took);
            }
            if given_up && parts.probing.insert(s) {
                self.probe(group, s);
            }
        }
        let (p, i, r, n) = (
            p.map(|(a, _)| a),
            i.map(|(a, _)| a),
            r.map(|(a, _)| a),
            n.map(|(a, _)| a),
        );
        if let Some(Err(Error::NotFound { .. })) = &p {
            cell.view.send_replace(View::Gone(group.to_string()));
            return Ok(());
        }
        // A plan-side change this refresh discovered (its signal was lost)
        // makes the components' "unchanged" answers worthless: their copies
        // keep the older plans counter, so the round that follows at once
        // refetches them in full.
        let fetched_plans = match &p {
            Some(Ok(r)) => r.revision,
            _ => plans_revision,
        };
        if fetched_plans != plans_revision && (kept(&i) || kept(&r) || kept(&n)) {
            self.mark_again(cell, ALL_SOURCES);
        }
        let failed_now = [
            (Source::Plans, matches!(p, Some(Err(_)))),
            (Source::Indicators, matches!(i, Some(Err(_)))),
            (Source::Reviews, matches!(r, Some(Err(_)))),
            (Source::Inspections, matches!(n, Some(Err(_)))),
        ]
        .into_iter()
        .filter(|(s, failed)| *failed && !parts.probing.contains(s))
        .fold(0, |bits, (s, _)| bits | s.bit());
        if failed_now != 0 {
            self.retry_soon(group, failed_now);
        }
        let mut changed = settle(
            &mut parts.plans,
            &mut parts.failed,
            Source::Plans,
            p,
            fetched_plans,
        );
        let failed = &mut parts.failed;
        changed |= settle(
            &mut parts.indicators,
            failed,
            Source::Indicators,
            i,
            plans_revision,
        );
        changed |= settle(
            &mut parts.reviews,
            failed,
            Source::Reviews,
            r,
            plans_revision,
        );
        changed |= settle(
            &mut parts.inspections,
            failed,
            Source::Inspections,
            n,
            plans_revision,
        );
        let Some(plans) = parts.plans.as_ref().map(|h| h.value.clone()) else {
            // Without members there is no table; keep what readers have and
            // say why it is stale.
            self.mark_stale(cell, &parts.failed);
            return Ok(());
        };
        let mut reasons: BTreeMap<Source, String> = parts.failed.clone();
        for (s, why) in self.inner.down.lock().expect("down lock").iter() {
            reasons.entry(*s).or_insert_with(|| why.clone());
        }
        let (ind, rev, ins) = (
            parts.indicators.as_ref().map(|h| h.value.clone()),
            parts.reviews.as_ref().map(|h| h.value.clone()),
            parts.inspections.as_ref().map(|h| h.value.clone()),
        );
        // A reconciliation or a signal that changed nothing this table
        // shows costs no recomputation.
        let current_reason = stale_reason(&reasons);
        let revisions = parts.service_revisions();
        let current = match &*cell.view.borrow() {
            View::Ready(s) => Some(s.clone()),
            _ => None,
        };
        if !changed
            && let Some(s) = current
            && s.inputs.is_some()
            && s.standings.stale_reason == current_reason
        {
            if s.standings.service_revisions == revisions {
                return Ok(());
            }
            // Only the counters moved (writes that left every figure as it
            // was): the same table, saying it includes them, so that a
            // reader waiting for those revisions gets its answer.
            let rows = s.standings.rows.clone();
            return self
                .publish(cell, rows, &reasons, s.inputs.clone(), s.year, revisions)
                .await;
        }
        let name = group.to_string();
        let year = plans.year;
        // Thousands of rows: computed on the background lane, so that
        // reads served meanwhile do not wait behind it.
        let (inputs, rows) = crate::background::run(move || {
            let parts = (ind.clone(), rev.clone(), ins.clone());
            let inputs = Arc::new(assemble(&name, &plans, parts));
            let rows = standing_rows(inputs.table());
            (inputs, rows)
        })
        .await?;
        self.publish(cell, rows, &reasons, Some(inputs), year, revisions)
            .await
    }

    /// Asks a source the group's rounds gave up on, away from them, every
    /// [`RETRY_AFTER`] until it answers (within the call timeout); then
    /// the rounds ask it again, and how long the probe's answer took (at
    /// most twice its earlier answers, see [`next_expected`]) sets its
    /// patience. Meanwhile the rounds keep its last figures, marked stale.
    fn probe(&self, group: &str, source: Source) {
        let live = self.clone();
        let group = group.to_string();
        tokio::spawn(async move {
            let took = loop {
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER) => {}
                    _ = live.inner.shutdown.clone().wait() => return,
                }
                // A service whose change stream is down is not worth a
                // call a second per group: the stream says when it is back.
                if live.is_down(source) {
                    continue;
                }
                let asked = tokio::time::Instant::now();
                match ask(&live.inner.sources, source, &group).await {
                    Ok(()) => break Some(asked.elapsed()),
                    // The group is gone: the round that follows says so.
                    Err(Error::NotFound { .. }) => break None,
                    Err(_) => {}
                }
            };
            let cell = live.cell(&group);
            {
                let mut parts = cell.parts.lock().await;
                parts.probing.remove(&source);
                if let Some(took) = took {
                    parts.answered_in(source, took);
                }
            }
            live.mark(cell, source.bit());
        });
    }

    /// Marks `sources` of a group again after [`RETRY_AFTER`], unless their
    /// change stream is down: the follower marks every group when it is
    /// back, and a dead service is not worth a fetch a second per group.
    fn retry_soon(&self, group: &str, sources: u8) {
        let live = self.clone();
        let group = group.to_string();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(RETRY_AFTER) => {}
                _ = live.inner.shutdown.clone().wait() => return,
            }
            let down = live.inner.down.lock().expect("down lock");
            let sources = down.keys().fold(sources, |bits, s| bits & !s.bit());
            drop(down);
            if sources != 0 {
                live.mark(live.cell(&group), sources);
            }
        });
    }

    /// Whether a followed service's change stream is down.
    fn is_down(&self, source: Source) -> bool {
        self.inner
            .down
            .lock()
            .expect("down lock")
            .contains_key(&source)
    }

    /// Keeps the current rows, with a new stale mark.
    fn mark_stale(&self, cell: &Cell, failed: &BTreeMap<Source, String>) {
        let current = match &*cell.view.borrow() {
            View::Ready(s) => s.clone(),
            _ => return,
        };
        let mut s = current.standings.clone();
        s.stale = true;
        s.stale_reason = stale_reason(failed);
        s.revision += 1;
        s.update_time = Some(timestamp(jixiao_runtime::time::now_ms()));
        let snapshot = Snapshot {
            encoded: Bytes::from(s.encode_to_vec()),
            standings: s,
            inputs: current.inputs.clone(),
            year: current.year,
        };
        crate::background::discard(cell.view.send_replace(View::Ready(Arc::new(snapshot))));
    }

    /// Stores and hands out new standings when anything readers see changed.
    async fn publish(
        &self,
        cell: &Cell,
        rows: Vec<StandingRow>,
        reasons: &BTreeMap<Source, String>,
        inputs: Option<Arc<GroupInputs>>,
        year: i32,
        revisions: HashMap<String, i64>,
    ) -> Result<(), Error> {
        let previous = match &*cell.view.borrow() {
            View::Ready(s) => Some(s.clone()),
            _ => None,
        };
        let stale = !reasons.is_empty();
        let reason = stale_reason(reasons);
        let name = cell.name.clone();
        let built = crate::background::run(move || {
            if let Some(p) = &previous
                && p.inputs.is_some()
                && p.standings.rows == rows
                && p.standings.stale == stale
                && p.standings.stale_reason == reason
                && p.standings.service_revisions == revisions
            {
                return None;
            }
            let standings = Standings {
                group: name.clone(),
                rows: rows.clone(),
                update_time: Some(timestamp(jixiao_runtime::time::now_ms())),
                stale,
                stale_reason: reason.clone(),
                revision: previous.as_ref().map_or(0, |p| p.standings.revision) + 1,
                service_revisions: revisions.clone(),
            };
            let encoded = Bytes::from(standings.encode_to_vec());
            Some((standings, encoded))
        })
        .await?;
        let Some((standings, encoded)) = built else {
            return Ok(());
        };
        let revision = standings.revision;
        // Readers and watchers first: the stored copy only warms a restart,
        // so it is written behind them (`super::stored`).
        let replaced = cell.view.send_replace(View::Ready(Arc::new(Snapshot {
            standings,
            encoded: encoded.clone(),
            inputs,
            year,
        })));
        crate::background::discard(replaced);
        self.store_later(&cell.name, revision, encoded);
        Ok(())
    }
}

/// One read of a source's figures for a group, in full, for a probe.
async fn ask(src: &Sources, source: Source, group: &str) -> Result<(), Error> {
    match source {
        Source::Plans => src.plans_part(group, None).await.map(drop),
        Source::Indicators => src.indicators(group, 0, None).await.map(drop),
        Source::Reviews => src.reviews(group, 0, None).await.map(drop),
        Source::Inspections => src.inspections(group, 0, None).await.map(drop),
    }
}

fn stale_reason(reasons: &BTreeMap<Source, String>) -> String {
    reasons
        .iter()
        .map(|(s, why)| format!("{}: {why}", s.service()))
        .collect::<Vec<_>>()
        .join("; ")
}

type Fetched<T> = Option<Arc<ByUnit<T>>>;

/// The inputs of a group from the parts fetched so far.
fn assemble(
    group: &str,
    plans: &PlansPart,
    (indicators, reviews, inspections): (
        Fetched<IndicatorPart>,
        Fetched<ReviewPart>,
        Fetched<InspectionPart>,
    ),
) -> GroupInputs {
    let units = plans
        .units
        .iter()
        .map(|u| UnitInputs {
            unit: u.clone(),
            display_name: plans.display_names.get(u).cloned().unwrap_or_default(),
            timeliness: plans.timeliness.get(u).cloned().unwrap_or_default(),
            indicator: indicators.as_ref().and_then(|m| m.get(u).cloned()),
            review: reviews.as_ref().and_then(|m| m.get(u).cloned()),
            inspection: inspections.as_ref().and_then(|m| m.get(u).cloned()),
        })
        .collect();
    GroupInputs {
        group: group.to_string(),
        scheme: plans.scheme.clone(),
        units,
        decisions: Vec::new(),
        format_1: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held<T>(value: T, revision: i64) -> Option<Held<T>> {
        Some(Held {
            value: Arc::new(value),
            revision,
            plans_revision: 0,
        })
    }

    #[test]
    fn the_revisions_are_those_of_the_parts_held() {
        let mut parts = Parts::default();
        assert!(parts.service_revisions().is_empty());
        parts.plans = held(PlansPart::default(), 3);
        parts.reviews = held(HashMap::new(), 17);
        // A failed fetch keeps the copy, and its revision, in place.
        parts.failed.insert(Source::Reviews, "down".into());
        let expected: HashMap<String, i64> =
            [("plans".to_string(), 3), ("reviews".to_string(), 17)]
                .into_iter()
                .collect();
        assert_eq!(parts.service_revisions(), expected);
    }

    #[test]
    fn a_source_is_waited_for_four_times_its_last_full_answer_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(patience(None, false), CALL_TIMEOUT);
        assert_eq!(patience(Some(ms(30)), false), LEAST_PATIENCE);
        assert_eq!(patience(Some(ms(400)), false), ms(1600));
        assert_eq!(patience(Some(ms(3000)), false), CALL_TIMEOUT);
        // Publication waits for every source.
        assert_eq!(patience(Some(ms(30)), true), CALL_TIMEOUT);
    }

    #[tokio::test]
    async fn a_source_past_its_patience_is_unavailable_and_given_up_on() {
        let ms = Duration::from_millis;
        let late: Answer<()> = answer(Source::Reviews, ms(10), std::future::pending()).await;
        match &late.0 {
            Err(Error::Unavailable {
                dependency,
                message,
            }) => {
                assert_eq!(dependency, "reviews service");
                assert_eq!(message, "no answer within 10 ms");
            }
            other => panic!("{other:?}"),
        }
        let late = Some(late);
        assert!(gave_up(&late, ms(10)));
        assert_eq!(full_answer_took(&late), None);
        // A failure before the patience ran out (refused, not found) is
        // no hang, and says nothing of the time an answer takes; nor does
        // "unchanged".
        let refused: Option<Answer<()>> = Some((Err(Error::not_found("x")), ms(2)));
        assert!(!gave_up(&refused, ms(1000)));
        assert_eq!(full_answer_took(&refused), None);
        let unchanged: Option<Answer<()>> = Some((
            Ok(Revised {
                revision: 3,
                part: None,
                whole: false,
            }),
            ms(1),
        ));
        assert_eq!(full_answer_took(&unchanged), None);
        let full: Option<Answer<()>> = Some((
            Ok(Revised {
                revision: 3,
                part: Some(()),
                whole: true,
            }),
            ms(7),
        ));
        assert_eq!(full_answer_took(&full), Some(ms(7)));
        assert!(!gave_up(&full, ms(5)), "an answer is no hang");
    }

    #[test]
    fn one_slow_answer_at_most_doubles_what_is_expected() {
        let ms = Duration::from_millis;
        assert_eq!(next_expected(None, ms(4000)), ms(4000));
        // Resumed after a stop mid-call: 4 s, but 30 ms was the usual.
        assert_eq!(next_expected(Some(ms(30)), ms(4000)), ms(60));
        assert_eq!(patience(Some(ms(60)), false), LEAST_PATIENCE);
        // Slow for good: a few answers get there.
        let mut e = Some(ms(300));
        for _ in 0..4 {
            e = Some(next_expected(e, ms(3000)));
        }
        assert_eq!(e, Some(ms(3000)));
        // Faster again: at once.
        assert_eq!(next_expected(Some(ms(3000)), ms(40)), ms(40));
    }

    #[test]
    fn the_pause_is_twice_a_quick_refresh_and_shrinks_for_slow_ones() {
        let ms = Duration::from_millis;
        assert_eq!(gap(ms(10)), MIN_GAP);
        assert_eq!(gap(ms(40)), ms(80));
        assert_eq!(gap(ms(60)), ms(120));
        // Slower refreshes: the rest of one, the pause and the next fit.
        assert_eq!(gap(ms(75)), ms(100));
        assert_eq!(gap(ms(90)), ms(70));
        // Slower still, only the shortest pause is left.
        assert_eq!(gap(ms(100)), MIN_GAP);
        assert_eq!(gap(ms(2000)), MIN_GAP);
    }
}
