//! The bulk lane: throughput work (a platform's stream of survey batches,
//! a standings refresh's computation) runs on threads of lower scheduling
//! priority than the runtime's workers, so that on a busy core latency
//! work (a dashboard's read, the scores the aggregator asks for after a
//! change) goes first.
//!
//! Why a priority and not only other threads: the kernel shares a core
//! between threads of equal priority in slices of a few milliseconds, so
//! a read that arrives while bulk work holds the core waits for slices;
//! and work on the same runtime as the reads queues the reads' tasks
//! behind its own (issue 22: under survey ingest at half capacity a
//! group's scores took three times their CPU time). A lowered thread
//! gives the core up as soon as a worker wakes, yet takes every cycle the
//! reads leave, so bulk work is slower only while reads keep every core
//! busy.

use std::sync::OnceLock;

use crate::{Error, revisions};

/// The nice value of the lane's threads (0 is the workers'; 19 the
/// lowest). 10 weighs about a tenth of a worker.
pub const NICE: i32 = 10;

/// A runtime whose threads run at [`NICE`].
fn lowered(name: &'static str, workers: Option<usize>) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder
        .thread_name(name)
        .enable_all()
        .on_thread_start(move || lower_priority(name))
        .build()
        .expect("a bulk runtime")
}

/// The lane's runtime: as many workers as the service's own.
fn lane() -> &'static tokio::runtime::Runtime {
    static LANE: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    LANE.get_or_init(|| lowered("bulk", None))
}

/// The thread that drives the one writer's statements: binding the next
/// statement must not wait for the lane's workers to finish decoding a
/// batch, or the writer idles meanwhile (issue 22: +10-15% ingest on
/// SQLite).
fn writer_lane() -> &'static tokio::runtime::Runtime {
    static LANE: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    LANE.get_or_init(|| lowered("bulk-writer", Some(1)))
}

/// Runs `work` on the lane and waits for it, as part of the calling RPC:
/// in its span (so its logs and the changes it makes carry the call's
/// trace), noting its revisions for the call's read-your-writes header.
/// The work finishes even if the caller goes away meanwhile, as a write
/// already handed to the database would.
pub async fn run<T, F>(work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    run_on(lane(), work).await
}

/// As [`run`], on the thread that drives the writer: for a transaction's
/// statements, once the batches are decoded and checked.
pub async fn write<T, F>(work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    run_on(writer_lane(), work).await
}

async fn run_on<T, F>(runtime: &'static tokio::runtime::Runtime, work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    let work = tracing::Instrument::in_current_span(revisions::collect(work));
    let (out, noted) = spawn_on(runtime, work).await?;
    revisions::note(&noted);
    out
}

/// Runs `work` on the lane; threads it starts inherit the lane's priority
/// (the SQLite writer's, see `Db::connect_bulk`).
pub(crate) async fn spawn<T, F>(work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    spawn_on(lane(), work).await
}

async fn spawn_on<T, F>(runtime: &'static tokio::runtime::Runtime, work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    runtime
        .spawn(work)
        .await
        .map_err(|e| Error::Internal(format!("the bulk lane lost its work: {e}").into()))
}

/// Lowers the calling thread to [`NICE`]. Lowering needs no privilege; a
/// system that refuses it leaves the thread at normal priority, which is
/// only slower for reads, so the refusal is logged and not fatal.
pub fn lower_priority(lane: &str) {
    // On Linux a thread id names the one thread; elsewhere this would
    // lower the whole process, so the lane keeps normal priority there.
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
        tracing::warn!(lane, error = %e, "could not lower a lane's priority; reads may wait behind it");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = lane;
}

/// Runs the calling thread only on cycles no other thread wants
/// (`SCHED_IDLE`): for work whose result is derived and may be late, never
/// a client's request. A nice value only weighs a thread's share: the
/// kernel still lets a lowered thread finish its slice, a millisecond or
/// more, before a woken reader runs (issue 22: a standings refresh put
/// 10–19 ms on a read's p99 under ingest at nice 10), while an idle-policy
/// thread gives the core up at once. It still runs whenever a core has
/// nothing else to do. Like [`lower_priority`], it needs no privilege and
/// a refusal is logged, not fatal.
pub fn idle_only(lane: &str) {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(e) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        {
            tracing::warn!(lane, error = ?e, "could not make a lane idle-only; falling back to a lower priority");
            lower_priority(lane);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = lane;
}

/// Whether the calling thread runs only on idle cycles (Linux), for tests.
#[cfg(target_os = "linux")]
pub fn is_idle_only() -> bool {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
    matches!(
        thread_priority::thread_schedule_policy(),
        Ok(ThreadSchedulePolicy::Normal(
            NormalThreadSchedulePolicy::Idle
        ))
    )
}

/// The CPU time the calling thread has used: with the wall time, how
/// long a piece of work waited for a core.
pub fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The nice value of the calling thread (Linux), for tests.
#[cfg(target_os = "linux")]
pub fn current_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("getpriority")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn work_runs_below_the_workers_and_keeps_the_calls_revisions() {
        let change = crate::changes::Change {
            group: "cycles/2026/groups/g".into(),
            revision: 7,
            traceparent: None,
            time_ms: None,
        };
        let sent = change.clone();
        let (out, noted) = revisions::collect(run(async move {
            revisions::note([&sent]);
            let writer = write(async { Ok(current_nice()) }).await?;
            Ok((current_nice(), writer))
        }))
        .await;
        let (lane, writer) = out.unwrap();
        for nice in [lane, writer] {
            assert!(nice >= NICE.max(current_nice()), "{nice}");
        }
        assert_eq!(noted, vec![change]);
    }

    #[tokio::test]
    async fn an_error_of_the_work_is_the_callers() {
        let e = run(async { Err::<(), _>(Error::invalid("campaign", "is required")) })
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    }
}
