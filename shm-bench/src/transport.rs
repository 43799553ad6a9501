//! The rows: one `Endpoint` type per way of moving a message between the two processes,
//! set up by the parent and attached by the child.

use crate::scenario::Settled;
use shm_channel::{ChannelBuilder, ChannelNotifier, Receiver, Sender};
use shm_channel::{ChannelKind, Mpsc, Spsc};
use shm_idle::{Adaptive, Backoff, Blocking, BusySpin, EpollPark, ParksOn, Sleeping, Yielding};
use shm_notify::{EventFd, Fifo, Futex, Notifier, Semaphore};
use shm_ring::sync::Ordering;
use shm_ring::{Kind, Segment, SegmentOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

/// Marks the stop message: the first 8 bytes all ones.
pub const STOP: u64 = u64::MAX;

/// One side of a row's two-way link.
pub trait Endpoint {
    /// Sends one message (blocking until it is sent).
    fn send(&mut self, msg: &[u8]);
    /// Receives the next message into `buf`; `false` when the peer sent stop.
    fn recv(&mut self, buf: &mut Vec<u8>) -> bool;
    /// Tells the peer to stop.
    fn stop(&mut self, size: usize) {
        let mut m = vec![0u8; size.max(8)];
        m[..8].copy_from_slice(&STOP.to_le_bytes());
        self.send(&m);
    }
    /// Notify calls this side made.
    fn notifies(&self) -> u64 {
        0
    }
    /// Times the receiving end went to sleep (channel rows; 0 where not counted).
    fn parks(&self) -> u64 {
        0
    }
    /// `adaptive` rows: what the receiving end's strategy settled on.
    fn settled(&mut self) -> Option<Settled> {
        None
    }
    /// Receives every message already there (at least one), handing each to `f`;
    /// `false` once the stop message arrives. Transports without batches take one.
    fn recv_batch(&mut self, buf: &mut Vec<u8>, f: &mut dyn FnMut(&[u8])) -> bool {
        let go = self.recv(buf);
        if go {
            f(buf);
        }
        go
    }
}

fn is_stop(m: &[u8]) -> bool {
    m.len() >= 8 && m[..8] == STOP.to_le_bytes()
}

/// How the parent set a row up: its endpoint, the child's arguments, fds to inherit.
pub struct Setup {
    pub endpoint: Box<dyn Endpoint>,
    pub args: Vec<String>,
    pub fds: Vec<OwnedFd>,
}

// ---------------------------------------------------------------- floors

/// Extension words of the floor segment.
const TO_CHILD: usize = 0;
const TO_PARENT: usize = 32;
const STOPPED: usize = 64;

enum Signal {
    Spin { last: u32 },
    Futex(Futex, Futex),
    EventFd(EventFd, EventFd),
}

/// Raw ping-pong with no ring and no payload: the physical floors.
struct Floor {
    seg: Segment,
    out: usize,
    inp: usize,
    sent: u32,
    signal: Signal,
}

impl Endpoint for Floor {
    fn send(&mut self, _msg: &[u8]) {
        self.sent = self.sent.wrapping_add(1);
        match &self.signal {
            Signal::Spin { .. } => self
                .seg
                .extension()
                .u32(self.out)
                .store(self.sent, Ordering::Release),
            Signal::Futex(out, _) => out.notify().unwrap(),
            Signal::EventFd(out, _) => out.notify().unwrap(),
        }
    }

    fn recv(&mut self, _buf: &mut Vec<u8>) -> bool {
        match &mut self.signal {
            Signal::Spin { last } => {
                let word = self.seg.extension().u32(self.inp);
                loop {
                    let v = word.load(Ordering::Acquire);
                    if v != *last {
                        *last = v;
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            Signal::Futex(_, inp) => while inp.wait(None).unwrap() != shm_notify::Wait::Notified {},
            Signal::EventFd(_, inp) => {
                while inp.wait(None).unwrap() != shm_notify::Wait::Notified {}
            }
        }
        self.seg.extension().u32(STOPPED).load(Ordering::Acquire) == 0
    }

    fn stop(&mut self, size: usize) {
        self.seg
            .extension()
            .u32(STOPPED)
            .store(1, Ordering::Release);
        self.send(&vec![0; size]);
    }
}

fn futex_word(seg: &Segment, word: usize) -> Futex {
    let ptr = std::ptr::NonNull::new(seg.extension().u32(word).as_ptr()).unwrap();
    // SAFETY: an aligned extension word used only as this futex, kept mapped by the owner.
    unsafe { Futex::from_raw(ptr, Arc::new(seg.clone())) }
}

fn floor(seg: Segment, parent: bool, kind: &str, mut fds: std::vec::IntoIter<OwnedFd>) -> Floor {
    let (out, inp) = if parent {
        (TO_CHILD, TO_PARENT)
    } else {
        (TO_PARENT, TO_CHILD)
    };
    let signal = match kind {
        "spin" => Signal::Spin { last: 0 },
        "futex" => Signal::Futex(futex_word(&seg, 96 + out), futex_word(&seg, 96 + inp)),
        "eventfd" => {
            let (a, b) = (fds.next().unwrap(), fds.next().unwrap());
            let (a, b) = (EventFd::from_fd(a).unwrap(), EventFd::from_fd(b).unwrap());
            if parent {
                Signal::EventFd(a, b)
            } else {
                Signal::EventFd(b, a)
            }
        }
        k => panic!("unknown floor {k}"),
    };
    Floor {
        seg,
        out,
        inp,
        sent: 0,
        signal,
    }
}

// ---------------------------------------------------------------- the ring floor

/// Bytes of ring per direction, as the channel rows get (`1 << 16`).
const RING_BYTES: usize = 1 << 16;
/// The control line of a direction: the reader's published position.
const RING_CTL: usize = 128;

/// The simplest correct SPSC ring between the two processes, one direction each way:
/// slots of `8 + payload` bytes rounded up to a cache line, each `[seq: u32, len: u32,
/// payload]`. The writer copies the payload, then stores the header word (Release); the
/// reader waits for the sequence it expects (Acquire) and hands the payload over in
/// place. The reader publishes its position every quarter ring, the writer reads it only
/// when it finds the ring full. Nothing else: no waiter protocol, no zeroing, no record
/// kinds, no liveness. What a stream row gets against it is how close to the limit of
/// moving these lines between the two CPUs it runs.
struct RingFloor {
    /// The mapping (both directions), unmapped on drop.
    map: *mut u8,
    len: usize,
    out: RingHalf,
    inp: RingHalf,
}

/// One direction of a [`RingFloor`], seen from one side.
struct RingHalf {
    /// Offset of its control line in the mapping; the slots follow it.
    at: usize,
    slot: usize,
    slots: usize,
    /// Messages written (writer side) or read (reader side) so far.
    pos: u64,
    /// The reader's position as the writer last read it.
    seen: u64,
}

/// Slot size and count for messages of `size` bytes.
fn ring_geometry(size: usize) -> (usize, usize) {
    let slot = (8 + size.max(8)).div_ceil(64) * 64;
    (slot, (RING_BYTES / slot).max(16))
}

impl RingFloor {
    fn new(fd: &OwnedFd, size: usize, parent: bool) -> RingFloor {
        let (slot, slots) = ring_geometry(size);
        let half = RING_CTL + slot * slots;
        let len = 2 * half;
        // SAFETY: maps `len` bytes of a memfd sized to exactly that by the parent; the
        // mapping is owned by this value and unmapped in drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(fd),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED, "mmap ring floor");
        let dir = |at| RingHalf {
            at,
            slot,
            slots,
            pos: 0,
            seen: 0,
        };
        let (out, inp) = if parent { (0, half) } else { (half, 0) };
        RingFloor {
            map: map.cast(),
            len,
            out: dir(out),
            inp: dir(inp),
        }
    }

    fn word(&self, offset: usize) -> &shm_ring::sync::AtomicU64 {
        // SAFETY: every offset passed is 8-aligned and inside the mapping (control lines
        // and slot headers), which lives as long as `self`.
        unsafe { shm_ring::sync::AtomicU64::from_ptr(self.map.add(offset).cast()) }
    }

    fn slot_at(h: &RingHalf, pos: u64) -> usize {
        h.at + RING_CTL + (pos as usize % h.slots) * h.slot
    }

    /// The next message if it is there: its payload's offset and length.
    fn peek(&self) -> Option<(usize, usize)> {
        let h = &self.inp;
        let at = Self::slot_at(h, h.pos);
        let w = self.word(at).load(Ordering::Acquire);
        (w as u32 == (h.pos + 1) as u32).then_some((at + 8, (w >> 32) as usize))
    }

    fn consumed(&mut self) {
        self.inp.pos += 1;
        let every = (self.inp.slots as u64 / 4).max(1);
        if self.inp.pos.is_multiple_of(every) {
            self.word(self.inp.at)
                .store(self.inp.pos, Ordering::Release);
        }
    }
}

impl Drop for RingFloor {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; nothing refers to it after.
        unsafe { libc::munmap(self.map.cast(), self.len) };
    }
}

impl Endpoint for RingFloor {
    fn send(&mut self, msg: &[u8]) {
        let (slots, pos) = (self.out.slots as u64, self.out.pos);
        while pos - self.out.seen >= slots {
            self.out.seen = self.word(self.out.at).load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        let at = Self::slot_at(&self.out, pos);
        assert!(
            msg.len() + 8 <= self.out.slot,
            "message larger than the slot"
        );
        // SAFETY: the slot lies inside the mapping and the reader is done with it (its
        // published position is less than a ring behind); the payload fits (checked).
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.map.add(at + 8), msg.len()) };
        let header = (pos + 1) as u32 as u64 | (msg.len() as u64) << 32;
        self.word(at).store(header, Ordering::Release);
        self.out.pos += 1;
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        let (at, len) = loop {
            if let Some(m) = self.peek() {
                break m;
            }
            std::hint::spin_loop();
        };
        // SAFETY: the header's Acquire load published these `len` bytes (bounded by the
        // slot, which our own parent sized); the writer does not touch the slot again
        // until we publish a position past it.
        let m = unsafe { std::slice::from_raw_parts(self.map.add(at), len.min(self.inp.slot - 8)) };
        buf.clear();
        buf.extend_from_slice(m);
        self.consumed();
        !is_stop(buf)
    }

    fn recv_batch(&mut self, buf: &mut Vec<u8>, f: &mut dyn FnMut(&[u8])) -> bool {
        if !self.recv(buf) {
            return false;
        }
        f(buf);
        // At most a channel row's poll limit per batch, like the channel rows.
        for _ in 1..1024 {
            let Some((at, len)) = self.peek() else { break };
            // SAFETY: as in `recv`.
            let m =
                unsafe { std::slice::from_raw_parts(self.map.add(at), len.min(self.inp.slot - 8)) };
            if is_stop(m) {
                self.consumed();
                return false;
            }
            f(m);
            self.consumed();
        }
        true
    }
}

/// A memfd sized for a ring floor of messages of `size` bytes.
fn ring_floor_fd(size: usize) -> OwnedFd {
    let (slot, slots) = ring_geometry(size);
    let fd =
        nix::sys::memfd::memfd_create(c"shm-bench-ring", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .expect("memfd_create");
    nix::unistd::ftruncate(&fd, (2 * (RING_CTL + slot * slots)) as i64).expect("ftruncate");
    fd
}

// ---------------------------------------------------------------- kernel paths

/// A byte stream (Unix socket, or a pair of pipes) carrying fixed-size messages.
struct Stream {
    r: std::fs::File,
    w: std::fs::File,
}

impl Endpoint for Stream {
    fn send(&mut self, msg: &[u8]) {
        self.w.write_all(msg).unwrap();
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        self.r.read_exact(buf).unwrap();
        !is_stop(buf)
    }
}

// ---------------------------------------------------------------- channels

pub(crate) struct Chan<KT: ChannelKind, KR: ChannelKind, N: Notifier, I> {
    pub(crate) tx: Sender<KT, N, I>,
    pub(crate) rx: Receiver<KR, N, I>,
}

impl<KT: ChannelKind, KR: ChannelKind, N: Notifier, I: ParksOn<N> + MakeIdle> Endpoint
    for Chan<KT, KR, N, I>
{
    fn send(&mut self, msg: &[u8]) {
        self.tx.send(msg).unwrap();
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        let n = self
            .rx
            .recv(|m| {
                buf[..m.len()].copy_from_slice(m);
                m.len()
            })
            .unwrap();
        !is_stop(&buf[..n])
    }

    fn notifies(&self) -> u64 {
        self.tx.stats().notifies + self.rx.stats().notifies
    }

    fn settled(&mut self) -> Option<Settled> {
        self.rx.idle_mut().settled()
    }

    fn parks(&self) -> u64 {
        self.rx.stats().parks
    }

    fn recv_batch(&mut self, buf: &mut Vec<u8>, f: &mut dyn FnMut(&[u8])) -> bool {
        // Block for the first message, then take whatever else is there in one poll
        // (one wake-up check for the whole batch).
        let mut go = self.recv(buf);
        if !go {
            return false;
        }
        f(buf);
        let _ = self.rx.poll(1024, |m| {
            if go && is_stop(m) {
                go = false;
            } else if go {
                f(m);
            }
        });
        go
    }
}

trait MakeIdle {
    fn make() -> Self;
    /// What an adaptive strategy settled on.
    fn settled(&mut self) -> Option<Settled> {
        None
    }
}
/// As users get it: no parameter.
impl MakeIdle for Adaptive {
    fn make() -> Self {
        Adaptive::new()
    }
    fn settled(&mut self) -> Option<Settled> {
        let ns = |d: std::time::Duration| d.as_nanos() as u64;
        Some(Settled {
            limit_ns: ns(self.spin_limit()),
            wake_ns: ns(self.wake_cost()),
            woke_ahead: self.woke_ahead(),
        })
    }
}
impl MakeIdle for BusySpin {
    fn make() -> Self {
        BusySpin
    }
}
impl MakeIdle for Yielding {
    fn make() -> Self {
        Yielding
    }
}
impl MakeIdle for Sleeping {
    fn make() -> Self {
        Sleeping::new(std::time::Duration::from_micros(50))
    }
}
/// The default, as users get it (`Backoff::default()`: 100 spins, 5 yields, parks of
/// 1 µs doubling to 50 ms; its doc says why).
impl MakeIdle for Backoff {
    fn make() -> Self {
        Backoff::default()
    }
}
impl MakeIdle for Blocking {
    fn make() -> Self {
        Blocking
    }
}
impl MakeIdle for EpollPark {
    fn make() -> Self {
        EpollPark::new(100, None)
    }
}

/// Forward channel (parent writes, ring `K`) and backward channel (child writes, SPSC).
fn channel_parent<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle + 'static>(
    id: &str,
    capacity: usize,
) -> (Box<dyn Endpoint>, Vec<String>, Vec<OwnedFd>) {
    let b = ChannelBuilder::new().capacity(capacity);
    if N::kind() == Some(shm_notify::NotifierKind::EventFd) {
        let (tx, fwd) = b.anonymous_sender::<K, N, I>(I::make()).unwrap();
        let (rx, bwd) = b.anonymous_receiver::<Spsc, N, I>(I::make()).unwrap();
        let mut fds = fwd.into_fds();
        fds.extend(bwd.into_fds());
        (Box::new(Chan { tx, rx }), vec!["-".into()], fds)
    } else {
        let (fwd, bwd) = (format!("{id}-fwd"), format!("{id}-bwd"));
        let tx = b.create_sender::<K, N, I>(&fwd, I::make()).unwrap();
        let rx = b.create_receiver::<Spsc, N, I>(&bwd, I::make()).unwrap();
        (Box::new(Chan { tx, rx }), vec![id.into()], Vec::new())
    }
}

fn channel_child<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle + 'static>(
    target: &str,
    fds: Vec<OwnedFd>,
) -> Box<dyn Endpoint> {
    if target == "-" {
        let mut fds = fds;
        let bwd = fds.split_off(3);
        let rx = Receiver::<K, N, I>::from_fds(fds, I::make()).unwrap();
        let tx = Sender::<Spsc, N, I>::from_fds(bwd, I::make()).unwrap();
        Box::new(Chan { tx, rx })
    } else {
        let rx = Receiver::<K, N, I>::open(&format!("{target}-fwd"), I::make()).unwrap();
        let tx = Sender::<Spsc, N, I>::open(&format!("{target}-bwd"), I::make()).unwrap();
        Box::new(Chan { tx, rx })
    }
}

/// Calls `$f::<K, N, I>(args)` for a channel row's ring, notifier and idle names.
macro_rules! with_channel {
    ($ring:expr, $notifier:expr, $idle:expr, $f:ident ( $($a:expr),* )) => {
        match $ring {
            "spsc" => with_channel!(@n Spsc, $notifier, $idle, $f($($a),*)),
            _ => with_channel!(@n Mpsc, $notifier, $idle, $f($($a),*)),
        }
    };
    (@n $k:ty, $notifier:expr, $idle:expr, $f:ident ( $($a:expr),* )) => {
        match $notifier {
            "futex" => with_channel!(@i $k, Futex, $idle, $f($($a),*)),
            "sem" => with_channel!(@i $k, Semaphore, $idle, $f($($a),*)),
            "fifo" => with_channel!(@p $k, Fifo, $idle, $f($($a),*)),
            "eventfd" => with_channel!(@p $k, EventFd, $idle, $f($($a),*)),
            n => panic!("unknown notifier {n}"),
        }
    };
    (@i $k:ty, $n:ty, $idle:expr, $f:ident ( $($a:expr),* )) => {
        match $idle {
            "spin" => $f::<$k, $n, BusySpin>($($a),*),
            "yield" => $f::<$k, $n, Yielding>($($a),*),
            "sleep" => $f::<$k, $n, Sleeping>($($a),*),
            "backoff" => $f::<$k, $n, Backoff>($($a),*),
            "blocking" => $f::<$k, $n, Blocking>($($a),*),
            "adaptive" => $f::<$k, $n, Adaptive>($($a),*),
            i => panic!("idle {i} does not pair with this notifier"),
        }
    };
    (@p $k:ty, $n:ty, $idle:expr, $f:ident ( $($a:expr),* )) => {
        match $idle {
            "epoll" => $f::<$k, $n, EpollPark>($($a),*),
            other => with_channel!(@i $k, $n, other, $f($($a),*)),
        }
    };
}

// ---------------------------------------------------------------- the bare ring

/// `ring/spsc/spin`: shm-ring's SPSC producer and consumer alone, one segment each way,
/// spinning: no waiter protocol, liveness or channel checks. Between `floor/ring` and
/// `channel/spsc/*/spin`, it shows what the record protocol costs and what the channel
/// adds on top.
struct BareRing {
    tx: shm_ring::Producer<shm_ring::Spsc>,
    rx: shm_ring::Consumer<shm_ring::Spsc>,
}

impl BareRing {
    /// `fds`: the parent-to-child segment, then the child-to-parent one.
    fn new(fds: &[OwnedFd], parent: bool) -> BareRing {
        let seg = |i: usize| Segment::from_fd(fds[i].try_clone().unwrap()).unwrap();
        let (out, inp) = if parent {
            (seg(0), seg(1))
        } else {
            (seg(1), seg(0))
        };
        BareRing {
            tx: out.producer().unwrap(),
            rx: inp.consumer().unwrap(),
        }
    }
}

impl Endpoint for BareRing {
    fn send(&mut self, msg: &[u8]) {
        while let Err(e) = self.tx.try_write(1, msg) {
            assert_eq!(e, shm_ring::WriteError::Full, "bare ring write");
            std::hint::spin_loop();
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        let mut n = 0;
        while self
            .rx
            .read(1, |_, m| {
                buf[..m.len()].copy_from_slice(m);
                n = m.len();
            })
            .unwrap()
            == 0
        {
            std::hint::spin_loop();
        }
        !is_stop(&buf[..n])
    }
}

// ---------------------------------------------------------------- rows

/// Sets up `row` in the parent. `id` names the row's shared objects uniquely.
pub fn parent(row: &str, id: &str, capacity: usize, size: usize) -> Setup {
    let parts: Vec<&str> = row.split('/').collect();
    match parts[..] {
        #[cfg(feature = "peers")]
        ["peer", ..] => Setup {
            endpoint: crate::peers::peer(&row["peer/".len()..], id, true),
            args: vec![id.into()],
            fds: vec![],
        },
        ["ring", "spsc", "spin"] => {
            let opts = SegmentOptions::new(Kind::Spsc, capacity);
            let fds: Vec<OwnedFd> = (0..2)
                .map(|_| {
                    let seg = Segment::anonymous(&opts).unwrap();
                    seg.as_fd().try_clone_to_owned().unwrap()
                })
                .collect();
            Setup {
                endpoint: Box::new(BareRing::new(&fds, true)),
                args: vec![],
                fds,
            }
        }
        ["floor", "ring"] => {
            let fd = ring_floor_fd(size);
            Setup {
                endpoint: Box::new(RingFloor::new(&fd, size, true)),
                args: vec![],
                fds: vec![fd],
            }
        }
        ["floor", kind] => {
            let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 64)).unwrap();
            let mut fds = vec![seg.as_fd().try_clone_to_owned().unwrap()];
            if kind == "eventfd" {
                let (a, b) = (EventFd::new().unwrap(), EventFd::new().unwrap());
                fds.push(a.as_fd().try_clone_to_owned().unwrap());
                fds.push(b.as_fd().try_clone_to_owned().unwrap());
            }
            let mine: Vec<OwnedFd> = fds[1..].iter().map(|f| f.try_clone().unwrap()).collect();
            let endpoint = Box::new(floor(seg, true, kind, mine.into_iter()));
            Setup {
                endpoint,
                args: vec![],
                fds,
            }
        }
        ["kernel", "uds"] => {
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            let a2 = a.try_clone().unwrap();
            let endpoint = Box::new(Stream {
                r: OwnedFd::from(a).into(),
                w: OwnedFd::from(a2).into(),
            });
            Setup {
                endpoint,
                args: vec![],
                fds: vec![b.into()],
            }
        }
        ["kernel", "tcp"] => {
            // A TCP connection over loopback (Nagle off on both ends), as an fd pair.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let theirs = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (ours, _) = l.accept().unwrap();
            for s in [&ours, &theirs] {
                s.set_nodelay(true).unwrap();
            }
            let w = ours.try_clone().unwrap();
            Setup {
                endpoint: Box::new(Stream {
                    r: OwnedFd::from(ours).into(),
                    w: OwnedFd::from(w).into(),
                }),
                args: vec![],
                fds: vec![theirs.into()],
            }
        }
        #[cfg(feature = "bridge")]
        ["bridge", "zenoh-tcp"] => crate::bridge::parent(id),
        ["kernel", "pipe"] => {
            let (r1, w1) = nix::unistd::pipe().unwrap(); // parent -> child
            let (r2, w2) = nix::unistd::pipe().unwrap(); // child -> parent
            let endpoint = Box::new(Stream {
                r: r2.into(),
                w: w1.into(),
            });
            Setup {
                endpoint,
                args: vec![],
                fds: vec![r1, w2],
            }
        }
        ["channel", ring, notifier, idle] => {
            let (endpoint, args, fds) =
                with_channel!(ring, notifier, idle, channel_parent(id, capacity));
            Setup {
                endpoint,
                args,
                fds,
            }
        }
        _ => panic!("unknown row {row}"),
    }
}

