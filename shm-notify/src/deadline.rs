//! Absolute CLOCK_MONOTONIC deadlines, so retries after EINTR do not stretch a timeout,
//! and the wait loop of the fd-based notifiers.

use crate::{PollableNotifier, Wait};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags};
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};
use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// Now on CLOCK_MONOTONIC.
pub(crate) fn now() -> TimeSpec {
    clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always available")
}

/// `now + timeout`.
pub(crate) fn after(timeout: Duration) -> TimeSpec {
    now() + TimeSpec::from_duration(timeout)
}

fn poll_fd(fd: BorrowedFd<'_>) -> PollFd<'_> {
    PollFd::new(fd, PollFlags::POLLIN)
}

/// Time left until `deadline`, or `None` when it has passed.
pub(crate) fn remaining(deadline: TimeSpec) -> Option<TimeSpec> {
    let left = deadline - now();
    (left > TimeSpec::new(0, 0)).then_some(left)
}

/// The wait of an fd-based notifier: sleep in `ppoll` (nanosecond timeout) until the fd
/// or one of `watch` is readable or the deadline passes, then drain; repeat until
/// notified, watched, or timed out. `ppoll` comes first: it returns at once when a
/// notification is pending, so a wait that sleeps makes two system calls, not three.
/// A notification wins over a readable watched fd.
pub(crate) fn wait_readable<N: PollableNotifier + ?Sized>(
    n: &N,
    watch: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Wait> {
    let deadline = crate::bounded(timeout).map(after);
    // One notifier and a few peers in practice; more than this is a caller's bug.
    const MAX_WATCH: usize = 63;
    if watch.len() > MAX_WATCH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("at most {MAX_WATCH} watched fds, got {}", watch.len()),
        ));
    }
    // No allocation for the usual case (a channel passes at most its one watch fd):
    // this runs on every park.
    let (mut small, mut large);
    let fds: &mut [PollFd<'_>] = if watch.len() <= 1 {
        let second = watch.first().copied().unwrap_or(n.as_fd());
        small = [poll_fd(n.as_fd()), poll_fd(second)];
        &mut small[..1 + watch.len()]
    } else {
        large = std::iter::once(n.as_fd())
            .chain(watch.iter().copied())
            .map(poll_fd)
            .collect::<Vec<_>>();
        &mut large
    };
    loop {
        let left = deadline.map(|d| remaining(d).unwrap_or_else(|| TimeSpec::new(0, 0)));
        tracing::trace!(?left, watched = watch.len(), "sleeping in ppoll");
        match nix::poll::ppoll(fds, left, None) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        if n.drain()? {
            return Ok(Wait::Notified);
        }
        if fds[1..].iter().any(|fd| fd.any().unwrap_or(false)) {
            return Ok(Wait::Watched);
        }
        if deadline.is_some_and(|d| remaining(d).is_none()) {
            return Ok(Wait::TimedOut);
        }
    }
}
