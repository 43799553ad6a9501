//! `Adaptive`'s decisions against a hand-moved clock: a simulated channel delivers each
//! message a given gap after the wait starts, and a park costs a given wake-up.

use super::*;
use std::sync::{Arc, Mutex};

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
/// One idle poll of the simulated ring.
const POLL_NS: u64 = 50;

struct Sim {
    a: Adaptive,
    t: Arc<Mutex<u64>>,
    wake: u64,
    /// Spinning holds the writer off (both ends on one CPU): a message comes only a gap
    /// after the reader parks.
    one_cpu: bool,
    /// One CPU under a preempting scheduler: a spin is taken off the CPU (and the writer
    /// runs) after this long on average (ns; 0: never).
    slice: u64,
    /// One CPU, the writer an end like this one: after its notify it spins its own limit
    /// before it lets this end run, and now and then something else holds the CPU. The
    /// lateness reported grows with it.
    mirror: bool,
    /// The channel tells whether a wake-up ran on its waker's CPU.
    cpu_known: bool,
    reports: u64,
    /// How late a timed park's timer fires: `timer_late`, plus up to `timer_jitter`.
    timer_late: u64,
    timer_jitter: u64,
    seed: u64,
    spun: u64,
    parks: u64,
    /// Latency the waits added to their messages (ns).
    late: u64,
    waits: u64,
}

impl Sim {
    fn new(wake: u64, budget: Option<f64>) -> Sim {
        let t = Arc::new(Mutex::new(1_000 * MS));
        Sim {
            a: Adaptive::with_clock(Clock::Fake(t.clone()), budget),
            t,
            wake,
            one_cpu: false,
            slice: 0,
            mirror: false,
            cpu_known: false,
            reports: 0,
            timer_late: 0,
            timer_jitter: 0,
            seed: 1,
            spun: 0,
            parks: 0,
            late: 0,
            waits: 0,
        }
    }

    fn now(&self) -> u64 {
        *self.t.lock().unwrap()
    }

    fn advance(&self, ns: u64) {
        *self.t.lock().unwrap() += ns;
    }

