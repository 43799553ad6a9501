//! Round trips between two processes over two named channels.
//!
//! Terminal 1: `cargo run --release -p shm-channel --example ping_pong -- pong demo`
//! Terminal 2: `cargo run --release -p shm-channel --example ping_pong -- ping demo 100000`
//!
//! `pong` creates `demo-ping` (it reads) and `demo-pong` (it writes) and echoes every
//! message; `ping` sends COUNT messages, waits for each echo, and prints round-trip
//! percentiles. Both park on a futex when idle (Backoff), so an idle pong costs ~0% CPU.
//! `pong` exits when `ping` is done, and its drop removes both channels' names.

use shm_channel::{ChannelBuilder, Receiver, RecvError, Sender, Spsc};
use shm_idle::Backoff;
use shm_notify::Futex;
use std::time::Instant;

type Tx = Sender<Spsc, Futex, Backoff>;
type Rx = Receiver<Spsc, Futex, Backoff>;

fn pong(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let b = ChannelBuilder::new();
    let mut rx: Rx = b.create_receiver(&format!("{name}-ping"), Backoff::default())?;
    let mut tx: Tx = b.create_sender(&format!("{name}-pong"), Backoff::default())?;
    println!("pong: ready on {name}-ping / {name}-pong");
    let mut buf = Vec::new();
    loop {
        match rx.recv(|m| {
            buf.clear();
            buf.extend_from_slice(m)
        }) {
            Ok(()) => tx.send(&buf)?,
            Err(RecvError::Disconnected) => {
                println!("pong: ping is gone; bye");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn ping(name: &str, count: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut tx: Tx = Sender::open(&format!("{name}-ping"), Backoff::default())?;
    let mut rx: Rx = Receiver::open(&format!("{name}-pong"), Backoff::default())?;
    let mut rtts = Vec::with_capacity(count);
    let msg = [0x5Au8; 64];
    for i in 0..count {
        let t = Instant::now();
        tx.send(&msg)?;
        rx.recv(|m| assert_eq!(m, msg, "echo {i} differs"))?;
        rtts.push(t.elapsed());
    }
    rtts.sort();
    let pct = |p: f64| rtts[((rtts.len() - 1) as f64 * p) as usize];
    println!(
        "{count} round trips of 64 bytes: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        rtts[rtts.len() - 1]
    );
    println!("ping stats: {:?}", tx.stats());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["pong", name] => pong(name),
        ["ping", name] => ping(name, 10_000),
        ["ping", name, n] => ping(name, n.parse()?),
        _ => {
            eprintln!("usage: ping_pong pong NAME | ping NAME [COUNT]");
            std::process::exit(2);
        }
    }
}
