//! Peer rows (`--peers`, cargo feature `peers`): other libraries through the same
//! harness, CPUs and payload, so a user can check our claims on their own machine.
//!
//! `peer/ringfire/{spin,futex}`: ringfire 0.5 SPSC rings of 64-byte slots, lossless
//! (backpressure, like our channels), one ring each way; the parent creates the forward
//! ring, the child the backward one. Only 64-byte messages (its slots are fixed-size).
//! `peer/iceoryx2/{spin,blocking}`: see [`ice`].

mod ice;

use crate::transport::{Endpoint, STOP};
use ringfire::wait::WaitStrategy;
use ringfire::{FlowControl, RingConsumer, RingProducer, RingProducerBuilder};
use std::time::{Duration, Instant};

/// Slots per ring: 64 KiB of payload, as the channel rows get.
const SLOTS: u64 = 1024;
/// The one payload size the peer rows carry.
pub const SIZE: usize = 64;

type Msg = [u8; SIZE];

struct Ringfire<W: WaitStrategy> {
    tx: RingProducer<Msg>,
    rx: Option<RingConsumer<Msg>>,
    rx_path: String,
    wait: W,
}

fn path(id: &str, dir: &str) -> String {
    format!("/dev/shm/{id}-ringfire-{dir}")
}

fn producer(path: &str) -> RingProducer<Msg> {
    RingProducerBuilder::new(SLOTS)
        .flow_control(FlowControl::LosslessBackpressure)
        .build::<Msg, _>(path)
        .expect("ringfire producer")
}

impl<W: WaitStrategy> Ringfire<W> {
    /// Attaches the consumer once its ring exists (the other side creates it).
    fn attach(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.rx.is_none() {
            match RingConsumer::<Msg>::attach(&self.rx_path) {
                Ok(c) => self.rx = Some(c),
                Err(e) if Instant::now() > deadline => panic!("ringfire attach: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
}

impl<W: WaitStrategy> Endpoint for Ringfire<W> {
    fn send(&mut self, msg: &[u8]) {
        let mut m = [0u8; SIZE];
        m[..msg.len().min(SIZE)].copy_from_slice(&msg[..msg.len().min(SIZE)]);
        self.tx.push(&m);
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> bool {
        self.attach();
        let rx = self.rx.as_mut().expect("attached");
        let m = rx.recv_blocking(&mut self.wait);
        buf.clear();
        buf.extend_from_slice(&m);
        m[..8] != STOP.to_le_bytes()
    }

    fn recv_batch(&mut self, buf: &mut Vec<u8>, f: &mut dyn FnMut(&[u8])) -> bool {
        // Block for the first, then take what is there with ringfire's own batch read
        // (up to 1024, like a channel row's poll).
        if !self.recv(buf) {
            return false;
        }
        f(buf);
        let rx = self.rx.as_mut().expect("attached");
        let mut batch = [[0u8; SIZE]; 64];
        let mut taken = 1;
        while taken < 1024 {
            let n = rx.recv_batch(&mut batch);
            if n == 0 {
                break;
            }
            for m in &batch[..n] {
                if m[..8] == STOP.to_le_bytes() {
                    return false;
                }
                f(m);
            }
            taken += n;
        }
        true
    }
}

impl<W: WaitStrategy> Drop for Ringfire<W> {
    fn drop(&mut self) {
        // Each side removes what it created (the producers unlink on drop too).
        let _ = std::fs::remove_file(&self.rx_path);
    }
}

fn endpoint<W: WaitStrategy + 'static>(id: &str, parent: bool, wait: W) -> Box<dyn Endpoint> {
    let (out, inp) = if parent {
        ("fwd", "bwd")
    } else {
        ("bwd", "fwd")
    };
    if !parent {
        // Register as the forward ring's reader before the parent may push.
        let mut e = Ringfire {
            tx: producer(&path(id, out)),
            rx: None,
            rx_path: path(id, inp),
            wait,
        };
        e.attach();
        return Box::new(e);
    }
    Box::new(Ringfire {
        tx: producer(&path(id, out)),
        rx: None,
        rx_path: path(id, inp),
        wait,
    })
}

/// A peer row's endpoint: `kind` is the part after `peer/`; `id` names its rings.
pub fn peer(kind: &str, id: &str, parent: bool) -> Box<dyn Endpoint> {
    match kind {
        "ringfire/spin" => endpoint(id, parent, ringfire::wait::BusySpin::new()),
        "ringfire/futex" => endpoint(id, parent, ringfire::wait::FutexWait::default()),
        "iceoryx2/spin" => Box::new(ice::Ice::new(id, parent, false)),
        "iceoryx2/blocking" => Box::new(ice::Ice::new(id, parent, true)),
        k => panic!("unknown peer row {k}"),
    }
}
