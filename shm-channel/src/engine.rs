//! The wait engine: the one loop by which any end waits for the ring.
//!
//! A blocking call (`Sender::send*`, `Receiver::recv*`, the async ends, `duplex`) is an
//! [`Op`] (what to try and what "done" means) run by the end's [`Engine`] (how to wait),
//! one step at a time:
//!
//! 1. **try** the ring: [`Op::attempt`] writes or reads, and applies the end-of-stream
//!    rule (the reader's `settle`), so "done" includes `Disconnected`;
//! 2. **ask** the idle strategy what to do after an empty attempt;
//! 3. **check** the peers when a check is due (paced: four per liveness interval) or owed
//!    (a watched peer exited, a wake-up came to nothing): [`Op::check`];
//! 4. **spin, yield or sleep** as told (a reader right behind a streaming writer holds
//!    off between polls, see [`HOLD_OFF`]), or **park** through [`crate::waiter`]:
//!    announce, fence, re-check (attempt again), block (on the notifier, and on the
//!    peers' pidfds when the whole side is watched, see [`crate::liveness`]), withdraw;
//! 5. **count** it (parks, spurious wake-ups, hold-offs) and go round again.
//!
//! The blocking ends run [`Engine::wait`]; the async ends run [`Engine::step`] and block
//! in their reactor instead, the only part that differs. A run of spurious wake-ups
//! (nothing to do after a notify, which a stale or corrupt waiter word can cause) owes a
//! liveness check and then backs off with short sleeps, so no shared-memory value can
//! make an end spin. Deadlines saturate: a timeout too large for the clock means none.
//! The engine adds no memory ordering of its own: the announce/re-check and
//! publish/wake orderings are the waiter protocol's (see `waiter.rs`).

use crate::layout::Direction;
use crate::link::{Link, Stats};

use crate::liveness::{Pacer, PeerWatch};
use crate::waiter::{self, Parked, Sleeper};
use shm_idle::{Action, ParksOn};
use shm_notify::{Notifier, Wait};
use std::io;
use std::time::{Duration, Instant};

/// What a blocking call tries, and what ends it.
pub(crate) trait Op {
    /// What the call returns when done.
    type Out;
    /// Its error type.
    type Error: From<io::Error>;

    /// Tries the ring once: `Some` ends the call (sent, received, or disconnected).
    fn attempt(&mut self) -> Option<Result<Self::Out, Self::Error>>;

    /// The liveness check, when due: `Some` ends the call (the peers are gone).
    fn check(&mut self) -> Option<Result<Self::Out, Self::Error>>;

    /// Whether the op needs a liveness check before it may park (the end of a stream
    /// was seen with messages left to deliver).
    fn owes_check(&self) -> bool {
        false
    }

    /// Whether the last attempt found the ring empty right behind a streaming writer
    /// (see `shm_ring::Consumer::caught_up`): a spin then holds off first.
    fn caught_up(&self) -> bool {
        false
    }

    /// The error of a call whose deadline passed.
    fn timed_out() -> Self::Error;
}

/// One wait step's outcome.
pub(crate) enum Step<T> {
    /// The call is over.
    Done(T),
    /// Try again (after a spin, yield, sleep or liveness check).
    Again,
    /// Park: announce, re-check, block with this plan, withdraw.
    Park(Plan),
}

/// How to block in a park.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// The longest the block may last (`None`: until notified or a watched peer exits).
    pub(crate) timeout: Option<Duration>,
    /// Block on the peers' pidfds too ([`PeerWatch::fd`]).
    pub(crate) watching: bool,
    /// The liveness interval: the cap when the waiter word looks suspect.
    detect: Duration,
}

impl Plan {
    /// The timeout to block with, given whether the announcement found the word suspect.
    pub(crate) fn timeout(&self, suspect: bool) -> Option<Duration> {
        match suspect {
            true => Some(self.timeout.map_or(self.detect, |t| t.min(self.detect))),
            false => self.timeout,
        }
    }
}

/// The waiting state of one end, kept across calls: who it is on the waiter word, the
/// pacing of liveness checks, the peer watch, and the run of spurious wake-ups.
#[derive(Debug)]
pub(crate) struct Engine {
    dir: Direction,
    pub(crate) who: Sleeper,
    pacer: Pacer,
    pub(crate) watch: PeerWatch,
    /// The last park ended by a notification (an empty attempt after it is spurious).
    woken: bool,
    /// Consecutive spurious wake-ups.
    spurious: u32,
    /// Hold-offs in this spell of empty attempts (at most [`HOLD_OFFS`]).
    held_off: u8,
    /// Parks, skipped parks, spurious wake-ups and hold-offs so far (the end's [`Stats`]
    /// report them).
    parks: u64,
    parks_skipped: u64,
    spurious_wakes: u64,
    hold_offs: u64,
}

