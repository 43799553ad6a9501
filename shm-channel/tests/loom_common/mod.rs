//! The channel models, shared by the passing suite and the mutation suite. They run the
//! real Sender/Receiver code with loom's model notifier and the `Blocking` strategy (park
//! at once, no timeout: loom ignores timeouts, so a lost wake-up is a visible deadlock).
//!
//! Every model ends the same way: the reader has every message, every writer is still
//! attached (no model relies on the wake-up a dropped end sends), and both waiter words
//! are back to idle (no phantom sleeper, no stale `NOTIFIED`). Only then do ends drop.

use loom::thread;
use shm_channel::ChannelKind;
use shm_channel::{channel, Mpsc, Receiver, Sender, Spsc};
use shm_idle::Blocking;
use shm_notify::ThreadNotifier;

type Rx<K> = Receiver<K, ThreadNotifier, Blocking>;
type Tx<K> = Sender<K, ThreadNotifier, Blocking>;

fn msg(i: u8) -> [u8; 8] {
    [i; 8] // 16-byte records: three fill the 64-byte ring (an SPSC ring, and each lane,
           // holds capacity - 8 bytes: the header after the last record stays free)
}

fn pair<K: ChannelKind>() -> (Tx<K>, Rx<K>) {
    channel::<K, ThreadNotifier, _, _>(64, Blocking, Blocking).unwrap()
}

/// The end of every model: both waiter words idle, then the ends drop.
fn finish<K: ChannelKind>(rx: Rx<K>, writers: Vec<Tx<K>>) {
    assert_eq!(
        rx.waiter_words(),
        [0, 0],
        "waiter words not idle at the end: a phantom sleeper or a stale NOTIFIED"
    );
    drop(writers);
    drop(rx);
}

/// Runs `f` under loom with the preemption bound `cargo xtask loom` sets (2; 3 with
/// `--deep`), or `bound` when given and not `--deep`.
fn check(bound: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("SHM_LOOM_DEEP").is_none() {
        if let Some(b) = bound {
            builder.preemption_bound = Some(b);
        }
    }
    builder.check(f);
}

