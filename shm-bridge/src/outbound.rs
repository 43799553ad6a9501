//! The writer's side: read a local channel, publish each message on `KEY/data`.
//!
//! One loop: take in what the network says (inbound bridges coming and going, their
//! acknowledgements), then, if an inbound bridge is there and fewer than `window`
//! messages are unacknowledged, read the channel (waiting at most [`POLL`] for a message)
//! and publish what it holds; otherwise wait for an acknowledgement. An inbound bridge
//! that goes away leaves its unacknowledged messages counted as
//! [`lost_in_flight`](crate::Snapshot::lost_in_flight).

use crate::counters::Counters;
use crate::wire::{self, Ack, Frame};
use crate::{BridgeError, Control, Ending, POLL};
use shm_channel::{ChannelKind, ChannelNotifier, Receiver, RecvError, RecvTimeoutError};
use shm_idle::ParksOn;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use zenoh::handlers::{FifoChannel, FifoChannelHandler};
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::sample::{Sample, SampleKind};
use zenoh::Wait;

/// How long a stopping or finished outbound bridge waits for the last acknowledgements.
const LINGER: Duration = Duration::from_secs(2);
/// How long the acks of an inbound bridge whose token went are still taken before what
/// it had not acknowledged is counted lost: zenoh sends a token's end at a higher
/// priority than data, so it can overtake the bridge's last acks.
const GRACE: Duration = Duration::from_millis(250);

/// An inbound bridge as the outbound side knows it.
#[derive(Debug)]
struct Peer {
    /// Every frame before this one is written at its end.
    next: u64,
    /// Its channel's largest message.
    max: usize,
}

/// The state of one outbound run.
struct Out<'a> {
    ctl: &'a Control,
    key: &'a str,
    publisher: Publisher<'a>,
    acks: Subscriber<FifoChannelHandler<Sample>>,
    live: Subscriber<FifoChannelHandler<Sample>>,
    epoch: u64,
    /// The next frame's number.
    seq: u64,
    /// Inbound bridges present (liveliness), by id; `None` until their first ack.
    peers: HashMap<u64, Option<Peer>>,
    /// Inbound bridges whose token went, until [`GRACE`] after: their late acks count.
    leaving: HashMap<u64, (Peer, Instant)>,
    ever_had_peer: bool,
    local_max: usize,
}

/// Reads `rx` and publishes every message on `KEY/data` of `session` until `ctl` stops
/// it, every writer of `rx` has closed (and what they sent is acknowledged), or the
/// remote reader is gone (then `rx` is dropped, so its writers see `Disconnected`).
///
/// ```no_run
/// use shm_bridge::{outbound, Control, Net};
/// use shm_channel::{ChannelBuilder, Receiver, Spsc};
/// use shm_idle::AnyIdle;
/// use shm_notify::{AnyNotifier, NotifierKind};
/// let rx: Receiver<Spsc, AnyNotifier, AnyIdle> = ChannelBuilder::new()
///     .notifier_kind(NotifierKind::Futex)
///     .create_receiver("orders", "adaptive".parse::<AnyIdle>()?)?;
/// let session = Net { connect: vec!["tcp/10.0.0.2:7447".into()], ..Default::default() }.open()?;
/// let ending = outbound::run(rx, &session, "site/orders", &Control::new(4096))?;
/// println!("{ending:?}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
    rx: Receiver<K, N, I>,
    session: &zenoh::Session,
    key: &str,
    ctl: &Control,
) -> Result<Ending, BridgeError> {
    let r = serve(rx, session, key, ctl);
    let counters = ctl.counters.snapshot().to_json();
    tracing::info!(key, %counters, ending = ?r, "outbound bridge stopped");
    r
}

fn serve<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
    mut rx: Receiver<K, N, I>,
    session: &zenoh::Session,
    key: &str,
    ctl: &Control,
) -> Result<Ending, BridgeError> {
    let publisher = session
        .declare_publisher(format!("{key}/data"))
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .map_err(BridgeError::zenoh("declare publisher"))?;
    let acks = session
        .declare_subscriber(format!("{key}/ack"))
        .with(FifoChannel::new(1024))
        .wait()
        .map_err(BridgeError::zenoh("declare ack subscriber"))?;
    let live = session
        .liveliness()
        .declare_subscriber(format!("{key}/in/*"))
        .history(true)
        .with(FifoChannel::new(256))
        .wait()
        .map_err(BridgeError::zenoh("declare liveliness subscriber"))?;
    let mut out = Out {
        ctl,
        key,
        publisher,
        acks,
        live,
        epoch: wire::random_u64(),
        seq: 0,
        peers: HashMap::new(),
        leaving: HashMap::new(),
        ever_had_peer: false,
        local_max: rx.max_message_len(),
    };
    tracing::info!(key, epoch = out.epoch, "outbound bridge started");
    loop {
        if let Some(ending) = out.events()? {
            return Ok(ending);
        }
        if ctl.stopped() {
            out.linger();
            return Ok(Ending::Stopped);
        }
        let Some(room) = out.room()? else {
            // No inbound bridge, or the window is full: wait for the network.
            if let Some(ending) = out.wait_ack(POLL)? {
                return Ok(ending);
            }
            continue;
        };
        match out.forward(&mut rx, room) {
            Ok(()) => {}
            Err(Forward::WritersGone) => {
                out.put(wire::END, &[])?;
                out.linger();
                tracing::info!(key, "every local writer closed: stream ended");
                return Ok(Ending::WritersGone);
            }
            Err(Forward::Failed(e)) => return Err(e),
        }
    }
}

