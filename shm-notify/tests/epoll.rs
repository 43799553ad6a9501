//! Pollable notifiers inside an edge-triggered epoll set: 100,000 wake-ups in a row, each
//! one drained so the next edge arrives; a missed edge shows as a 5 s stall and fails.
#![cfg(not(shm_loom))]

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use shm_notify::{EventFd, Fifo, Notifier, PollableNotifier, ThreadNotifier, Wait};
use std::sync::Arc;
use std::time::Duration;

const ROUNDS: u32 = 100_000;

fn edge_triggered_wakeups<N: PollableNotifier + 'static>(n: N) {
    let n = Arc::new(n);
    let ack = Arc::new(ThreadNotifier::default());
    let waker = {
        let (n, ack) = (n.clone(), ack.clone());
        std::thread::spawn(move || {
            for i in 0..ROUNDS {
                n.notify().unwrap();
                assert_eq!(
                    ack.wait(Some(Duration::from_secs(5))).unwrap(),
                    Wait::Notified,
                    "round {i}"
                );
            }
        })
    };
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
    epoll
        .add(
            n.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLET, 7),
        )
        .unwrap();
    let mut events = [EpollEvent::empty(); 4];
    for i in 0..ROUNDS {
        let ready = loop {
            match epoll.wait(&mut events, 5000u16) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => break r.unwrap(),
            }
        };
        assert!(ready == 1 && events[0].data() == 7, "stalled at round {i}");
        assert!(
            n.drain().unwrap(),
            "epoll reported an edge with nothing to drain at round {i}"
        );
        ack.notify().unwrap();
    }
    waker.join().unwrap();
}

#[test]
fn eventfd_edge_triggered() {
    edge_triggered_wakeups(EventFd::new().unwrap());
}

#[test]
fn fifo_edge_triggered() {
    let path = format!("/dev/shm/shmring-test-{}-epoll-fifo", std::process::id());
    edge_triggered_wakeups(Fifo::create(std::path::Path::new(&path), 0o600).unwrap());
}
