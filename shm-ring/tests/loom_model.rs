//! loom models of the record protocols, run on the real code through the `sync` facade.
//! Built only with `--cfg shm_loom` (`cargo xtask loom`).
#![cfg(shm_loom)]

mod loom_common;

#[test]
fn spsc() {
    loom_common::spsc_wraps_and_waits_for_space();
}

#[test]
fn mpsc() {
    loom_common::mpsc_two_producers_wrap();
}

#[test]
fn spsc_successor_attaches_while_consuming() {
    loom_common::spsc_successor_attaches_while_consuming();
}

#[test]
fn lanes_two_producers() {
    loom_common::lanes_two_producers();
}

#[test]
fn lane_successor_skips_a_dead_claim() {
    loom_common::lane_successor_skips_a_dead_claim();
}
