//! The operating-system side of a segment: shm_open / memfd, seals, mapping, and the
//! header that the creator writes and every opener validates.

use super::lock::{self, EndLock};
use super::{process, sigbus, staging, validate_name, OpenOptions, Segment, SegmentOptions};
use crate::layout::*;
use crate::sync::{AtomicU64, Ordering, RingMemory};
use crate::SegmentError;
use memmap2::{Advice, MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{fchmod, fstat, Mode};
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;

/// The OS resources behind a mapped segment.
#[derive(Debug)]
pub(super) struct OsSegment {
    /// The mapping's SIGBUS registration (unsealed files only); released in `drop`
    /// before the mapping can be unmapped.
    pub(super) sigbus: Option<sigbus::Guard>,
    map: Arc<MmapRaw>,
    fd: OwnedFd,
    name: Option<String>,
    /// Set only in the creator of a named segment that should unlink on drop.
    unlink: Option<CString>,
    creator: (u32, u64),
    /// The header says the creator holds the creator lock (so it, not the pid, decides).
    creator_lock_flag: bool,
    /// The creator's lock, held by the creator for as long as its handles live.
    _creator_lock: Option<EndLock>,
}

impl Drop for OsSegment {
    fn drop(&mut self) {
        self.sigbus = None;
        if let Some(path) = &self.unlink {
            // A child forked from the creator holds a copy of this handle: the name stays
            // the creator's to remove.
            if self.creator.0 != std::process::id() {
                return;
            }
            // Only our own file: the name may have been removed and reused since.
            match shm_open(path.as_c_str(), OFlag::O_RDONLY, Mode::empty()) {
                Ok(f) if lock::same_file(f.as_fd(), self.fd.as_fd()) => {}
                Ok(_) | Err(Errno::ENOENT) => {
                    tracing::debug!(name = ?self.name, "name no longer ours: left alone");
                    return;
                }
                Err(e) => {
                    tracing::warn!(name = ?self.name, error = %e, "cannot check the name: left alone");
                    return;
                }
            }
            match shm_unlink(path.as_c_str()) {
                Ok(()) | Err(Errno::ENOENT) => {
                    tracing::debug!(name = ?self.name, "segment unlinked")
                }
                Err(e) => tracing::warn!(name = ?self.name, error = %e, "shm_unlink failed"),
            }
        }
    }
}

/// Removes a name created with O_EXCL if creation fails half-way.
struct UnlinkOnError<'a>(Option<&'a CString>);

impl Drop for UnlinkOnError<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            let _ = shm_unlink(path.as_c_str());
        }
    }
}

impl OsSegment {
    pub(super) fn create_anonymous(
        opts: &SegmentOptions,
        geometry: Geometry,
    ) -> Result<(OsSegment, RingMemory), SegmentError> {
        let fd = memfd_create(
            c"shm-ring",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| SegmentError::io("memfd_create", e))?;
        size_file(&fd, geometry)?;
        let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).map_err(|e| SegmentError::io("F_ADD_SEALS", e))?;
        // Sealed against shrinking: no SIGBUS guard needed.
        let seg = initialise(fd, None, None, None, opts, geometry)?;
        tracing::debug!(capacity = geometry.capacity(), kind = %opts.kind(), "anonymous segment created");
        Ok(seg)
    }
}

/// ftruncate to the layout's size.
fn size_file(fd: &OwnedFd, geometry: Geometry) -> Result<(), SegmentError> {
    let len = i64::try_from(geometry.segment_len()).expect("capacity bounded by MAX_CAPACITY");
    nix::unistd::ftruncate(fd, len).map_err(|e| SegmentError::io("ftruncate", e))
}

