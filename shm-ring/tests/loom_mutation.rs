//! The loom suite can fail: the real SPSC protocol with the committed length published
//! `Relaxed` instead of `Release` (a fault injected through `sync::fault`) must be caught.
//! A separate test binary, so the global fault switch cannot leak into other models.
#![cfg(shm_loom)]

#[allow(dead_code)]
mod loom_common;

#[test]
#[should_panic(expected = "Causality violation")]
fn relaxed_commit_is_caught() {
    shm_ring::sync::fault::set_relaxed_commit(true);
    loom_common::spsc_wraps_and_waits_for_space();
}
