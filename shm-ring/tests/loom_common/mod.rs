//! The loom models, shared by the passing suite and the mutation suite.

use loom::thread;
use shm_ring::{
    Consumer, Kind, Mpsc, MpscLanes, Producer, RingKind, Segment, SegmentOptions, Spsc, WriteError,
};

/// Body of message `t`: `len` bytes all equal to `t`, so a torn body shows.
fn body(t: i32, len: usize) -> Vec<u8> {
    vec![t as u8; len]
}

fn write_retrying<K: RingKind>(tx: &mut Producer<K>, t: i32, len: usize) {
    loop {
        match tx.try_write(t, &body(t, len)) {
            Ok(()) => return,
            Err(WriteError::Full) => thread::yield_now(),
            Err(e) => panic!("write failed: {e}"),
        }
    }
}

/// Reads records of types `1..=last` in order, each with the body `body(t, len(t))`,
/// yielding while the ring is empty.
fn read_in_order<K: RingKind>(rx: &mut Consumer<K>, last: i32, len: impl Fn(i32) -> usize) {
    let mut next = 1;
    while next <= last {
        let n = rx
            .read(8, |ty, b| {
                assert_eq!(ty, next, "out of order");
                assert_eq!(b, &body(ty, len(ty))[..], "torn or wrong body");
                next += 1;
            })
            .unwrap();
        if n == 0 {
            thread::yield_now();
        }
    }
}

/// Moves head and tail to `pos` with records the consumer has already read.
fn advance<K: RingKind>(tx: &mut Producer<K>, rx: &mut Consumer<K>, pos: usize) {
    for _ in 0..pos / 8 {
        tx.try_write(99, &[]).unwrap();
    }
    assert_eq!(rx.read(usize::MAX, |_, _| {}).unwrap(), pos / 8);
}

/// One producer, one consumer, a 64-byte ring. Three records wait unread when the
/// producer starts, so it must wait for space; its last record needs padding at the
/// end and wraps to index 0, onto the lap the consumer has just read (SPSC leaves it in
/// place: the producer's zeroed next header is all that tells the consumer to stop
/// there, and it reads up to eight records per call, so it looks).
pub fn spsc_wraps_and_waits_for_space() {
    loom::model(|| {
        let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 64)).unwrap();
        let mut tx = seg.producer::<Spsc>().unwrap();
        let mut rx = seg.consumer::<Spsc>().unwrap();
        for t in 1..=3 {
            tx.try_write(t, &body(t, 8)).unwrap(); // 48 of 64 bytes used
        }
        let producer = thread::spawn(move || {
            // Zero-copy record of 8 bytes at 48..56.
            let mut claim = tx.try_claim(4, 0).unwrap();
            claim.as_mut_slice().fill(4);
            claim.commit().unwrap();
            // 16 bytes: padding 56..64, then 0..16 once records 1 and 2 are consumed
            // (the header at 16, record 2's, is zeroed with it).
            write_retrying(&mut tx, 5, 8);
        });
        read_in_order(&mut rx, 5, |ty| if ty == 4 { 0 } else { 8 });
        producer.join().unwrap();
        assert_eq!(rx.read(8, |_, _| panic!("extra record")).unwrap(), 0);
    });
}

/// Two producers, one consumer. The ring starts 8 bytes before its end, so whichever
/// producer claims first pads and wraps. Every record arrives once, per-producer order
/// holds, nothing is torn.
pub fn mpsc_two_producers_wrap() {
    loom::model(|| {
        let seg = Segment::anonymous(&SegmentOptions::new(Kind::Mpsc, 64)).unwrap();
        let mut a = seg.producer::<Mpsc>().unwrap();
        let mut rx = seg.consumer::<Mpsc>().unwrap();
        advance(&mut a, &mut rx, 56);
        let mut b = a.clone();
        let pa = thread::spawn(move || {
            write_retrying(&mut a, 10, 8);
            write_retrying(&mut a, 11, 0);
        });
        let pb = thread::spawn(move || write_retrying(&mut b, 20, 8));
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let n = rx
                .read(8, |ty, b| {
                    let len = if ty == 11 { 0 } else { 8 };
                    assert_eq!(b, &body(ty, len)[..], "torn or wrong body");
                    seen.push(ty);
                })
                .unwrap();
            if n == 0 {
                thread::yield_now();
            }
        }
        pa.join().unwrap();
        pb.join().unwrap();
        let from_a: Vec<_> = seen.iter().filter(|&&t| t < 20).collect();
        assert_eq!(from_a, [&10, &11], "per-producer order");
        assert!(seen.contains(&20));
        assert_eq!(rx.read(8, |_, _| panic!("extra record")).unwrap(), 0);
    });
}

