//! Liveness: who is attached to a channel, whether they still live, and how a waiting
//! end finds out. The whole story is here; the pieces live in this module's files.
//!
//! **Slots and locks.** Each end holds a slot in the segment's extension area (the
//! reader one, writers one each of [`WRITER_SLOTS`]): `[pid, start-time low, start-time
//! high, state]`, and the slot's *end lock* ([`shm_ring::Segment::lock_end`]): a byte
//! lock the kernel holds for it on a file description of its own and drops when the
//! process dies, however it dies. The lock, not the pid, says whether an end lives: it
//! needs no `/proc`, no free fd and no shared PID namespace (a sidecar in another
//! container of the pod), and pid reuse cannot fool it. An end takes the lock first and
//! then marks the slot (state `OPEN | LOCKED`); it marks it closed before it lets go.
//! Whoever gets the lock of a slot owns it: the end named there closed or died.
//!
//! **The fallback.** Where no description of its own can be opened (an fd-passed
//! segment in a process without `/proc`), the end marks its slot unlocked and is judged
//! by pid and start time, only from the same PID namespace (recorded beside the slot);
//! anything else is unknown. **Unknown is not dead**: an error while asking (the kernel
//! refusing `F_OFD_GETLK`, an unreadable `/proc`) never reports an end gone.
//!
//! **Closing and dying.** Dropping an end marks its slot closed and wakes the other side,
//! which learns at once (one load: [`reader_closed`], [`writers_closed`]). A process
//! killed with SIGKILL cannot close: the other side finds it dead by the liveness check
//! ([`reader_gone`], [`writers_gone`]: one `F_OFD_GETLK` per slot), which a waiting end
//! runs four times per detection interval ([`Pacer`]), or at once when it is owed.
//!
//! **Watching instead of polling.** An end that parks on an fd-based notifier puts its
//! peers' pidfds in one epoll fd ([`PeerWatch`], `watch.rs`) and sleeps on it beside the
//! notifier, without a timeout: the kernel wakes it when a peer exits. The watch is only
//! trusted when complete (every live peer in our PID namespace, its pidfd opened and
//! checked to be the recorded process); otherwise the park is timed at the detection
//! interval. A watched peer's exit, a peer found dead while building the watch, and a
//! wake-up that came to nothing all leave a check *owed*, kept across calls until it has
//! run: no untimed park starts while one is owed. The watch only hurries the check; the
//! check (the locks) decides.
//!
//! **What the dead leave behind.** An end killed while parked leaves its bit on a waiter
//! word (see [`crate::waiter`]). Whoever takes its slot over withdraws it on its behalf,
//! and a writer's liveness check takes over and closes the slots of dead writers that
//! left bits on the space word, so no phantom sleeper passes wake-ups to no one.

use crate::fork::Born;
use crate::layout::{
    PIDNS_AT, READER_SLOT, SLOT_WORDS, WRITERS_EVER, WRITER_SLOTS, WRITER_SLOTS_AT,
};
use crate::waiter::Sleeper;
use crate::ChannelError;

mod pacer;
mod watch;

pub(crate) use pacer::Pacer;
use shm_ring::sync::Ordering;
use shm_ring::Segment;
pub(crate) use watch::PeerWatch;

const FREE: u32 = 0;
const OPEN: u32 = 1;
const CLOSED: u32 = 2;
/// `CLAIMING | pid`: being filled by process `pid`. The claimer's pid is in the state
/// word itself, so a claimer killed half-way leaves a slot that can be told dead (no
/// such process) and taken over, not one that looks claimed for ever.
const CLAIMING: u32 = 1 << 31;
/// Set on `OPEN` and `CLAIMING` by a holder of the slot's end lock: then the lock, not
/// the pid, says whether it lives. (Pids are below 2^22, so bits 30 and 31 are free.)
const LOCKED: u32 = 1 << 30;

/// A slot's state word, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Closed,
    Open { locked: bool },
    Claiming { pid: u32, locked: bool },
    Corrupt(u32),
}