/// Maps `len` bytes of `fd`, guarded against truncation (see `sigbus`) before anything
/// touches it, unless the file is a memfd sealed against shrinking.
fn map(fd: &OwnedFd, len: usize) -> Result<(MmapRaw, Option<sigbus::Guard>), SegmentError> {
    let map = MmapOptions::new()
        .len(len)
        .map_raw(fd)
        .map_err(|source| SegmentError::Io { op: "mmap", source })?;
    let sealed = matches!(
        fcntl(fd, FcntlArg::F_GET_SEALS),
        Ok(seals) if seals & SealFlag::F_SEAL_SHRINK.bits() != 0
    );
    let guard = if sealed {
        None
    } else {
        sigbus::register(map.as_ptr() as usize, map.len())
    };
    Ok((map, guard))
}

/// Maps a freshly sized file, prefaults it, writes the header (magic last).
fn initialise(
    fd: OwnedFd,
    name: Option<String>,
    unlink: Option<CString>,
    creator_lock: Option<EndLock>,
    opts: &SegmentOptions,
    geometry: Geometry,
) -> Result<(OsSegment, RingMemory), SegmentError> {
    let (map, sigbus) = map(&fd, geometry.segment_len())?;
    // Touch every page now so a full tmpfs or memcg is an error here, not a SIGBUS later.
    match map.advise(Advice::PopulateWrite) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {} // kernel < 5.14
        Err(source) => {
            return Err(SegmentError::Io {
                op: "madvise(POPULATE_WRITE)",
                source,
            })
        }
    }
    let pid = std::process::id();
    let start = process::own_start_time();
    let flags = if creator_lock.is_some() {
        FLAG_CREATOR_LOCK
    } else {
        0
    };
    let base = map.as_mut_ptr();
    // SAFETY: the mapping is `segment_len` bytes, larger than the header page; the file is
    // new (O_EXCL or memfd), so no other process has a valid view yet: the header is
    // unpublished until the magic word is stored below. All offsets are aligned for their
    // types (8 for u64, 4 for u32) and the mapping is page-aligned.
    unsafe {
        base.add(OFF_VERSION).cast::<u32>().write(LAYOUT_VERSION);
        base.add(OFF_RING_KIND)
            .cast::<u32>()
            .write(opts.kind() as u32);
        base.add(OFF_NOTIFIER_KIND)
            .cast::<u32>()
            .write(opts.notifier_kind);
        base.add(OFF_FLAGS).cast::<u32>().write(flags);
        base.add(OFF_CAPACITY)
            .cast::<u64>()
            .write(geometry.capacity() as u64);
        base.add(OFF_MAX_MSG)
            .cast::<u32>()
            .write(geometry.max_message_len() as u32);
        base.add(OFF_CREATOR_PID).cast::<u32>().write(pid);
        base.add(OFF_CREATOR_START).cast::<u64>().write(start);
        base.add(OFF_TOTAL_LEN)
            .cast::<u64>()
            .write(geometry.segment_len() as u64);
        base.add(OFF_LANES)
            .cast::<u32>()
            .write(geometry.lanes() as u32);
        // Publish: an opener that sees the magic sees the fields (Acquire in `read_header`).
        AtomicU64::from_ptr(base.add(OFF_MAGIC).cast()).store(MAGIC, Ordering::Release);
    }
    let (mut os, memory) = finish(map, sigbus, fd, name, unlink, geometry, (pid, start), flags);
    os._creator_lock = creator_lock;
    Ok((os, memory))
}

