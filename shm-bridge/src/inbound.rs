//! The reader's side: take frames from `KEY/data`, write each message into a local
//! channel, acknowledge on `KEY/ack`.
//!
//! The bridge declares its subscriber, then its liveliness token (`KEY/in/<id>`), so an
//! outbound bridge that sees the token can publish to it. It acknowledges after every
//! [`ACK_EVERY`] messages, whenever it has caught up with what arrived, and every
//! [`HELLO`] while idle (which is also how an outbound bridge started after it learns
//! its channel's size). A full channel blocks the loop, and with it the acknowledgements:
//! that is the backpressure the outbound side sees.

use crate::counters::Counters;
use crate::wire::{self, Ack, Frame};
use crate::{BridgeError, Control, Ending, POLL};
use shm_channel::{ChannelKind, ChannelNotifier, SendError, SendTimeoutError, Sender};
use shm_idle::ParksOn;
use std::time::{Duration, Instant};
use zenoh::handlers::FifoChannel;
use zenoh::Wait;

/// Messages between two acknowledgements under steady traffic.
pub const ACK_EVERY: u64 = 64;
/// An idle inbound bridge acknowledges (says hello) this often.
pub const HELLO: Duration = Duration::from_millis(200);

/// Subscribes to `KEY/data` of `session` and writes every message into `tx` (blocking
/// while the channel is full) until `ctl` stops it, the stream's writers have all closed
/// (then `tx` is dropped, so the reader sees `Disconnected` after the last message), or
/// the reader of `tx` is gone (then the outbound side is told).
///
/// ```no_run
/// use shm_bridge::{inbound, Control, Net};
/// use shm_channel::{Sender, Spsc};
/// use shm_idle::AnyIdle;
/// use shm_notify::AnyNotifier;
/// let tx: Sender<Spsc, AnyNotifier, AnyIdle> = Sender::open("orders", "adaptive".parse::<AnyIdle>()?)?;
/// let session = Net { listen: vec!["tcp/0.0.0.0:7447".into()], ..Default::default() }.open()?;
/// let ending = inbound::run(tx, &session, "site/orders", &Control::new(4096))?;
/// println!("{ending:?}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
    tx: Sender<K, N, I>,
    session: &zenoh::Session,
    key: &str,
    ctl: &Control,
) -> Result<Ending, BridgeError> {
    let r = serve(tx, session, key, ctl);
    let counters = ctl.counters.snapshot().to_json();
    tracing::info!(key, %counters, ending = ?r, "inbound bridge stopped");
    r
}

