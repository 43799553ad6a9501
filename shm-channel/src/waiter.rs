//! The waiter protocol: how a side that found nothing to do goes to sleep without ever
//! missing the wake-up its peer sends, and how the peer pays for a wake-up system call
//! only when someone sleeps, and only once per sleep.
//!
//! A waiter word holds one bit per end that may sleep on it, plus `NOTIFIED` (bit 0). The
//! reader sleeps alone on the data word (bit 1); the writer in liveness slot `i` sleeps on
//! the space word with bit `i + 1`. The sleeper announces itself (sets its bit),
//! `fence(SeqCst)`, re-checks the ring, and only then blocks; on waking it withdraws
//! (clears its bit and `NOTIFIED`), and if others still sleep it passes the wake-up on
//! (several writers may wait for space at once; each must wake). The waker publishes,
//! `fence(SeqCst)`, reads the word, and notifies only if someone sleeps and nobody has
//! notified this episode yet (a CAS sets `NOTIFIED`). The two fences are the store-load
//! barriers of this store-buffering pattern: without either, both sides can miss each
//! other's store and the sleeper sleeps through a published message. The loom suite
//! shows exactly that when a fence is removed.
//!
//! Announcements carry who made them, so nothing a dead end left on a word outlives it:
//! an end that takes over a dead one's slot withdraws on its behalf ([`take_over`]),
//! passing on a wake-up the dead one had taken. The reader, alone on its word, overwrites
//! the whole word when it announces, so a stale `NOTIFIED` or garbage cannot make it sleep
//! through a message. Waiter words are untrusted memory: a writer that finds bits no end
//! writes, or `NOTIFIED` already set, when it announces reports the word as suspect and
//! the caller caps its park at the liveness interval; the wait engine backs off from
//! repeated spurious wake-ups, so no value spins a core.
//!
//! # Memory ordering, and what rests on the fences
//!
//! Two orderings rest on the `fence(SeqCst)` pair and on nothing else: the sleeper's
//! announcement before its re-check of the ring, and the waker's publication before its
//! read of the waiter word. That is the store-buffering pattern, and both models real
//! code runs under guarantee it with two SeqCst fences:
//!
//! * C++ (Rust's model): the fences are totally ordered. If the sleeper's fence comes
//!   first, the waker's load after its own fence reads the announcement or a later value
//!   of the word ([atomics.fences]: an SC fence before a store and one before a load of
//!   the same object, ordered so, make the load see that store or a later one); if the
//!   waker's comes first, the sleeper's re-check sees the publication. Either way one side
//!   sees the other: no lost wake-up, with relaxed accesses on both sides.
//! * x86-TSO: the only reordering the hardware makes is a load passing an earlier store
//!   (the store buffer); `fence(SeqCst)` is an `mfence` that drains it, and the
//!   announcement is a locked read-modify-write (`xchg`/`lock or`), a full barrier too.
//!   AArch64 compiles the fence to `dmb ish`, which orders earlier stores before later
//!   loads as well.
//!
//! loom 0.7 is stronger than both: it orders any two SeqCst fences as if each
//! synchronised with the other. The protocol never relies on that. A woken sleeper sees
//! the message through the ring's own Release store of the record length and its Acquire
//! load, not through the fences; the `NOTIFIED` transitions are read-modify-writes, which
//! always read the latest value of the word, so the pass-on needs no fence of its own.
//! The engine (`engine.rs`) adds no ordering: it only sequences these steps.

use crate::layout::WRITER_SLOTS;
use crate::ChannelKind;
use shm_idle::WakeUp;
use shm_notify::{Notifier, Wait};
use shm_ring::sync::{fence, AtomicU32, Ordering};
use shm_ring::Kind;
use std::io;
use std::time::Duration;

const NOTIFIED: u32 = 1;
/// Every bit a writer may set on the space word, and `NOTIFIED`.
const WRITERS_VALID: u32 = (((1u32 << WRITER_SLOTS) - 1) << 1) | NOTIFIED;

/// Who sleeps on a waiter word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sleeper {
    /// The reader, alone on the data word.
    Reader,
    /// The writer in liveness slot `i` (`0..WRITER_SLOTS`), on the space word.
    Writer(usize),
}

