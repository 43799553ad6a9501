//! [`Adaptive`]: spin while spinning pays, park when it does not, with nothing to tune.

mod anticipate;

use crate::{Action, IdleStrategy, ParksOn, WakeUp};
use anticipate::{Anticipator, Plan};
use shm_notify::Notifier;
use std::time::{Duration, Instant};

/// Time buckets: each ends √2 times later than the one before, from 128 ns to ~3 ms (a
/// limit can sit 41% above a steady gap, not 100%).
const BUCKETS: usize = 30;
const EDGES_NS: [u64; BUCKETS] = {
    let mut edges = [0; BUCKETS];
    let mut k = 0;
    while k < BUCKETS {
        // 181 / 128 ≈ √2.
        edges[k] = if k % 2 == 0 { 128 } else { 181 } << (k / 2);
        k += 1;
    }
    edges
};
/// While spinning into an unexplored bucket pays, at least this share of waits parks at
/// the limit: try the next bucket up (see `Adaptive::choose`).
const OPTIMISM: f64 = 0.05;
/// While spinning, the clock is read once every this many polls (a read costs about as
/// much as a poll; reading it every poll would slow the reaction to a message).
const CHECK_EVERY: u32 = 8;
/// The wake-up cost assumed before the first measurement.
const DEFAULT_WAKE_NS: u64 = 20_000;
/// Wake-up measurements are clamped into this range: below it a park costs its system
/// calls anyway; above it the sample is noise or a hostile peer's timestamp.
const WAKE_RANGE_NS: (u64, u64) = (1_000, 1_000_000);
/// Waits that all explore (spin as long as a park costs) before the curve is trusted.
const WARMUP: u32 = 16;
/// Exploring waits: one in `EXPLORE.0` while exploration finds messages past the limit,
/// doubling to one in `EXPLORE.1` while it does not.
const EXPLORE: (u32, u32) = (16, 256);
/// A bucket is trusted while what reached it has not faded below this: one wait, halved
/// six times over (some 1,500 waits ago at most). The counts fade every 256 waits, and
/// fading keeps each bucket's share of waits that ended there; a gap as rare as one wait
/// in a thousand (a writer's jitter at 100k msgs/s) would otherwise be forgotten before
/// it comes again, and parked on each time.
const MIN_AT_RISK: f32 = 1.0 / 64.0;
/// Ordinary waits (a message met spinning) re-weigh the limit one in this many.
const CHOOSE_EVERY: u32 = 8;
/// The counts halve when this many waits reached the first bucket: old waits fade.
const FADE_AT: f32 = 256.0;
/// The ramp of timed parks after a spin (see `Adaptive::next_park`): the first at least
/// this long, none longer than `RAMP_LAST_NS`.
const RAMP_FIRST_NS: u64 = 1_000;
const RAMP_LAST_NS: u64 = 50_000_000;
/// Wake-ups measured after the warm-up: one in this many.
const WAKE_SAMPLE_EVERY: u32 = 4;
/// While more than this share of its reported wake-ups ran on the waker's CPU, it takes
/// its peer to share its CPU, and spins not at all.
const BESIDE_SHARE: f32 = 0.5;
/// The most spin time the CPU budget saves up over a quiet spell.
const CREDIT_CAP_NS: f64 = 1_000_000.0;
/// A planned timed park that ends this much before its deadline (a wake-up that found
/// nothing) parks again for the rest.
const GUARD_EARLY_NS: u64 = 2_000;

