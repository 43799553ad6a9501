//! Idle strategies: what a polling loop does when a poll found no work.
//!
//! A strategy is *policy*. After each poll the loop calls [`IdleStrategy::idle`] with the
//! work it just did and gets an [`Action`] back: carry on, spin, yield, sleep, or park.
//! Parking is *mechanism* and belongs to the channel: it announces that it sleeps,
//! re-checks the ring, and then blocks the way the strategy says through
//! [`ParksOn::block`] (the notifier's own wait, or an epoll set for [`EpollPark`]). A
//! writer's notify ends any park early.
//!
//! | strategy | name | when idle |
//! |---|---|---|
//! | [`BusySpin`] | `spin` | `spin_loop` hint |
//! | [`NoOp`] | `noop` | nothing |
//! | [`Yielding`] | `yield` | `sched_yield` |
//! | [`Sleeping`] | `sleep` | a timer sleep of a fixed period (no notifier) |
//! | [`Blocking`] | `blocking` | park at once, no timeout |
//! | [`Backoff`] | `backoff` | spin, then yield, then park with a doubling timeout |
//! | [`EpollPark`] | `epoll` | spin for a budget of empty polls, then block in epoll |
//! | [`Adaptive`] | `adaptive` | spin for as long as it measured spinning pays, then park |
//!
//! Idle cost (an idle reader, measured on a 2-vCPU VM by `cargo xtask bench`): `spin` a
//! whole core; `backoff` ~0.2% and ~20 wake-ups/s (its 50 ms cap); `blocking`, `epoll`
//! and `adaptive` ~0.1%, with no wake-ups on eventfd and FIFO (the channel sleeps on the
//! peers' pidfds) and 10/s on futex and semaphore (a liveness check every 100 ms).
//! `adaptive` is the one to start with: it needs no parameter and lands near the best
//! fixed strategy of each traffic pattern (the README has the figures).
//!
//! `EpollPark` only pairs with a [`PollableNotifier`](shm_notify::PollableNotifier):
//!
//! ```compile_fail,E0277
//! use shm_idle::{EpollPark, ParksOn};
//! fn channel<N: shm_notify::Notifier, I: ParksOn<N>>() {}
//! channel::<shm_notify::Futex, EpollPark>(); // futex has no fd: does not compile
//! ```
//! The same with an eventfd compiles, as do other strategies with a futex:
//! ```
//! use shm_idle::{Backoff, EpollPark, ParksOn};
//! fn channel<N: shm_notify::Notifier, I: ParksOn<N>>() {}
//! channel::<shm_notify::EventFd, EpollPark>();
//! channel::<shm_notify::Futex, Backoff>();
//! ```

use shm_notify::{Notifier, Wait};
use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

mod adaptive;
mod any;
mod backoff;
mod epoll;
mod simple;
mod slack;

pub use adaptive::Adaptive;
pub use any::{AnyIdle, AnyPollIdle, ParseError};
pub use backoff::Backoff;
pub use epoll::EpollPark;
pub use simple::{Blocking, BusySpin, NoOp, Sleeping, Yielding};
pub use slack::{fine_timer_slack, FINE_SLACK_BELOW};

/// What the loop should do after an idle poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Poll again at once.
    Continue,
    /// Spin once (`std::hint::spin_loop`).
    Spin,
    /// Give the CPU away once (`sched_yield`).
    Yield,
    /// Sleep on a timer for this long (nothing wakes it early).
    Sleep(Duration),
    /// Park through the channel's waiter protocol, for at most this long (`None`: until
    /// notified). The channel blocks with [`ParksOn::block`].
    Park(Option<Duration>),
}

/// What the channel could tell of a wake-up a notify ended (see
/// [`IdleStrategy::woken`]). Both come from the waker's notes in shared memory: input to
/// an idle policy, never to correctness.
///
/// ```
/// use shm_idle::{Adaptive, IdleStrategy, WakeUp};
/// use std::time::Duration;
/// let mut a = Adaptive::new();
/// a.woken(WakeUp { late: Some(Duration::from_micros(9)), beside_waker: Some(false) });
/// assert!(a.wake_cost() < Duration::from_micros(20));
/// assert_eq!(WakeUp::default().late, None); // nothing known
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WakeUp {
    /// How long after the waker's notify this end ran again (`None`: not known).
    pub late: Option<Duration>,
    /// Whether this end ran on the CPU the waker notified from (`None`: not known).
    /// There it ran only once the waker let go of that CPU: the lateness is the waker's
    /// time, not a wake-up's, and a spin of this end would hold the waker off the same
    /// way.
    pub beside_waker: Option<bool>,
}

