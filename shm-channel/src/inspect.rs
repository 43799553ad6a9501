//! Looking at channels from outside, without attaching: what `shm-stat` prints.
//!
//! A snapshot maps the segment read-write (as any opener does) but changes nothing: no
//! slot is claimed, no counter or waiter word written. Values are read one by one while
//! the channel runs, so they need not agree with each other exactly.

use crate::layout::Direction;
use crate::liveness::{self, EndState};
use crate::ChannelError;
use shm_notify::NotifierKind;
use shm_ring::{Counter, Kind, Segment};

/// A snapshot of a named channel (what `shm-stat` prints).
///
/// ```
/// use shm_channel::{inspect, ChannelBuilder, Receiver, Sender, Spsc};
/// use shm_idle::Backoff;
/// use shm_notify::{Futex, NotifierKind};
/// let name = format!("doc-info-{}", std::process::id());
/// let _rx: Receiver<Spsc, Futex, Backoff> =
///     ChannelBuilder::new().capacity(4096).create_receiver(&name, Backoff::default())?;
/// let mut tx: Sender<Spsc, Futex, Backoff> = Sender::open(&name, Backoff::default())?;
/// tx.send(b"queued")?;
/// let info = inspect(&name)?;
/// assert_eq!((info.capacity, info.notifier), (4096, Some(NotifierKind::Futex)));
/// assert!(info.used > 0 && !info.is_stale());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelInfo {
    /// The channel's name (under /dev/shm).
    pub name: String,
    /// Ring kind.
    pub ring: Kind,
    /// Notifier kind, if the header names a known one.
    pub notifier: Option<NotifierKind>,
    /// Data region size in bytes.
    pub capacity: usize,
    /// Largest message.
    pub max_message_len: usize,
    /// Position of the next byte to consume (MPSC: summed over the writers' lanes).
    pub head: u64,
    /// Position after the last claimed byte (MPSC: summed over the lanes).
    pub tail: u64,
    /// Bytes claimed and not yet consumed (MPSC: in all lanes).
    pub used: u64,
    /// The two heartbeat counters (consumer, producer), as the ends last set them.
    pub heartbeats: (u64, u64),
    /// Readers parked waiting for data, and whether a wake-up is on its way.
    pub data_waiters: (u32, bool),
    /// Writers parked waiting for space, and whether a wake-up is on its way.
    pub space_waiters: (u32, bool),
    /// The reader's slot.
    pub reader: EndState,
    /// Writer slots that are not free.
    pub writers: Vec<EndState>,
    /// Creator's pid (in its own PID namespace), and whether it still holds the channel
    /// (its creator lock is held; unknown counts as alive).
    pub creator: (u32, bool),
    /// No live process holds the channel: its creator and every end have exited or let
    /// go (the kernel's end locks say so; an error while asking says "not stale").
    pub stale: bool,
}

impl ChannelInfo {
    /// Stale: no live process holds it, so no one will remove the name (see
    /// [`is_stale`](crate::is_stale)).
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Fill level in percent of the capacity.
    pub fn fill_percent(&self) -> f64 {
        100.0 * self.used as f64 / self.capacity as f64
    }
}

fn waiters(seg: &Segment, dir: Direction) -> (u32, bool) {
    let w = seg
        .extension()
        .u32(dir.waiters())
        .load(shm_ring::sync::Ordering::Acquire);
    (w / 2, w & 1 != 0)
}

/// Takes a snapshot of the named channel.
///
/// ```
/// use shm_channel::{inspect, ChannelBuilder, Receiver, Spsc};
/// use shm_idle::Backoff;
/// use shm_notify::Futex;
/// let name = format!("doc-inspect-{}", std::process::id());
/// let _rx: Receiver<Spsc, Futex, Backoff> =
///     ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
/// let info = inspect(&name)?;
/// assert_eq!((info.capacity, info.used, info.is_stale()), (64 * 1024, 0, false));
/// # Ok::<(), shm_channel::ChannelError>(())
/// ```
pub fn inspect(name: &str) -> Result<ChannelInfo, ChannelError> {
    let seg = Segment::open(name)?;
    let sum = |c| {
        (0..seg.lanes())
            .map(|lane| seg.lane_counter(lane, c))
            .sum::<u64>()
    };
    let (head, tail) = (sum(Counter::Head), sum(Counter::Tail));
    let (reader, writers) = liveness::ends(&seg);
    let (pid, _) = seg.creator();
    Ok(ChannelInfo {
        name: name.to_owned(),
        ring: seg.kind(),
        notifier: NotifierKind::from_code(seg.notifier_kind()),
        capacity: seg.capacity(),
        max_message_len: seg.max_message_len(),
        head,
        tail,
        used: seg.used_bytes() as u64,
        heartbeats: (
            seg.counter(Counter::ConsumerHeartbeat),
            seg.counter(Counter::ProducerHeartbeat),
        ),
        data_waiters: waiters(&seg, Direction::Data),
        space_waiters: waiters(&seg, Direction::Space),
        reader,
        writers: writers
            .into_iter()
            .filter(|w| *w != EndState::Free)
            .collect(),
        creator: (pid, seg.is_creator_alive()),
        stale: seg.any_locked().is_ok_and(|held| !held),
    })
}

/// Names of this user's channels (and bare segments) under /dev/shm: every entry that
/// opens as a valid segment. Others' segments, FIFOs, staging files and anything else
/// are skipped.
///
/// ```
/// use shm_channel::{channel_names, ChannelBuilder, Receiver, Spsc};
/// use shm_idle::Backoff;
/// use shm_notify::Futex;
/// let name = format!("doc-names-{}", std::process::id());
/// let _rx: Receiver<Spsc, Futex, Backoff> =
///     ChannelBuilder::new().create_receiver(&name, Backoff::default())?;
/// assert!(channel_names().contains(&name));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn channel_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .filter(|n| Segment::open(n).is_ok())
        .collect();
    names.sort();
    names
}
