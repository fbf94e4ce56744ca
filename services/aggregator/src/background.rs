//! The background lane: the CPU work of a standings refresh (turning a
//! component's answer into inputs, computing and encoding the table, and
//! dropping the tables it replaces) runs on threads that take only the
//! cycles the runtime's workers leave ([`bulk::idle_only`]), so that on a
//! busy core a dashboard's read never waits behind a refresh. The lane is
//! plain threads rather than the bulk runtime: its jobs are synchronous.
//!
//! Why a scheduling policy and not only another thread: a refresh of
//! 3,000 units holds a core for tens of milliseconds, and the kernel
//! shares a core between threads of equal priority in slices of a few
//! milliseconds, so a read arriving meanwhile waited up to a slice (issue
//! 22: under ingest a read's p99 went from 3 to 13 ms on the readers'
//! core, with `perf sched` showing the refresh's slices of up to 8 ms).
//! At nice 10 the slices shrank but stayed (p99 under ingest 1.6–2.9 × its
//! idle figure); an idle-policy thread is preempted as soon as a reader
//! wakes, yet gets every cycle the reads leave, so refreshes are late only
//! while reads keep every core busy.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use jixiao_runtime::{Error, bulk};

/// How many refreshes may compute at once (groups refresh independently),
/// at most: no more than the cores this process may run on, since two
/// lane threads sharing one core would each count the other's turns as
/// starvation (see [`STARVED`]) and send the lane to nice 10 for nothing.
const THREADS: usize = 2;

/// The lane's threads: [`THREADS`], or fewer cores.
fn thread_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(THREADS))
}

/// A computation queued this long and not taken, or one that spent this
/// long ready to run but not running while getting less than
/// [`STARVED_SHARE`] of its core, was starved of idle cycles: something
/// kept every core busy meanwhile (readers back to back, or a database's
/// processes on the same machine). A refresh is a few computations, and
/// changes should reach readers within 250 ms.
const STARVED: Duration = Duration::from_millis(50);
/// The share of the core below which a computation that waited
/// [`STARVED`] counts as starved. Readers that leave most of a core idle
/// still delay an idle-policy computation by about their own share (a
/// 50 ms computation waited 70–100 ms beside 16 paced readers, issue 22),
/// which is no starvation; yet going by the wait alone sent such phases
/// to the lowered lane for good, whose slices of up to a scheduler tick
/// (4 ms) then delayed the readers it exists to spare.
const STARVED_SHARE: u32 = 4;
/// ... and the computations of this long after it run on the lowered
/// lane instead (nice [`bulk::NICE`]), which still gets a share of a busy
/// core, so that standings are late, never frozen, while the machine is
/// saturated. One second: the lowered lane runs in slices of up to 7 ms
/// beside the readers (EEVDF gives a nice-10 thread whole slices), so a
/// single blip (one computation that waited 59 ms as ingest began) put 10 s
/// of readers behind it (issue 22, `perf sched`); while the machine stays
/// saturated, a computation a second pays the 50 ms of [`STARVED`] again.
const STARVED_FOR: Duration = Duration::from_secs(1);
/// A computation taken by the idle lane but not answered after this long
/// runs on the lowered lane too (a tenth of a second of work for 3,000
/// units, so that only a starved one, or a very large group's, gets there).
const RESCUE: Duration = Duration::from_secs(1);

type Job = Box<dyn FnOnce() + Send>;

/// Where a computation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Idle cycles only: the usual lane.
    Idle,
    /// A lowered priority: while the idle lane starves.
    Lowered,
}

fn sender(lane: Lane) -> &'static mpsc::Sender<Job> {
    static IDLE: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    static LOWERED: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    match lane {
        Lane::Idle => IDLE.get_or_init(|| threads("refresh", bulk::idle_only)),
        Lane::Lowered => LOWERED.get_or_init(|| threads("refresh-lowered", bulk::lower_priority)),
    }
}

fn threads(name: &'static str, schedule: fn(&str)) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..thread_count() {
        let rx = rx.clone();
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || {
                schedule(name);
                loop {
                    let job = rx.lock().expect("lane lock").recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            })
            .expect("a background thread");
    }
    tx
}

