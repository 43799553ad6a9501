//! Absolute CLOCK_MONOTONIC deadlines, so retries after EINTR do not stretch a timeout.

use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};
use std::time::Duration;

/// Now on CLOCK_MONOTONIC.
pub(crate) fn now() -> TimeSpec {
    clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always available")
}

/// `now + timeout`.
pub(crate) fn after(timeout: Duration) -> TimeSpec {
    now() + TimeSpec::from_duration(timeout)
}

/// Time left until `deadline`, or `None` when it has passed.
pub(crate) fn remaining(deadline: TimeSpec) -> Option<TimeSpec> {
    let left = deadline - now();
    (left > TimeSpec::new(0, 0)).then_some(left)
}