#[allow(clippy::too_many_arguments)] // the parts of one OsSegment, named
fn finish(
    map: MmapRaw,
    sigbus: Option<sigbus::Guard>,
    fd: OwnedFd,
    name: Option<String>,
    unlink: Option<CString>,
    geometry: Geometry,
    creator: (u32, u64),
    flags: u32,
) -> (OsSegment, RingMemory) {
    let map = Arc::new(map);
    let base = map.as_mut_ptr();
    // SAFETY: the mapping is `geometry.segment_len()` bytes (checked by every caller), so
    // the data region, extension area and trailer computed here lie inside it and are
    // 8-aligned (page-aligned base, offsets multiples of 8); `map` is kept alive by the
    // Arc handed to RingMemory as owner.
    let memory = unsafe {
        RingMemory::new(
            NonNull::new_unchecked(base.add(HEADER_PAGE_LEN)),
            geometry.capacity(),
            NonNull::new_unchecked(base.add(HEADER_PAGE_LEN + geometry.capacity())),
            NonNull::new_unchecked(base.add(EXTENSION_OFFSET)),
            NonNull::new_unchecked(base.add(SUMMARY_OFFSET)),
            geometry.lanes(),
            geometry.lane_stride(),
            map.clone(),
        )
    };
    (
        OsSegment {
            sigbus,
            map,
            fd,
            name,
            unlink,
            creator,
            creator_lock_flag: flags & FLAG_CREATOR_LOCK != 0,
            _creator_lock: None,
        },
        memory,
    )
}

/// A snapshot of the header fields, copied once out of untrusted memory.
#[derive(Debug)]
struct Header {
    kind: Kind,
    notifier_kind: u32,
    geometry: Geometry,
    creator: (u32, u64),
    flags: u32,
}

/// Reads and validates the header of a mapping of `file_len` bytes.
fn read_header(map: &MmapRaw, file_len: usize) -> Result<Header, SegmentError> {
    if file_len < HEADER_PAGE_LEN {
        return Err(SegmentError::SizeMismatch {
            expected: HEADER_PAGE_LEN,
            found: file_len,
        });
    }
    let base = map.as_ptr();
    // SAFETY: the mapping covers at least the header page (checked above); each read is
    // aligned and volatile because another process may change these bytes at any time,
    // so we copy each field exactly once and validate the copies.
    let field = |off: usize| unsafe { base.add(off).cast::<u32>().read_volatile() };
    // SAFETY: as above, for the 8-byte fields.
    let field64 = |off: usize| unsafe { base.add(off).cast::<u64>().read_volatile() };
    // SAFETY: as above; the magic is the publication flag, so read it with Acquire.
    let magic = unsafe { AtomicU64::from_ptr(base.add(OFF_MAGIC).cast_mut().cast()) }
        .load(Ordering::Acquire);
    if magic == 0 {
        return Err(SegmentError::NotInitialised);
    }
    if magic != MAGIC {
        return Err(SegmentError::BadMagic { found: magic });
    }
    let version = field(OFF_VERSION);
    if version != LAYOUT_VERSION {
        return Err(SegmentError::VersionMismatch {
            expected: LAYOUT_VERSION,
            found: version,
        });
    }
    let raw_kind = field(OFF_RING_KIND);
    let kind = Kind::from_u32(raw_kind)
        .ok_or_else(|| SegmentError::CorruptHeader(format!("unknown ring kind {raw_kind}")))?;
    let capacity = field64(OFF_CAPACITY);
    let lanes = field(OFF_LANES);
    if lanes != 1 && kind != Kind::Lanes {
        return Err(SegmentError::CorruptHeader(format!(
            "a {kind} ring has one lane, not {lanes}"
        )));
    }
    let geometry = usize::try_from(capacity)
        .map_err(|_| capacity.to_string())
        .and_then(|c| Geometry::with_lanes(c, lanes as usize))
        .map_err(|e| SegmentError::CorruptHeader(format!("geometry: {e}")))?;
    let max_msg = field(OFF_MAX_MSG);
    if max_msg as usize != geometry.max_message_len() {
        return Err(SegmentError::CorruptHeader(format!(
            "max message length {max_msg} does not match capacity {capacity} (expected {})",
            geometry.max_message_len()
        )));
    }
    let total = field64(OFF_TOTAL_LEN);
    if total != geometry.segment_len() as u64 {
        return Err(SegmentError::CorruptHeader(format!(
            "total length {total} does not match capacity {capacity} (expected {})",
            geometry.segment_len()
        )));
    }
    if file_len != geometry.segment_len() {
        return Err(SegmentError::SizeMismatch {
            expected: geometry.segment_len(),
            found: file_len,
        });
    }
    Ok(Header {
        kind,
        notifier_kind: field(OFF_NOTIFIER_KIND),
        geometry,
        creator: (field(OFF_CREATOR_PID), field64(OFF_CREATOR_START)),
        flags: field(OFF_FLAGS),
    })
}