/// SPSC: a producer fills the 64-byte ring and leaves; its successor attaches while the
/// consumer is reading, and its record wraps onto records the consumer is reading. The
/// successor's attach must synchronise with the consumer's progress (head, acquired),
/// or it writes over a body still being read.
pub fn spsc_successor_attaches_while_consuming() {
    loom::model(|| {
        let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 64)).unwrap();
        let mut rx = seg.consumer::<Spsc>().unwrap();
        {
            let mut first = seg.producer::<Spsc>().unwrap();
            for t in 1..=3 {
                first.try_write(t, &body(t, 8)).unwrap(); // 48 bytes
            }
            first.try_write(4, &[]).unwrap(); // 8 more: full, but for the next header
        }
        let successor_seg = seg.clone();
        let successor = thread::spawn(move || {
            let mut tx = successor_seg.producer::<Spsc>().unwrap();
            write_retrying(&mut tx, 5, 8);
        });
        read_in_order(&mut rx, 5, |ty| if ty == 4 { 0 } else { 8 });
        successor.join().unwrap();
    });
}

/// Two producers on two lanes of a 64-byte `MpscLanes` ring, one consumer reading one
/// record per call. Each producer's second record wraps its lane. The summary handshake
/// (the consumer clears a lane's bit, then looks again; the producer commits, then looks
/// at the bit) must never strand a record behind a clear bit: the consumer would spin
/// for ever and loom report it. Order holds per lane; nothing is torn.
pub fn lanes_two_producers() {
    loom::model(|| {
        let seg = Segment::anonymous(&SegmentOptions::new(Kind::Lanes, 64).lanes(2)).unwrap();
        let mut rx = seg.consumer::<MpscLanes>().unwrap();
        let mut a = seg.lane_producer::<MpscLanes>(0).unwrap();
        let mut b = seg.lane_producer::<MpscLanes>(1).unwrap();
        // Lane 0 starts 48 bytes in, so its second record pads and wraps.
        for _ in 0..3 {
            a.try_write(99, &body(99, 8)).unwrap();
        }
        assert_eq!(rx.read(usize::MAX, |_, _| {}).unwrap(), 3);
        let pa = thread::spawn(move || {
            write_retrying(&mut a, 1, 8);
            write_retrying(&mut a, 2, 8);
        });
        let pb = thread::spawn(move || {
            write_retrying(&mut b, 3, 8);
            write_retrying(&mut b, 4, 8);
        });
        let mut next = [1, 3];
        while next != [3, 5] {
            let n = rx
                .read(1, |ty, body_| {
                    let lane = usize::from(ty >= 3);
                    assert_eq!(ty, next[lane], "out of order within a lane");
                    assert_eq!(body_, &body(ty, 8)[..], "torn or wrong body");
                    next[lane] += 1;
                })
                .unwrap();
            if n == 0 {
                thread::yield_now();
            }
        }
        pa.join().unwrap();
        pb.join().unwrap();
        assert_eq!(rx.read(8, |_, _| panic!("extra record")).unwrap(), 0);
    });
}

/// A lane's producer dies holding a claim (its header says "being written" for good);
/// a successor attaches to the lane while the consumer polls it. The consumer must skip
/// the dead claim (it lies below where the successor resumed) and deliver the
/// successor's record, never the dead one's bytes.
pub fn lane_successor_skips_a_dead_claim() {
    loom::model(|| {
        let seg = Segment::anonymous(&SegmentOptions::new(Kind::Lanes, 64).lanes(2)).unwrap();
        let mut rx = seg.consumer::<MpscLanes>().unwrap();
        {
            let mut dead = seg.lane_producer::<MpscLanes>(1).unwrap();
            dead.try_write(1, &body(1, 8)).unwrap();
            let mut claim = dead.try_claim(7, 8).unwrap();
            claim.as_mut_slice().fill(7);
            std::mem::forget(claim); // dies here: never committed, never aborted
        }
        let successor_seg = seg.clone();
        let successor = thread::spawn(move || {
            let mut tx = successor_seg.lane_producer::<MpscLanes>(1).unwrap();
            write_retrying(&mut tx, 2, 8);
        });
        read_in_order(&mut rx, 2, |_| 8);
        successor.join().unwrap();
        assert_eq!(rx.read(8, |_, _| panic!("extra record")).unwrap(), 0);
    });
}
