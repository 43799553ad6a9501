//! Hostile and damaged segments: every corruption is an error, never a panic or an
//! out-of-bounds access.
#![cfg(not(shm_loom))]

use shm_ring::{Kind, Mpsc, ReadError, Segment, SegmentError, SegmentOptions, Spsc, WriteError};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

const DATA: u64 = 4096;

/// A unique segment name for this test process; the creator's Segment unlinks it.
fn unique(tag: &str) -> String {
    static N: Mutex<u32> = Mutex::new(0);
    let mut n = N.lock().unwrap();
    *n += 1;
    format!("shmring-test-{}-{tag}-{n}", std::process::id())
}

fn file_of(seg: &Segment) -> File {
    File::from(seg.as_fd().try_clone_to_owned().unwrap())
}

/// Creates a named segment, applies `damage` to its file, and opens it again.
fn open_damaged(damage: impl FnOnce(&File)) -> Result<Segment, SegmentError> {
    let name = unique("hdr");
    let creator = Segment::create(&name, &SegmentOptions::new(Kind::Spsc, 4096)).unwrap();
    damage(&file_of(&creator));
    let r = Segment::open(&name);
    drop(creator);
    r
}

fn put(f: &File, off: u64, bytes: &[u8]) {
    f.write_all_at(bytes, off).unwrap();
}

#[test]
fn intact_segment_opens() {
    let s = open_damaged(|_| {}).unwrap();
    assert_eq!(
        (s.kind(), s.capacity(), s.max_message_len()),
        (Kind::Spsc, 4096, 512)
    );
    // The creator dropped its handle (its process lives on): it holds the segment no
    // more, so the segment is stale.
    assert!(!s.is_creator_alive());
    let name = unique("alive");
    let creator = Segment::create(&name, &SegmentOptions::new(Kind::Spsc, 64)).unwrap();
    assert!(Segment::open(&name).unwrap().is_creator_alive());
    assert!(!Segment::is_stale(&name).unwrap());
    drop(creator);
}

