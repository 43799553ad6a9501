//! Creating and attaching channel ends across processes.
//!
//! Named mode (futex, semaphore, FIFO): one side creates the segment by name, the other
//! opens it; the creator's drop removes the name (and FIFOs). Fd mode (any notifier,
//! required for eventfd): the creator gets a [`Handoff`] with the segment's and
//! notifiers' fds, to send over a Unix socket (SCM_RIGHTS, peer uid checked) or to
//! inherit into a child process; nothing is left in the file system.

use crate::builder::{receiver, sender};
use crate::layout::Direction;
use crate::link::Link;
use crate::notifiers::{Attach, ChannelNotifier};
use crate::ChannelKind;
use crate::{ChannelBuilder, ChannelError, Receiver, Sender};
use shm_idle::ParksOn;
use shm_notify::{handover, NotifierKind};
use shm_ring::Segment;
use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::Arc;

/// The fds a peer needs to attach to an anonymous channel: the segment first, then the
/// notifiers' (eventfds), in order.
#[derive(Debug)]
pub struct Handoff {
    fds: Vec<OwnedFd>,
}

impl Handoff {
    /// Sends the fds over a connected Unix stream socket (SCM_RIGHTS).
    pub fn send(&self, sock: &UnixStream) -> std::io::Result<()> {
        let fds: Vec<_> = self.fds.iter().map(|f| f.as_fd()).collect();
        handover::send_fds(sock, &fds)
    }

    /// Lets a child started from `cmd` inherit the fds (CLOEXEC cleared in the child
    /// only); the child calls `Sender::inherited` or `Receiver::inherited`. Keep the
    /// `Handoff` alive until the child has started.
    pub fn inherit(&self, cmd: &mut Command) {
        let fds: Vec<_> = self.fds.iter().map(|f| f.as_fd()).collect();
        handover::inherit(cmd, &fds);
    }

    /// The fds themselves.
    pub fn into_fds(self) -> Vec<OwnedFd> {
        self.fds
    }
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> ChannelError {
    move |source| ChannelError::Io { what, source }
}

impl ChannelBuilder {
    fn kind<N: ChannelNotifier>(&self) -> Result<NotifierKind, ChannelError> {
        match (N::kind(), self.notifier) {
            (Some(k), Some(asked)) if k != asked => Err(ChannelError::NotifierMismatch {
                expected: k.to_string(),
                found: asked.to_string(),
            }),
            (Some(k), _) | (None, Some(k)) => Ok(k),
            (None, None) => Err(ChannelError::Config(
                "AnyNotifier channels need ChannelBuilder::notifier_kind".into(),
            )),
        }
    }

    /// Creates a segment (named or anonymous) and both notifiers.
    fn make<K: ChannelKind, N: ChannelNotifier>(
        &self,
        name: Option<&str>,
    ) -> Result<(Arc<Link<N>>, Handoff), ChannelError> {
        let kind = self.kind::<N>()?;
        let opts = self.options(K::KIND)?.notifier_kind(kind.code());
        let segment = match name {
            Some(n) => Segment::create(n, &opts)?,
            None => Segment::anonymous(&opts)?,
        };
        let mut at = Attach {
            segment: &segment,
            name,
            fds: VecDeque::new(),
            out: Vec::new(),
            mode: self.mode,
            reclaim: self.reclaim,
        };
        let data = N::create(&mut at, Direction::Data, kind)?;
        let space = N::create(&mut at, Direction::Space, kind)?;
        let mut fds = vec![segment.as_fd().try_clone_to_owned().map_err(io("dup"))?];
        fds.append(&mut at.out);
        tracing::debug!(?name, notifier = %kind, ring = %K::KIND, "channel created");
        let link = Link {
            segment,
            data: Arc::new(data),
            space: Arc::new(space),
            detect: self.detect,
        };
        Ok((Arc::new(link), Handoff { fds }))
    }

    /// Creates a named channel and returns its receiving end.
    pub fn create_receiver<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
        &self,
        name: &str,
        idle: I,
    ) -> Result<Receiver<K, N, I>, ChannelError> {
        receiver(&self.make::<K, N>(Some(name))?.0, idle)
    }