/// Spin while spinning pays, park when it does not, with nothing to tune.
///
/// Each wait is a bet. Spinning costs CPU for as long as the gap lasts; parking costs a
/// wake-up (the latency between the writer's notify and this end running again) but no
/// CPU. Spinning for as long as a wake-up costs, then parking, is never worse than twice
/// the better of the two for any gap (the ski-rental bound); knowing the gaps does better.
/// [`Adaptive`] measures both sides of the bet as traffic flows:
///
/// - the wake-up cost `W`: after each park a notify ended, the channel tells the strategy
///   how late it ran after the waker's notify ([`IdleStrategy::woken`]);
/// - the gaps: how long each wait spun before the message came; for a wait that spun
///   its whole limit and parked, when its message came (dated by the notify's lateness,
///   or bounded by the ramp's timer that found it), or only that it was longer.
///
/// From the waits it keeps a survival curve over time buckets √2 apart (Kaplan-Meier:
/// the share of waits still empty after spinning `t`, which counts waits cut short by
/// parking correctly) and picks the spin limit that minimises the expected spin time
/// plus the cost of a park times the chance of parking anyway. A park costs `W` for the
/// message that ends it and about `W / 2` for each message that queues behind it while
/// the reader wakes (read off the same curve). Spin time and message latency weigh the
/// same: that is the one choice made for the user, and [`Adaptive::with_budget`] is
/// there when CPU must weigh more. Limits past a park's cost never pay: parking at once
/// would be cheaper whatever the gap. Where messages come faster than a wake-up, that
/// cost is several `W` (the queue), so a writer's stall a little longer than a wake-up
/// is spun through rather than parked on. Every few waits one spins as long as a park
/// costs, so the curve stays known above the chosen limit (more often while that moves the limit up, as rarely as
/// one wait in 256 while it does not). Old waits fade (the counts halve every few hundred
/// waits), so a change of rate is learnt within a few hundred waits. After a spin that
/// pays, the park is a short ramp of timed parks, then untimed (see `next_park`); where
/// parking at once pays, it is untimed from the start.
///
/// **Waking ahead.** A spin limit helps only the gaps shorter than a wake-up. When the
/// long gaps are regular (a writer paced by a timer, bursts every few milliseconds), it
/// also remembers when the latest eight long waits' messages came, and when they all fall
/// in a narrow window it parks on a timer that ends just before that window (early by the
/// timer's own measured lateness), then spins across it: the message is met awake, and
/// the messages behind it do not queue while the reader wakes. It does so only where the
/// spin across the window costs less than it saves (the park's cost, as the limit weighs
/// it, times the share of recent plans that met their message), so where timers are
/// late and imprecise (a VM's halted vCPU) paced traffic soon parks as before while
/// bursts, whose wake-up delays a whole queue, are met. A
/// window that passes without its message makes it sit out the next long waits (twice
/// as many after each miss in a row), so it stops where spinning holds the writer off.
/// [`Adaptive::woke_ahead`] counts the waits it met this way. A park's price counts the
/// messages that queue behind the wake-up, and when a wake-up outlasts a whole burst no
/// short gap is ever waited for to show them: so waking ahead also counts what each
/// wake-up left queued, as a channel's `poll` reports it through
/// [`IdleStrategy::delivered`] (the spin limit stays with the gaps alone: on one CPU a
/// queue is the peer's work done while this end ran, no reason to spin). A reader that
/// drains with single receives leaves that unseen.
///
/// What it learns follows the machine: with both ends on one CPU, spinning only delays
/// the peer that would write. The channel notes the CPU each notify came from, and
/// while most wake-ups it measured ran on their waker's CPU it neither spins nor explores
/// nor wakes ahead (the `blocking` behaviour). Weighing the spin there, it took the
/// lateness such a wake-up shows (the waker's own spin before it let go of the CPU) for
/// a wake-up's cost, and now and then the two ends spun longer in turn, each delaying
/// the other, their spins meeting messages only because the scheduler preempted them
/// (limits of 0.2-0.7 ms on one CPU at the end of three bench runs in ten). Where the CPU is not
/// known, the curve alone keeps the limit near zero there. An optional CPU budget
/// ([`Adaptive::with_budget`]) caps the share of a core spent spinning, windows included.
///
/// Its state is per end (about 230 bytes, a boxed 240-byte curve and a boxed 128-byte
/// record of the long gaps).
///
/// ```
/// use shm_idle::{Action, Adaptive, IdleStrategy, WakeUp};
/// use std::time::Duration;
/// let mut a = Adaptive::new();
/// assert_eq!(a.name(), "adaptive");
/// assert_eq!(a.idle(0), Action::Spin); // before it knows better: spin up to `W`
/// a.woken(WakeUp { late: Some(Duration::from_micros(8)), beside_waker: Some(false) });
/// assert!(a.wake_cost() < Duration::from_micros(20));
/// assert_eq!(a.woke_ahead(), 0); // no long gaps seen yet
/// let capped = Adaptive::with_budget(0.05); // spin at most 5% of a core
/// assert_eq!(capped.budget(), Some(0.05));
/// ```
#[derive(Clone, Debug)]
pub struct Adaptive {
    clock: Clock,
    budget: Option<f64>,
    /// Wake-up cost estimate `W` (ns).
    wake_ns: u64,
    /// The chosen spin limit (ns).
    limit_ns: u64,
    /// Nanoseconds per idle poll, calibrated from the clock reads while spinning.
    poll_ns: u64,
    /// The survival curve's counts (boxed: they are most of the strategy's size).
    curve: Box<Curve>,
    samples: u32,
    waits: u32,
    wakes: u32,
    /// The wake-up being reported was asked for only to date a message (`woken` then
    /// leaves `W` alone: it is sampled one wake-up in `WAKE_SAMPLE_EVERY`).
    gap_only: bool,
    explore_every: u32,
    /// Spin time the CPU budget allows now (ns), and when it was last topped up.
    credit: f64,
    topped_up: u64,
    /// What a park costs the messages (ns), as the latest choice of limit weighed it.
    park_ns: u64,
    /// Messages handed over without a wait since the latest notified wake-up (`None`
    /// once a wait idled again), and their running mean per wake-up: the queue a
    /// wake-up leaves, which the gaps alone do not show when a reader drains it by
    /// polling.
    drained: Option<u32>,
    queued: f64,
    /// The long gaps, for waking ahead of a regular one (see `anticipate`).
    ahead: Box<Anticipator>,
    /// The fading share of reported wake-ups that ran on the CPU their waker notified
    /// from.
    beside: f32,
    wait: Wait,
}

