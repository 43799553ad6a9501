//! Timeouts saturate: `Duration::MAX` (or any timeout too large for the clock) is
//! accepted everywhere a timeout or a strategy limit is, and means "no deadline": never
//! an overflow panic, never a spin. Each case: a message waiting is delivered; with none
//! waiting, the call returns when the other end closes (every test is bounded by that
//! close, made by a thread after a short sleep).
#![cfg(not(shm_loom))]

use shm_channel::duplex::{Client, Server};
use shm_channel::{ChannelBuilder, Event, Receiver, RecvError, SendError, Sender, Spsc, WaitSet};
use shm_channel::{RecvTimeoutError, SendTimeoutError};
use shm_idle::{Backoff, Blocking, IdleStrategy};
use shm_notify::{EventFd, Fifo};
use std::time::Duration;

const MAX: Duration = Duration::MAX;

fn name(tag: &str) -> String {
    format!("shmring-test-{}-huge-{tag}", std::process::id())
}

type Rx = Receiver<Spsc, Fifo, Backoff>;
type Tx = Sender<Spsc, Fifo, Backoff>;

fn pair(tag: &str) -> (Tx, Rx) {
    let n = name(tag);
    let rx: Rx = ChannelBuilder::new()
        .capacity(4096)
        .create_receiver(&n, Backoff::default())
        .unwrap();
    (Sender::open(&n, Backoff::default()).unwrap(), rx)
}

/// Drops `x` from another thread after 100 ms.
fn drop_later<T: Send + 'static>(x: T) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(x);
    })
}

#[test]
fn recv_timeout_max_delivers_a_waiting_message() {
    let (mut tx, mut rx) = pair("recv-msg");
    tx.send(b"here").unwrap();
    assert_eq!(rx.recv_timeout(MAX, <[u8]>::to_vec).unwrap(), b"here");
}

#[test]
fn recv_timeout_max_honours_the_writers_close() {
    let (tx, mut rx) = pair("recv-close");
    let t = drop_later(tx);
    assert!(matches!(
        rx.recv_timeout(MAX, |_| ()),
        Err(RecvTimeoutError::Recv(RecvError::Disconnected))
    ));
    t.join().unwrap();
}

#[test]
fn send_timeout_max_sends_when_there_is_space() {
    let (mut tx, mut rx) = pair("send-space");
    tx.send_timeout(b"fits", MAX).unwrap();
    assert_eq!(rx.recv_vec().unwrap(), b"fits");
}

#[test]
fn send_timeout_max_honours_the_readers_close() {
    let (mut tx, rx) = pair("send-close");
    while tx.try_send(&[0; 64]).is_ok() {}
    let t = drop_later(rx);
    assert!(matches!(
        tx.send_timeout(&[0; 64], MAX),
        Err(SendTimeoutError::Send(SendError::Disconnected))
    ));
    t.join().unwrap();
}

#[test]
fn waitset_wait_max_delivers_and_reports_the_close() {
    let b = ChannelBuilder::new().capacity(4096);
    let (rx, fds) = b
        .anonymous_receiver::<Spsc, EventFd, Blocking>(Blocking)
        .unwrap();
    let mut tx = Sender::<Spsc, EventFd, Blocking>::from_fds(fds.into_fds(), Blocking).unwrap();
    let mut set = WaitSet::new(16, 10).unwrap();
    set.add(rx).unwrap();
    tx.send(b"one").unwrap();
    let mut got = Vec::new();
    set.wait(Some(MAX), |e| {
        if let Event::Message(_, m) = e {
            got.push(m.to_vec())
        }
    })
    .unwrap();
    assert_eq!(got, [b"one".to_vec()]);
    let t = drop_later(tx);
    let mut closed = false;
    while !closed {
        set.wait(Some(MAX), |e| closed |= matches!(e, Event::Disconnected(_)))
            .unwrap();
    }
    t.join().unwrap();
}

#[test]
fn waitset_timer_of_duration_max_is_accepted() {
    let mut set = WaitSet::<Spsc, EventFd, Blocking>::new(16, 10).unwrap();
    let t = set.add_timer(MAX, true).unwrap();
    set.remove_timer(t).unwrap();
}

#[test]
fn duplex_call_max_gets_its_reply() {
    let n = name("duplex");
    let b = ChannelBuilder::new().capacity(4096);
    let mut srv =
        Server::<Fifo, Backoff>::create(&n, &b, Backoff::default(), Backoff::default()).unwrap();
    let mut cli =
        Client::<Fifo, Backoff>::connect(&n, Backoff::default(), Backoff::default()).unwrap();
    let server = std::thread::spawn(move || {
        srv.serve(MAX, |req, reply| reply.extend_from_slice(req))
            .unwrap();
        srv
    });
    assert_eq!(cli.call(b"echo", MAX).unwrap(), b"echo");
    drop(server.join().unwrap());
}

#[test]
fn backoff_with_a_max_park_of_duration_max_keeps_doubling_without_overflow() {
    let mut b = Backoff::new(0, 0, Duration::from_nanos(1), MAX);
    for _ in 0..300 {
        assert!(matches!(b.idle(0), shm_idle::Action::Park(Some(_))));
    }
}
