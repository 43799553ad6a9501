//! NAPI-style parking: poll while there is work, spin through a budget of empty polls,
//! then block in epoll on the notifier's fd (and any fds the user adds), drain, and go
//! back to polling.
//!
//! Timeouts have nanosecond resolution: `epoll_pwait2` where the kernel has it (5.11+),
//! else a timerfd in the same epoll set (as Netty does).

use crate::{slack, Action, IdleStrategy, ParksOn};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use shm_notify::{PollableNotifier, Wait};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

const NOTIFIER: u64 = u64::MAX;
const TIMER: u64 = u64::MAX - 1;
const WATCH: u64 = u64::MAX - 2;

/// Spin for `budget` empty polls, then park in epoll (for at most `timeout`).
///
/// ```
/// use shm_idle::{Action, EpollPark, IdleStrategy, ParksOn};
/// use shm_notify::{EventFd, Notifier, Wait};
/// use std::time::Duration;
/// let mut s = EpollPark::new(2, Some(Duration::from_millis(5)));
/// assert_eq!([s.idle(0), s.idle(0)], [Action::Spin, Action::Spin]);
/// assert_eq!(s.idle(0), Action::Park(Some(Duration::from_millis(5))));
/// let n = EventFd::new()?;
/// n.notify()?;
/// assert_eq!(s.block(&n, Some(Duration::from_millis(5)))?, Wait::Notified);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct EpollPark {
    budget: u32,
    timeout: Option<Duration>,
    /// Park timeouts doubling from the first to the second after each reset, if set.
    ramp: Option<(Duration, Duration)>,
    park: Duration,
    empty: u32,
    epoll: Option<Epoll>,
    /// The notifier fd registered in `epoll`.
    registered: Option<RawFd>,
    /// The fds registered by `block_watching`.
    watched: Vec<RawFd>,
    timer: Option<TimerFd>,
    force_timerfd: bool,
    ready: Vec<u64>,
}

/// 100 empty polls, then parks until notified: what `epoll` names in `AnyPollIdle` and
/// what `cargo xtask bench` measures.
///
/// ```
/// use shm_idle::{EpollPark, IdleStrategy};
/// let s = EpollPark::default();
/// assert_eq!(s.name(), "epoll");
/// ```
impl Default for EpollPark {
    fn default() -> Self {
        EpollPark::new(100, None)
    }
}

/// A copy with the same settings and a fresh state: it makes its own epoll instance
/// and timer when it first parks (an epoll set is not shared between ends).
///
/// ```
/// use shm_idle::EpollPark;
/// use std::time::Duration;
/// let a = EpollPark::new(10, Some(Duration::from_millis(1)));
/// let b = a.clone();
/// # drop((a, b));
/// ```
impl Clone for EpollPark {
    fn clone(&self) -> Self {
        EpollPark {
            ramp: self.ramp,
            force_timerfd: self.force_timerfd,
            ..EpollPark::new(self.budget, self.timeout)
        }
    }
}

impl EpollPark {
    /// Spins through `budget` empty polls, then parks for at most `timeout` (`None`: until
    /// notified).
    pub fn new(budget: u32, timeout: Option<Duration>) -> Self {
        EpollPark {
            budget,
            timeout,
            ramp: None,
            park: Duration::ZERO,
            empty: 0,
            epoll: None,
            registered: None,
            watched: Vec::new(),
            timer: None,
            force_timerfd: false,
            ready: Vec::new(),
        }
    }