fn attach(fd: OwnedFd, name: Option<String>) -> Result<Segment, SegmentError> {
    let stat = fstat(&fd).map_err(|e| SegmentError::io("fstat", e))?;
    let kind = nix::sys::stat::SFlag::from_bits_truncate(stat.st_mode);
    if kind & nix::sys::stat::SFlag::S_IFMT != nix::sys::stat::SFlag::S_IFREG {
        return Err(SegmentError::NotSegmentFd(format!(
            "not a regular file (mode {:#o})",
            stat.st_mode
        )));
    }
    let file_len = usize::try_from(stat.st_size).unwrap_or(0);
    if file_len < HEADER_PAGE_LEN {
        return Err(SegmentError::SizeMismatch {
            expected: HEADER_PAGE_LEN,
            found: file_len,
        });
    }
    let (map, sigbus) = map(&fd, file_len)?;
    let header = read_header(&map, file_len)?;
    let (os, memory) = finish(
        map,
        sigbus,
        fd,
        name,
        None,
        header.geometry,
        header.creator,
        header.flags,
    );
    tracing::debug!(name = ?os.name, kind = %header.kind, capacity = header.geometry.capacity(), "segment attached");
    Ok(Segment::from_parts(
        memory,
        header.geometry,
        header.kind,
        header.notifier_kind,
        os,
    ))
}

/// `shm_open` refused us: say whose file it is and what would let us in (best effort: the
/// file may have gone since).
fn permission_denied(name: &str) -> SegmentError {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(Path::new("/dev/shm").join(name)) {
        Ok(meta) => SegmentError::PermissionDenied {
            name: name.to_owned(),
            owner: meta.uid(),
            mode: meta.mode() & 0o7777,
            me: nix::unistd::geteuid().as_raw(),
        },
        Err(_) => SegmentError::io("shm_open", Errno::EACCES),
    }
}

