//! Futex notifier: a `u32` in shared memory, woken with `FUTEX_WAKE` (shared, not
//! `FUTEX_PRIVATE`, so it works across processes mapping the same memory).
//!
//! The word is a pending flag: `notify` sets it to 1 and wakes one waiter; `wait` takes
//! the flag (swap to 0) and sleeps only while it is 0 (the kernel re-checks the value
//! atomically with going to sleep, so a notify between our check and the sleep is not
//! lost). Sleeps use `FUTEX_WAIT_BITSET` with an absolute CLOCK_MONOTONIC deadline.

use crate::deadline;
use crate::{Notifier, Wait};
use std::io;
use std::ptr::NonNull;
#[allow(clippy::disallowed_types)] // the futex word must be a real u32 in the mapping
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A futex word in memory shared between processes.
pub struct Futex {
    word: NonNull<u32>,
    _owner: Arc<dyn Send + Sync>,
}

impl std::fmt::Debug for Futex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Futex")
            .field("word", &self.word)
            .finish_non_exhaustive()
    }
}

// SAFETY: the word is only accessed atomically or by the kernel; the owner is Send+Sync.
unsafe impl Send for Futex {}
// SAFETY: as above.
unsafe impl Sync for Futex {}

impl Futex {
    /// Uses the `u32` at `word` (initially 0 in a fresh mapping) as the futex word.
    ///
    /// # Safety
    /// `word` is 4-byte aligned, stays valid while `owner` lives (typically `owner` keeps
    /// the mapping), and every process accesses it only atomically or through this type.
    pub unsafe fn from_raw(word: NonNull<u32>, owner: Arc<dyn Send + Sync>) -> Futex {
        Futex {
            word,
            _owner: owner,
        }
    }

    #[allow(clippy::disallowed_types)]
    fn atomic(&self) -> &AtomicU32 {
        // SAFETY: aligned and valid while `self` lives (constructor contract).
        unsafe { AtomicU32::from_ptr(self.word.as_ptr()) }
    }

    fn sys(&self, op: libc::c_int, val: u32, timeout: *const libc::timespec) -> io::Result<()> {
        // SAFETY: the word is valid (constructor contract); `timeout` is null or points at
        // a live timespec; the bitset argument selects every waiter.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word.as_ptr(),
                op,
                val,
                timeout,
                std::ptr::null::<u32>(),
                libc::FUTEX_BITSET_MATCH_ANY,
            )
        };
        if r == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

impl Notifier for Futex {
    fn notify(&self) -> io::Result<()> {
        if self.atomic().swap(1, Ordering::Release) == 0 {
            self.sys(libc::FUTEX_WAKE, 1, std::ptr::null())?;
        }
        Ok(())
    }

    fn wait(&self, timeout: Option<Duration>) -> io::Result<Wait> {
        let deadline = crate::bounded(timeout).map(deadline::after);
        loop {
            if self.atomic().swap(0, Ordering::Acquire) == 1 {
                return Ok(Wait::Notified);
            }
            let ts = deadline
                .as_ref()
                .map_or(std::ptr::null(), |d| d.as_ref() as *const _);
            match self.sys(libc::FUTEX_WAIT_BITSET, 0, ts) {
                Ok(()) => {}
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => {}
                    Some(libc::ETIMEDOUT) => {
                        let flag = self.atomic().swap(0, Ordering::Acquire);
                        return Ok(if flag == 1 {
                            Wait::Notified
                        } else {
                            Wait::TimedOut
                        });
                    }
                    _ => return Err(e),
                },
            }
        }
    }
}