impl Engine {
    /// The engine of an end that waits on `dir` as `who`, watching `watch`'s side.
    pub(crate) fn new(dir: Direction, who: Sleeper, watch: PeerWatch) -> Self {
        Engine {
            dir,
            who,
            pacer: Pacer::new(),
            watch,
            woken: false,
            spurious: 0,
            held_off: 0,
            parks: 0,
            parks_skipped: 0,
            spurious_wakes: 0,
            hold_offs: 0,
        }
    }

    /// The direction this end waits on.
    #[cfg(all(feature = "tokio", not(shm_loom)))]
    pub(crate) fn dir(&self) -> Direction {
        self.dir
    }

    /// `stats` with this engine's counts of parks, spurious wake-ups and hold-offs.
    pub(crate) fn stats(&self, stats: Stats) -> Stats {
        Stats {
            parks: self.parks,
            parks_skipped: self.parks_skipped,
            spurious_wakes: self.spurious_wakes,
            hold_offs: self.hold_offs,
            ..stats
        }
    }

    /// Runs `op` until it is done or `deadline` passes (see the module docs).
    // Always inlined, its first try with it: most calls end there (a send with space, a
    // receive with a message waiting), and the call and result copies of an out-of-line
    // loop cost such a call more than the try itself (callgrind, `examples/path_cost.rs`).
    #[inline(always)]
    pub(crate) fn wait<O: Op, N: Notifier, I: ParksOn<N>>(
        &mut self,
        link: &Link<N>,
        idle: &mut I,
        op: &mut O,
        deadline: Option<Instant>,
    ) -> Result<O::Out, O::Error> {
        idle.reset();
        self.woken = false;
        match self.attempt(op) {
            Some(out) => out,
            None => self.wait_after_empty(link, idle, op, deadline),
        }
    }

    /// The rest of [`Engine::wait`], after an attempt found nothing to do.
    fn wait_after_empty<O: Op, N: Notifier, I: ParksOn<N>>(
        &mut self,
        link: &Link<N>,
        idle: &mut I,
        op: &mut O,
        deadline: Option<Instant>,
    ) -> Result<O::Out, O::Error> {
        let notifier = link.notifier(self.dir);
        loop {
            let watches = idle.watches(notifier);
            let plan = match self.after_empty(link, op, deadline, watches, |_| idle.idle(0)) {
                Step::Done(out) => return out,
                Step::Again => None,
                Step::Park(plan) => Some(plan),
            };
            if let Some(plan) = plan {
                let mut outcome = None;
                let watch = &self.watch;
                let parked = waiter::park(
                    link.word(self.dir),
                    self.who,
                    notifier,
                    || {
                        outcome = op.attempt();
                        outcome.is_some() || (plan.watching && !watch.is_current(&link.segment))
                    },
                    |suspect| {
                        let timeout = plan.timeout(suspect);
                        match (plan.watching, watch.fd()) {
                            (true, Some(fd)) => idle.block_watching(notifier, &[fd], timeout),
                            _ => idle.block(notifier, timeout),
                        }
                    },
                )?;
                self.parked(parked);
                if let Some(out) = outcome {
                    self.spurious = 0;
                    return out;
                }
                // The message first: what the wake-up cost is learnt after it is delivered
                // (the cost then counts the delivery, and the learning stays off the path).
                let out = self.attempt(op);
                if parked == Parked::Slept(Wait::Notified) && idle.wants_wake_cost() {
                    idle.woken(waiter::wake_up(link.wake_notes(self.dir)));
                }
                if let Some(out) = out {
                    return out;
                }
                continue;
            }
            if let Some(out) = self.attempt(op) {
                return out;
            }
        }
    }

    /// Steps 1 to 4 of the loop, short of blocking (the async ends block in their reactor
    /// instead): returns what to do next. `action` is the idle strategy's answer (asked
    /// only after an empty attempt); `can_watch` whether the way this end blocks can also
    /// wait on the peers' pidfds.
    #[cfg(all(feature = "tokio", not(shm_loom)))]
    pub(crate) fn step<O: Op, N: Notifier>(
        &mut self,
        link: &Link<N>,
        op: &mut O,
        deadline: Option<Instant>,
        can_watch: bool,
        action: impl FnOnce(&mut Self) -> Action,
    ) -> Step<Result<O::Out, O::Error>> {
        match self.attempt(op) {
            Some(out) => Step::Done(out),
            None => self.after_empty(link, op, deadline, can_watch, action),
        }
    }

    /// Step 1: tries the ring; progress ends a run of spurious wake-ups and a spell of
    /// empty attempts.
    #[inline(always)]
    fn attempt<O: Op>(&mut self, op: &mut O) -> Option<Result<O::Out, O::Error>> {
        let out = op.attempt()?;
        self.woken = false;
        self.spurious = 0;
        self.held_off = 0;
        Some(out)
    }

