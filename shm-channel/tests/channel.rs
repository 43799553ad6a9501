//! Channel behaviour in one process (threads) with real notifiers: the hot path makes no
//! notify call while both sides are awake, a parked reader costs exactly one notify per
//! park, kinds are checked at attach, and a dropped end is noticed at once.
#![cfg(not(shm_loom))]

use shm_channel::{
    ChannelBuilder, ChannelError, Mpsc, Receiver, RecvError, SendError, Sender, Spsc,
};
use shm_channel::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use shm_idle::{Blocking, BusySpin};
use shm_notify::{EventFd, Futex};
use std::time::{Duration, Instant};

fn name(tag: &str) -> String {
    static N: std::sync::Mutex<u32> = std::sync::Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    format!("shmring-test-{}-{tag}-{n}", std::process::id())
}

#[test]
fn spinning_peers_make_no_notify_calls() {
    let name = name("hot");
    let mut rx: Receiver<Spsc, Futex, BusySpin> = ChannelBuilder::new()
        .capacity(1 << 16)
        .create_receiver(&name, BusySpin)
        .unwrap();
    let mut tx: Sender<Spsc, Futex, BusySpin> = Sender::open(&name, BusySpin).unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..100_000u32 {
            tx.send(&i.to_le_bytes()).unwrap();
        }
        tx.stats()
    });
    for i in 0..100_000u32 {
        rx.recv(|m| assert_eq!(m, i.to_le_bytes())).unwrap();
    }
    let tx_stats = writer.join().unwrap();
    assert_eq!(tx_stats.sent, 100_000);
    assert_eq!(
        tx_stats.notifies, 0,
        "writer notified a reader that never slept"
    );
    assert_eq!(
        rx.stats().notifies,
        0,
        "reader notified a writer that never slept"
    );
    assert_eq!((rx.stats().parks, tx_stats.parks), (0, 0));
}

#[test]
fn a_parked_reader_costs_one_notify_per_park() {
    let name = name("park");
    let b = ChannelBuilder::new().detect_interval(Duration::from_secs(30));
    let mut rx: Receiver<Spsc, Futex, Blocking> = b.create_receiver(&name, Blocking).unwrap();
    let mut tx: Sender<Spsc, Futex, BusySpin> = Sender::open(&name, BusySpin).unwrap();
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    const BURSTS: u32 = 50;
    const PER: u32 = 200;
    let reader = std::thread::spawn(move || {
        for burst in 0..BURSTS {
            for i in 0..PER {
                rx.recv(|m| assert_eq!(m, (burst * PER + i).to_le_bytes()))
                    .unwrap();
            }
            ack_tx.send(()).unwrap();
        }
        rx.stats()
    });
    for burst in 0..BURSTS {
        std::thread::sleep(Duration::from_millis(2)); // the reader parks meanwhile
        for i in 0..PER {
            tx.send(&(burst * PER + i).to_le_bytes()).unwrap();
        }
        ack_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("reader stalled");
    }
    let rx_stats = reader.join().unwrap();
    let notifies = tx.stats().notifies;
    // Most bursts find the reader parked (on a loaded machine it may not have got to
    // its park before the next burst comes).
    let (parks, skipped) = (rx_stats.parks, rx_stats.parks_skipped);
    assert!(parks >= BURSTS as u64 / 2, "reader parked {parks} times");
    // Every park ends by exactly one notify, and a park the reader's re-check skipped
    // draws at most one (the writer saw the announcement before the withdrawal). A
    // writer that notified per message would send ~200 per park.
    assert!(
        (parks..=parks + skipped).contains(&notifies),
        "{notifies} notifies for {parks} parks ({skipped} skipped)"
    );
}

#[test]
fn attach_checks_ring_and_notifier_kinds() {
    let name = name("kinds");
    let _rx: Receiver<Spsc, Futex, Blocking> = ChannelBuilder::new()
        .create_receiver(&name, Blocking)
        .unwrap();
    let e = Sender::<Mpsc, Futex, Blocking>::open(&name, Blocking).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ring kind mismatch: caller expects mpsc-lanes, segment is spsc: open it as the kind \
         it was created as"
    );
    let e = Sender::<Spsc, EventFd, Blocking>::open(&name, Blocking).unwrap_err();
    assert!(matches!(e, ChannelError::NotifierMismatch { .. }));
    assert_eq!(
        e.to_string(),
        "notifier mismatch: this end uses eventfd, the channel was created with futex: open \
         it with the futex notifier (or AnyNotifier, which takes the channel's own)"
    );
    let e = ChannelBuilder::new()
        .create_receiver::<Spsc, EventFd, Blocking>(&name, Blocking)
        .unwrap_err();
    assert!(
        matches!(
            e,
            ChannelError::NeedsFds("eventfd") | ChannelError::Segment(_)
        ),
        "{e}"
    );
    assert!(matches!(
        Receiver::<Spsc, Futex, Blocking>::open(&name, Blocking),
        Err(ChannelError::Segment(_)) | Err(ChannelError::ReaderAttached)
    ));
}

