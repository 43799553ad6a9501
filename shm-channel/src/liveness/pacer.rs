//! Pacing of liveness checks: each is a system call per occupied slot, so a waiting end
//! runs them a few times per detection interval, not on every idle turn.

use shm_idle::Action;
use std::time::{Duration, Instant};

/// Paces liveness checks while an end waits: four per detection interval, the clock
/// read after every park or sleep and every 16 spins or yields (or empty polls).
/// Constructing one costs nothing (the clock is first read when the end actually idles).
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
        if blocking || self.idles % 16 == 0 {
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