/// Per bucket: waits still empty at its start, and waits whose message came in it.
#[derive(Clone, Debug)]
struct Curve {
    at_risk: [f32; BUCKETS],
    ended: [f32; BUCKETS],
}

/// The wait in progress.
#[derive(Clone, Copy, Debug, Default)]
struct Wait {
    /// Idle polls so far (0: no idle poll yet, nothing measured).
    polls: u32,
    start: u64,
    /// This wait's spin limit (ns).
    limit: u64,
    exploring: bool,
    parked: bool,
    /// Spin time and polls at the last clock read.
    spun: u64,
    polls_at_read: u32,
    /// The next timed park of the ramp after the spin (ns; 0: park untimed).
    ramp: u64,
    /// A wait that parked after spinning this long, not learnt yet: when a notify ends
    /// the park, the message's arrival is known (`woken`); when the ramp's timer ends
    /// it and the message is there, it came before that timer (`reset`); else the wait
    /// counts as cut short here.
    pending: Option<u64>,
    /// The latest timed park of the ramp: when it began (ns into the wait), and for how
    /// long. Each later call found the ring still empty.
    timed: Option<(u64, u64)>,
    /// Waking ahead of the message (see `anticipate`).
    ahead: Ahead,
    /// `start` was read for waking ahead: a long wait's end can be dated.
    dated: bool,
}

/// Where a wait that wakes ahead of its message stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Ahead {
    /// No plan (or its window passed without the message): spin to the limit, then the
    /// ramp or an untimed park.
    #[default]
    Off,
    /// Spinning to the limit; then park until the plan's `wake_at`.
    Planned(Plan),
    /// In the timed park.
    Parked(Plan),
    /// Spinning across the window, to `until` at most.
    Spinning(Plan),
}

impl Adaptive {
    /// A strategy with no CPU cap.
    pub fn new() -> Self {
        Self::with_clock(Clock::monotonic(), None)
    }

    /// A strategy that spins at most `fraction` of a core (0.0 ..= 1.0; out-of-range
    /// values are clamped, NaN means 0): spin time is granted at that rate of wall time,
    /// saved up to 1 ms, and a wait whose grant is spent parks at once.
    pub fn with_budget(fraction: f64) -> Self {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        Self::with_clock(Clock::monotonic(), Some(fraction))
    }

    fn with_clock(clock: Clock, budget: Option<f64>) -> Self {
        let now = clock.now();
        Adaptive {
            clock,
            budget,
            wake_ns: DEFAULT_WAKE_NS,
            // No ramp before the curve says spinning pays (the warm-up explores anyway).
            limit_ns: 0,
            poll_ns: 50,
            curve: Box::new(Curve {
                at_risk: [0.0; BUCKETS],
                ended: [0.0; BUCKETS],
            }),
            samples: 0,
            waits: 0,
            wakes: 0,
            gap_only: false,
            explore_every: EXPLORE.0,
            credit: 0.0,
            topped_up: now,
            park_ns: DEFAULT_WAKE_NS,
            drained: None,
            queued: 0.0,
            ahead: Box::new(Anticipator::new()),
            beside: 0.0,
            wait: Wait::default(),
        }
    }

