//! Named segments appear whole or not at all.
//!
//! The creator builds a segment under a private staging name and then renames it to the
//! requested name with `RENAME_NOREPLACE`, which is atomic and, like `O_EXCL`, never
//! replaces an existing name. So a creator killed half-way never leaves a name that
//! opens as a corrupt segment and cannot be told stale (it has no creator pid yet); it
//! leaves a staging file, which names its pid and start time and is swept by the next
//! [`Segment::create`](crate::Segment::create) once that process is gone.

use super::process;
use nix::errno::Errno;
use std::ffi::CString;

/// Prefix of staging names in `/dev/shm`.
pub const STAGING_PREFIX: &str = ".shm-ring-staging-";

/// A fresh staging name for this process: `/.shm-ring-staging-<pid>-<start>-<n>`.
pub(super) fn staging_name() -> CString {
    #[allow(clippy::disallowed_types)] // a per-process name counter, not shared memory
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    let start = process::start_time(pid).unwrap_or(0);
    CString::new(format!("/{STAGING_PREFIX}{pid}-{start}-{n}")).expect("no NUL")
}

/// Renames `/dev/shm<from>` to `/dev/shm<to>` unless `to` exists (`EEXIST`).
pub(super) fn publish(from: &CString, to: &CString) -> Result<(), Errno> {
    let dir = |p: &CString| format!("/dev/shm{}", p.to_str().expect("validated UTF-8"));
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        dir(from).as_str(),
        nix::fcntl::AT_FDCWD,
        dir(to).as_str(),
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
}

/// Removes staging files left by creators that died before publishing. Files of live
/// processes, of other users (the sticky /dev/shm refuses) and unparsable names stay.
pub(super) fn sweep() {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(STAGING_PREFIX)) else {
            continue;
        };
        let mut f = rest.split('-').map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(start))) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(pid) = u32::try_from(pid) else {
            continue;
        };
        if !process::is_alive(pid, start) && std::fs::remove_file(entry.path()).is_ok() {
            tracing::warn!(file = ?name, "removed the staging file of a creator that died");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_dead_creators_files_only() {
        let me = std::process::id();
        let start = process::start_time(me).unwrap();
        let dead = format!("/dev/shm/{STAGING_PREFIX}{me}-{}-0", start + 1);
        let live = format!("/dev/shm/{STAGING_PREFIX}{me}-{start}-999999");
        std::fs::write(&dead, b"").unwrap();
        std::fs::write(&live, b"").unwrap();
        sweep();
        let (dead_left, live_left) = (
            std::path::Path::new(&dead).exists(),
            std::path::Path::new(&live).exists(),
        );
        std::fs::remove_file(&live).ok();
        std::fs::remove_file(&dead).ok();
        assert!(!dead_left, "a dead creator's staging file is swept");
        assert!(live_left, "a live creator's staging file is kept");
    }
}
