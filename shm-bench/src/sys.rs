//! Clocks, CPU time and CPU pinning.

use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::resource::{getrusage, UsageWho};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;

/// CLOCK_MONOTONIC in ns: comparable between processes on one host.
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("monotonic clock");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// User + system CPU time of this process, in seconds.
pub fn cpu_seconds() -> f64 {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    tv(u.user_time()) + tv(u.system_time())
}

/// Pins this process to `cpu`; returns whether it worked.
pub fn pin(cpu: usize) -> bool {
    let mut set = CpuSet::new();
    set.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(0), &set).is_ok()
}

/// CPUs this process may use, read once before `pin` narrows the affinity.
pub fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Waits until `deadline_ns`: sleeps while far, spins the last 60 µs.
pub fn wait_until(deadline_ns: u64) {
    loop {
        let now = now_ns();
        if now >= deadline_ns {
            return;
        }
        let left = deadline_ns - now;
        if left > 60_000 {
            std::thread::sleep(std::time::Duration::from_nanos(left - 55_000));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Whether this process may run on `cpu` (its affinity before any `pin`).
pub fn allowed(cpu: usize) -> bool {
    nix::sched::sched_getaffinity(Pid::from_raw(0))
        .is_ok_and(|set| set.is_set(cpu).unwrap_or(false))
}

/// A sysfs CPU list ("0-3,8,10-11") as CPU numbers.
fn cpu_list(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
            out.extend(a..=b);
        }
    }
    out
}

/// What CPUs `a` and `b` share, from sysfs: one core (SMT siblings), a cache level, or
/// nothing the kernel reports.
pub fn shared(a: usize, b: usize) -> String {
    if a == b {
        return "the same CPU".into();
    }
    let read = |path: String| std::fs::read_to_string(path).ok();
    let base = format!("/sys/devices/system/cpu/cpu{a}");
    let siblings = read(format!("{base}/topology/core_cpus_list"))
        .or_else(|| read(format!("{base}/topology/thread_siblings_list")));
    if siblings.is_some_and(|s| cpu_list(&s).contains(&b)) {
        return "one core (SMT siblings: they share its L1 and L2)".into();
    }
    let mut levels = Vec::new();
    for index in 0..8 {
        let dir = format!("{base}/cache/index{index}");
        let (Some(level), Some(list)) = (
            read(format!("{dir}/level")),
            read(format!("{dir}/shared_cpu_list")),
        ) else {
            continue;
        };
        if cpu_list(&list).contains(&b) {
            levels.push(format!("L{}", level.trim()));
        }
    }
    levels.dedup();
    match levels.first() {
        Some(l) => format!("separate cores sharing {l} (the closest cache they share)"),
        None if std::path::Path::new(&format!("{base}/cache")).exists() => {
            "separate cores sharing no cache (another socket or core complex)".into()
        }
        None => "separate cores (this system does not report caches)".into(),
    }
}
