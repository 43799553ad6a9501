//! The channel across real processes, for every notifier x {BusySpin, Backoff, EpollPark
//! where it compiles}, SPSC and MPSC (3 producer processes): 1,000,000 messages of random
//! sizes, with a reader that is slower than the writers part of the time (writers park
//! on full) and the writers pausing now and then (the reader parks on empty). Nothing
//! lost, duplicated, reordered or torn; every wait bounded.
//! Plus kill -9 of either side.

use shm_channel::ChannelKind;
use shm_channel::{ChannelBuilder, ChannelNotifier, Handoff, Receiver, RecvError, SendError};
use shm_channel::{RecvTimeoutError, SendTimeoutError, TryRecvError};
use shm_idle::ParksOn;
use shm_tests::{dispatch, read_line, unique_name, verify, MakeIdle, Peer, MAX_BODY};
use std::time::{Duration, Instant};

const TOTAL: u64 = 1_000_000;
const DEADLINE: Duration = Duration::from_secs(300);

fn create<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    notifier: &str,
    b: &ChannelBuilder,
) -> (Receiver<K, N, I>, String, Option<Handoff>) {
    shm_tests::create_receiver(notifier, b)
}

fn peer(args: &[&str], handoff: Option<&Handoff>, stdout: bool) -> Peer {
    shm_tests::spawn_peer(env!("CARGO_BIN_EXE_channel_peer"), args, handoff, stdout)
}

fn matrix<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    kind: &str,
    notifier: &str,
    idle: &str,
) {
    let producers: u32 = if kind == "mpsc" { 3 } else { 1 };
    let per = TOTAL.div_ceil(producers as u64);
    let seed = 0xC0FFEE ^ std::process::id() as u64;
    let (mut rx, target, handoff) = create::<K, N, I>(notifier, &ChannelBuilder::new());
    let peers: Vec<Peer> = (0..producers)
        .map(|id| {
            let (per, seed, id) = (per.to_string(), seed.to_string(), id.to_string());
            peer(
                &["send", kind, notifier, idle, &target, &per, &seed, &id],
                handoff.as_ref(),
                false,
            )
        })
        .collect();
    let max = MAX_BODY.min(rx.max_message_len()) - 4;
    let mut next = vec![0u64; producers as usize];
    let mut scratch = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    for n in 0..per * producers as u64 {
        // Slow phases: the ring fills and the writers park for space.
        if (200_000..300_000).contains(&n) && n % 500 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left, |m| {
            let id = u32::from_le_bytes(m[..4].try_into().unwrap());
            let seq = next[id as usize];
            if let Err(e) = verify(seed, id, seq, max, &m[4..], &mut scratch) {
                panic!("{kind}/{notifier}/{idle}: {e}");
            }
            next[id as usize] += 1;
        })
        .unwrap_or_else(|e| panic!("{kind}/{notifier}/{idle}: {e} after {n} messages ({next:?})"));
    }
    for p in peers {
        assert!(
            p.wait_timeout(Duration::from_secs(30)).success(),
            "{kind}/{notifier}/{idle}: a writer failed"
        );
    }
    assert!(next.iter().all(|&n| n == per));
    // Every writer is gone and everything was read: the reader learns it.
    assert!(matches!(
        rx.recv_timeout(Duration::from_secs(10), |_| ()),
        Err(RecvTimeoutError::Recv(RecvError::Disconnected))
    ));
    let s = rx.stats();
    eprintln!("{kind}/{notifier}/{idle}: reader {s:?}");
}

macro_rules! matrix_tests {
    ($($test:ident: $kind:literal $notifier:literal $idle:literal;)*) => {
        $(
            #[test]
            fn $test() {
                dispatch!($kind, $notifier, $idle, matrix($kind, $notifier, $idle));
            }
        )*
    };
}

matrix_tests! {
    spsc_futex_spin: "spsc" "futex" "spin";
    spsc_futex_backoff: "spsc" "futex" "backoff";
    spsc_sem_spin: "spsc" "sem" "spin";
    spsc_sem_backoff: "spsc" "sem" "backoff";
    spsc_fifo_spin: "spsc" "fifo" "spin";
    spsc_fifo_backoff: "spsc" "fifo" "backoff";
    spsc_fifo_epoll: "spsc" "fifo" "epoll";
    spsc_eventfd_spin: "spsc" "eventfd" "spin";
    spsc_eventfd_backoff: "spsc" "eventfd" "backoff";
    spsc_eventfd_epoll: "spsc" "eventfd" "epoll";
    mpsc_futex_spin: "mpsc" "futex" "spin";
    mpsc_futex_backoff: "mpsc" "futex" "backoff";
    mpsc_sem_spin: "mpsc" "sem" "spin";
    mpsc_sem_backoff: "mpsc" "sem" "backoff";
    mpsc_fifo_spin: "mpsc" "fifo" "spin";
    mpsc_fifo_backoff: "mpsc" "fifo" "backoff";
    mpsc_fifo_epoll: "mpsc" "fifo" "epoll";
    mpsc_eventfd_spin: "mpsc" "eventfd" "spin";
    mpsc_eventfd_backoff: "mpsc" "eventfd" "backoff";
    mpsc_eventfd_epoll: "mpsc" "eventfd" "epoll";
}