enum Forward {
    WritersGone,
    Failed(BridgeError),
}

impl Out<'_> {
    fn counters(&self) -> &Counters {
        &self.ctl.counters
    }

    /// Takes in liveliness changes and acknowledgements; `Some` when the remote reader is
    /// gone. An inbound bridge's last acks and its token's end reach us through two
    /// queues, and the token's end can overtake them, so a bridge that went still has its
    /// acks taken for [`GRACE`] before what it left unacknowledged counts as lost.
    fn events(&mut self) -> Result<Option<Ending>, BridgeError> {
        let mut gone = Vec::new();
        while let Some(s) = self
            .live
            .try_recv()
            .map_err(BridgeError::zenoh("liveliness"))?
        {
            let Some(id) = peer_id(&s) else {
                Counters::add(&self.counters().malformed, 1);
                continue;
            };
            match s.kind() {
                SampleKind::Put => {
                    if self.ever_had_peer {
                        Counters::add(&self.counters().reconnects, 1);
                    }
                    self.ever_had_peer = true;
                    self.peers.entry(id).or_insert(None);
                    tracing::info!(inbound = id, "inbound bridge present");
                }
                SampleKind::Delete => gone.push(id),
            }
        }
        while let Some(s) = self.acks.try_recv().map_err(BridgeError::zenoh("acks"))? {
            if let Some(ending) = self.ack(&s)? {
                return Ok(Some(ending));
            }
        }
        for id in gone {
            if let Some(Some(p)) = self.peers.remove(&id) {
                self.leaving.insert(id, (p, Instant::now()));
            }
            tracing::info!(inbound = id, "inbound bridge gone");
        }
        self.settle_leaving(false);
        self.counters()
            .in_flight
            .store(self.in_flight(), std::sync::atomic::Ordering::Relaxed);
        Ok(None)
    }

    /// Applies one acknowledgement.
    fn ack(&mut self, s: &Sample) -> Result<Option<Ending>, BridgeError> {
        let Some(ack) = Ack::decode(&s.payload().to_bytes()) else {
            Counters::add(&self.counters().malformed, 1);
            return Ok(None);
        };
        if ack.flags & wire::DOUBLED != 0 {
            if ack.epoch != self.epoch {
                return Ok(None); // the other outbound bridge's refusal
            }
            tracing::error!(
                key = self.key,
                "another outbound bridge publishes on this key"
            );
            return Err(BridgeError::KeyInUse {
                key: self.key.into(),
            });
        }
        if ack.flags & wire::READER_GONE != 0 {
            // From any inbound bridge, even one whose token is already gone: it was sent
            // just before the token went.
            tracing::warn!(inbound = ack.inbound, "the remote reader is gone: closing");
            return Ok(Some(Ending::ReaderGone));
        }
        // Only inbound bridges whose token we saw count (a stale ack of one that left must
        // not bring it back).
        if let Some((p, _)) = self.leaving.get_mut(&ack.inbound) {
            if ack.epoch == self.epoch && ack.next <= self.seq {
                p.next = p.next.max(ack.next);
            }
            return Ok(None);
        }
        let Some(entry) = self.peers.get_mut(&ack.inbound) else {
            return Ok(None);
        };
        let peer = entry.get_or_insert(Peer {
            next: self.seq,
            max: ack.max as usize,
        });
        peer.max = ack.max as usize;
        if ack.epoch == self.epoch && ack.next <= self.seq {
            peer.next = peer.next.max(ack.next);
        }
        Ok(None)
    }

    /// Counts as lost in flight what each inbound bridge that went had not acknowledged,
    /// once it acknowledged everything, [`GRACE`] has passed, or `now`.
    fn settle_leaving(&mut self, now: bool) {
        let seq = self.seq;
        let counters = &self.ctl.counters;
        self.leaving.retain(|&id, (p, since)| {
            let lost = seq.saturating_sub(p.next);
            if lost > 0 && !now && since.elapsed() < GRACE {
                return true;
            }
            if lost > 0 {
                Counters::add(&counters.lost_in_flight, lost);
                tracing::warn!(
                    inbound = id,
                    in_flight = lost,
                    "inbound bridge went away with messages in flight: each was delivered \
                     or lost"
                );
            }
            false
        });
    }

    /// Messages sent and not acknowledged by every known inbound bridge.
    fn in_flight(&self) -> u64 {
        self.peers
            .values()
            .flatten()
            .map(|p| self.seq - p.next)
            .max()
            .unwrap_or(0)
    }

    /// How many messages may go now; `None` while no inbound bridge is ready or the
    /// window is full.
    fn room(&self) -> Result<Option<u64>, BridgeError> {
        let ready: Vec<&Peer> = self.peers.values().flatten().collect();
        if ready.is_empty() {
            return Ok(None);
        }
        if let Some(p) = ready.iter().find(|p| p.max < self.local_max) {
            return Err(BridgeError::RemoteTooSmall {
                local: self.local_max,
                remote: p.max,
            });
        }
        let room = self.ctl.window.saturating_sub(self.in_flight());
        Ok((room > 0).then_some(room))
    }

    /// Reads up to `room` messages (waiting up to [`POLL`] for the first) and publishes
    /// them.
    fn forward<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
        &mut self,
        rx: &mut Receiver<K, N, I>,
        room: u64,
    ) -> Result<(), Forward> {
        let mut failed = None;
        let mut put = |out: &mut Self, m: &[u8]| {
            if failed.is_none() {
                failed = out.put(wire::DATA, m).err();
            }
        };
        match rx.recv_timeout(POLL, |m| put(self, m)) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Recv(RecvError::Disconnected)) => {
                return Err(Forward::WritersGone)
            }
            Err(e) => return Err(Forward::Failed(BridgeError::channel(e))),
        }
        // What else is there now, up to the window.
        let limit = (room - 1).min(256) as usize;
        if limit > 0 {
            match rx.poll(limit, |m| put(self, m)) {
                Ok(_) | Err(RecvError::Disconnected) => {}
                Err(e) => return Err(Forward::Failed(BridgeError::channel(e))),
            }
        }
        match failed {
            Some(e) => Err(Forward::Failed(e)),
            None => Ok(()),
        }
    }

    /// Publishes one frame.
    fn put(&mut self, kind: u8, payload: &[u8]) -> Result<(), BridgeError> {
        let frame = Frame {
            kind,
            epoch: self.epoch,
            seq: self.seq,
        };
        self.publisher
            .put(frame.encode(payload))
            .wait()
            .map_err(BridgeError::zenoh("put"))?;
        self.seq += 1;
        if kind == wire::DATA {
            Counters::add(&self.counters().messages, 1);
            Counters::add(&self.counters().bytes, payload.len() as u64);
        }
        Ok(())
    }

    /// Waits up to `timeout` for an acknowledgement or a liveliness change.
    fn wait_ack(&mut self, timeout: Duration) -> Result<Option<Ending>, BridgeError> {
        // Acks and tokens come on two handlers: wait on the acks in short steps, looking
        // at the tokens between them.
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if !self.live.is_empty() {
                return Ok(None);
            }
            let step = Duration::from_millis(2).min(end.saturating_duration_since(Instant::now()));
            if let Some(s) = self
                .acks
                .recv_timeout(step)
                .map_err(BridgeError::zenoh("acks"))?
            {
                return self.ack(&s);
            }
        }
        Ok(None)
    }

    /// Waits (up to [`LINGER`]) for everything sent to be acknowledged, then counts what
    /// is not.
    fn linger(&mut self) {
        let end = Instant::now() + LINGER;
        while (self.in_flight() > 0 || !self.leaving.is_empty()) && Instant::now() < end {
            match (self.events(), self.wait_ack(POLL)) {
                (Ok(None), Ok(None)) => {}
                _ => break,
            }
        }
        self.settle_leaving(true);
        let left = self.in_flight();
        self.counters()
            .in_flight
            .store(left, std::sync::atomic::Ordering::Relaxed);
        if left > 0 {
            tracing::warn!(in_flight = left, "stopped with messages unacknowledged");
        }
    }
}

/// The inbound bridge id in a liveliness key `KEY/in/<id hex>`.
fn peer_id(s: &Sample) -> Option<u64> {
    let key = s.key_expr().as_str();
    let id = key.rsplit('/').next()?;
    u64::from_str_radix(id, 16).ok()
}