fn decode(state: u32) -> State {
    let locked = state & LOCKED != 0;
    if state & CLAIMING != 0 {
        return State::Claiming {
            pid: state & !(CLAIMING | LOCKED),
            locked,
        };
    }
    match state & !LOCKED {
        FREE if !locked => State::Free,
        CLOSED if !locked => State::Closed,
        OPEN => State::Open { locked },
        _ => State::Corrupt(state),
    }
}

const PID: usize = 0;
const START_LO: usize = 1;
const START_HI: usize = 2;
const STATE: usize = 3;

/// The end lock a slot's holder takes (see [`shm_ring::Segment::lock_end`]).
#[cfg(not(shm_loom))]
type Lock = shm_ring::EndLock;
#[cfg(shm_loom)]
type Lock = ();

/// This process's claim on a slot; closed on drop, then its lock released.
#[derive(Debug)]
pub(crate) struct Slot {
    segment: Segment,
    at: usize,
    /// The process generation that holds it (a forked child never closes it).
    born: Born,
    /// The kernel-held lock that tells others this end lives (`None` in the fallback).
    _lock: Option<Lock>,
}

/// Index of a slot among the slots (reader 0, writer `i` at `1 + i`): also its end lock.
fn index(at: usize) -> usize {
    match at {
        READER_SLOT => 0,
        at => 1 + (at - WRITER_SLOTS_AT) / SLOT_WORDS,
    }
}

/// This process's pid and start time (`/proc/self`: right in any PID namespace).
#[cfg(not(shm_loom))]
fn me() -> (u32, u64) {
    (std::process::id(), shm_ring::process::own_start_time())
}

#[cfg(shm_loom)]
fn me() -> (u32, u64) {
    (0, 0)
}

/// This process's pid (0 under loom).
fn my_pid() -> u32 {
    #[cfg(not(shm_loom))]
    let pid = std::process::id();
    #[cfg(shm_loom)]
    let pid = 0;
    pid
}

/// This process's PID namespace, or 0 where unknown (loom, or no `/proc`).
fn my_pid_namespace() -> u32 {
    #[cfg(not(shm_loom))]
    let ns = shm_ring::process::pid_namespace();
    #[cfg(shm_loom)]
    let ns = 0;
    ns
}

fn word(seg: &Segment, at: usize, field: usize) -> &shm_ring::sync::AtomicU32 {
    seg.extension().u32(at + field)
}

fn pid_namespace_word(seg: &Segment, at: usize) -> &shm_ring::sync::AtomicU32 {
    seg.extension().u32(PIDNS_AT + index(at))
}

/// What is known of a process.
#[cfg(not(shm_loom))]
use shm_ring::process::Presence;

/// What is known of a process (loom: every end lives).
#[cfg(shm_loom)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    Running,
    Gone,
    Unknown,
}

#[cfg(shm_loom)]
impl Presence {
    fn may_run(self) -> bool {
        self != Presence::Gone
    }
}

/// Whether the recorded holder of the slot at `at` lives. A locked holder is asked of
/// the kernel (its end lock); an unlocked one (the fallback) by pid and start time, and
/// only where its pids mean ours (same PID namespace): elsewhere it is unknown.
fn presence(seg: &Segment, at: usize, state: State) -> Presence {
    #[cfg(not(shm_loom))]
    {
        use shm_ring::process;
        match state {
            State::Open { locked: true } | State::Claiming { locked: true, .. } => {
                match seg.end_locked(index(at) as u32) {
                    Ok(true) => Presence::Running,
                    Ok(false) => Presence::Gone,
                    Err(e) => {
                        tracing::debug!(error = %e, "end lock unreadable: presence unknown");
                        Presence::Unknown
                    }
                }
            }
            State::Open { locked: false } => {
                let ns = pid_namespace_word(seg, at).load(Ordering::Relaxed);
                if ns == 0 || ns != my_pid_namespace() {
                    return Presence::Unknown;
                }
                let (pid, lo, hi) = recorded(seg, at);
                if pid == 0 {
                    return Presence::Unknown;
                }
                process::presence(pid, lo as u64 | (hi as u64) << 32)
            }
            State::Claiming { pid, locked: false } => process::presence_of(pid),
            State::Free | State::Closed | State::Corrupt(_) => Presence::Gone,
        }
    }
    #[cfg(shm_loom)]
    {
        let _ = (seg, at);
        match state {
            State::Open { .. } | State::Claiming { .. } => Presence::Running,
            _ => Presence::Gone,
        }
    }
}

