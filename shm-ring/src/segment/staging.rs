//! Named segments appear whole or not at all.
//!
//! The creator builds a segment under a private staging name and then renames it to the
//! requested name with `RENAME_NOREPLACE`, which is atomic and, like `O_EXCL`, never
//! replaces an existing name. So a creator killed half-way never leaves a name that
//! opens as a corrupt segment and cannot be told stale (it has no creator pid yet); it
//! leaves a staging file, swept by the next [`Segment::create`](crate::Segment::create)
//! once nobody holds its creator lock. The lock is taken on the very fd that made the
//! file, one call later; a sweep that lands in between removes a live creator's file,
//! and that creator, finding its name gone when it opens the file a second time, starts
//! over with another. Liveness is the kernel's lock, not the pid in the name (a pid
//! means nothing in another PID namespace). The name ends in a random part: another user
//! who squats one makes the creator pick another, not fail.

use super::lock::{self, EndLock, CREATOR_LOCK};
use crate::SegmentError;
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::AsFd;

/// Prefix of staging names in `/dev/shm`.
pub const STAGING_PREFIX: &str = ".shm-ring-staging-";

/// A fresh staging name for this process: `/.shm-ring-staging-<pid>-<n>-<random>`.
pub(super) fn staging_name() -> CString {
    use std::hash::{BuildHasher, Hasher};
    #[allow(clippy::disallowed_types)] // a per-process name counter, not shared memory
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    // RandomState is seeded from the OS's random source once per process.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let random = h.finish();
    CString::new(format!("/{STAGING_PREFIX}{pid}-{n}-{random:016x}")).expect("no NUL")
}

/// A new staging file: its name, an fd to map it by (a description that holds no lock),
/// and the creator lock, held on the description that made the file.
pub(super) fn make(
    mode: nix::sys::stat::Mode,
) -> Result<(CString, std::os::fd::OwnedFd, EndLock), SegmentError> {
    use nix::fcntl::OFlag;
    use nix::sys::mman::shm_open;
    for _ in 0..8 {
        let name = staging_name();
        let made = match shm_open(
            name.as_c_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            mode,
        ) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => continue, // squatted: pick another
            Err(e) => return Err(SegmentError::io("shm_open", e)),
        };
        let lock = lock::take_on(made, CREATOR_LOCK)?.ok_or_else(|| {
            SegmentError::io("F_OFD_SETLK (creator lock of a new file)", Errno::EAGAIN)
        })?;
        match shm_open(
            name.as_c_str(),
            OFlag::O_RDWR,
            nix::sys::stat::Mode::empty(),
        ) {
            Ok(fd) if lock::same_file(fd.as_fd(), lock.fd()) => return Ok((name, fd, lock)),
            Ok(_) | Err(Errno::ENOENT) => continue, // swept before our lock: start over
            Err(e) => return Err(SegmentError::io("shm_open", e)),
        }
    }
    Err(SegmentError::io("shm_open (staging name)", Errno::EEXIST))
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

/// Removes staging files left by creators that died before publishing (see
/// [`abandoned_staging_files`]).
pub(super) fn sweep() {
    for file in abandoned_staging_files() {
        if let Ok(path) = CString::new(format!("/{file}")) {
            if nix::sys::mman::shm_unlink(path.as_c_str()).is_ok() {
                tracing::warn!(file, "removed the staging file of a creator that died");
            }
        }
    }
}

/// Staging files in `/dev/shm` left by creators that died before publishing: regular
/// files of this user whose creator lock nobody holds. Live creators' files, other
/// users' files, anything that is not a regular file and any file whose lock cannot be
/// read are not listed.
pub fn abandoned_staging_files() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(STAGING_PREFIX) && abandoned(n))
        .collect()
}

/// Whether staging file `file` was left by a creator that died.
fn abandoned(file: &str) -> bool {
    use nix::sys::stat::{fstat, Mode, SFlag};
    let Ok(path) = CString::new(format!("/{file}")) else {
        return false;
    };
    // shm_open adds O_NOFOLLOW: a symlink planted under the name is not followed.
    let Ok(fd) = nix::sys::mman::shm_open(
        path.as_c_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK,
        Mode::empty(),
    ) else {
        return false;
    };
    let Ok(st) = fstat(&fd) else { return false };
    let regular = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
    if !regular || st.st_uid != nix::unistd::geteuid().as_raw() {
        return false;
    }
    lock::creator_held(fd.as_fd()) == Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::Mode;

    fn exists(name: &CString) -> bool {
        std::path::Path::new(&format!("/dev/shm{}", name.to_str().unwrap())).exists()
    }

    #[test]
    fn sweep_removes_files_nobody_holds() {
        let (live, _fd, lock) = make(Mode::from_bits_truncate(0o600)).unwrap();
        let (dead, fd, dead_lock) = make(Mode::from_bits_truncate(0o600)).unwrap();
        drop((fd, dead_lock)); // as if its creator died
        sweep();
        let (dead_left, live_left) = (exists(&dead), exists(&live));
        drop(lock);
        let _ = nix::sys::mman::shm_unlink(dead.as_c_str());
        let _ = nix::sys::mman::shm_unlink(live.as_c_str());
        assert!(!dead_left, "a file nobody holds is swept");
        assert!(live_left, "a file whose creator holds its lock is kept");
    }
}