    /// The CPU budget, if any.
    pub fn budget(&self) -> Option<f64> {
        self.budget
    }

    /// The spin limit it settled on: how long a wait spins before it parks (zero while
    /// its peer seems to share its CPU).
    pub fn spin_limit(&self) -> Duration {
        match self.beside_peer() {
            true => Duration::ZERO,
            false => Duration::from_nanos(self.limit_ns),
        }
    }

    /// Its estimate of a wake-up's cost on this channel and machine.
    pub fn wake_cost(&self) -> Duration {
        Duration::from_nanos(self.wake_ns)
    }

    /// Whether waking ahead could pay: not where a park costs less than the timer's
    /// lateness spreads (one CPU, where a wake-up is a context switch).
    fn ahead_may_pay(&self) -> bool {
        self.park_cost_ahead() > self.ahead.timer_spread()
    }

    /// How many waits so far it woke ahead of, on a timer, and met their message
    /// spinning (see "Waking ahead" on [`Adaptive`]).
    pub fn woke_ahead(&self) -> u64 {
        self.ahead.hits()
    }

    /// Whether its peer seems to share its CPU: most wake-ups it measured ran on the CPU
    /// their waker notified from. There a spin only holds off the peer that would end
    /// it (a message met spinning came because the scheduler took this end off the
    /// CPU), and the lateness measured includes the waker's own spin: were it weighed as
    /// `W`, both ends would spin longer, and each make the other later, in turn.
    fn beside_peer(&self) -> bool {
        self.beside > BESIDE_SHARE
    }

    /// The first idle poll of a wait: pick this wait's limit and plan, and start the
    /// clock.
    fn begin(&mut self) {
        self.waits = self.waits.wrapping_add(1);
        self.end_drain();
        let beside = self.beside_peer();
        let exploring = !beside && (self.samples < WARMUP || self.waits % self.explore_every == 0);
        let mut limit = match (beside, exploring) {
            (true, _) => 0,
            (false, true) => self.explore_ns(),
            (false, false) => self.limit_ns,
        };
        // Read even for a wait that parks at once while waking ahead may pay: its
        // message's arrival, dated from here, is what it learns from. Not where a park
        // costs less than a timer is imprecise (one CPU): there every read adds to the
        // round trip, and no timer could beat the notify.
        let ahead = !beside && self.ahead_may_pay();
        let now = if limit > 0 || self.budget.is_some() || ahead {
            self.clock.now()
        } else {
            0
        };
        if let Some(fraction) = self.budget {
            let earned = now.saturating_sub(self.topped_up) as f64 * fraction;
            self.credit = (self.credit + earned).min(CREDIT_CAP_NS);
            self.topped_up = now;
            limit = limit.min(self.credit.max(0.0) as u64);
        }
        // An exploring wait too: it spins its whole reach, then the plan takes over.
        let plan = match ahead {
            true => self.ahead.plan(self.park_cost_ahead(), limit),
            false => None,
        };
        // Within the CPU budget: the whole window, on top of the spin to the limit.
        let plan = plan.filter(|p| {
            self.budget.is_none() || (p.until - p.wake_at + limit) as f64 <= self.credit
        });
        self.wait = Wait {
            polls: 0,
            start: now,
            limit,
            exploring,
            parked: false,
            spun: 0,
            polls_at_read: 0,
            ramp: 0,
            pending: None,
            timed: None,
            ahead: plan.map_or(Ahead::Off, Ahead::Planned),
            dated: ahead,
        };
    }

