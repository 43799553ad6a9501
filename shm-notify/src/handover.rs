//! Handing file descriptors (a memfd segment, eventfds) to another process: over a Unix
//! stream socket with `SCM_RIGHTS`, checking who the peer is (`SO_PEERCRED`), or by
//! inheritance across `exec` (CLOEXEC cleared in the child only, fd numbers passed in an
//! environment variable).

use nix::errno::Errno;
use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::Command;

/// Most fds one message may carry.
pub const MAX_FDS: usize = 16;
/// Environment variable that carries inherited fd numbers (`3,7`).
pub const INHERIT_ENV: &str = "SHM_IPC_FDS";

/// Why fds could not be received.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandoverError {
    /// A system call failed.
    Io(io::Error),
    /// The peer runs as another user than allowed.
    PeerUid {
        /// The uid we accept.
        expected: u32,
        /// The peer's uid.
        found: u32,
    },
    /// A message arrived without any file descriptors (forged or out of step).
    NoFds,
    /// The peer closed the socket before sending.
    Closed,
    /// More fds than [`MAX_FDS`] were sent; the kernel truncated the message.
    Truncated,
}

impl std::fmt::Display for HandoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandoverError::Io(e) => write!(f, "fd hand-over failed: {e}"),
            HandoverError::PeerUid { expected, found } => {
                write!(
                    f,
                    "peer runs as uid {found}, only uid {expected} may hand over fds"
                )
            }
            HandoverError::NoFds => f.write_str("message carried no file descriptors"),
            HandoverError::Closed => f.write_str("peer closed the socket before sending fds"),
            HandoverError::Truncated => {
                write!(f, "more than {MAX_FDS} fds sent; message truncated")
            }
        }
    }
}

impl std::error::Error for HandoverError {}

impl From<Errno> for HandoverError {
    fn from(e: Errno) -> Self {
        HandoverError::Io(e.into())
    }
}

/// Sends `fds` (at most [`MAX_FDS`]) in one message with a one-byte payload.
///
/// ```
/// use shm_notify::handover::{recv_fds, send_fds};
/// let (a, b) = std::os::unix::net::UnixStream::pair()?;
/// let efd = shm_notify::EventFd::new()?;
/// send_fds(&a, &[std::os::fd::AsFd::as_fd(&efd)])?;
/// let fds = recv_fds(&b)?;
/// assert_eq!(fds.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn send_fds(sock: &UnixStream, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.is_empty() || fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("send 1 to {MAX_FDS} fds"),
        ));
    }
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&[0x46])],
        &cmsg,
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// The uid of the process at the other end of `sock` (as of its connect).
pub fn peer_uid(sock: &UnixStream) -> io::Result<u32> {
    Ok(getsockopt(sock, sockopt::PeerCredentials)?.uid())
}

/// Receives one message of fds, accepting only a peer of our own effective uid.
pub fn recv_fds(sock: &UnixStream) -> Result<Vec<OwnedFd>, HandoverError> {
    recv_fds_from(sock, nix::unistd::geteuid().as_raw())
}

/// Receives one message of fds from a peer running as `uid`. The peer's credentials are
/// checked before anything is read; received fds are CLOEXEC.
pub fn recv_fds_from(sock: &UnixStream, uid: u32) -> Result<Vec<OwnedFd>, HandoverError> {
    let found = peer_uid(sock).map_err(HandoverError::Io)?;
    if found != uid {
        return Err(HandoverError::PeerUid {
            expected: uid,
            found,
        });
    }
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = loop {
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            r => break r?,
        }
    };
    if msg.bytes == 0 {
        return Err(HandoverError::Closed);
    }
    let cmsgs = msg.cmsgs().map_err(|_| HandoverError::Truncated)?;
    let mut fds = Vec::new();
    for c in cmsgs {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these fds in our table for us alone.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if fds.is_empty() {
        return Err(HandoverError::NoFds);
    }
    tracing::debug!(count = fds.len(), peer_uid = found, "received fds");
    Ok(fds)
}

/// Arranges for `fds` to survive `exec` in the child `cmd` starts (and only there), and
/// tells the child their numbers through [`INHERIT_ENV`]. The fds must stay open in the
/// parent until the child has started.
pub fn inherit(cmd: &mut Command, fds: &[BorrowedFd<'_>]) {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let list = raw
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join(",");
    cmd.env(INHERIT_ENV, list);
    // SAFETY: the closure runs between fork and exec and only calls fcntl, which is
    // async-signal-safe, on plain integers it owns.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            for &fd in &raw {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// In a child started with [`inherit`]: takes ownership of the inherited fds, in the
/// order given, and marks them CLOEXEC again. Fails if the variable is missing or names
/// an fd that is not open.
///
/// # Safety
/// Call it once per process, and nothing else in the process may own those fd numbers.
pub unsafe fn inherited() -> io::Result<Vec<OwnedFd>> {
    let list = std::env::var(INHERIT_ENV).map_err(|_| {
        io::Error::new(io::ErrorKind::NotFound, format!("{INHERIT_ENV} is not set"))
    })?;
    list.split(',')
        .map(|s| {
            let fd: RawFd = s.parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad fd {s:?} in {INHERIT_ENV}"),
                )
            })?;
            // SAFETY: fcntl on any integer is harmless; it fails with EBADF if not open.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: open (checked) and ours alone (the caller's contract).
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect()
}
