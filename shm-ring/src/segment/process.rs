//! Process identity that survives pid reuse: pid plus the process's start time.

use std::fs;

/// State letter (field 3) and start time in clock ticks since boot (field 22) of
/// `/proc/<pid>/stat`, or `None` if there is no such process.
fn stat(pid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces and ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // Fields after comm start at field 3 (the state); field 22 is the 20th of them.
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// A process that exited and waits to be reaped (zombie) or is being reaped: its pid
/// and start time still show, but it will never run again.
fn exited(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or `None` if there is no such process. An exited process not yet
/// reaped still has one.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Whether the process that was `pid` with `start` is still running (a reused pid has
/// another start time; a process that exited but was not reaped yet does not run).
pub fn is_alive(pid: u32, start: u64) -> bool {
    stat(pid).is_some_and(|(state, t)| t == start && !exited(state))
}

/// Whether some process `pid` runs (not merely waits to be reaped).
pub fn is_running(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| !exited(state))
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
