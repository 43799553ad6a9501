//! `inspect` and the `shm-stat` binary against a live channel: positions, fill, a parked
//! reader, the ends' liveness; table and JSON output; bad arguments.
#![cfg(not(shm_loom))]

use shm_channel::{inspect, ChannelBuilder, EndState, Receiver, Sender, Spsc};
use shm_idle::Blocking;
use shm_notify::Futex;
use std::process::Command;
use std::time::{Duration, Instant};

fn name(tag: &str) -> String {
    format!("shmring-test-{}-stat-{tag}", std::process::id())
}

fn stat(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shm-stat"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn a_live_channel_is_described_and_a_parked_reader_is_seen() {
    let n = name("live");
    let mut tx: Sender<Spsc, Futex, Blocking> = ChannelBuilder::new()
        .capacity(4096)
        .create_sender(&n, Blocking)
        .unwrap();
    let mut rx: Receiver<Spsc, Futex, Blocking> = Receiver::open(&n, Blocking).unwrap();
    for _ in 0..3 {
        tx.send(&[1; 24]).unwrap(); // 3 x 32 bytes
    }
    let i = inspect(&n).unwrap();
    assert_eq!((i.capacity, i.head, i.tail, i.used), (4096, 0, 96, 96));
    assert!(!i.is_stale());
    let me = std::process::id();
    assert_eq!(
        i.reader,
        EndState::Open {
            pid: me,
            alive: true
        }
    );
    assert_eq!(
        i.writers,
        [EndState::Open {
            pid: me,
            alive: true
        }]
    );
    assert_eq!(i.data_waiters, (0, false));

    let (code, table) = stat(&[&n]);
    assert_eq!(code, 0);
    assert!(table.starts_with("name"), "{table}");
    assert!(table.contains(&n) && table.contains("2.3%") && table.contains("alive"));
    let (code, json) = stat(&["--json", &n]);
    assert_eq!(code, 0);
    for field in [
        "\"used\":96",
        "\"stale\":false",
        "\"ring\":\"spsc\"",
        "\"notifier\":\"futex\"",
    ] {
        assert!(json.contains(field), "{field} in {json}");
    }

    // Drain, then park the reader in a thread: its waiter word shows it.
    for _ in 0..3 {
        rx.recv(|_| ()).unwrap();
    }
    let reader = std::thread::spawn(move || rx.recv_vec().unwrap());
    let t = Instant::now();
    while inspect(&n).unwrap().data_waiters.0 != 1 {
        assert!(t.elapsed() < Duration::from_secs(10), "reader never parked");
        std::thread::sleep(Duration::from_millis(1));
    }
    tx.send(b"wake").unwrap();
    assert_eq!(reader.join().unwrap(), b"wake");
    assert_eq!(inspect(&n).unwrap().data_waiters.0, 0);
}

#[test]
fn bad_arguments_and_missing_channels_are_errors() {
    assert_eq!(stat(&["--bogus"]).0, 2);
    let (code, out) = stat(&[&name("missing")]);
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 1, "header only: {out}");
    assert_eq!(stat(&["--json", &name("missing")]), (1, "[]\n".into()));
}