impl Sleeper {
    fn bit(self) -> u32 {
        match self {
            Sleeper::Reader => 1 << 1,
            Sleeper::Writer(i) => 1 << (1 + i),
        }
    }

    /// The bits an end of this kind may find set by others.
    fn valid(self) -> u32 {
        match self {
            Sleeper::Reader => Sleeper::Reader.bit() | NOTIFIED,
            Sleeper::Writer(_) => WRITERS_VALID,
        }
    }
}

/// What a park came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parked {
    /// The re-check after announcing found progress possible: no sleep.
    Skipped,
    /// Slept and was woken (or timed out).
    Slept(Wait),
}

/// Sleeper side: announce, fence, re-check, block, withdraw. `block` learns whether the
/// word looked suspect (see the module docs): then it must not block without a timeout.
pub(crate) fn park<N: Notifier + ?Sized>(
    word: &AtomicU32,
    who: Sleeper,
    notifier: &N,
    ready: impl FnOnce() -> bool,
    block: impl FnOnce(bool) -> io::Result<Wait>,
) -> io::Result<Parked> {
    park_many(&[(word, who, notifier)], ready, block)
}

/// [`park`] on several waiter words at once (one reader of many channels, blocking on
/// all their notifiers in one epoll): announce on every word, one fence, re-check every
/// ring, block, withdraw from every word. Per word it is the protocol above, unchanged.
pub(crate) fn park_many<N: Notifier + ?Sized>(
    sleepers: &[(&AtomicU32, Sleeper, &N)],
    ready: impl FnOnce() -> bool,
    block: impl FnOnce(bool) -> io::Result<Wait>,
) -> io::Result<Parked> {
    let mut suspect = false;
    for (word, who, _) in sleepers {
        suspect |= announce(word, *who);
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
        return block(suspect).map(Parked::Slept);
    }
    if ready() {
        withdraw_all(sleepers)?;
        return Ok(Parked::Skipped);
    }
    let woke = block(suspect);
    withdraw_all(sleepers)?;
    woke.map(Parked::Slept)
}

/// Sets `who`'s bit; returns whether the word looked suspect (see the module docs).
fn announce(word: &AtomicU32, who: Sleeper) -> bool {
    match who {
        Sleeper::Reader => {
            // Alone on this word: whatever is there is stale.
            let prev = word.swap(who.bit(), Ordering::Relaxed);
            if prev != 0 {
                tracing::debug!(prev, "overwrote a stale data waiter word");
            }
            false
        }
        Sleeper::Writer(_) => {
            let prev = word.fetch_or(who.bit(), Ordering::Relaxed);
            if prev & !WRITERS_VALID != 0 {
                word.fetch_and(WRITERS_VALID, Ordering::Relaxed);
                tracing::debug!(
                    prev,
                    "cleared bits no writer sets from the space waiter word"
                );
            }
            prev & (NOTIFIED | !WRITERS_VALID) != 0
        }
    }
}

/// [`withdraw`] from every word, even if one fails (the first error is returned).
fn withdraw_all<N: Notifier + ?Sized>(sleepers: &[(&AtomicU32, Sleeper, &N)]) -> io::Result<()> {
    let mut first = Ok(());
    for (word, who, notifier) in sleepers {
        let r = withdraw(word, *who, *notifier);
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
    who: Sleeper,
    notifier: &'a N,
    /// The word looked suspect: do not wait without a timeout.
    pub(crate) suspect: bool,
}

#[cfg(all(feature = "tokio", not(shm_loom)))]
impl<'a, N: Notifier + ?Sized> Announced<'a, N> {
    pub(crate) fn new(word: &'a AtomicU32, who: Sleeper, notifier: &'a N) -> Self {
        let suspect = announce(word, who);
        fence(Ordering::SeqCst);
        Announced {
            word,
            who,
            notifier,
            suspect,
        }
    }
}

#[cfg(all(feature = "tokio", not(shm_loom)))]
impl<N: Notifier + ?Sized> Drop for Announced<'_, N> {
    fn drop(&mut self) {
        if let Err(e) = withdraw(self.word, self.who, self.notifier) {
            tracing::warn!(error = %e, "passing a wake-up on failed");
        }
    }
}