    /// One wait for a message `gap` ns away.
    fn wait(&mut self, gap: u64) {
        self.waits += 1;
        self.a.reset();
        let start = self.now();
        let mut arrives = start + gap;
        let mut parked = false;
        loop {
            match self.a.idle(0) {
                Action::Spin => {
                    self.advance(POLL_NS);
                    self.spun += POLL_NS;
                    if !self.one_cpu && self.now() >= arrives {
                        return;
                    }
                    // Preempted: the writer ran on this CPU meanwhile.
                    if self.one_cpu && self.slice > 0 && self.next_random() % self.slice < POLL_NS {
                        return;
                    }
                }
                Action::Park(timeout) => {
                    if !parked {
                        parked = true;
                        self.parks += 1;
                        if self.one_cpu {
                            arrives = self.now() + gap;
                        }
                    }
                    let notified = self.now().max(arrives) + self.wake;
                    let late = self.timer_late + self.next_random() % self.timer_jitter.max(1);
                    match timeout {
                        // The timer ends the park first: look at the ring again.
                        Some(t) if self.now() + t.as_nanos() as u64 + late <= notified => {
                            self.advance(t.as_nanos() as u64 + late);
                            if self.now() >= arrives {
                                self.late += self.now() - arrives;
                                return;
                            }
                        }
                        _ => {
                            self.late += notified - arrives;
                            *self.t.lock().unwrap() = notified;
                            if self.a.wants_wake_cost() {
                                let wake = self.report();
                                self.a.woken(wake);
                            }
                            return;
                        }
                    }
                }
                other => panic!("unexpected action {other:?}"),
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        self.seed >> 33
    }

    /// What the channel reports of a wake-up.
    fn report(&mut self) -> WakeUp {
        self.reports += 1;
        let mut late = self.wake;
        if self.mirror {
            late += self.a.limit_ns + if self.reports % 50 == 0 { 150 * US } else { 0 };
        }
        WakeUp {
            late: Some(Duration::from_nanos(late)),
            beside_waker: self.cpu_known.then_some(self.one_cpu),
        }
    }

    fn waits(&mut self, n: usize, gap: u64) {
        (0..n).for_each(|_| self.wait(gap));
    }

    /// `n` waits of `gap` ns, every `every`-th one `stall` ns instead.
    fn stalls(&mut self, n: usize, every: usize, stall: u64, gap: u64) {
        for i in 1..=n {
            self.wait(if i % every == 0 { stall } else { gap });
        }
    }

    /// A simulated VM: timers fire as late as a wake-up costs.
    fn vm(wake: u64) -> Sim {
        let mut s = Sim::new(wake, None);
        s.timer_late = wake;
        s
    }

    /// Counters from here on.
    fn restart_counts(&mut self) {
        (self.spun, self.parks, self.late, self.waits) = (0, 0, 0, 0);
    }

    fn limit(&self) -> u64 {
        self.a.spin_limit().as_nanos() as u64
    }
}

#[test]
fn steady_fast_traffic_spins_through_every_gap() {
    let mut s = Sim::new(20 * US, None);
    s.waits(2_000, US);
    s.restart_counts();
    s.waits(1_000, US);
    assert_eq!(s.parks, 0, "limit {} ns", s.limit());
    assert!((US..=4 * US).contains(&s.limit()), "limit {} ns", s.limit());
}

/// Gaps spread evenly over `lo..hi` ns (a fixed sequence).
fn spread(lo: u64, hi: u64) -> impl FnMut() -> u64 {
    let mut x = 12_345u64;
    move || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        lo + (x >> 33) % (hi - lo)
    }
}

#[test]
fn steady_slow_traffic_parks_at_once() {
    // Gaps of 0.5 to 2 ms: too spread to wake ahead of (see the tests below for gaps
    // that are not).
    let mut s = Sim::new(20 * US, None);
    let mut gap = spread(MS / 2, 2 * MS);
    (0..2_000).for_each(|_| s.wait(gap()));
    assert_eq!(s.limit(), 0);
    s.restart_counts();
    (0..1_000).for_each(|_| s.wait(gap()));
    // Only the exploring waits spin (the whole W, one wait in 256 by now).
    assert!(
        s.spun / s.waits < US,
        "{} ns spun per wait",
        s.spun / s.waits
    );
    assert_eq!(s.parks, 1_000);
}

#[test]
fn bursts_spin_inside_a_burst_and_park_between() {
    let mut s = Sim::new(20 * US, None);
    let burst = |s: &mut Sim| {
        s.waits(99, US);
        s.wait(10 * MS);
    };
    (0..20).for_each(|_| burst(&mut s));
    s.restart_counts();
    (0..10).for_each(|_| burst(&mut s));
    assert!((US..=4 * US).contains(&s.limit()), "limit {} ns", s.limit());
    // Once per burst (the quiet spell), and now and then an exploring wait.
    assert!(s.parks <= 12, "{} parks in 10 bursts", s.parks);
    // The spin before each quiet spell's park is bounded by the limit.
    assert!(s.spun < 10 * (99 * 2 * US + 20 * US), "{} ns spun", s.spun);
}

#[test]
fn a_sudden_change_of_rate_is_learnt() {
    let mut s = Sim::new(20 * US, None);
    s.waits(2_000, US);
    assert!(s.limit() >= US);
    // Fast to slow: spinning is at once no longer than the old gaps, and stops once
    // the long gaps take over the curve.
    s.waits(1, MS);
    assert!(s.limit() <= 2 * US, "limit {} ns", s.limit());
    s.waits(1_000, MS);
    assert_eq!(s.limit(), 0, "still spinning after 1,000 slow waits");
    // Slow to fast: exploring waits find the messages and the limit comes back.
    s.waits(1_000, US);
    s.restart_counts();
    s.waits(1_000, US);
    assert!(s.limit() >= US, "limit {} ns", s.limit());
    assert!(s.parks <= 2, "{} parks", s.parks);
}

#[test]
fn spinning_that_holds_the_writer_off_is_dropped() {
    // One CPU: whatever it spins, the message comes only after it parks.
    let mut s = Sim::new(3 * US, None);
    s.one_cpu = true;
    s.waits(2_000, 2 * US);
    assert_eq!(s.limit(), 0);
    s.restart_counts();
    s.waits(1_000, 2 * US);
    // `blocking` adds W to every message; exploring spins add little on top.
    let blocking = s.waits * s.wake;
    assert!(
        s.late <= blocking + blocking / 20,
        "{} ns late against {blocking}",
        s.late
    );
}

#[test]
fn a_peer_on_its_cpu_is_never_spun_for() {
    // One CPU, two ends like this one, a scheduler that preempts spins: a spin meets a
    // message only when preempted, and the lateness each end measures is the other's
    // spin. Taken for a wake-up's cost, it feeds on itself.
    let one_cpu = |cpu_known| {
        let mut s = Sim::new(2 * US, None);
        (s.one_cpu, s.slice, s.mirror, s.cpu_known) = (true, 20 * US, true, cpu_known);
        s.waits(5_000, 2 * US);
        s.restart_counts();
        s.waits(2_000, 2 * US);
        s
    };
    let s = one_cpu(true);
    assert_eq!(s.limit(), 0);
    assert_eq!(s.spun, 0, "{} ns spun in {} waits", s.spun, s.waits);
    assert_eq!(s.parks, s.waits);
    // The model is the bench's one-CPU runaway (limits of 0.1-0.7 ms seen there): where
    // the channel cannot tell the CPU, the two ends spin ever longer. Were it not, the
    // check above would prove nothing.
    let s = one_cpu(false);
    assert!(
        s.spun / s.waits > US,
        "{} ns spun per wait",
        s.spun / s.waits
    );
}

#[test]
fn a_peer_that_leaves_its_cpu_is_spun_for_again() {
    let mut s = Sim::new(20 * US, None);
    (s.one_cpu, s.cpu_known) = (true, true);
    s.waits(1_000, 2 * US);
    assert_eq!(s.parks, s.waits);
    // The scheduler moves one end to another CPU: fast traffic is spun through again.
    s.one_cpu = false;
    s.waits(2_000, US);
    s.restart_counts();
    s.waits(1_000, US);
    assert!(s.limit() >= US, "limit {} ns", s.limit());
    assert!(s.parks <= 2, "{} parks", s.parks);
}

#[test]
fn spins_no_longer_than_a_wake_up_costs() {
    // Gaps of 50 µs and wake-ups of 5 µs: parking at once is cheaper.
    let mut s = Sim::new(5 * US, None);
    s.waits(2_000, 50 * US);
    assert_eq!(s.limit(), 0);
    // Gaps of 5 µs and wake-ups of 50 µs: spin through them.
    let mut s = Sim::new(50 * US, None);
    s.waits(2_000, 5 * US);
    assert!(
        (5 * US..=16 * US).contains(&s.limit()),
        "limit {} ns",
        s.limit()
    );
}

#[test]
fn a_cpu_budget_caps_the_spinning() {
    // Spinning through 100 µs gaps would pay against 500 µs wake-ups, but 5% of a core
    // buys only ~5 µs of each gap.
    let mut s = Sim::new(500 * US, Some(0.05));
    s.waits(2_000, 100 * US);
    let start = s.now();
    s.restart_counts();
    s.waits(2_000, 100 * US);
    let share = s.spun as f64 / (s.now() - start) as f64;
    assert!(share <= 0.055, "spun {:.1}% of the time", share * 100.0);
    // Without the budget it spins through them.
    let mut s = Sim::new(500 * US, None);
    s.waits(2_000, 100 * US);
    s.restart_counts();
    s.waits(1_000, 100 * US);
    assert_eq!(s.parks, 0);
}

#[test]
fn wake_up_samples_are_clamped() {
    let mut a = Adaptive::new();
    for _ in 0..100 {
        a.woken(late(Some(Duration::from_secs(3_600)))); // a hostile or broken timestamp
    }
    assert!(a.wake_cost() <= Duration::from_nanos(WAKE_RANGE_NS.1));
    assert!(a.wake_cost() >= Duration::from_nanos(WAKE_RANGE_NS.1 - 100));
    for _ in 0..100 {
        a.woken(late(Some(Duration::ZERO)));
    }
    assert!(a.wake_cost() <= Duration::from_nanos(WAKE_RANGE_NS.0 + 100));
    let before = a.wake_cost();
    a.woken(late(None));
    assert_eq!(a.wake_cost(), before);
}

fn late(late: Option<Duration>) -> WakeUp {
    WakeUp {
        late,
        beside_waker: None,
    }
}

#[test]
fn a_message_found_at_once_costs_no_clock_read() {
    let t = Arc::new(Mutex::new(0));
    let mut a = Adaptive::with_clock(Clock::Fake(t.clone()), None);
    // Waits that never idle leave nothing to learn and never start the clock.
    for _ in 0..10 {
        a.reset();
    }
    assert_eq!((a.waits, a.samples), (0, 0));
    assert_eq!(a.idle(3), Action::Continue);
}

#[test]
fn with_budget_clamps_its_fraction() {
    assert_eq!(Adaptive::with_budget(2.0).budget(), Some(1.0));
    assert_eq!(Adaptive::with_budget(-1.0).budget(), Some(0.0));
    assert_eq!(Adaptive::with_budget(f64::NAN).budget(), Some(0.0));
    assert_eq!(Adaptive::new().budget(), None);
}

#[test]
fn jittery_bursts_are_covered_not_cut_off() {
    // Bursts whose gaps spread over 0.6 to 1.8 µs (a paced writer's jitter), 10 ms apart,
    // against 25 µs wake-ups: the limit must cover nearly every gap inside a burst, not
    // stop at the bucket that holds most of them.
    let mut s = Sim::new(25 * US, None);
    let mut x = 12_345u64;
    let mut gap = move || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        600 + (x >> 33) % 1_200
    };
    let mut bursts = |s: &mut Sim, n: usize| {
        for _ in 0..n {
            (0..99).for_each(|_| s.wait(gap()));
            s.wait(10 * MS);
        }
    };
    bursts(&mut s, 30);
    s.restart_counts();
    bursts(&mut s, 20);
    // One park per quiet spell, and a few inside the bursts.
    assert!(
        s.parks <= 20 + 40,
        "{} parks in 20 bursts, limit {} ns",
        s.parks,
        s.limit()
    );
    assert!(s.limit() <= 4 * US, "limit {} ns", s.limit());
}

