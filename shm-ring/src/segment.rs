//! `Segment`: one shared mapping holding a header page, a ring and its counters.
//!
//! A segment is either *named* (`shm_open` under `/dev/shm`, found by name) or
//! *anonymous* (a sealed memfd whose fd is inherited or passed over a Unix socket).
//!
//! Unlink semantics: only the creator of a named segment removes its name, when its last
//! `Segment` handle (including producers and consumers made from it) is dropped, unless
//! [`SegmentOptions::unlink_on_drop`] says otherwise. Openers never unlink. Mappings stay
//! valid in every process after the name is gone; the memory is freed when the last
//! mapping and fd close. Anonymous segments have no name and vanish with their last fd.

use crate::layout::{Counter, Geometry, Kind, DEFAULT_LANES};
use crate::sync::{AtomicU32, Ordering, RingMemory};
use crate::SegmentError;
use std::sync::{Arc, Mutex};

#[cfg(not(shm_loom))]
mod lock;
#[cfg(not(shm_loom))]
mod name;
#[cfg(not(shm_loom))]
mod os;
#[cfg(not(shm_loom))]
pub mod process;
#[cfg(not(shm_loom))]
mod sigbus;
#[cfg(not(shm_loom))]
mod staging;
#[cfg(not(shm_loom))]
pub use staging::{abandoned_staging_files, STAGING_PREFIX};

#[cfg(not(shm_loom))]
pub use lock::{EndLock, END_LOCKS};
#[cfg(not(shm_loom))]
pub use name::{validate_name, MAX_NAME_LEN};

/// How to open an existing named segment.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    pub(crate) other_users: bool,
}

impl OpenOptions {
    /// Accept a segment owned by another user (default: refuse it, so a process of
    /// another uid cannot plant a segment under a name we expect to be ours).
    pub fn allow_other_users(mut self, allow: bool) -> Self {
        self.other_users = allow;
        self
    }
}

/// Which end's liveness stamp [`Segment::set_heartbeat`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// The consumer's stamp.
    Consumer,
    /// The producers' stamp.
    Producer,
}

/// What to create: ring kind, capacity and the creator's choices.
///
/// ```
/// use shm_ring::{Kind, SegmentOptions};
/// let opts = SegmentOptions::new(Kind::Spsc, 64 * 1024).mode(0o600).notifier_kind(0);
/// assert_eq!(opts.capacity(), 65536);
/// ```
#[derive(Clone, Debug)]
pub struct SegmentOptions {
    kind: Kind,
    capacity: usize,
    lanes: usize,
    notifier_kind: u32,
    mode: u32,
    unlink_on_drop: bool,
    reclaim_stale: bool,
}

impl SegmentOptions {
    /// A ring of `kind` with a data region of `capacity` bytes (a power of two,
    /// 64 B ..= 1 GiB; checked at creation). Mode 0600, unlinked when the creator drops it.
    /// [`Kind::Lanes`] has [`DEFAULT_LANES`](crate::layout::DEFAULT_LANES) lanes of `capacity` bytes each unless
    /// [`SegmentOptions::lanes`] says otherwise.
    pub fn new(kind: Kind, capacity: usize) -> Self {
        SegmentOptions {
            kind,
            capacity,
            lanes: if kind == Kind::Lanes {
                DEFAULT_LANES
            } else {
                1
            },
            notifier_kind: 0,
            mode: 0o600,
            unlink_on_drop: true,
            reclaim_stale: false,
        }
    }

    /// Number of lanes of a [`Kind::Lanes`] ring (`1..=64`), one per producer that may
    /// be attached at once; each has `capacity` bytes, all committed at creation. Other
    /// kinds have exactly one (checked at creation).
    ///
    /// ```
    /// use shm_ring::{Kind, Segment, SegmentOptions};
    /// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Lanes, 4096).lanes(4))?;
    /// assert_eq!(seg.lanes(), 4);
    /// assert!(Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 4096).lanes(4)).is_err());
    /// # Ok::<(), shm_ring::SegmentError>(())
    /// ```
    pub fn lanes(mut self, lanes: usize) -> Self {
        self.lanes = lanes;
        self
    }

    /// An opaque tag recorded in the header for the layer that picks a notifier.
    pub fn notifier_kind(mut self, kind: u32) -> Self {
        self.notifier_kind = kind;
        self
    }

    /// Permission bits of a named segment (default 0600). Applied with `fchmod`, so the
    /// umask does not narrow them.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Whether the creator removes the name when its last handle drops (default true).
    pub fn unlink_on_drop(mut self, unlink: bool) -> Self {
        self.unlink_on_drop = unlink;
        self
    }

    /// Whether `create` may replace a segment of the same name whose creator is dead
    /// (see [`Segment::is_stale`]); a segment whose creator lives is never replaced.
    pub fn reclaim_stale(mut self, reclaim: bool) -> Self {
        self.reclaim_stale = reclaim;
        self
    }