fn serve<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N>>(
    mut tx: Sender<K, N, I>,
    session: &zenoh::Session,
    key: &str,
    ctl: &Control,
) -> Result<Ending, BridgeError> {
    let counters = &ctl.counters;
    let id = wire::random_u64();
    let max = tx.max_message_len();
    // Room for a full window and then some: the outbound side never has more in flight.
    let sub = session
        .declare_subscriber(format!("{key}/data"))
        .with(FifoChannel::new(ctl.window as usize + 64))
        .wait()
        .map_err(BridgeError::zenoh("declare subscriber"))?;
    let acks = session
        .declare_publisher(format!("{key}/ack"))
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .map_err(BridgeError::zenoh("declare ack publisher"))?;
    let _token = session
        .liveliness()
        .declare_token(format!("{key}/in/{id:x}"))
        .wait()
        .map_err(BridgeError::zenoh("declare liveliness token"))?;
    tracing::info!(key, inbound = id, max, "inbound bridge started");
    // The stream being received: its epoch and the next frame expected.
    let (mut epoch, mut next) = (0u64, 0u64);
    let mut epochs = 0u64;
    // Streams received before this one (newest last), and streams refused.
    let mut earlier: Vec<(u64, u64)> = Vec::new();
    let mut refused: Vec<u64> = Vec::new();
    let mut unacked = 0u64;
    let mut last_ack = Instant::now() - HELLO;
    let ack = |epoch: u64, next: u64, flags: u8| {
        let a = Ack {
            inbound: id,
            epoch,
            next,
            flags,
            max: max.min(u32::MAX as usize) as u32,
        };
        acks.put(a.encode())
            .wait()
            .map_err(BridgeError::zenoh("put ack"))
    };
    loop {
        if ctl.stopped() {
            ack(epoch, next, 0)?;
            return Ok(Ending::Stopped);
        }
        let sample = match sub
            .recv_timeout(POLL)
            .map_err(BridgeError::zenoh("receive"))?
        {
            Some(s) => s,
            None => {
                if last_ack.elapsed() >= HELLO && tx.is_disconnected() {
                    // Found while idle: the outbound side closes its channel now, not
                    // after its writer's next message was accepted into a void.
                    ack(epoch, next, wire::READER_GONE)?;
                    tracing::warn!("the channel's reader is gone: told the outbound side");
                    return Ok(Ending::ReaderGone);
                }
                if unacked > 0 || last_ack.elapsed() >= HELLO {
                    ack(epoch, next, 0)?;
                    (unacked, last_ack) = (0, Instant::now());
                }
                continue;
            }
        };
        let bytes = sample.payload().to_bytes();
        let Some((frame, payload)) = Frame::decode(&bytes) else {
            Counters::add(&counters.malformed, 1);
            tracing::warn!(len = bytes.len(), "dropped a frame that does not parse");
            continue;
        };
        if refused.contains(&frame.epoch) {
            ack(frame.epoch, 0, wire::DOUBLED)?;
            continue;
        }
        if frame.epoch != epoch {
            if let Some(i) = earlier.iter().position(|&(e, _)| e == frame.epoch) {
                // An earlier stream goes on: it was not a restart, two outbound bridges
                // publish on this key. Keep the earlier one, refuse the newer (what it
                // delivered meanwhile stays: each stream stays in order).
                tracing::error!(
                    kept = frame.epoch,
                    refused = epoch,
                    "two outbound bridges publish on this key: refused the newer one"
                );
                refused.push(epoch);
                if refused.len() > 64 {
                    refused.remove(0); // bounded: a refused bridge stops at its first ack
                }
                ack(epoch, next, wire::DOUBLED)?;
                (epoch, next) = earlier.remove(i);
            } else {
                // A new outbound stream (the first, or an outbound bridge restarted).
                if epochs > 0 {
                    Counters::add(&counters.reconnects, 1);
                    earlier.push((epoch, next));
                    if earlier.len() > 8 {
                        earlier.remove(0);
                    }
                }
                epochs += 1;
                tracing::info!(
                    epoch = frame.epoch,
                    from = frame.seq,
                    "outbound stream joined"
                );
                (epoch, next) = (frame.epoch, frame.seq);
            }
        }
        if frame.seq < next {
            continue; // already written (a frame zenoh delivered twice)
        }
        if frame.seq > next {
            let gap = frame.seq - next;
            Counters::add(&counters.gaps, gap);
            tracing::warn!(gap, "messages of this stream never arrived: lost");
        }
        next = frame.seq + 1;
        if frame.kind == wire::END {
            ack(epoch, next, 0)?;
            tracing::info!("the stream's writers all closed: closing");
            return Ok(Ending::WritersGone);
        }
        if payload.len() > max {
            Counters::add(&counters.refused, 1);
            tracing::error!(
                len = payload.len(),
                max,
                "refused a message larger than this channel carries"
            );
        } else {
            loop {
                match tx.send_timeout(payload, POLL) {
                    Ok(()) => break,
                    Err(SendTimeoutError::Timeout) if ctl.stopped() => {
                        // The message is not written: acknowledge only what was.
                        ack(epoch, next - 1, 0)?;
                        return Ok(Ending::Stopped);
                    }
                    Err(SendTimeoutError::Timeout) => {}
                    Err(SendTimeoutError::Send(SendError::Disconnected)) => {
                        ack(epoch, next - 1, wire::READER_GONE)?;
                        tracing::warn!("the channel's reader is gone: told the outbound side");
                        return Ok(Ending::ReaderGone);
                    }
                    Err(e) => return Err(BridgeError::channel(e)),
                }
            }
            Counters::add(&counters.messages, 1);
            Counters::add(&counters.bytes, payload.len() as u64);
        }
        unacked += 1;
        if unacked >= ACK_EVERY || sub.is_empty() {
            ack(epoch, next, 0)?;
            (unacked, last_ack) = (0, Instant::now());
        }
    }
}