#[test]
fn corrupt_headers_are_refused_with_the_reason() {
    type Case = (&'static str, Box<dyn Fn(&File)>, fn(&SegmentError) -> bool);
    let cases: Vec<Case> = vec![
        ("magic", Box::new(|f| put(f, 0, b"NOTARING")), |e| {
            matches!(e, SegmentError::BadMagic { .. })
        }),
        ("zero magic", Box::new(|f| put(f, 0, &[0; 8])), |e| {
            matches!(e, SegmentError::NotInitialised)
        }),
        (
            "version",
            Box::new(|f| put(f, 8, &7u32.to_ne_bytes())),
            |e| {
                matches!(
                    e,
                    SegmentError::VersionMismatch {
                        expected: shm_ring::LAYOUT_VERSION,
                        found: 7
                    }
                )
            },
        ),
        ("kind", Box::new(|f| put(f, 12, &9u32.to_ne_bytes())), |e| {
            matches!(e, SegmentError::CorruptHeader(_))
        }),
        (
            "lanes on a one-lane kind",
            Box::new(|f| put(f, 56, &2u32.to_ne_bytes())),
            |e| matches!(e, SegmentError::CorruptHeader(_)),
        ),
        (
            "lanes zero",
            Box::new(|f| put(f, 56, &0u32.to_ne_bytes())),
            |e| matches!(e, SegmentError::CorruptHeader(_)),
        ),
        (
            "capacity not a power of two",
            Box::new(|f| put(f, 24, &4000u64.to_ne_bytes())),
            |e| matches!(e, SegmentError::CorruptHeader(_)),
        ),
        (
            "capacity huge",
            Box::new(|f| put(f, 24, &(1u64 << 62).to_ne_bytes())),
            |e| matches!(e, SegmentError::CorruptHeader(_)),
        ),
        (
            "capacity bigger than file",
            Box::new(|f| {
                put(f, 24, &8192u64.to_ne_bytes());
                put(f, 32, &1024u32.to_ne_bytes());
                put(f, 48, &(4096u64 + 8192 + 1024).to_ne_bytes());
            }),
            |e| matches!(e, SegmentError::SizeMismatch { .. }),
        ),
        (
            "max message",
            Box::new(|f| put(f, 32, &4096u32.to_ne_bytes())),
            |e| matches!(e, SegmentError::CorruptHeader(_)),
        ),
        (
            "total length",
            Box::new(|f| put(f, 48, &1u64.to_ne_bytes())),
            |e| matches!(e, SegmentError::CorruptHeader(_)),
        ),
        ("truncated", Box::new(|f| f.set_len(6000).unwrap()), |e| {
            matches!(
                e,
                SegmentError::SizeMismatch {
                    expected: 9216,
                    found: 6000
                }
            )
        }),
        (
            "truncated below the header",
            Box::new(|f| f.set_len(100).unwrap()),
            |e| matches!(e, SegmentError::SizeMismatch { .. }),
        ),
        ("grown", Box::new(|f| f.set_len(1 << 20).unwrap()), |e| {
            matches!(e, SegmentError::SizeMismatch { .. })
        }),
    ];
    for (what, damage, expected) in cases {
        let err = open_damaged(damage).expect_err(what);
        assert!(expected(&err), "{what}: unexpected error {err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn create_never_clobbers_and_validates_names_and_options() {
    let name = unique("excl");
    let seg = Segment::create(&name, &SegmentOptions::new(Kind::Spsc, 64)).unwrap();
    assert!(matches!(
        Segment::create(&name, &SegmentOptions::new(Kind::Spsc, 64)),
        Err(SegmentError::AlreadyExists(_))
    ));
    let meta = std::fs::metadata(format!("/dev/shm/{name}")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    drop(seg);
    assert!(matches!(
        Segment::open(&name),
        Err(SegmentError::NotFound(_))
    ));
    assert!(matches!(
        Segment::create("a/b", &SegmentOptions::new(Kind::Spsc, 64)),
        Err(SegmentError::InvalidName { .. })
    ));
    assert!(matches!(
        Segment::create(&unique("cap"), &SegmentOptions::new(Kind::Spsc, 100)),
        Err(SegmentError::InvalidOptions(_))
    ));
}

#[test]
fn unsealed_memfd_is_refused() {
    let fd =
        nix::sys::memfd::memfd_create(c"plain", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap();
    nix::unistd::ftruncate(&fd, 8960).unwrap();
    assert!(matches!(
        Segment::from_fd(fd),
        Err(SegmentError::Unsealed(_))
    ));
}

#[test]
fn fds_that_are_not_segments_are_refused() {
    // A regular file holding a valid segment image: the layout is right, the file is not.
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 64)).unwrap();
    let image = std::fs::read(format!("/proc/self/fd/{}", seg.as_fd().as_raw_fd())).unwrap();
    let path = std::env::temp_dir().join(unique("regular"));
    std::fs::write(&path, &image).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let refused = Segment::from_fd(file.into());
    assert!(
        matches!(
            refused,
            Err(SegmentError::NotSegmentFd(_) | SegmentError::Unsealed(_))
        ),
        "{refused:?}"
    );
    let (r, _w) = nix::unistd::pipe().unwrap();
    assert!(matches!(
        Segment::from_fd(r),
        Err(SegmentError::NotSegmentFd(_))
    ));
    // A named segment's fd is accepted (and guarded against truncation).
    let name = unique("namedfd");
    let named = Segment::create(&name, &SegmentOptions::new(Kind::Spsc, 64)).unwrap();
    let dup = named.as_fd().try_clone_to_owned().unwrap();
    assert_eq!(Segment::from_fd(dup).unwrap().capacity(), 64);
}

#[test]
fn names_that_are_not_segments_are_refused() {
    // A FIFO planted under the name: refused at once (not opened blocking, not mapped).
    let fifo = unique("planted-fifo");
    nix::unistd::mkfifo(
        format!("/dev/shm/{fifo}").as_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let r = Segment::open(&fifo);
    std::fs::remove_file(format!("/dev/shm/{fifo}")).unwrap();
    assert!(matches!(r, Err(SegmentError::NotSegmentFd(_))), "{r:?}");
    // A symlink to a valid segment: not followed.
    let (real, link) = (unique("real"), unique("link"));
    let seg = Segment::create(&real, &SegmentOptions::new(Kind::Spsc, 64)).unwrap();
    std::os::unix::fs::symlink(format!("/dev/shm/{real}"), format!("/dev/shm/{link}")).unwrap();
    let r = Segment::open(&link);
    std::fs::remove_file(format!("/dev/shm/{link}")).unwrap();
    drop(seg);
    assert!(r.is_err(), "opened through a symlink");
}

#[test]
fn a_creator_leaves_a_successors_segment_alone() {
    let name = unique("successor");
    let opts = SegmentOptions::new(Kind::Spsc, 64);
    let first = Segment::create(&name, &opts).unwrap();
    Segment::unlink(&name).unwrap(); // someone removed it...
    let second = Segment::create(&name, &opts).unwrap(); // ...and made another
    drop(first);
    assert!(
        Segment::open(&name).is_ok(),
        "the first creator removed its successor's"
    );
    drop(second);
    assert!(matches!(
        Segment::open(&name),
        Err(SegmentError::NotFound(_))
    ));
}

/// Writes one record, then overwrites its header with `(length, type)`.
fn read_with_header(length: i32, msg_type: i32) -> Result<usize, ReadError> {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 256)).unwrap();
    let mut tx = seg.producer::<Spsc>().unwrap();
    let mut rx = seg.consumer::<Spsc>().unwrap();
    tx.try_write(1, &[7; 16]).unwrap();
    let f = file_of(&seg);
    put(&f, DATA, &length.to_ne_bytes());
    put(&f, DATA + 4, &msg_type.to_ne_bytes());
    rx.read(10, |_, body| assert!(body.len() <= 32))
}

#[test]
fn corrupt_record_headers_are_errors() {
    for (len, ty, what) in [
        (-5, 1, "negative garbage"),
        (i32::MIN, 1, "most negative"),
        (3, 1, "shorter than a header"),
        (300, 1, "past the end"),
        (8 + 33, 1, "over max message length"),
        (i32::MAX, 1, "huge"),
        (24, 0, "type zero"),
        (24, -9, "reserved negative type"),
        (264, -1, "padding past the end"),
    ] {
        let r = read_with_header(len, ty);
        assert!(
            matches!(r, Err(ReadError::Corrupt { position: 0, .. })),
            "{what}: {r:?}"
        );
    }
    assert_eq!(read_with_header(8 + 32, 1), Ok(1), "max length is fine");
}

#[test]
fn corrupt_positions_are_errors() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Mpsc, 256)).unwrap();
    let f = file_of(&seg);
    let trailer = DATA + 256;
    put(&f, trailer + 128, &1000u64.to_ne_bytes()); // tail
    put(&f, trailer + 384, &8u64.to_ne_bytes()); // head
    assert!(matches!(
        seg.producer::<Mpsc>(),
        Err(SegmentError::CorruptHeader(_))
    ));
    put(&f, trailer + 384, &3u64.to_ne_bytes()); // unaligned head
    assert!(matches!(
        seg.consumer::<Mpsc>(),
        Err(SegmentError::CorruptHeader(_))
    ));
    put(&f, trailer + 384, &8u64.to_ne_bytes()); // head
    put(&f, trailer + 128, &64u64.to_ne_bytes()); // tail
    for consumed in [0u64, 12, 72, 8 + 257] {
        put(&f, trailer + 768, &consumed.to_ne_bytes());
        assert!(
            matches!(seg.consumer::<Mpsc>(), Err(SegmentError::CorruptHeader(_))),
            "consumed {consumed}"
        );
    }
    put(&f, trailer + 768, &8u64.to_ne_bytes());
    assert!(seg.consumer::<Mpsc>().is_ok(), "refusals released the end");
}