    /// The ring kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The data region size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn geometry(&self) -> Result<Geometry, SegmentError> {
        if self.mode & !0o777 != 0 {
            return Err(SegmentError::InvalidOptions(format!(
                "mode {:#o} has bits outside 0o777",
                self.mode
            )));
        }
        if self.lanes != 1 && self.kind != Kind::Lanes {
            return Err(SegmentError::InvalidOptions(format!(
                "a {} ring has one lane, not {}",
                self.kind, self.lanes
            )));
        }
        Geometry::with_lanes(self.capacity, self.lanes).map_err(SegmentError::InvalidOptions)
    }
}

/// A mapped ring segment. Cheap to clone; the mapping lives while any clone, producer or
/// consumer made from it lives.
///
/// ```
/// use shm_ring::{Kind, Segment, SegmentOptions, Spsc};
/// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 4096))?;
/// let mut tx = seg.producer::<Spsc>()?;
/// let mut rx = seg.consumer::<Spsc>()?;
/// tx.try_write(1, b"hello")?;
/// let mut got = Vec::new();
/// rx.read(10, |ty, body| got.push((ty, body.to_vec())))?;
/// assert_eq!(got, [(1, b"hello".to_vec())]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Segment {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    memory: RingMemory,
    geometry: Geometry,
    kind: Kind,
    notifier_kind: u32,
    /// Process-local guards for the ends that may exist once: the consumer, and the
    /// producer of each lane (SPSC protocol). Not shared memory, not part of the protocol.
    ends_taken: Mutex<(bool, Vec<bool>)>,
    #[cfg(not(shm_loom))]
    os: os::OsSegment,
}

/// The 2 KiB area in the header page that the ring never interprets, for the layers
/// above (waiter words, liveness data, notifier state).
#[derive(Debug, Clone, Copy)]
pub struct Extension<'a> {
    memory: &'a RingMemory,
}

impl<'a> Extension<'a> {
    /// Number of 32-bit words in the area.
    pub const WORDS: usize = crate::layout::EXTENSION_LEN / 4;

    /// The 32-bit word at `word` (`< WORDS`; panics otherwise).
    pub fn u32(&self, word: usize) -> &'a AtomicU32 {
        self.memory.extension_u32(word)
    }

    /// Base address of the area inside the mapping, for objects that must be real C
    /// objects in shared memory (`sem_t`). 8-byte aligned, [`EXTENSION_LEN`] bytes, valid
    /// while the segment lives.
    ///
    /// [`EXTENSION_LEN`]: crate::layout::EXTENSION_LEN
    #[cfg(not(shm_loom))]
    pub fn as_ptr(&self) -> std::ptr::NonNull<u8> {
        self.memory.extension_ptr()
    }
}

impl Segment {
    /// An anonymous segment private to this process tree: a sealed memfd here (its fd can
    /// be inherited or sent to another process), heap cells under the loom model.
    pub fn anonymous(opts: &SegmentOptions) -> Result<Segment, SegmentError> {
        let geometry = opts.geometry()?;
        #[cfg(not(shm_loom))]
        {
            let (os, memory) = os::OsSegment::create_anonymous(opts, geometry)?;
            Ok(Segment::from_parts(
                memory,
                geometry,
                opts.kind,
                opts.notifier_kind,
                os,
            ))
        }
        #[cfg(shm_loom)]
        {
            let memory = RingMemory::new_model(geometry.capacity(), geometry.lanes());
            Ok(Segment::from_parts(
                memory,
                geometry,
                opts.kind,
                opts.notifier_kind,
            ))
        }
    }

    fn from_parts(
        memory: RingMemory,
        geometry: Geometry,
        kind: Kind,
        notifier_kind: u32,
        #[cfg(not(shm_loom))] os: os::OsSegment,
    ) -> Segment {
        Segment {
            inner: Arc::new(Inner {
                memory,
                geometry,
                kind,
                notifier_kind,
                ends_taken: Mutex::new((false, vec![false; geometry.lanes()])),
                #[cfg(not(shm_loom))]
                os,
            }),
        }
    }

    /// Whether a page of this segment was lost because another process truncated its
    /// file (a named segment, or an unsealed fd handed over). The process survives such
    /// a fault: the page reads as zeros from then on, and this says so, so that every
    /// call of an end built on it can fail (shm-channel's ends return `Truncated`).
    /// Always `false` for memfd segments, sealed against shrinking.
    ///
    /// ```
    /// use shm_ring::{Kind, Segment, SegmentOptions};
    /// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 64))?;
    /// assert!(!seg.is_truncated());
    /// # Ok::<(), shm_ring::SegmentError>(())
    /// ```
    #[inline]
    pub fn is_truncated(&self) -> bool {
        #[cfg(not(shm_loom))]
        {
            sigbus::any_fault() && self.inner.os.sigbus.as_ref().is_some_and(|g| g.broken())
        }
        #[cfg(shm_loom)]
        {
            false
        }
    }

