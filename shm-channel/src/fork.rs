//! Ends used after `fork`.
//!
//! A child inherits the parent's mapping and a copy of the parent's ends: their private
//! positions, their slots, their waiter identities. Used from the child, such an end would
//! write as the parent's producer beside the parent (or read as its reader), two ends
//! where the protocol allows one, and messages would be lost or corrupted while every
//! call returned `Ok`. So each end records the process generation it was made in; a
//! `pthread_atfork` child handler bumps the generation; every call compares the two with
//! one relaxed load (no system call) and a child's call fails with `Forked`. Dropped in a
//! child, an end touches nothing shared: its slot and its wake-ups are the parent's.

// A process-local counter, not shared memory: the sync facade does not apply.
#[allow(clippy::disallowed_types)]
use std::sync::atomic::{AtomicU32, Ordering};

#[allow(clippy::disallowed_types)]
static GENERATION: AtomicU32 = AtomicU32::new(0);

#[cfg(not(shm_loom))]
extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The process generation an end was made in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Born(u32);

impl Born {
    /// Now, in this process (registers the fork handler on first use).
    pub(crate) fn here() -> Born {
        #[cfg(not(shm_loom))]
        {
            static REGISTER: std::sync::Once = std::sync::Once::new();
            REGISTER.call_once(|| {
                // SAFETY: the handler only increments an atomic, which is all a child
                // handler may safely do after fork in a multithreaded process.
                let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
                if rc != 0 {
                    tracing::warn!(rc, "pthread_atfork failed: use after fork goes unseen");
                }
            });
        }
        Born(GENERATION.load(Ordering::Relaxed))
    }

    /// Whether this is a child forked since the end was made.
    #[inline(always)]
    pub(crate) fn forked(self) -> bool {
        GENERATION.load(Ordering::Relaxed) != self.0
    }
}
