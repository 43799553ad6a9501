//! Boundary cases of the write protocol, for both ring kinds.
#![cfg(not(shm_loom))]

use shm_ring::{Kind, Mpsc, RingKind, Segment, SegmentError, SegmentOptions, Spsc, WriteError};

/// Bytes of a ring the producer cannot fill: SPSC keeps the header after its last
/// record free (it zeroes it, so the consumer never reads an earlier lap there).
fn spsc_slack(kind: Kind) -> usize {
    if kind == Kind::Mpsc {
        0
    } else {
        8
    }
}

fn drain<K: RingKind>(rx: &mut shm_ring::Consumer<K>) -> Vec<(i32, Vec<u8>)> {
    let mut out = Vec::new();
    rx.read(usize::MAX, |t, b| out.push((t, b.to_vec())))
        .unwrap();
    out
}

/// Unread data at 16..120 of a 128-byte ring, tail at index 120: a 24-byte record fits
/// neither in the 8 bytes before the end nor in the 16 free bytes at the start. Aeron's C
/// SPSC ring once returned index 0 here and overwrote unread data; we must refuse.
fn no_fit_at_end_nor_start_is_refused<K: RingKind>(kind: Kind) {
    let seg = Segment::anonymous(&SegmentOptions::new(kind, 128)).unwrap();
    let mut tx = seg.producer::<K>().unwrap();
    let mut rx = seg.consumer::<K>().unwrap();
    tx.try_write(1, &[0; 8]).unwrap(); // 0..16
    assert_eq!(drain(&mut rx).len(), 1); // head = 16
    let unread: Vec<(i32, Vec<u8>)> = (0..4)
        .map(|i| (10 + i, vec![0xA0 + i as u8; 16])) // 4 x 24 = 96: 16..112
        .chain([(20, vec![0xEE; 0])]) // 8: 112..120
        .collect();
    for (t, b) in &unread {
        tx.try_write(*t, b).unwrap();
    }
    assert_eq!(tx.try_write(30, &[0xFF; 16]), Err(WriteError::Full));
    assert!(matches!(tx.try_claim(30, 16), Err(WriteError::Full)));
    // What still fits. MPSC: padding 120..128, then a 16-byte record at 0..16, up to
    // head. SPSC keeps the header before head free: an empty record at 120..128, another
    // at 0..8.
    let last: &[(i32, Vec<u8>)] = if spsc_slack(kind) == 0 {
        &[(31, vec![0x31; 8])]
    } else {
        &[(31, vec![]), (32, vec![])]
    };
    for (t, b) in last {
        tx.try_write(*t, b).unwrap();
    }
    assert_eq!(tx.try_write(33, &[]), Err(WriteError::Full));
    let mut want = unread;
    want.extend_from_slice(last);
    assert_eq!(drain(&mut rx), want);
}

#[test]
fn spsc_refuses_record_fitting_neither_end_nor_start() {
    no_fit_at_end_nor_start_is_refused::<Spsc>(Kind::Spsc);
}

#[test]
fn mpsc_refuses_record_fitting_neither_end_nor_start() {
    no_fit_at_end_nor_start_is_refused::<Mpsc>(Kind::Mpsc);
}

#[test]
fn exact_fit_max_length_and_limits() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 64)).unwrap();
    let mut tx = seg.producer::<Spsc>().unwrap();
    let mut rx = seg.consumer::<Spsc>().unwrap();
    assert_eq!(tx.max_message_len(), 8);
    for i in 0..3 {
        tx.try_write(1 + i, &[i as u8; 8]).unwrap(); // 3 x 16
    }
    tx.try_write(4, &[]).unwrap(); // 8 more: full, but for the header after it
    assert_eq!(tx.try_write(9, &[]), Err(WriteError::Full));
    assert_eq!(
        tx.try_write(9, &[0; 9]),
        Err(WriteError::TooLong { len: 9, max: 8 })
    );
    assert_eq!(tx.try_write(0, &[]), Err(WriteError::InvalidType(0)));
    assert_eq!(tx.try_write(-1, &[]), Err(WriteError::InvalidType(-1)));
    assert_eq!(drain(&mut rx).len(), 4);
    assert_eq!(rx.position(), 56);
}