/// MPSC: a consumer killed after delivering records but before publishing head (it may
/// have zeroed them already): its successor finishes the zeroing, resumes after them, and the
/// producer gets the space back. Without `Consumed` the zeroed records read as an empty
/// ring while head says full, for ever.
#[test]
fn successor_finishes_a_dead_consumers_read() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Mpsc, 256)).unwrap();
    let f = file_of(&seg);
    let trailer = DATA + 256;
    let mut tx = seg.producer::<Mpsc>().unwrap();
    for i in 0..8u8 {
        tx.try_write(1, &[i; 24]).unwrap(); // 8 x 32 = the whole ring
    }
    assert_eq!(tx.try_write(1, &[9; 24]), Err(WriteError::Full));
    // The dead consumer delivered the first two records, zeroed the first, and died.
    put(&f, trailer + 768, &64u64.to_ne_bytes());
    put(&f, DATA, &[0u8; 32]);
    let mut rx = seg.consumer::<Mpsc>().unwrap();
    let mut got = Vec::new();
    rx.read(usize::MAX, |_, b| got.push(b[0])).unwrap();
    assert_eq!(got, [2, 3, 4, 5, 6, 7]);
    tx.try_write(1, &[9; 24]).unwrap();
    rx.read(usize::MAX, |_, b| got.push(b[0])).unwrap();
    assert_eq!(got, [2, 3, 4, 5, 6, 7, 9]);
}

