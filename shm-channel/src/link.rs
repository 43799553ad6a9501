//! What both ends share: the segment, the two notifiers and the liveness rules.

use crate::layout::Direction;
use shm_idle::Action;
use shm_ring::sync::AtomicU32;
use shm_ring::Segment;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters of one channel end, for tests and benchmarks.
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
    /// Wake-ups after which there was still nothing to do.
    pub spurious_wakes: u64,
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
    /// How long an MPSC reader waits behind a claim that is never committed before it
    /// takes the claim's producer for dead and skips the claim.
    pub(crate) unblock_after: Duration,
}

impl<N> Link<N> {
    pub(crate) fn word(&self, dir: Direction) -> &AtomicU32 {
        self.segment.extension().u32(dir.waiters())
    }
}

/// Carries out the actions that need no channel (spin, yield, sleep).
pub(crate) fn simple_action(action: Action, deadline: Option<Instant>) {
    match action {
        Action::Continue | Action::Park(_) => {}
        #[cfg(shm_loom)]
        Action::Spin | Action::Yield | Action::Sleep(_) => loom::thread::yield_now(),
        #[cfg(not(shm_loom))]
        Action::Spin => std::hint::spin_loop(),
        #[cfg(not(shm_loom))]
        Action::Yield => std::thread::yield_now(),
        #[cfg(not(shm_loom))]
        Action::Sleep(d) => {
            let left = deadline.map_or(d, |t| t.saturating_duration_since(Instant::now()));
            std::thread::sleep(d.min(left))
        }
    }
}

/// The shortest of a park timeout, the time left to a deadline, and the liveness interval
/// (`None` when the peers are watched and need no periodic check).
pub(crate) fn cap(
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    detect: Option<Duration>,
) -> Option<Duration> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    [timeout, left, detect].into_iter().flatten().min()
}

/// Paces liveness checks while an end waits: four per detection interval, the clock
/// read after every park or sleep and every 256 spins or yields. Constructing one costs
/// nothing (the clock is first read when the end actually idles), so the send and
/// receive paths can make one on every call.
#[derive(Debug)]
pub(crate) struct Pacer {
    idles: u32,
    last: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new() -> Self {
        Pacer {
            idles: 0,
            last: None,
        }
    }

    /// Whether to run the (system-call-making) liveness check now.
    pub(crate) fn due(&mut self, action: Action, detect: Duration) -> bool {
        self.idles = self.idles.wrapping_add(1);
        let blocking = matches!(action, Action::Park(_) | Action::Sleep(_));
        if blocking || self.idles % 256 == 0 {
            let now = Instant::now();
            let last = *self.last.get_or_insert(now);
            if now.duration_since(last) >= detect / 4 {
                self.last = Some(now);
                return true;
            }
        }
        false
    }
}
