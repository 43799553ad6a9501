//! Process identity that survives pid reuse: pid plus the process's start time.
//!
//! Only meaningful within one PID namespace, and only where `/proc` shows it: the
//! liveness that decides anything is the kernel-held end lock (see `Segment::lock_end`);
//! this is the fallback where such a lock cannot be taken, and a hint for diagnostics.
//! Every answer is three-valued: an error reading `/proc` (out of fds, no permission,
//! no `/proc`) is [`Presence::Unknown`], never "gone".

use std::fs;
use std::io::ErrorKind;

/// What `/proc` says about a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// It runs.
    Running,
    /// No such process runs (or another process has the pid now).
    Gone,
    /// `/proc` could not be read: nothing is known.
    Unknown,
}

impl Presence {
    /// Whether the process may still run (`Running` or `Unknown`: unknown is not dead).
    pub fn may_run(self) -> bool {
        self != Presence::Gone
    }
}

/// State letter (field 3) and start time in clock ticks since boot (field 22) of a
/// `/proc/<pid>/stat` file (`pid` may be `self`); `Ok(None)` if there is no such
/// process, `Err` if `/proc` could not be read.
fn stat(pid: &str) -> std::io::Result<Option<(char, u64)>> {
    let stat = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            // No such entry; but with no /proc at all, nothing is known.
            return match fs::metadata("/proc/self/stat") {
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    // The command name (field 2) is in parentheses and may contain spaces and ')'.
    let bad = || std::io::Error::new(ErrorKind::InvalidData, "unparsable /proc stat");
    let mut fields = stat[stat.rfind(')').ok_or_else(bad)? + 1..].split_whitespace();
    // Fields after comm start at field 3 (the state); field 22 is the 20th of them.
    let state = fields
        .next()
        .and_then(|s| s.chars().next())
        .ok_or_else(bad)?;
    let start = fields
        .nth(18)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok(Some((state, start)))
}

/// A process that exited and waits to be reaped (zombie) or is being reaped: its pid
/// and start time still show, but it will never run again.
fn exited(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or `None` if there is no such process or `/proc` cannot be read.
/// An exited process not yet reaped still has one.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(&pid.to_string())
        .ok()
        .flatten()
        .map(|(_, start)| start)
}

/// This process's start time, from `/proc/self` (right in any PID namespace, where
/// `/proc/<getpid()>` may be another process's entry), or 0 if it cannot be read.
pub fn own_start_time() -> u64 {
    stat("self").ok().flatten().map_or(0, |(_, start)| start)
}

/// Whether the process that was `pid` with `start` still runs (a reused pid has another
/// start time; a process that exited but was not reaped yet does not run).
pub fn presence(pid: u32, start: u64) -> Presence {
    match stat(&pid.to_string()) {
        Ok(Some((state, t))) if t == start && !exited(state) => Presence::Running,
        Ok(_) => Presence::Gone,
        Err(e) => {
            tracing::debug!(pid, error = %e, "/proc unreadable: process presence unknown");
            Presence::Unknown
        }
    }
}

/// Whether the process that was `pid` with `start` is known to run (`Unknown` counts as
/// not known: use [`presence`] where unknown must not mean dead).
pub fn is_alive(pid: u32, start: u64) -> bool {
    presence(pid, start) == Presence::Running
}

/// Whether some process `pid` runs (not merely waits to be reaped).
pub fn presence_of(pid: u32) -> Presence {
    match stat(&pid.to_string()) {
        Ok(Some((state, _))) if !exited(state) => Presence::Running,
        Ok(_) => Presence::Gone,
        Err(_) => Presence::Unknown,
    }
}

/// Whether some process `pid` is known to run.
pub fn is_running(pid: u32) -> bool {
    presence_of(pid) == Presence::Running
}

/// The inode of this process's PID namespace (`/proc/self/ns/pid`), or 0 if it cannot
/// be read. Two processes with the same non-zero value see the same pids.
pub fn pid_namespace() -> u32 {
    use std::os::unix::fs::MetadataExt;
    static NS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *NS.get_or_init(|| {
        fs::metadata("/proc/self/ns/pid")
            .ok()
            .and_then(|m| u32::try_from(m.ino()).ok())
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_stable_and_alive() {
        let me = std::process::id();
        let t = start_time(me).expect("own /proc entry");
        assert_eq!(start_time(me), Some(t));
        assert!(is_alive(me, t));
        assert!(!is_alive(me, t + 1));
        assert_eq!(start_time(u32::MAX), None);
        assert!(is_running(me));
        assert!(!is_running(u32::MAX));
    }

    #[test]
    fn an_unreaped_child_is_not_alive() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let start = start_time(pid).expect("child's /proc entry");
        // It exits at once but stays a zombie until waited for.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while is_alive(pid, start) {
            assert!(std::time::Instant::now() < deadline, "child never exited");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(start_time(pid), Some(start), "still unreaped");
        assert!(!is_running(pid));
        child.wait().expect("reap");
    }
}