/// SPSC: the consumer writes nothing into the data region (the producer zeroes the
/// header after each claim instead), so record lines only ever move from producer to
/// consumer; and old laps left in place are never read as new records.
#[test]
fn spsc_consumer_leaves_the_data_region_alone() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 256)).unwrap();
    let f = file_of(&seg);
    let data = |f: &File| {
        let mut b = vec![0u8; 256];
        f.read_exact_at(&mut b, DATA).unwrap();
        b
    };
    let mut tx = seg.producer::<Spsc>().unwrap();
    let mut rx = seg.consumer::<Spsc>().unwrap();
    let mut got = Vec::new();
    for lap in 0..5u8 {
        for i in 0..5u8 {
            tx.try_write(1 + i as i32, &[lap * 16 + i; 20]).unwrap(); // 28 -> 32 bytes
        }
        let before = data(&f);
        assert_eq!(
            rx.read(usize::MAX, |t, b| got.push((t, b.to_vec())))
                .unwrap(),
            5
        );
        assert_eq!(
            data(&f),
            before,
            "lap {lap}: the consumer wrote into the data region"
        );
        assert_eq!(
            rx.read(usize::MAX, |_, _| panic!("an old lap read as new"))
                .unwrap(),
            0
        );
    }
    let want: Vec<_> = (0..5u8)
        .flat_map(|lap| (0..5u8).map(move |i| (1 + i as i32, vec![lap * 16 + i; 20])))
        .collect();
    assert_eq!(got, want);
}

