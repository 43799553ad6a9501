//! End locks: liveness the kernel keeps.
//!
//! Each end of a segment, and the creator of a named one, holds a one-byte write lock
//! (an open file description lock, `F_OFD_SETLK`) at a fixed offset far past the end of
//! the segment file, on a file description of its own. The kernel drops such a lock when
//! the last fd of its description closes, that is when the holder exits, however it
//! exits. It knows nothing of pids: the answer holds across PID namespaces, without
//! `/proc`, with no fd to spare, and whatever pid reuse does. Anyone asks with
//! `F_OFD_GETLK` through the segment's own fd, which never holds a lock: "held" means a
//! live holder, "free" that none is left.
//!
//! Invariants:
//! - A lock fd is a description of its own (opened afresh: by name and checked to be the
//!   same file, else through `/proc/self/fd`). Locks of one description never conflict
//!   with each other, and a description is shared by `dup`, `fork` and fd passing, so a
//!   shared one would answer "free" to its sharers and live as long as any of them.
//! - A child forked while holding lock fds closes its copies at once (a `pthread_atfork`
//!   child handler; the lock fds are also close-on-exec), so a child does not keep its
//!   dead parent's ends alive. An [`EndLock`] dropped in such a child forgets its fd.
//!   A fork racing with the opening of a lock fd in another thread may leave the child a
//!   copy: the end then looks alive until the child exits (never dead while alive).

use super::Segment;
use crate::SegmentError;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::{fstat, Mode};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};

/// Offset of lock 0: past any segment (at most `MAX_SEGMENT_LEN`, 2^36 bytes), so a
/// lock never covers a byte of the file.
const LOCK_BASE: i64 = 1 << 40;
/// Locks an end may take: indexes `0..END_LOCKS`.
pub const END_LOCKS: u32 = 255;
/// The creator's lock, one past the ends'.
pub(super) const CREATOR_LOCK: u32 = END_LOCKS;

/// A held end lock; dropping it releases the lock.
///
/// ```
/// use shm_ring::{Kind, Segment, SegmentOptions};
/// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 64))?;
/// let lock = seg.lock_end(0)?.expect("nobody holds lock 0");
/// assert!(seg.end_locked(0)?);
/// assert!(seg.lock_end(0)?.is_none(), "a second holder is refused");
/// drop(lock);
/// assert!(!seg.end_locked(0)?);
/// # Ok::<(), shm_ring::SegmentError>(())
/// ```
#[derive(Debug)]
pub struct EndLock {
    fd: Option<OwnedFd>,
    index: u32,
    generation: u32,
}

impl EndLock {
    /// Which lock this is.
    pub fn index(&self) -> u32 {
        self.index
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_ref().expect("held until drop").as_fd()
    }
}

impl Drop for EndLock {
    fn drop(&mut self) {
        let Some(fd) = self.fd.take() else { return };
        if forked_since(self.generation) {
            // The fork handler closed this number already; it may name another file now.
            let _ = fd.into_raw_fd();
            return;
        }
        registry::remove(fd.as_raw_fd());
        drop(fd); // closing the description's last fd releases the lock
    }
}

fn range(index: u32, len: i64, kind: libc::c_short) -> libc::flock {
    // SAFETY: flock is a plain C struct for which all-zero bytes are a valid value.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = kind;
    l.l_whence = libc::SEEK_SET as libc::c_short;
    l.l_start = LOCK_BASE + i64::from(index);
    l.l_len = len;
    l // l_pid stays 0, as OFD locks require
}

/// Whether a description other than `fd`'s holds a lock on `len` bytes from `index`.
fn held(fd: BorrowedFd<'_>, index: u32, len: i64) -> Result<bool, SegmentError> {
    let mut l = range(index, len, libc::F_WRLCK as libc::c_short);
    fcntl(fd, FcntlArg::F_OFD_GETLK(&mut l)).map_err(|e| SegmentError::io("F_OFD_GETLK", e))?;
    Ok(l.l_type != libc::F_UNLCK as libc::c_short)
}

/// Whether the creator lock of the file open as `fd` is held; `None` if unreadable.
pub(super) fn creator_held(fd: BorrowedFd<'_>) -> Option<bool> {
    held(fd, CREATOR_LOCK, 1).ok()
}

/// The same file as `fd`, on a description of its own.
fn reopen(fd: BorrowedFd<'_>, name: Option<&str>) -> Result<OwnedFd, SegmentError> {
    let same = |other: &OwnedFd| same_file(fd, other.as_fd());
    if let Some(name) = name {
        let path = super::validate_name(name)?;
        match nix::sys::mman::shm_open(
            path.as_c_str(),
            OFlag::O_RDWR | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(f) if same(&f) => return Ok(f),
            Ok(_) | Err(Errno::ENOENT) => {} // renamed, replaced or removed: not ours
            Err(e @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM)) => {
                return Err(SegmentError::io("shm_open (end lock)", e))
            }
            Err(_) => {}
        }
    }
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let f = nix::fcntl::open(
        path.as_str(),
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SegmentError::io("open /proc/self/fd (end lock)", e))?;
    if !same(&f) {
        return Err(SegmentError::io(
            "open /proc/self/fd (end lock)",
            Errno::ESTALE,
        ));
    }
    Ok(f)
}

