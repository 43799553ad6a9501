//! A parked end with an fd-based notifier (eventfd, FIFO), blocking or in EpollPark,
//! sleeps on its peers' pidfds instead of waking every liveness interval: one park for a whole idle spell, and a
//! peer killed meanwhile is still reported. Futex ends are the control: they park with
//! the liveness interval as timeout, so the same idle spell takes many parks.

use shm_channel::ChannelKind;
use shm_channel::{ChannelBuilder, ChannelNotifier, Handoff, RecvError, SendError};
use shm_channel::{RecvTimeoutError, SendTimeoutError};
use shm_idle::ParksOn;
use shm_tests::{create_receiver, dispatch, read_line, unique_name, MakeIdle, Peer};
use std::time::{Duration, Instant};

const DETECT: Duration = Duration::from_millis(50);
/// How long the peer stays alive and silent while the end under test is parked.
const IDLE: Duration = Duration::from_millis(600);
/// Bound on every wait: a lost wake-up fails the test instead of hanging it.
const LONG: Duration = Duration::from_secs(20);

fn peer(args: &[&str], handoff: Option<&Handoff>) -> Peer {
    shm_tests::spawn_peer(env!("CARGO_BIN_EXE_channel_peer"), args, handoff, true)
}

/// Kills `p` after `IDLE` on another thread; returns when it was killed.
fn kill_later(p: Peer) -> std::thread::JoinHandle<Instant> {
    std::thread::spawn(move || {
        std::thread::sleep(IDLE);
        p.kill();
        Instant::now()
    })
}

/// Parks over one idle spell: one (two with a stale notification) when watched; with
/// timed parks at least one per liveness interval (`IDLE / DETECT` = 12; 4 allows for
/// a loaded machine).
fn check_parks(what: &str, watched: bool, parks: u64) {
    if watched {
        assert!(
            parks <= 2,
            "{what}: {parks} parks while the peer was watched"
        );
    } else {
        assert!(
            parks >= 4,
            "{what}: only {parks} parks, expected timed ones"
        );
    }
}

fn writer_killed_while_the_reader_sleeps<K, N, I>(
    kind: &str,
    notifier: &str,
    idle: &str,
    watched: bool,
) where
    K: ChannelKind,
    N: ChannelNotifier,
    I: ParksOn<N> + MakeIdle,
{
    let b = ChannelBuilder::new().detect_interval(DETECT);
    let (mut rx, target, handoff) = create_receiver::<K, N, I>(notifier, &b);
    let args = [
        "send-hang",
        kind,
        notifier,
        "blocking",
        &target,
        "10",
        "5",
        "0",
    ];
    let mut writer = peer(&args, handoff.as_ref());
    assert_eq!(read_line(&mut writer), "sent");
    for _ in 0..10 {
        rx.recv_timeout(LONG, |_| ())
            .expect("the writer's messages");
    }
    let before = rx.stats().parks;
    let killer = kill_later(writer);
    let r = rx.recv_timeout(LONG, |_| ());
    let (done, killed) = (Instant::now(), killer.join().unwrap());
    let what = format!("{kind}/{notifier}/{idle}");
    assert!(
        matches!(r, Err(RecvTimeoutError::Recv(RecvError::Disconnected))),
        "{what}: {r:?}"
    );
    check_parks(&what, watched, rx.stats().parks - before);
    eprintln!(
        "{what}: writer's death noticed {:?} after the kill, {} parks",
        done.saturating_duration_since(killed),
        rx.stats().parks - before
    );
}

#[test]
fn a_sleeping_reader_watches_its_writers() {
    let cases = [
        ("eventfd", "blocking", true),
        ("fifo", "blocking", true),
        ("eventfd", "epoll", true),
        ("fifo", "epoll", true),
        ("futex", "blocking", false),
        // Parks untimed once it has learnt that spinning does not pay.
        ("eventfd", "adaptive", true),
        ("futex", "adaptive", false),
    ];
    for kind in ["spsc", "mpsc"] {
        for (notifier, idle, watched) in cases {
            dispatch!(
                kind,
                notifier,
                idle,
                writer_killed_while_the_reader_sleeps(kind, notifier, idle, watched)
            );
        }
    }
}

