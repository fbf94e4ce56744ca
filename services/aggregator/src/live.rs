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
//! or two refreshes, not one per push. A service that cannot be reached,
//! or does not answer within its patience (`refresh::patience`), leaves
//! the last good figures in place, marked stale with the reason.

mod follow;
mod refresh;
mod stored;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use jixiao_proto::{
    Decimal as ProtoDecimal,
    aggregator::{Component as ProtoComponent, StandingRow, Standings},
};
use jixiao_runtime::{
    Db, Error, deadline::Deadline, host::Shutdown, metrics::Metrics, telemetry::SpanContext,
};
use prost::Message;
use rust_decimal::Decimal;
use tokio::sync::watch;

use crate::{
    inputs::{GroupInputs, UnitRow},
    rules::Component,
    sources::{Source, Sources},
    store,
};

use refresh::Parts;

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
    /// The group does not exist; the name it was asked by (NOT_FOUND's
    /// resource).
    Gone(String),
}

/// A group's pending refresh work. `requested` counts marks; `done` (in
/// the cell) the marks covered by finished refreshes, so a caller can wait
/// for a refresh that started after its own mark.
#[derive(Default)]
struct Work {
    dirty: u8,
    running: bool,
    requested: u64,
    /// When the earliest change not yet refreshed was written.
    signalled: Option<std::time::Instant>,
    /// The calls behind the change signals not yet refreshed, with the
    /// revision each made, whose traces the next refresh joins (at most
    /// [`MOST_CAUSES`]).
    causes: Vec<(Source, i64, SpanContext)>,
}

/// The most calls one refresh is traced to: a burst of changes is one
/// refresh, which names its first causes, not every one.
const MOST_CAUSES: usize = 32;

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
    /// Calls waiting for a condition ([`Live::view_including`]), per caller.
    waiting: Mutex<HashMap<String, usize>>,
    /// Tables not yet stored, per group (see `stored`).
    unstored: Mutex<HashMap<String, (i64, Bytes)>>,
    store_wake: tokio::sync::Notify,
    shutdown: Shutdown,
    metrics: Metrics,
}

/// The longest a call waits for standings to include revisions: a caller
/// that sends no deadline (or a longer one) is answered DEADLINE_EXCEEDED
/// then, so waits cannot pile up forever.
pub const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// How many calls of one caller may wait for a condition at once; beyond
/// it a wait is refused at once (RESOURCE_EXHAUSTED, TOO_MANY_CALLS), so
/// waits never take the whole per-caller call limit from its other calls.
pub const WAITS_PER_CALLER: usize = 8;

/// A caller's place among the waiting calls, given back when dropped.
struct WaitSlot<'a> {
    waiting: &'a Mutex<HashMap<String, usize>>,
    caller: String,
}

impl Drop for WaitSlot<'_> {
    fn drop(&mut self) {
        let mut waiting = self.waiting.lock().expect("waiting lock");
        if let Some(n) = waiting.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                waiting.remove(&self.caller);
            }
        }
    }
}

/// The live standings of every group the aggregator knows.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

const ALL_SOURCES: u8 = 0b1111;
/// With [`ALL_SOURCES`]: refetch every part in full, trusting no counter.
const FULL: u8 = 0b1_0000;
/// Wait for every source the whole call timeout rather than its patience
/// (`refresh::patience`): a publication may not go without any of them.
const PATIENT: u8 = 0b10_0000;