/// Until when computations skip the idle lane.
static STARVED_UNTIL: Mutex<Option<Instant>> = Mutex::new(None);

/// The lane for a computation starting now.
fn current_lane() -> Lane {
    lane_at(Instant::now(), *STARVED_UNTIL.lock().expect("starved lock"))
}

/// The lane for a computation starting `now`.
fn lane_at(now: Instant, starved_until: Option<Instant>) -> Lane {
    match starved_until {
        Some(until) if now < until => Lane::Lowered,
        _ => Lane::Idle,
    }
}

/// Runs `f` on the lane and waits for its result; a panic in `f` is an
/// INTERNAL error of this call, not of the lane. A computation that no
/// idle-lane thread has taken within `STARVED` runs on the lowered lane
/// instead; one taken but unanswered after `RESCUE` (its thread starved
/// mid-way: an idle-policy thread waits as long as the cores stay busy)
/// also runs there, and the first answer counts. Computations are pure,
/// so running one twice costs only the time.
pub async fn run<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let lane = current_lane();
    if lane == Lane::Lowered {
        return finish(lane, submit(lane, f, None)?.await);
    }
    let taken = Arc::new(AtomicBool::new(false));
    let mut idle = submit(Lane::Idle, f.clone(), Some(taken.clone()))?;
    if let Ok(got) = tokio::time::timeout(STARVED, &mut idle).await {
        return finish(Lane::Idle, got);
    }
    // Claimed here, the idle lane's job finds it taken and does nothing.
    if !taken.swap(true, Ordering::SeqCst) {
        starve(STARVED);
        return finish(Lane::Lowered, submit(Lane::Lowered, f, None)?.await);
    }
    if let Ok(got) = tokio::time::timeout(RESCUE - STARVED, &mut idle).await {
        return finish(Lane::Idle, got);
    }
    starve(RESCUE);
    let mut lowered = submit(Lane::Lowered, f, None)?;
    tokio::select! {
        got = &mut idle => finish(Lane::Idle, got),
        got = &mut lowered => finish(Lane::Lowered, got),
    }
}

/// What a lane's thread sends back: the computation's outcome and how it
/// fared on its core.
type Outcome<T> = (std::thread::Result<T>, Time);

/// How long a computation ran on a core and how long it waited for one
/// meanwhile (ready to run, another thread running).
#[derive(Debug, Clone, Copy)]
struct Time {
    ran: Duration,
    waited: Duration,
}

impl Time {
    /// Whether the computation was starved: it waited [`STARVED`] or more
    /// and got less than a [`STARVED_SHARE`]th of the core.
    fn starved(self) -> bool {
        self.waited >= STARVED && self.ran * STARVED_SHARE < self.ran + self.waited
    }
}

/// Queues `f` on `lane`. With `taken`, the job runs only if nobody has
/// claimed the computation first.
fn submit<T, F>(
    lane: Lane,
    f: Arc<F>,
    taken: Option<Arc<AtomicBool>>,
) -> Result<tokio::sync::oneshot::Receiver<Outcome<T>>, Error>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        if taken.is_some_and(|t| t.swap(true, Ordering::SeqCst)) {
            return;
        }
        let (began, cpu) = (Instant::now(), bulk::thread_cpu_time());
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| f()));
        let ran = bulk::thread_cpu_time().saturating_sub(cpu);
        let waited = began.elapsed().saturating_sub(ran);
        let _ = tx.send((out, Time { ran, waited }));
    });
    sender(lane)
        .send(job)
        .map_err(|_| Error::Internal("the background lane is gone".into()))?;
    Ok(rx)
}

fn finish<T>(
    lane: Lane,
    got: Result<Outcome<T>, tokio::sync::oneshot::error::RecvError>,
) -> Result<T, Error> {
    let (out, time) =
        got.map_err(|_| Error::Internal("the background lane dropped a computation".into()))?;
    if lane == Lane::Idle && time.starved() {
        starve(time.waited);
    }
    out.map_err(|_| Error::Internal("a background computation panicked".into()))
}

/// Sends the next [`STARVED_FOR`] of computations to the lowered lane.
fn starve(waited: Duration) {
    tracing::info!(
        waited_ms = waited.as_millis() as u64,
        "standings computations were starved of idle cycles; running them at a lowered priority for a while"
    );
    *STARVED_UNTIL.lock().expect("starved lock") = Some(Instant::now() + STARVED_FOR);
}