#[test]
fn after_a_spin_it_parks_on_a_ramp_then_untimed() {
    // Fast traffic taught it to spin; then a quiet spell.
    let mut s = Sim::new(20 * US, None);
    s.waits(2_000, US);
    let limit = s.limit();
    assert!(limit > 0);
    s.a.reset();
    let first = loop {
        match s.a.idle(0) {
            Action::Spin => s.advance(POLL_NS),
            other => break other,
        }
    };
    let mut parks = vec![first];
    for _ in 0..30 {
        parks.push(s.a.idle(0)); // each timed park ended with nothing there
    }
    let ramp: Vec<u64> = parks
        .iter()
        .map_while(|p| match p {
            Action::Park(Some(d)) => Some(d.as_nanos() as u64),
            _ => None,
        })
        .collect();
    // From the limit as that first park left it (a park at the limit may move it a
    // bucket up: see `choose`).
    assert!(s.limit() >= limit);
    assert_eq!(ramp[0], s.limit().max(RAMP_FIRST_NS), "{ramp:?}");
    assert!(ramp.windows(2).all(|w| w[1] == 2 * w[0]), "{ramp:?}");
    assert!(*ramp.last().unwrap() <= RAMP_LAST_NS);
    assert!(ramp.len() < 20, "{} timed parks", ramp.len());
    assert!(parks[ramp.len()..].iter().all(|p| *p == Action::Park(None)));
}

