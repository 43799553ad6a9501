//! Linux timer slack: by default the kernel may delay any timed sleep of a normal thread
//! by up to 50 µs to batch wake-ups, so a 10 µs sleep or park takes ~60 µs. Strategies
//! whose periods are shorter than [`FINE_SLACK_BELOW`] lower the calling thread's slack
//! to 1 ns (once per thread) the first time they ask for such a wait.

use std::cell::Cell;
use std::time::Duration;

/// Waits shorter than this make a strategy lower the thread's timer slack.
pub const FINE_SLACK_BELOW: Duration = Duration::from_micros(50);

thread_local! {
    static FINE: Cell<bool> = const { Cell::new(false) };
}

/// Sets the calling thread's timer slack to 1 ns (once per thread), so timed waits end
/// close to their deadline. Costs some extra wake-ups machine-wide; done only by
/// strategies that asked for sub-50 µs waits.
pub fn fine_timer_slack() {
    FINE.with(|done| {
        if !done.get() {
            done.set(true);
            match nix::sys::prctl::set_timerslack(1) {
                Ok(()) => tracing::debug!("thread timer slack set to 1 ns"),
                Err(e) => tracing::warn!(error = %e, "PR_SET_TIMERSLACK failed; short waits will overshoot"),
            }
        }
    })
}

/// Lowers the slack if `wait` is short.
pub(crate) fn for_wait(wait: Option<Duration>) {
    if wait.is_some_and(|w| w < FINE_SLACK_BELOW) {
        fine_timer_slack();
    }
}
