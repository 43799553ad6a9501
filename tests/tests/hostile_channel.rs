//! Hostile memory under a running channel: random bytes written into every part of the
//! segment (the header page with the channel's waiter words, liveness slots, futex words
//! and semaphores; the records; the counters) between sends and receives. Both ends
//! must only return messages no longer than the channel's maximum or errors: never
//! panic, never touch memory outside the segment, never block past their timeout.
//!
//! 100,000 rounds by default; `SHM_FUZZ_ROUNDS` sets the count (`cargo xtask fuzz` runs
//! millions in release mode) and `SHM_FUZZ_SEED` replays a run.

use shm_channel::{ChannelBuilder, ChannelNotifier, Receiver, Sender};
use shm_channel::{ChannelKind, Mpsc, Spsc};
use shm_idle::{Backoff, ParksOn};
use shm_notify::{Futex, Semaphore};
use shm_ring::layout::{HEADER_PAGE_LEN, TRAILER_LEN};
use shm_tests::Rng;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

const CAPACITY: usize = 1024;
/// A fresh channel this often, so garbage does not leave one that only says `Corrupt`.
const RENEW_EVERY: u64 = 500;

fn rounds() -> u64 {
    std::env::var("SHM_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Where to write: the part of the segment first (so the small parts are hit often),
/// then an offset in it.
fn target(rng: &mut Rng) -> (usize, &'static str) {
    let ext = shm_ring::layout::EXTENSION_OFFSET;
    let (start, len, part) = match rng.below(10) {
        0..=3 => (ext, 12 * 128, "channel words"),
        4 => (0, ext, "ring header"),
        5..=7 => (HEADER_PAGE_LEN, CAPACITY, "records"),
        _ => (HEADER_PAGE_LEN + CAPACITY, TRAILER_LEN, "counters"),
    };
    (start + rng.below(len as u64) as usize, part)
}

/// Garbage that often looks plausible: small numbers, our pid, record-like headers.
fn garbage(rng: &mut Rng, buf: &mut [u8]) -> usize {
    let n = 1 + rng.below(buf.len() as u64) as usize;
    for b in buf[..n].iter_mut() {
        *b = rng.bits() as u8;
    }
    if n >= 8 && rng.below(3) == 0 {
        let plausible: [i32; 2] = match rng.below(4) {
            0 => [rng.below(64) as i32, 1],
            1 => [-(rng.below(64) as i32), 1],
            2 => [std::process::id() as i32, 0],
            _ => [rng.below(4) as i32, rng.below(4) as i32],
        };
        buf[..4].copy_from_slice(&plausible[0].to_ne_bytes());
        buf[4..8].copy_from_slice(&plausible[1].to_ne_bytes());
    }
    n
}

#[derive(Default, Debug)]
struct Outcomes {
    messages: u64,
    sent: u64,
    errors: u64,
    by_part: std::collections::BTreeMap<&'static str, u64>,
}

fn fuzz<K: ChannelKind, N: ChannelNotifier>(rng: &mut Rng, rounds: u64, out: &mut Outcomes)
where
    Backoff: ParksOn<N>,
{
    let idle = || Backoff::new(4, 1, Duration::from_micros(1), Duration::from_micros(50));
    let b = ChannelBuilder::new()
        .capacity(CAPACITY)
        .detect_interval(Duration::from_millis(1));
    let mut round = 0;
    while round < rounds {
        let (mut rx, handoff): (Receiver<K, N, Backoff>, _) = b.anonymous_receiver(idle()).unwrap();
        let fds = handoff.into_fds();
        let file = File::from(fds[0].try_clone().unwrap());
        let mut tx: Sender<K, N, Backoff> = Sender::from_fds(fds, idle()).unwrap();
        let max = rx.max_message_len();
        let end = file.metadata().unwrap().len() as usize;
        // Intact, the channel works: a park on the empty ring times out, a message passes.
        assert!(matches!(
            rx.recv_timeout(Duration::from_micros(200), |_| ()),
            Err(shm_channel::RecvTimeoutError::Timeout)
        ));
        tx.try_send(b"intact").unwrap();
        assert_eq!(rx.recv_vec().unwrap(), b"intact");
        let mut buf = [0u8; 64];
        for _ in 0..RENEW_EVERY.min(rounds - round) {
            round += 1;
            let (at, part) = target(rng);
            // Within the file: a sealed memfd refuses to grow.
            let n = garbage(rng, &mut buf).min(end - at);
            *out.by_part.entry(part).or_default() += 1;
            file.write_at(&buf[..n], at as u64).unwrap();
            let len = rng.below(max as u64 + 1) as usize;
            match tx.try_send(&vec![0x5A; len]) {
                Ok(()) => out.sent += 1,
                Err(_) => out.errors += 1,
            }
            let t = Instant::now();
            let got = if rng.below(8) == 0 {
                rx.recv_timeout(Duration::from_micros(20), |m| m.len())
                    .map_err(drop)
            } else {
                rx.try_recv(|m| m.len()).map_err(drop)
            };
            // A park may run to the detection interval it is capped by, no further.
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "receive blocked {:?} {}",
                t.elapsed(),
                std::any::type_name::<N>()
            );
            match got {
                Ok(len) => {
                    assert!(len <= max, "delivered {len} bytes, max {max}");
                    out.messages += 1;
                }
                Err(_) => out.errors += 1,
            }
        }
    }
}

#[test]
fn garbage_anywhere_in_the_segment_gives_errors_never_panics() {
    let rounds = rounds();
    eprintln!("SHM_FUZZ_ROUNDS={rounds}");
    let mut rng = Rng::seed_from_env("SHM_FUZZ_SEED", "hostile channel");
    let mut out = Outcomes::default();
    let quarter = rounds.div_ceil(4);
    fuzz::<Spsc, Futex>(&mut rng, quarter, &mut out);
    fuzz::<Mpsc, Futex>(&mut rng, quarter, &mut out);
    fuzz::<Spsc, Semaphore>(&mut rng, quarter, &mut out);
    fuzz::<Mpsc, Semaphore>(&mut rng, quarter, &mut out);
    eprintln!("{out:?}");
    // The rounds exercised both paths: messages got through and garbage caused errors.
    assert!(out.messages > 0 && out.errors > 0, "{out:?}");
}

/// Where the lane summary word sits in the header page (see `shm_ring::layout`).
const SUMMARY_OFFSET: u64 = 1024;

/// A peer zeroes the MPSC lane summary after a message was committed: the reader still
/// gets it (the paced check shows hidden lanes again), and once the writer has closed,
/// still gets it before `Disconnected`.
#[test]
fn a_zeroed_lane_summary_hides_no_message() {
    for writer_closes in [false, true] {
        let name = shm_tests::unique_name("summary");
        let mut rx: Receiver<Mpsc, Futex, Backoff> = ChannelBuilder::new()
            .detect_interval(Duration::from_millis(20))
            .create_receiver(&name, Backoff::default())
            .unwrap();
        let mut tx: Sender<Mpsc, Futex, Backoff> = Sender::open(&name, Backoff::default()).unwrap();
        tx.send(b"hidden").unwrap();
        let file = File::options()
            .write(true)
            .open(format!("/dev/shm/{name}"))
            .unwrap();
        file.write_all_at(&[0; 8], SUMMARY_OFFSET).unwrap();
        if writer_closes {
            drop(tx);
            let mut got = Vec::new();
            rx.recv_timeout(Duration::from_secs(5), |m| got.extend_from_slice(m))
                .unwrap();
            assert_eq!(got, b"hidden");
            assert!(matches!(
                rx.recv_timeout(Duration::from_secs(5), |_| ()),
                Err(shm_channel::RecvTimeoutError::Recv(
                    shm_channel::RecvError::Disconnected
                ))
            ));
        } else {
            let t = Instant::now();
            let mut got = Vec::new();
            rx.recv_timeout(Duration::from_secs(5), |m| got.extend_from_slice(m))
                .unwrap();
            assert_eq!(got, b"hidden");
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "after {:?}",
                t.elapsed()
            );
            drop(tx);
        }
    }
}