#[test]
fn where_parking_at_once_pays_the_park_is_untimed() {
    let mut s = Sim::new(20 * US, None);
    let mut gap = spread(MS / 2, 2 * MS);
    (0..2_000).for_each(|_| s.wait(gap()));
    assert_eq!(s.limit(), 0);
    // The next wait that does not explore parks at once, untimed.
    while (s.a.waits + 1) % s.a.explore_every == 0 {
        s.wait(gap());
    }
    s.a.reset();
    assert_eq!(s.a.idle(0), Action::Park(None));
}

#[test]
fn rare_longer_gaps_are_spun_through_when_a_park_costs_more() {
    // 1 µs gaps, one in 100 a 6 µs gap (a jittery writer); a wake-up costs 30 µs and
    // delays the messages queued behind it. Parking on the rare gap is the p99 of a
    // spinning reader: the limit must climb past 6 µs, not stop at the 1 µs bucket.
    let mut s = Sim::new(30 * US, None);
    s.stalls(4_000, 100, 6 * US, US);
    s.restart_counts();
    s.stalls(4_000, 100, 6 * US, US);
    assert!(s.limit() >= 6 * US, "limit {} ns", s.limit());
    assert!(s.parks <= 8, "{} parks in 40 long gaps", s.parks);
}

#[test]
fn regular_long_gaps_are_met_awake_by_a_timer_and_a_short_spin() {
    // A paced writer, 1 ms apart, against 40 µs wake-ups and a timer 10 µs late: park on
    // a timer that ends just before the next message, spin the rest.
    let mut s = Sim::new(40 * US, None);
    s.timer_late = 10 * US;
    let mut gap = spread(MS - 2 * US, MS + 2 * US);
    (0..200).for_each(|_| s.wait(gap()));
    s.restart_counts();
    (0..1_000).for_each(|_| s.wait(gap()));
    // Nearly every message is met awake (the exploring waits spin W and park on).
    assert!(s.late < 1_000 * 2 * US, "{} ns late in all", s.late);
    // Each wait spins far less than a wake-up costs, and parks (on the timer).
    assert!(
        s.spun / 1_000 < 20 * US,
        "{} ns spun per wait",
        s.spun / 1_000
    );
    assert!(s.parks >= 990, "{} parks", s.parks);
}

