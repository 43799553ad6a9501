//! Liveness: who is attached to a channel, whether they still live, and how a waiting
//! end finds out. The whole story is here; the pieces live in this module's files.
//!
//! **Slots.** Each end holds a slot in the segment's extension area (the reader one,
//! writers one each of [`WRITER_SLOTS`]): `[pid, start-time low, start-time high,
//! state]`. An end claims a free or closed slot, or takes over one whose process died
//! (its pid no longer runs with the recorded start time; a claim in progress carries the
//! claimer's pid, so a claimer killed half-way leaves a slot that can be told dead). A
//! reused pid has another start time, so it never keeps a dead end's slot alive.
//!
//! **Closing and dying.** Dropping an end marks its slot closed and wakes the other side,
//! which learns at once (one load: [`reader_closed`], [`writers_closed`]). A process
//! killed with SIGKILL cannot close: the other side finds it dead by the liveness check
//! ([`reader_gone`], [`writers_gone`]: a `/proc` read per slot), which a waiting end runs
//! four times per detection interval ([`Pacer`]), or at once when it is owed.
//!
//! **Watching instead of polling.** An end that parks on an fd-based notifier puts its
//! peers' pidfds in one epoll fd ([`PeerWatch`], `watch.rs`) and sleeps on it beside the
//! notifier, without a timeout: the kernel wakes it when a peer exits. The watch is only
//! trusted when complete (every live peer's pidfd opened and checked to be the recorded
//! process); otherwise the park is timed at the detection interval. A watched peer's
//! exit, a peer found dead while building the watch, and a wake-up that came to nothing
//! all leave a check *owed*, kept across calls until it has run: no untimed park starts
//! while one is owed.
//!
//! **What the dead leave behind.** An end killed while parked leaves its bit on a waiter
//! word (see [`crate::waiter`]). Whoever takes its slot over withdraws it on its behalf,
//! and a writer's liveness check takes over and closes the slots of dead writers that
//! left bits on the space word, so no phantom sleeper passes wake-ups to no one.

use crate::fork::Born;
use crate::layout::{READER_SLOT, SLOT_WORDS, WRITERS_EVER, WRITER_SLOTS, WRITER_SLOTS_AT};
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

fn claiming(state: u32) -> Option<u32> {
    (state & CLAIMING != 0).then_some(state & !CLAIMING)
}

const PID: usize = 0;
const START_LO: usize = 1;
const START_HI: usize = 2;
const STATE: usize = 3;

/// This process's claim on a slot; closed on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    segment: Segment,
    at: usize,
    /// The process generation that holds it (a forked child never closes it).
    born: Born,
}

/// This process's pid and start time (a /proc read: only when filling a slot).
#[cfg(not(shm_loom))]
fn me() -> (u32, u64) {
    let pid = std::process::id();
    (pid, shm_ring::process::start_time(pid).unwrap_or(0))
}

#[cfg(shm_loom)]
fn me() -> (u32, u64) {
    (0, 0)
}

/// The state word of a slot this process is claiming (no /proc read).
fn my_claim() -> u32 {
    #[cfg(not(shm_loom))]
    let pid = std::process::id();
    #[cfg(shm_loom)]
    let pid = 0;
    CLAIMING | pid
}

fn word(seg: &Segment, at: usize, field: usize) -> &shm_ring::sync::AtomicU32 {
    seg.extension().u32(at + field)
}

/// Whether process `pid` exists (a claim records no start time: it lasts microseconds).
fn pid_exists(pid: u32) -> bool {
    #[cfg(not(shm_loom))]
    {
        shm_ring::process::is_running(pid)
    }
    #[cfg(shm_loom)]
    {
        let _ = pid;
        true
    }
}

fn fill(seg: &Segment, at: usize) {
    let (pid, start) = me();
    word(seg, at, PID).store(pid, Ordering::Relaxed);
    word(seg, at, START_LO).store(start as u32, Ordering::Relaxed);
    word(seg, at, START_HI).store((start >> 32) as u32, Ordering::Relaxed);
    word(seg, at, STATE).store(OPEN, Ordering::Release);
}

