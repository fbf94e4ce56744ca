//! Measurements for the load generator and the soak test: a process's
//! memory and per-thread CPU time read from `/proc`, and latency
//! percentiles.

/// A figure of `/proc/{pid}/status` in KiB (`VmRSS`, `VmHWM`, …).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    proc_status(pid, field)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A field of `/proc/{pid}/status` as written (`PPid`, `Cpus_allowed_list`, …).
pub fn proc_status(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// CPU time used so far by each thread of a process, in seconds, keyed by
/// thread name (threads of the same name summed). Linux only; empty
/// elsewhere. Clock ticks are taken as USER_HZ = 100, as on every Linux
/// build of note.
pub fn thread_cpu_seconds(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (name) state ppid ..."; the name may hold spaces.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line.
        let ticks: u64 = fields
            .get(11..13)
            .map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        *out.entry(name).or_insert(0.0) += ticks as f64 / 100.0;
    }
    out
}

/// The `q` quantile of sorted samples (0 for none).
pub fn percentile(sorted: &[std::time::Duration], q: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}
