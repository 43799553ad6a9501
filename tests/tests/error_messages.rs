//! Every error a new user meets in the first hour names the next step: a stale name
//! points to `reclaim_stale`, another user's channel to the fd hand-over, a notifier that
//! does not fit the mode to the ones that do, a missing channel to `open_timeout`, and
//! running out of fds is reported as itself.

use shm_channel::{ChannelBuilder, ChannelError, Receiver, Sender, Spsc};
use shm_idle::Backoff;
use shm_notify::{EventFd, Fifo, Futex, Semaphore};
use shm_ring::SegmentError;
use shm_tests::{read_line, unique_name, Peer, SharedCopy};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(20);

fn create<N: shm_channel::ChannelNotifier>(
    name: &str,
) -> Result<Receiver<Spsc, N, Backoff>, ChannelError>
where
    Backoff: shm_idle::ParksOn<N>,
{
    ChannelBuilder::new().create_receiver(name, Backoff::default())
}

fn says(err: &dyn std::fmt::Display, hints: &[&str]) {
    let text = err.to_string();
    for hint in hints {
        assert!(text.contains(hint), "{text:?} does not say {hint:?}");
    }
}

#[test]
fn a_stale_name_points_to_reclaim_stale() {
    let name = unique_name("err-stale");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_channel_peer"));
    cmd.args(["create-hang", "spsc", "fifo", "backoff", &name])
        .stdout(Stdio::piped());
    let mut creator = Peer::spawn(cmd, None);
    assert_eq!(read_line(&mut creator), "created");
    creator.kill();

    let err = create::<Fifo>(&name).unwrap_err();
    assert!(
        matches!(err, ChannelError::Segment(SegmentError::Stale(_))),
        "{err:?}"
    );
    says(&err, &["stale", "creator died", "reclaim_stale(true)"]);
    let rx: Receiver<Spsc, Fifo, Backoff> = ChannelBuilder::new()
        .reclaim_stale(true)
        .create_receiver(&name, Backoff::default())
        .expect("the advice works");
    drop(rx);
}

