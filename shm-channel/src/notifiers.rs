//! How each notifier kind is created for a new channel and found by the other side:
//! futex words and semaphores live in the segment's extension area, FIFOs beside the
//! segment's name, eventfds travel as fds with the segment's.

use crate::layout::Direction;
use crate::ChannelError;
use shm_notify::Notifier;
#[cfg(not(shm_loom))]
use shm_notify::{AnyNotifier, AnyPollNotifier, EventFd, Fifo, Futex, NotifierKind, Semaphore};
use shm_ring::Segment;
use std::collections::VecDeque;
use std::os::fd::OwnedFd;

/// Where a channel end finds what it needs: the segment, its name (named mode) and the
/// fds that came with it (fd mode).
#[derive(Debug)]
pub struct Attach<'a> {
    pub(crate) segment: &'a Segment,
    pub(crate) name: Option<&'a str>,
    pub(crate) fds: VecDeque<OwnedFd>,
    /// Fds to hand to the peer (fd-based notifiers the creator made).
    pub(crate) out: Vec<OwnedFd>,
    /// Creating: permission bits for files made beside the segment (FIFOs).
    pub(crate) mode: u32,
    /// Creating: remove what a dead channel of this name left (its FIFOs).
    pub(crate) reclaim: bool,
}

/// A notifier a channel can create and attach across processes: `Futex` and `Semaphore`
/// (both modes), `Fifo` (channels opened by name), `EventFd` (channels handed over as
/// fds), `AnyNotifier` / `AnyPollNotifier` when the kind comes from configuration (all
/// in `shm_notify`). Code generic over the notifier takes it as a bound.
///
/// ```
/// use shm_channel::{ChannelBuilder, ChannelError, ChannelNotifier, Receiver, Spsc};
/// use shm_idle::{Backoff, ParksOn};
/// use shm_notify::{Fifo, Futex};
/// fn open_log<N: ChannelNotifier>(name: &str) -> Result<Receiver<Spsc, N, Backoff>, ChannelError>
/// where
///     Backoff: ParksOn<N>,
/// {
///     ChannelBuilder::new().create_receiver(name, Backoff::default())
/// }
/// let pid = std::process::id();
/// let _a = open_log::<Futex>(&format!("doc-cn-futex-{pid}"))?;
/// let _b = open_log::<Fifo>(&format!("doc-cn-fifo-{pid}"))?;
/// # Ok::<(), ChannelError>(())
/// ```
pub trait ChannelNotifier: Notifier + Sized + 'static {
    /// The kind recorded in the header (`None` for [`shm_notify::AnyNotifier`]: whatever
    /// the header says).
    #[cfg(not(shm_loom))]
    fn kind() -> Option<NotifierKind>;

    /// Makes the notifier of `dir` for a new channel of notifier kind `kind`.
    #[cfg(not(shm_loom))]
    fn create(
        at: &mut Attach<'_>,
        dir: Direction,
        kind: NotifierKind,
    ) -> Result<Self, ChannelError>;

    /// Finds the notifier of `dir` of an existing channel of notifier kind `kind`.
    #[cfg(not(shm_loom))]
    fn attach(
        at: &mut Attach<'_>,
        dir: Direction,
        kind: NotifierKind,
    ) -> Result<Self, ChannelError>;
}

/// Where a named channel's FIFO of direction `dir` lives.
#[cfg(not(shm_loom))]
pub(crate) fn fifo_path(name: &str, dir: Direction) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/dev/shm/{name}.{}.fifo", dir.name()))
}

