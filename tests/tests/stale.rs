//! A creator killed with SIGKILL leaves its segment's name behind: it is detected as
//! stale and can be reclaimed; a live creator's segment never is.

use shm_ring::{Kind, Segment, SegmentError, SegmentOptions};
use shm_tests::{unique_name, Peer};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn killed_creator_leaves_a_stale_segment_that_can_be_reclaimed() {
    let name = unique_name("stale");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ring_peer"));
    cmd.args(["create-hang", &name]).stdout(Stdio::piped());
    let mut creator = Peer::spawn(cmd, None);
    let mut line = String::new();
    BufReader::new(creator.stdout().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");

    let reclaim = SegmentOptions::new(Kind::Spsc, 4096).reclaim_stale(true);
    assert!(!Segment::is_stale(&name).unwrap(), "live creator");
    assert!(
        matches!(
            Segment::create(&name, &reclaim),
            Err(SegmentError::AlreadyExists(_))
        ),
        "never reclaim a live one"
    );

    creator.kill();
    assert!(Segment::is_stale(&name).unwrap(), "dead creator");
    assert!(
        matches!(
            Segment::create(&name, &SegmentOptions::new(Kind::Spsc, 4096)),
            Err(SegmentError::AlreadyExists(_))
        ),
        "without reclaim_stale, O_EXCL still refuses"
    );
    let fresh = Segment::create(&name, &reclaim).unwrap();
    assert!(fresh.is_creator_alive());
    drop(fresh); // unlinks
    assert!(matches!(
        Segment::is_stale(&name),
        Err(SegmentError::NotFound(_))
    ));
}
