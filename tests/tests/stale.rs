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
            Err(SegmentError::Stale(_))
        ),
        "without reclaim_stale, O_EXCL still refuses, and says it is stale"
    );
    let fresh = Segment::create(&name, &reclaim).unwrap();
    assert!(fresh.is_creator_alive());
    drop(fresh); // unlinks
    assert!(matches!(
        Segment::is_stale(&name),
        Err(SegmentError::NotFound(_))
    ));
}

/// A channel whose creator was killed: `inspect` (what `shm-stat` shows) says stale and
/// shows the dead reader; `channel_names` lists it; `reclaim_stale` replaces it.
#[test]
fn inspect_flags_a_killed_creators_channel_as_stale() {
    use shm_channel::{channel_names, inspect, ChannelBuilder, EndState, Receiver, Spsc};
    use shm_idle::Backoff;
    use shm_notify::Fifo;
    let name = unique_name("statstale");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_channel_peer"));
    cmd.args(["create-hang", "spsc", "fifo", "backoff", &name])
        .stdout(Stdio::piped());
    let mut creator = Peer::spawn(cmd, None);
    assert_eq!(shm_tests::read_line(&mut creator), "created");
    let live = inspect(&name).unwrap();
    assert!(!live.is_stale());
    assert!(matches!(live.reader, EndState::Open { alive: true, .. }));
    assert!(channel_names().contains(&name));
    creator.kill();
    let dead = inspect(&name).unwrap();
    assert!(dead.is_stale());
    assert!(matches!(dead.reader, EndState::Open { alive: false, .. }));
    let rx: Receiver<Spsc, Fifo, Backoff> = ChannelBuilder::new()
        .reclaim_stale(true)
        .create_receiver(&name, Backoff::default())
        .unwrap();
    assert!(!inspect(&name).unwrap().is_stale());
    drop(rx);
    assert!(!channel_names().contains(&name));
}
