//! eventfd notifier: a kernel counter behind a file descriptor. `notify` adds 1, `wait`
//! reads (which resets the counter, or takes one unit in semaphore mode) and sleeps in
//! `ppoll` with a nanosecond timeout while there is nothing to read. The fd is always
//! CLOEXEC and non-blocking, and can sit in an epoll set.

use crate::deadline;
use crate::{Notifier, PollableNotifier, Wait};
use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd as RawEventFd};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// An eventfd-based notifier.
///
/// ```
/// use shm_notify::{EventFd, Notifier, Wait};
/// let n = EventFd::new()?;
/// n.notify()?;
/// n.notify()?; // coalesces with the first
/// assert_eq!(n.wait(None)?, Wait::Notified);
/// assert_eq!(n.wait(Some(std::time::Duration::from_micros(100)))?, Wait::TimedOut);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct EventFd {
    fd: RawEventFd,
}

impl EventFd {
    /// A new counting eventfd: one wait consumes all pending notifications.
    pub fn new() -> io::Result<EventFd> {
        Self::with_flags(EfdFlags::empty())
    }

    /// A new eventfd in semaphore mode (`EFD_SEMAPHORE`): each wait consumes one.
    pub fn semaphore() -> io::Result<EventFd> {
        Self::with_flags(EfdFlags::EFD_SEMAPHORE)
    }

    fn with_flags(extra: EfdFlags) -> io::Result<EventFd> {
        let fd = RawEventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK | extra)?;
        tracing::debug!(fd = ?fd.as_fd(), semaphore = !extra.is_empty(), "eventfd created");
        Ok(EventFd { fd })
    }

    /// Adopts an eventfd received from another process (inherited or over SCM_RIGHTS) and
    /// makes it non-blocking.
    pub fn from_fd(fd: OwnedFd) -> io::Result<EventFd> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: nix's contract is only that `fd` be an eventfd; a wrong fd makes reads
        // and writes fail with an error (EINVAL), never undefined behaviour.
        let fd = unsafe { RawEventFd::from_owned_fd(fd) };
        Ok(EventFd { fd })
    }
}

impl Notifier for EventFd {
    fn notify(&self) -> io::Result<()> {
        match self.fd.write(1) {
            // EAGAIN: the counter is at its maximum, so a wake-up is pending anyway.
            Ok(_) | Err(Errno::EAGAIN) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn wait(&self, timeout: Option<Duration>) -> io::Result<Wait> {
        deadline::wait_readable(self, &[], timeout)
    }

    fn can_watch(&self) -> bool {
        true
    }

    fn wait_watching(
        &self,
        watch: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> io::Result<Wait> {
        deadline::wait_readable(self, watch, timeout)
    }
}

impl PollableNotifier for EventFd {
    fn drain(&self) -> io::Result<bool> {
        match self.fd.read() {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