    /// Ends the spinning of this wait at `spun` ns: parks.
    fn park(&mut self, spun: u64) -> Action {
        self.wait.parked = true;
        if self.wait.limit > 0 {
            self.credit -= spun as f64;
            self.wait.pending = Some(spun);
        }
        if let Ahead::Planned(plan) = self.wait.ahead {
            let rest = plan.wake_at.saturating_sub(spun);
            if rest < GUARD_EARLY_NS {
                return self.spin_across(plan);
            }
            self.wait.ahead = Ahead::Parked(plan);
            // The deadline is the plan: no slack on top of it.
            crate::slack::fine_timer_slack();
            return Action::Park(Some(Duration::from_nanos(rest)));
        }
        // Not after an exploring spin where parking at once pays, nor beside the peer: on
        // one CPU each timer wake-up would take the peer's time.
        if self.limit_ns > 0 && !self.beside_peer() {
            self.wait.ramp = self.limit_ns.max(RAMP_FIRST_NS);
        }
        self.next_park()
    }

    /// The park after the spin: while spinning pays (a limit above zero), a ramp of
    /// timed parks, each twice the one before, from the limit (at least 1 µs) to 50 ms,
    /// then untimed. Where a wake-up from deep idle is slow (a VM's halted vCPU), a
    /// timer that has just woken the reader can meet the first message after a short
    /// quiet spell sooner than the writer's notify would (on a 2-vCPU VM: bursts 10 ms
    /// apart, p50 0.4-0.6 µs in some runs and 8-34 µs in others, against 2-99 µs with an
    /// untimed park; regular spells are now met by waking ahead, see [`Adaptive`]). It
    /// costs ~16 wake-ups per quiet spell, none once the spell passes 0.1 s; where
    /// parking at once pays (slow traffic, one CPU) the park is untimed from the start.
    fn next_park(&mut self) -> Action {
        let ramp = self.wait.ramp;
        if ramp == 0 || ramp > RAMP_LAST_NS {
            return Action::Park(None);
        }
        self.wait.ramp = ramp * 2;
        if self.wait.pending.is_some() {
            let at = self.clock.now().saturating_sub(self.wait.start);
            self.wait.timed = Some((at, ramp));
        }
        crate::slack::for_wait(Some(Duration::from_nanos(ramp)));
        Action::Park(Some(Duration::from_nanos(ramp)))
    }

    /// Learns from a wait that lasted `spun` ns: the message `came` then, or it was cut
    /// short there (it parked and its message's arrival is not known).
    fn learn(&mut self, spun: u64, came: bool) {
        for k in 0..BUCKETS {
            let (start, end) = bucket(k);
            if came {
                if spun <= start && k > 0 {
                    break;
                }
                self.curve.at_risk[k] += 1.0;
                if spun <= end {
                    self.curve.ended[k] += 1.0;
                    break;
                }
            } else {
                // Counted only where it spun through the whole bucket.
                if spun < end {
                    break;
                }
                self.curve.at_risk[k] += 1.0;
            }
        }
        if self.curve.at_risk[0] >= FADE_AT {
            self.curve.at_risk.iter_mut().for_each(|n| *n /= 2.0);
            self.curve.ended.iter_mut().for_each(|n| *n /= 2.0);
        }
        self.samples = self.samples.saturating_add(1);
        // One ordinary wait moves the curve by a few parts in 256 and weighing it costs
        // 0.05-0.2 µs (on the reader's path between messages): weigh every few waits,
        // and at once after the waits that teach most (warm-up, exploring, cut short).
        let routine = came && !self.wait.exploring && self.samples > WARMUP;
        if routine && self.samples % CHOOSE_EVERY != 0 {
            return;
        }
        let before = self.limit_ns;
        (self.limit_ns, self.park_ns) = self.choose();
        if self.wait.exploring && self.samples > WARMUP {
            // Explore more often only while exploring moves the limit up: a message now
            // and then inside an exploring spin (on one CPU, when the scheduler lets the
            // writer in) that leaves the limit where it was is no reason to spin more.
            self.explore_every = if came && self.limit_ns > before {
                EXPLORE.0
            } else {
                (self.explore_every * 2).min(EXPLORE.1)
            };
        }
    }

