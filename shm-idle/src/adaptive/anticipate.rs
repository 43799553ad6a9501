//! Waking ahead of a regular long gap: when the latest long waits all ended within a
//! narrow window (a paced writer, bursts on a timer), a park that ends on a timer just
//! before that window, then a spin across it, catches the message without a wake-up.
//!
//! It is planned where the spin it costs (the window's width, plus the spread of the
//! timer's own lateness) is less than what it saves: what a park costs the messages (the
//! same `W · (1 + n / 2)` the spin limit weighs) times the share of recent plans that did
//! meet their message (a timer later than its usual spread leaves the park to the
//! writer's notify, and then the spin bought nothing). A window that ends without its message (the gaps changed, or
//! spinning holds the writer off on one CPU) clears what was learnt and backs off: the
//! next plan waits for a fresh run of regular gaps, after twice as many waits each time.

/// Long waits remembered: a plan needs this many, all within the window.
pub(super) const ARRIVALS: usize = 8;
/// Spin at least this far past the latest arrival seen (ns).
const PAST_LATEST_NS: u64 = 2_000;
/// Wake at least this far before the earliest arrival seen, on top of the timer's
/// lateness (ns).
const GUARD_NS: u64 = 1_000;
/// Timer lateness assumed before the first measurement (the thread's timer slack is
/// lowered for these parks). Optimistic on purpose: a plan is what measures it, and a
/// timer later than assumed only lets the writer's notify end the park, as without one.
const DEFAULT_LATE_NS: u64 = 5_000;
/// Lateness samples are clamped to this (a stopped process is not a late timer).
const MAX_LATE_NS: u64 = 1_000_000;
/// The most waits a run of misses makes it skip.
const MAX_SKIP: u32 = 1_024;

/// A wait's plan: park on a timer until `wake_at`, then spin until `until` (both ns into
/// the wait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) wake_at: u64,
    pub(super) until: u64,
}

/// What it knows of the long gaps and of the timer.
#[derive(Clone, Debug)]
pub(super) struct Anticipator {
    /// When the latest long waits' messages came (ns into each wait), oldest overwritten.
    arrivals: [u64; ARRIVALS],
    len: usize,
    next: usize,
    /// Timer lateness after a timed park: running mean and mean deviation (ns).
    late_mean: u64,
    late_dev: u64,
    /// Lateness samples so far (the first few are averaged evenly, then they fade).
    late_samples: u32,
    /// Waits left to sit out after a miss, and how many the next miss makes it skip.
    skip: u32,
    penalty: u32,
    /// Waits whose message a planned spin met.
    hits: u64,
    /// The share of recent plans that met their message (fading; 1 before any).
    hit_rate: f64,
}

impl Anticipator {
    pub(super) fn new() -> Self {
        Anticipator {
            arrivals: [0; ARRIVALS],
            len: 0,
            next: 0,
            late_mean: DEFAULT_LATE_NS,
            late_dev: DEFAULT_LATE_NS / 2,
            late_samples: 0,
            skip: 0,
            penalty: 1,
            hits: 0,
            hit_rate: 1.0,
        }
    }

    /// A wait that outlasted its spin got its message `at` ns in.
    pub(super) fn arrived(&mut self, at: u64) {
        self.arrivals[self.next] = at;
        self.next = (self.next + 1) % ARRIVALS;
        self.len = (self.len + 1).min(ARRIVALS);
    }

    /// A planned spin caught its message.
    pub(super) fn hit(&mut self) {
        self.hits += 1;
        self.penalty = 1;
        self.outcome(1.0);
    }

    /// A plan's park ended by the writer's notify: its message came before the window,
    /// or before a timer later than usual.
    pub(super) fn beaten(&mut self) {
        self.outcome(0.0);
    }

    fn outcome(&mut self, met: f64) {
        self.hit_rate = (self.hit_rate * 7.0 + met) / 8.0;
    }

    /// A planned spin ended without its message: sit out the next waits, twice as many
    /// as after the previous miss (the late arrival, when it comes, widens the window).
    pub(super) fn missed(&mut self) {
        self.outcome(0.0);
        self.skip = self.penalty;
        self.penalty = (self.penalty * 2).min(MAX_SKIP);
    }

    /// Waits whose message a planned spin met, so far.
    pub(super) fn hits(&self) -> u64 {
        self.hits
    }