/// SPSC writer exclusivity: the first writer closed, two new ones race for the channel's
/// one writer slot. Exactly one wins (the other gets `WriterAttached`), and what the
/// winner sends arrives.
pub fn spsc_writers_race_for_the_slot() {
    check(None, || {
        let (tx, mut rx) = pair::<Spsc>();
        drop(tx);
        let racers: Vec<_> = (0..2)
            .map(|_| thread::spawn(rx.writer_attacher()))
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let mut won: Vec<Tx<Spsc>> = Vec::new();
        for r in results {
            match r {
                Ok(tx) => won.push(tx),
                Err(shm_channel::ChannelError::WriterAttached { .. }) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "{} writers attached to an SPSC channel",
            won.len()
        );
        won[0].send(&msg(7)).unwrap();
        assert_eq!(rx.recv_vec().unwrap(), msg(7));
        finish(rx, won);
    });
}

/// SPSC, the reader parks on an empty ring; the writer sends two messages.
pub fn spsc_reader_parks_on_empty() {
    check(None, || {
        let (mut tx, mut rx) = pair::<Spsc>();
        let w = thread::spawn(move || {
            tx.send(&msg(1)).unwrap();
            tx.send(&msg(2)).unwrap();
            tx
        });
        assert_eq!(rx.recv_vec().unwrap(), msg(1));
        assert_eq!(rx.recv_vec().unwrap(), msg(2));
        let tx = w.join().unwrap();
        finish(rx, vec![tx]);
    });
}

/// SPSC, the writer parks on a full ring until the reader frees space.
pub fn spsc_writer_parks_on_full() {
    check(None, || {
        let (mut tx, mut rx) = pair::<Spsc>();
        for i in 1..=3 {
            tx.try_send(&msg(i)).unwrap();
        }
        let r = thread::spawn(move || {
            for i in 1..=4 {
                assert_eq!(rx.recv_vec().unwrap(), msg(i));
            }
            rx
        });
        tx.send(&msg(4)).unwrap();
        let rx = r.join().unwrap();
        finish(rx, vec![tx]);
    });
}

/// SPSC, an empty message (an 8-byte record) and then four 16-byte records in a 64-byte
/// ring: the last one does not fit before the end, so a padding record fills the gap
/// and it wraps to the start, where the writer waits for the reader to free space.
pub fn spsc_wraps_with_padding() {
    check(None, || {
        let (mut tx, mut rx) = pair::<Spsc>();
        let w = thread::spawn(move || {
            tx.send(&[]).unwrap();
            for i in 1..=4 {
                tx.send(&msg(i)).unwrap();
            }
            tx
        });
        assert_eq!(rx.recv_vec().unwrap(), b"");
        for i in 1..=4 {
            assert_eq!(rx.recv_vec().unwrap(), msg(i));
        }
        let tx = w.join().unwrap();
        finish(rx, vec![tx]);
    });
}

/// A zero-copy claim, committed by a writer that stays attached: the commit alone must
/// wake the parked reader.
fn zero_copy<K: ChannelKind>() {
    check(None, || {
        let (mut tx, mut rx) = pair::<K>();
        let w = thread::spawn(move || {
            let mut claim = tx.try_claim(8).unwrap();
            claim.as_mut_slice().copy_from_slice(&msg(7));
            claim.commit().unwrap();
            tx
        });
        assert_eq!(rx.recv_vec().unwrap(), msg(7));
        let tx = w.join().unwrap();
        finish(rx, vec![tx]);
    });
}

/// [`zero_copy`] on an SPSC ring.
pub fn spsc_zero_copy_claim() {
    zero_copy::<Spsc>();
}

/// [`zero_copy`] on an MPSC ring.
pub fn mpsc_zero_copy_claim() {
    zero_copy::<Mpsc>();
}

/// A zero-copy claim dropped without commit (aborted: it becomes padding), then a
/// message: the reader gets the message and never the aborted bytes.
fn aborted_claim<K: ChannelKind>() {
    check(None, || {
        let (mut tx, mut rx) = pair::<K>();
        let w = thread::spawn(move || {
            let mut claim = tx.try_claim(8).unwrap();
            claim.as_mut_slice().copy_from_slice(&msg(9));
            drop(claim);
            tx.send(&msg(3)).unwrap();
            tx
        });
        assert_eq!(rx.recv_vec().unwrap(), msg(3));
        let tx = w.join().unwrap();
        finish(rx, vec![tx]);
    });
}

/// [`aborted_claim`] on an SPSC ring.
pub fn spsc_aborted_claim() {
    aborted_claim::<Spsc>();
}

/// [`aborted_claim`] on an MPSC ring.
pub fn mpsc_aborted_claim() {
    aborted_claim::<Mpsc>();
}

/// MPSC: writer A leaves a claim open at head (as if it died between claim and commit)
/// while writer B commits a message behind it, then both leave. The end-of-stream rule
/// must skip A's claim (no one is left to commit it), deliver B's message, and only then
/// report `Disconnected`. The one model that relies on the ends' drops: leaving is the
/// point.
pub fn mpsc_abandoned_claim_is_skipped() {
    check(None, || {
        let (mut a, mut rx) = pair::<Mpsc>();
        let mut b = a.try_clone().unwrap();
        let mut claim = a.try_claim(8).unwrap();
        claim.as_mut_slice().copy_from_slice(&msg(9));
        std::mem::forget(claim); // never committed, never aborted
        let wa = thread::spawn(move || drop(a));
        let wb = thread::spawn(move || {
            b.send(&msg(4)).unwrap();
            drop(b);
        });
        assert_eq!(rx.recv_vec().unwrap(), msg(4));
        assert!(matches!(
            rx.recv_vec(),
            Err(shm_channel::RecvError::Disconnected)
        ));
        wa.join().unwrap();
        wb.join().unwrap();
        finish(rx, Vec::new());
    });
}

/// MPSC, two writers, the reader parks on empty: both messages arrive once.
pub fn mpsc_reader_parks_on_empty() {
    check(None, || {
        let (tx, mut rx) = pair::<Mpsc>();
        let mut tx2 = tx.try_clone().unwrap();
        let mut tx1 = tx;
        let a = thread::spawn(move || {
            tx1.send(&msg(1)).unwrap();
            tx1
        });
        let b = thread::spawn(move || {
            tx2.send(&msg(2)).unwrap();
            tx2
        });
        let mut got = [rx.recv_vec().unwrap()[0], rx.recv_vec().unwrap()[0]];
        got.sort();
        assert_eq!(got, [1, 2]);
        let writers = vec![a.join().unwrap(), b.join().unwrap()];
        finish(rx, writers);
    });
}

/// Two MPSC writers, each with its lane full (1..=3 and 11..=13), each sending one more
/// (4 and 14) and so parking for space; the third end, the first writer, stays idle.
#[allow(clippy::type_complexity)]
fn two_parked_writers() -> (
    Tx<Mpsc>,
    Rx<Mpsc>,
    thread::JoinHandle<Tx<Mpsc>>,
    thread::JoinHandle<Tx<Mpsc>>,
) {
    let (tx0, rx) = pair::<Mpsc>();
    let mut tx1 = tx0.try_clone().unwrap();
    let mut tx2 = tx0.try_clone().unwrap();
    for i in 1..=3 {
        tx1.try_send(&msg(i)).unwrap();
        tx2.try_send(&msg(10 + i)).unwrap();
    }
    let a = thread::spawn(move || {
        tx1.send(&msg(4)).unwrap();
        tx1
    });
    let b = thread::spawn(move || {
        tx2.send(&msg(14)).unwrap();
        tx2
    });
    (tx0, rx, a, b)
}

/// The messages queued before the writers park (three per lane), and all of them.
const QUEUED: usize = 6;
const ALL_EIGHT: [u8; 8] = [1, 2, 3, 4, 11, 12, 13, 14];

/// MPSC, both writers' lanes are full and they park for space: the reader frees both
/// lanes in one batch (one wake-up for two sleepers), then reads on. Three threads make
/// this the largest model.
pub fn mpsc_writers_park_on_full() {
    check(None, || {
        let (tx0, mut rx, a, b) = two_parked_writers();
        let mut got = Vec::new();
        assert_eq!(rx.poll(QUEUED, |m| got.push(m[0])).unwrap(), QUEUED);
        while got.len() < ALL_EIGHT.len() {
            got.push(rx.recv_vec().unwrap()[0]);
        }
        got.sort();
        assert_eq!(got, ALL_EIGHT);
        let writers = vec![tx0, a.join().unwrap(), b.join().unwrap()];
        finish(rx, writers);
    });
}

/// The pass-on: the reader frees space once and then waits for both parked writers to
/// finish before it reads again, so the one wake-up it sent must reach both (the first
/// writer woken passes it on). Without the pass-on, the second sleeps for ever.
pub fn mpsc_wakes_every_parked_writer() {
    check(None, || {
        let (tx0, mut rx, a, b) = two_parked_writers();
        let mut got = Vec::new();
        assert_eq!(rx.poll(QUEUED, |m| got.push(m[0])).unwrap(), QUEUED);
        let writers = vec![tx0, a.join().unwrap(), b.join().unwrap()];
        while got.len() < ALL_EIGHT.len() {
            got.push(rx.recv_vec().unwrap()[0]);
        }
        got.sort();
        assert_eq!(got, ALL_EIGHT);
        finish(rx, writers);
    });
}