    /// The spin limit with the least expected cost: spin time plus the cost of a park
    /// times the chance of parking anyway. Only buckets enough waits reached count,
    /// none past the park's cost (spinning longer than a park costs never pays). When
    /// the best limit is the last bucket with data and still a share of waits parks
    /// there, it reaches one bucket further: the waits then measure that bucket (they
    /// would only ever be cut off at the limit otherwise), and the next choice keeps it
    /// or drops it on its merits.
    ///
    /// A park costs `W` for the message that ends it, and about `W / 2` more for each
    /// message that arrives while the reader wakes up (they queue behind the first):
    /// `W · (1 + n / 2)`, where `n`, the messages expected within `W`, comes from the
    /// same curve (the share of gaps shorter than `W` over the mean of `min(gap, W)`).
    /// Inside a burst of 1 µs gaps a 30 µs wake-up delays some thirty messages, not one;
    /// between messages a millisecond apart it delays one. So where messages come faster
    /// than a wake-up, a stall of the writer longer than `W` but shorter than that price
    /// is spun through: parking on it would delay the whole queue behind the wake-up.
    /// Returns the limit and the cost of a park it weighed (ns).
    fn choose(&self) -> (u64, u64) {
        let wake = self.wake_ns as f64;
        // The curve where it is known: each bucket's end, the share of waits still empty
        // there, and the expected spin time up to it.
        let mut curve = [(0u64, 1.0f64, 0.0f64); BUCKETS];
        let mut known = 0;
        let (mut still_empty, mut spin) = (1.0f64, 0.0f64);
        for (k, point) in curve.iter_mut().enumerate() {
            if self.curve.at_risk[k] < MIN_AT_RISK {
                break;
            }
            let (start, end) = bucket(k);
            let hazard = f64::from(self.curve.ended[k] / self.curve.at_risk[k]);
            let next = still_empty * (1.0 - hazard);
            spin += (still_empty + next) / 2.0 * (end - start) as f64;
            still_empty = next;
            *point = (end, still_empty, spin);
            known = k + 1;
        }
        // The messages a wake-up delays, from the curve up to `W` (past its known part,
        // assume no more arrivals before `W`).
        let within = curve[..known].partition_point(|p| p.0 <= self.wake_ns);
        let (reach, empty_at_w, spin_to_w) = match within {
            0 => (0, 1.0, 0.0),
            k => curve[k - 1],
        };
        let mean_min_gap = spin_to_w + empty_at_w * (self.wake_ns - reach) as f64;
        let queued = if mean_min_gap > 0.0 {
            wake * (1.0 - empty_at_w) / mean_min_gap
        } else {
            0.0
        };
        let park = wake * (1.0 + queued / 2.0);
        // The limits worth weighing: known, and no dearer than the park itself.
        let worth = curve[..known].partition_point(|p| p.0 as f64 <= park);
        let (mut best_cost, mut best) = (park, 0);
        for &(end, still_empty, spin) in &curve[..worth] {
            let cost = spin + still_empty * park;
            if cost < best_cost {
                (best_cost, best) = (cost, end);
            }
        }
        // Data ran out before the park's price: reach one bucket further while a share
        // of waits still parks at the last known one.
        let optimistic = worth == known
            && known < BUCKETS
            && bucket(known).1 as f64 <= park
            && still_empty > OPTIMISM;
        if optimistic && known > 0 && best == curve[known - 1].0 {
            best = bucket(known).1;
        }
        (best, park as u64)
    }

    /// How long an exploring wait spins: as long as a park costs (the longest limit
    /// `choose` weighs), within the curve's last bucket.
    fn explore_ns(&self) -> u64 {
        self.park_ns.max(self.wake_ns).min(EDGES_NS[BUCKETS - 1])
    }

    /// The timed park of a plan ended (its timer, or a wake-up that found nothing): spin
    /// across the window, or park again if woken well before it.
    fn timer_ended(&mut self, plan: Plan) -> Action {
        let now = self.clock.now().saturating_sub(self.wait.start);
        if now + GUARD_EARLY_NS < plan.wake_at {
            return Action::Park(Some(Duration::from_nanos(plan.wake_at - now)));
        }
        self.ahead.timer_late(now.saturating_sub(plan.wake_at));
        self.spin_across(plan)
    }

    /// The queue behind the latest wake-up has been handed over (a wait idles again):
    /// fold its length into the running mean.
    fn end_drain(&mut self) {
        if let Some(n) = self.drained.take() {
            self.queued = (self.queued * 7.0 + f64::from(n)) / 8.0;
        }
    }

