//! POSIX unnamed semaphore notifier: a `sem_t` in shared memory, initialised with
//! `pshared = 1`. `notify` posts (only when the value is 0, so notifications coalesce and
//! the value cannot overflow); `wait` takes one unit with `sem_clockwait` on
//! CLOCK_MONOTONIC (nanosecond deadline, immune to wall-clock jumps), then takes any
//! extra units so one wait consumes every pending notification.
//!
//! The `sem_t` lives in memory the peer can write, and glibc aborts the whole process
//! when the futex call under a semaphore fails in a way it does not expect, which a
//! `sem_t` with a garbage "private" word provokes. So on glibc every call first checks
//! that word (it must hold what `sem_init(pshared = 1)` left there) and returns
//! `InvalidData` otherwise. A peer that rewrites it between that check and glibc's own
//! read can still abort us: with untrusted peers, prefer the futex notifier, whose
//! every failure is an error code.

use crate::deadline;
use crate::{Notifier, Wait};
use std::io;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

extern "C" {
    // glibc >= 2.30; the libc crate does not declare it yet.
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// Size of the shared state a [`Semaphore`] needs.
pub const SEM_SIZE: usize = std::mem::size_of::<libc::sem_t>();

/// A process-shared POSIX semaphore in shared memory.
pub struct Semaphore {
    sem: NonNull<libc::sem_t>,
    _owner: Arc<dyn Send + Sync>,
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Semaphore")
            .field("sem", &self.sem)
            .finish_non_exhaustive()
    }
}

// SAFETY: a pshared semaphore is made to be used from any thread of any process; the
// owner that keeps the memory mapped is Send + Sync.
unsafe impl Send for Semaphore {}
// SAFETY: as above: every operation goes through the thread-safe sem_* calls.
unsafe impl Sync for Semaphore {}

impl Semaphore {
    /// Initialises a semaphore (value 0, shared between processes) at `sem`. Call it once,
    /// in the process that creates the shared memory, before any peer attaches.
    ///
    /// # Safety
    /// `sem` points at [`SEM_SIZE`] bytes, 8-aligned, in memory shared with the peers,
    /// valid while `owner` lives, not yet a semaphore in use by anyone.
    pub unsafe fn init(sem: NonNull<u8>, owner: Arc<dyn Send + Sync>) -> io::Result<Semaphore> {
        let sem = sem.cast::<libc::sem_t>();
        // SAFETY: the caller's contract: writable, aligned, unused.
        if unsafe { libc::sem_init(sem.as_ptr(), 1, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        tracing::debug!(?sem, "semaphore initialised");
        Ok(Semaphore { sem, _owner: owner })
    }

    /// Uses a semaphore another process initialised with [`Semaphore::init`].
    ///
    /// # Safety
    /// `sem` points at a semaphore made by `init` in memory valid while `owner` lives.
    pub unsafe fn attach(sem: NonNull<u8>, owner: Arc<dyn Send + Sync>) -> Semaphore {
        Semaphore {
            sem: sem.cast(),
            _owner: owner,
        }
    }

    /// glibc (64-bit): `struct new_sem { u64 data; int private; int pad; }`; for a
    /// process-shared semaphore `private` is glibc's FUTEX_SHARED, which is 128
    /// (FUTEX_PRIVATE_FLAG: glibc XORs it into the futex op, cancelling the flag).
    #[cfg(all(target_env = "gnu", target_pointer_width = "64"))]
    fn check_shared(&self) -> io::Result<()> {
        const _: () = assert!(SEM_SIZE >= 16);
        #[allow(clippy::disallowed_types)] // a word of glibc's sem_t, not our protocol
        // SAFETY: the sem_t is at least 16 bytes and 8-aligned (constructor contract), so
        // its `private` int at offset 8 is in bounds and aligned; peers write it only
        // through glibc's (atomic) semaphore calls, or as garbage, which we check for.
        let private = unsafe {
            std::sync::atomic::AtomicI32::from_ptr(self.sem.as_ptr().cast::<i32>().add(2))
        }
        .load(std::sync::atomic::Ordering::Relaxed);
        const SHARED: i32 = 128;
        if private != SHARED {
            tracing::warn!(private, "semaphore state is corrupt");
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("semaphore is corrupt (private word {private}, expected {SHARED})"),
            ));
        }
        Ok(())
    }

    #[cfg(not(all(target_env = "gnu", target_pointer_width = "64")))]
    fn check_shared(&self) -> io::Result<()> {
        Ok(())
    }

    fn value(&self) -> io::Result<libc::c_int> {
        self.check_shared()?;
        let mut v = 0;
        // SAFETY: a live semaphore (constructor contract) and a valid out-pointer.
        if unsafe { libc::sem_getvalue(self.sem.as_ptr(), &mut v) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(v)
    }

    /// Takes the units left without blocking: normally none or one (`notify` posts only
    /// at 0). At most 64, so a garbage value of two billion costs spurious wake-ups
    /// rather than a two-billion-step loop.
    fn drain(&self) {
        for _ in 0..64 {
            // SAFETY: a live semaphore (constructor contract).
            if self.check_shared().is_err() || unsafe { libc::sem_trywait(self.sem.as_ptr()) } != 0
            {
                return;
            }
        }
    }
}

impl Notifier for Semaphore {
    fn notify(&self) -> io::Result<()> {
        // A notification is already pending: posting again would only grow the value.
        if self.value()? > 0 {
            return Ok(());
        }
        self.check_shared()?;
        // SAFETY: a live semaphore (constructor contract).
        if unsafe { libc::sem_post(self.sem.as_ptr()) } == -1 {
            let e = io::Error::last_os_error();
            // EOVERFLOW: at SEM_VALUE_MAX, so a wake-up is pending anyway.
            if e.raw_os_error() != Some(libc::EOVERFLOW) {
                return Err(e);
            }
        }
        Ok(())
    }

    fn wait(&self, timeout: Option<Duration>) -> io::Result<Wait> {
        let deadline = crate::bounded(timeout).map(deadline::after);
        loop {
            self.check_shared()?;
            let r = match &deadline {
                // SAFETY: a live semaphore and a live timespec.
                Some(d) => unsafe {
                    sem_clockwait(self.sem.as_ptr(), libc::CLOCK_MONOTONIC, d.as_ref())
                },
                // SAFETY: a live semaphore.
                None => unsafe { libc::sem_wait(self.sem.as_ptr()) },
            };
            if r == 0 {
                self.drain();
                tracing::trace!("semaphore wait: notified");
                return Ok(Wait::Notified);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ETIMEDOUT) => return Ok(Wait::TimedOut),
                _ => return Err(e),
            }
        }
    }
}
