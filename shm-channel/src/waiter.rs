//! The waiter protocol: how a side that found nothing to do goes to sleep without ever
//! missing the wake-up its peer sends, and how the peer pays for a wake-up system call
//! only when someone sleeps, and only once per sleep.
//!
//! The waiter word holds `2 × (number of sleepers) + NOTIFIED`. The sleeper announces
//! itself (`+2`), `fence(SeqCst)`, re-checks the ring, and only then blocks; on waking it
//! withdraws (`-2`, clearing NOTIFIED), and if others still sleep it passes the wake-up
//! on (several writers may wait for space at once; each must wake). The waker publishes,
//! `fence(SeqCst)`, reads the word, and notifies only if someone sleeps and nobody has
//! notified this episode yet (a CAS sets NOTIFIED). The two fences are the store-load
//! barriers of this store-buffering pattern: without either, both sides can miss each
//! other's store and the sleeper sleeps through a published message. The loom suite
//! shows exactly that when a fence is removed.

use shm_notify::{Notifier, Wait};
use shm_ring::sync::{fence, AtomicU32, Ordering};
use std::io;

const SLEEPER: u32 = 2;
const NOTIFIED: u32 = 1;

/// What a park came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parked {
    /// The re-check after announcing found progress possible: no sleep.
    Skipped,
    /// Slept and was woken (or timed out).
    Slept(Wait),
}

/// Sleeper side: announce, fence, re-check, block, withdraw.
pub(crate) fn park<N: Notifier + ?Sized>(
    word: &AtomicU32,
    notifier: &N,
    ready: impl FnOnce() -> bool,
    block: impl FnOnce() -> io::Result<Wait>,
) -> io::Result<Parked> {
    park_many(&[(word, notifier)], ready, block)
}

/// [`park`] on several waiter words at once (one reader of many channels, blocking on
/// all their notifiers in one epoll): announce on every word, one fence, re-check every
/// ring, block, withdraw from every word. Per word it is the protocol above, unchanged.
pub(crate) fn park_many<N: Notifier + ?Sized>(
    sleepers: &[(&AtomicU32, &N)],
    ready: impl FnOnce() -> bool,
    block: impl FnOnce() -> io::Result<Wait>,
) -> io::Result<Parked> {
    for (word, _) in sleepers {
        word.fetch_add(SLEEPER, Ordering::Relaxed);
    }
    if !fault::skip_sleeper_fence() {
        fence(Ordering::SeqCst);
    }
    if fault::withdraw_before_recheck() {
        // Injected bug: back to "nobody sleeps" before the re-check.
        withdraw_all(sleepers)?;
        if ready() {
            return Ok(Parked::Skipped);
        }
        return block().map(Parked::Slept);
    }
    if ready() {
        withdraw_all(sleepers)?;
        return Ok(Parked::Skipped);
    }
    let woke = block();
    withdraw_all(sleepers)?;
    woke.map(Parked::Slept)
}

/// [`withdraw`] from every word, even if one fails (the first error is returned).
fn withdraw_all<N: Notifier + ?Sized>(sleepers: &[(&AtomicU32, &N)]) -> io::Result<()> {
    let mut first = Ok(());
    for (word, notifier) in sleepers {
        let r = withdraw(word, *notifier);
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// An announcement made across an `await` (the async ends): `new` announces and fences,
/// the owner re-checks the ring and then waits for the notifier however it likes; the
/// drop withdraws, also when the waiting future is cancelled.
#[cfg(all(feature = "tokio", not(shm_loom)))]
pub(crate) struct Announced<'a, N: Notifier + ?Sized> {
    word: &'a AtomicU32,
    notifier: &'a N,
}

#[cfg(all(feature = "tokio", not(shm_loom)))]
impl<'a, N: Notifier + ?Sized> Announced<'a, N> {
    pub(crate) fn new(word: &'a AtomicU32, notifier: &'a N) -> Self {
        word.fetch_add(SLEEPER, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Announced { word, notifier }
    }
}

#[cfg(all(feature = "tokio", not(shm_loom)))]
impl<N: Notifier + ?Sized> Drop for Announced<'_, N> {
    fn drop(&mut self) {
        if let Err(e) = withdraw(self.word, self.notifier) {
            tracing::warn!(error = %e, "passing a wake-up on failed");
        }
    }
}

/// Leaves the sleepers; passes a wake-up on if others still sleep.
fn withdraw<N: Notifier + ?Sized>(word: &AtomicU32, notifier: &N) -> io::Result<()> {
    let mut cur = word.load(Ordering::Relaxed);
    loop {
        let next = (cur & !NOTIFIED).saturating_sub(SLEEPER);
        match word.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => break,
            Err(actual) => cur = actual,
        }
    }
    if cur & NOTIFIED != 0 && cur >= 2 * SLEEPER {
        // We took an episode's wake-up that others were also waiting for.
        wake_after_fence(word, notifier)?;
    }
    Ok(())
}