/// Whether the process recorded in an OPEN slot still runs.
fn recorded_alive(seg: &Segment, at: usize) -> bool {
    #[cfg(not(shm_loom))]
    {
        let pid = word(seg, at, PID).load(Ordering::Relaxed);
        let start = word(seg, at, START_LO).load(Ordering::Relaxed) as u64
            | (word(seg, at, START_HI).load(Ordering::Relaxed) as u64) << 32;
        pid == 0 || shm_ring::process::is_alive(pid, start)
    }
    #[cfg(shm_loom)]
    {
        let _ = (seg, at);
        true
    }
}

/// Whether a slot belongs to a live end (a live claimer counts).
fn alive(seg: &Segment, at: usize) -> bool {
    let state = word(seg, at, STATE).load(Ordering::Acquire);
    match (state, claiming(state)) {
        (_, Some(pid)) => pid_exists(pid),
        (OPEN, None) => recorded_alive(seg, at),
        _ => false,
    }
}

/// The (pid, start time) recorded in a slot.
fn recorded(seg: &Segment, at: usize) -> (u32, u32, u32) {
    (
        word(seg, at, PID).load(Ordering::Relaxed),
        word(seg, at, START_LO).load(Ordering::Relaxed),
        word(seg, at, START_HI).load(Ordering::Relaxed),
    )
}

