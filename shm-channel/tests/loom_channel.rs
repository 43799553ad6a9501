//! loom suite of the channel's waiter protocol and wait engine (`cargo xtask loom`, which
//! runs every model in a process of its own).
#![cfg(shm_loom)]

mod loom_common;

macro_rules! models {
    ($($model:ident),* $(,)?) => {$(
        #[test]
        fn $model() {
            loom_common::$model();
        }
    )*};
}

models!(
    spsc_reader_parks_on_empty,
    spsc_writer_parks_on_full,
    spsc_wraps_with_padding,
    spsc_zero_copy_claim,
    mpsc_zero_copy_claim,
    spsc_aborted_claim,
    mpsc_aborted_claim,
    mpsc_abandoned_claim_is_skipped,
    mpsc_reader_parks_on_empty,
    mpsc_writers_park_on_full,
    mpsc_wakes_every_parked_writer,
    spsc_writers_race_for_the_slot,
);