/// kill -9 of the reader: the writer's blocked send returns Disconnected within the
/// detection interval (pid + start-time check), never hangs.
#[test]
fn killed_reader_disconnects_a_blocked_writer() {
    let detect = Duration::from_millis(200);
    let name = unique_name("killrx");
    let b = ChannelBuilder::new().capacity(1024).detect_interval(detect);
    let mut tx = b
        .create_sender::<shm_ring::Spsc, shm_notify::Futex, shm_idle::Backoff>(
            &name,
            shm_idle::Backoff::default(),
        )
        .unwrap();
    let mut reader = peer(
        &["recv-hang", "spsc", "futex", "backoff", &name],
        None,
        true,
    );
    assert_eq!(read_line(&mut reader), "ready");
    while tx.try_send(&[1; 100]).is_ok() {}
    let t = Instant::now();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        reader.kill();
    });
    let r = tx.send_timeout(&[1; 100], Duration::from_secs(20));
    let took = t.elapsed();
    killer.join().unwrap();
    assert!(
        matches!(r, Err(SendTimeoutError::Send(SendError::Disconnected))),
        "{r:?}"
    );
    assert!(
        took < Duration::from_millis(50) + detect * 3,
        "noticed after {took:?}"
    );
    eprintln!("killed reader noticed after {took:?} (detect interval {detect:?})");
}

/// kill -9 of the writer: the reader drains everything committed, then Disconnected.
#[test]
fn killed_writer_lets_the_reader_drain_then_disconnect() {
    for notifier in ["futex", "eventfd"] {
        let b = ChannelBuilder::new().detect_interval(Duration::from_millis(200));
        dispatch!("spsc", notifier, "backoff", killed_writer(notifier, &b));
    }
}

fn killed_writer<K: ChannelKind, N: ChannelNotifier, I: ParksOn<N> + MakeIdle>(
    notifier: &str,
    b: &ChannelBuilder,
) {
    let (mut rx, target, handoff) = create::<K, N, I>(notifier, b);
    let mut writer = peer(
        &[
            "send-hang",
            "spsc",
            notifier,
            "backoff",
            &target,
            "300",
            "9",
            "0",
        ],
        handoff.as_ref(),
        true,
    );
    assert_eq!(read_line(&mut writer), "sent");
    writer.kill();
    let mut got = 0;
    let r = loop {
        match rx.recv_timeout(Duration::from_secs(20), |m| {
            assert_eq!(u32::from_le_bytes(m[..4].try_into().unwrap()), 0)
        }) {
            Ok(()) => got += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(got, 300, "{notifier}: committed messages lost");
    assert!(
        matches!(r, RecvTimeoutError::Recv(RecvError::Disconnected)),
        "{notifier}: {r:?}"
    );
}

/// MPSC producer holding a claim, alive, then killed between claim and commit: the other
/// producer's messages flow all along (without waiting for anything: its lane is its
/// own), and the half-written message is never delivered.
#[test]
fn mpsc_producer_killed_between_claim_and_commit() {
    use shm_channel::Mpsc;
    use shm_idle::Backoff;
    use shm_notify::Futex;
    let name = unique_name("claimkill");
    let b = ChannelBuilder::new().detect_interval(Duration::from_millis(100));
    let mut rx = b
        .create_receiver::<Mpsc, Futex, Backoff>(&name, Backoff::default())
        .unwrap();
    let mut dead = peer(
        &["claim-hang", "mpsc", "futex", "backoff", &name],
        None,
        true,
    );
    assert_eq!(read_line(&mut dead), "claimed");
    let mut dead = Some(dead);
    let mut live =
        shm_channel::Sender::<Mpsc, Futex, Backoff>::open(&name, Backoff::default()).unwrap();
    for i in 0..100u32 {
        live.send(&i.to_le_bytes()).unwrap();
    }
    let t = Instant::now();
    for i in 0..200u32 {
        if i == 100 {
            // The first 100 came while it was alive, holding its claim.
            dead.take().expect("killed once").kill();
            for j in 100..200u32 {
                live.send(&j.to_le_bytes()).unwrap();
            }
        }
        rx.recv_timeout(Duration::from_secs(20), |m| {
            assert_ne!(
                m.first(),
                Some(&0xEE),
                "the uncommitted message was delivered"
            );
            assert_eq!(m, i.to_le_bytes());
        })
        .unwrap();
    }
    eprintln!("200 messages beside an open claim in {:?}", t.elapsed());
    assert!(matches!(rx.try_recv(|_| ()), Err(TryRecvError::Empty)));
}

/// Peer restart: a reader killed with SIGKILL can be replaced; the new reader resumes at
/// the committed head (what the dead one consumed is gone, the rest is delivered once).
#[test]
fn a_new_reader_replaces_a_killed_one_and_resumes_at_the_head() {
    use shm_channel::Spsc;
    use shm_idle::Backoff;
    use shm_notify::Futex;
    let name = unique_name("restart");
    let b = ChannelBuilder::new().detect_interval(Duration::from_millis(100));
    let mut tx = b
        .create_sender::<Spsc, Futex, Backoff>(&name, Backoff::default())
        .unwrap();
    for i in 0..10u32 {
        tx.send(&i.to_le_bytes()).unwrap();
    }
    let mut old = peer(
        &["recv-hang", "spsc", "futex", "backoff", &name, "4"],
        None,
        true,
    );
    assert_eq!(read_line(&mut old), "ready");
    assert!(
        matches!(
            Receiver::<Spsc, Futex, Backoff>::open(&name, Backoff::default()),
            Err(shm_channel::ChannelError::ReaderAttached)
        ),
        "a live reader is never displaced"
    );
    old.kill();
    let mut rx = Receiver::<Spsc, Futex, Backoff>::open(&name, Backoff::default()).unwrap();
    for i in 4..10u32 {
        rx.recv(|m| assert_eq!(m, i.to_le_bytes())).unwrap();
    }
    tx.send(&10u32.to_le_bytes()).unwrap();
    rx.recv(|m| assert_eq!(m, 10u32.to_le_bytes())).unwrap();
}
