//! Request/response between two processes with `shm_channel::duplex`.
//!
//! Terminal 1: `cargo run --release -p shm-channel --example duplex -- server calc`
//! Terminal 2: `cargo run --release -p shm-channel --example duplex -- client calc 1000`
//!
//! The server answers every request (a list of little-endian u32) with their sum; the
//! client makes COUNT calls, checks each answer and prints the mean call time. Run the
//! client again: the server serves one client after another, and stops after 10 s
//! without a request; its drop removes the channels' names.

use shm_channel::duplex::{CallError, Client, Server};
use shm_channel::ChannelBuilder;
use shm_idle::Backoff;
use shm_notify::Futex;
use std::time::{Duration, Instant};

fn sum(req: &[u8]) -> u64 {
    req.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as u64)
        .sum()
}

fn server(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let b = ChannelBuilder::new();
    let mut srv: Server<Futex, Backoff> =
        Server::create(name, &b, Backoff::default(), Backoff::default())?;
    println!("server: ready on {name}");
    let mut served = 0u64;
    loop {
        match srv.serve(Duration::from_secs(10), |req, reply| {
            reply.extend_from_slice(&sum(req).to_le_bytes())
        }) {
            Ok(()) => served += 1,
            Err(CallError::Timeout) => {
                println!("server: {served} requests served; idle for 10 s, bye");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn client(name: &str, count: u32) -> Result<(), Box<dyn std::error::Error>> {
    let mut cli: Client<Futex, Backoff> =
        Client::connect(name, Backoff::default(), Backoff::default())?;
    let t = Instant::now();
    for i in 0..count {
        let req: Vec<u8> = (i..i + 8).flat_map(u32::to_le_bytes).collect();
        let reply = cli.call(&req, Duration::from_secs(5))?;
        assert_eq!(u64::from_le_bytes(reply[..8].try_into()?), sum(&req));
    }
    println!(
        "client: {count} calls, mean {:.2} µs per call",
        t.elapsed().as_secs_f64() * 1e6 / count.max(1) as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server", name] => server(name),
        ["client", name, count] => client(name, count.parse()?),
        _ => {
            eprintln!("usage: duplex server NAME | duplex client NAME COUNT");
            std::process::exit(2)
        }
    }
}