/// Waker side, after publishing: fence, then [`wake_after_fence`]. Returns whether it
/// made a notify call.
#[inline]
pub(crate) fn wake<N: Notifier + ?Sized>(word: &AtomicU32, notifier: &N) -> io::Result<bool> {
    if !fault::skip_waker_fence() {
        fence(Ordering::SeqCst);
    }
    wake_after_fence(word, notifier)
}

#[inline]
fn wake_after_fence<N: Notifier + ?Sized>(word: &AtomicU32, notifier: &N) -> io::Result<bool> {
    let cur = word.load(Ordering::Relaxed);
    if cur < SLEEPER || cur & NOTIFIED != 0 {
        return Ok(false);
    }
    if word
        .compare_exchange(cur, cur | NOTIFIED, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        // Someone else notified, or the sleeper left or arrived: the state they left
        // decides (a new sleeper re-checks after its own fence).
        return wake_after_fence(word, notifier);
    }
    tracing::trace!("waking a parked peer");
    notifier.notify()?;
    Ok(true)
}

/// Test-only fault injection: the real protocol with one step removed, so the loom
/// suite can show it catches each mistake. Compiled to constant `false` otherwise.
pub mod fault {
    #[cfg(shm_loom)]
    mod switches {
        #[allow(clippy::disallowed_types)] // process-local test switches, not shared memory
        use std::sync::atomic::{AtomicU8, Ordering};

        #[allow(clippy::disallowed_types)]
        static FAULT: AtomicU8 = AtomicU8::new(0);

        pub fn set(f: super::Fault) {
            FAULT.store(f as u8, Ordering::SeqCst);
        }

        pub fn is(f: super::Fault) -> bool {
            FAULT.load(Ordering::SeqCst) == f as u8
        }
    }

    /// A protocol step to leave out.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    pub enum Fault {
        /// The full protocol.
        None = 0,
        /// No `fence(SeqCst)` between announcing and re-checking.
        SleeperFence = 1,
        /// No `fence(SeqCst)` between publishing and reading the waiter word.
        WakerFence = 2,
        /// Withdraw the announcement before re-checking.
        WithdrawBeforeRecheck = 3,
    }

    /// Selects the fault for this process (loom builds only).
    #[cfg(shm_loom)]
    pub fn inject(f: Fault) {
        switches::set(f)
    }

    #[inline(always)]
    fn active(_f: Fault) -> bool {
        #[cfg(shm_loom)]
        return switches::is(_f);
        #[cfg(not(shm_loom))]
        false
    }

    #[inline(always)]
    pub(crate) fn skip_sleeper_fence() -> bool {
        active(Fault::SleeperFence)
    }

    #[inline(always)]
    pub(crate) fn skip_waker_fence() -> bool {
        active(Fault::WakerFence)
    }

    #[inline(always)]
    pub(crate) fn withdraw_before_recheck() -> bool {
        active(Fault::WithdrawBeforeRecheck)
    }
}