    /// Parks with timeouts that start at `min` and double up to `max` (restarting at
    /// `min` after work), instead of the fixed timeout. A notify still ends a park at
    /// once; the short first parks keep a reader that has just gone idle quick to wake
    /// (on a VM, a vCPU that halted recently is woken faster: the host polls before it
    /// deschedules it), the long later ones keep an idle reader near 0% CPU.
    ///
    /// ```
    /// use shm_idle::{Action, EpollPark, IdleStrategy};
    /// use std::time::Duration;
    /// let us = Duration::from_micros;
    /// let mut s = EpollPark::new(1, None).with_park_backoff(us(1), us(4));
    /// let seq: Vec<_> = (0..5).map(|_| s.idle(0)).collect();
    /// assert_eq!(seq, [Action::Spin, Action::Park(Some(us(1))), Action::Park(Some(us(2))),
    ///                  Action::Park(Some(us(4))), Action::Park(Some(us(4)))]);
    /// assert_eq!(s.idle(1), Action::Continue); // work restarts the ramp
    /// assert_eq!((s.idle(0), s.idle(0)), (Action::Spin, Action::Park(Some(us(1)))));
    /// ```
    pub fn with_park_backoff(mut self, min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_nanos(1));
        self.ramp = Some((min, max.max(min)));
        self.park = min;
        self
    }

    /// Uses the timerfd path for timeouts even where `epoll_pwait2` exists (for tests and
    /// for kernels that filter unknown system calls).
    pub fn with_timerfd(mut self) -> Self {
        self.force_timerfd = true;
        self
    }

    /// The spin budget and park timeout.
    pub fn settings(&self) -> (u32, Option<Duration>) {
        (self.budget, self.timeout)
    }

    fn epoll(&mut self) -> io::Result<&Epoll> {
        if self.epoll.is_none() {
            self.epoll = Some(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?);
        }
        Ok(self.epoll.as_ref().expect("created above"))
    }

    /// Adds a user fd (level-triggered) to the park: readiness ends a park, and
    /// [`EpollPark::take_ready`] then reports `token`. The caller keeps `fd` open until it
    /// calls [`EpollPark::remove_fd`]. Tokens `u64::MAX - 2 ..` are reserved.
    pub fn add_fd(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        if token >= WATCH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "token reserved",
            ));
        }
        self.epoll()?
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))?;
        Ok(())
    }

    /// Removes a user fd added with [`EpollPark::add_fd`].
    pub fn remove_fd(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.epoll()?.delete(fd)?;
        Ok(())
    }

    /// Tokens of user fds that were ready when the last park ended.
    pub fn take_ready(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.ready)
    }

    fn ensure_registered(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        if self.registered != Some(raw) {
            let epoll = self.epoll()?;
            epoll.add(
                fd,
                EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, NOTIFIER),
            )?;
            self.registered = Some(raw);
        }
        Ok(())
    }

    /// epoll_wait with a nanosecond timeout; falls back to the timerfd path on ENOSYS.
    fn wait(&mut self, events: &mut [EpollEvent], timeout: Option<Duration>) -> io::Result<usize> {
        let timeout = shm_notify::bounded(timeout);
        if !self.force_timerfd {
            let ts = timeout.map(TimeSpec::from_duration);
            let epfd = self.epoll()?.0.as_raw_fd();
            // SAFETY: epfd is our live epoll fd; `events` is valid for `len` entries and
            // EpollEvent is a transparent wrapper of epoll_event; the timespec (or null)
            // outlives the call; a null sigmask means "leave the mask alone".
            let r = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    epfd,
                    events.as_mut_ptr().cast::<libc::epoll_event>(),
                    events.len() as libc::c_int,
                    ts.as_ref()
                        .map_or(std::ptr::null(), |t| t.as_ref() as *const libc::timespec),
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOSYS) => {
                    tracing::debug!("epoll_pwait2 unavailable; using a timerfd for park timeouts");
                    self.force_timerfd = true;
                }
                Some(libc::EINTR) => return Ok(0),
                _ => return Err(e),
            }
        }
        self.wait_with_timerfd(events, timeout)
    }

    fn wait_with_timerfd(
        &mut self,
        events: &mut [EpollEvent],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        if self.timer.is_none() {
            let timer = TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            self.epoll()?
                .add(timer.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, TIMER))?;
            self.timer = Some(timer);
        }
        let timer = self.timer.as_ref().expect("created above");
        match timeout {
            // A zero expiration would disarm the timer: use the smallest non-zero one.
            Some(t) => timer.set(
                Expiration::OneShot(TimeSpec::from_duration(t.max(Duration::from_nanos(1)))),
                TimerSetTimeFlags::empty(),
            )?,
            None => timer.unset()?,
        }
        let epoll = self.epoll.as_ref().expect("created with the timer");
        let n = match epoll.wait(events, nix::sys::epoll::EpollTimeout::NONE) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        // Disarm, and consume an expiry so the level-triggered timer stops reporting.
        let timer = self.timer.as_ref().expect("created above");
        timer.unset()?;
        let mut buf = [0u8; 8];
        let _ = nix::unistd::read(timer, &mut buf);
        Ok(n)
    }
}

