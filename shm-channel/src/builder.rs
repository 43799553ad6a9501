//! Making channels: in one process (threads), by name across processes, or anonymously
//! with the segment's and notifiers' fds handed to the peer.

use crate::engine::Engine;
use crate::layout::{Direction, WRITER_SLOTS};
use crate::link::{Link, Stats};
use crate::liveness::{PeerWatch, Side, Slot};
use crate::waiter;
use crate::ChannelKind;
use crate::{ChannelError, Receiver, Sender};
use shm_idle::ParksOn;
use shm_notify::Notifier;
use shm_ring::{Kind, Segment, SegmentOptions};
use std::sync::Arc;
use std::time::Duration;

/// Default data region size.
pub const DEFAULT_CAPACITY: usize = 64 * 1024;
/// Default liveness detection interval.
pub const DEFAULT_DETECT: Duration = Duration::from_millis(100);

/// Settings of a new channel.
///
/// ```
/// use shm_channel::ChannelBuilder;
/// let b = ChannelBuilder::new().capacity(1 << 20).mode(0o600).detect_interval(std::time::Duration::from_millis(50));
/// assert_eq!(b.get_capacity(), 1 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct ChannelBuilder {
    pub(crate) capacity: usize,
    pub(crate) mode: u32,
    pub(crate) detect: Duration,
    pub(crate) max_writers: usize,
    pub(crate) reclaim: bool,
    #[cfg(not(shm_loom))]
    pub(crate) notifier: Option<shm_notify::NotifierKind>,
}

impl Default for ChannelBuilder {
    fn default() -> Self {
        ChannelBuilder {
            capacity: DEFAULT_CAPACITY,
            mode: 0o600,
            detect: DEFAULT_DETECT,
            max_writers: WRITER_SLOTS,
            reclaim: false,
            #[cfg(not(shm_loom))]
            notifier: None,
        }
    }
}

impl ChannelBuilder {
    /// 64 KiB, mode 0600, 100 ms liveness detection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Data region size in bytes (a power of two, 64 B ..= 1 GiB); the largest message
    /// is capacity / 8. Each message takes 8 bytes of header plus its length rounded up
    /// to 8; an SPSC ring (and each `MpscLanes` lane) holds capacity - 8 bytes of them.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// The configured capacity.
    pub fn get_capacity(&self) -> usize {
        self.capacity
    }

    /// Permission bits of the segment and FIFOs (default 0600).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// How quickly a waiting end notices that its peer died (it checks four times per
    /// interval while waiting). A closed (dropped) peer is noticed at once, and so is a
    /// dead one by an end parked at least this long on an eventfd or FIFO channel: it
    /// sleeps on its peers' pidfds rather than waking to check.
    pub fn detect_interval(mut self, interval: Duration) -> Self {
        self.detect = interval.max(Duration::from_micros(100));
        self
    }

    /// MPSC only: how many writers may be attached at once, `1..=16` (default 16). Each
    /// has a lane of its own, a ring of `capacity` bytes, so the segment holds
    /// `max_writers` times `capacity` (all of it committed when the channel is created).
    /// A writer past the limit gets `TooManyWriters`; a closed or dead writer's lane is
    /// taken by the next one. Checked when the channel is created.
    ///
    /// ```
    /// use shm_channel::{ChannelBuilder, ChannelError, Mpsc, Receiver, Sender};
    /// use shm_idle::Backoff;
    /// use shm_notify::Fifo;
    /// let name = format!("doc-max-writers-{}", std::process::id());
    /// let b = ChannelBuilder::new().capacity(4096).max_writers(2);
    /// let _rx: Receiver<Mpsc, Fifo, Backoff> = b.create_receiver(&name, Backoff::default())?;
    /// let _a = Sender::<Mpsc, Fifo, Backoff>::open(&name, Backoff::default())?;
    /// let _b = Sender::<Mpsc, Fifo, Backoff>::open(&name, Backoff::default())?;
    /// let third = Sender::<Mpsc, Fifo, Backoff>::open(&name, Backoff::default());
    /// assert!(matches!(third, Err(ChannelError::TooManyWriters(2))));
    /// # Ok::<(), shm_channel::ChannelError>(())
    /// ```
    pub fn max_writers(mut self, writers: usize) -> Self {
        self.max_writers = writers;
        self
    }

    /// Named channels: replace a channel of the same name whose creator is dead (see
    /// [`is_stale`](crate::is_stale)): its segment and its FIFOs. A channel whose creator
    /// lives is never replaced (`AlreadyExists`). Default off: a dead creator's name is
    /// refused with `SegmentError::Stale`, which says so.
    ///
    /// ```
    /// use shm_channel::{ChannelBuilder, Receiver, Spsc};
    /// use shm_idle::Backoff;
    /// use shm_notify::Fifo;
    /// let name = format!("doc-reclaim-{}", std::process::id());
    /// let b = ChannelBuilder::new().reclaim_stale(true);
    /// let rx: Receiver<Spsc, Fifo, Backoff> = b.create_receiver(&name, Backoff::default())?;
    /// // Our own creator is alive: a second create is refused, reclaim or not.
    /// assert!(b.create_receiver::<Spsc, Fifo, Backoff>(&name, Backoff::default()).is_err());
    /// # Ok::<(), shm_channel::ChannelError>(())
    /// ```
    pub fn reclaim_stale(mut self, reclaim: bool) -> Self {
        self.reclaim = reclaim;
        self
    }

