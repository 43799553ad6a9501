//! What shm-channel keeps in the segment's extension area: one 128-byte line per item,
//! so waiters and the notifier state of the two directions do not share cache lines.

/// 32-bit words per 128-byte line.
const LINE: usize = 32;

/// The waiter word of the reader (sleeps when the ring is empty).
pub(crate) const DATA_WAITERS: usize = 0;
/// The waiter word of the writers (sleep when the ring is full).
pub(crate) const SPACE_WAITERS: usize = LINE;
/// Beside each waiter word: when a waker last notified that direction (the low 32 bits
/// of CLOCK_MONOTONIC in ns), so the woken end can tell how late it ran.
const NOTIFY_STAMP: usize = 1;
/// Beside the stamp: the CPU the waker notified from, plus one (0: unknown), so the woken
/// end can tell that it shares that CPU with its waker.
const NOTIFY_CPU: usize = 2;
/// Futex words of the two directions.
pub(crate) const DATA_FUTEX: usize = 2 * LINE;
pub(crate) const SPACE_FUTEX: usize = 3 * LINE;
/// Byte offsets of the two `sem_t`s (one line each; a sem_t is 32 bytes).
pub(crate) const DATA_SEM_BYTES: usize = 4 * 128;
pub(crate) const SPACE_SEM_BYTES: usize = 5 * 128;
/// The reader's liveness slot.
pub(crate) const READER_SLOT: usize = 6 * LINE;
/// Writer liveness slots: `WRITER_SLOTS` slots of `SLOT_WORDS` words, two lines.
pub(crate) const WRITER_SLOTS_AT: usize = 7 * LINE;
pub(crate) const WRITER_SLOTS: usize = 16;
pub(crate) const SLOT_WORDS: usize = 4;
/// Set once any writer has attached (so "no live writer" means "all gone").
pub(crate) const WRITERS_EVER: usize = 9 * LINE;
/// The PID namespace (inode, 0 if unknown) of each slot's holder, by slot index (reader
/// 0, writer `i` at `1 + i`): a recorded pid is only meaningful in its own namespace.
pub(crate) const PIDNS_AT: usize = 10 * LINE;

/// Which way a wake-up goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Writers wake the reader: data arrived.
    Data,
    /// The reader wakes writers: space was freed.
    Space,
}

impl Direction {
    pub(crate) fn waiters(self) -> usize {
        match self {
            Direction::Data => DATA_WAITERS,
            Direction::Space => SPACE_WAITERS,
        }
    }

    pub(crate) fn notify_stamp(self) -> usize {
        self.waiters() + NOTIFY_STAMP
    }

    pub(crate) fn notify_cpu(self) -> usize {
        self.waiters() + NOTIFY_CPU
    }

    /// A short name for paths and logs.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Data => "data",
            Direction::Space => "space",
        }
    }
}

const _: () = assert!(
    PIDNS_AT + 1 + WRITER_SLOTS <= 11 * LINE
        && 11 * LINE <= 2048 / 4
        && WRITER_SLOTS * SLOT_WORDS <= 2 * LINE
);