fn fill(seg: &Segment, at: usize, locked: bool) {
    let (pid, start) = me();
    word(seg, at, PID).store(pid, Ordering::Relaxed);
    word(seg, at, START_LO).store(start as u32, Ordering::Relaxed);
    word(seg, at, START_HI).store((start >> 32) as u32, Ordering::Relaxed);
    pid_namespace_word(seg, at).store(my_pid_namespace(), Ordering::Relaxed);
    let open = if locked { OPEN | LOCKED } else { OPEN };
    word(seg, at, STATE).store(open, Ordering::Release);
}

/// Whether a slot belongs to an end that may live (a live claimer counts; unknown is
/// not dead).
fn alive(seg: &Segment, at: usize) -> bool {
    let state = decode(word(seg, at, STATE).load(Ordering::Acquire));
    presence(seg, at, state).may_run()
}

/// The (pid, start time) recorded in a slot.
fn recorded(seg: &Segment, at: usize) -> (u32, u32, u32) {
    (
        word(seg, at, PID).load(Ordering::Relaxed),
        word(seg, at, START_LO).load(Ordering::Relaxed),
        word(seg, at, START_HI).load(Ordering::Relaxed),
    )
}

/// What taking a slot's end lock came to.
enum Locking {
    /// Ours: no live process held it.
    Taken(Lock),
    /// A live process holds it.
    Busy,
    /// No lock can be had here (loom; an fd-passed segment without `/proc`): the
    /// fallback, liveness by pid.
    Unavailable,
}

/// Takes the end lock of the slot at `at`.
fn lock(seg: &Segment, at: usize) -> Result<Locking, ChannelError> {
    #[cfg(not(shm_loom))]
    {
        use shm_ring::SegmentError;
        match seg.lock_end(index(at) as u32) {
            Ok(Some(lock)) => Ok(Locking::Taken(lock)),
            Ok(None) => Ok(Locking::Busy),
            Err(SegmentError::Io { op, source })
                if matches!(
                    source.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
                ) =>
            {
                Err(ChannelError::Segment(SegmentError::Io { op, source }))
            }
            Err(e) => {
                tracing::warn!(error = %e, "no end lock: liveness falls back to pids");
                Ok(Locking::Unavailable)
            }
        }
    }
    #[cfg(shm_loom)]
    {
        let _ = (seg, at);
        Ok(Locking::Unavailable)
    }
}