#[test]
fn dropping_the_receiver_ends_a_blocked_send_at_once() {
    let name = name("droprx");
    let rx: Receiver<Spsc, Futex, Blocking> = ChannelBuilder::new()
        .capacity(64)
        .detect_interval(Duration::from_secs(30))
        .create_receiver(&name, Blocking)
        .unwrap();
    let mut tx: Sender<Spsc, Futex, Blocking> = Sender::open(&name, Blocking).unwrap();
    for _ in 0..3 {
        tx.try_send(&[7; 8]).unwrap(); // 3 x 16 of the 56 bytes an SPSC ring of 64 holds
    }
    tx.try_send(&[]).unwrap();
    assert!(matches!(tx.try_send(&[7; 8]), Err(TrySendError::Full)));
    let dropper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(rx);
    });
    let t = Instant::now();
    assert!(matches!(tx.send(&[7; 8]), Err(SendError::Disconnected)));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "noticed by wake-up, not by the 30 s detection"
    );
    dropper.join().unwrap();
}

#[test]
fn dropping_all_senders_lets_the_reader_drain_then_disconnect() {
    let (tx, handoff) = ChannelBuilder::new()
        .anonymous_sender::<Mpsc, EventFd, Blocking>(Blocking)
        .unwrap();
    let mut rx =
        Receiver::<Mpsc, EventFd, Blocking>::from_fds(handoff.into_fds(), Blocking).unwrap();
    let mut a = tx.try_clone().unwrap();
    let mut b = tx;
    a.send(b"a").unwrap();
    b.send(b"b").unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        drop((a, b));
    });
    // Order holds per writer, not across writers.
    let mut got = [rx.recv_vec().unwrap(), rx.recv_vec().unwrap()];
    got.sort();
    assert_eq!(got, [b"a", b"b"]);
    assert!(matches!(rx.recv_vec(), Err(RecvError::Disconnected)));
    assert!(matches!(
        rx.try_recv(|_| ()),
        Err(TryRecvError::Recv(RecvError::Disconnected))
    ));
    t.join().unwrap();
}

#[test]
fn timeouts_and_try_forms() {
    let (mut tx, handoff) = ChannelBuilder::new()
        .capacity(64)
        .anonymous_sender::<Spsc, EventFd, Blocking>(Blocking)
        .unwrap();
    let mut rx =
        Receiver::<Spsc, EventFd, Blocking>::from_fds(handoff.into_fds(), Blocking).unwrap();
    assert!(matches!(rx.try_recv(|_| ()), Err(TryRecvError::Empty)));
    let t = Instant::now();
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(20), |_| ()),
        Err(RecvTimeoutError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(20));
    assert!(matches!(
        tx.try_send(&[0; 9]),
        Err(TrySendError::Send(SendError::TooLong { len: 9, max: 8 }))
    ));
    for _ in 0..3 {
        tx.try_send(&[1; 8]).unwrap(); // 3 x 16 of the 56 bytes an SPSC ring of 64 holds
    }
    assert!(matches!(
        tx.send_timeout(&[1; 8], Duration::from_millis(20)),
        Err(SendTimeoutError::Timeout)
    ));
    assert!(matches!(tx.try_claim(3), Err(TrySendError::Full)));
    assert_eq!(rx.poll(10, |m| assert_eq!(m, [1; 8])).unwrap(), 3);
    let mut c = tx.try_claim(3).unwrap();
    c.as_mut_slice().copy_from_slice(b"abc");
    c.commit().unwrap();
    assert_eq!(rx.recv_vec().unwrap(), b"abc");
}

