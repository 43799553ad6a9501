//! A producer process for the cross-process ring tests.
//!
//! `ring_peer produce (--name NAME | --fd FD) KIND COUNT SEED PRODUCER_ID`
//! `ring_peer create-hang NAME`: creates a named segment, prints `ready`, sleeps.
//! writes COUNT self-checking records (see `shm_tests::encode`) and exits 0, or exits 1
//! with a message if anything fails or the consumer stops draining for 60 s.

use shm_ring::{Mpsc, Producer, RingKind, Segment, Spsc, WriteError};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

fn produce<K: RingKind>(seg: &Segment, count: u64, seed: u64, id: u32) -> Result<(), String> {
    let mut tx: Producer<K> = seg.producer().map_err(|e| e.to_string())?;
    let max = shm_tests::MAX_BODY.min(seg.max_message_len());
    let mut body = Vec::with_capacity(max);
    for seq in 0..count {
        shm_tests::encode(seed, id, seq, max, &mut body);
        let mut since = None::<Instant>;
        loop {
            match tx.try_write(1 + id as i32, &body) {
                Ok(()) => break,
                Err(WriteError::Full) => {
                    let t = *since.get_or_insert_with(Instant::now);
                    if t.elapsed() > Duration::from_secs(60) {
                        return Err(format!("ring full for 60 s at seq {seq}"));
                    }
                    std::thread::yield_now();
                }
                Err(e) => return Err(format!("seq {seq}: {e}")),
            }
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "create-hang" {
        // Create a named segment, say so, and wait to be killed (a creator that dies
        // without unlinking leaves a stale segment).
        let opts = shm_ring::SegmentOptions::new(shm_ring::Kind::Spsc, 4096);
        let _seg = Segment::create(&args[2], &opts).expect("create");
        println!("ready");
        std::io::Write::flush(&mut std::io::stdout()).ok();
        std::thread::sleep(Duration::from_secs(3600));
        return;
    }
    let run = || -> Result<(), String> {
        let [_, role, how, target, kind, count, seed, id] = &args[..] else {
            return Err(
                "usage: ring_peer produce (--name NAME | --fd FD) KIND COUNT SEED ID".into(),
            );
        };
        if role != "produce" {
            return Err(format!("unknown role {role}"));
        }
        let seg = match how.as_str() {
            "--name" => Segment::open(target),
            "--fd" => {
                let fd: i32 = target.parse().map_err(|e| format!("fd: {e}"))?;
                // SAFETY: the parent cleared CLOEXEC on this fd for us alone; nothing
                // else in this process owns it.
                Segment::from_fd(unsafe { OwnedFd::from_raw_fd(fd) })
            }
            _ => return Err(format!("unknown mode {how}")),
        }
        .map_err(|e| e.to_string())?;
        let (count, seed, id) = (
            count.parse().map_err(|_| "count")?,
            seed.parse().map_err(|_| "seed")?,
            id.parse().map_err(|_| "id")?,
        );
        match kind.as_str() {
            "spsc" => produce::<Spsc>(&seg, count, seed, id),
            "mpsc" => produce::<Mpsc>(&seg, count, seed, id),
            _ => Err(format!("unknown kind {kind}")),
        }
    };
    if let Err(e) = run() {
        eprintln!("ring_peer: {e}");
        std::process::exit(1);
    }
}