#[test]
fn fifos_left_by_a_dead_channel_point_to_reclaim_stale() {
    let name = unique_name("err-fifo");
    let path = format!("/dev/shm/{name}.data.fifo");
    nix::unistd::mkfifo(path.as_str(), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let err = create::<Fifo>(&name).unwrap_err();
    says(&err, &["stale", "reclaim_stale(true)"]);
    let rx: Receiver<Spsc, Fifo, Backoff> = ChannelBuilder::new()
        .reclaim_stale(true)
        .create_receiver(&name, Backoff::default())
        .expect("the advice works");
    drop(rx);
    assert!(std::fs::symlink_metadata(&path).is_err(), "FIFO removed");
}

#[test]
fn a_live_name_says_open_it_or_choose_another() {
    let name = unique_name("err-live");
    let _rx = create::<Futex>(&name).unwrap();
    let err = create::<Futex>(&name).unwrap_err();
    assert!(
        matches!(err, ChannelError::Segment(SegmentError::AlreadyExists(_))),
        "{err:?}"
    );
    says(&err, &["already exists", "another name", "open it"]);
}

#[test]
fn a_missing_channel_points_to_open_timeout_which_waits_for_it() {
    let name = unique_name("err-missing");
    let err = Sender::<Spsc, Futex, Backoff>::open(&name, Backoff::default()).unwrap_err();
    says(&err, &["does not exist", "open_timeout"]);
    let err = Receiver::<Spsc, Futex, Backoff>::open(&name, Backoff::default()).unwrap_err();
    says(&err, &["does not exist", "open_timeout"]);

    // Still missing after the timeout: the same error, after waiting.
    let t = Instant::now();
    let err = Sender::<Spsc, Futex, Backoff>::open_timeout(
        &name,
        Backoff::default(),
        Duration::from_millis(60),
    )
    .unwrap_err();
    assert!(t.elapsed() >= Duration::from_millis(60), "it waited");
    says(&err, &["does not exist"]);

    // A writer started first gets the channel once its reader creates it: FIFOs too,
    // which appear just after the segment.
    let writer = std::thread::spawn({
        let name = name.clone();
        move || {
            let mut tx =
                Sender::<Spsc, Fifo, Backoff>::open_timeout(&name, Backoff::default(), BOUND)
                    .map_err(|e| e.to_string())?;
            tx.send_timeout(b"first", BOUND).map_err(|e| e.to_string())
        }
    });
    std::thread::sleep(Duration::from_millis(30));
    let mut rx = create::<Fifo>(&name).unwrap();
    assert_eq!(
        rx.recv_timeout(BOUND, |m| m.to_vec()).unwrap(),
        b"first".to_vec()
    );
    writer.join().unwrap().unwrap();

    // Errors other than "not there yet" come back at once.
    let t = Instant::now();
    let err = Sender::<Spsc, Semaphore, Backoff>::open_timeout(&name, Backoff::default(), BOUND)
        .unwrap_err();
    assert!(t.elapsed() < BOUND, "no wait on a mismatch");
    assert!(
        matches!(err, ChannelError::NotifierMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn a_notifier_that_does_not_fit_the_mode_names_those_that_do() {
    // eventfd by name: it travels as fds.
    let err = create::<EventFd>(&unique_name("err-efd")).unwrap_err();
    assert!(matches!(err, ChannelError::NeedsFds("eventfd")), "{err:?}");
    says(
        &err,
        &["anonymous_receiver", "Handoff", "futex, fifo or semaphore"],
    );

    // A FIFO channel handed over as fds: FIFOs are found by name.
    let err = ChannelBuilder::new()
        .anonymous_receiver::<Spsc, Fifo, Backoff>(Backoff::default())
        .unwrap_err();
    assert!(matches!(err, ChannelError::NeedsName("fifo")), "{err:?}");
    says(&err, &["futex or semaphore", "eventfd", "by name"]);

    // The wrong notifier type for an existing channel: use the channel's own.
    let name = unique_name("err-mismatch");
    let _rx = create::<Futex>(&name).unwrap();
    let err = Sender::<Spsc, Semaphore, Backoff>::open(&name, Backoff::default()).unwrap_err();
    says(
        &err,
        &[
            "created with futex",
            "open it with the futex notifier",
            "AnyNotifier",
        ],
    );
}

#[test]
fn another_users_channel_points_to_the_fd_handover() {
    let name = unique_name("err-uid");
    let _rx = create::<Futex>(&name).unwrap();
    if !nix::unistd::geteuid().is_root() {
        println!("SKIPPED: needs root to give the segment to another user");
        return;
    }
    // Our own segment given to another user: refused by default, with the way out.
    let path = format!("/dev/shm/{name}");
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let err = Sender::<Spsc, Futex, Backoff>::open(&name, Backoff::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ChannelError::Segment(SegmentError::OtherOwner { owner: 65534, .. })
        ),
        "{err:?}"
    );
    says(&err, &["uid 65534", "allow_other_users", "Handoff"]);
    std::os::unix::fs::chown(&path, Some(0), None).unwrap();

    // A process of another user opening our 0600 segment: permission denied, and why.
    let bin = SharedCopy::new(env!("CARGO_BIN_EXE_channel_peer"));
    let log = std::env::temp_dir().join(unique_name("err-uid-log"));
    let mut cmd = Command::new(&bin.0);
    cmd.args(["send", "spsc", "futex", "backoff", &name, "1", "1", "0"])
        .stderr(std::fs::File::create(&log).unwrap());
    std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
    let status = Peer::spawn(cmd, None).wait_timeout(BOUND);
    let stderr = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(!status.success(), "{stderr}");
    for hint in ["permission denied", "uid 0", "mode 600", "Handoff"] {
        assert!(stderr.contains(hint), "{stderr:?} does not say {hint:?}");
    }
}

/// A dead creator's channel whose FIFOs are gone (killed between publishing the segment
/// and making them): `open_timeout` says stale at once instead of waiting for FIFOs that
/// will never come.
#[test]
fn open_timeout_does_not_wait_for_a_dead_creators_fifos() {
    let name = unique_name("err-nofifo");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_channel_peer"));
    cmd.args(["create-hang", "spsc", "fifo", "backoff", &name])
        .stdout(Stdio::piped());
    let mut creator = Peer::spawn(cmd, None);
    assert_eq!(read_line(&mut creator), "created");
    creator.kill();
    for dir in ["data", "space"] {
        std::fs::remove_file(format!("/dev/shm/{name}.{dir}.fifo")).unwrap();
    }
    let t = Instant::now();
    let err =
        Sender::<Spsc, Fifo, Backoff>::open_timeout(&name, Backoff::default(), BOUND).unwrap_err();
    assert!(t.elapsed() < BOUND / 2, "waited {:?}", t.elapsed());
    assert!(
        matches!(err, ChannelError::Segment(SegmentError::Stale(_))),
        "{err:?}"
    );
    says(&err, &["reclaim_stale(true)"]);
    shm_ring::Segment::unlink(&name).unwrap();
}
