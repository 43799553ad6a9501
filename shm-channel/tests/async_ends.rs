//! The tokio ends: an immediate message needs no wait (the future is ready on its first
//! poll), a parked receiver and a parked sender are woken, cancellation withdraws, and
//! both learn when the other side is gone.
#![cfg(all(feature = "tokio", not(shm_loom)))]

use shm_channel::{AsyncReceiver, AsyncSender, ChannelBuilder, RecvError, SendError, Sender, Spsc};
use shm_idle::Blocking;
use shm_notify::EventFd;
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

type ARx = AsyncReceiver<Spsc, EventFd, Blocking>;
type ATx = AsyncSender<Spsc, EventFd, Blocking>;

fn pair(capacity: usize) -> (ARx, ATx) {
    let (rx, fds) = ChannelBuilder::new()
        .capacity(capacity)
        .detect_interval(Duration::from_millis(20))
        .anonymous_receiver::<Spsc, EventFd, Blocking>(Blocking)
        .unwrap();
    let tx = Sender::from_fds(fds.into_fds(), Blocking).unwrap();
    (
        AsyncReceiver::new(rx).unwrap(),
        AsyncSender::new(tx).unwrap(),
    )
}

struct Noop;

impl std::task::Wake for Noop {
    fn wake(self: std::sync::Arc<Self>) {}
}

/// Polls a future once with a waker that does nothing.
fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
    let mut f = std::pin::pin!(f);
    let waker = Waker::from(std::sync::Arc::new(Noop));
    f.as_mut().poll(&mut Context::from_waker(&waker))
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiting_message_is_taken_without_waiting() {
    let (mut rx, mut tx) = pair(4096);
    assert!(poll_once(tx.send(b"now")).is_ready());
    match poll_once(rx.recv_vec()) {
        Poll::Ready(Ok(m)) => assert_eq!(m, b"now"),
        other => panic!("not ready on the first poll: {other:?}"),
    }
    // Nothing there: the first poll parks (pending), and a cancelled wait withdraws.
    assert!(poll_once(rx.recv_vec()).is_pending());
    tx.send(b"later").await.unwrap();
    assert_eq!(rx.recv_vec().await.unwrap(), b"later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_ends_are_woken_and_nothing_is_lost() {
    let (mut rx, mut tx) = pair(256); // a few messages fill it: the sender parks too
    let writer = tokio::spawn(async move {
        for i in 0..20_000u32 {
            tx.send(&i.to_le_bytes()).await.unwrap();
            if i % 1000 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await; // the reader parks
            }
        }
    });
    for i in 0..20_000u32 {
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv_vec())
            .await
            .expect("receiver never woken")
            .unwrap();
        assert_eq!(m, i.to_le_bytes());
        if i % 997 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await; // the sender parks on full
        }
    }
    writer.await.unwrap();
    assert!(matches!(rx.recv_vec().await, Err(RecvError::Disconnected)));
}

#[tokio::test(flavor = "current_thread")]
async fn a_sender_learns_the_reader_is_gone() {
    let (rx, mut tx) = pair(256);
    while tx.get_mut().try_send(&[0; 24]).is_ok() {}
    let send = tokio::spawn(async move { tx.send(&[0; 24]).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(rx);
    let r = tokio::time::timeout(Duration::from_secs(10), send)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(r, Err(SendError::Disconnected)), "{r:?}");
}
