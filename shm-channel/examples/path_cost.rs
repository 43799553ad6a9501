//! What one message costs on the hot paths, in one thread (no peer, no cache-line
//! traffic): the bare ring's write and read, the channel's `send` + `recv` and
//! `try_send` + `try_recv`, and an empty poll of each.
//!
//! `cargo run --release -p shm-channel --example path_cost -- PATH [COUNT]` runs PATH
//! (`ring`, `send-recv`, `try-send-recv`, `empty-poll`, `empty-ring`) COUNT times
//! (default 1,000,000) and prints nanoseconds per operation, the best of five rounds.
//! `cargo xtask cost` runs each path under callgrind instead and prints instructions per
//! operation: a count that the host's noise does not move, so one change to a hot path
//! can be compared with the last.

use shm_channel::{channel, Receiver, Sender, Spsc};
use shm_idle::BusySpin;
use shm_notify::ThreadNotifier;
use shm_ring::{Consumer, Kind, Producer, Segment, SegmentOptions};
use std::time::Instant;

type Tx = Sender<Spsc, ThreadNotifier, BusySpin>;
type Rx = Receiver<Spsc, ThreadNotifier, BusySpin>;
type Ring = (Producer<shm_ring::Spsc>, Consumer<shm_ring::Spsc>);

const MSG: [u8; 64] = [7; 64];

// Each path is a function of its own, so that one path's inlining does not change
// another's count.

#[inline(never)]
fn ring((p, c): &mut Ring, n: u64, buf: &mut [u8; 64]) {
    for _ in 0..n {
        p.try_write(1, &MSG).expect("space");
        let got = c.read(1, |_, m| buf[..m.len()].copy_from_slice(m));
        assert_eq!(got, Ok(1));
    }
}

#[inline(never)]
fn send_recv(tx: &mut Tx, rx: &mut Rx, n: u64, buf: &mut [u8; 64]) {
    for _ in 0..n {
        tx.send(&MSG).expect("send");
        rx.recv(|m| buf[..m.len()].copy_from_slice(m))
            .expect("recv");
    }
}

#[inline(never)]
fn try_send_recv(tx: &mut Tx, rx: &mut Rx, n: u64, buf: &mut [u8; 64]) {
    for _ in 0..n {
        tx.try_send(&MSG).expect("space");
        rx.try_recv(|m| buf[..m.len()].copy_from_slice(m))
            .expect("a message");
    }
}

#[inline(never)]
fn empty_poll(rx: &mut Rx, n: u64) {
    for _ in 0..n {
        assert!(rx.try_recv(|m| m.len()).is_err());
    }
}

#[inline(never)]
fn empty_ring((_, c): &mut Ring, n: u64) {
    for _ in 0..n {
        assert_eq!(c.read(1, |_, _| {}), Ok(0));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: path_cost PATH [COUNT]")?;
    let n: u64 = args.next().map_or(Ok(1_000_000), |c| c.parse())?;
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 1 << 16))?;
    let mut ring_ends: Ring = (seg.producer()?, seg.consumer()?);
    let (mut tx, mut rx) = channel::<Spsc, ThreadNotifier, _, _>(1 << 16, BusySpin, BusySpin)?;
    let mut buf = [0u8; 64];
    let mut run = |n: u64| -> Result<(), String> {
        match path.as_str() {
            "ring" => ring(&mut ring_ends, n, &mut buf),
            "send-recv" => send_recv(&mut tx, &mut rx, n, &mut buf),
            "try-send-recv" => try_send_recv(&mut tx, &mut rx, n, &mut buf),
            "empty-poll" => empty_poll(&mut rx, n),
            "empty-ring" => empty_ring(&mut ring_ends, n),
            other => return Err(format!("unknown path {other:?}")),
        }
        Ok(())
    };
    // Under callgrind (`SHM_PATH_COST_ONCE`) one pass, counted from outside.
    if std::env::var_os("SHM_PATH_COST_ONCE").is_some() {
        return Ok(run(n)?);
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        run(n)?;
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    println!("{path}: {best:.1} ns per operation (best of 5 rounds of {n})");
    Ok(())
}