/// Whether `path` is a FIFO (not following symlinks).
#[cfg(not(shm_loom))]
pub(crate) fn is_fifo(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

#[cfg(not(shm_loom))]
mod imp {
    use super::*;
    use crate::layout::{DATA_FUTEX, DATA_SEM_BYTES, SPACE_FUTEX, SPACE_SEM_BYTES};
    use std::path::PathBuf;
    use std::sync::Arc;

    fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> ChannelError {
        move |source| ChannelError::Io { what, source }
    }

    fn futex(at: &Attach<'_>, dir: Direction) -> Futex {
        let word = match dir {
            Direction::Data => DATA_FUTEX,
            Direction::Space => SPACE_FUTEX,
        };
        let ptr =
            std::ptr::NonNull::new(at.segment.extension().u32(word).as_ptr()).expect("mapped");
        // SAFETY: a 4-aligned word of the extension area reserved for this futex, kept
        // mapped by the segment handed over as owner, accessed only atomically.
        unsafe { Futex::from_raw(ptr, Arc::new(at.segment.clone())) }
    }

    fn sem_at(at: &Attach<'_>, dir: Direction) -> std::ptr::NonNull<u8> {
        let off = match dir {
            Direction::Data => DATA_SEM_BYTES,
            Direction::Space => SPACE_SEM_BYTES,
        };
        // SAFETY: the offset lies inside the 2 KiB extension area (layout.rs).
        unsafe { at.segment.extension().as_ptr().add(off) }
    }

    fn fifo_path(at: &Attach<'_>, dir: Direction) -> Result<PathBuf, ChannelError> {
        let name = at.name.ok_or(ChannelError::NeedsName("fifo"))?;
        Ok(super::fifo_path(name, dir))
    }

    fn check(kind: NotifierKind, want: NotifierKind) -> Result<(), ChannelError> {
        if kind != want {
            return Err(ChannelError::NotifierMismatch {
                expected: want,
                found: kind,
            });
        }
        Ok(())
    }

    impl ChannelNotifier for Futex {
        fn kind() -> Option<NotifierKind> {
            Some(NotifierKind::Futex)
        }
        fn create(
            at: &mut Attach<'_>,
            dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            check(kind, NotifierKind::Futex)?;
            Ok(futex(at, dir))
        }
        fn attach(
            at: &mut Attach<'_>,
            dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            <Self as ChannelNotifier>::create(at, dir, kind)
        }
    }

    impl ChannelNotifier for Semaphore {
        fn kind() -> Option<NotifierKind> {
            Some(NotifierKind::Semaphore)
        }
        fn create(
            at: &mut Attach<'_>,
            dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            check(kind, NotifierKind::Semaphore)?;
            // SAFETY: an 8-aligned, 128-byte slot of the extension area reserved for this
            // semaphore, in a segment nobody else has attached to yet; the owner keeps it.
            unsafe { Semaphore::init(sem_at(at, dir), Arc::new(at.segment.clone())) }
                .map_err(io("sem_init"))
        }
        fn attach(
            at: &mut Attach<'_>,
            dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            check(kind, NotifierKind::Semaphore)?;
            // SAFETY: the creator initialised a semaphore there (same layout version).
            Ok(unsafe { Semaphore::attach(sem_at(at, dir), Arc::new(at.segment.clone())) })
        }
    }

    impl ChannelNotifier for Fifo {
        fn kind() -> Option<NotifierKind> {
            Some(NotifierKind::Fifo)
        }
        fn create(
            at: &mut Attach<'_>,
            dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            check(kind, NotifierKind::Fifo)?;
            let path = fifo_path(at, dir)?;
            // The segment's name was just created exclusively, so no live channel owns a
            // FIFO here (a channel removes its FIFOs before its segment's name): what is
            // left belongs to a channel whose creator died.
            if at.reclaim && super::is_fifo(&path) {
                tracing::warn!(path = %path.display(), "removing the FIFO of a dead channel");
                std::fs::remove_file(&path).map_err(io("remove stale fifo"))?;
            }
            Fifo::create(&path, at.mode).map_err(|e| match (e.kind(), at.name) {
                // Our segment name was free, so this FIFO outlived a dead channel.
                (std::io::ErrorKind::AlreadyExists, Some(name)) if super::is_fifo(&path) => {
                    shm_ring::SegmentError::Stale(name.to_owned()).into()
                }
                _ => io("mkfifo")(e),
            })
        }
        fn attach(
            at: &mut Attach<'_>,
            dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            check(kind, NotifierKind::Fifo)?;
            Fifo::open(&fifo_path(at, dir)?).map_err(io("open fifo"))
        }
    }

    impl ChannelNotifier for EventFd {
        fn kind() -> Option<NotifierKind> {
            Some(NotifierKind::EventFd)
        }
        fn create(
            at: &mut Attach<'_>,
            _dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            check(kind, NotifierKind::EventFd)?;
            if at.name.is_some() {
                return Err(ChannelError::NeedsFds("eventfd"));
            }
            let efd = EventFd::new().map_err(io("eventfd"))?;
            let fd = std::os::fd::AsFd::as_fd(&efd)
                .try_clone_to_owned()
                .map_err(io("dup"))?;
            at.out.push(fd);
            Ok(efd)
        }
        fn attach(
            at: &mut Attach<'_>,
            _dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            check(kind, NotifierKind::EventFd)?;
            let fd = at
                .fds
                .pop_front()
                .ok_or(ChannelError::NeedsFds("eventfd"))?;
            EventFd::from_fd(fd).map_err(io("eventfd"))
        }
    }

    impl ChannelNotifier for AnyPollNotifier {
        fn kind() -> Option<NotifierKind> {
            None
        }
        fn create(
            at: &mut Attach<'_>,
            dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            Ok(match kind {
                NotifierKind::Fifo => <Fifo as ChannelNotifier>::create(at, dir, kind)?.into(),
                NotifierKind::EventFd => {
                    <EventFd as ChannelNotifier>::create(at, dir, kind)?.into()
                }
                other => return Err(ChannelError::NotPollable(other)),
            })
        }
        fn attach(
            at: &mut Attach<'_>,
            dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            Ok(match kind {
                NotifierKind::Fifo => <Fifo as ChannelNotifier>::attach(at, dir, kind)?.into(),
                NotifierKind::EventFd => {
                    <EventFd as ChannelNotifier>::attach(at, dir, kind)?.into()
                }
                other => return Err(ChannelError::NotPollable(other)),
            })
        }
    }

    impl ChannelNotifier for AnyNotifier {
        fn kind() -> Option<NotifierKind> {
            None
        }
        fn create(
            at: &mut Attach<'_>,
            dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            Ok(match kind {
                NotifierKind::Futex => <Futex as ChannelNotifier>::create(at, dir, kind)?.into(),
                NotifierKind::Semaphore => {
                    <Semaphore as ChannelNotifier>::create(at, dir, kind)?.into()
                }
                NotifierKind::Fifo => <Fifo as ChannelNotifier>::create(at, dir, kind)?.into(),
                NotifierKind::EventFd => {
                    <EventFd as ChannelNotifier>::create(at, dir, kind)?.into()
                }
            })
        }
        fn attach(
            at: &mut Attach<'_>,
            dir: Direction,
            kind: NotifierKind,
        ) -> Result<Self, ChannelError> {
            Ok(match kind {
                NotifierKind::Futex => <Futex as ChannelNotifier>::attach(at, dir, kind)?.into(),
                NotifierKind::Semaphore => {
                    <Semaphore as ChannelNotifier>::attach(at, dir, kind)?.into()
                }
                NotifierKind::Fifo => <Fifo as ChannelNotifier>::attach(at, dir, kind)?.into(),
                NotifierKind::EventFd => {
                    <EventFd as ChannelNotifier>::attach(at, dir, kind)?.into()
                }
            })
        }
    }
}