impl Live {
    /// Loads the stored standings (marked stale until refreshed) and starts
    /// following the component services.
    pub async fn start(
        db: Db,
        sources: Sources,
        shutdown: Shutdown,
        reconcile: Duration,
        metrics: Metrics,
    ) -> Result<Live, Error> {
        let live = Live {
            inner: Arc::new(Inner {
                db,
                sources,
                groups: Mutex::new(HashMap::new()),
                down: Mutex::new(BTreeMap::new()),
                waiting: Mutex::new(HashMap::new()),
                unstored: Mutex::new(HashMap::new()),
                store_wake: tokio::sync::Notify::new(),
                shutdown,
                metrics: metrics.clone(),
            }),
        };
        let weak = Arc::downgrade(&live.inner);
        metrics.on_scrape(move |m| {
            if let Some(inner) = weak.upgrade() {
                let groups = inner.groups.lock().expect("groups lock");
                m.set_stale_groups(
                    groups
                        .values()
                        .filter(
                            |c| matches!(&*c.view.borrow(), View::Ready(s) if s.standings.stale),
                        )
                        .count(),
                );
            }
        });
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
        tokio::spawn(live.clone().keep_stored());
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

    /// [`Live::mark`] for a change signal, noting when the earliest change
    /// the next refresh covers was written (for the freshness metric).
    fn signal(&self, cell: Arc<Cell>, sources: u8, written: std::time::Instant) {
        {
            let mut w = cell.work.lock().expect("work lock");
            w.signalled = Some(w.signalled.map_or(written, |at| at.min(written)));
        }
        self.mark(cell, sources);
    }

    /// Notes the call behind a change signal of a group, for the trace of
    /// the refresh that takes it (see [`Live::refresh_span`]).
    fn cause(&self, cell: &Cell, source: Source, revision: i64, cause: Option<SpanContext>) {
        let mut w = cell.work.lock().expect("work lock");
        if let Some(cause) = cause
            && w.causes.len() < MOST_CAUSES
        {
            w.causes.push((source, revision, cause));
        }
    }

    /// The span of one refresh of `cell`. A refresh that follows change
    /// signals is a child of the first signalling call whose change the
    /// standings do not include yet, so that call's trace shows the
    /// refresh that brings its change in (and the calls it made); the
    /// other calls it coalesced, and those whose change an earlier refresh
    /// already read (their signal came late), are linked, since a span has
    /// one parent. A refresh without signals (reconciliation, a reader's
    /// first look) starts a trace of its own.
    fn refresh_span(&self, cell: &Cell) -> tracing::Span {
        let causes = std::mem::take(&mut cell.work.lock().expect("work lock").causes);
        let view = cell.view.borrow().clone();
        let read = |source: Source| match &view {
            View::Ready(s) => revision_of(&s.standings, source),
            _ => 0,
        };
        let (new, old): (Vec<_>, Vec<_>) = causes.into_iter().partition(|(s, r, _)| read(*s) < *r);
        let causes: Vec<SpanContext> = new.into_iter().chain(old).map(|(_, _, c)| c).collect();
        let span = tracing::info_span!("refresh", group = %cell.name);
        jixiao_runtime::telemetry::caused_by(&span, &causes);
        span
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

    /// A group's first view that includes every revision of `wanted`
    /// (see [`includes`]), waiting for it until `deadline` (answered a
    /// moment before, so the caller gets DEADLINE_EXCEEDED from here rather
    /// than CANCELLED from tonic) or, without one, until shutdown. It waits
    /// on the group's view channel, woken only by new views; the sources
    /// still behind are marked once, so that a lost or late change signal
    /// does not leave the caller waiting for the reconciliation.
    /// A place among `caller`'s waiting calls, or TOO_MANY_CALLS.
    fn wait_slot(&self, caller: &str) -> Result<WaitSlot<'_>, Error> {
        let mut waiting = self.inner.waiting.lock().expect("waiting lock");
        let n = waiting.entry(caller.to_string()).or_insert(0);
        if *n >= WAITS_PER_CALLER {
            return Err(Error::Busy(format!(
                "{caller} already has {WAITS_PER_CALLER} calls waiting for standings to include revisions"
            )));
        }
        *n += 1;
        Ok(WaitSlot {
            waiting: &self.inner.waiting,
            caller: caller.to_string(),
        })
    }

    pub async fn view_including(
        &self,
        caller: &str,
        group: &str,
        wanted: &[(Source, i64)],
        deadline: Option<Deadline>,
    ) -> Result<Arc<Snapshot>, Error> {
        let current = self.view(group).await?;
        if includes(&current.standings, wanted) {
            return Ok(current);
        }
        let _slot = self.wait_slot(caller)?;
        let cell = self.cell(group);
        let mut rx = cell.view.subscribe();
        let behind = wanted
            .iter()
            .filter(|(s, r)| revision_of(&current.standings, *s) < *r)
            .fold(0, |bits, (s, _)| bits | s.bit());
        if behind != 0 {
            self.mark(cell.clone(), behind);
        }
        let wait = rx.wait_for(|v| match v {
            View::Ready(s) => includes(&s.standings, wanted),
            View::Gone(_) => true,
            View::Pending => false,
        });
        let longest = tokio::time::Instant::now() + LONGEST_WAIT;
        let until = deadline.map_or(longest, |d| d.answer_by().min(longest));
        let view = tokio::select! {
            w = wait => match w {
                Ok(v) => (*v).clone(),
                Err(_) => return Err(shutting_down()),
            },
            _ = tokio::time::sleep_until(until) => {
                return Err(Error::DeadlineExceeded(format!(
                    "{group} did not include {} by the caller's deadline (or within {} s)",
                    describe(wanted),
                    LONGEST_WAIT.as_secs()
                )));
            }
            _ = self.inner.shutdown.clone().wait() => return Err(shutting_down()),
        };
        match view {
            View::Ready(s) => Ok(s),
            View::Gone(why) => {
                self.forget(group);
                Err(Error::not_found(why))
            }
            View::Pending => unreachable!("waited for a ready or gone view"),
        }
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
        let mark = self.mark(cell.clone(), ALL_SOURCES | FULL | PATIENT);
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
}

/// The revision of a service's figures that standings include (0: none).
pub fn revision_of(standings: &Standings, source: Source) -> i64 {
    standings
        .service_revisions
        .get(source.key())
        .copied()
        .unwrap_or(0)
}

/// Whether standings include every revision of `wanted`.
pub fn includes(standings: &Standings, wanted: &[(Source, i64)]) -> bool {
    wanted.iter().all(|(s, r)| revision_of(standings, *s) >= *r)
}

/// `reviews 17, indicators 4`, for messages.
fn describe(wanted: &[(Source, i64)]) -> String {
    wanted
        .iter()
        .map(|(s, r)| format!("{} {r}", s.key()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn shutting_down() -> Error {
    Error::Unavailable {
        dependency: "aggregator".into(),
        message: "the aggregator is shutting down".into(),
    }
}

/// A published figure on the wire, with its 3 places ("78.000").
fn fixed(d: Option<Decimal>) -> Option<ProtoDecimal> {
    d.map(|d| ProtoDecimal {
        value: jixiao_runtime::decimal::text(d),
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
pub fn standing_rows(table: Vec<UnitRow>) -> Vec<StandingRow> {
    let mut rows: Vec<StandingRow> = table
        .into_iter()
        .map(|u| {
            let r = &u.row;
            StandingRow {
                rank: r.rank as i32,
                unit: u.unit,
                unit_display_name: u.display_name,
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
                flags: u.flags,
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