fn writer_attaching_while_the_reader_sleeps<K, N, I>(notifier: &'static str)
where
    K: ChannelKind,
    N: ChannelNotifier,
    I: ParksOn<N> + MakeIdle,
{
    let b = ChannelBuilder::new().detect_interval(DETECT);
    let (mut rx, target, handoff) = create_receiver::<K, N, I>(notifier, &b);
    // The reader parks with no writer to watch; the writer attaches, then dies silently.
    let spawner = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let args = [
            "send-hang",
            "spsc",
            notifier,
            "blocking",
            &target,
            "0",
            "1",
            "0",
        ];
        let mut writer = peer(&args, handoff.as_ref());
        assert_eq!(read_line(&mut writer), "sent");
        writer.kill();
    });
    let t = Instant::now();
    let r = rx.recv_timeout(LONG, |_| ());
    spawner.join().unwrap();
    // Disconnected also comes, late, from the liveness check after a park that lasted
    // until the deadline: only a prompt one shows that the new writer was watched.
    let took = t.elapsed();
    assert!(
        matches!(r, Err(RecvTimeoutError::Recv(RecvError::Disconnected))) && took < LONG / 2,
        "{notifier}: {r:?} after {took:?} (the new writer was not watched)"
    );
    eprintln!("{notifier}: a writer that attached and died noticed after {took:?}");
}

#[test]
fn a_writer_that_attaches_while_the_reader_sleeps_is_watched_too() {
    for notifier in ["eventfd", "fifo"] {
        dispatch!(
            "spsc",
            notifier,
            "blocking",
            writer_attaching_while_the_reader_sleeps(notifier)
        );
    }
}

fn reader_killed_while_the_writer_sleeps<K, N, I>(notifier: &str, watched: bool)
where
    K: ChannelKind,
    N: ChannelNotifier,
    I: ParksOn<N> + MakeIdle,
{
    let name = unique_name("watchrx");
    let b = ChannelBuilder::new().capacity(1024).detect_interval(DETECT);
    let mut tx = b.create_sender::<K, N, I>(&name, I::make()).unwrap();
    let mut reader = peer(&["recv-hang", "spsc", notifier, "blocking", &name], None);
    assert_eq!(read_line(&mut reader), "ready");
    while tx.try_send(&[1; 100]).is_ok() {}
    let before = tx.stats().parks;
    let killer = kill_later(reader);
    let r = tx.send_timeout(&[1; 100], LONG);
    let (done, killed) = (Instant::now(), killer.join().unwrap());
    assert!(
        matches!(r, Err(SendTimeoutError::Send(SendError::Disconnected))),
        "{notifier}: {r:?}"
    );
    check_parks(notifier, watched, tx.stats().parks - before);
    eprintln!(
        "{notifier}: reader's death noticed {:?} after the kill, {} parks",
        done.saturating_duration_since(killed),
        tx.stats().parks - before
    );
}

#[test]
fn a_writer_sleeping_on_a_full_ring_watches_the_reader() {
    for (notifier, watched) in [("fifo", true), ("futex", false)] {
        dispatch!(
            "spsc",
            notifier,
            "blocking",
            reader_killed_while_the_writer_sleeps(notifier, watched)
        );
    }
}

/// A watched writer dies while the reader is parked in an EpollPark that still holds the
/// watch fd from an earlier park, with another writer holding an MPSC claim open: the
/// park must say the peer exited, not keep ending at once as a timeout (a busy loop).
#[test]
fn an_epoll_reader_behind_an_open_claim_does_not_spin_on_a_dead_peer() {
    type Rx = shm_channel::Receiver<shm_channel::Mpsc, shm_notify::Fifo, shm_idle::EpollPark>;
    let name = unique_name("watchspin");
    let b = ChannelBuilder::new().detect_interval(DETECT);
    let mut rx: Rx = b
        .create_receiver(&name, shm_idle::EpollPark::new(100, None))
        .unwrap();
    let mut idle_writer = peer(
        &["send-hang", "mpsc", "fifo", "epoll", &name, "0", "1", "0"],
        None,
    );
    assert_eq!(read_line(&mut idle_writer), "sent");
    // An untimed park: the watch fd joins the EpollPark's set.
    let r = rx.recv_timeout(Duration::from_millis(200), |_| ());
    assert!(matches!(r, Err(RecvTimeoutError::Timeout)), "{r:?}");
    let mut claimer = peer(&["claim-hang", "mpsc", "fifo", "epoll", &name], None);
    assert_eq!(read_line(&mut claimer), "claimed");
    let before = rx.stats().parks;
    let killer = kill_later(idle_writer);
    let r = rx.recv_timeout(2 * IDLE, |_| ());
    killer.join().unwrap();
    assert!(matches!(r, Err(RecvTimeoutError::Timeout)), "{r:?}");
    // At most timed parks at the liveness interval over 1.2 s: about 24 (a spin: many
    // thousands).
    let parks = rx.stats().parks - before;
    assert!(parks < 200, "{parks} parks in {:?}: spinning", 2 * IDLE);
    eprintln!("behind an open claim, a watched writer killed: {parks} parks");
    claimer.kill();
}
