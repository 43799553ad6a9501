//! Watching the peer processes through pidfds, so that a parked end needs no timer to
//! notice a peer that dies without closing its end.
//!
//! Without a watch, a parked end wakes every liveness interval to check its peers: every
//! park is a timed wait, and arming and cancelling that timer is a cost of its own (on
//! this project's VM, 1.7 µs per round trip with both ends on one CPU). With a pidfd of
//! every live peer in an epoll set, and that set's fd in the same `ppoll` as the notifier
//! (or in the idle strategy's own epoll set), the kernel wakes the end when a peer exits,
//! and the park needs no timeout. One fd however many writers, and a stable one.
//!
//! A watch is *complete* only when every slot of the peers' side is free, closed, held by
//! a dead process, or held by a live process whose pidfd was opened and then checked to
//! be the recorded process (pid and start time: a reused pid has another start time). A
//! slot being claimed, a corrupt one, or a kernel without `pidfd_open` leaves it
//! incomplete, and the end parks with a timeout as it would without a watch. A peer
//! found dead while building the watch may have died after the end's last liveness
//! check, so the end checks again before it parks ([`Watching::PeerDied`]). An end that
//! attaches wakes the other side's parked ends through the waiter protocol; their
//! re-check sees that a slot changed ([`PeerWatch::is_current`]) and they build a new
//! watch before sleeping again.

use super::{self as liveness, Holder, Side};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use shm_ring::Segment;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// What a refreshed watch allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watching {
    /// Every live peer is watched: park without a timeout.
    Complete,
    /// Some peer cannot be watched: park with the liveness interval as timeout.
    Incomplete,
    /// Rebuilding found a recorded peer dead: it may have died since the caller's last
    /// liveness check, so check again before parking (the next refresh is `Complete` or
    /// `Incomplete`; a dead peer is reported once).
    PeerDied,
}

/// The pidfds of one side's live ends, and what their slots said when they were opened.
#[derive(Debug)]
pub(crate) struct PeerWatch {
    side: Side,
    /// `(state, pid)` of every slot of the side when the watch was built.
    seen: Vec<(u32, u32)>,
    /// The peers' pidfds, all in `epoll` (closing one takes it out).
    fds: Vec<OwnedFd>,
    /// Readable when any peer exited: the one fd a park sleeps on for all of them, and
    /// the same fd for the life of the watch (an epoll set can keep it registered).
    epoll: Option<Arc<Epoll>>,
    complete: bool,
    /// Cleared when a watched pidfd fired: rebuild even though no slot changed (a killed
    /// peer leaves its slot open).
    valid: bool,
    /// A peer exited or was found dead since the end last ran its liveness check: no
    /// untimed park until it has (kept across calls: a message may end the call first).
    owed: bool,
}

impl PeerWatch {
    /// An empty watch of `side`'s ends; the first [`PeerWatch::refresh`] builds it.
    pub(crate) fn new(side: Side) -> Self {
        PeerWatch {
            side,
            seen: Vec::new(),
            fds: Vec::new(),
            epoll: None,
            complete: false,
            valid: false,
            owed: false,
        }
    }

    /// Whether the side's slots still say what they said when the watch was built.
    /// Cheap (two loads per slot): the parking end calls it in its re-check.
    pub(crate) fn is_current(&self, seg: &Segment) -> bool {
        self.valid
            && self
                .side
                .slots()
                .zip(&self.seen)
                .all(|(at, seen)| liveness::snapshot(seg, at) == *seen)
    }

    /// Rebuilds the watch unless it is current, and says how the caller may park.
    fn refresh(&mut self, seg: &Segment) -> Watching {
        if self.is_current(seg) {
            return match self.complete {
                true => Watching::Complete,
                false => Watching::Incomplete,
            };
        }
        self.fds.clear();
        self.seen.clear();
        self.complete = self.epoll.is_some() || self.make_epoll();
        let mut died = false;
        for at in self.side.slots() {
            self.seen.push(liveness::snapshot(seg, at));
            match liveness::holder(seg, at) {
                Holder::Nobody => {}
                Holder::Unknown => self.complete = false,
                Holder::Process { pid, start } => match watch(pid, start) {
                    Watch::Fd(fd) => self.add(fd),
                    Watch::Dead => died = true,
                    Watch::Unwatchable => self.complete = false,
                },
            }
        }
        // A slot that changed while we read it shows in the next `is_current`.
        self.valid = true;
        tracing::trace!(side = ?self.side, watched = self.fds.len(), self.complete, died, "peer watch rebuilt");
        match (died, self.complete) {
            (true, _) => Watching::PeerDied,
            (false, true) => Watching::Complete,
            (false, false) => Watching::Incomplete,
        }
    }

