//! Resource hygiene: a long-lived process that creates, attaches and drops channels
//! 10,000 times ends with the fds it started with, and leaves nothing in /dev/shm.

use shm_channel::{ChannelBuilder, Receiver, Sender, Spsc};
use shm_idle::Blocking;
use shm_notify::{EventFd, Futex};
use shm_tests::unique_name;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn ten_thousand_channel_cycles_leak_no_fd() {
    // Warm up lazily opened fds (tracing, test harness) before counting.
    let _ = ChannelBuilder::new()
        .capacity(64)
        .anonymous_sender::<Spsc, EventFd, Blocking>(Blocking)
        .unwrap();
    let before = open_fds();
    for i in 0..10_000 {
        if i % 2 == 0 {
            let (mut tx, handoff) = ChannelBuilder::new()
                .capacity(64)
                .anonymous_sender::<Spsc, EventFd, Blocking>(Blocking)
                .unwrap();
            let mut rx =
                Receiver::<Spsc, EventFd, Blocking>::from_fds(handoff.into_fds(), Blocking)
                    .unwrap();
            tx.send(b"x").unwrap();
            assert_eq!(rx.recv_vec().unwrap(), b"x");
        } else {
            let name = unique_name("hyg");
            let mut rx: Receiver<Spsc, Futex, Blocking> = ChannelBuilder::new()
                .capacity(64)
                .create_receiver(&name, Blocking)
                .unwrap();
            let mut tx: Sender<Spsc, Futex, Blocking> = Sender::open(&name, Blocking).unwrap();
            tx.send(b"y").unwrap();
            assert_eq!(rx.recv_vec().unwrap(), b"y");
        }
    }
    assert_eq!(open_fds(), before, "fds leaked over 10,000 cycles");
    let me = format!("shmring-test-{}-hyg", std::process::id());
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&me))
        .collect();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
}