/// An idle policy. `idle(work)` after every poll; `work > 0` resets the strategy.
#[enum_dispatch::enum_dispatch]
pub trait IdleStrategy {
    /// Decides what to do after a poll that did `work` units of work.
    fn idle(&mut self, work: usize) -> Action;

    /// Forgets the idle streak (the next idle call starts from the first phase).
    fn reset(&mut self);

    /// A stable name for reports (`spin`, `noop`, `yield`, `sleep`, `blocking`,
    /// `backoff`, `epoll`, `adaptive`).
    fn name(&self) -> &'static str;

    /// Asked after a park that a notify ended: whether to measure how late this end ran
    /// after the waker's notify (a clock read) and report it through
    /// [`IdleStrategy::woken`]. The default: no.
    fn wants_wake_cost(&mut self) -> bool {
        false
    }

    /// What the channel could tell of the wake-up, when [`IdleStrategy::wants_wake_cost`]
    /// asked for it. The default ignores it; [`Adaptive`] learns the cost of a wake-up
    /// from it, and that its peer shares its CPU.
    fn woken(&mut self, wake: WakeUp) {
        let _ = wake;
    }

    /// The end handed over `n` messages outside a wait (a `Receiver::poll` that drains
    /// what queued). The default ignores it; [`Adaptive`] counts what queues behind a
    /// wake-up, which is what a park costs the messages.
    fn delivered(&mut self, n: usize) {
        let _ = n;
    }
}

/// How a strategy blocks when the channel parks on notifier `N`. The default is the
/// notifier's own wait; [`EpollPark`] blocks in epoll and so exists only for pollable
/// notifiers: pairing it with a futex does not compile.
pub trait ParksOn<N: Notifier + ?Sized>: IdleStrategy {
    /// Blocks until `notifier` is notified or `timeout` passes.
    fn block(&mut self, notifier: &N, timeout: Option<Duration>) -> io::Result<Wait> {
        notifier.wait(timeout)
    }

    /// Whether [`ParksOn::block_watching`] works with this notifier: by default when the
    /// notifier can watch fds ([`Notifier::can_watch`]); [`EpollPark`] does not (it
    /// blocks in its own epoll set).
    fn watches(&self, notifier: &N) -> bool {
        notifier.can_watch()
    }

    /// [`ParksOn::block`] that also ends ([`Wait::Watched`]) when one of `watch` becomes
    /// readable (a channel passes its peers' pidfds, so it can park without a timeout).
    /// Call only when [`ParksOn::watches`]; otherwise it fails with `Unsupported`.
    fn block_watching(
        &mut self,
        notifier: &N,
        watch: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> io::Result<Wait> {
        notifier.wait_watching(watch, timeout)
    }
}

/// Executes the actions a loop does not need the channel for.
pub trait Parker {
    /// One spin.
    fn spin(&mut self);
    /// One yield.
    fn yield_now(&mut self);
    /// A timer sleep.
    fn sleep(&mut self, period: Duration);
    /// A park through the waiter protocol.
    fn park(&mut self, timeout: Option<Duration>);
}

impl Action {
    /// Carries the action out on `parker`.
    ///
    /// ```
    /// use shm_idle::{Action, Backoff, IdleStrategy, Parker};
    /// use std::time::Duration;
    /// #[derive(Default)]
    /// struct Log(Vec<String>);
    /// impl Parker for Log {
    ///     fn spin(&mut self) { self.0.push("spin".into()) }
    ///     fn yield_now(&mut self) { self.0.push("yield".into()) }
    ///     fn sleep(&mut self, d: Duration) { self.0.push(format!("sleep {d:?}")) }
    ///     fn park(&mut self, t: Option<Duration>) { self.0.push(format!("park {t:?}")) }
    /// }
    /// let mut s = Backoff::new(1, 1, Duration::from_micros(1), Duration::from_micros(2));
    /// let mut log = Log::default();
    /// for _ in 0..5 {
    ///     s.idle(0).apply(&mut log);
    /// }
    /// assert_eq!(log.0, ["spin", "yield", "park Some(1µs)", "park Some(2µs)", "park Some(2µs)"]);
    /// ```
    pub fn apply(self, parker: &mut impl Parker) {
        match self {
            Action::Continue => {}
            Action::Spin => parker.spin(),
            Action::Yield => parker.yield_now(),
            Action::Sleep(d) => parker.sleep(d),
            Action::Park(t) => parker.park(t),
        }
    }
}
