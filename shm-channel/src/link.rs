//! What both ends share: the segment, the two notifiers and the liveness settings.

use crate::layout::Direction;
use crate::waiter::{self, WakeNotes};
use crate::ChannelKind;
use shm_notify::Notifier;
use shm_ring::sync::AtomicU32;
use shm_ring::Segment;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Counters of one channel end, for tests and benchmarks.
///
/// ```
/// use shm_channel::{channel, Spsc};
/// use shm_idle::BusySpin;
/// use shm_notify::ThreadNotifier;
/// let (mut tx, mut rx) = channel::<Spsc, ThreadNotifier, _, _>(4096, BusySpin, BusySpin)?;
/// tx.send(b"x")?;
/// rx.recv(|_| ())?;
/// assert_eq!((tx.stats().sent, rx.stats().received), (1, 1));
/// assert_eq!(tx.stats().notifies, 0); // the reader never slept: no system call
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages sent by this end.
    pub sent: u64,
    /// Messages received by this end.
    pub received: u64,
    /// Notify system calls this end made to wake its peer.
    pub notifies: u64,
    /// Times this end went to sleep on its notifier.
    pub parks: u64,
    /// Times this end announced it would sleep but its re-check found work, so it did
    /// not. Its peer may have seen the announcement and notified anyway: each costs the
    /// peer at most one notify.
    pub parks_skipped: u64,
    /// Wake-ups after which there was still nothing to do.
    pub spurious_wakes: u64,
    /// Times this end, a reader right behind a streaming writer, held off ~1 µs before
    /// it polled again (see [`shm_ring::Consumer::caught_up`]).
    pub hold_offs: u64,
}

/// The segment and the notifiers of both directions.
#[derive(Debug)]
pub(crate) struct Link<N> {
    // Field order is drop order: the notifiers (a creator's FIFOs are removed) go
    // before the segment (a creator's name is unlinked), so a segment name that exists
    // always owns whatever FIFOs sit beside it.
    pub(crate) data: Arc<N>,
    pub(crate) space: Arc<N>,
    pub(crate) segment: Segment,
    /// How often a waiting end checks that its peer still lives.
    pub(crate) detect: Duration,
}

impl<N> Link<N> {
    pub(crate) fn word(&self, dir: Direction) -> &AtomicU32 {
        self.segment.extension().u32(dir.waiters())
    }

    /// When and from which CPU `dir` was last notified (see `waiter::wake_up`).
    pub(crate) fn wake_notes(&self, dir: Direction) -> WakeNotes<'_> {
        let ext = self.segment.extension();
        WakeNotes {
            at: ext.u32(dir.notify_stamp()),
            cpu: ext.u32(dir.notify_cpu()),
        }
    }

    /// The notifier of `dir`.
    pub(crate) fn notifier(&self, dir: Direction) -> &N {
        match dir {
            Direction::Data => &self.data,
            Direction::Space => &self.space,
        }
    }
}

impl<N: Notifier> Link<N> {
    /// After a publication: wakes `dir`'s sleeper if one is parked ([`waiter::wake`]).
    #[inline]
    pub(crate) fn wake(&self, dir: Direction) -> io::Result<bool> {
        waiter::wake(self.word(dir), self.wake_notes(dir), self.notifier(dir))
    }

    /// [`Link::wake`] after a ring commit that may have fenced already
    /// ([`waiter::wake_fenced`]).
    #[inline]
    pub(crate) fn wake_fenced<K: ChannelKind>(&self, dir: Direction) -> io::Result<bool> {
        waiter::wake_fenced::<K, _>(self.word(dir), self.wake_notes(dir), self.notifier(dir))
    }
}
