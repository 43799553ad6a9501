//! One million records of random length cross a segment between processes, SPSC and
//! MPSC (two producer processes), opened by name and by an inherited memfd. Each record
//! carries a checksum and a sequence number; the consumer checks every byte.

use shm_ring::{Kind, Mpsc, RingKind, Segment, SegmentOptions, Spsc};
use shm_tests::{unique_name, verify, Peer};
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::time::{Duration, Instant};

const TOTAL: u64 = 1_000_000;
const CAPACITY: usize = 64 * 1024;
use shm_tests::MAX_BODY;
const DEADLINE: Duration = Duration::from_secs(240);

enum Mode {
    Name,
    Memfd,
}

fn run<K: RingKind>(kind: Kind, producers: u32, mode: Mode) {
    let seed = 0x5EED ^ std::process::id() as u64;
    let (seg, name) = match mode {
        Mode::Name => {
            let name = unique_name("xproc");
            (
                Segment::create(&name, &SegmentOptions::new(kind, CAPACITY)).unwrap(),
                Some(name),
            )
        }
        Mode::Memfd => (
            Segment::anonymous(&SegmentOptions::new(kind, CAPACITY)).unwrap(),
            None,
        ),
    };
    let mut rx = seg.consumer::<K>().unwrap();
    let per = TOTAL / producers as u64;
    let peers: Vec<Peer> = (0..producers)
        .map(|id| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ring_peer"));
            cmd.arg("produce");
            let inherit = match &name {
                Some(n) => {
                    cmd.args(["--name", n]);
                    None
                }
                None => {
                    cmd.args(["--fd", &seg.as_fd().as_raw_fd().to_string()]);
                    Some(seg.as_fd())
                }
            };
            cmd.args([
                kind.to_string(),
                per.to_string(),
                seed.to_string(),
                id.to_string(),
            ]);
            Peer::spawn(cmd, inherit)
        })
        .collect();
    // Bodies are capped below the ring's maximum to keep the run short; lengths vary.
    let max = MAX_BODY.min(seg.max_message_len());
    let mut next = vec![0u64; producers as usize];
    let mut scratch = Vec::new();
    let mut received = 0u64;
    let deadline = Instant::now() + DEADLINE;
    while received < per * producers as u64 {
        let n = rx
            .read(256, |ty, body| {
                let id = (ty - 1) as u32;
                let seq = next[id as usize];
                if let Err(e) = verify(seed, id, seq, max, body, &mut scratch) {
                    panic!("{e}");
                }
                next[id as usize] += 1;
            })
            .unwrap();
        received += n as u64;
        if n == 0 {
            assert!(
                Instant::now() < deadline,
                "stalled at {received} records: {next:?}"
            );
            std::thread::yield_now();
        }
    }
    for p in peers {
        assert!(
            p.wait_timeout(Duration::from_secs(30)).success(),
            "producer failed"
        );
    }
    assert_eq!(
        rx.read(usize::MAX, |_, _| panic!("extra record")).unwrap(),
        0
    );
    assert!(next.iter().all(|&n| n == per));
}

#[test]
fn spsc_by_name() {
    run::<Spsc>(Kind::Spsc, 1, Mode::Name);
}

#[test]
fn spsc_by_inherited_memfd() {
    run::<Spsc>(Kind::Spsc, 1, Mode::Memfd);
}

#[test]
fn mpsc_two_producer_processes_by_name() {
    run::<Mpsc>(Kind::Mpsc, 2, Mode::Name);
}

#[test]
fn mpsc_two_producer_processes_by_inherited_memfd() {
    run::<Mpsc>(Kind::Mpsc, 2, Mode::Memfd);
}
