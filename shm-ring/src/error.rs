//! Error types, one per operation family.

use crate::layout::Kind;
use std::io;
use thiserror::Error;

/// Why a segment could not be created, opened or attached to.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The segment name is not acceptable.
    #[error("invalid segment name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The options are not acceptable.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A segment of that name already exists and may be in use (create never clobbers).
    #[error(
        "segment {0:?} already exists and may be in use: choose another name, or open it \
         instead of creating it"
    )]
    AlreadyExists(String),
    /// The name is held by a segment no live process holds any more: its creator died
    /// without removing it. Create with `reclaim_stale(true)` to replace it.
    #[error(
        "segment {0:?} is stale: its creator died without removing it and no live process \
         holds it; create with reclaim_stale(true) (SegmentOptions, or ChannelBuilder for a \
         channel) to replace it, or remove /dev/shm/{0}"
    )]
    Stale(String),
    /// No segment of that name exists (yet).
    #[error(
        "segment {0:?} does not exist: start the process that creates it first, or wait for \
         it (shm_channel's Sender::open_timeout and Receiver::open_timeout do)"
    )]
    NotFound(String),
    /// The segment's file does not let this user in: it belongs to another user, created
    /// with a mode that keeps others out (0600 by default).
    #[error(
        "permission denied opening segment {name:?} (owner uid {owner}, mode {mode:03o}; this \
         process runs as uid {me}): let its creator hand the channel over as fds (fd \
         hand-over, shm_channel::Handoff), or create it with a mode that lets this user in"
    )]
    PermissionDenied {
        /// The segment name.
        name: String,
        /// The file's owner.
        owner: u32,
        /// The file's permission bits.
        mode: u32,
        /// Our effective uid.
        me: u32,
    },
    /// The segment's creator has not finished writing its header (retry shortly), or the
    /// object is not a ring segment at all.
    #[error("segment is not initialised (magic word is zero)")]
    NotInitialised,
    /// The header does not belong to a segment of this library.
    #[error("bad magic {found:#018x}: not a shm-ring segment")]
    BadMagic {
        /// The word found.
        found: u64,
    },
    /// The segment uses another layout version.
    #[error("layout version mismatch: this library speaks {expected}, segment has {found}")]
    VersionMismatch {
        /// Ours.
        expected: u32,
        /// Theirs.
        found: u32,
    },
    /// A header field holds an impossible value.
    #[error("corrupt header: {0}")]
    CorruptHeader(String),
    /// The file size does not match what the header describes (truncated or grown).
    #[error("segment size is {found} bytes but its header describes {expected}")]
    SizeMismatch {
        /// From the header.
        expected: usize,
        /// From fstat.
        found: usize,
    },
    /// An anonymous segment arrived without the seals that stop a peer from shrinking it.
    #[error("memfd segment is not sealed against shrinking (seals {0:#x})")]
    Unsealed(i32),
    /// An fd handed over is not a shared-memory segment's file (a regular file, a pipe,
    /// a directory...): only a sealed memfd or a file of `/dev/shm` is mapped.
    #[error("fd is not a shared-memory segment: {0}")]
    NotSegmentFd(String),
    /// The segment holds another kind of ring than the caller asked for.
    #[error(
        "ring kind mismatch: caller expects {expected}, segment is {found}: open it as the \
         kind it was created as"
    )]
    KindMismatch {
        /// Asked for.
        expected: Kind,
        /// Found in the header.
        found: Kind,
    },
    /// The named segment belongs to another user (refused unless
    /// [`OpenOptions::allow_other_users`](crate::OpenOptions::allow_other_users)).
    #[error(
        "segment is owned by uid {owner}, not by this process's uid {me}: a segment of \
         another user is refused unless OpenOptions::allow_other_users(true); across users, \
         prefer handing the channel over as fds (shm_channel::Handoff)"
    )]
    OtherOwner {
        /// The file's owner.
        owner: u32,
        /// Our effective uid.
        me: u32,
    },
    /// This process already holds the end that may exist only once (the consumer, or the
    /// producer of an SPSC ring).
    #[error("this process already holds the {0} of this segment")]
    AlreadyAttached(&'static str),
}

impl SegmentError {
    pub(crate) fn io(op: &'static str, errno: nix::errno::Errno) -> Self {
        SegmentError::Io {
            op,
            source: io::Error::from_raw_os_error(errno as i32),
        }
    }
}

/// Why a record could not be written or claimed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// Not enough free space right now; retry after the consumer catches up.
    #[error("ring is full")]
    Full,
    /// The body is longer than the ring's maximum message length (capacity / 8).
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// Body length asked for.
        len: usize,
        /// The ring's limit.
        max: usize,
    },
    /// Message types must be `>= 1` (`-1` is padding, the rest reserved).
    #[error("message type {0} is invalid: types must be >= 1")]
    InvalidType(i32),
    /// The shared positions are impossible: the segment is corrupt or a peer misbehaves.
    #[error("corrupt ring: {0}")]
    Corrupt(String),
    /// The consumer unblocked this claim (took it for a dead producer's) before it was
    /// committed; the record was dropped as padding.
    #[error("claim was unblocked by the consumer before commit")]
    Unblocked,
}

/// Why the consumer could not read on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// A record header or a shared position is impossible. Records before it were
    /// delivered and consumed; the ring stays stopped at `position`.
    #[error("corrupt ring at position {position}: {reason}")]
    Corrupt {
        /// Stream position of the bad record.
        position: u64,
        /// What is wrong.
        reason: String,
    },
}
