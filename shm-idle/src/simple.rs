//! The stateless strategies and the two single-phase ones.

use crate::{slack, Action, IdleStrategy, ParksOn};
use shm_notify::Notifier;
use std::time::Duration;

/// Spins with the CPU's spin-loop hint: the lowest latency, a whole core while idle.
#[derive(Clone, Copy, Debug, Default)]
pub struct BusySpin;

/// Does nothing between polls: for loops whose poll already makes a system call.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoOp;

/// Yields the CPU between polls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Yielding;

/// Sleeps a fixed period on a timer between polls; a notify does not shorten it.
#[derive(Clone, Copy, Debug)]
pub struct Sleeping {
    /// The sleep period.
    pub period: Duration,
}

/// Parks at once on every idle poll, with no spin and no timeout: the pure blocking
/// mode (like a plain socket read, or the Disruptor's BlockingWaitStrategy).
#[derive(Clone, Copy, Debug, Default)]
pub struct Blocking;

impl Sleeping {
    /// Sleeps `period` per idle poll. Periods under 50 µs lower the thread's timer slack.
    pub fn new(period: Duration) -> Self {
        Sleeping { period }
    }
}

impl Default for Sleeping {
    /// 1 µs, Agrona's default (in practice, the timer's resolution).
    fn default() -> Self {
        Sleeping::new(Duration::from_micros(1))
    }
}

macro_rules! when_idle {
    ($work:expr, $action:expr) => {
        if $work > 0 {
            Action::Continue
        } else {
            $action
        }
    };
}

impl IdleStrategy for BusySpin {
    #[inline]
    fn idle(&mut self, work: usize) -> Action {
        when_idle!(work, Action::Spin)
    }
    fn reset(&mut self) {}
    fn name(&self) -> &'static str {
        "spin"
    }
}

impl IdleStrategy for NoOp {
    #[inline]
    fn idle(&mut self, _work: usize) -> Action {
        Action::Continue
    }
    fn reset(&mut self) {}
    fn name(&self) -> &'static str {
        "noop"
    }
}

impl IdleStrategy for Yielding {
    #[inline]
    fn idle(&mut self, work: usize) -> Action {
        when_idle!(work, Action::Yield)
    }
    fn reset(&mut self) {}
    fn name(&self) -> &'static str {
        "yield"
    }
}

impl IdleStrategy for Sleeping {
    #[inline]
    fn idle(&mut self, work: usize) -> Action {
        when_idle!(work, {
            slack::for_wait(Some(self.period));
            Action::Sleep(self.period)
        })
    }
    fn reset(&mut self) {}
    fn name(&self) -> &'static str {
        "sleep"
    }
}

impl IdleStrategy for Blocking {
    #[inline]
    fn idle(&mut self, work: usize) -> Action {
        when_idle!(work, Action::Park(None))
    }
    fn reset(&mut self) {}
    fn name(&self) -> &'static str {
        "blocking"
    }
}

impl<N: Notifier + ?Sized> ParksOn<N> for BusySpin {}
impl<N: Notifier + ?Sized> ParksOn<N> for NoOp {}
impl<N: Notifier + ?Sized> ParksOn<N> for Yielding {}
impl<N: Notifier + ?Sized> ParksOn<N> for Sleeping {}
impl<N: Notifier + ?Sized> ParksOn<N> for Blocking {}