    /// Whether a park may go without a timeout: `can_watch` (the strategy and notifier
    /// can sleep on pidfds) and the watch is complete. `None`: a liveness check is owed
    /// (a peer was found dead, or exited): run it ([`PeerWatch::checked`]) first.
    pub(crate) fn untimed(&mut self, can_watch: bool, seg: &Segment) -> Option<bool> {
        if self.owed {
            return None;
        }
        // Once built, the watch is kept fresh even for parks that do not use it: a dead
        // peer's pidfd left in it would keep its fd readable, and an idle strategy that
        // registered that fd (EpollPark) would then wake at once from every park.
        if !can_watch && self.epoll.is_none() {
            return Some(false);
        }
        match self.refresh(seg) {
            Watching::PeerDied => {
                self.owed = true;
                None
            }
            Watching::Complete => Some(can_watch),
            Watching::Incomplete => Some(false),
        }
    }

    /// A watched pidfd fired: rebuild at the next refresh, check the peers first.
    pub(crate) fn peer_exited(&mut self) {
        self.valid = false;
        self.owed = true;
    }

    /// Whether a liveness check is owed (see [`PeerWatch::untimed`]).
    pub(crate) fn check_owed(&self) -> bool {
        self.owed
    }

    /// Something the peers did calls for another check before the next untimed park.
    pub(crate) fn owe_check(&mut self) {
        self.owed = true;
    }

    /// Records that the end runs its liveness check now.
    pub(crate) fn checked(&mut self) {
        self.owed = false;
    }

    /// The fd to sleep on beside the notifier: readable once a watched peer exited.
    /// `None` before the first complete refresh.
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.epoll.as_ref().map(|e| e.0.as_fd())
    }

    /// The epoll behind [`PeerWatch::fd`], shared, for a reactor that registers it (it
    /// stays open while the registration holds it).
    #[cfg(all(feature = "tokio", not(shm_loom)))]
    pub(crate) fn shared(&self) -> Option<Arc<Epoll>> {
        self.epoll.clone()
    }

    fn make_epoll(&mut self) -> bool {
        match Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) {
            Ok(e) => {
                self.epoll = Some(Arc::new(e));
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "no epoll for the peer watch: parking with a timeout");
                false
            }
        }
    }

    /// Adds a live peer's pidfd to the set (a failure leaves the watch incomplete).
    fn add(&mut self, fd: OwnedFd) {
        let added = self
            .epoll
            .as_ref()
            .map(|e| e.add(&fd, EpollEvent::new(EpollFlags::EPOLLIN, 0)));
        match added {
            Some(Ok(())) => self.fds.push(fd),
            _ => self.complete = false,
        }
    }
}

/// What watching one recorded process came to.
enum Watch {
    /// A pidfd of the recorded process, which has not exited.
    Fd(OwnedFd),
    /// The recorded process is gone: nothing to watch (the liveness check reports it).
    Dead,
    /// Cannot tell by a pidfd (no `pidfd_open`, out of fds, exited but unreaped).
    Unwatchable,
}

#[cfg(not(shm_loom))]
fn watch(pid: u32, start: u64) -> Watch {
    use std::os::fd::FromRawFd;
    if pid == 0 || pid > i32::MAX as u32 {
        return Watch::Unwatchable;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is
    // passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Watch::Dead;
        }
        tracing::debug!(pid, error = %e, "pidfd_open failed: parking with a timeout");
        return Watch::Unwatchable;
    }
    // SAFETY: a successful pidfd_open returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // The pidfd is of whoever had `pid` when it was opened. The recorded process still
    // running now means it had the pid then too (a pid is never reused while its process
    // exists), so the pidfd is the recorded process's.
    if !shm_ring::process::is_alive(pid, start) {
        return Watch::Dead;
    }
    // A readable pidfd means it exited in between (or was a zombie all along).
    let mut poll = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    match nix::poll::poll(&mut poll, nix::poll::PollTimeout::ZERO) {
        Ok(0) => Watch::Fd(fd),
        Ok(_) => Watch::Dead,
        Err(_) => Watch::Unwatchable,
    }
}

#[cfg(shm_loom)]
fn watch(_pid: u32, _start: u64) -> Watch {
    Watch::Unwatchable
}

#[cfg(all(test, not(shm_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_of_a_running_process_is_quiet_and_fires_at_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let start = shm_ring::process::start_time(pid).expect("child's start time");
        let Watch::Fd(fd) = watch(pid, start) else {
            panic!("a running child must be watchable");
        };
        assert!(
            matches!(watch(pid, start + 1), Watch::Dead),
            "wrong start time"
        );
        child.kill().expect("kill");
        let mut poll = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut poll, nix::poll::PollTimeout::from(10_000u16));
        assert_eq!(
            n.expect("poll"),
            1,
            "pidfd not readable within 10 s of the kill"
        );
        // Exited but not reaped yet: not watchable as a live peer.
        assert!(matches!(watch(pid, start), Watch::Dead));
        child.wait().expect("reap");
        assert!(matches!(watch(pid, start), Watch::Dead));
    }
}