/// SPSC: a consumer leaves nothing half done between reads (it writes only head), so a
/// successor resumes at head, whatever `Consumed` (an MPSC counter) holds, and the
/// producer gets the space back.
#[test]
fn spsc_successor_consumer_resumes_at_head() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 256)).unwrap();
    let f = file_of(&seg);
    let mut tx = seg.producer::<Spsc>().unwrap();
    for i in 0..7u8 {
        tx.try_write(1, &[i; 24]).unwrap(); // 7 x 32: full but for the last header
    }
    assert_eq!(tx.try_write(1, &[7; 24]), Err(WriteError::Full));
    let mut got = Vec::new();
    let mut first = seg.consumer::<Spsc>().unwrap();
    first.read(3, |_, b| got.push(b[0])).unwrap();
    drop(first);
    put(&f, DATA + 256 + 768, &8000u64.to_ne_bytes()); // `Consumed`: not ours to read
    let mut rx = seg.consumer::<Spsc>().unwrap();
    rx.read(usize::MAX, |_, b| got.push(b[0])).unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4, 5, 6]);
    tx.try_write(1, &[7; 24]).unwrap();
    rx.read(usize::MAX, |_, b| got.push(b[0])).unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4, 5, 6, 7]);
}

/// SPSC: two writers die in a row, each inside a claim, before the third attaches.
/// The first died inside a claim that wraps: its padding (112..128) still says "being
/// written", its record at 0..24 too. The second resumed after it and died inside its
/// own record (24..40). The consumer must skip both claims exactly (the padding to the
/// end of the buffer, each record by its own length) and deliver only the third
/// writer's record, never a byte of the lap left in place under them.
#[test]
fn spsc_consumer_skips_claims_of_two_dead_writers_in_a_row() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 128)).unwrap();
    let f = file_of(&seg);
    let (tail, resumed) = (DATA + 128 + 128, DATA + 128 + 128 * 7);
    let mut rx = seg.consumer::<Spsc>().unwrap();
    // Each writer attaches through a handle of its own and leaks it when it "dies", as
    // a killed process would leave its end.
    let handle = || Segment::from_fd(seg.as_fd().try_clone_to_owned().unwrap()).unwrap();
    {
        let first_seg = handle();
        let mut first = first_seg.producer::<Spsc>().unwrap();
        for i in 0..7u8 {
            first.try_write(9, &[0x90 + i; 8]).unwrap(); // 0..112, read below
        }
        assert_eq!(rx.read(usize::MAX, |_, _| {}).unwrap(), 7);
        // What `first` leaves when it dies inside a 16-byte-body claim that wraps: the
        // headers it writes before publishing tail 152 (padding open, record open, the
        // header after it zeroed), and not the padding's commit.
        put(&f, DATA + 112, &(-16i32).to_ne_bytes());
        put(&f, DATA + 116, &(-1i32).to_ne_bytes());
        put(&f, DATA, &(-24i32).to_ne_bytes());
        put(&f, DATA + 4, &5i32.to_ne_bytes());
        put(&f, DATA + 24, &0i32.to_ne_bytes());
        put(&f, tail, &152u64.to_ne_bytes());
        std::mem::forget(first); // dies: no further writes
        std::mem::forget(first_seg);
    }
    {
        let second_seg = handle();
        let mut second = second_seg.producer::<Spsc>().unwrap();
        let mut claim = second.try_claim(6, 8).unwrap(); // 24..40, then dies
        claim.as_mut_slice().fill(6);
        std::mem::forget(claim);
        std::mem::forget(second);
        std::mem::forget(second_seg);
    }
    let third_seg = handle();
    let mut third = third_seg.producer::<Spsc>().unwrap();
    let mut r = [0u8; 8];
    f.read_exact_at(&mut r, resumed).unwrap();
    assert_eq!(
        u64::from_ne_bytes(r),
        168,
        "the third resumes after both claims"
    );
    third.try_write(7, &[7; 8]).unwrap();
    let mut got = Vec::new();
    assert_eq!(
        rx.read(usize::MAX, |t, b| got.push((t, b.to_vec())))
            .unwrap(),
        1
    );
    assert_eq!(got, [(7, vec![7; 8])]);
    assert_eq!(rx.position(), 168 + 16);
}