    /// What a park costs the messages, for waking ahead: the limit's price, or one
    /// wake-up for each message seen queued behind a wake-up, whichever is more (a
    /// burst that queues whole behind one wake-up is never waited for, so the gaps do
    /// not show it). The limit itself is left to the gaps: on one CPU a queue is the
    /// peer's work done while this end ran, not a reason to spin.
    fn park_cost_ahead(&self) -> u64 {
        let queue = self.wake_ns as f64 * (1.0 + self.queued / 2.0);
        self.park_ns.max(queue as u64)
    }

    /// Starts the spin across the plan's window.
    fn spin_across(&mut self, plan: Plan) -> Action {
        self.wait.ahead = Ahead::Spinning(plan);
        self.wait.polls = 1;
        Action::Spin
    }

    /// One poll of the window's spin: past `until`, the plan missed; park untimed.
    fn spin_ahead(&mut self, plan: Plan) -> Action {
        self.wait.polls += 1;
        if self.wait.polls % CHECK_EVERY == 0 {
            let now = self.clock.now().saturating_sub(self.wait.start);
            if now >= plan.until {
                self.credit -= (now - plan.wake_at) as f64;
                self.ahead.missed();
                // Parked untimed from here, as a wait without a plan after its ramp.
                self.wait.ahead = Ahead::Off;
                return Action::Park(None);
            }
        }
        Action::Spin
    }
}

/// Start and end (ns) of bucket `k`; the first starts at 0.
fn bucket(k: usize) -> (u64, u64) {
    (if k == 0 { 0 } else { EDGES_NS[k - 1] }, EDGES_NS[k])
}

impl Default for Adaptive {
    fn default() -> Self {
        Self::new()
    }
}

impl IdleStrategy for Adaptive {
    #[inline]
    fn idle(&mut self, work: usize) -> Action {
        if work > 0 {
            self.reset();
            return Action::Continue;
        }
        if self.wait.parked {
            return match self.wait.ahead {
                Ahead::Parked(plan) => self.timer_ended(plan),
                Ahead::Spinning(plan) => self.spin_ahead(plan),
                _ => self.next_park(),
            };
        }
        if self.wait.polls == 0 {
            self.begin();
            if self.wait.limit == 0 {
                self.wait.polls = 1;
                return self.park(0);
            }
        }
        self.wait.polls += 1;
        if self.wait.polls % CHECK_EVERY == 0 {
            let spun = self.clock.now().saturating_sub(self.wait.start);
            (self.wait.spun, self.wait.polls_at_read) = (spun, self.wait.polls);
            if spun >= self.wait.limit {
                return self.park(spun);
            }
        }
        Action::Spin
    }

    /// Called as a wait starts: a previous wait that spun and did not park ended because
    /// its message came; learn its gap (no clock read here: a wait that finds a message
    /// at once costs nothing).
    fn reset(&mut self) {
        let w = self.wait;
        if let Ahead::Spinning(plan) | Ahead::Parked(plan) = w.ahead {
            // Found in the window's spin (or just as the timed park ended): it came
            // about now.
            let at = self.clock.now().saturating_sub(w.start);
            self.credit -= at.saturating_sub(plan.wake_at) as f64;
            self.ahead.arrived(at);
            if matches!(w.ahead, Ahead::Spinning(_)) {
                self.ahead.hit();
            }
            // As `woken` learns a parked wait's gap.
            if let Some(spun) = w.pending {
                self.learn(at.max(spun), at > spun);
            }
            self.wait = Wait::default();
            return;
        }
        if w.polls > 0 && !w.parked {
            if w.polls_at_read > 0 {
                let per_poll = w.spun / u64::from(w.polls_at_read);
                self.poll_ns = (self.poll_ns * 7 + per_poll.max(1)) / 8;
            }
            let spun = w.spun + u64::from(w.polls - w.polls_at_read) * self.poll_ns;
            self.credit -= spun as f64;
            self.learn(spun, true);
        } else if let Some(spun) = w.pending {
            match w.timed {
                // Found after the latest timer: it came before that timer ran out (the
                // ramp doubles, so this overstates the gap by less than 2x).
                Some((at, timeout)) if at + timeout > spun => self.learn(at + timeout, true),
                _ => self.learn(spun, false),
            }
        }
        self.wait = Wait::default();
    }

