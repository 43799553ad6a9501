//! Absolute CLOCK_MONOTONIC deadlines, so retries after EINTR do not stretch a timeout,
//! and the wait loop of the fd-based notifiers.

use crate::{PollableNotifier, Wait};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};
use std::io;
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

/// The wait of an fd-based notifier: drain; if nothing was pending, sleep in `ppoll`
/// (nanosecond timeout) until the fd is readable or the deadline passes; repeat.
pub(crate) fn wait_readable<N: PollableNotifier + ?Sized>(
    n: &N,
    timeout: Option<Duration>,
) -> io::Result<Wait> {
    let deadline = timeout.map(after);
    loop {
        if n.drain()? {
            return Ok(Wait::Notified);
        }
        let left = match deadline {
            None => None,
            Some(d) => match remaining(d) {
                Some(left) => Some(left),
                None => return Ok(Wait::TimedOut),
            },
        };
        tracing::trace!(?left, "sleeping in ppoll");
        let mut fds = [PollFd::new(n.as_fd(), PollFlags::POLLIN)];
        match nix::poll::ppoll(&mut fds, left, None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
