//! Truncation by a peer: no SIGBUS escapes the library.
//!
//! A named segment is a file any process with write access can shrink. Touching a page
//! of a shared mapping past the file's new end raises SIGBUS, whose default action kills
//! the process. Memfd segments are sealed against shrinking and need nothing; every
//! other mapping (named segments, and unsealed fds handed over) is registered here.
//!
//! A process-wide SIGBUS handler, installed when the first such mapping is made, looks
//! the faulting address up among the registered ranges. Inside one, it maps a private
//! zero page over the faulting page (`MAP_FIXED`), marks that range broken and returns:
//! the load or store runs again on the zero page and the thread goes on. The library
//! checks the mark after each operation ([`Segment::is_truncated`](super::Segment::is_truncated)), so the call that
//! touched a lost page, and every later call on the segment, fails. A fault outside the
//! ranges goes to the handler that was installed before ours (or, if there was none, the
//! default action is restored and the fault recurs, killing the process as before).
//!
//! Invariants that make this sound:
//! - The handler allocates nothing and takes no lock: the registry is a fixed array of
//!   atomics, written before the mapping is used and cleared before it is unmapped.
//! - Only pages inside a live registered mapping are replaced, and only by a page of the
//!   same protection, so no other memory of the process changes. A store that landed on
//!   the zero page is lost with it; the call that made it reports the segment truncated.
//! - The handler keeps `errno`. It is installed with `SA_ONSTACK` (a thread's alternate
//!   stack, where it has one) and `SA_NODEFER` is not set: a fault inside it is fatal,
//!   as it would be anyway.
//! - A library that installs its own SIGBUS handler after ours and does not chain to it
//!   takes the fault over: our ranges then die as before. Nothing can prevent that.

// Process-local bookkeeping, not shared memory: the sync facade does not apply.
#[allow(clippy::disallowed_types)]
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

const SLOTS: usize = 1024;

#[allow(clippy::disallowed_types)]
struct Range {
    start: AtomicUsize,
    end: AtomicUsize,
    broken: AtomicBool,
}

#[allow(clippy::disallowed_types, clippy::declare_interior_mutable_const)]
const EMPTY: Range = Range {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    broken: AtomicBool::new(false),
};

static RANGES: [Range; SLOTS] = [EMPTY; SLOTS];
/// Faults handled so far: while 0, no segment is broken (one load decides).
#[allow(clippy::disallowed_types)]
static FAULTS: AtomicUsize = AtomicUsize::new(0);
#[allow(clippy::disallowed_types)]
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();

/// The disposition SIGBUS had before ours, kept for chaining: set once, before our
/// handler (its only reader) is installed.
static PREVIOUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

/// A registered mapping; dropping it unregisters the range (before the unmap).
#[derive(Debug)]
pub(super) struct Guard {
    slot: usize,
}

/// Whether any registered mapping lost a page (one load of a static: the fast path).
#[inline(always)]
pub(super) fn any_fault() -> bool {
    FAULTS.load(Ordering::Relaxed) != 0
}

impl Guard {
    /// Whether a page of this mapping was lost to truncation.
    #[inline]
    pub(super) fn broken(&self) -> bool {
        any_fault() && RANGES[self.slot].broken.load(Ordering::Relaxed)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let r = &RANGES[self.slot];
        r.end.store(0, Ordering::Release);
        r.broken.store(false, Ordering::Relaxed);
        r.start.store(0, Ordering::Release); // frees the slot
    }
}

/// Registers `[start, start + len)`; `None` (with a warning) if the registry is full or
/// the handler could not be installed: that mapping then dies of truncation as before.
pub(super) fn register(start: usize, len: usize) -> Option<Guard> {
    INSTALL.call_once(install);
    let slot = RANGES.iter().position(|r| {
        r.start
            .compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    });
    let Some(slot) = slot else {
        tracing::warn!("SIGBUS registry full: this mapping is not guarded against truncation");
        return None;
    };
    RANGES[slot].broken.store(false, Ordering::Relaxed);
    RANGES[slot].end.store(start + len, Ordering::Release);
    Some(Guard { slot })
}

fn install() {
    // SAFETY: sysconf has no memory arguments.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE.store(page as usize, Ordering::Relaxed);
    }
    // SAFETY: all-zero is a valid sigaction; the fields are set before use; the handler
    // has the SA_SIGINFO signature. The previous disposition is read and kept before
    // ours is installed, so the handler always finds it.
    unsafe {
        let mut prev: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut prev) != 0 {
            prev.sa_sigaction = libc::SIG_DFL;
        }
        let _ = PREVIOUS.set(prev);
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_sigbus as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        if libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) != 0 {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "cannot install the SIGBUS handler: truncation by a peer stays fatal"
            );
        }
    }
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: errno is thread-local; reading and restoring it is what a handler must do.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    let page = PAGE.load(Ordering::Relaxed);
    // Only a fault (si_code > 0) has an address; a SIGBUS sent with kill(2) is passed on.
    let ranges: &[Range] = if code > 0 { &RANGES } else { &[] };
    for r in ranges {
        let (start, end) = (
            r.start.load(Ordering::Acquire),
            r.end.load(Ordering::Acquire),
        );
        if start == 0 || addr < start || addr >= end {
            continue;
        }
        let at = addr & !(page - 1);
        // SAFETY: `at` is a page inside a live registered mapping of ours (registered
        // after mapping, unregistered before unmapping); replacing it with a private
        // zero page of the same protection changes no other memory.
        let p = unsafe {
            libc::mmap(
                at as *mut libc::c_void,
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            r.broken.store(true, Ordering::Relaxed);
            FAULTS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as above.
            unsafe { *libc::__errno_location() = errno };
            return;
        }
    }
    // Not ours: whoever handled SIGBUS before us, else the default action.
    // SAFETY: the handler pointers in PREVIOUS are the previous disposition's (set
    // before ours was installed), called with the signature its flags name.
    unsafe {
        let dfl_prev = {
            let mut d: libc::sigaction = std::mem::zeroed();
            d.sa_sigaction = libc::SIG_DFL;
            d
        };
        let prev = PREVIOUS.get().unwrap_or(&dfl_prev);
        match prev.sa_sigaction {
            libc::SIG_DFL | libc::SIG_IGN => {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                if (*info).si_code <= 0 {
                    libc::raise(sig); // sent, not a fault: deliver it again
                }
                // A fault recurs on return, now with the default action.
            }
            f if prev.sa_flags & libc::SA_SIGINFO != 0 => {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(f);
                f(sig, info, ctx)
            }
            f => {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(f);
                f(sig)
            }
        }
        *libc::__errno_location() = errno;
    }
}

#[cfg(test)]
mod tests {
    use super::super::Segment;

    #[test]
    fn a_truncated_mapping_reads_zeros_and_is_marked() {
        let name = format!("shmring-test-{}-sigbus-unit", std::process::id());
        let seg =
            Segment::create(&name, &crate::SegmentOptions::new(crate::Kind::Spsc, 4096)).unwrap();
        assert!(!seg.is_truncated());
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/dev/shm/{name}"))
            .unwrap();
        f.set_len(0).unwrap();
        // Reading the header's magic now faults; the handler maps a zero page.
        assert_eq!(seg.counter(crate::Counter::Head), 0);
        assert!(seg.is_truncated());
        drop(seg);
        assert!(
            !std::path::Path::new(&format!("/dev/shm/{name}")).exists(),
            "the creator still unlinks its (truncated) file"
        );
    }
}