impl IdleStrategy for EpollPark {
    #[inline]
    fn idle(&mut self, work: usize) -> Action {
        if work > 0 {
            self.reset();
            return Action::Continue;
        }
        if self.empty < self.budget {
            self.empty += 1;
            return Action::Spin;
        }
        let timeout = match self.ramp {
            Some((_, max)) => {
                let park = self.park;
                self.park = park.saturating_mul(2).min(max);
                Some(park)
            }
            None => self.timeout,
        };
        slack::for_wait(timeout);
        Action::Park(timeout)
    }

    fn reset(&mut self) {
        self.empty = 0;
        if let Some((min, _)) = self.ramp {
            self.park = min;
        }
    }

    fn name(&self) -> &'static str {
        "epoll"
    }
}

impl EpollPark {
    /// Keeps the watched fds registered (level-triggered): re-registers only when the
    /// caller passes other fd numbers than last time.
    fn ensure_watching(&mut self, watch: &[BorrowedFd<'_>]) -> io::Result<()> {
        if watch
            .iter()
            .map(AsRawFd::as_raw_fd)
            .eq(self.watched.iter().copied())
        {
            return Ok(());
        }
        for old in std::mem::take(&mut self.watched) {
            // SAFETY: used only for this call, to name the registration to delete; if
            // the number was closed since, epoll_ctl fails harmlessly (ENOENT/EBADF).
            let _ = self.epoll()?.delete(unsafe { BorrowedFd::borrow_raw(old) });
        }
        for fd in watch {
            self.epoll()?
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, WATCH))?;
            self.watched.push(fd.as_raw_fd());
        }
        Ok(())
    }

    /// One park, watching whatever fds are registered.
    fn block_watching_registered<N: PollableNotifier + ?Sized>(
        &mut self,
        notifier: &N,
        timeout: Option<Duration>,
    ) -> io::Result<Wait> {
        Ok(match self.park(notifier, timeout)? {
            (true, _) => Wait::Notified,
            (false, true) => Wait::Watched,
            (false, false) => Wait::TimedOut,
        })
    }

    /// One park: `(notified, a watched fd fired)`.
    fn park<N: PollableNotifier + ?Sized>(
        &mut self,
        notifier: &N,
        timeout: Option<Duration>,
    ) -> io::Result<(bool, bool)> {
        self.ensure_registered(notifier.as_fd())?;
        let mut events = [EpollEvent::empty(); 16];
        let n = self.wait(&mut events, timeout)?;
        let (mut woken, mut watched) = (false, false);
        for e in &events[..n] {
            match e.data() {
                NOTIFIER => woken |= notifier.drain()?,
                TIMER => {}
                WATCH => watched = true,
                token => {
                    self.ready.push(token);
                    woken = true;
                }
            }
        }
        // An edge may have been consumed by an earlier drain outside epoll: check once.
        if !woken {
            woken = notifier.drain()?;
        }
        Ok((woken, watched))
    }
}

impl<N: PollableNotifier + ?Sized> ParksOn<N> for EpollPark {
    /// Also ends with [`Wait::Watched`] while fds registered by an earlier
    /// [`ParksOn::block_watching`] are readable (they stay in the set), so the caller
    /// learns why instead of seeing timeouts that come at once.
    fn block(&mut self, notifier: &N, timeout: Option<Duration>) -> io::Result<Wait> {
        self.block_watching_registered(notifier, timeout)
    }

    /// The watched fds join this strategy's epoll set (level-triggered), registered once
    /// and kept while the same fd numbers are passed: pass fds that stay open for as long
    /// as this strategy parks on them (a channel passes its peer watch's one fd, which
    /// lives as long as the channel end that owns this strategy).
    fn block_watching(
        &mut self,
        notifier: &N,
        watch: &[BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> io::Result<Wait> {
        self.ensure_watching(watch)?;
        self.block_watching_registered(notifier, timeout)
    }
}
