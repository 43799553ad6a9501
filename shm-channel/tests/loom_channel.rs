//! loom suite of the channel's waiter protocol (`cargo xtask loom`).
#![cfg(shm_loom)]

mod loom_common;

#[test]
fn spsc_reader_parks_on_empty() {
    loom_common::spsc_reader_parks_on_empty();
}

#[test]
fn spsc_writer_parks_on_full() {
    loom_common::spsc_writer_parks_on_full();
}

#[test]
fn mpsc_reader_parks_on_empty() {
    loom_common::mpsc_reader_parks_on_empty();
}

#[test]
fn mpsc_writers_park_on_full() {
    loom_common::mpsc_writers_park_on_full();
}
