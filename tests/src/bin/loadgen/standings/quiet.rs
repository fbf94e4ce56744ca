//! `--quiet-core`: the readers' core to the benchmark alone while the
//! reads are measured.
//!
//! These machines run more than the suite: RabbitMQ, Redis, MariaDB and
//! others, and kernel threads that are not tied to a CPU (DAMON's
//! `kdamond`, `khugepaged`, the unbound work queues behind ext4's and the
//! flushers' writeback). `perf sched record -C 0` (issue 22) showed them
//! holding the readers' core for up to 4–8 ms at a time, in the kernel
//! where nothing preempts them, which set much of both servers' p99 and
//! more of it under ingest (the ingest's memory and disk work wakes them).
//! What benchmark tuners do on a shared machine (pyperf's
//! `system tune`, `isolcpus`) is done here for the read phases only:
//! every thread outside this run that may move is moved to the ingest
//! core, the kernel's unbound work queues with it, and all of it is put
//! back afterwards. Per-CPU kernel threads cannot move and stay.

use std::collections::{BTreeMap, BTreeSet};

use rustix::thread::{CpuSet, Pid, sched_getaffinity, sched_setaffinity};

use super::placement::parent;

/// The kernel's mask for the CPUs its unbound work queues may use.
const WORKQUEUE_CPUMASK: &str = "/sys/devices/virtual/workqueue/cpumask";

/// What was moved off the readers' core; dropping it puts back each
/// thread's CPUs and the work queues' mask, also when a run fails.
pub(super) struct Quieted {
    to: CpuSet,
    /// Each moved thread by process, with the CPUs it had.
    moved: BTreeMap<u32, BTreeMap<u32, CpuSet>>,
    /// The work queues' mask as it was, when it could be changed.
    workqueues: Option<String>,
}

impl Quieted {
    pub(super) fn describe(&self) -> String {
        let threads: usize = self.moved.values().map(BTreeMap::len).sum();
        format!(
            "quiet core: {threads} threads of {} other processes moved to the ingest core for the reads{}",
            self.moved.len(),
            if self.workqueues.is_some() {
                ", with the kernel's unbound work queues"
            } else {
                "; the kernel's unbound work queues could not be moved"
            }
        )
    }
}

/// Moves every thread that is not this run's (this process and its
/// descendants) and may run on `from` to `to` alone.
pub(super) fn quiet(from: usize, to: usize) -> Quieted {
    let ours = descendants(std::process::id());
    let mut only = CpuSet::new();
    only.set(to);
    let mut moved: BTreeMap<u32, BTreeMap<u32, CpuSet>> = BTreeMap::new();
    for pid in numbered("/proc").filter(|p| !ours.contains(p)) {
        for tid in numbered(&format!("/proc/{pid}/task")) {
            let Some(id) = Pid::from_raw(tid as i32) else {
                continue;
            };
            let Ok(had) = sched_getaffinity(Some(id)) else {
                continue;
            };
            // Per-CPU kernel threads refuse (EINVAL); threads already off
            // the core need nothing.
            if had.is_set(from) && sched_setaffinity(Some(id), &only).is_ok() {
                moved.entry(pid).or_default().insert(tid, had);
            }
        }
    }
    let workqueues = std::fs::read_to_string(WORKQUEUE_CPUMASK)
        .ok()
        .filter(|_| std::fs::write(WORKQUEUE_CPUMASK, format!("{:x}", 1u64 << to)).is_ok());
    Quieted {
        to: only,
        moved,
        workqueues,
    }
}

impl Drop for Quieted {
    fn drop(&mut self) {
        if let Some(mask) = &self.workqueues {
            let _ = std::fs::write(WORKQUEUE_CPUMASK, mask.trim());
        }
        // A thread or a process started by a moved one meanwhile inherited
        // the ingest core alone: it gets what its process (or parent) had.
        let first = |threads: &BTreeMap<u32, CpuSet>| threads.values().next().copied();
        for pid in numbered("/proc") {
            let parent = || parent(pid).and_then(|p| self.moved.get(&p)).and_then(first);
            let own = self.moved.get(&pid);
            let Some(fallback) = own.and_then(first).or_else(parent) else {
                continue;
            };
            for tid in numbered(&format!("/proc/{pid}/task")) {
                let Some(id) = Pid::from_raw(tid as i32) else {
                    continue;
                };
                let had = own.and_then(|t| t.get(&tid)).copied();
                let restore = match had {
                    Some(had) => had,
                    None if sched_getaffinity(Some(id)).is_ok_and(|now| now == self.to) => fallback,
                    None => continue,
                };
                let _ = sched_setaffinity(Some(id), &restore);
            }
        }
    }
}

/// The numeric entries of a `/proc` directory: processes, or a process's
/// threads.
fn numbered(dir: &str) -> impl Iterator<Item = u32> + use<> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// `root` and every process it started, directly or not.
fn descendants(root: u32) -> BTreeSet<u32> {
    let parents: Vec<(u32, u32)> = numbered("/proc")
        .filter_map(|p| Some((p, parent(p)?)))
        .collect();
    let mut ours = BTreeSet::from([root]);
    loop {
        let before = ours.len();
        for (pid, parent) in &parents {
            if ours.contains(parent) {
                ours.insert(*pid);
            }
        }
        if ours.len() == before {
            return ours;
        }
    }
}
