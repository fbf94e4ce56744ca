//! Live standings: the aggregator follows the change streams of the plans,
//! indicators, reviews and inspections services, refetches only what
//! changed (a plan-side change refetches every component, which score from
//! plans data), recomputes the group's table, stores it and hands readers
//! the stored, already encoded result. A read never reaches another
//! service. A periodic reconciliation is the safety net for lost signals;
//! it sends the change counters of the copies held, so a component whose
//! counter has not moved answers "unchanged" instead of recomputing.
//!
//! Each group has one refresh task at a time; changes that arrive while it
//! runs are coalesced into the next round, so a burst of pushes costs one
//! or two refreshes, not one per push. A service that cannot be reached
//! leaves the last good figures in place, marked stale with the reason.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures::StreamExt;
use jixiao_proto::{
    Decimal as ProtoDecimal,
    aggregator::{Component as ProtoComponent, StandingRow, Standings},
};
use jixiao_runtime::{Db, Error, host::Shutdown, time::timestamp};
use prost::Message;
use rust_decimal::Decimal;
use tokio::sync::watch;

use crate::{
    inputs::{GroupInputs, IndicatorPart, InspectionPart, ReviewPart, UnitInputs, UnitRow},
    rules::Component,
    sources::{PlansPart, Revised, Source, Sources},
    store,
};

/// Bounds of the pause between two refreshes of one group.
const MIN_GAP: Duration = Duration::from_millis(100);
const MAX_GAP: Duration = Duration::from_millis(500);
/// What a change may wait for, at worst, before readers see it: DOMAIN.md
/// §8 allows one second, and the push and the read take some of it.
const FRESHNESS: Duration = Duration::from_millis(900);

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

/// One group's current standings, as readers get them.
#[derive(Debug)]
pub struct Snapshot {
    pub standings: Standings,
    /// `standings`, encoded once for every reader.
    pub encoded: Bytes,
    /// The inputs behind the table (absent until the first full refresh
    /// after a start).
    pub inputs: Option<Arc<GroupInputs>>,
    pub year: i32,
}

/// What a reader of a group sees.
#[derive(Debug, Clone)]
pub enum View {
    /// Not computed yet.
    Pending,
    Ready(Arc<Snapshot>),
    /// The group does not exist.
    Gone(String),
}

/// The last figures fetched from each service (shared, so that computing
/// a table off the async workers needs no copy).
#[derive(Default)]
struct Parts {
    plans: Option<Held<PlansPart>>,
    indicators: Option<Held<HashMap<String, IndicatorPart>>>,
    reviews: Option<Held<HashMap<String, ReviewPart>>>,
    inspections: Option<Held<HashMap<String, InspectionPart>>>,
    /// Last fetch failure per source.
    failed: BTreeMap<Source, String>,
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
    get: F,
) -> Option<Result<Revised<T>, Error>>
where
    F: FnOnce(i64) -> Fut,
    Fut: Future<Output = Result<Revised<T>, Error>>,
{
    let known = match held {
        None => 0,
        Some(_) if !marked => return None,
        Some(h) if !full && h.plans_revision == plans_revision => h.revision,
        Some(_) => 0,
    };
    Some(get(known).await)
}

/// Whether a fetch was answered "unchanged".
fn kept<T>(got: &Option<Result<Revised<T>, Error>>) -> bool {
    matches!(got, Some(Ok(Revised { part: None, .. })))
}