/// Attaches the child's side of `row`.
pub fn child(row: &str, args: &[String], fds: Vec<OwnedFd>, size: usize) -> Box<dyn Endpoint> {
    let parts: Vec<&str> = row.split('/').collect();
    match parts[..] {
        ["floor", "ring"] => Box::new(RingFloor::new(&fds[0], size, false)),
        ["ring", "spsc", "spin"] => Box::new(BareRing::new(&fds, false)),
        #[cfg(feature = "peers")]
        ["peer", ..] => crate::peers::peer(&row["peer/".len()..], &args[0], false),
        ["floor", kind] => {
            let mut it = fds.into_iter();
            let seg = Segment::from_fd(it.next().unwrap()).unwrap();
            Box::new(floor(seg, false, kind, it))
        }
        #[cfg(feature = "bridge")]
        ["bridge", "zenoh-tcp"] => crate::bridge::child(args),
        ["kernel", "uds" | "tcp"] => {
            let s = fds.into_iter().next().unwrap();
            let w = s.try_clone().unwrap();
            Box::new(Stream {
                r: s.into(),
                w: w.into(),
            })
        }
        ["kernel", "pipe"] => {
            let mut it = fds.into_iter();
            let (r, w) = (it.next().unwrap(), it.next().unwrap());
            Box::new(Stream {
                r: r.into(),
                w: w.into(),
            })
        }
        ["channel", ring, notifier, idle] => {
            with_channel!(ring, notifier, idle, channel_child(&args[0], fds))
        }
        _ => panic!("unknown row {row}"),
    }
}
