//! FIFO notifier: a named pipe (`mkfifo`) that both sides open `O_RDWR | O_NONBLOCK` (so
//! neither open blocks and neither side ever sees EOF). `notify` writes one byte; a full
//! pipe means a wake-up is pending already. `wait` reads until EAGAIN (draining, so an
//! edge-triggered epoll registration re-arms) and sleeps in `ppoll` while empty.

use crate::deadline;
use crate::{Notifier, PollableNotifier, Wait};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fchmod, fstat, Mode, SFlag};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A FIFO-based notifier, found by its path.
///
/// ```
/// use shm_notify::{Fifo, Notifier, Wait};
/// let path = std::env::temp_dir().join(format!("doc-fifo-{}", std::process::id()));
/// let a = Fifo::create(&path, 0o600)?; // removes the path when dropped
/// let b = Fifo::open(&path)?;          // e.g. in another process
/// b.notify()?;
/// assert_eq!(a.wait(Some(std::time::Duration::from_secs(1)))?, Wait::Notified);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Fifo {
    fd: OwnedFd,
    /// Set in the creator: the path it removes on drop, and the creating process (a
    /// child forked from it leaves the path alone).
    unlink: Option<(PathBuf, u32)>,
}

/// Device and inode of a file: what "the same file" means when a name may be reused.
fn identity(st: &nix::sys::stat::FileStat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

impl Fifo {
    /// Creates the FIFO at `path` (failing if anything exists there) with permission
    /// bits `mode` (applied with fchmod, so the umask cannot narrow them), and opens it.
    /// The path is removed when this `Fifo` is dropped.
    pub fn create(path: &Path, mode: u32) -> io::Result<Fifo> {
        let mode = Mode::from_bits(mode)
            .filter(|m| m.bits() & !0o777 == 0)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bad FIFO mode {mode:#o}"),
                )
            })?;
        nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR)?;
        let opened = Self::open(path).and_then(|f| {
            fchmod(&f.fd, mode)?;
            Ok(f)
        });
        match opened {
            Ok(mut f) => {
                f.unlink = Some((path.to_owned(), std::process::id()));
                tracing::debug!(path = %path.display(), "fifo created");
                Ok(f)
            }
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Opens an existing FIFO. Fails if `path` is not a FIFO, or belongs to another user
    /// (`PermissionDenied`; a FIFO another user planted where we expect ours could feed
    /// us wake-ups or starve us of them). [`Fifo::open_any_owner`] skips the owner check.
    pub fn open(path: &Path) -> io::Result<Fifo> {
        let fifo = Self::open_any_owner(path)?;
        let owner = fstat(&fifo.fd)?.st_uid;
        let me = nix::unistd::geteuid().as_raw();
        if owner != me {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} belongs to uid {owner}, not {me}", path.display()),
            ));
        }
        Ok(fifo)
    }

    /// Opens an existing FIFO whoever owns it (for peers of different users that share
    /// a group or mode bits on purpose). Fails if `path` is not a FIFO.
    pub fn open_any_owner(path: &Path) -> io::Result<Fifo> {
        let not_fifo = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a FIFO", path.display()),
            )
        };
        let is_fifo = |st: &nix::sys::stat::FileStat| {
            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO
        };
        // Look before opening (opening a device can do things), never through a symlink,
        // and check that what was opened is what was looked at.
        let seen = nix::sys::stat::lstat(path)?;
        if !is_fifo(&seen) {
            return Err(not_fifo());
        }
        let fd = open(
            path,
            OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
        let st = fstat(&fd)?;
        if !is_fifo(&st) || identity(&st) != identity(&seen) {
            return Err(not_fifo());
        }
        Ok(Fifo { fd, unlink: None })
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        if let Some((path, creator)) = &self.unlink {
            if *creator != std::process::id() {
                return;
            }
            // Only our own FIFO: the name may have been removed and reused since.
            let ours = match (nix::sys::stat::lstat(path.as_path()), fstat(&self.fd)) {
                (Ok(there), Ok(mine)) => identity(&there) == identity(&mine),
                _ => false,
            };
            if !ours {
                tracing::debug!(path = %path.display(), "fifo name no longer ours: left alone");
                return;
            }
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "removing fifo failed");
            }
        }
    }
}

impl Notifier for Fifo {
    fn notify(&self) -> io::Result<()> {
        match nix::unistd::write(&self.fd, &[1]) {
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

impl PollableNotifier for Fifo {
    fn drain(&self) -> io::Result<bool> {
        let mut buf = [0u8; 256];
        let mut any = false;
        loop {
            match nix::unistd::read(&self.fd, &mut buf) {
                // A pipe read returns all it holds up to the buffer's size: a short read
                // emptied it, so there is no need for a second read to see EAGAIN (one
                // system call less per wake-up; a byte written since makes a new edge).
                Ok(n) if n < buf.len() => return Ok(any || n > 0),
                Ok(_) => any = true,
                Err(Errno::EAGAIN) => return Ok(any),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for Fifo {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