/// Takes lock `index` on a fresh description of `fd`'s file: `None` if a live process
/// holds it.
pub(super) fn take(
    fd: BorrowedFd<'_>,
    name: Option<&str>,
    index: u32,
) -> Result<Option<EndLock>, SegmentError> {
    take_on(reopen(fd, name)?, index)
}

/// Takes lock `index` on `own`, a description nobody else has: `None` if a live process
/// holds it.
pub(super) fn take_on(own: OwnedFd, index: u32) -> Result<Option<EndLock>, SegmentError> {
    let l = range(index, 1, libc::F_WRLCK as libc::c_short);
    match fcntl(own.as_fd(), FcntlArg::F_OFD_SETLK(&l)) {
        Ok(_) => {}
        Err(Errno::EAGAIN | Errno::EACCES) => return Ok(None),
        Err(e) => return Err(SegmentError::io("F_OFD_SETLK", e)),
    }
    registry::add(own.as_raw_fd());
    Ok(Some(EndLock {
        fd: Some(own),
        index,
        generation: registry::generation(),
    }))
}

/// Whether `a` and `b` are the same file.
pub(super) fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (fstat(a), fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

fn forked_since(generation: u32) -> bool {
    registry::generation() != generation
}

impl Segment {
    /// Takes end lock `index` (`0..END_LOCKS`) for this process: `Ok(None)` if a live
    /// process holds it already. The kernel releases it when the returned [`EndLock`]
    /// drops or this process dies, so [`Segment::end_locked`] tells a live end from a
    /// dead one in any PID namespace. Errors name the cause (`EMFILE` when out of fds;
    /// an fd-passed segment needs `/proc/self/fd` to open a description of its own).
    pub fn lock_end(&self, index: u32) -> Result<Option<EndLock>, SegmentError> {
        if index >= END_LOCKS {
            return Err(SegmentError::InvalidOptions(format!(
                "end lock {index} is out of range (0..{END_LOCKS})"
            )));
        }
        take(self.as_fd(), self.name(), index)
    }

    /// Whether a live process (another description than this handle's) holds end lock
    /// `index`. An error is an error, never "not held".
    pub fn end_locked(&self, index: u32) -> Result<bool, SegmentError> {
        held(self.as_fd(), index, 1)
    }

    /// Whether any live process holds any lock on this segment (its creator's or an
    /// end's): a segment nobody holds is stale.
    pub fn any_locked(&self) -> Result<bool, SegmentError> {
        held(self.as_fd(), 0, i64::from(END_LOCKS) + 1)
    }

    pub(super) fn creator_locked(&self) -> Result<bool, SegmentError> {
        held(self.as_fd(), CREATOR_LOCK, 1)
    }
}

/// The lock fds this process holds, so a forked child can close its copies. Fixed size
/// and lock-free: the child handler may not allocate or take locks.
mod registry {
    // Process-local bookkeeping, not shared memory: the sync facade does not apply.
    #[allow(clippy::disallowed_types)]
    use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

    const SLOTS: usize = 1024;
    /// `fd + 1` of each held lock, 0 when empty.
    #[allow(clippy::disallowed_types)]
    static FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
    #[allow(clippy::disallowed_types)]
    static GENERATION: AtomicU32 = AtomicU32::new(0);

    extern "C" fn in_child() {
        for slot in &FDS {
            let v = slot.swap(0, Ordering::Relaxed);
            if v > 0 {
                // SAFETY: close is async-signal-safe; v - 1 is a lock fd this process
                // (the parent, copied into us) registered and had not closed.
                unsafe { libc::close(v - 1) };
            }
        }
        GENERATION.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn generation() -> u32 {
        GENERATION.load(Ordering::Relaxed)
    }

    pub(super) fn add(fd: i32) {
        static REGISTER: std::sync::Once = std::sync::Once::new();
        REGISTER.call_once(|| {
            // SAFETY: the handler only swaps atomics and closes fds, both allowed in a
            // child after fork in a multithreaded process.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
            if rc != 0 {
                tracing::warn!(rc, "pthread_atfork failed: a forked child keeps end locks");
            }
        });
        let placed = FDS.iter().any(|s| {
            s.compare_exchange(0, fd + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        });
        if !placed {
            tracing::warn!(
                fd,
                "end lock registry full: a forked child would keep this lock"
            );
        }
    }

    pub(super) fn remove(fd: i32) {
        for s in &FDS {
            if s.compare_exchange(fd + 1, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}