    /// Whether the file is now shorter than the mapping (another process truncated it),
    /// whether or not a lost page was touched yet. A system call (`fstat`): for error
    /// paths, not for every operation ([`Segment::is_truncated`] is the cheap check).
    pub fn is_shrunk(&self) -> bool {
        #[cfg(not(shm_loom))]
        {
            self.file_len()
                .is_some_and(|len| len < self.mapped_len() as u64)
        }
        #[cfg(shm_loom)]
        {
            false
        }
    }

    /// The ring kind recorded in the header.
    pub fn kind(&self) -> Kind {
        self.inner.kind
    }

    /// Bytes in the data region (of each lane).
    pub fn capacity(&self) -> usize {
        self.inner.geometry.capacity()
    }

    /// Number of lanes: 1, or the number a [`Kind::Lanes`] segment was created with.
    pub fn lanes(&self) -> usize {
        self.inner.geometry.lanes()
    }

    /// Largest message body the ring accepts (capacity / 8).
    pub fn max_message_len(&self) -> usize {
        self.inner.geometry.max_message_len()
    }

    /// The notifier tag the creator recorded.
    pub fn notifier_kind(&self) -> u32 {
        self.inner.notifier_kind
    }

    /// The opaque extension area of the header page.
    pub fn extension(&self) -> Extension<'_> {
        Extension {
            memory: &self.inner.memory,
        }
    }

    /// Current value of a counter of lane 0 (positions or heartbeats), for monitoring.
    /// Positions are byte counts since creation; they never wrap.
    ///
    /// ```
    /// use shm_ring::{Counter, Heartbeat, Kind, Segment, SegmentOptions, Spsc};
    /// let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 64))?;
    /// seg.producer::<Spsc>()?.try_write(1, b"abc")?;
    /// assert_eq!((seg.counter(Counter::Tail), seg.used_bytes()), (16, 16));
    /// seg.set_heartbeat(Heartbeat::Consumer, 42);
    /// assert_eq!(seg.counter(Counter::ConsumerHeartbeat), 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn counter(&self, c: Counter) -> u64 {
        self.inner.memory.counter(c).load(Ordering::Acquire)
    }

    /// A counter of lane `lane` (`< lanes()`; panics otherwise).
    pub fn lane_counter(&self, lane: usize, c: Counter) -> u64 {
        self.inner
            .memory
            .lane(lane)
            .counter(c)
            .load(Ordering::Acquire)
    }

    /// Bytes claimed and not yet consumed (tail - head, each lane clamped to its
    /// capacity), summed over the lanes: an estimate while producers and the consumer run.
    pub fn used_bytes(&self) -> usize {
        (0..self.lanes())
            .map(|lane| {
                let head = self.lane_counter(lane, Counter::Head);
                let tail = self.lane_counter(lane, Counter::Tail);
                (tail.saturating_sub(head) as usize).min(self.capacity())
            })
            .sum()
    }

    /// Stores a liveness stamp; what it means (time, counter) is the caller's choice.
    pub fn set_heartbeat(&self, which: Heartbeat, value: u64) {
        let c = match which {
            Heartbeat::Consumer => Counter::ConsumerHeartbeat,
            Heartbeat::Producer => Counter::ProducerHeartbeat,
        };
        self.inner.memory.counter(c).store(value, Ordering::Release);
    }

    pub(crate) fn memory(&self) -> &RingMemory {
        &self.inner.memory
    }

    pub(crate) fn check_kind(&self, expected: Kind) -> Result<(), SegmentError> {
        if self.inner.kind != expected {
            return Err(SegmentError::KindMismatch {
                expected,
                found: self.inner.kind,
            });
        }
        Ok(())
    }

    /// Takes the process-local right to hold the consumer (`None`) or the producer of
    /// lane `Some(lane)` (SPSC protocol).
    pub(crate) fn take_end(&self, end: Option<usize>) -> Result<(), SegmentError> {
        let mut ends = self
            .inner
            .ends_taken
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (flag, what) = match end {
            None => (&mut ends.0, "consumer"),
            Some(lane) => (&mut ends.1[lane], "producer"),
        };
        if std::mem::replace(flag, true) {
            return Err(SegmentError::AlreadyAttached(what));
        }
        Ok(())
    }

    pub(crate) fn release_end(&self, end: Option<usize>) {
        let mut ends = self
            .inner
            .ends_taken
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match end {
            None => ends.0 = false,
            Some(lane) => ends.1[lane] = false,
        }
    }
}