/// Takes a fetched part; says whether anything readers see changed.
fn settle<T: PartialEq>(
    slot: &mut Option<Held<T>>,
    failed: &mut BTreeMap<Source, String>,
    source: Source,
    got: Option<Result<Revised<T>, Error>>,
    plans_revision: i64,
) -> bool {
    match got {
        Some(Ok(Revised { revision, part })) => {
            let new = match (part, slot.as_mut()) {
                (None, Some(h)) => {
                    h.revision = revision;
                    h.plans_revision = plans_revision;
                    false
                }
                // Only asked about a copy that is held.
                (None, None) => false,
                (Some(v), _) => {
                    let new = slot.as_ref().is_none_or(|h| *h.value != v);
                    *slot = Some(Held {
                        value: Arc::new(v),
                        revision,
                        plans_revision,
                    });
                    new
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

/// A group's pending refresh work. `requested` counts marks; `done` (in
/// the cell) the marks covered by finished refreshes, so a caller can wait
/// for a refresh that started after its own mark.
#[derive(Default)]
struct Work {
    dirty: u8,
    running: bool,
    requested: u64,
}

struct Cell {
    name: String,
    view: watch::Sender<View>,
    done: watch::Sender<u64>,
    work: Mutex<Work>,
    parts: tokio::sync::Mutex<Parts>,
}

struct Inner {
    db: Db,
    sources: Sources,
    groups: Mutex<HashMap<String, Arc<Cell>>>,
    /// Followed services whose change stream is down, with the reason.
    down: Mutex<BTreeMap<Source, String>>,
    shutdown: Shutdown,
}

/// The live standings of every group the aggregator knows.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

const ALL_SOURCES: u8 = 0b1111;
/// With [`ALL_SOURCES`]: refetch every part in full, trusting no counter.
const FULL: u8 = 0b1_0000;
/// Every this many reconciliations is a full one: a crash between a plans
/// commit and its counter bump would otherwise go unseen.
const FULL_EVERY: u32 = 10;

impl Live {
    /// Loads the stored standings (marked stale until refreshed) and starts
    /// following the component services.
    pub async fn start(
        db: Db,
        sources: Sources,
        shutdown: Shutdown,
        reconcile: Duration,
    ) -> Result<Live, Error> {
        let live = Live {
            inner: Arc::new(Inner {
                db,
                sources,
                groups: Mutex::new(HashMap::new()),
                down: Mutex::new(BTreeMap::new()),
                shutdown,
            }),
        };
        for mut s in store::load_standings(&live.inner.db).await? {
            s.stale = true;
            s.stale_reason = "not refreshed since the aggregator started".into();
            let cell = live.cell(&s.group);
            let snapshot = Snapshot {
                encoded: Bytes::from(s.encode_to_vec()),
                standings: s,
                inputs: None,
                year: 0,
            };
            cell.view.send_replace(View::Ready(Arc::new(snapshot)));
        }
        for source in Source::FOLLOWED {
            tokio::spawn(live.clone().follow(source));
        }
        tokio::spawn(live.clone().reconcile(reconcile));
        Ok(live)
    }

    /// Ends streams when the process shuts down.
    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }

    fn cell(&self, group: &str) -> Arc<Cell> {
        let mut groups = self.inner.groups.lock().expect("groups lock");
        groups
            .entry(group.to_string())
            .or_insert_with(|| {
                Arc::new(Cell {
                    name: group.to_string(),
                    view: watch::Sender::new(View::Pending),
                    done: watch::Sender::new(0),
                    work: Mutex::new(Work::default()),
                    parts: tokio::sync::Mutex::new(Parts::default()),
                })
            })
            .clone()
    }

    fn known(&self) -> Vec<Arc<Cell>> {
        self.inner
            .groups
            .lock()
            .expect("groups lock")
            .values()
            .cloned()
            .collect()
    }

    /// Marks sources of a group as changed and makes sure a refresh runs;
    /// returns the mark's number.
    fn mark(&self, cell: Arc<Cell>, sources: u8) -> u64 {
        let (start, mark) = {
            let mut w = cell.work.lock().expect("work lock");
            w.dirty |= sources;
            w.requested += 1;
            (!std::mem::replace(&mut w.running, true), w.requested)
        };
        if start {
            tokio::spawn(self.clone().refresh_loop(cell));
        }
        mark
    }

    /// Marks a group from inside its own refresh: the loop running it
    /// takes the mark on its next round.
    fn mark_again(&self, cell: &Cell, sources: u8) {
        let mut w = cell.work.lock().expect("work lock");
        w.dirty |= sources;
    }

    /// A group's current view; an unknown group is computed on first use.
    pub async fn view(&self, group: &str) -> Result<Arc<Snapshot>, Error> {
        let cell = self.cell(group);
        if let View::Ready(s) = &*cell.view.borrow() {
            return Ok(s.clone());
        }
        self.refresh_now(group).await
    }

    /// A receiver that sees every new view of a group.
    pub async fn subscribe(&self, group: &str) -> Result<watch::Receiver<View>, Error> {
        self.view(group).await?;
        Ok(self.cell(group).view.subscribe())
    }

    fn forget(&self, group: &str) {
        let mut groups = self.inner.groups.lock().expect("groups lock");
        if let Some(c) = groups.get(group)
            && matches!(*c.view.borrow(), View::Gone(_))
        {
            groups.remove(group);
        }
    }

    /// Refetches everything of a group now and waits for the result (for
    /// publication, which must not publish figures older than the call).
    pub async fn refresh_now(&self, group: &str) -> Result<Arc<Snapshot>, Error> {
        let cell = self.cell(group);
        let mut done = cell.done.subscribe();
        let mark = self.mark(cell.clone(), ALL_SOURCES | FULL);
        let finished =
            tokio::time::timeout(Duration::from_secs(30), done.wait_for(|d| *d >= mark)).await;
        if !matches!(finished, Ok(Ok(_))) {
            return Err(Error::Unavailable {
                dependency: "component services".into(),
                message: format!("{group} could not be refreshed in time"),
            });
        }
        let view = cell.view.borrow().clone();
        match view {
            View::Ready(s) => Ok(s),
            View::Gone(why) => {
                self.forget(group);
                Err(Error::not_found(why))
            }
            View::Pending => Err(Error::Unavailable {
                dependency: "plans service".into(),
                message: format!("the members of {group} could not be read"),
            }),
        }
    }

    // ------------------------------------------------------------ refresh

    async fn refresh_loop(self, cell: Arc<Cell>) {
        let mut last: Option<(tokio::time::Instant, Duration)> = None;
        loop {
            if let Some((at, pause)) = last {
                tokio::time::sleep_until(at + pause).await;
            }
            let (dirty, covers) = {
                let mut w = cell.work.lock().expect("work lock");
                if w.dirty == 0 {
                    w.running = false;
                    return;
                }
                (std::mem::take(&mut w.dirty), w.requested)
            };
            let started = tokio::time::Instant::now();
            if let Err(e) = self.refresh(&cell, dirty).await {
                tracing::warn!(group = %cell.name, error = %e, "standings refresh failed");
            }
            let elapsed = started.elapsed();
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
        let fetch_if = |s: Source| dirty & s.bit() != 0;
        let (p, i, r, n) = tokio::join!(
            async {
                if fetch_if(Source::Plans) || parts.plans.is_none() {
                    Some(src.plans_part(group).await)
                } else {
                    None
                }
            },
            fetch(
                &parts.indicators,
                fetch_if(Source::Indicators),
                full,
                plans_revision,
                |k| src.indicators(group, k)
            ),
            fetch(
                &parts.reviews,
                fetch_if(Source::Reviews),
                full,
                plans_revision,
                |k| src.reviews(group, k)
            ),
            fetch(
                &parts.inspections,
                fetch_if(Source::Inspections),
                full,
                plans_revision,
                |k| src.inspections(group, k)
            ),
        );
        if let Some(Err(Error::NotFound { .. })) = &p {
            cell.view
                .send_replace(View::Gone(format!("{group} is not a group")));
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
        if !changed
            && let View::Ready(s) = &*cell.view.borrow()
            && s.inputs.is_some()
            && s.standings.stale_reason == current_reason
        {
            return Ok(());
        }
        let name = group.to_string();
        let year = plans.year;
        // Thousands of rows: computed off the async workers, so that reads
        // served meanwhile do not wait behind it.
        let (inputs, rows) = tokio::task::spawn_blocking(move || {
            let inputs = Arc::new(assemble(&name, &plans, (ind, rev, ins)));
            let rows = standing_rows(&inputs.table());
            (inputs, rows)
        })
        .await
        .map_err(Error::internal)?;
        self.publish(cell, rows, &reasons, Some(inputs), year).await
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
        cell.view.send_replace(View::Ready(Arc::new(snapshot)));
    }

    /// Stores and hands out new standings when anything readers see changed.
    async fn publish(
        &self,
        cell: &Cell,
        rows: Vec<StandingRow>,
        reasons: &BTreeMap<Source, String>,
        inputs: Option<Arc<GroupInputs>>,
        year: i32,
    ) -> Result<(), Error> {
        let previous = match &*cell.view.borrow() {
            View::Ready(s) => Some(s.clone()),
            _ => None,
        };
        let stale = !reasons.is_empty();
        let reason = stale_reason(reasons);
        let name = cell.name.clone();
        let built = tokio::task::spawn_blocking(move || {
            if let Some(p) = &previous
                && p.inputs.is_some()
                && p.standings.rows == rows
                && p.standings.stale == stale
                && p.standings.stale_reason == reason
            {
                return None;
            }
            let standings = Standings {
                group: name,
                rows,
                update_time: Some(timestamp(jixiao_runtime::time::now_ms())),
                stale,
                stale_reason: reason,
                revision: previous.as_ref().map_or(0, |p| p.standings.revision) + 1,
            };
            let encoded = Bytes::from(standings.encode_to_vec());
            Some((standings, encoded))
        })
        .await
        .map_err(Error::internal)?;
        let Some((standings, encoded)) = built else {
            return Ok(());
        };
        let revision = standings.revision;
        // Readers and watchers first: the stored copy only warms a restart,
        // so its write stays off the freshness path.
        cell.view.send_replace(View::Ready(Arc::new(Snapshot {
            standings,
            encoded: encoded.clone(),
            inputs,
            year,
        })));
        store::save_standings(&self.inner.db, &cell.name, revision, &encoded).await
    }

    // ------------------------------------------------------------ following

    /// Follows one service's change stream for as long as the process runs,
    /// reconnecting with backoff; while it is down every group is stale.
    async fn follow(self, source: Source) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let reason = match self.inner.sources.watch(source).await {
                Ok(mut stream) => {
                    backoff = Duration::from_millis(100);
                    let was_down = self
                        .inner
                        .down
                        .lock()
                        .expect("down lock")
                        .remove(&source)
                        .is_some();
                    if was_down {
                        tracing::info!(service = source.service(), "change stream back");
                    }
                    // Whatever changed while the stream was away is picked
                    // up by refetching this source for every group.
                    // The component services score from plans data, so a
                    // plan-side change refetches every source.
                    let bits = if source == Source::Plans {
                        ALL_SOURCES | FULL
                    } else {
                        source.bit()
                    };
                    for cell in self.known() {
                        self.mark(cell, bits);
                    }
                    loop {
                        tokio::select! {
                            item = stream.next() => match item {
                                Some(Ok(group)) => {
                                    let cell = self.cell(&group);
                                    self.mark(cell, bits);
                                }
                                Some(Err(e)) => break e.to_string(),
                                None => break format!("{} closed its change stream", source.service()),
                            },
                            _ = self.inner.shutdown.clone().wait() => return,
                        }
                    }
                }
                Err(e) => e.to_string(),
            };
            let newly_down = self
                .inner
                .down
                .lock()
                .expect("down lock")
                .insert(source, reason.clone())
                .is_none();
            if newly_down {
                tracing::warn!(service = source.service(), reason = %reason, "change stream down; standings are stale");
                for cell in self.known() {
                    self.mark(cell, source.bit());
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.inner.shutdown.clone().wait() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Refetches every active group now and then: plans data always (its
    /// timeliness flags move with the clock), the components when their
    /// counters moved, and everything in full every [`FULL_EVERY`] rounds.
    async fn reconcile(self, every: Duration) {
        for round in 0u32.. {
            let bits = if round % FULL_EVERY == 0 {
                ALL_SOURCES | FULL
            } else {
                ALL_SOURCES
            };
            match self.inner.sources.active_groups().await {
                Ok(groups) => {
                    for g in groups {
                        let cell = self.cell(&g);
                        self.mark(cell, bits);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reconciliation could not list groups"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.inner.shutdown.clone().wait() => return,
            }
        }
    }
}

fn stale_reason(reasons: &BTreeMap<Source, String>) -> String {
    reasons
        .iter()
        .map(|(s, why)| format!("{}: {why}", s.service()))
        .collect::<Vec<_>>()
        .join("; ")
}

type Fetched<T> = Option<Arc<HashMap<String, T>>>;

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

/// A published figure on the wire, with its 3 places ("78.000").
fn fixed(d: Option<Decimal>) -> Option<ProtoDecimal> {
    d.map(|d| ProtoDecimal {
        value: d.to_string(),
    })
}

pub(crate) fn proto_component(c: Component) -> ProtoComponent {
    match c {
        Component::Indicator => ProtoComponent::Indicator,
        Component::Survey => ProtoComponent::Survey,
        Component::Online => ProtoComponent::Online,
        Component::Mutual => ProtoComponent::Mutual,
        Component::Inspection => ProtoComponent::Inspection,
    }
}

/// The table as wire rows, ordered by rank (units without a rank last),
/// then unit.
pub fn standing_rows(table: &[UnitRow]) -> Vec<StandingRow> {
    let mut rows: Vec<StandingRow> = table
        .iter()
        .map(|u| {
            let r = &u.row;
            StandingRow {
                rank: r.rank as i32,
                unit: u.unit.clone(),
                unit_display_name: u.display_name.clone(),
                indicator: fixed(r.indicator),
                survey: fixed(r.survey),
                online: fixed(r.online),
                mutual: fixed(r.mutual),
                review_total: fixed(r.review_total),
                deductions: fixed(r.deductions),
                credits: fixed(r.credits),
                adjustment: fixed(r.adjustment),
                composite: fixed(r.composite),
                missing: r
                    .missing
                    .iter()
                    .map(|c| proto_component(*c) as i32)
                    .collect(),
                flags: u.flags.clone(),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        let key = |r: &StandingRow| if r.rank == 0 { i32::MAX } else { r.rank };
        key(a).cmp(&key(b)).then_with(|| a.unit.cmp(&b.unit))
    });
    rows
}

pub(crate) fn component_from_proto(c: ProtoComponent) -> Option<Component> {
    Some(match c {
        ProtoComponent::Indicator => Component::Indicator,
        ProtoComponent::Survey => Component::Survey,
        ProtoComponent::Online => Component::Online,
        ProtoComponent::Mutual => Component::Mutual,
        ProtoComponent::Inspection => Component::Inspection,
        ProtoComponent::Unspecified | ProtoComponent::Composite => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_is_twice_a_quick_refresh_and_shrinks_for_slow_ones() {
        let ms = Duration::from_millis;
        assert_eq!(gap(ms(10)), MIN_GAP);
        assert_eq!(gap(ms(150)), ms(300));
        assert_eq!(gap(ms(225)), ms(450));
        // Slow refreshes: the rest of one, the pause and the next fit.
        assert_eq!(gap(ms(300)), ms(300));
        assert_eq!(gap(ms(350)), ms(200));
        assert_eq!(gap(ms(2000)), MIN_GAP);
    }
}