/// Takes a slot whose process died: an OPEN one it never closed (killed), or one it was
/// claiming when it was killed. Another process may take the same slot first and refill
/// it; then the recorded identity differs after our CAS, and we hand the slot back
/// (unless its owner closed it since).
fn take_dead(seg: &Segment, at: usize) -> bool {
    let state = word(seg, at, STATE);
    let cur = state.load(Ordering::Acquire);
    let dead = match (cur, claiming(cur)) {
        (_, Some(pid)) => !pid_exists(pid),
        (OPEN, None) => !recorded_alive(seg, at),
        _ => false,
    };
    if !dead {
        return false;
    }
    let identity = recorded(seg, at);
    let mine = my_claim();
    if state
        .compare_exchange(cur, mine, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    if claiming(cur).is_some() || recorded(seg, at) == identity {
        return true;
    }
    let _ = state.compare_exchange(mine, OPEN, Ordering::AcqRel, Ordering::Relaxed);
    false
}

impl Slot {
    /// Claims a writer slot: a free or closed one, else one whose process died.
    pub(crate) fn writer(seg: &Segment) -> Result<Slot, ChannelError> {
        // One slot per lane: a writer writes to the lane of its slot.
        let count = seg.lanes().min(WRITER_SLOTS);
        let slots = || (0..count).map(|i| WRITER_SLOTS_AT + i * SLOT_WORDS);
        let claim = |at: usize| {
            [FREE, CLOSED].iter().any(|&from| {
                word(seg, at, STATE)
                    .compare_exchange(from, my_claim(), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
        };
        let at = slots()
            .find(|&at| claim(at))
            .or_else(|| slots().find(|&at| take_dead(seg, at)))
            .ok_or(ChannelError::TooManyWriters(count))?;
        fill(seg, at);
        seg.extension()
            .u32(WRITERS_EVER)
            .store(1, Ordering::Release);
        Ok(Slot {
            segment: seg.clone(),
            at,
            born: Born::here(),
        })
    }

    /// Claims the slot at `at` for this process alone: a free or closed one, or one whose
    /// process died. `Err` carries the pid of the live end that holds it.
    fn exclusive(seg: &Segment, at: usize) -> Result<Slot, u32> {
        let state = word(seg, at, STATE);
        let cur = state.load(Ordering::Acquire);
        let taken = match cur {
            FREE | CLOSED => state
                .compare_exchange(cur, my_claim(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok(),
            _ => take_dead(seg, at),
        };
        if !taken {
            let now = state.load(Ordering::Acquire);
            return Err(claiming(now).unwrap_or_else(|| word(seg, at, PID).load(Ordering::Relaxed)));
        }
        fill(seg, at);
        Ok(Slot {
            segment: seg.clone(),
            at,
            born: Born::here(),
        })
    }

    /// Claims the one writer slot of an SPSC channel (the first), unless a live writer
    /// holds it (then the error names it); a dead writer's slot is taken over.
    pub(crate) fn sole_writer(seg: &Segment) -> Result<Slot, ChannelError> {
        let slot = Slot::exclusive(seg, WRITER_SLOTS_AT)
            .map_err(|pid| ChannelError::WriterAttached { pid })?;
        seg.extension()
            .u32(WRITERS_EVER)
            .store(1, Ordering::Release);
        Ok(slot)
    }

    /// Claims the reader slot, unless a live reader holds it.
    pub(crate) fn reader(seg: &Segment) -> Result<Slot, ChannelError> {
        Slot::exclusive(seg, READER_SLOT).map_err(|_| ChannelError::ReaderAttached)
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
        let at = WRITER_SLOTS_AT + i * SLOT_WORDS;
        if i >= WRITER_SLOTS {
            return None;
        }
        let state = word(seg, at, STATE);
        let unused = [FREE, CLOSED].iter().any(|&from| {
            state
                .compare_exchange(from, my_claim(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        });
        (unused || take_dead(seg, at)).then(|| Slot {
            segment: seg.clone(),
            at,
            born: Born::here(),
        })
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
    word(seg, READER_SLOT, STATE).load(Ordering::Acquire) == CLOSED
}

/// Every writer that attached has closed its end (cheap: no liveness check).
pub(crate) fn writers_closed(seg: &Segment) -> bool {
    seg.extension().u32(WRITERS_EVER).load(Ordering::Acquire) != 0
        && (0..WRITER_SLOTS).all(|i| {
            matches!(
                word(seg, WRITER_SLOTS_AT + i * SLOT_WORDS, STATE).load(Ordering::Acquire),
                FREE | CLOSED
            )
        })
}

/// The reader attached once and is now gone (closed or dead). `false` before any reader
/// attached: messages wait for it.
pub(crate) fn reader_gone(seg: &Segment) -> bool {
    let state = word(seg, READER_SLOT, STATE).load(Ordering::Acquire);
    state == CLOSED
        || (state == OPEN && !recorded_alive(seg, READER_SLOT))
        || claiming(state).is_some_and(|pid| !pid_exists(pid))
}

/// Some writer attached once and none is alive now.
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
    /// Being claimed, or a value no end writes: cannot be watched.
    Unknown,
}

/// The state word and the recorded pid of a slot: what changes when an end attaches,
/// closes or takes over a dead one's slot.
pub(crate) fn snapshot(seg: &Segment, at: usize) -> (u32, u32) {
    let state = word(seg, at, STATE).load(Ordering::Acquire);
    (state, word(seg, at, PID).load(Ordering::Relaxed))
}

/// Who holds the slot at `at`.
pub(crate) fn holder(seg: &Segment, at: usize) -> Holder {
    match word(seg, at, STATE).load(Ordering::Acquire) {
        FREE | CLOSED => Holder::Nobody,
        OPEN => {
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndState {
    /// Never used.
    Free,
    /// Held by process `pid`; `alive` says whether it still runs (pid and start time).
    Open {
        /// The holder's pid.
        pid: u32,
        /// Whether that process still runs.
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
    let state = word(seg, at, STATE).load(Ordering::Acquire);
    match (state, claiming(state)) {
        (_, Some(pid)) => EndState::Claiming {
            pid,
            alive: pid_exists(pid),
        },
        (FREE, None) => EndState::Free,
        (CLOSED, None) => EndState::Closed,
        (OPEN, None) => EndState::Open {
            pid: recorded(seg, at).0,
            alive: recorded_alive(seg, at),
        },
        (other, None) => EndState::Corrupt(other),
    }
}

/// The states of the reader slot and of every writer slot.
pub(crate) fn ends(seg: &Segment) -> (EndState, Vec<EndState>) {
    let writers = (0..WRITER_SLOTS)
        .map(|i| end_state(seg, WRITER_SLOTS_AT + i * SLOT_WORDS))
        .collect();
    (end_state(seg, READER_SLOT), writers)
}
