//! Spin, then yield, then park with a doubling timeout: Agrona's backoff, except that
//! its park is a notifier park, so a writer's notify ends it early.

use crate::{slack, Action, IdleStrategy, ParksOn};
use shm_notify::Notifier;
use std::time::Duration;

/// After a reset: `max_spins` idle polls spin, the next `max_yields` yield, then every
/// idle poll parks with a timeout that starts at `min_park` and doubles up to `max_park`.
///
/// ```
/// use shm_idle::{Action, Backoff, IdleStrategy};
/// use std::time::Duration;
/// let mut b = Backoff::default(); // 100 spins, 5 yields, 1 µs ..= 50 ms
/// let first: Vec<_> = (0..106).map(|_| b.idle(0)).collect();
/// assert_eq!(first[..100], [Action::Spin; 100]);
/// assert_eq!(first[100..105], [Action::Yield; 5]);
/// assert_eq!(first[105], Action::Park(Some(Duration::from_micros(1))));
/// assert_eq!(b.idle(1), Action::Continue); // work resets the ramp
/// assert_eq!(b.idle(0), Action::Spin);
/// ```
#[derive(Clone, Debug)]
pub struct Backoff {
    max_spins: u32,
    max_yields: u32,
    min_park: Duration,
    max_park: Duration,
    spins: u32,
    yields: u32,
    park: Duration,
}

impl Backoff {
    /// A backoff with these limits. `min_park` is raised to at least 1 ns and `max_park`
    /// to at least `min_park`.
    pub fn new(max_spins: u32, max_yields: u32, min_park: Duration, max_park: Duration) -> Self {
        let min_park = min_park.max(Duration::from_nanos(1));
        let max_park = max_park.max(min_park);
        Backoff {
            max_spins,
            max_yields,
            min_park,
            max_park,
            spins: 0,
            yields: 0,
            park: min_park,
        }
    }

    /// The limits: (max_spins, max_yields, min_park, max_park).
    pub fn limits(&self) -> (u32, u32, Duration, Duration) {
        (
            self.max_spins,
            self.max_yields,
            self.min_park,
            self.max_park,
        )
    }
}

impl Default for Backoff {
    /// 100 spins, 5 yields, parks from 1 µs doubling to 50 ms: what `cargo xtask bench`
    /// measures as `backoff`. Agrona's ramp with two changes. 100 spins, not 10: one of
    /// our spins is a poll and a `pause` (~50 ns), so 10 last ~0.5 µs, shorter than the
    /// 1 µs gaps of a burst, and the reader would fall into `sched_yield` between two
    /// messages (burst p50 0.59 µs against 0.20 µs with 100, measured). Parks of up to
    /// 50 ms, not 1 ms: a notify ends a park at once, so a long cap costs no latency,
    /// only idle wake-ups (a 1 ms cap wakes an idle reader ~1,000 times a second; with
    /// 50 ms it costs 0.2-0.35% of a core in the bench's `idle` row on a 2-vCPU VM).
    fn default() -> Self {
        Backoff::new(100, 5, Duration::from_micros(1), Duration::from_millis(50))
    }
}

impl IdleStrategy for Backoff {
    #[inline]
    fn idle(&mut self, work: usize) -> Action {
        if work > 0 {
            self.reset();
            return Action::Continue;
        }
        if self.spins < self.max_spins {
            self.spins += 1;
            return Action::Spin;
        }
        if self.yields < self.max_yields {
            self.yields += 1;
            return Action::Yield;
        }
        let park = self.park;
        self.park = park.saturating_mul(2).min(self.max_park);
        slack::for_wait(Some(park));
        Action::Park(Some(park))
    }

    fn reset(&mut self) {
        self.spins = 0;
        self.yields = 0;
        self.park = self.min_park;
    }

    fn name(&self) -> &'static str {
        "backoff"
    }
}

impl<N: Notifier + ?Sized> ParksOn<N> for Backoff {}