    /// Steps 2 to 4, after an attempt found nothing to do.
    fn after_empty<O: Op, N: Notifier>(
        &mut self,
        link: &Link<N>,
        op: &mut O,
        deadline: Option<Instant>,
        can_watch: bool,
        action: impl FnOnce(&mut Self) -> Action,
    ) -> Step<Result<O::Out, O::Error>> {
        if std::mem::take(&mut self.woken) {
            // Woken for nothing: check the peers before sleeping again, and back off if
            // it keeps happening (a stale or corrupt waiter word can cause it).
            self.spurious_wakes += 1;
            self.spurious = self.spurious.saturating_add(1);
            self.watch.owe_check();
            if self.spurious > 2 {
                // 8 µs, doubling while wake-ups keep coming to nothing, at most a quarter
                // of the liveness interval; progress ends the run.
                let pause = Duration::from_micros(1 << self.spurious.min(20));
                simple_action(Action::Sleep(pause.min(link.detect / 4)), deadline);
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Step::Done(Err(O::timed_out()));
        }
        // 2. Ask the strategy.
        let action = action(self);
        // 3. Check the peers when due or owed.
        if self.check_due(action, link.detect) | op.owes_check() {
            if let Some(out) = op.check() {
                return Step::Done(out);
            }
        }
        // 4. Spin, yield or sleep; or plan a park.
        let Action::Park(timeout) = action else {
            if action == Action::Spin && self.held_off < HOLD_OFFS && op.caught_up() {
                self.held_off += 1;
                self.hold_offs += 1;
                hold_off(deadline);
            }
            simple_action(action, deadline);
            return Step::Again;
        };
        // A park shorter than the liveness interval ends in time for the next check
        // anyway: only longer ones are worth watching the peers for.
        let long = timeout.map_or(true, |t| t >= link.detect);
        let Some(watching) = self.watch.untimed(long && can_watch, &link.segment) else {
            return Step::Again; // a check is owed first
        };
        Step::Park(Plan {
            timeout: cap(timeout, deadline, (!watching).then_some(link.detect)),
            watching,
            detect: link.detect,
        })
    }

    /// Step 5: counts a park and notes what ended it.
    pub(crate) fn parked(&mut self, parked: Parked) {
        match parked {
            Parked::Skipped => self.parks_skipped += 1,
            Parked::Slept(how) => {
                self.parks += 1;
                self.woken = how == Wait::Notified;
                if how == Wait::Watched {
                    self.watch.peer_exited();
                }
            }
        }
    }

    /// Whether a liveness check runs now (and if so, records that it ran).
    pub(crate) fn check_due(&mut self, action: Action, detect: Duration) -> bool {
        let due = self.watch.check_owed() | self.pacer.due(action, detect);
        if due {
            self.watch.checked();
        }
        due
    }
}

/// The deadline `timeout` from now; `None` (no deadline) when the clock cannot hold it.
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// How long a spinning reader that caught up with a streaming writer waits before it
/// polls again. Each poll right behind the writer reads the line it is filling and takes
/// it away from it, so a reader that keeps catching up slows the writer to its own pace
/// (a 64-byte stream settled at 5-10 M msgs/s in that state, and stayed there); held
/// off, the writer gets a few lines ahead and the reader comes back to a batch. In
/// alternated in-process runs of a throw-away build (64-byte stream, two pinned threads,
/// a hold-off after any run of two or more) 0.25, 0.5, 1 and 2 µs raised the median rate
/// from 14.7 to 18.2, 18.7, 20.0 and 21.2 M msgs/s and the worst of 20 runs from 10.5 to
/// 14.5, 16.3, 17.6 and 19.1 M. It delays a message that comes within that time by at
/// most that much, and only after runs of four or more.
#[cfg(not(shm_loom))]
const HOLD_OFF: Duration = Duration::from_micros(1);

/// The most hold-offs in one spell of empty attempts: while it stays caught up the reader
/// polls once per [`HOLD_OFF`] (polling faster after one hold-off found nothing brought
/// the slow state back: 512-byte stream 12.9 -> 9.4 M msgs/s), but a writer that pauses
/// longer than this has stopped streaming, and a strategy that counts its spins
/// (`Backoff`) then parks only this much later than it would have.
const HOLD_OFFS: u8 = 16;

/// Waits out [`HOLD_OFF`] (never past `deadline`) without touching the ring.
fn hold_off(deadline: Option<Instant>) {
    #[cfg(not(shm_loom))]
    {
        let now = Instant::now();
        let until = deadline.map_or(now + HOLD_OFF, |d| d.min(now + HOLD_OFF));
        while Instant::now() < until {
            for _ in 0..4 {
                std::hint::spin_loop();
            }
        }
    }
    #[cfg(shm_loom)]
    let _ = deadline;
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
