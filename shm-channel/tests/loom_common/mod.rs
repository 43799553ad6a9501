//! The channel models, shared by the passing suite and the mutation suite. They run the
//! real Sender/Receiver code with loom's model notifier and the `Blocking` strategy (park
//! at once, no timeout: loom ignores timeouts, so a lost wake-up is a visible deadlock).

use loom::thread;
use shm_channel::{channel, Mpsc, Spsc};
use shm_idle::Blocking;
use shm_notify::ThreadNotifier;

fn msg(i: u8) -> [u8; 8] {
    [i; 8] // 16-byte records: four fill the 64-byte ring
}

/// SPSC, the reader parks on an empty ring; the writer sends two messages.
pub fn spsc_reader_parks_on_empty() {
    loom::model(|| {
        let (mut tx, mut rx) =
            channel::<Spsc, ThreadNotifier, _, _>(64, Blocking, Blocking).unwrap();
        let w = thread::spawn(move || {
            tx.send(&msg(1)).unwrap();
            tx.send(&msg(2)).unwrap();
        });
        assert_eq!(rx.recv_vec().unwrap(), msg(1));
        assert_eq!(rx.recv_vec().unwrap(), msg(2));
        w.join().unwrap();
    });
}

/// SPSC, the writer parks on a full ring until the reader frees space.
pub fn spsc_writer_parks_on_full() {
    loom::model(|| {
        let (mut tx, mut rx) =
            channel::<Spsc, ThreadNotifier, _, _>(64, Blocking, Blocking).unwrap();
        for i in 1..=4 {
            tx.try_send(&msg(i)).unwrap();
        }
        let r = thread::spawn(move || {
            for i in 1..=5 {
                assert_eq!(rx.recv_vec().unwrap(), msg(i));
            }
        });
        tx.send(&msg(5)).unwrap();
        r.join().unwrap();
    });
}

/// MPSC, two writers, the reader parks on empty: both messages arrive once.
pub fn mpsc_reader_parks_on_empty() {
    loom::model(|| {
        let (tx, mut rx) = channel::<Mpsc, ThreadNotifier, _, _>(64, Blocking, Blocking).unwrap();
        let mut tx2 = tx.try_clone().unwrap();
        let mut tx1 = tx;
        let a = thread::spawn(move || tx1.send(&msg(1)).unwrap());
        let b = thread::spawn(move || tx2.send(&msg(2)).unwrap());
        let mut got = [rx.recv_vec().unwrap()[0], rx.recv_vec().unwrap()[0]];
        got.sort();
        assert_eq!(got, [1, 2]);
        a.join().unwrap();
        b.join().unwrap();
    });
}

/// MPSC, the ring is full and two writers park for space: the reader must wake both.
/// Three threads make this the largest model: it runs with one preemption in CI and
/// with the configured bound under `cargo xtask loom --deep`.
pub fn mpsc_writers_park_on_full() {
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("SHM_LOOM_DEEP").is_none() {
        builder.preemption_bound = Some(1);
    }
    builder.check(|| {
        let (tx, mut rx) = channel::<Mpsc, ThreadNotifier, _, _>(64, Blocking, Blocking).unwrap();
        let mut tx1 = tx.try_clone().unwrap();
        let mut tx2 = tx.try_clone().unwrap();
        let mut tx0 = tx;
        for i in 1..=4 {
            tx0.try_send(&msg(i)).unwrap();
        }
        let a = thread::spawn(move || tx1.send(&msg(5)).unwrap());
        let b = thread::spawn(move || tx2.send(&msg(6)).unwrap());
        // The reader frees all four slots in one batch (one wake-up for two sleepers: the
        // first one woken must pass it on), then waits for the rest.
        let mut got = Vec::new();
        assert_eq!(rx.poll(8, |m| got.push(m[0])).unwrap(), 4);
        while got.len() < 6 {
            got.push(rx.recv_vec().unwrap()[0]);
        }
        assert_eq!(got[..4], [1, 2, 3, 4]);
        got.sort();
        assert_eq!(got, [1, 2, 3, 4, 5, 6]);
        a.join().unwrap();
        b.join().unwrap();
        drop(tx0);
    });
}
