//! The background lane: the CPU work of a standings refresh (turning a
//! component's answer into inputs, computing and encoding the table) runs
//! on threads of lower scheduling priority than the runtime's workers
//! (those of [`jixiao_runtime::bulk`]), so that on a busy core a
//! dashboard's read never waits behind a refresh. The lane is plain
//! threads rather than the bulk runtime: its jobs are synchronous.
//!
//! Why a priority and not only another thread: a refresh of 3,000 units
//! holds a core for tens of milliseconds, and the kernel shares a core
//! between threads of equal priority in slices of a few milliseconds, so a
//! read arriving meanwhile waited up to a slice (issue 22: under ingest a
//! read's p99 went from 3 to 13 ms on the readers' core, with `perf sched`
//! showing the refresh's slices of up to 8 ms). A lowered thread gives the
//! core up as soon as a worker wakes, yet still gets its share when
//! nothing else runs, so refreshes are late only while reads keep every
//! core busy.

use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, OnceLock, mpsc},
};

use jixiao_runtime::{Error, bulk};

/// How many refreshes may compute at once (groups refresh independently).
const THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

fn lane() -> &'static mpsc::Sender<Job> {
    static LANE: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    LANE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("refresh-{i}"))
                .spawn(move || {
                    bulk::lower_priority("refresh");
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
    })
}

/// Runs `f` on the lane and waits for its result; a panic in `f` is an
/// INTERNAL error of this call, not of the lane.
pub async fn run<T, F>(f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(std::panic::catch_unwind(AssertUnwindSafe(f)));
    });
    lane()
        .send(job)
        .map_err(|_| Error::Internal("the background lane is gone".into()))?;
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(Error::Internal("a background computation panicked".into())),
        Err(_) => Err(Error::Internal(
            "the background lane dropped a computation".into(),
        )),
    }
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

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_lane_runs_below_the_workers() {
        let here = bulk::current_nice();
        let there = run(bulk::current_nice).await.unwrap();
        assert!(
            there >= bulk::NICE.max(here),
            "lane at {there}, caller at {here}"
        );
    }
}