/// Leaves the sleepers; passes a wake-up on if others still sleep.
fn withdraw<N: Notifier + ?Sized>(word: &AtomicU32, who: Sleeper, notifier: &N) -> io::Result<()> {
    let prev = match who {
        // Alone on this word: nothing else belongs there.
        Sleeper::Reader => word.swap(0, Ordering::AcqRel),
        Sleeper::Writer(_) => word.fetch_and(!(who.bit() | NOTIFIED), Ordering::AcqRel),
    };
    let others = prev & who.valid() & !(who.bit() | NOTIFIED);
    if prev & NOTIFIED != 0 && others != 0 && !fault::no_pass_on() {
        // We took an episode's wake-up that others were also waiting for. (No stamp: the
        // waker's stays, so the next sleeper's wake-up reads as later than it was.)
        wake_after_fence(word, None, notifier)?;
    }
    Ok(())
}

/// Withdraws the announcement a dead end may have left as `who`. Call only while holding
/// `who`'s slot (just taken over or claimed), so no live end can be using that bit.
pub(crate) fn take_over<N: Notifier + ?Sized>(
    word: &AtomicU32,
    who: Sleeper,
    notifier: &N,
) -> io::Result<()> {
    withdraw(word, who, notifier)
}

/// Whether `who`'s bit is set on `word`.
pub(crate) fn announced(word: &AtomicU32, who: Sleeper) -> bool {
    word.load(Ordering::Relaxed) & who.bit() != 0
}

/// Whether any end other than `who` has announced itself on `word` (cheap: one load).
pub(crate) fn others_announced(word: &AtomicU32, who: Sleeper) -> bool {
    word.load(Ordering::Relaxed) & who.valid() & !(who.bit() | NOTIFIED) != 0
}

/// Waker side, after publishing: fence, then [`wake_after_fence`]. Returns whether it
/// made a notify call.
#[inline]
pub(crate) fn wake<N: Notifier + ?Sized>(
    word: &AtomicU32,
    notes: WakeNotes<'_>,
    notifier: &N,
) -> io::Result<bool> {
    if !fault::skip_waker_fence() {
        fence(Ordering::SeqCst);
    }
    wake_after_fence(word, Some(notes), notifier)
}

/// Waker side after a publication that the ring already followed with a `SeqCst` fence
/// (an `MpscLanes` commit fences to update the lane summary): the same as [`wake`]
/// without a second fence.
#[inline]
pub(crate) fn wake_fenced<K: ChannelKind, N: Notifier + ?Sized>(
    word: &AtomicU32,
    notes: WakeNotes<'_>,
    notifier: &N,
) -> io::Result<bool> {
    match K::KIND {
        Kind::Lanes => wake_after_fence(word, Some(notes), notifier),
        _ => wake(word, notes, notifier),
    }
}

/// The load every publication pays, inline; what follows only when someone sleeps, out
/// of line. (When this whole check was one out-of-line call, its register saves cost
/// every message more than the check itself.)
#[inline(always)]
fn wake_after_fence<N: Notifier + ?Sized>(
    word: &AtomicU32,
    notes: Option<WakeNotes<'_>>,
    notifier: &N,
) -> io::Result<bool> {
    let cur = word.load(Ordering::Relaxed);
    if !needs_notify(cur) {
        return Ok(false);
    }
    notify_sleepers(word, cur, notes, notifier)
}

/// Whether a waker that found `word` holding `cur` must notify: someone announced and
/// no one has notified them yet.
#[inline(always)]
fn needs_notify(cur: u32) -> bool {
    cur & !NOTIFIED != 0 && cur & NOTIFIED == 0
}

