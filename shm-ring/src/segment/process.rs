//! Process identity that survives pid reuse: pid plus the process's start time.

use std::fs;

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`), or `None` if there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces and ')'.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields after comm start at field 3; field 22 is the 20th of them.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that was `pid` with `start` is still running (a reused pid has
/// another start time).
pub fn is_alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
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
    }
}