#[test]
fn bursts_on_a_timer_are_met_awake() {
    // Bursts of 1 µs gaps every 10 ms (± 50 µs): the quiet spell's wait wakes ahead of
    // the next burst, so its first message does not pay a wake-up and queue the rest.
    let mut s = Sim::new(40 * US, None);
    s.timer_late = 5 * US;
    let mut spell = spread(10 * MS - 50 * US, 10 * MS + 50 * US);
    let mut bursts = |s: &mut Sim, n: usize| {
        for _ in 0..n {
            s.waits(99, US);
            s.wait(spell());
        }
    };
    bursts(&mut s, 30);
    s.restart_counts();
    bursts(&mut s, 20);
    // Against 800 µs for a wake-up per quiet spell: a spell now and then whose message
    // comes before the window (the earliest seen is left out of it) pays part of one.
    assert!(s.late < 200 * US, "{} ns late in 20 bursts", s.late);
    // The window (~100 µs of spread and the timer's) per quiet spell, plus the bursts.
    assert!(
        s.spun < 20 * (250 * US + 99 * 2 * US),
        "{} ns spun in 20 bursts",
        s.spun
    );
}

#[test]
fn a_window_that_misses_is_dropped_then_relearnt() {
    let mut s = Sim::new(40 * US, None);
    s.waits(200, MS);
    // The writer slows down: the first wait spins its window and misses, parks, and the
    // plan is dropped until the new gaps are regular again.
    s.restart_counts();
    s.waits(1, 3 * MS);
    assert!(
        s.late >= 40 * US,
        "the missed message paid the wake-up: {} ns",
        s.late
    );
    assert!(s.spun < 10 * US, "{} ns spun on the missed window", s.spun);
    s.waits(50, 3 * MS);
    s.restart_counts();
    s.waits(100, 3 * MS);
    assert!(s.late < 100 * 2 * US, "{} ns late in 100 waits", s.late);
}

#[test]
fn on_one_cpu_waking_ahead_backs_off() {
    // Spinning holds the writer off: every window misses. Each miss doubles the waits
    // sat out, so the windows fade and the latency stays that of `blocking`.
    let mut s = Sim::new(20 * US, None);
    s.one_cpu = true;
    s.waits(2_000, MS);
    s.restart_counts();
    s.waits(2_000, MS);
    let blocking = s.waits * s.wake;
    assert!(
        s.late <= blocking + blocking / 20,
        "{} ns late against {blocking}",
        s.late
    );
    assert!(
        s.spun / s.waits < US,
        "{} ns spun per wait",
        s.spun / s.waits
    );
}