#[test]
fn dropped_claim_is_aborted_and_skipped() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 256)).unwrap();
    let mut tx = seg.producer::<Spsc>().unwrap();
    let mut rx = seg.consumer::<Spsc>().unwrap();
    tx.try_write(1, b"a").unwrap();
    drop(tx.try_claim(2, 5).unwrap());
    tx.try_write(3, b"c").unwrap();
    assert_eq!(drain(&mut rx), [(1, b"a".to_vec()), (3, b"c".to_vec())]);
}

#[test]
fn ends_are_unique_per_process_and_kind_is_checked() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 64)).unwrap();
    let rx = seg.consumer::<Spsc>().unwrap();
    assert!(matches!(
        seg.consumer::<Spsc>(),
        Err(SegmentError::AlreadyAttached("consumer"))
    ));
    drop(rx);
    let _rx = seg.consumer::<Spsc>().unwrap();
    let _tx = seg.producer::<Spsc>().unwrap();
    assert!(matches!(
        seg.producer::<Spsc>(),
        Err(SegmentError::AlreadyAttached("producer"))
    ));
    let err = seg.producer::<Mpsc>().unwrap_err();
    assert!(matches!(
        err,
        SegmentError::KindMismatch {
            expected: Kind::Mpsc,
            found: Kind::Spsc
        }
    ));
    assert_eq!(
        err.to_string(),
        "ring kind mismatch: caller expects mpsc, segment is spsc: open it as the kind it was \
         created as"
    );
}

#[test]
fn panicking_handler_consumes_the_record_it_panicked_on() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 256)).unwrap();
    let mut tx = seg.producer::<Spsc>().unwrap();
    let mut rx = seg.consumer::<Spsc>().unwrap();
    for t in 1..=3 {
        tx.try_write(t, &[]).unwrap();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rx.read(10, |t, _| assert_ne!(t, 2)).unwrap();
    }));
    assert!(r.is_err());
    assert_eq!(drain(&mut rx), [(3, vec![])]);
}

#[test]
fn mpsc_unblock_repairs_a_dead_producers_claim() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Mpsc, 1024)).unwrap();
    let mut dead = seg.producer::<Mpsc>().unwrap();
    let mut live = dead.clone();
    let mut rx = seg.consumer::<Mpsc>().unwrap();
    assert!(
        !rx.unblock().unwrap(),
        "nothing to unblock in an empty ring"
    );
    // A producer "dies" between claim and commit: forget skips the abort in Drop.
    std::mem::forget(dead.try_claim(1, 40).unwrap());
    live.try_write(2, b"behind the hole").unwrap();
    assert_eq!(drain(&mut rx), []);
    assert!(
        rx.unblock_stalled(std::time::Duration::ZERO)
            .is_ok_and(|u| !u),
        "first call only starts the clock"
    );
    assert!(rx.unblock_stalled(std::time::Duration::ZERO).unwrap());
    assert_eq!(drain(&mut rx), [(2, b"behind the hole".to_vec())]);
}

#[test]
fn mpsc_unblock_repairs_a_hole_and_late_commit_is_refused() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Mpsc, 1024)).unwrap();
    let mut slow = seg.producer::<Mpsc>().unwrap();
    let mut live = slow.clone();
    let mut rx = seg.consumer::<Mpsc>().unwrap();
    let claim = slow.try_claim(1, 16).unwrap();
    live.try_write(2, b"x").unwrap();
    // As if the producer had died after winning the tail CAS but before writing its
    // header: the claimed record's header is still zero (data region starts at 4096).
    let file = std::fs::File::from(std::os::fd::AsFd::as_fd(&seg).try_clone_to_owned().unwrap());
    std::os::unix::fs::FileExt::write_all_at(&file, &[0; 8], 4096).unwrap();
    assert!(rx.unblock().unwrap());
    assert_eq!(drain(&mut rx), [(2, b"x".to_vec())]);
    assert_eq!(claim.commit(), Err(WriteError::Unblocked));
}