    /// How far apart its timers' lateness spreads (ns): no window is narrower, so no
    /// park that costs less can be saved.
    pub(super) fn timer_spread(&self) -> u64 {
        2 * self.late_dev + GUARD_NS
    }

    /// A timed park ran `late` ns past its deadline (or at least that: a notify that
    /// ended the park after the deadline says the timer had not fired yet).
    pub(super) fn timer_late(&mut self, late: u64) {
        let late = late.min(MAX_LATE_NS);
        // The first sample replaces the guess; the next ones average in evenly until
        // eight, then each weighs an eighth: a VM's 100 µs timers are learnt within a
        // few plans, not a few dozen.
        let n = u64::from(self.late_samples.min(7));
        self.late_samples = self.late_samples.saturating_add(1);
        let dev = match n {
            0 => late / 2,
            _ => late.abs_diff(self.late_mean),
        };
        self.late_mean = (self.late_mean * n + late) / (n + 1);
        self.late_dev = (self.late_dev * n + dev) / (n + 1);
    }

    /// The plan for the wait starting now, if one pays: `park_cost` is what a park costs
    /// (ns of latency), `spin_limit` how long this wait spins first anyway.
    pub(super) fn plan(&mut self, park_cost: u64, spin_limit: u64) -> Option<Plan> {
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        if self.len < ARRIVALS {
            return None;
        }
        // The earliest arrival is left out: one straggler of a burst that outlasted
        // the spin would otherwise pull the window back by a whole quiet spell.
        let mut sorted = self.arrivals;
        sorted.sort_unstable();
        let (lo, hi) = (sorted[1], sorted[ARRIVALS - 1]);
        // Eight samples span about 7/9 of the spread: reach a quarter of their range
        // past each end, and before the earliest, the timer's lateness on top.
        let reach = (hi - lo) / 4;
        let timer = self.late_mean + 2 * self.late_dev + GUARD_NS;
        let wake_at = lo.saturating_sub(reach + timer);
        let until = hi + PAST_LATEST_NS.max(reach);
        // The timer fires about `late_mean` after its deadline; the spin lasts from then
        // to the message, at most to `until`.
        let spin = until.saturating_sub(wake_at + self.late_mean);
        let saves = self.hit_rate * park_cost as f64;
        (wake_at > spin_limit && (spin as f64) < saves).then_some(Plan { wake_at, until })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regular() -> Anticipator {
        let mut a = Anticipator::new();
        for k in 0..ARRIVALS as u64 {
            a.arrived(1_000_000 + k * 1_000);
        }
        a
    }

    #[test]
    fn a_plan_wakes_before_the_earliest_and_spins_past_the_latest() {
        let plan = regular().plan(100_000, 0).expect("regular gaps");
        assert!(
            plan.wake_at < 1_001_000 && plan.wake_at > 900_000,
            "{plan:?}"
        );
        assert!(
            plan.until >= 1_007_000 && plan.until < 1_020_000,
            "{plan:?}"
        );
    }

    #[test]
    fn no_plan_where_it_would_cost_more_than_it_saves() {
        assert!(regular().plan(5_000, 0).is_none());
        // Nor before the spin limit ends, nor with too few long waits seen.
        assert!(regular().plan(100_000, 2_000_000).is_none());
        let mut a = Anticipator::new();
        a.arrived(1_000_000);
        assert!(a.plan(100_000, 0).is_none());
    }

    #[test]
    fn plans_the_notify_keeps_beating_stop() {
        let mut a = regular();
        assert!(a.plan(40_000, 0).is_some());
        for _ in 0..16 {
            a.beaten();
        }
        assert!(a.plan(40_000, 0).is_none());
        // A park that costs far more (a burst queued behind it) is still worth a try.
        assert!(a.plan(4_000_000, 0).is_some());
    }

    #[test]
    fn misses_make_it_sit_out_twice_as_many_waits_each_time() {
        let mut a = regular();
        a.missed();
        assert!(a.plan(1_000_000, 0).is_none());
        assert!(a.plan(1_000_000, 0).is_some());
        a.missed();
        a.missed();
        let skipped = (0..10)
            .take_while(|_| a.plan(1_000_000, 0).is_none())
            .count();
        assert_eq!(skipped, 4);
        a.hit();
        a.missed();
        assert!(a.plan(1_000_000, 0).is_none());
        assert!(a.plan(1_000_000, 0).is_some());
    }
}