/// Takes a slot whose process died: an OPEN one it never closed (killed), or one it was
/// claiming when it was killed. Another process may take the same slot first and refill
/// it; then the recorded identity differs after our CAS, and we hand the slot back
/// (unless its owner closed it since). The fallback's way, where no lock can be had.
fn take_dead(seg: &Segment, at: usize) -> bool {
    let state = word(seg, at, STATE);
    let cur = state.load(Ordering::Acquire);
    let decoded = decode(cur);
    let occupied = matches!(decoded, State::Open { .. } | State::Claiming { .. });
    if !occupied || presence(seg, at, decoded) != Presence::Gone {
        return false;
    }
    let identity = recorded(seg, at);
    let mine = CLAIMING | my_pid();
    if state
        .compare_exchange(cur, mine, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    if matches!(decoded, State::Claiming { .. }) || recorded(seg, at) == identity {
        return true;
    }
    let _ = state.compare_exchange(mine, OPEN, Ordering::AcqRel, Ordering::Relaxed);
    false
}

/// Claims the slot at `at` if no live end holds it (free, closed, or its holder died):
/// `Ok(None)` if one does.
fn claim(seg: &Segment, at: usize) -> Result<Option<Slot>, ChannelError> {
    let state = word(seg, at, STATE);
    let slot = |lock| Slot {
        segment: seg.clone(),
        at,
        born: Born::here(),
        _lock: lock,
    };
    match lock(seg, at)? {
        Locking::Busy => Ok(None),
        Locking::Taken(lock) => {
            // No live end holds the lock: whoever the word names is gone, unless it is
            // an unlocked (fallback) end, which only its pid can tell. Only a fallback
            // claimer or a hostile writer can change the word under us: a few rounds,
            // then the slot counts as taken rather than spin on it.
            for _ in 0..64 {
                let cur = state.load(Ordering::Acquire);
                let free = match decode(cur) {
                    s @ (State::Open { locked: false } | State::Claiming { locked: false, .. }) => {
                        presence(seg, at, s) == Presence::Gone
                    }
                    _ => true,
                };
                if !free {
                    return Ok(None);
                }
                let mine = CLAIMING | LOCKED | my_pid();
                if state
                    .compare_exchange(cur, mine, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    fill(seg, at, true);
                    return Ok(Some(slot(Some(lock))));
                }
            }
            tracing::warn!(
                at,
                "a slot's state word keeps changing under its lock: skipped"
            );
            Ok(None)
        }
        Locking::Unavailable => {
            let mine = CLAIMING | my_pid();
            let unused = [FREE, CLOSED].iter().any(|&from| {
                state
                    .compare_exchange(from, mine, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            });
            if unused || take_dead(seg, at) {
                fill(seg, at, false);
                return Ok(Some(slot(None)));
            }
            Ok(None)
        }
    }
}

impl Slot {
    /// Claims a writer slot: a free or closed one, else one whose process died.
    pub(crate) fn writer(seg: &Segment) -> Result<Slot, ChannelError> {
        // One slot per lane: a writer writes to the lane of its slot.
        let count = seg.lanes().min(WRITER_SLOTS);
        let slots = || (0..count).map(|i| WRITER_SLOTS_AT + i * SLOT_WORDS);
        // Unused slots first (a dead writer's lane may hold records its successor
        // would resume behind); a slot a live end holds is passed over at one load.
        let unused = |at: usize| {
            matches!(
                decode(word(seg, at, STATE).load(Ordering::Acquire)),
                State::Free | State::Closed
            )
        };
        let dead = |at: usize| !unused(at) && !alive(seg, at);
        for at in slots()
            .filter(|&at| unused(at))
            .chain(slots().filter(|&at| dead(at)))
        {
            if let Some(slot) = claim(seg, at)? {
                seg.extension()
                    .u32(WRITERS_EVER)
                    .store(1, Ordering::Release);
                return Ok(slot);
            }
        }
        Err(ChannelError::TooManyWriters(count))
    }

    /// Claims the slot at `at` for this process alone: a free or closed one, or one whose
    /// process died. `Err` carries the pid recorded by the live end that holds it.
    fn exclusive(seg: &Segment, at: usize) -> Result<Slot, ChannelError> {
        // A closing end marks its slot closed, then lets go of its lock: a slot seen
        // closed but still locked is retried for a moment.
        for _ in 0..50 {
            if let Some(slot) = claim(seg, at)? {
                return Ok(slot);
            }
            if decode(word(seg, at, STATE).load(Ordering::Acquire)) != State::Closed {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let pid = match decode(word(seg, at, STATE).load(Ordering::Acquire)) {
            State::Claiming { pid, .. } => pid,
            _ => word(seg, at, PID).load(Ordering::Relaxed),
        };
        Err(match at {
            READER_SLOT => ChannelError::ReaderAttached,
            _ => ChannelError::WriterAttached { pid },
        })
    }

    /// Claims the one writer slot of an SPSC channel (the first), unless a live writer
    /// holds it (then the error names it); a dead writer's slot is taken over.
    pub(crate) fn sole_writer(seg: &Segment) -> Result<Slot, ChannelError> {
        let slot = Slot::exclusive(seg, WRITER_SLOTS_AT)?;
        seg.extension()
            .u32(WRITERS_EVER)
            .store(1, Ordering::Release);
        Ok(slot)
    }

    /// Claims the reader slot, unless a live reader holds it.
    pub(crate) fn reader(seg: &Segment) -> Result<Slot, ChannelError> {
        Slot::exclusive(seg, READER_SLOT)
    }
}

impl Slot {
    /// Who this slot's end is on the waiter words.
    /// Whether this process is a child forked since the slot was taken (the slot, and
    /// the end holding it, are the parent's).
    #[inline(always)]
    pub(crate) fn forked(&self) -> bool {
        self.born.forked()
    }

    /// The process generation holding the slot.
    pub(crate) fn born(&self) -> Born {
        self.born
    }

    /// The index of a writer slot (also its lane).
    pub(crate) fn writer_index(&self) -> usize {
        debug_assert!(self.at >= WRITER_SLOTS_AT);
        (self.at - WRITER_SLOTS_AT) / SLOT_WORDS
    }

    pub(crate) fn sleeper(&self) -> Sleeper {
        match self.at {
            READER_SLOT => Sleeper::Reader,
            at => Sleeper::Writer((at - WRITER_SLOTS_AT) / SLOT_WORDS),
        }
    }

    /// Takes writer slot `i` if no live end holds it (free, closed, or its process died
    /// without closing it), so the caller can withdraw what was left on the space word in
    /// its name; no end can announce as `i` meanwhile. The slot closes on drop.
    pub(crate) fn take_unused_writer(seg: &Segment, i: usize) -> Option<Slot> {
        if i >= WRITER_SLOTS {
            return None;
        }
        claim(seg, WRITER_SLOTS_AT + i * SLOT_WORDS).ok().flatten()
    }

    /// Marks the slot closed (idempotent).
    pub(crate) fn close(&self) {
        word(&self.segment, self.at, STATE).store(CLOSED, Ordering::Release);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !crate::unwinding_model() && !self.forked() {
            self.close();
        }
    }
}

/// The reader closed its end (cheap: one load; death is [`reader_gone`]'s job).
pub(crate) fn reader_closed(seg: &Segment) -> bool {
    decode(word(seg, READER_SLOT, STATE).load(Ordering::Acquire)) == State::Closed
}

/// Every writer that attached has closed its end (cheap: no liveness check).
pub(crate) fn writers_closed(seg: &Segment) -> bool {
    seg.extension().u32(WRITERS_EVER).load(Ordering::Acquire) != 0
        && (0..WRITER_SLOTS).all(|i| {
            matches!(
                decode(word(seg, WRITER_SLOTS_AT + i * SLOT_WORDS, STATE).load(Ordering::Acquire)),
                State::Free | State::Closed
            )
        })
}

/// The reader attached once and is now gone (closed, or known dead: unknown is not
/// dead). `false` before any reader attached: messages wait for it.
pub(crate) fn reader_gone(seg: &Segment) -> bool {
    match decode(word(seg, READER_SLOT, STATE).load(Ordering::Acquire)) {
        State::Closed => true,
        s @ (State::Open { .. } | State::Claiming { .. }) => {
            presence(seg, READER_SLOT, s) == Presence::Gone
        }
        State::Free | State::Corrupt(_) => false,
    }
}

/// Some writer attached once and none may be alive now.
pub(crate) fn writers_gone(seg: &Segment) -> bool {
    if seg.extension().u32(WRITERS_EVER).load(Ordering::Acquire) == 0 {
        return false;
    }
    !(0..WRITER_SLOTS).any(|i| alive(seg, WRITER_SLOTS_AT + i * SLOT_WORDS))
}

/// The slots of the ends on one side of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// The reader's slot.
    Reader,
    /// Every writer slot.
    Writers,
}

impl Side {
    /// Positions of this side's slots in the extension area.
    pub(crate) fn slots(self) -> impl Iterator<Item = usize> {
        let (first, count) = match self {
            Side::Reader => (READER_SLOT, 1),
            Side::Writers => (WRITER_SLOTS_AT, WRITER_SLOTS),
        };
        (0..count).map(move |i| first + i * SLOT_WORDS)
    }
}

/// Who holds a slot, as far as watching it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Free or closed: no one to watch.
    Nobody,
    /// Open by the process recorded as `pid` with `start`.
    Process {
        /// The holder's pid.
        pid: u32,
        /// Its start time (see [`shm_ring::process`]).
        start: u64,
    },
    /// Being claimed, in another PID namespace (its pid is not ours to open), or a
    /// value no end writes: cannot be watched.
    Unknown,
}

/// The state word and the recorded pid of a slot: what changes when an end attaches,
/// closes or takes over a dead one's slot.
pub(crate) fn snapshot(seg: &Segment, at: usize) -> (u32, u32) {
    let state = word(seg, at, STATE).load(Ordering::Acquire);
    (state, word(seg, at, PID).load(Ordering::Relaxed))
}

/// Who holds the slot at `at`. A pid is only watchable in the PID namespace that gave
/// it: a holder that recorded another namespace (or none) is `Unknown`.
pub(crate) fn holder(seg: &Segment, at: usize) -> Holder {
    match decode(word(seg, at, STATE).load(Ordering::Acquire)) {
        State::Free | State::Closed => Holder::Nobody,
        State::Open { .. } => {
            let ns = pid_namespace_word(seg, at).load(Ordering::Relaxed);
            if ns == 0 || ns != my_pid_namespace() {
                return Holder::Unknown;
            }
            let (pid, lo, hi) = recorded(seg, at);
            Holder::Process {
                pid,
                start: lo as u64 | (hi as u64) << 32,
            }
        }
        _ => Holder::Unknown,
    }
}

/// What a liveness slot says, for inspection.
///
/// ```
/// use shm_channel::{inspect, ChannelBuilder, EndState, Receiver, Spsc};
/// use shm_idle::Backoff;
/// use shm_notify::Futex;
/// let name = format!("doc-endstate-{}", std::process::id());
/// let _rx: Receiver<Spsc, Futex, Backoff> =
///     ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
/// match inspect(&name)?.reader {
///     EndState::Open { pid, alive } => assert!(alive && pid > 0),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndState {
    /// Never used.
    Free,
    /// Held by process `pid` (a pid of the holder's PID namespace); `alive` says whether
    /// it may still run: its end lock is held (or, in the fallback without one, its pid
    /// runs with the recorded start time). Unknown counts as alive.
    Open {
        /// The holder's pid.
        pid: u32,
        /// Whether that end may still live.
        alive: bool,
    },
    /// Closed by its holder.
    Closed,
    /// Being claimed by process `pid` (a claimer killed half-way leaves this).
    Claiming {
        /// The claimer's pid.
        pid: u32,
        /// Whether that process exists.
        alive: bool,
    },
    /// A value no end writes: the memory is corrupt.
    Corrupt(u32),
}

/// Reads the slot at `at` (the reader's, or writer slot `i`).
pub(crate) fn end_state(seg: &Segment, at: usize) -> EndState {
    let state = decode(word(seg, at, STATE).load(Ordering::Acquire));
    let alive = presence(seg, at, state).may_run();
    match state {
        State::Claiming { pid, .. } => EndState::Claiming { pid, alive },
        State::Free => EndState::Free,
        State::Closed => EndState::Closed,
        State::Open { .. } => EndState::Open {
            pid: recorded(seg, at).0,
            alive,
        },
        State::Corrupt(v) => EndState::Corrupt(v),
    }
}

/// The states of the reader slot and of every writer slot.
pub(crate) fn ends(seg: &Segment) -> (EndState, Vec<EndState>) {
    let writers = (0..WRITER_SLOTS)
        .map(|i| end_state(seg, WRITER_SLOTS_AT + i * SLOT_WORDS))
        .collect();
    (end_state(seg, READER_SLOT), writers)
}