    /// The notifier kind, for `AnyNotifier` channels (concrete types imply it).
    #[cfg(not(shm_loom))]
    pub fn notifier_kind(mut self, kind: shm_notify::NotifierKind) -> Self {
        self.notifier = Some(kind);
        self
    }

    pub(crate) fn options(&self, kind: Kind) -> Result<SegmentOptions, ChannelError> {
        if !(1..=WRITER_SLOTS).contains(&self.max_writers) {
            return Err(ChannelError::Segment(
                shm_ring::SegmentError::InvalidOptions(format!(
                    "max_writers {} must be between 1 and {WRITER_SLOTS}",
                    self.max_writers
                )),
            ));
        }
        let opts = SegmentOptions::new(kind, self.capacity)
            .mode(self.mode)
            .reclaim_stale(self.reclaim);
        Ok(match kind {
            Kind::Lanes => opts.lanes(self.max_writers),
            _ => opts,
        })
    }
}

pub(crate) fn sender<K: ChannelKind, N: Notifier, I: ParksOn<N>>(
    link: &Arc<Link<N>>,
    idle: I,
) -> Result<Sender<K, N, I>, ChannelError> {
    // An SPSC ring has one writer: its slot, the first, is exclusive, in shared memory,
    // so a second writer is refused whichever process (this one too) or mode it uses.
    // An MPSC writer writes to the lane of its slot, so no other writer can stall it or
    // write into its records.
    let slot = match K::KIND {
        Kind::Lanes => Slot::writer(&link.segment)?,
        _ => Slot::sole_writer(&link.segment)?,
    };
    let producer = link.segment.lane_producer::<K>(slot.writer_index())?;
    attached(link, &slot, Direction::Space, Direction::Data)?;
    Ok(Sender {
        producer,
        link: link.clone(),
        idle,
        engine: Engine::new(
            Direction::Space,
            slot.sleeper(),
            PeerWatch::new(Side::Reader),
        ),
        slot,
        stats: Stats::default(),
    })
}

pub(crate) fn receiver<K: ChannelKind, N: Notifier, I: ParksOn<N>>(
    link: &Arc<Link<N>>,
    idle: I,
) -> Result<Receiver<K, N, I>, ChannelError> {
    let consumer = link.segment.consumer::<K>()?;
    let slot = Slot::reader(&link.segment)?;
    attached(link, &slot, Direction::Data, Direction::Space)?;
    Ok(Receiver {
        consumer,
        link: link.clone(),
        idle,
        engine: Engine::new(
            Direction::Data,
            slot.sleeper(),
            PeerWatch::new(Side::Writers),
        ),
        slot,
        stats: Stats::default(),
        gone_seen: false,
    })
}

/// A new end took `slot`, where it sleeps on `mine`. Whatever an end that held the slot
/// before left announced on `mine` is withdrawn (it died parked, or the memory is stale),
/// so no phantom sleeper wakes or passes wake-ups to no one. Then the other side's parked
/// ends (on `theirs`) are woken, since their peer watch must now include this end (see
/// [`crate::liveness`]); only notifiers that can watch park without a timeout, so only they
/// need it.
fn attached<N: Notifier>(
    link: &Link<N>,
    slot: &Slot,
    mine: Direction,
    theirs: Direction,
) -> Result<(), ChannelError> {
    let io = |what| move |source| ChannelError::Io { what, source };
    waiter::take_over(link.word(mine), slot.sleeper(), link.notifier(mine))
        .map_err(io("withdrawing a dead end's announcement"))?;
    if link.notifier(theirs).can_watch() {
        link.wake(theirs)
            .map_err(io("waking the parked peer of a new end"))?;
    }
    Ok(())
}

/// A channel between threads of this process, with in-process notifiers (`N::default()`,
/// e.g. [`shm_notify::ThreadNotifier`]); under loom, this is what the models run.
///
/// ```
/// use shm_channel::{channel, Spsc};
/// use shm_idle::Backoff;
/// use shm_notify::ThreadNotifier;
/// let (mut tx, mut rx) = channel::<Spsc, ThreadNotifier, _, _>(4096, Backoff::default(), Backoff::default())?;
/// let t = std::thread::spawn(move || tx.send(b"hi").unwrap());
/// assert_eq!(rx.recv_vec()?, b"hi");
/// t.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[allow(clippy::type_complexity)]
pub fn channel<K, N, IS, IR>(
    capacity: usize,
    tx_idle: IS,
    rx_idle: IR,
) -> Result<(Sender<K, N, IS>, Receiver<K, N, IR>), ChannelError>
where
    K: ChannelKind,
    N: Notifier + Default,
    IS: ParksOn<N>,
    IR: ParksOn<N>,
{
    let b = ChannelBuilder::new().capacity(capacity);
    let segment = Segment::anonymous(&b.options(K::KIND)?)?;
    let link = Arc::new(Link {
        segment,
        data: Arc::new(N::default()),
        space: Arc::new(N::default()),
        detect: b.detect,
    });
    Ok((sender(&link, tx_idle)?, receiver(&link, rx_idle)?))
}