#[test]
fn no_waking_ahead_where_a_park_costs_less_than_the_timer_is_imprecise() {
    // One CPU: a wake-up is a context switch (2 µs) and the timer's lateness spreads over
    // 20 µs. Once it has seen that, regular gaps are parked on untimed, and their ends
    // are not even dated (the clock reads would add to every round trip).
    let mut s = Sim::new(2 * US, None);
    s.one_cpu = true;
    (s.timer_late, s.timer_jitter) = (10 * US, 20 * US);
    s.waits(2_000, MS);
    let before = s.a.woke_ahead();
    s.waits(1_000, MS);
    assert_eq!(s.a.woke_ahead(), before);
    while (s.a.waits + 1) % s.a.explore_every == 0 {
        s.wait(MS);
    }
    s.a.reset();
    assert_eq!(s.a.idle(0), Action::Park(None));
    assert!(!s.a.wait.dated, "park {} ns", s.a.park_ns);
    // The same gaps and timer against a 40 µs wake-up across CPUs: it wakes ahead.
    let mut s = Sim::new(40 * US, None);
    (s.timer_late, s.timer_jitter) = (10 * US, 20 * US);
    s.waits(500, MS);
    assert!(s.a.woke_ahead() > 300, "woke ahead of {}", s.a.woke_ahead());
}

#[test]
fn a_burst_that_queues_whole_behind_a_wake_up_is_priced_by_its_queue() {
    // A 100 µs wake-up outlasts each burst: the reader waits once per 10 ms spell, and a
    // poll then drains the 99 messages that queued. The gaps show only the spells, so a
    // park looks like it costs one wake-up, less than the window's spin; the drained
    // count shows it costs a hundred.
    let run = |report_drained: bool| {
        let mut s = Sim::new(100 * US, None);
        (s.timer_late, s.timer_jitter) = (20 * US, 40 * US);
        let mut spell = spread(10 * MS - 100 * US, 10 * MS + 100 * US);
        for _ in 0..60 {
            s.wait(spell());
            if report_drained {
                s.a.delivered(99);
            }
        }
        s.a.woke_ahead()
    };
    assert_eq!(run(false), 0);
    assert!(run(true) > 30, "woke ahead of {} of 60 spells", run(true));
}

#[test]
fn stalls_longer_than_a_wake_up_are_spun_through_when_the_queue_costs_more() {
    // 5 µs gaps, one wait in 50 a 60 µs stall of the writer (a preempted vCPU); a
    // wake-up costs up to 40 µs and delays the messages that queue behind it (some
    // eight), so a park costs several wake-ups: spinning through the stall is cheaper
    // than parking on it, though it outlasts a wake-up. Timers fire as late as a
    // wake-up (a VM), so the ramp of timed parks does not hide the stall.
    let mut s = Sim::vm(40 * US);
    s.stalls(4_000, 50, 60 * US, 5 * US);
    s.restart_counts();
    s.stalls(4_000, 50, 60 * US, 5 * US);
    assert!(s.limit() >= 60 * US, "limit {} ns", s.limit());
    assert!(s.parks <= 8, "{} parks in 80 stalls", s.parks);
    // Stalls of 2 ms cost more to spin through than a park: they are parked on, and the
    // limit stays below the park's price.
    let mut s = Sim::vm(40 * US);
    s.stalls(4_000, 50, 2 * MS, 5 * US);
    s.restart_counts();
    s.stalls(4_000, 50, 2 * MS, 5 * US);
    assert!(s.limit() < 300 * US, "limit {} ns", s.limit());
    assert!(s.parks >= 70, "{} parks in 80 stalls", s.parks);
    assert!(s.spun < 4_000 * 10 * US, "spun {} ns", s.spun);
}

#[test]
fn rare_stalls_are_remembered_past_the_fading_window() {
    // 100k msgs/s with one wait in 700 a little late (15 µs, the writer's timer
    // jittered); a wake-up costs 30 µs and delays the three messages behind it. The
    // late waits are rarer than the curve's fading window is long: what the parks on
    // them taught must outlast the fade, or each is parked on anew (a p99 in waiting).
    let mut s = Sim::vm(30 * US);
    s.stalls(20_000, 700, 15 * US, 9 * US);
    s.restart_counts();
    s.stalls(21_000, 700, 15 * US, 9 * US);
    assert!(s.limit() >= 15 * US, "limit {} ns", s.limit());
    assert!(s.parks <= 6, "{} parks in 30 late waits", s.parks);
}