/// Random bytes over the data region while a reader reads, 100,000 rounds (or
/// `SHM_FUZZ_ROUNDS`, as `cargo xtask fuzz` sets): only errors or messages, never a
/// panic or an out-of-bounds access.
#[test]
fn random_garbage_never_panics() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 256)).unwrap();
    let f = file_of(&seg);
    let mut rx = seg.consumer::<Spsc>().unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut outcomes = [0usize; 2];
    let rounds: u64 = std::env::var("SHM_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    for _ in 0..rounds {
        let mut junk = [0u8; 64];
        for b in junk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 56) as u8;
        }
        // Small lengths and types are likelier to parse as valid records.
        if x % 3 == 0 {
            junk[..4].copy_from_slice(&((x % 48) as i32).to_ne_bytes());
            junk[4..8].copy_from_slice(&1i32.to_ne_bytes());
        }
        let at = (x % (256 - 64)) & !7;
        let start = rx.position() % 256;
        put(&f, DATA + if x % 2 == 0 { start } else { at }, &junk);
        match rx.read(4, |_, b| assert!(b.len() <= 32)) {
            Ok(_) => outcomes[0] += 1,
            Err(_) => outcomes[1] += 1,
        }
        if x % 5 == 0 {
            put(&f, DATA, &[0; 256]); // let the reader recover and move on
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// The producers' shared head cache may lag more than a lap behind (it is refreshed
/// without ordering among producers, or scribbled on): it must only cost a re-read.
#[test]
fn stale_head_cache_more_than_a_lap_behind_is_harmless() {
    use shm_ring::Mpsc;
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Mpsc, 256)).unwrap();
    let mut tx = seg.producer::<Mpsc>().unwrap();
    let mut rx = seg.consumer::<Mpsc>().unwrap();
    for _ in 0..100 {
        tx.try_write(1, &[3; 24]).unwrap();
        assert_eq!(rx.read(1, |_, _| {}).unwrap(), 1);
    }
    let head_cache = DATA + 256 + 256;
    put(&file_of(&seg), head_cache, &0u64.to_ne_bytes());
    tx.try_write(1, &[4; 24]).unwrap();
    assert_eq!(rx.read(1, |_, b| assert_eq!(b, [4; 24])).unwrap(), 1);
}

/// A peer holding an anonymous segment's fd cannot shrink or grow it under our mapping:
/// the seals refuse, so no SIGBUS can be provoked that way.
#[test]
fn sealed_memfd_cannot_be_truncated_by_a_peer() {
    let seg = Segment::anonymous(&SegmentOptions::new(Kind::Spsc, 4096)).unwrap();
    let f = file_of(&seg);
    let len = f.metadata().unwrap().len();
    let e = f.set_len(len / 2).unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(libc::EPERM),
        "shrink must be refused: {e}"
    );
    assert!(f.set_len(len * 2).is_err(), "grow must be refused");
    // The ring still works.
    seg.producer::<Spsc>()
        .unwrap()
        .try_write(1, b"still here")
        .unwrap();
    assert_eq!(
        seg.consumer::<Spsc>()
            .unwrap()
            .read(1, |_, b| assert_eq!(b, b"still here"))
            .unwrap(),
        1
    );
}

/// A segment of another user is refused unless explicitly allowed (needs root to make
/// one; as another user the check still runs on the common path).
#[test]
fn segment_of_another_user_is_refused_unless_allowed() {
    let name = unique("uid");
    let seg = Segment::create(&name, &SegmentOptions::new(Kind::Spsc, 64)).unwrap();
    assert!(Segment::open(&name).is_ok(), "our own segment opens");
    if nix::unistd::geteuid().is_root() {
        nix::unistd::fchown(file_of(&seg), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let e = Segment::open(&name).unwrap_err();
        assert!(
            matches!(
                e,
                SegmentError::OtherOwner {
                    owner: 65534,
                    me: 0
                }
            ),
            "{e}"
        );
        let opts = shm_ring::OpenOptions::default().allow_other_users(true);
        assert!(Segment::open_with(&name, &opts).is_ok());
    }
}