/// Configuration-driven programs pick the notifier and the strategy by name at run time.
#[test]
fn runtime_chosen_notifier_and_strategy() {
    use shm_idle::AnyIdle;
    use shm_notify::{AnyNotifier, NotifierKind};
    for kind in ["futex", "sem", "fifo"] {
        let name = name(kind);
        let b = ChannelBuilder::new().notifier_kind(kind.parse::<NotifierKind>().unwrap());
        let idle: AnyIdle = "backoff:spins=10,yields=5,min=1us,max=1ms".parse().unwrap();
        let mut rx: Receiver<Spsc, AnyNotifier, AnyIdle> =
            b.create_receiver(&name, idle.clone()).unwrap();
        let mut tx: Sender<Spsc, AnyNotifier, AnyIdle> = Sender::open(&name, idle).unwrap();
        let writer = std::thread::spawn(move || {
            for i in 0..1000u32 {
                tx.send(&i.to_le_bytes()).unwrap();
                if i % 100 == 0 {
                    // Long enough for the reader to spin, yield and park even on a
                    // loaded machine (a yield may give the CPU away for a time slice).
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        for i in 0..1000u32 {
            rx.recv(|m| assert_eq!(m, i.to_le_bytes())).unwrap();
        }
        writer.join().unwrap();
        assert!(
            rx.stats().parks > 0,
            "{kind}: the reader never parked: {:?}",
            rx.stats()
        );
    }
    // An AnyNotifier channel without a kind is a configuration error, not a guess.
    let e = ChannelBuilder::new()
        .create_receiver::<Spsc, AnyNotifier, AnyIdle>(&name("nokind"), AnyIdle::from(BusySpin));
    assert!(matches!(e, Err(ChannelError::Config(_))));
}

/// "fifo + epoll" (or eventfd) from configuration strings: a pollable notifier chosen at
/// run time parks in epoll; a futex channel is refused with the reason.
#[test]
fn runtime_chosen_pollable_notifier_parks_in_epoll() {
    use shm_idle::AnyPollIdle;
    use shm_notify::{AnyPollNotifier, NotifierKind};
    let (notifier, strategy) = ("fifo", "epoll:budget=10");
    let chan = name("anypoll");
    let b = ChannelBuilder::new().notifier_kind(notifier.parse::<NotifierKind>().unwrap());
    let idle: AnyPollIdle = strategy.parse().unwrap();
    let mut rx: Receiver<Spsc, AnyPollNotifier, AnyPollIdle> =
        b.create_receiver(&chan, idle.clone()).unwrap();
    let mut tx: Sender<Spsc, AnyPollNotifier, AnyPollIdle> = Sender::open(&chan, idle).unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..200u32 {
            tx.send(&i.to_le_bytes()).unwrap();
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    for i in 0..200u32 {
        rx.recv_timeout(Duration::from_secs(10), |m| assert_eq!(m, i.to_le_bytes()))
            .unwrap();
    }
    writer.join().unwrap();
    assert!(rx.stats().parks > 0, "never parked: {:?}", rx.stats());

    let futex = name("anypoll-futex");
    let _rx: Receiver<Spsc, Futex, Blocking> = ChannelBuilder::new()
        .create_receiver(&futex, Blocking)
        .unwrap();
    let e = Sender::<Spsc, AnyPollNotifier, AnyPollIdle>::open(&futex, "epoll".parse().unwrap())
        .unwrap_err();
    assert!(
        matches!(e, ChannelError::NotPollable(NotifierKind::Futex)),
        "{e:?}"
    );
    assert!(e.to_string().contains("AnyNotifier"), "{e}");
}

#[test]
fn a_reader_holds_off_only_when_caught_up_with_a_streaming_writer() {
    let (mut tx, mut rx) =
        shm_channel::channel::<Spsc, shm_notify::ThreadNotifier, _, _>(4096, BusySpin, BusySpin)
            .unwrap();
    let idle_for_5ms = |rx: &mut Receiver<Spsc, shm_notify::ThreadNotifier, BusySpin>| {
        let got = rx.recv_timeout(Duration::from_millis(5), |_| ());
        assert!(matches!(got, Err(RecvTimeoutError::Timeout)), "{got:?}");
        rx.stats().hold_offs
    };
    // Request and reply: one message per empty read.
    for _ in 0..8 {
        tx.send(b"request").unwrap();
        rx.recv(|_| ()).unwrap();
    }
    assert_eq!(idle_for_5ms(&mut rx), 0);
    // Two runs of four, each read until the ring is empty: caught up.
    for _ in 0..2 {
        for _ in 0..4 {
            tx.send(b"stream").unwrap();
        }
        while rx.try_recv(|_| ()).is_ok() {}
    }
    let held = idle_for_5ms(&mut rx);
    assert_eq!(held, 16, "at most 16 per spell of empty polls");
    // A run of one ends it.
    tx.send(b"single").unwrap();
    rx.recv(|_| ()).unwrap();
    assert!(matches!(rx.try_recv(|_| ()), Err(TryRecvError::Empty)));
    assert_eq!(idle_for_5ms(&mut rx), held);
}