/// Marks `word` notified (unless someone else did or the sleepers left) and notifies.
#[cold]
#[inline(never)]
fn notify_sleepers<N: Notifier + ?Sized>(
    word: &AtomicU32,
    mut cur: u32,
    notes: Option<WakeNotes<'_>>,
    notifier: &N,
) -> io::Result<bool> {
    loop {
        if !needs_notify(cur) {
            return Ok(false);
        }
        if fault::waker_stores_notified() {
            // Injected bug: a plain store, which can undo a sleeper's concurrent withdraw.
            word.store(cur | NOTIFIED, Ordering::Relaxed);
            break;
        }
        match word.compare_exchange(cur, cur | NOTIFIED, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => break,
            // Someone else notified, or a sleeper left or arrived: the state they left
            // decides (a new sleeper re-checks after its own fence).
            Err(actual) => cur = actual,
        }
    }
    tracing::trace!("waking a parked peer");
    // Not part of the protocol (no ordering rests on it): when and from which CPU the
    // sleeper was notified, so its idle strategy can learn what a wake-up costs (see
    // `wake_up`).
    if let Some(notes) = notes {
        notes.at.store(stamp_now(), Ordering::Relaxed);
        notes.cpu.store(
            cpu_now().map_or(0, |c| c.wrapping_add(1)),
            Ordering::Relaxed,
        );
    }
    notifier.notify()?;
    Ok(true)
}

/// The low 32 bits of CLOCK_MONOTONIC in nanoseconds: the notify stamp. (The loom build
/// has no clock; it stores 0.)
fn stamp_now() -> u32 {
    #[cfg(not(shm_loom))]
    {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
            (t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64) as u32
        })
    }
    #[cfg(shm_loom)]
    {
        0
    }
}

/// The CPU this thread runs on (`None` when the kernel does not say; the loom build has
/// no CPU).
fn cpu_now() -> Option<u32> {
    #[cfg(not(shm_loom))]
    {
        nix::sched::sched_getcpu()
            .ok()
            .and_then(|c| u32::try_from(c).ok())
    }
    #[cfg(shm_loom)]
    {
        None
    }
}

/// The waker's notes beside a waiter word, for the woken end's idle strategy: when it
/// last notified (the low 32 bits of CLOCK_MONOTONIC in ns) and from which CPU (plus one;
/// 0: unknown, as a waker that predates the note leaves it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WakeNotes<'a> {
    pub(crate) at: &'a AtomicU32,
    pub(crate) cpu: &'a AtomicU32,
}

/// After a park that a notify ended: how long ago the waker noted its notify (`None`
/// when that reads as a second or more: a stale or garbage stamp, a waker in another time
/// namespace), and whether this end now runs on the CPU the waker notified from (`None`
/// when either CPU is unknown). Shared memory is input: the answer only tunes an idle
/// strategy, which clamps it further.
pub(crate) fn wake_up(notes: WakeNotes<'_>) -> WakeUp {
    if cfg!(shm_loom) {
        return WakeUp::default();
    }
    let late = stamp_now().wrapping_sub(notes.at.load(Ordering::Relaxed));
    let beside_waker = match notes.cpu.load(Ordering::Relaxed) {
        0 => None,
        theirs => cpu_now().map(|mine| mine.wrapping_add(1) == theirs),
    };
    WakeUp {
        late: (late < 1_000_000_000).then(|| Duration::from_nanos(u64::from(late))),
        beside_waker,
    }
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
            // An MpscLanes commit's fence is the waker's fence too (`wake_fenced`).
            shm_ring::sync::fault::set_skip_lane_fence(f == super::Fault::WakerFence);
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
        /// The waker sets `NOTIFIED` with a plain store instead of a compare-exchange.
        WakerStoresNotified = 4,
        /// A withdrawing sleeper never passes a wake-up on to the others.
        NoPassOn = 5,
        /// `SendClaim::commit` publishes without waking the reader.
        CommitSkipsWake = 6,
    }

    impl Fault {
        /// Every fault, with its name (for `SHM_LOOM_FAULT` and reports).
        pub const ALL: [(Fault, &'static str); 6] = [
            (Fault::SleeperFence, "sleeper-fence"),
            (Fault::WakerFence, "waker-fence"),
            (Fault::WithdrawBeforeRecheck, "withdraw-before-recheck"),
            (Fault::WakerStoresNotified, "waker-stores-notified"),
            (Fault::NoPassOn, "no-pass-on"),
            (Fault::CommitSkipsWake, "commit-skips-wake"),
        ];
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

    #[inline(always)]
    pub(crate) fn waker_stores_notified() -> bool {
        active(Fault::WakerStoresNotified)
    }

    #[inline(always)]
    pub(crate) fn no_pass_on() -> bool {
        active(Fault::NoPassOn)
    }

    #[inline(always)]
    pub(crate) fn commit_skips_wake() -> bool {
        active(Fault::CommitSkipsWake)
    }
}