    /// Creates a named channel and returns its sending end.
    pub fn create_sender<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
        &self,
        name: &str,
        idle: I,
    ) -> Result<Sender<K, N, I>, ChannelError> {
        sender(&self.make::<K, N>(Some(name))?.0, idle)
    }

    /// Creates an anonymous channel: its receiving end, and the fds for the sender.
    pub fn anonymous_receiver<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
        &self,
        idle: I,
    ) -> Result<(Receiver<K, N, I>, Handoff), ChannelError> {
        let (link, handoff) = self.make::<K, N>(None)?;
        Ok((receiver(&link, idle)?, handoff))
    }

    /// Creates an anonymous channel: its sending end, and the fds for the receiver.
    pub fn anonymous_sender<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
        &self,
        idle: I,
    ) -> Result<(Sender<K, N, I>, Handoff), ChannelError> {
        let (link, handoff) = self.make::<K, N>(None)?;
        Ok((sender(&link, idle)?, handoff))
    }
}

/// Attaches to an existing segment: checks the notifier kind, then finds the notifiers.
fn attach<N: ChannelNotifier>(
    segment: Segment,
    name: Option<&str>,
    fds: VecDeque<OwnedFd>,
    detect: std::time::Duration,
) -> Result<Arc<Link<N>>, ChannelError> {
    let code = segment.notifier_kind();
    let found = NotifierKind::from_code(code)
        .ok_or_else(|| ChannelError::Config(format!("segment has unknown notifier code {code}")))?;
    if let Some(expected) = N::kind() {
        if expected != found {
            return Err(ChannelError::NotifierMismatch {
                expected: expected.to_string(),
                found: found.to_string(),
            });
        }
    }
    let mut at = Attach {
        segment: &segment,
        name,
        fds,
        out: Vec::new(),
        mode: 0,
        reclaim: false,
    };
    let data = N::attach(&mut at, Direction::Data, found)?;
    let space = N::attach(&mut at, Direction::Space, found)?;
    tracing::debug!(?name, notifier = %found, ring = %segment.kind(), "channel attached");
    Ok(Arc::new(Link {
        segment,
        data: Arc::new(data),
        space: Arc::new(space),
        detect,
    }))
}

fn from_fds<N: ChannelNotifier>(fds: Vec<OwnedFd>) -> Result<Arc<Link<N>>, ChannelError> {
    let mut fds: VecDeque<_> = fds.into();
    let seg = fds.pop_front().ok_or(ChannelError::NeedsFds("segment"))?;
    attach(Segment::from_fd(seg)?, None, fds, crate::DEFAULT_DETECT)
}

fn inherited_fds() -> Result<Vec<OwnedFd>, ChannelError> {
    // SAFETY: the fds named by the variable were passed to this process for the channel
    // by `Handoff::inherit`; nothing else here owns them (documented on the callers).
    unsafe { handover::inherited() }.map_err(io("inherited fds"))
}

impl<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>> Sender<K, N, I> {
    /// Opens a named channel's sending end. Fails, naming both, if the channel's ring
    /// or notifier kind differs from `K` / `N`.
    pub fn open(name: &str, idle: I) -> Result<Self, ChannelError> {
        let link = attach(
            Segment::open(name)?,
            Some(name),
            VecDeque::new(),
            crate::DEFAULT_DETECT,
        )?;
        sender(&link, idle)
    }

    /// Attaches to an anonymous channel from its handed-over fds (segment first).
    pub fn from_fds(fds: Vec<OwnedFd>, idle: I) -> Result<Self, ChannelError> {
        sender(&from_fds(fds)?, idle)
    }

    /// In a child started with [`Handoff::inherit`]: attaches through the inherited fds.
    /// Call once per process.
    pub fn inherited(idle: I) -> Result<Self, ChannelError> {
        Self::from_fds(inherited_fds()?, idle)
    }
}

impl<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>> Receiver<K, N, I> {
    /// Opens a named channel's receiving end. Fails, naming both, if the channel's ring or
    /// notifier kind differs from `K` / `N`, and with `ReaderAttached` while a live reader
    /// holds it. A reader that closed or died can be replaced: the new one resumes at the
    /// committed head (what the old one consumed is gone; the rest is delivered once).
    pub fn open(name: &str, idle: I) -> Result<Self, ChannelError> {
        let link = attach(
            Segment::open(name)?,
            Some(name),
            VecDeque::new(),
            crate::DEFAULT_DETECT,
        )?;
        receiver(&link, idle)
    }

    /// Attaches to an anonymous channel from its handed-over fds (segment first).
    pub fn from_fds(fds: Vec<OwnedFd>, idle: I) -> Result<Self, ChannelError> {
        receiver(&from_fds(fds)?, idle)
    }

    /// In a child started with [`Handoff::inherit`]: attaches through the inherited fds.
    /// Call once per process.
    pub fn inherited(idle: I) -> Result<Self, ChannelError> {
        Self::from_fds(inherited_fds()?, idle)
    }
}