impl Segment {
    /// Creates a named segment under `/dev/shm` (`O_CREAT | O_EXCL`: never clobbers an
    /// existing one) and maps it. The name is removed when this creator's last handle
    /// drops, unless the options say otherwise.
    ///
    /// ```
    /// use shm_ring::{Kind, Segment, SegmentOptions};
    /// let name = format!("doc-create-{}", std::process::id());
    /// let seg = Segment::create(&name, &SegmentOptions::new(Kind::Mpsc, 4096))?;
    /// let other = Segment::open(&name)?; // e.g. in another process
    /// assert_eq!(other.kind(), Kind::Mpsc);
    /// drop((seg, other)); // the creator's drop unlinks the name
    /// assert!(Segment::open(&name).is_err());
    /// # Ok::<(), shm_ring::SegmentError>(())
    /// ```
    pub fn create(name: &str, opts: &SegmentOptions) -> Result<Segment, SegmentError> {
        let path = validate_name(name)?;
        let geometry = opts.geometry()?;
        let mode = Mode::from_bits_truncate(opts.mode);
        // Fail early (the rename below is what makes it exact).
        match Segment::is_stale(name) {
            Err(SegmentError::NotFound(_)) => {}
            Ok(true) if opts.reclaim_stale => {}
            Ok(true) => return Err(SegmentError::Stale(name.to_owned())),
            // Out of fds, no permission...: the error it is, not "exists".
            Err(e @ (SegmentError::Io { .. } | SegmentError::PermissionDenied { .. })) => {
                return Err(e)
            }
            _ => return Err(SegmentError::AlreadyExists(name.to_owned())),
        }
        // Built under a staging name, published by an atomic no-replace rename: the name
        // never shows a half-initialised segment (see `staging`).
        staging::sweep();
        let (staged, fd, creator_lock) = staging::make(mode)?;
        let guard = UnlinkOnError(Some(&staged));
        fchmod(&fd, mode).map_err(|e| SegmentError::io("fchmod", e))?;
        size_file(&fd, geometry)?;
        let (mut os, memory) = initialise(
            fd,
            Some(name.to_owned()),
            None,
            Some(creator_lock),
            opts,
            geometry,
        )?;
        let mut published = staging::publish(&staged, &path);
        if published == Err(Errno::EEXIST) && opts.reclaim_stale && Segment::is_stale(name)? {
            tracing::warn!(name, "reclaiming a stale segment (its creator is dead)");
            match shm_unlink(path.as_c_str()) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(SegmentError::io("shm_unlink", e)),
            }
            published = staging::publish(&staged, &path);
        }
        match published {
            Ok(()) => std::mem::forget(guard),
            Err(Errno::EEXIST) if !opts.reclaim_stale && Segment::is_stale(name)? => {
                return Err(SegmentError::Stale(name.to_owned()))
            }
            Err(Errno::EEXIST) => return Err(SegmentError::AlreadyExists(name.to_owned())),
            Err(e) => return Err(SegmentError::io("renameat2", e)),
        }
        os.unlink = opts.unlink_on_drop.then(|| path.clone());
        tracing::debug!(name, capacity = geometry.capacity(), kind = %opts.kind(), "segment created");
        Ok(Segment::from_parts(
            memory,
            geometry,
            opts.kind(),
            opts.notifier_kind,
            os,
        ))
    }

    /// Opens and validates an existing named segment. Every header field is checked
    /// against the others and against the file size; a mismatch is an error naming it.
    /// A segment owned by another user is refused (see [`Segment::open_with`]).
    pub fn open(name: &str) -> Result<Segment, SegmentError> {
        Segment::open_with(name, &OpenOptions::default())
    }

    /// [`Segment::open`] with options.
    ///
    /// ```
    /// use shm_ring::{Kind, OpenOptions, Segment, SegmentOptions};
    /// let name = format!("doc-open-with-{}", std::process::id());
    /// let _seg = Segment::create(&name, &SegmentOptions::new(Kind::Spsc, 64))?;
    /// let other = Segment::open_with(&name, &OpenOptions::default().allow_other_users(true))?;
    /// # Ok::<(), shm_ring::SegmentError>(())
    /// ```
    pub fn open_with(name: &str, opts: &OpenOptions) -> Result<Segment, SegmentError> {
        let path = validate_name(name)?;
        // shm_open adds O_NOFOLLOW; O_NONBLOCK keeps a FIFO planted under the name from
        // blocking us (it is refused below as not a regular file).
        let fd = match shm_open(
            path.as_c_str(),
            OFlag::O_RDWR | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(SegmentError::NotFound(name.to_owned())),
            Err(Errno::EACCES) => return Err(permission_denied(name)),
            Err(e) => return Err(SegmentError::io("shm_open", e)),
        };
        if !opts.other_users {
            let owner = fstat(&fd).map_err(|e| SegmentError::io("fstat", e))?.st_uid;
            let me = nix::unistd::geteuid().as_raw();
            if owner != me {
                return Err(SegmentError::OtherOwner { owner, me });
            }
        }
        attach(fd, Some(name.to_owned()))
    }

    /// Adopts a segment fd received from another process (inherited or over a Unix
    /// socket). What it refers to is checked before it is mapped: a regular file, and
    /// either a memfd sealed with `F_SEAL_SHRINK` (the sender cannot truncate it under
    /// our mapping) or a file of `/dev/shm` (a named segment's, guarded against
    /// truncation: see [`Segment::is_truncated`]). Anything else (an unsealed memfd, a
    /// file of another file system, a pipe) is refused.
    ///
    /// ```
    /// use shm_ring::{Segment, SegmentError};
    /// let file = std::fs::File::open("Cargo.toml").unwrap();
    /// assert!(matches!(
    ///     Segment::from_fd(file.into()),
    ///     Err(SegmentError::NotSegmentFd(_))
    /// ));
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Segment, SegmentError> {
        use nix::sys::stat::SFlag;
        let st = fstat(&fd).map_err(|e| SegmentError::io("fstat", e))?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(SegmentError::NotSegmentFd(format!(
                "not a regular file (mode {:#o})",
                st.st_mode
            )));
        }
        match fcntl(&fd, FcntlArg::F_GET_SEALS) {
            Ok(seals) if seals & SealFlag::F_SEAL_SHRINK.bits() != 0 => {}
            Ok(seals) => {
                // Unsealed shared memory: only a named segment's file, on /dev/shm.
                let shm = nix::sys::stat::stat("/dev/shm").map(|s| s.st_dev);
                if shm != Ok(st.st_dev) {
                    return Err(SegmentError::Unsealed(seals));
                }
            }
            Err(Errno::EINVAL) => {
                return Err(SegmentError::NotSegmentFd(
                    "a file outside shared memory (it takes no seals)".into(),
                ))
            }
            Err(e) => return Err(SegmentError::io("F_GET_SEALS", e)),
        }
        attach(fd, None)
    }

    /// Whether the named segment is stale: a valid segment that no live process holds:
    /// its creator and every end that took an end lock ([`Segment::lock_end`]) have
    /// exited or let go. Such a name is left behind when a creator is killed before it can
    /// unlink; [`SegmentOptions::reclaim_stale`] or [`Segment::unlink`] removes it. The
    /// answer comes from locks the kernel holds for live processes, so it is right across
    /// PID namespaces and without `/proc`; an error while asking is returned as the
    /// error, never as "stale".
    pub fn is_stale(name: &str) -> Result<bool, SegmentError> {
        let seg = Segment::open_with(name, &OpenOptions::default().allow_other_users(true))?;
        if seg.inner.os.creator_lock_flag {
            return Ok(!seg.any_locked()?);
        }
        // A creator without a lock (anonymous, or a hand-made header): pid and start
        // time, where unknown is not stale.
        let (pid, start) = seg.creator();
        Ok(!seg.any_locked()? && process::presence(pid, start) == process::Presence::Gone)
    }

    /// Removes the name of a segment (for instance a stale one whose creator died).
    /// Mappings that exist stay valid.
    pub fn unlink(name: &str) -> Result<(), SegmentError> {
        let path = validate_name(name)?;
        match shm_unlink(path.as_c_str()) {
            Ok(()) => Ok(()),
            Err(Errno::ENOENT) => Err(SegmentError::NotFound(name.to_owned())),
            Err(e) => Err(SegmentError::io("shm_unlink", e)),
        }
    }

    /// The name, for a named segment.
    pub fn name(&self) -> Option<&str> {
        self.inner.os.name.as_deref()
    }

    /// Pid and start time (clock ticks since boot) of the process that created it.
    pub fn creator(&self) -> (u32, u64) {
        self.inner.os.creator
    }

    /// Whether the creator still holds the segment: its creator lock is held (named
    /// segments), else its pid still runs with the recorded start time. Unknown (an
    /// error while asking) counts as alive.
    pub fn is_creator_alive(&self) -> bool {
        if self.inner.os.creator_lock_flag {
            return self.creator_locked().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "creator lock unreadable: presumed alive");
                true
            });
        }
        let (pid, start) = self.creator();
        process::presence(pid, start).may_run()
    }

    pub(super) fn file_len(&self) -> Option<u64> {
        fstat(&self.inner.os.fd)
            .ok()
            .map(|st| st.st_size.max(0) as u64)
    }

    /// Length of the mapping in bytes.
    pub fn mapped_len(&self) -> usize {
        self.inner.os.map.len()
    }
}

impl AsFd for Segment {
    /// The segment's fd, to hand to another process (it is CLOEXEC).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.os.fd.as_fd()
    }
}
