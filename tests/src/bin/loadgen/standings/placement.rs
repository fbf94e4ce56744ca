//! Which core each process of the standings benchmark runs on.

/// Which core each side runs on. Deployed, the aggregator and the
/// dashboards do not share CPUs with the ingest path (the component
/// services and the platform pushing); on one 2-core machine that is
/// emulated by pinning: the aggregator, the bare baseline and the readers
/// on core 0, the component services and the pushing thread on core 1.
/// Unpinned (`--shared-cpus`), the readers' tail under ingest is the
/// scheduler's, as the bare server under the same ingest shows.
#[derive(Clone, Copy)]
pub(super) struct Placement {
    pinned: bool,
}

impl Placement {
    pub(super) const READS: usize = 0;
    pub(super) const INGEST: usize = 1;

    pub(super) fn new(shared: bool) -> Placement {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pinned = !shared && cores >= 2 && which_taskset();
        Placement { pinned }
    }

    pub(super) fn pinned(&self) -> bool {
        self.pinned
    }

    pub(super) fn describe(&self) -> &'static str {
        if self.pinned {
            "aggregator, bare baseline and readers on core 0; component services and the pushing client on core 1"
        } else {
            "every process on every core"
        }
    }

    /// Pins a process, all its threads (and those they start), to `core`.
    pub(super) fn process(&self, pid: u32, core: usize) -> Result<(), String> {
        self.taskset(&["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
    }

    /// Pins each of `pids` that can be pinned to `core` until the
    /// returned [`Pinned`] is dropped.
    pub(super) fn pin_for_now(&self, pids: &[u32], core: usize) -> Pinned {
        let was = pids
            .iter()
            .filter_map(|pid| {
                let cpus = jixiao_tests::proc_status(*pid, "Cpus_allowed_list")?;
                self.process(*pid, core).ok()?;
                Some((*pid, cpus))
            })
            .collect();
        Pinned { place: *self, was }
    }

    /// Pins the calling thread (and those it starts) to `core`.
    pub(super) fn this_thread(&self, core: usize) -> Result<(), String> {
        let me = std::fs::read_link("/proc/thread-self").map_err(|e| e.to_string())?;
        let tid = me
            .file_name()
            .and_then(|t| t.to_str())
            .ok_or("no thread id")?
            .to_string();
        self.taskset(&["-p", "-c", &core.to_string(), &tid])
    }

    fn taskset(&self, args: &[&str]) -> Result<(), String> {
        if !self.pinned {
            return Ok(());
        }
        let out = std::process::Command::new("taskset")
            .args(args)
            .output()
            .map_err(|e| format!("taskset: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "taskset {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

fn which_taskset() -> bool {
    std::process::Command::new("taskset")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The process that started `pid`.
pub(super) fn parent(pid: u32) -> Option<u32> {
    jixiao_tests::proc_status(pid, "PPid")?.parse().ok()
}

/// The PostgreSQL server process that started `pid`, if its parent is one.
pub(super) fn postgres_parent(pid: u32) -> Option<u32> {
    let parent = parent(pid)?;
    let name = std::fs::read_to_string(format!("/proc/{parent}/comm")).ok()?;
    (parent > 1 && name.trim() == "postgres").then_some(parent)
}

/// Processes pinned for a while: they get back the CPUs they had when
/// this is dropped, also when a run fails part-way (PostgreSQL's own
/// processes outlive it).
pub(super) struct Pinned {
    place: Placement,
    was: Vec<(u32, String)>,
}

impl Pinned {
    pub(super) fn len(&self) -> usize {
        self.was.len()
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        for (pid, cpus) in &self.was {
            let _ = self
                .place
                .taskset(&["-a", "-p", "-c", cpus, &pid.to_string()]);
        }
    }
}
