//! FIFOs by name: nothing is opened through a symlink or before its type is checked, and
//! a creator removes only its own FIFO, never a successor's under the same name.

use shm_notify::Fifo;
use std::path::PathBuf;

fn path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "shmring-test-{}-fifoname-{tag}",
        std::process::id()
    ))
}

#[test]
fn a_symlink_to_a_fifo_is_not_followed() {
    let (real, link) = (path("real"), path("link"));
    let fifo = Fifo::create(&real, 0o600).unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let opened = Fifo::open(&link);
    std::fs::remove_file(&link).unwrap();
    drop(fifo);
    let e = opened.expect_err("opened through a symlink");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
}

#[test]
fn a_regular_file_is_refused_before_it_is_opened() {
    let p = path("regular");
    std::fs::write(&p, b"not a fifo").unwrap();
    let opened = Fifo::open(&p);
    std::fs::remove_file(&p).unwrap();
    assert_eq!(
        opened.expect_err("a regular file").kind(),
        std::io::ErrorKind::InvalidInput
    );
}

#[test]
fn a_creator_leaves_a_successors_fifo_alone() {
    let p = path("successor");
    let first = Fifo::create(&p, 0o600).unwrap();
    std::fs::remove_file(&p).unwrap(); // someone removed it...
    let second = Fifo::create(&p, 0o600).unwrap(); // ...and made another
    drop(first);
    assert!(p.exists(), "the first creator removed its successor's FIFO");
    drop(second);
    assert!(!p.exists(), "the second creator removes its own");
}