/// Drops `value` on the lane: freeing a replaced table of thousands of
/// rows takes a worker a millisecond or so, which a read would wait for.
pub fn discard<T: Send + 'static>(value: T) {
    let lane = current_lane();
    // Should the lane be gone, the job comes back and is dropped here.
    let _ = sender(lane).send(Box::new(move || drop(value)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_lane_and_panics_stay_in_their_call() {
        assert_eq!(run(|| 6 * 7).await.unwrap(), 42);
        let e = run(|| -> u8 { panic!("boom") }).await.unwrap_err();
        assert!(matches!(e, Error::Internal(_)), "{e:?}");
        // The lane survives a panic.
        assert_eq!(run(|| "still here").await.unwrap(), "still here");
    }

    /// What `probe` says on a thread of `lane`.
    fn on<T: Send + 'static>(lane: Lane, probe: fn() -> T) -> T {
        let (tx, rx) = mpsc::channel();
        sender(lane)
            .send(Box::new(move || {
                let _ = tx.send(probe());
            }))
            .unwrap();
        // On a machine kept busy by other tests, idle cycles may be late.
        rx.recv_timeout(Duration::from_secs(60)).unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_idle_lane_runs_only_on_idle_cycles() {
        assert!(!bulk::is_idle_only(), "the caller is a normal thread");
        assert!(on(Lane::Idle, bulk::is_idle_only));
    }

    #[test]
    fn the_lowered_lane_serves_while_the_idle_one_starves() {
        let now = Instant::now();
        let until = Some(now + STARVED_FOR);
        assert_eq!(lane_at(now + STARVED_FOR / 2, until), Lane::Lowered);
        assert_eq!(lane_at(now + STARVED_FOR, until), Lane::Idle);
        assert_eq!(lane_at(now, None), Lane::Idle);
    }

    #[test]
    fn a_computation_is_starved_only_when_it_got_little_of_its_core() {
        let time = |ran, waited| Time {
            ran: Duration::from_millis(ran),
            waited: Duration::from_millis(waited),
        };
        // Beside paced readers: slower, not starved.
        assert!(!time(48, 72).starved());
        assert!(!time(20, 59).starved());
        // Readers back to back: next to nothing of the core.
        assert!(time(20, 61).starved());
        assert!(time(1, 400).starved());
        // A short computation's short wait is no sign of anything.
        assert!(!time(1, 49).starved());
    }

    #[tokio::test]
    async fn a_computation_starved_mid_way_is_answered_by_the_lowered_lane() {
        // On the idle lane the computation stalls, as a thread starved of
        // cycles would; on the lowered lane it answers.
        let (release, stalled) = std::sync::mpsc::channel::<()>();
        let stalled = Arc::new(Mutex::new(stalled));
        let started = Instant::now();
        let ran = run(move || {
            if bulk::is_idle_only() {
                let _ = stalled
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(60));
                "idle"
            } else {
                "lowered"
            }
        })
        .await
        .unwrap();
        drop(release);
        assert_eq!(ran, "lowered");
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_computation_no_idle_thread_takes_runs_on_the_lowered_lane() {
        // Every idle thread busy past STARVED, as if starved.
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        for _ in 0..thread_count() {
            let held = held.clone();
            sender(Lane::Idle)
                .send(Box::new(move || {
                    // Until the computation has run elsewhere.
                    let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(60));
                }))
                .unwrap();
        }
        let ran_idle = run(bulk::is_idle_only).await.unwrap();
        drop(hold);
        assert!(!ran_idle, "the computation waited for the idle lane");
        assert!(
            STARVED_UNTIL
                .lock()
                .unwrap()
                .is_some_and(|u| u > Instant::now())
        );
        *STARVED_UNTIL.lock().unwrap() = None;
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_lowered_lane_runs_below_normal_priority() {
        let (idle, nice) = on(Lane::Lowered, || {
            (bulk::is_idle_only(), bulk::current_nice())
        });
        assert!(!idle && nice >= bulk::NICE, "idle {idle}, nice {nice}");
    }
}