    fn name(&self) -> &'static str {
        "adaptive"
    }

    /// Counts messages drained after a wake-up (see [`IdleStrategy::delivered`]).
    fn delivered(&mut self, n: usize) {
        if let Some(d) = self.drained.as_mut() {
            *d = d.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        }
    }

    /// One wake-up in `WAKE_SAMPLE_EVERY` (each of the first `WARMUP`; a quarter as many
    /// beside the peer) teaches `W`. The others
    /// are measured only where the lateness dates a message: the gap of a wait that
    /// spun, or the end of a long wait while waking ahead may pay. A measurement is two
    /// clock reads, which on one CPU add to every round trip.
    fn wants_wake_cost(&mut self) -> bool {
        self.wakes = self.wakes.wrapping_add(1);
        // Beside the peer `W` decides nothing: sample only to notice the peer leave.
        let every = match self.beside_peer() {
            true => WAKE_SAMPLE_EVERY * 4,
            false => WAKE_SAMPLE_EVERY,
        };
        let sample = self.wakes <= WARMUP || self.wakes % every == 0;
        self.gap_only = !sample;
        sample || self.wait.pending.is_some() || self.wait.dated
    }

    /// Learns the wake-up cost (the limit follows with the next wait that spins), and
    /// when the woken wait had spun, its gap: the notify came with the message, `late`
    /// before now. Without that a park only says "longer than the limit", and gaps past
    /// the limit would be seen by the rare exploring waits alone: a jittery writer's
    /// occasional long gap would then be parked on for ever (a spinning reader's p99).
    ///
    /// Whether it ran on its waker's CPU teaches whether the peer shares this CPU (see
    /// `beside_peer`): while most did, it spins not at all, and `W` decides nothing.
    fn woken(&mut self, wake: WakeUp) {
        self.end_drain();
        self.drained = Some(0);
        let gap_only = std::mem::take(&mut self.gap_only);
        if let Some(beside) = wake.beside_waker {
            self.beside = (self.beside * 7.0 + f32::from(u8::from(beside))) / 8.0;
        }
        let Some(late) = wake.late else { return };
        let late = late.as_nanos().min(u128::from(u64::MAX)) as u64;
        let dated = self.wait.polls > 0 && self.wait.dated;
        // When the message came, for the waits that learn from it (a clock read: on one
        // CPU each adds to the round trip).
        let arrived = match dated || self.wait.pending.is_some() {
            true => self
                .clock
                .now()
                .saturating_sub(self.wait.start)
                .saturating_sub(late),
            false => 0,
        };
        if dated {
            // The wait outlasted its spin. A gap well past a wake-up is what waking
            // ahead is for (a planned window it arrived before or after teaches the
            // next plan); a short one (a burst's straggler) is the spin limit's.
            if arrived > 2 * self.wake_ns {
                self.ahead.arrived(arrived);
            }
            if let Ahead::Parked(plan) = self.wait.ahead {
                self.ahead.beaten();
                // Notified past the deadline: the timer was at least that late.
                if arrived > plan.wake_at {
                    self.ahead.timer_late(arrived - plan.wake_at);
                }
            }
            self.wait.ahead = Ahead::Off;
        }
        if let Some(spun) = self.wait.pending.take() {
            // A notify for a message published before the park began is the waker's
            // timing, not a gap: count the wait as cut short, as without a notify.
            self.learn(arrived.max(spun), arrived > spun);
        }
        if !gap_only {
            let sample = late.clamp(WAKE_RANGE_NS.0, WAKE_RANGE_NS.1);
            self.wake_ns = (self.wake_ns * 7 + sample) / 8;
        }
    }
}

impl<N: Notifier + ?Sized> ParksOn<N> for Adaptive {}

/// Where time comes from: the monotonic clock, or a test's hand-moved one.
#[derive(Clone, Debug)]
enum Clock {
    Monotonic(Instant),
    #[cfg(test)]
    Fake(std::sync::Arc<std::sync::Mutex<u64>>),
}

impl Clock {
    fn monotonic() -> Self {
        Clock::Monotonic(Instant::now())
    }

    #[inline]
    fn now(&self) -> u64 {
        match self {
            Clock::Monotonic(epoch) => epoch.elapsed().as_nanos() as u64,
            #[cfg(test)]
            Clock::Fake(t) => *t.lock().unwrap(),
        }
    }
}

#[cfg(test)]
mod tests;
